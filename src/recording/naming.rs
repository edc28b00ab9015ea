//! Where a show's files go: `ROOT/<stamp>_<show_id>/seg-00001.ts`, ...
//!
//! Pure functions, no clock: the driver passes the wall-clock time at which the
//! show started. Stamps are UTC and contain no ':' so a recording copied to a
//! FAT-formatted USB stick keeps its name; they sort lexically in time order.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use time::format_description::FormatItem;
use time::macros::format_description;

/// printf pattern of a segment's file name, as splitmuxsink's `location` wants it.
pub const SEGMENT_PRINTF: &str = "seg-%05d.ts";

/// The directory of one show, e.g. `ROOT/2026-11-25T22-10-03Z_show-0001`.
///
/// `show_id` is sanitised: anything but ASCII letters, digits, '-' and '_'
/// becomes '_', so an id can never escape `root` or break a FAT name.
pub fn show_dir(root: &Path, wall_clock_stamp: SystemTime, show_id: &str) -> PathBuf {
    root.join(show_dir_name(wall_clock_stamp, show_id))
}

/// The bare directory name of a show; also the `show` key that
/// [`super::scan`] reports and [`super::enforce`] takes as the current show.
pub fn show_dir_name(wall_clock_stamp: SystemTime, show_id: &str) -> String {
    format!("{}_{}", utc_stamp(wall_clock_stamp), sanitize(show_id))
}

/// A show id from a running counter: `show-0001`.
pub fn show_id(counter: u32) -> String {
    format!("show-{counter:04}")
}

/// The `location` for splitmuxsink: `<show_dir>/seg-%05d.ts`.
///
/// The location is a printf format (`g_strdup_printf`), so a `%` in the
/// folder (`recording.dir` comes from the config) is doubled: a folder is
/// data, never a format. Unescaped, `%s` read a string pointer that was not
/// there (the daemon crashed at go-live) and `%d` put the segments in a
/// folder the disk budget never looked at.
///
/// splitmuxsink counts from 0; the driver sets `start-index` (see
/// [`next_segment_index`]) so the first file is `seg-00001.ts`.
pub fn segment_pattern(show_dir: &Path) -> String {
    let dir = show_dir.to_string_lossy().replace('%', "%%");
    Path::new(&dir)
        .join(SEGMENT_PRINTF)
        .to_string_lossy()
        .into_owned()
}

/// The number of the next segment of a show whose folder holds `names`: one
/// past the highest `seg-N.ts` there, 1 in an empty folder. A recorder that
/// restarts mid-show (a full disk, a USB disk plugged in again) continues the
/// numbering instead of overwriting the show's first segments. Capped where
/// splitmuxsink's `start-index` (a C `int`) ends.
pub fn next_segment_index<'a>(names: impl IntoIterator<Item = &'a str>) -> u32 {
    let highest = names
        .into_iter()
        .filter(|n| is_segment_name(n))
        .map(|n| {
            let digits = &n["seg-".len()..n.len() - ".ts".len()];
            // Too many digits for u64 is past the cap anyway.
            digits.parse::<u64>().unwrap_or(u64::MAX)
        })
        .max()
        .unwrap_or(0);
    u32::try_from(highest.saturating_add(1))
        .unwrap_or(u32::MAX)
        .min(i32::MAX as u32)
}

