//! Recordings kept on the box, and their disk budget.
//!
//! Layout: `recording.dir/<UTC stamp>_<show id>/seg-00001.ts`, ... one
//! directory per show ([`naming`]); splitmuxsink writes the segments, using
//! [`segment_pattern`] as its `location`. The budget ([`budget`]) is a pure
//! decision — which files of past shows to delete, oldest first — and
//! [`disk`] applies it: [`enforce`] at show start and after each segment,
//! [`disk_usage`] for status, both off the driver's loop; [`usage`] decides
//! when status measures again (it reads cached figures). The show folder is named once, when the show
//! starts; a recorder restarted mid-show writes into the same folder and
//! numbers on from its highest segment ([`next_segment_in`]), so the budget
//! always knows which folder is on air. The current show is never deleted from; when
//! it alone is over budget, [`CleanupReport::over_budget`] says so and the
//! stream keeps going.

pub mod budget;
pub mod disk;
pub mod naming;
pub mod usage;

pub use budget::{plan_cleanup, SegmentInfo};
pub use disk::{
    budget_bytes, disk_usage, enforce, free_space, min_free_bytes, next_segment_in, scan,
    CleanupReport,
};
pub use naming::{
    is_segment_name, next_segment_index, segment_pattern, show_dir, show_dir_name, show_id,
    utc_stamp, SEGMENT_PRINTF,
};

#[cfg(test)]
mod tests;
