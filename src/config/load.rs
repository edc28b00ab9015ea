//! Reading TOML sources into a [`Config`], and the one entry point the CLI,
//! the daemon and fleet pushes share ([`check_sources`]).
//!
//! Each source is parsed into a table (a syntax error is one problem, with its
//! line); the sources are merged; the merged table is walked against the
//! schema ([`super::walk`]), collecting every unknown key, wrong type, word
//! that is none of its key's choices and number out of range at once; then
//! stream keys are read and every value is validated. All of it is linear in the size of the sources: lines come from
//! one index per source, never from re-scanning a source per problem.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::keys::{resolve_keys, short_key_warnings};
use super::layers::merge;
use super::problem::Problem;
use super::schema::Config;
use super::spans;
use super::validate::validate;
use super::walk;

/// At most this many problems are listed; the rest are counted in one more
/// line. A technician fixes the first ones; a hostile push cannot make the
/// answer (or the log) large.
pub const MAX_PROBLEMS: usize = 50;

/// How far [`check_sources`] goes.
#[derive(Debug, Clone, Copy)]
pub enum Depth<'a> {
    /// Keys, types, ranges and choice words: what serde and the run-time
    /// arithmetic need.
    Load,
    /// And every value check ([`validate`]), but no key files read.
    Values,
    /// And the stream key files, relative to this folder.
    Full(&'a Path),
}

/// What checking found. `config` is `Some` only when `problems` is empty.
#[derive(Debug, Default)]
pub struct Report {
    pub config: Option<Config>,
    pub problems: Vec<Problem>,
    /// Settings that are valid but likely not meant (a table switched off,
    /// unsigned pushes allowed); they never make the check fail.
    pub warnings: Vec<Problem>,
}

impl Report {
    pub fn into_result(self) -> Result<Config, Vec<Problem>> {
        match self.config {
            Some(c) if self.problems.is_empty() => Ok(c),
            _ => Err(self.problems),
        }
    }
}

/// Checks `sources` merged in order (defaults < the first < ... < the last).
/// Each problem names its key path and the line in the last source that
/// writes it, prefixed "in layer N:" when that is not the first source.
pub fn check_sources(sources: &[&str], depth: Depth<'_>) -> Report {
    let mut report = Report::default();
    let mut merged = toml::Table::new();
    for (n, src) in sources.iter().enumerate() {
        match toml::from_str::<toml::Table>(src) {
            Ok(table) => merge(&mut merged, &table),
            Err(e) => report.problems.push(label(from_toml_error(src, &e), n)),
        }
    }
    if !report.problems.is_empty() {
        report.problems = finish(report.problems);
        return report;
    }
    let locator = Locator::new(sources);
    report.warnings = walk::warnings(&merged)
        .into_iter()
        .map(|p| locator.locate(p))
        .collect();
    let mut problems = walk::clean(&mut merged);
    let mut config = match toml::Value::Table(merged).try_into::<Config>() {
        Ok(c) => c,
        Err(e) => {
            // The walk should leave nothing serde refuses; if it does, say so
            // rather than run defaults.
            problems.push(Problem::new("", crate::excerpt::excerpt(e.message())));
            report.problems = finish(problems.into_iter().map(|p| locator.locate(p)).collect());
            return report;
        }
    };
    if !matches!(depth, Depth::Load) {
        // One problem per key: a value the walk already refused (and
        // replaced) is not judged again.
        let reported: HashSet<String> = problems.iter().map(|p| p.path.clone()).collect();
        // Validate what the file says before the key files are read into
        // `key`: otherwise every `key_file` would look like "both key and key_file".
        let mut more = validate(&config);
        if let Depth::Full(dir) = depth {
            more.extend(resolve_keys(&mut config, dir));
        }
        // Inline keys, and with `Full` the key files' too.
        report.warnings.extend(
            short_key_warnings(&config)
                .into_iter()
                .map(|p| locator.locate(p)),
        );
        // Nor is a check across keys that names a refused key ("pin 27 is
        // already used by gpio.go_live_pin" after go_live_pin = 300 was
        // clamped to 27): that key must change anyway.
        let names_reported = |p: &Problem| {
            p.message
                .split(|c: char| !(c.is_alphanumeric() || "._[]".contains(c)))
                .any(|word| reported.contains(word.trim_end_matches('.')))
        };
        problems.extend(
            more.into_iter()
                .filter(|p| !reported.contains(&p.path) && !names_reported(p)),
        );
    }
    if problems.is_empty() {
        report.config = Some(config);
    } else {
        report.problems = finish(problems.into_iter().map(|p| locator.locate(p)).collect());
    }
    report
}