/// Whether a file name is one of our segments (`seg-<digits>.ts`).
pub fn is_segment_name(name: &str) -> bool {
    name.strip_prefix("seg-")
        .and_then(|rest| rest.strip_suffix(".ts"))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// `YYYY-MM-DDTHH-MM-SSZ` in UTC; clamped to 1970 and the year 9999 (see
/// [`crate::utc`]), so stamps keep their length and sort in time order.
pub fn utc_stamp(t: SystemTime) -> String {
    const STAMP: &[FormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]-[minute]-[second]Z");
    crate::utc::format(t, STAMP)
}

fn sanitize(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "show".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn stamps_are_utc_and_fat_safe() {
        // 2026-11-25T22:10:03Z, computed independently with `date -u -d @1795644603`.
        assert_eq!(utc_stamp(at(1_795_644_603)), "2026-11-25T22-10-03Z");
        assert_eq!(utc_stamp(at(0)), "1970-01-01T00-00-00Z");
        // Leap day of a year divisible by 400, and the day after.
        assert_eq!(utc_stamp(at(951_782_400)), "2000-02-29T00-00-00Z");
        assert_eq!(utc_stamp(at(951_868_800)), "2000-03-01T00-00-00Z");
        // 2100 is no leap year: 28 February is followed by 1 March.
        assert_eq!(utc_stamp(at(4_107_456_000)), "2100-02-28T00-00-00Z");
        assert_eq!(utc_stamp(at(4_107_542_400)), "2100-03-01T00-00-00Z");
        // Leap day of an ordinary leap year.
        assert_eq!(utc_stamp(at(1_709_164_800)), "2024-02-29T00-00-00Z");
        // End of a year and the first second of the next.
        assert_eq!(utc_stamp(at(1_798_761_599)), "2026-12-31T23-59-59Z");
        assert_eq!(utc_stamp(at(1_798_761_600)), "2027-01-01T00-00-00Z");
        // A clock past what can be named stays on the last name, same length.
        assert_eq!(utc_stamp(at(i64::MAX as u64)), "9999-12-31T23-59-59Z");
        assert_eq!(utc_stamp(at(253_402_300_800)), "9999-12-31T23-59-59Z");
        assert_eq!(
            utc_stamp(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00-00-00Z"
        );
    }

    #[test]
    fn show_dir_and_pattern() {
        let dir = show_dir(Path::new("/rec"), at(1_795_644_603), &show_id(1));
        assert_eq!(dir, Path::new("/rec/2026-11-25T22-10-03Z_show-0001"));
        assert_eq!(
            segment_pattern(&dir),
            "/rec/2026-11-25T22-10-03Z_show-0001/seg-%05d.ts"
        );
    }

    #[test]
    fn percent_in_the_folder_is_data() {
        let dir = Path::new("/tmp/rec%s%d/show");
        assert_eq!(segment_pattern(dir), "/tmp/rec%%s%%d/show/seg-%05d.ts");
        // The only conversion left is the segment number's.
        let pattern = segment_pattern(Path::new("/a%/b%%c"));
        assert_eq!(pattern.replace("%%", "").matches('%').count(), 1);
    }

    #[test]
    fn numbering_continues_after_the_highest_segment() {
        assert_eq!(next_segment_index([]), 1);
        assert_eq!(next_segment_index(["notes.txt", "sales.jsonl"]), 1);
        assert_eq!(
            next_segment_index(["seg-00002.ts", "seg-00010.ts", "seg-00003.ts"]),
            11
        );
        assert_eq!(next_segment_index(["seg-123456.ts"]), 123_457);
        // A planted name cannot overflow splitmuxsink's int.
        assert_eq!(
            next_segment_index(["seg-99999999999999999999999.ts"]),
            i32::MAX as u32
        );
    }

    #[test]
    fn hostile_show_ids_stay_inside_root() {
        let dir = show_dir(Path::new("/rec"), at(0), "../../etc:x");
        assert_eq!(dir.parent(), Some(Path::new("/rec")));
        assert!(!dir.to_string_lossy().contains(':'));
        let empty = show_dir(Path::new("/rec"), at(0), "");
        assert_eq!(empty, Path::new("/rec/1970-01-01T00-00-00Z_show"));
    }

    #[test]
    fn segment_names() {
        assert!(is_segment_name("seg-00001.ts"));
        assert!(is_segment_name("seg-123456.ts"));
        assert!(!is_segment_name("seg-.ts"));
        assert!(!is_segment_name("seg-0001.mp4"));
        assert!(!is_segment_name("notes.txt"));
        assert!(!is_segment_name("seg-00x1.ts"));
    }

    proptest! {
        #[test]
        fn stamps_sort_like_time(a in 0u64..8_000_000_000, b in 0u64..8_000_000_000) {
            let (sa, sb) = (utc_stamp(at(a)), utc_stamp(at(b)));
            prop_assert_eq!(sa.len(), 20);
            prop_assert!(!sa.contains(':'));
            prop_assert_eq!(a.cmp(&b), sa.cmp(&sb));
        }

        #[test]
        fn any_id_gives_one_child_of_root(id in ".*") {
            let dir = show_dir(Path::new("/rec"), at(0), &id);
            prop_assert_eq!(dir.parent(), Some(Path::new("/rec")));
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "-_Z".contains(c)));
        }
    }
}
