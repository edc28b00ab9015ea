//! The local recording when the disk misbehaves mid-show, and config paths
//! that hold a `%`, against the real `farmcast` binary: the test camera and
//! tone (320x240, x264 ultrafast), sim buttons, no destination (the show is
//! on air without one), 10 s segments (the shortest `recording.segment_s`).
//!
//! What a farmer must be able to count on: a recorder that fails (its folder
//! vanishes, a USB disk is pulled and plugged in again) comes back in the
//! SAME show folder, numbers on after the segments already there, and the disk
//! budget never deletes a segment of the show on air, even when the budget is
//! so tight that it runs at every segment. Everything is judged on the disk
//! (folder names, segment files, ffmpeg decoding them) and in the daemon's
//! log; nothing asserts how fast anything is.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::config::TestConfig;
use common::farmcast::check_config;
use common::ffprobe::{codec_names, decode_errors};
use common::{require, serial, wait_until, Farmcast};

/// Long enough for a segment to close, a failure to be noticed and the 5 s
/// recorder retry, with room for a loaded two-core machine.
const WAIT: Duration = Duration::from_secs(40);

/// The harness config with 10 s segments and `edit` applied to its table.
fn daemon_toml(tc: &TestConfig, edit: impl FnOnce(&mut toml::Table)) -> String {
    let mut t: toml::Table = toml::from_str(&tc.toml()).expect("harness config is TOML");
    if let Some(toml::Value::Table(rec)) = t.get_mut("recording") {
        rec.insert("segment_s".into(), toml::Value::Integer(10));
    }
    edit(&mut t);
    toml::to_string(&t).expect("serialise daemon config")
}

fn set(t: &mut toml::Table, table: &str, key: &str, value: toml::Value) {
    if let Some(toml::Value::Table(tab)) = t.get_mut(table) {
        tab.insert(key.into(), value);
    }
}

