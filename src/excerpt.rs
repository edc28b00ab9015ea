//! Bounded echoes of text that came from outside the box.
//!
//! Targets, field names, product ids, command names, serde messages: anything
//! a broker client, a config file or a serial line wrote can be megabytes
//! long or full of control characters. Whatever the box echoes back (logs,
//! reports, events, command results) goes through [`excerpt`], so an answer
//! is bounded by the box, never by the attacker.

use std::fmt::Write as _;

/// The longest excerpt, in characters, before the "…" and the size note.
pub const EXCERPT_CHARS: usize = 64;

/// At most `max_chars` characters of `text`, control characters escaped
/// (`\n`, `\u{1b}`), and "… (N bytes)" appended when anything was cut, so a
/// reader knows the echo is partial and how large the original was.
pub fn excerpt_n(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(max_chars.min(text.len()) + 16);
    for (shown, c) in text.chars().enumerate() {
        if shown == max_chars {
            let _ = write!(out, "… ({} bytes)", text.len());
            return out;
        }
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`excerpt_n`] at the project's one length, [`EXCERPT_CHARS`].
pub fn excerpt(text: &str) -> String {
    excerpt_n(text, EXCERPT_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged() {
        assert_eq!(excerpt("farm-01"), "farm-01");
        assert_eq!(excerpt(""), "");
    }

    #[test]
    fn long_text_is_cut_and_says_its_size() {
        let long = "x".repeat(65_536);
        let e = excerpt(&long);
        assert!(e.starts_with(&"x".repeat(EXCERPT_CHARS)));
        assert!(e.ends_with("… (65536 bytes)"), "{e}");
        assert!(e.len() < 100);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(excerpt("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn multibyte_text_is_cut_on_a_character() {
        let e = excerpt_n("贵州猕猴桃", 2);
        assert!(e.starts_with("贵州…"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn any_input_gives_a_bounded_excerpt(s in ".{0,400}") {
            let e = excerpt(&s);
            // Escapes are at most 10 characters each (\u{10ffff}).
            proptest::prop_assert!(e.chars().count() <= EXCERPT_CHARS * 10 + 32);
        }
    }
}
