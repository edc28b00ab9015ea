//! Reading a TOML file into a [`Config`], and the one entry point the CLI and
//! the daemon share ([`check_file`]).
//!
//! A syntax error, an unknown key or a value of the wrong type becomes a
//! [`Problem`] naming the key path and line; then stream keys are read and
//! every value is validated, and those problems get lines too.

use std::path::Path;

use super::keys::resolve_keys;
use super::problem::Problem;
use super::schema::Config;
use super::spans;
use super::validate::validate;

/// Parses `src` into a [`Config`]; defaults fill every key not written.
/// Does not validate values; see [`check_str`].
pub fn load_str(src: &str) -> Result<Config, Vec<Problem>> {
    toml::from_str::<Config>(src).map_err(|e| vec![from_toml_error(src, &e)])
}

/// Turns a toml error into a problem naming the key it is about.
pub(crate) fn from_toml_error(src: &str, e: &toml::de::Error) -> Problem {
    let message = plain_types(e.message().trim());
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
    let mut config = load_str(src)?;
    // Validate what the file says before the key files are read into `key`:
    // otherwise every `key_file` would look like "both key and key_file".
    let mut problems = validate(&config);
    problems.extend(resolve_keys(&mut config, config_dir));
    if problems.is_empty() {
        return Ok(config);
    }
    let entries = spans::index(src);
    for p in &mut problems {
        if p.line.is_none() {
            p.line = spans::line_in(src, &entries, &p.path);
        }
    }
    // In file order, so the list reads top to bottom like the file.
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Err(problems)
}

/// The CLI's `check-config` and the daemon's start: read `path`, load, read
/// key files (relative to the file's folder), validate.
pub fn check_file(path: &Path) -> Result<Config, Vec<Problem>> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        )]
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    check_str(&src, dir)
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
