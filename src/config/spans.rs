//! Where each key of a TOML source is written: key paths to lines and back.
//!
//! `toml::de::DeTable` keeps the byte span of every key and value. We flatten
//! it into a list of entries (`video.width`, `destinations[1].url`, ...) so a
//! deserialization error's span can be named by key path, and a validation
//! problem's key path can be given a line.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One key (or array element) written in the source.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub path: String,
    /// Span of the key itself; for array elements, the element's span.
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// Every key written in `src`, as far as it parses (syntax errors are skipped,
/// not reported: the loader reports them).
pub(crate) fn index(src: &str) -> Vec<Entry> {
    let (root, _errors) = DeTable::parse_recoverable(src);
    let mut out = Vec::new();
    walk_table(root.get_ref(), "", &mut out);
    out
}

/// `prefix.key`, or `key` at the top.
pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Entry>) {
    for (key, value) in table.iter() {
        let path = join(prefix, key.get_ref());
        out.push(Entry {
            path: path.clone(),
            key: key.span(),
            value: value.span(),
        });
        walk_value(value, &path, out);
    }
}

fn walk_value(value: &Spanned<DeValue<'_>>, path: &str, out: &mut Vec<Entry>) {
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                out.push(Entry {
                    path: item_path.clone(),
                    key: item.span(),
                    value: item.span(),
                });
                walk_value(item, &item_path, out);
            }
        }
        _ => {}
    }
}

/// 1-based line of byte `offset` in `src` (offsets past the end count as the last line).
pub fn line_at(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

/// Where each line of a source starts, for byte offset -> line in O(log n).
#[derive(Debug, Clone)]
pub(crate) struct Lines {
    newlines: Vec<usize>,
}

impl Lines {
    pub fn new(src: &str) -> Self {
        Lines {
            newlines: src
                .bytes()
                .enumerate()
                .filter_map(|(i, b)| (b == b'\n').then_some(i))
                .collect(),
        }
    }

    /// The same as [`line_at`]: 1-based, offsets past the end on the last line.
    pub fn line_at(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }
}

/// The line where `path` is written in `src`. When the key itself is not
/// written (a default is in force), the line of its nearest written parent
/// (`destinations[1]` for `destinations[1].key_file`), so the technician is at
/// least sent to the right table. `None` if nothing of the path is written.
pub fn line_of(src: &str, path: &str) -> Option<usize> {
    line_in(src, &index(src), path)
}

pub(crate) fn line_in(src: &str, entries: &[Entry], path: &str) -> Option<usize> {
    let mut wanted = path;
    loop {
        if let Some(e) = entries.iter().find(|e| e.path == wanted) {
            return Some(line_at(src, e.key.start));
        }
        wanted = parent(wanted)?;
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> None.
pub(crate) fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// The deepest key whose key or value span holds `span`: names the key a
/// deserialization error points at.
pub(crate) fn path_at(entries: &[Entry], span: &Range<usize>) -> Option<String> {
    let holds = |r: &Range<usize>| r.start <= span.start && span.end <= r.end;
    entries
        .iter()
        .filter(|e| holds(&e.key) || holds(&e.value))
        .min_by_key(|e| {
            let k = if holds(&e.key) {
                e.key.len()
            } else {
                usize::MAX
            };
            let v = if holds(&e.value) {
                e.value.len()
            } else {
                usize::MAX
            };
            // Ties: an array's span is its first element's; name the element.
            (k.min(v), std::cmp::Reverse(e.path.len()))
        })
        .map(|e| e.path.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "device_id = \"a\"\n\n[video]\nwidth = 1280\n\n[[destinations]]\nname = \"x\"\n\n[[destinations]]\nname = \"y\"\nurl = \"rtmp://h/app\"\n";

    #[test]
    fn finds_lines_of_written_keys() {
        assert_eq!(line_of(SRC, "device_id"), Some(1));
        assert_eq!(line_of(SRC, "video.width"), Some(4));
        assert_eq!(line_of(SRC, "destinations[1].url"), Some(11));
        assert_eq!(line_of(SRC, "destinations[0].name"), Some(7));
    }

    #[test]
    fn falls_back_to_the_nearest_written_parent() {
        assert_eq!(line_of(SRC, "video.height"), Some(3));
        assert_eq!(line_of(SRC, "mqtt.url"), None);
        // The array element, not the first `[[destinations]]` header.
        assert_eq!(
            line_of(SRC, "destinations[1].key_file"),
            line_of(SRC, "destinations[1]")
        );
    }

    #[test]
    fn names_the_key_at_a_span() {
        let entries = index(SRC);
        let at = SRC.find("1280").unwrap();
        assert_eq!(
            path_at(&entries, &(at..at + 4)).as_deref(),
            Some("video.width")
        );
        let at = SRC.find("rtmp").unwrap();
        assert_eq!(
            path_at(&entries, &(at..at + 3)).as_deref(),
            Some("destinations[1].url")
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Blank and comment lines before the keys shift their lines exactly.
            #[test]
            fn line_of_follows_the_key(pad in proptest::collection::vec("(# [a-z ]{0,8})?", 0..6),
                                       gap in proptest::collection::vec("(# [a-z ]{0,8})?", 0..6)) {
                let mut lines: Vec<String> = pad.clone();
                lines.push("[video]".into());
                lines.extend(gap.iter().cloned());
                lines.push("width = 640".into());
                let src = lines.join("\n");
                prop_assert_eq!(line_of(&src, "video"), Some(pad.len() + 1));
                prop_assert_eq!(line_of(&src, "video.width"), Some(lines.len()));
                let at = src.find("640").unwrap_or_default();
                prop_assert_eq!(path_at(&index(&src), &(at..at + 3)), Some("video.width".to_string()));
            }
        }
    }

    #[test]
    fn line_at_counts_from_one() {
        assert_eq!(line_at("a\nb\n", 0), 1);
        assert_eq!(line_at("a\nb\n", 2), 2);
        assert_eq!(line_at("a\nb\n", 99), 3);
    }
}