/// Sorted by source, then line (the list reads top to bottom like the
/// files), cut to [`MAX_PROBLEMS`], paths cut to an excerpt.
fn finish(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by_key(|p| {
        (
            p.message.starts_with("in layer "),
            p.line.unwrap_or(usize::MAX),
        )
    });
    let total = problems.len();
    problems.truncate(MAX_PROBLEMS);
    for p in &mut problems {
        if p.path.chars().count() > 96 {
            p.path = crate::excerpt::excerpt_n(&p.path, 96);
        }
    }
    if total > MAX_PROBLEMS {
        problems.push(Problem::new(
            "",
            format!("and {} more problem(s) not listed", total - MAX_PROBLEMS),
        ));
    }
    problems
}

/// Lines of key paths in each source, indexed once.
struct Locator {
    sources: Vec<Source>,
}

struct Source {
    keys: HashMap<String, usize>,
    lines: spans::Lines,
}

impl Locator {
    fn new(sources: &[&str]) -> Self {
        let sources = sources
            .iter()
            .map(|src| Source {
                keys: spans::index(src)
                    .into_iter()
                    .map(|e| (e.path, e.key.start))
                    .collect(),
                lines: spans::Lines::new(src),
            })
            .collect();
        Locator { sources }
    }

    /// Gives `p` the line in the last source that writes its key (that one
    /// won), or else its nearest written parent.
    fn locate(&self, mut p: Problem) -> Problem {
        let mut wanted = Some(p.path.as_str());
        while let Some(path) = wanted {
            if let Some((n, src)) = self
                .sources
                .iter()
                .enumerate()
                .rev()
                .find(|(_, s)| s.keys.contains_key(path))
            {
                p.line = src.keys.get(path).map(|&at| src.lines.line_at(at));
                return label(p, n);
            }
            wanted = spans::parent(path);
        }
        p
    }
}

pub(crate) fn label(mut p: Problem, source: usize) -> Problem {
    if source > 0 {
        p.message = format!("in layer {source}: {}", p.message);
    }
    p
}

/// Parses `src` into a [`Config`]; defaults fill every key not written.
/// Checks keys, types and ranges, not the other values; see [`check_str`].
pub fn load_str(src: &str) -> Result<Config, Vec<Problem>> {
    check_sources(&[src], Depth::Load).into_result()
}

/// Keys, types, ranges and every value check, without reading key files.
pub fn check_values(src: &str) -> Result<Config, Vec<Problem>> {
    check_sources(&[src], Depth::Values).into_result()
}

/// Turns a toml error into a problem naming the key it is about.
pub(crate) fn from_toml_error(src: &str, e: &toml::de::Error) -> Problem {
    // toml's messages may quote the text at fault: keep the echo short.
    let message = crate::excerpt::excerpt_n(&plain_types(e.message().trim()), 256);
    let Some(span) = e.span() else {
        return Problem::new("", message);
    };
    let entries = spans::index(src);
    let mut path = spans::path_at(&entries, &span).unwrap_or_default();
    // A missing field is reported on its table: name the field itself.
    if let Some(field) = missing_field(&message) {
        path = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
    }
    Problem::new(path, message).at_line(Some(spans::line_at(src, span.start)))
}

/// serde names Rust types (`expected u32`); a technician needs the TOML kind.
fn plain_types(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, plain) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        if let Some(rest) = m.strip_suffix(rust) {
            m = format!("{rest}{plain}");
        }
    }
    m
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Load, read key files (relative to `config_dir`) and validate. Every problem
/// found is returned, each with the line of its key where it is written.
pub fn check_str(src: &str, config_dir: &Path) -> Result<Config, Vec<Problem>> {
    check_sources(&[src], Depth::Full(config_dir)).into_result()
}

