//! What each destination's link delivered last time, kept across shows and
//! restarts in `<state_dir>/abr/links.json`: the box does not move, so the
//! link it had yesterday is the best guess for today (see [`super`]).
//!
//! ```json
//! { "version": 1,
//!   "destinations": { "youtube": { "kbps": 1180, "saved_unix": 1796000000 } } }
//! ```
//!
//! `kbps` is what the link carried, everything included (video, sound,
//! muxing): the rate it delivered while full, or the most it carried when it
//! never filled. The core decides what to remember and asks for the write
//! (`Work::SaveLinks`) at each show's end; the shell writes it off the loop,
//! atomically (temp file, fsync, rename), and reads it once at start.
//!
//! The file comes from a disk that may be corrupt, old or edited by hand: a
//! missing file is nothing remembered; an unreadable, oversized, malformed or
//! out-of-range one is ignored with one warning (entries out of range alone
//! are dropped), never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Kbit/s each destination's link delivered, by destination name.
pub type LinkRates = BTreeMap<String, u32>;

/// The file's format version.
const VERSION: u32 = 1;
/// A bigger file is not ours: read no further.
const MAX_BYTES: u64 = 64 * 1024;
/// More destinations than a box ever has.
const MAX_ENTRIES: usize = 64;
/// Longer names are not destination names.
const MAX_NAME: usize = 128;
/// Rates outside this say nothing about a link (10 Gbit/s is no farm's uplink).
const KBPS_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000_000;

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    destinations: BTreeMap<String, Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    kbps: u32,
    /// When it was measured (seconds since 1970), for the technician.
    #[serde(default)]
    saved_unix: u64,
}

/// Where the memory lives for a state folder.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join("abr").join("links.json")
}

/// The file's text for `rates`, saved at `wall`.
pub fn render(rates: &LinkRates, wall: SystemTime) -> String {
    let saved_unix = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let file = File {
        version: VERSION,
        destinations: rates
            .iter()
            .map(|(n, &kbps)| (n.clone(), Entry { kbps, saved_unix }))
            .collect(),
    };
    // A map of strings to numbers always encodes.
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

/// The rates in a file's text; why not, for the warning.
pub fn parse(text: &str) -> Result<LinkRates, String> {
    let file: File = serde_json::from_str(text).map_err(|e| format!("not a links file: {e}"))?;
    if file.version != VERSION {
        return Err(format!(
            "version {} (this build reads {VERSION})",
            file.version
        ));
    }
    if file.destinations.len() > MAX_ENTRIES {
        return Err(format!(
            "{} destinations (at most {MAX_ENTRIES})",
            file.destinations.len()
        ));
    }
    Ok(file
        .destinations
        .into_iter()
        .filter(|(n, e)| n.len() <= MAX_NAME && KBPS_RANGE.contains(&e.kbps))
        .map(|(n, e)| (n, e.kbps))
        .collect())
}

/// The rates remembered at `path`; the `String` is one warning for the log
/// when a file exists but could not be used (nothing is remembered then).
pub fn load(path: &Path) -> (LinkRates, Option<String>) {
    let warn = |why: String| {
        let why = crate::excerpt::excerpt(&why);
        Some(format!(
            "link memory {} ignored: {why}; every destination starts cautiously and ramps up",
            path.display()
        ))
    };
    let text = match read_capped(path) {
        Ok(None) => return (LinkRates::new(), None),
        Ok(Some(t)) => t,
        Err(e) => return (LinkRates::new(), warn(e)),
    };
    match parse(&text) {
        Ok(rates) => (rates, None),
        Err(why) => (LinkRates::new(), warn(why)),
    }
}

/// The file's text, `None` when there is none; an error when it cannot be
/// read, is not UTF-8 or is larger than [`MAX_BYTES`].
fn read_capped(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("larger than {MAX_BYTES} bytes"));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "not UTF-8".into())
}

/// Replaces the file at `path` with `rates`, atomically (a power cut leaves
/// the old memory or the new one, whole).
pub fn save(path: &Path, rates: &LinkRates, wall: SystemTime) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = render(rates, wall);
    crate::fleet::store::write_atomic(&crate::fleet::store::RealDisk, path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(pairs: &[(&str, u32)]) -> LinkRates {
        pairs.iter().map(|(n, k)| (n.to_string(), *k)).collect()
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let r = rates(&[("youtube", 1180), ("backup", 600)]);
        save(&path, &r, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(load(&path), (r, None));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["links.json"]);
    }

    #[test]
    fn a_missing_file_is_nothing_remembered_without_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(&path_in(dir.path())), (LinkRates::new(), None));
    }

    #[test]
    fn a_corrupt_or_hostile_file_is_ignored_with_one_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let big = format!(
            "{{\"version\":1,\"destinations\":{{\"a\":{{\"kbps\":1}}}},\"x\":\"{}\"}}",
            "x".repeat(70_000)
        );
        let many = format!(
            "{{\"version\":1,\"destinations\":{{{}}}}}",
            (0..100)
                .map(|i| format!("\"d{i}\":{{\"kbps\":1000}}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let cases: Vec<Vec<u8>> = vec![
            b"{\"version\":1,\"destinations\":{\"a\":{\"kbps\":12".to_vec(),
            b"\xff\xfe not text".to_vec(),
            b"{\"version\":2,\"destinations\":{}}".to_vec(),
            b"{\"version\":1,\"destinations\":{\"a\":{\"kbps\":-5}}}".to_vec(),
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
            big.into_bytes(),
            many.into_bytes(),
        ];
        for bytes in cases {
            std::fs::write(&path, &bytes).unwrap();
            let (r, warning) = load(&path);
            assert!(r.is_empty());
            let w = warning.expect("one warning");
            assert!(w.contains("ignored") && w.len() < 600, "{w}");
        }
    }

    #[test]
    fn entries_out_of_range_are_dropped_and_the_rest_kept() {
        let text = format!(
            "{{\"version\":1,\"destinations\":{{\"zero\":{{\"kbps\":0}},\"ok\":{{\"kbps\":900}},\"{}\":{{\"kbps\":900}},\"huge\":{{\"kbps\":4000000000}}}}}}",
            "n".repeat(200)
        );
        assert_eq!(parse(&text), Ok(rates(&[("ok", 900)])));
    }
}
