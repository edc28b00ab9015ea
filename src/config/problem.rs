//! One thing wrong with a configuration, in words a field technician can act on.
//!
//! Every problem names the key it is about with the same path syntax the file
//! uses (`video.width`, `destinations[1].url`) and, when the key is written in
//! the file, its 1-based line. The CLI prints one problem a line as
//! `FILE:LINE: key.path: message` by prefixing `FILE:` to the `Display` form.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path: `video.width`, `destinations[1].url`; empty when the problem is
    /// about the file as a whole (unreadable, syntax error before any key).
    pub path: String,
    /// 1-based line in the TOML source, when the key is written there.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }

    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    /// `FILE:LINE: key.path: message`, the form editors and CI logs link to.
    pub fn in_file<'a>(&'a self, file: &'a str) -> InFile<'a> {
        InFile {
            file,
            problem: self,
        }
    }
}

/// `LINE: key.path: message` (parts that are unknown are left out), so that
/// `format!("{file}:{problem}")` reads `FILE:LINE: key.path: message`.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}: ")?;
        } else {
            // Keeps `FILE:` followed by a space when there is no line.
            f.write_str(" ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// A problem displayed with the file it came from; see [`Problem::in_file`].
pub struct InFile<'a> {
    file: &'a str,
    problem: &'a Problem,
}

impl fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_file_line_path_message() {
        let p = Problem::new("video.width", "must be even").at_line(Some(7));
        assert_eq!(
            p.in_file("a.toml").to_string(),
            "a.toml:7: video.width: must be even"
        );
        assert_eq!(format!("a.toml:{p}"), "a.toml:7: video.width: must be even");
    }

    #[test]
    fn leaves_out_unknown_parts() {
        let p = Problem::new("", "cannot read the file");
        assert_eq!(
            p.in_file("a.toml").to_string(),
            "a.toml: cannot read the file"
        );
        let p = Problem::new("mqtt.url", "bad");
        assert_eq!(p.in_file("a.toml").to_string(), "a.toml: mqtt.url: bad");
    }
}