/// [`check_file`] with the warnings: what `check-config` prints.
pub fn check_file_report(path: &Path) -> Report {
    let src = match std::fs::read_to_string(path) {
        Ok(src) => src,
        Err(e) => {
            return Report {
                problems: vec![Problem::new(
                    "",
                    format!("cannot read {}: {e}", path.display()),
                )],
                ..Report::default()
            }
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    check_sources(&[&src], Depth::Full(dir))
}

/// The CLI's `check-config` and the daemon's start: read `path`, load, read
/// key files (relative to the file's folder), validate. Warnings are logged
/// (the daemon's log; the CLI prints them itself from [`check_file_report`]).
pub fn check_file(path: &Path) -> Result<Config, Vec<Problem>> {
    let report = check_file_report(path);
    for w in &report.warnings {
        tracing::warn!("{}", w.in_file(&path.display().to_string()));
    }
    report.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_problem(src: &str) -> Problem {
        let problems = load_str(src).expect_err("should not load");
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems.into_iter().next().unwrap()
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(load_str("").unwrap(), Config::default());
    }

    #[test]
    fn syntax_error_has_its_line() {
        let p = one_problem("device_id = \"a\"\n[video]\nwidth = = 3\n");
        assert_eq!(p.line, Some(3));
    }

    #[test]
    fn unclosed_string_has_its_line() {
        let p = one_problem("\n\ndevice_id = \"a\n");
        assert_eq!(p.line, Some(3));
    }

    #[test]
    fn unknown_key_names_path_and_line() {
        let p = one_problem("device_id = \"a\"\n\n[video]\nwidht = 1280\n");
        assert_eq!(p.path, "video.widht");
        assert_eq!(p.line, Some(4));
        assert!(
            p.message.contains("width"),
            "suggests valid keys: {}",
            p.message
        );
    }

    #[test]
    fn unknown_top_level_table() {
        let p = one_problem("[vidoe]\nwidth = 1\n");
        assert_eq!(p.path, "vidoe");
        assert_eq!(p.line, Some(1));
    }

    #[test]
    fn unknown_key_in_second_destination() {
        let src = "[[destinations]]\nname = \"a\"\nurl = \"rtmp://h/a\"\n\n[[destinations]]\nname = \"b\"\nurl = \"rtmp://h/a\"\nstream_key = \"x\"\n";
        let p = one_problem(src);
        assert_eq!(p.path, "destinations[1].stream_key");
        assert_eq!(p.line, Some(8));
    }

    #[test]
    fn wrong_type_names_path_and_line() {
        let p = one_problem("[video]\nsource = \"test\"\nwidth = \"1280\"\n");
        assert_eq!(p.path, "video.width");
        assert_eq!(p.line, Some(3));
        assert!(p.message.contains("whole number"), "{}", p.message);
    }

    #[test]
    fn out_of_range_integer_names_path() {
        let p = one_problem("[gpio]\ngo_live_pin = 300\n");
        assert_eq!(p.path, "gpio.go_live_pin");
        assert_eq!(p.line, Some(2));
    }

    #[test]
    fn missing_field_names_the_field() {
        let p = one_problem("[[destinations]]\nname = \"a\"\n");
        assert_eq!(p.path, "destinations[0].url");
        assert_eq!(p.line, Some(1));
    }

    #[test]
    fn missing_field_in_a_later_element() {
        let p = one_problem("device_id = \"a\"\n[[destinations]]\nname = \"a\"\nurl = \"rtmp://h/a\"\n[[destinations]]\nname = \"b\"\n");
        assert_eq!(p.path, "destinations[1].url");
        assert_eq!(p.line, Some(5));
    }

    #[test]
    fn validation_problems_carry_lines() {
        let src = "device_id = \"farm-01\"\n[video]\nsource = \"test\"\nwidth = 1281\n";
        let problems = check_str(src, Path::new(".")).expect_err("odd width");
        let p = problems.iter().find(|p| p.path == "video.width").unwrap();
        assert_eq!(p.line, Some(4));
    }

    #[test]
    fn inline_keys_never_show_in_debug_or_serialized_output() {
        let src =
            "[[destinations]]\nname = \"a\"\nurl = \"rtmp://h/live\"\nkey = \"live_9f8e7d\"\n";
        let c = load_str(src).unwrap();
        assert_eq!(
            c.destinations[0].key.as_ref().unwrap().expose(),
            "live_9f8e7d"
        );
        assert!(!format!("{c:?}").contains("live_9f8e7d"));
        assert!(!format!("{c:#?}").contains("live_9f8e7d"));
        assert!(!toml::to_string(&c).unwrap().contains("live_9f8e7d"));
    }

    #[test]
    fn unreadable_file_is_a_problem() {
        let problems = check_file(Path::new("/nonexistent/farmcast.toml")).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("cannot read"));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn random_text_never_panics(src in "\\PC{0,200}") {
                if let Err(problems) = check_str(&src, Path::new("/nonexistent")) {
                    let lines = src.lines().count().max(1) + 1;
                    for p in problems {
                        prop_assert!(p.line.is_none_or(|l| l >= 1 && l <= lines), "{p:?}");
                    }
                }
            }

            #[test]
            fn tomlish_text_never_panics(
                src in "(\\[\\[?[a-z_]{1,12}\\]\\]?\n|[a-z_.]{1,12} = (\"[^\"\n]{0,10}\"|[0-9]{1,6}|true|\\[1, 2\\])\n){0,12}"
            ) {
                let _ = check_str(&src, Path::new("/nonexistent"));
                let _ = spans::line_of(&src, "video.width");
            }
        }
    }
}

#[cfg(test)]
mod key_file_tests {
    use super::*;

    /// A destination with only a key_file must load, the key read from the file.
    #[test]
    fn key_file_alone_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "abc123\n").unwrap();
        let src = "[[destinations]]\nname = \"a\"\nurl = \"rtmp://h/live\"\nkey_file = \"k\"\n";
        let config = check_str(src, dir.path()).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(config.destinations[0].ingest_url(), "rtmp://h/live/abc123");
    }
}
