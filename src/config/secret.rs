//! A string that must never reach a log, an MQTT payload or `Debug` output.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it (the ingest URL).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Only text is a secret. Anything else (a bare `key = 123456`, a table) is
/// refused with a message that never carries the value: serde's own
/// "invalid type: integer `123456`" would print the key in `check-config`
/// output and in a rejected push's report. A number is not taken as text
/// either: TOML renders `0x1F`, `1_000` or `+5` differently from how it was
/// written, so the box would send a key that is not the one in the file.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

const NOT_TEXT: &str =
    "a secret must be text in quotes (key = \"...\"), or kept in its file (key_file)";

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("text in quotes")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(serde::de::Error::custom(NOT_TEXT))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(serde::de::Error::custom(NOT_TEXT))
    }
}

/// Serialized redacted: a config echoed anywhere (status, `probe --json`) never carries it.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str("***")
    }
}

/// Hides every given secret in `text`, in whatever encoding it appears: as
/// written, percent-encoded (either hex case, fully or partly, as `srt://`
/// query values and URI parsers write it), form-encoded (`+` for a space),
/// percent-decoded, and escaped as `Debug` and JSON escape `"` and `\\`.
/// Each occurrence becomes `***`. For error texts of GStreamer elements that
/// quote the URL they failed on, and anything else that may carry an ingest
/// URL.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        needles.push(s.as_bytes().to_vec());
        let decoded = percent_decode(s);
        if !decoded.is_empty() && decoded != s.as_bytes() {
            needles.push(decoded);
        }
    }
    if needles.is_empty() {
        return text.to_string();
    }
    // Longest first, so a secret that contains another is hidden whole.
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = needles.iter().find_map(|n| match_at(bytes, i, n)) {
            out.extend_from_slice(b"***");
            i += len;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // A match can start or end inside a multi-byte character only when the
    // secret itself was cut there, which a `&str` secret never is; lossy is
    // a guard, not a path.
    String::from_utf8_lossy(&out).into_owned()
}

/// The length of the longest text at `text[start..]` that spells `secret` in
/// any of the encodings [`redact`] knows, or `None`. Every byte of the secret
/// may be written as itself, `%XX` (any case), `+` for a space, or `\\"` /
/// `\\\\` for a quote or backslash. The set of text positions reachable after
/// each secret byte is kept (an NFA walk), so the time is linear in the
/// secret's length, whatever mix of forms the text uses.
fn match_at(text: &[u8], start: usize, secret: &[u8]) -> Option<usize> {
    let mut here = vec![start];
    for &b in secret {
        let mut next = Vec::new();
        for &p in &here {
            let rest = &text[p.min(text.len())..];
            if rest.first() == Some(&b) {
                next.push(p + 1);
            }
            if rest.len() >= 3 && rest[0] == b'%' && hex_byte(rest[1], rest[2]) == Some(b) {
                next.push(p + 3);
            }
            if b == b' ' && rest.first() == Some(&b'+') {
                next.push(p + 1);
            }
            if matches!(b, b'"' | b'\\') && rest.len() >= 2 && rest[0] == b'\\' && rest[1] == b {
                next.push(p + 2);
            }
        }
        next.sort_unstable();
        next.dedup();
        if next.is_empty() {
            return None;
        }
        here = next;
    }
    here.last().map(|end| end - start)
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    let h = char::from(hi).to_digit(16)?;
    let l = char::from(lo).to_digit(16)?;
    u8::try_from(h * 16 + l).ok()
}

/// `%XX` decoded (invalid escapes kept as written), `+` left alone.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = hex_byte(b[i + 1], b[i + 2]) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a/b c?d&e=f%g";

    #[test]
    fn redacts_every_encoding() {
        for shown in [
            "a/b c?d&e=f%g",
            "a%2Fb%20c%3Fd%26e%3Df%25g",
            "a%2fb%20c%3fd%26e%3df%25g",
            "a%2Fb+c%3Fd%26e%3Df%25g",
            "a/b%20c?d&e=f%25g",
            "a/b+c?d&e=f%g",
        ] {
            let text = format!("cannot reach srt://h:1?streamid={shown}&x=1");
            assert_eq!(
                redact(&text, &[KEY]),
                "cannot reach srt://h:1?streamid=***&x=1",
                "{shown}"
            );
        }
        assert_eq!(redact(r#"key "a\"b""#, &["a\"b"]), "key \"***\"");
        assert_eq!(redact(r"p=c:\\x", &[r"c:\x"]), "p=***");
    }

    #[test]
    fn redacts_the_decoded_form_of_an_encoded_secret() {
        assert_eq!(redact("id=ab/c!", &["ab%2Fc%21"]), "id=***");
    }

    #[test]
    fn leaves_other_text_alone() {
        assert_eq!(redact("x", &[]), "x");
        assert_eq!(redact("x", &[""]), "x");
        assert_eq!(
            redact("中文 rtmp://h/live/123456 ok", &["123456"]),
            "中文 rtmp://h/live/*** ok"
        );
        assert_eq!(redact("a%2", &["a%2F"]), "a%2");
    }

    #[test]
    fn long_hostile_secrets_take_linear_time() {
        let secret = "%".repeat(2_000);
        let text = "%25".repeat(3_000);
        let t = std::time::Instant::now();
        let out = redact(&text, &[&secret]);
        assert!(out.starts_with("***"));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn numbers_and_tables_are_refused_without_their_value() {
        #[derive(Deserialize, Debug)]
        struct D {
            #[allow(dead_code)]
            key: Secret,
        }
        for bad in [
            "key = 123456",
            "key = 123456.5",
            "key = true",
            "key = [123456]",
            "key = { a = 123456 }",
        ] {
            // `message()`, as `check-config` shows it: toml's `Display`
            // quotes the source line, which is the config file itself.
            let e = toml::from_str::<D>(bad).unwrap_err().message().to_string();
            assert!(!e.contains("123456"), "{bad}: {e}");
            assert!(e.contains("key_file"), "{bad}: {e}");
        }
        let d: D = toml::from_str("key = \"123456\"").unwrap();
        assert_eq!(d.key.expose(), "123456");
    }

    #[test]
    fn never_shows_itself() {
        let s = Secret::new("live_123_secret");
        assert!(!format!("{s:?}").contains("live_123"));
        assert!(!format!("{s}").contains("live_123"));
        assert!(!serde_json::to_string(&s).unwrap().contains("live_123"));
        assert_eq!(s.expose(), "live_123_secret");
    }
}
