//! The disk budget, as a pure decision: which segment files to delete.
//!
//! Contract of [`plan_cleanup`]: given every segment on disk, the current show
//! (if one is recording), the budget for all recordings, the free space now and
//! the free space to keep, return the files to delete, oldest first. Only
//! segments of *past* shows are ever returned; they go oldest first (by
//! modification time, ties broken by path so the answer does not depend on the
//! order of the input) until both `total ≤ budget` and `free ≥ min_free` hold,
//! and no further. If deleting every past segment is not enough — the current
//! show alone is over budget, or the disk is filled by something else — all
//! past segments are returned and the caller reports `over_budget`; the show
//! keeps recording and streaming (a farmer's live sale matters more than the
//! local copy).

use std::path::PathBuf;
use std::time::SystemTime;

/// One segment file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    /// The show directory's name (see [`super::naming::show_dir_name`]).
    pub show: String,
    pub size_bytes: u64,
    pub modified: SystemTime,
}

/// Files to delete so that recordings fit `budget_bytes` and the disk keeps
/// `min_free_bytes` free; never a file of `current_show`. See the module doc.
pub fn plan_cleanup(
    segments: &[SegmentInfo],
    current_show: Option<&str>,
    budget_bytes: u64,
    free_bytes: u64,
    min_free_bytes: u64,
) -> Vec<PathBuf> {
    let total = segments
        .iter()
        .fold(0u64, |acc, s| acc.saturating_add(s.size_bytes));
    // Deleting a file lowers the total and raises the free space by its size,
    // so one figure — the larger shortfall — is what must be freed.
    let need = total
        .saturating_sub(budget_bytes)
        .max(min_free_bytes.saturating_sub(free_bytes));
    if need == 0 {
        return Vec::new();
    }

    let mut past: Vec<&SegmentInfo> = segments
        .iter()
        .filter(|s| Some(s.show.as_str()) != current_show)
        .collect();
    past.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then_with(|| a.path.cmp(&b.path))
    });

    let mut freed = 0u64;
    let mut out = Vec::new();
    for seg in past {
        if freed >= need {
            break;
        }
        freed = freed.saturating_add(seg.size_bytes);
        out.push(seg.path.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::time::{Duration, UNIX_EPOCH};

    fn seg(show: &str, n: u32, size: u64, mtime: u64) -> SegmentInfo {
        SegmentInfo {
            path: PathBuf::from(format!("/rec/{show}/seg-{n:05}.ts")),
            show: show.into(),
            size_bytes: size,
            modified: UNIX_EPOCH + Duration::from_secs(mtime),
        }
    }

    fn p(show: &str, n: u32) -> PathBuf {
        PathBuf::from(format!("/rec/{show}/seg-{n:05}.ts"))
    }

    #[test]
    fn under_budget_removes_nothing() {
        let segs = [seg("a", 1, 100, 1), seg("b", 1, 100, 2)];
        assert!(plan_cleanup(&segs, None, 200, 1_000, 500).is_empty());
        assert!(plan_cleanup(&[], Some("a"), 0, 0, 0).is_empty());
    }

    #[test]
    fn past_shows_go_oldest_first_and_no_further() {
        // Input deliberately out of order.
        let segs = [
            seg("b", 1, 100, 30),
            seg("a", 2, 100, 20),
            seg("a", 1, 100, 10),
            seg("c", 1, 100, 40),
        ];
        // Total 400, budget 250: 150 over, so two files go.
        assert_eq!(
            plan_cleanup(&segs, Some("c"), 250, 1_000_000, 0),
            vec![p("a", 1), p("a", 2)]
        );
    }

    #[test]
    fn current_show_is_never_touched_even_over_budget() {
        let segs = [
            seg("old", 1, 50, 1),
            seg("now", 1, 500, 2),
            seg("now", 2, 500, 3),
        ];
        // Even with everything gone but the current show, 1000 > 100: the plan
        // deletes all it may and stops.
        assert_eq!(
            plan_cleanup(&segs, Some("now"), 100, 0, 0),
            vec![p("old", 1)]
        );
    }

    #[test]
    fn min_free_drives_deletion_when_under_budget() {
        let segs = [
            seg("a", 1, 100, 1),
            seg("a", 2, 100, 2),
            seg("b", 1, 100, 3),
        ];
        // Within budget, but the disk has 50 free and we want 220: 170 to free.
        assert_eq!(
            plan_cleanup(&segs, Some("b"), 10_000, 50, 220),
            vec![p("a", 1), p("a", 2)]
        );
    }

    #[test]
    fn equal_mtimes_give_a_stable_order() {
        let segs = vec![seg("b", 1, 10, 5), seg("a", 2, 10, 5), seg("a", 1, 10, 5)];
        let mut rev = segs.clone();
        rev.reverse();
        let want = vec![p("a", 1), p("a", 2)];
        assert_eq!(plan_cleanup(&segs, None, 10, u64::MAX, 0), want);
        assert_eq!(plan_cleanup(&rev, None, 10, u64::MAX, 0), want);
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let segs = [seg("a", 1, u64::MAX, 1), seg("b", 1, u64::MAX, 2)];
        assert_eq!(
            plan_cleanup(&segs, Some("b"), 0, 0, u64::MAX),
            vec![p("a", 1)]
        );
    }

    fn arb_segments() -> impl Strategy<Value = Vec<SegmentInfo>> {
        prop::collection::vec((0usize..4, 0u64..1_000, 0u64..50), 0..30).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (show, size, mtime))| seg(&format!("show{show}"), i as u32, size, mtime))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn plan_is_safe_and_sufficient(
            segs in arb_segments(),
            current in prop::option::of(0usize..5),
            budget in 0u64..20_000,
            free in 0u64..5_000,
            min_free in 0u64..5_000,
        ) {
            let current = current.map(|c| format!("show{c}"));
            let plan = plan_cleanup(&segs, current.as_deref(), budget, free, min_free);
            let removed: HashSet<&PathBuf> = plan.iter().collect();
            prop_assert_eq!(removed.len(), plan.len(), "a file listed twice");

            let mut freed = 0u64;
            for s in &segs {
                if removed.contains(&s.path) {
                    prop_assert!(Some(s.show.as_str()) != current.as_deref(),
                        "current show's file planned for removal: {:?}", s.path);
                    freed += s.size_bytes;
                }
            }
            let total: u64 = segs.iter().map(|s| s.size_bytes).sum();
            let met = total - freed <= budget && free + freed >= min_free;
            let only_current_left = segs.iter().all(|s| {
                removed.contains(&s.path) || Some(s.show.as_str()) == current.as_deref()
            });
            prop_assert!(met || only_current_left);

            // Nothing is removed that was not needed: without the last file
            // the goal would not have been met.
            if let Some(last) = plan.last() {
                let last_size = segs.iter().find(|s| &s.path == last).map_or(0, |s| s.size_bytes);
                let before = freed - last_size;
                prop_assert!(!(total - before <= budget && free + before >= min_free));
            }

            // Oldest first.
            let mtimes: Vec<_> = plan.iter()
                .filter_map(|p| segs.iter().find(|s| &s.path == p).map(|s| s.modified))
                .collect();
            prop_assert!(mtimes.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