/// The show folders under `root`, by name.
fn show_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `seg-N.ts` files of a show folder: number → (path, size).
fn segments(dir: &Path) -> BTreeMap<u32, (PathBuf, u64)> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name
                        .strip_prefix("seg-")?
                        .strip_suffix(".ts")?
                        .parse()
                        .ok()?;
                    let size = e.metadata().ok()?.len();
                    Some((n, (e.path(), size)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for the live show's folder (`*_show-0001`) to hold segment `n`
/// (so segment `n - 1` is closed); returns the folder.
fn wait_for_segment(daemon: &Farmcast, root: &Path, n: u32) -> PathBuf {
    let mut found = None;
    let ok = wait_until(WAIT, || {
        found = show_dirs(root)
            .into_iter()
            .find(|d| d.ends_with("_show-0001"))
            .map(|d| root.join(d))
            .filter(|d| segments(d).contains_key(&n));
        found.is_some()
    });
    assert!(
        ok,
        "no segment {n} of show-0001 under {}: {:?}\n{}",
        root.display(),
        show_dirs(root),
        daemon.log()
    );
    found.unwrap_or_default()
}

fn wait_for_log(daemon: &Farmcast, needle: &str) {
    assert!(
        wait_until(WAIT, || daemon.log().contains(needle)),
        "the daemon never logged {needle:?}:\n{}",
        daemon.log()
    );
}

/// Every segment plays: H.264 video, and ffmpeg decodes it without an error.
fn assert_segments_decode(segs: &BTreeMap<u32, (PathBuf, u64)>) {
    for (path, _) in segs.values() {
        let codecs = codec_names(path);
        assert!(
            codecs.iter().any(|(t, c)| t == "video" && c == "h264"),
            "{}: {codecs:?}",
            path.display()
        );
        let errors = decode_errors(path);
        assert!(errors.is_empty(), "{}: {errors}", path.display());
    }
}

/// A USB disk pulled and plugged in again mid-show, with a budget so tight
/// that `enforce` runs (and finds the recordings over budget) at every
/// segment: the recorder comes back in the same folder, numbers on, and no
/// segment of the live show is ever deleted. Old code restarted into a second
/// folder, and the budget then deleted the first one's segments as a past show's.
#[test]
fn a_recorder_that_loses_its_disk_comes_back_in_the_same_folder_and_keeps_every_segment() {
    let _g = serial();
    let tc = TestConfig::new();
    let root = tc.recording_dir();
    // A past show: the budget must delete it, which shows that it ran.
    let past = root.join("2000-01-01T00-00-00Z_show-0042");
    std::fs::create_dir_all(&past).unwrap();
    std::fs::write(past.join("seg-00001.ts"), vec![0u8; 4096]).unwrap();
    // 1 MB for all recordings (the least accepted): over budget from the second segment.
    let toml = daemon_toml(&tc, |t| {
        set(t, "recording", "max_gb", toml::Value::Float(0.001));
    });
    let mut daemon = Farmcast::start(&toml);

    let show = wait_for_segment(&daemon, &root, 2);
    let name = show.file_name().unwrap().to_string_lossy().into_owned();
    let first_size = segments(&show)[&1].1;
    assert!(first_size > 0, "segment 1 is empty");
    assert!(
        wait_until(WAIT, || !past.exists()),
        "the budget never removed the past show: {:?}\n{}",
        show_dirs(&root),
        daemon.log()
    );

    // The disk goes away: the next segment cannot be opened.
    let away = root.with_file_name("unplugged");
    std::fs::rename(&show, &away).unwrap();
    wait_for_log(&daemon, "recorder failed");
    // ... and comes back with the show's segments, before the 5 s retry.
    std::fs::rename(&away, &show).unwrap();
    let before = segments(&show);
    let highest_before = *before.keys().last().unwrap();

    // The recorder starts again and closes a segment, so the budget runs
    // again while the show's folder is full of segments. (Wherever it
    // records: a second folder is the fault this test is about.)
    let ok = wait_until(WAIT, || {
        segments(&show).contains_key(&(highest_before + 2))
            || show_dirs(&root)
                .iter()
                .filter(|d| **d != name)
                .any(|d| segments(&root.join(d)).len() >= 2)
    });
    assert!(ok, "the recorder never came back:\n{}", daemon.log());
    // One more pass of the budget after that segment closed.
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.is_running(), "the daemon died:\n{}", daemon.log());

    // Judged while the show is on air: once it ends it is a past show, and
    // this budget (1 kB) keeps none.
    assert_eq!(
        show_dirs(&root),
        vec![name.clone()],
        "the restarted recorder must write in the show's one folder\n{}",
        daemon.log()
    );
    let mut after = segments(&show);
    let numbers: Vec<u32> = after.keys().copied().collect();
    let want: Vec<u32> = (1..=*numbers.last().unwrap()).collect();
    assert_eq!(
        numbers,
        want,
        "a segment of the show on air went missing\n{}",
        daemon.log()
    );
    assert!(
        numbers.len() > before.len(),
        "nothing recorded after the restart: {numbers:?}"
    );
    for (n, (_, size)) in &before {
        if *n < highest_before {
            assert_eq!(after[n].1, *size, "segment {n} was overwritten");
        }
    }
    // The last one is still being written.
    after.pop_last();
    assert_segments_decode(&after);
    daemon.stop();
    let log = daemon.log();
    assert!(
        log.contains("recording again in the same show folder")
            && log.contains(&name)
            && log.contains("over budget"),
        "the log says the recorder came back in the show's folder, and that \
         the show alone is over budget:\n{log}"
    );
}

/// The show folder deleted by hand mid-show: the recorder comes back under
/// the same name (old code: a second folder with another time stamp).
#[test]
fn a_deleted_show_folder_is_recreated_under_the_same_name() {
    let _g = serial();
    let tc = TestConfig::new();
    let root = tc.recording_dir();
    let mut daemon = Farmcast::start(&daemon_toml(&tc, |_| {}));

    let show = wait_for_segment(&daemon, &root, 2);
    let name = show.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::remove_dir_all(&show).unwrap();
    wait_for_log(&daemon, "recorder failed");

    // Recording again somewhere: wherever it is, it must be the same folder.
    assert!(
        wait_until(WAIT, || show_dirs(&root)
            .iter()
            .any(|d| !segments(&root.join(d)).is_empty())),
        "the recorder never came back:\n{}",
        daemon.log()
    );
    assert_eq!(show_dirs(&root), vec![name.clone()], "{}", daemon.log());
    // A whole segment there, then stop.
    let first_new = *segments(&show).keys().next().unwrap();
    wait_for_segment(&daemon, &root, first_new + 1);
    assert!(daemon.is_running(), "the daemon died:\n{}", daemon.log());
    daemon.stop();

    assert_eq!(show_dirs(&root), vec![name.clone()]);
    assert_segments_decode(&segments(&show));
    let log = daemon.log();
    assert!(
        log.contains("recorder failed")
            && log.contains("recording again in the same show folder")
            && log.contains(&name),
        "the log says what happened:\n{log}"
    );
}

/// `recording.dir`, the `file:` camera and the slate image, each in a folder
/// whose name holds `%s` and `%d`: `check-config` takes them, the show goes
/// live, and the segments land under the literal folder. Old code handed the
/// recording folder to splitmuxsink as a printf format: `%s` crashed the
/// daemon at go-live.
#[test]
fn percent_signs_in_config_paths_are_plain_characters() {
    let _g = serial();
    let tc = TestConfig::new();
    let odd = tc.dir.path().join("farm%s%d%n%%x");
    std::fs::create_dir_all(&odd).unwrap();
    let clip = odd.join("clip%s%d.y4m");
    let slate = odd.join("slate%s%d.png");
    let ffmpeg = require("ffmpeg", "ffmpeg");
    for (args, out) in [
        (
            "-f lavfi -i testsrc2=size=320x240:rate=30 -t 2 -pix_fmt yuv420p",
            &clip,
        ),
        ("-f lavfi -i color=c=red:size=64x48 -frames:v 1", &slate),
    ] {
        let status = std::process::Command::new(&ffmpeg)
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
            .args(args.split(' '))
            .arg(out)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg could not write {}", out.display());
    }
    let root = odd.join("rec%s%d");
    let toml = daemon_toml(&tc, |t| {
        let s = |p: &Path| toml::Value::String(p.display().to_string());
        set(t, "recording", "dir", s(&root));
        set(
            t,
            "video",
            "source",
            toml::Value::String(format!("file:{}", clip.display())),
        );
        set(t, "live", "slate_image", s(&slate));
    });

    let file = tc.dir.path().join("percent.toml");
    std::fs::write(&file, &toml).unwrap();
    let out = check_config(&file);
    assert!(
        out.status.success(),
        "check-config refused paths with %: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut daemon = Farmcast::start(&toml);
    let show = wait_for_segment(&daemon, &root, 1);
    // Let the first segment grow a little, then end the show cleanly.
    std::thread::sleep(Duration::from_secs(3));
    assert!(daemon.is_running(), "the daemon died:\n{}", daemon.log());
    let status = daemon.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "the daemon did not stop cleanly: {status:?}\n{}",
        daemon.log()
    );
    assert_eq!(show.parent(), Some(root.as_path()));
    // Nothing was written beside the literal folder (a `%d` made a folder
    // the budget never saw).
    let mut beside: Vec<String> = std::fs::read_dir(&odd)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        vec!["clip%s%d.y4m", "rec%s%d", "slate%s%d.png"],
        "{}",
        daemon.log()
    );
    let segs = segments(&show);
    assert!(!segs.is_empty());
    assert_segments_decode(&segs);
}
