//! Stream keys: read from `key_file`s, and spliced into the ingest URL only at
//! the moment a destination connects. Everywhere else (logs, status, errors)
//! the URL is shown with `***` in place of the key.

use std::path::Path;

use super::problem::Problem;
use super::schema::{Config, DestinationConfig};
use super::secret::Secret;
use super::url;

/// Reads every destination's `key_file` into its `key`. Relative paths are
/// relative to `config_dir` (the folder of the config file); disabled
/// destinations are skipped. Problems name
/// `destinations[i].key_file` and the file, never the key.
pub fn resolve_keys(config: &mut Config, config_dir: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, dest) in config.destinations.iter_mut().enumerate() {
        let Some(file) = dest.key_file.as_deref() else {
            continue;
        };
        // A switched-off destination must not stop the box for want of its key.
        if dest.key.is_some() || !dest.enabled {
            // Validation reports "not both"; do not let the file silently win.
            continue;
        }
        let path = config_dir.join(file);
        let path_key = format!("destinations[{i}].key_file");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = text.trim_end_matches(['\n', '\r']);
                if key.trim().is_empty() {
                    problems.push(Problem::new(
                        path_key,
                        format!("the key file {} is empty; paste the platform's stream key into it", path.display()),
                    ));
                } else {
                    dest.key = Some(Secret::new(key));
                }
            }
            Err(e) => problems.push(Problem::new(
                path_key,
                format!(
                    "cannot read the stream key file {}: {e}; create it with the platform's stream key on one line",
                    path.display()
                ),
            )),
        }
    }
    problems
}

/// Warnings for stream keys (inline, or read from `key_file`) shorter than
/// [`MIN_PART_LEN`] characters. Logs, MQTT and check-config hide every
/// occurrence of a key, so hiding a short one turns ordinary words and ids into
/// `***` everywhere; platforms issue far longer keys. A warning and not a
/// refusal: local test servers take any stream name (`demo`, `show`). Never
/// echoes the key, nor its length.
pub fn short_key_warnings(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, dest) in config.destinations.iter().enumerate() {
        let Some(key) = dest.key.as_ref().filter(|k| !k.is_empty()) else {
            continue;
        };
        if key.expose().trim().chars().count() >= MIN_PART_LEN {
            continue;
        }
        let (field, source) = match dest.key_file {
            Some(_) => ("key_file", "the key in this file"),
            None => ("key", "the stream key"),
        };
        out.push(Problem::new(
            format!("destinations[{i}].{field}"),
            format!(
                "{source} is shorter than {MIN_PART_LEN} characters: platforms issue longer \
                 keys, and hiding so short a key turns matching words in logs and MQTT \
                 reports into ***; paste the platform's full stream key"
            ),
        ));
    }
    out
}

impl DestinationConfig {
    /// The URL to hand the sink, key included. RTMP: `rtmp://host/app/KEY`.
    /// SRT: the key as the `streamid` query parameter. Never log this.
    pub fn ingest_url(&self) -> String {
        self.url_with_key(self.key.as_ref().map(Secret::expose), true)
    }

    /// The ingest URL with `***` where the key goes, and where an SRT
    /// passphrase or stream id written in the URL was: safe for logs and status.
    pub fn redacted_url(&self) -> String {
        self.redact(&self.url_with_key(self.key.as_ref().map(|_| "***"), false))
    }

    /// Everything secret this destination's ingest URL carries, for
    /// [`super::secret::redact`]: the stream key; for SRT, the values of the
    /// URL's `passphrase` and `streamid` (written in the URL by hand); for
    /// RTMP without a key, the stream name written after the application
    /// (`rtmp://host/app/KEY`), with one, the URL's query (a signed push
    /// address); any `user:password@` in front of the host. Parts of a key that a URL parser may quote on
    /// their own (the stream name before `?`, query values) are listed too
    /// when they are long enough to be the secret rather than a common word.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(k) = self.key.as_ref().filter(|k| !k.is_empty()) {
            out.push(k.expose().to_string());
        }
        match url::parse(&self.url) {
            Ok(u) => {
                match u.query {
                    Some(q) if u.scheme == url::Scheme::Srt => {
                        for pair in q.split('&') {
                            if let Some((name, value)) = pair.split_once('=') {
                                if SRT_SECRET_PARAMS.contains(&name) && !value.is_empty() {
                                    out.push(value.to_string());
                                }
                            }
                        }
                    }
                    _ if u.scheme == url::Scheme::Srt => {}
                    _ if self.key.is_none() => {
                        // rtmp://host/app/KEY[?query]: everything after the application.
                        let tail = u.path.trim_start_matches('/');
                        if let Some((_, name)) = tail.split_once('/') {
                            let name = match u.query {
                                Some(q) => format!("{name}?{q}"),
                                None => name.to_string(),
                            };
                            if !name.is_empty() {
                                out.push(name);
                            }
                        }
                    }
                    // A signed push address (`rtmp://host/app?sign=...`) with a key beside it.
                    q => out.extend(q.filter(|q| !q.is_empty()).map(|q| format!("?{q}"))),
                }
                // `user:password@` in front of the host: rtmp2sink takes it from the URL.
                if let Some(userinfo) = u.userinfo {
                    out.push(userinfo.to_string());
                    if let Some((_, password)) = userinfo.split_once(':') {
                        out.push(password.to_string());
                    }
                }
            }
            // Validation refuses such a URL; should it be quoted anyway,
            // hide all of it rather than guess which part is the secret.
            Err(_) => out.push(self.url.clone()),
        }
        out.retain(|s| !s.is_empty());
        let mut parts = Vec::new();
        for s in &out {
            let (stream, query) = s.split_once('?').unwrap_or((s, ""));
            parts.push(stream.to_string());
            parts.extend(
                query
                    .split('&')
                    .filter_map(|p| p.split_once('=').map(|(_, v)| v.to_string())),
            );
        }
        out.extend(
            parts
                .into_iter()
                .filter(|p| p.chars().count() >= MIN_PART_LEN),
        );
        out.sort();
        out.dedup();
        out
    }

    /// `text` with every secret of this destination hidden (see [`Self::secrets`]).
    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets();
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        super::secret::redact(text, &refs)
    }

    fn url_with_key(&self, key: Option<&str>, encode: bool) -> String {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return self.url.clone();
        };
        let is_srt = url::parse(&self.url).is_ok_and(|u| u.scheme == url::Scheme::Srt);
        if is_srt {
            let key = if encode {
                percent_encode(key)
            } else {
                key.to_string()
            };
            let sep = if self.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}streamid={key}", self.url)
        } else {
            // RTMP: the key is the stream name after the application, verbatim:
            // some platforms put `?auth=...` in it and expect it unchanged.
            format!("{}/{key}", self.url.trim_end_matches('/'))
        }
    }
}

/// SRT URL query parameters that are credentials (srtsink and libsrt names).
const SRT_SECRET_PARAMS: &[&str] = &["passphrase", "streamid"];

/// A part of a key shorter than this is not hidden on its own: hiding `d` of
/// `...?d&e=...` would blank every `d` of a log line and hide nothing secret.
/// The whole key is always hidden, however short.
const MIN_PART_LEN: usize = 6;

/// Shown without the URL's query (an SRT passphrase or stream id) and without
/// the key: `Debug` of a config must be safe to log.
impl std::fmt::Debug for DestinationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationConfig")
            .field("name", &self.name)
            .field("url", &self.redact(&self.redacted_url()))
            .field("key_file", &self.key_file)
            .field("key", &self.key)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// SRT stream ids like `#!::r=live,m=publish` must survive as one query value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(url: &str, key: Option<&str>) -> DestinationConfig {
        DestinationConfig {
            name: "d".into(),
            url: url.into(),
            key_file: None,
            key: key.map(Secret::new),
            enabled: true,
        }
    }

    #[test]
    fn rtmp_key_is_the_stream_name() {
        let d = dest("rtmp://127.0.0.1:1935/live", Some("abc?auth=1"));
        assert_eq!(d.ingest_url(), "rtmp://127.0.0.1:1935/live/abc?auth=1");
        assert_eq!(d.redacted_url(), "rtmp://127.0.0.1:1935/live/***");
        let d = dest("rtmps://h/app/", Some("k"));
        assert_eq!(d.ingest_url(), "rtmps://h/app/k");
    }

    #[test]
    fn srt_key_is_the_streamid() {
        let d = dest("srt://h:9000", Some("#!::r=live,m=publish"));
        assert_eq!(
            d.ingest_url(),
            "srt://h:9000?streamid=%23%21%3A%3Ar%3Dlive%2Cm%3Dpublish"
        );
        assert_eq!(d.redacted_url(), "srt://h:9000?streamid=***");
        let d = dest("srt://h:9000?latency=200", Some("k"));
        assert_eq!(d.ingest_url(), "srt://h:9000?latency=200&streamid=k");
    }

    #[test]
    fn no_key_leaves_the_url() {
        let d = dest("rtmp://h/live/stream", None);
        assert_eq!(d.ingest_url(), "rtmp://h/live/stream");
        // The stream name written in the URL is the key.
        assert_eq!(d.redacted_url(), "rtmp://h/live/***");
        let d = dest("rtmp://h/live", None);
        assert_eq!(d.redacted_url(), "rtmp://h/live");
    }

    #[test]
    fn srt_passphrase_and_streamid_in_the_url_are_secrets() {
        let d = dest(
            "srt://h:9000?latency=200&passphrase=pass%20phrase99&streamid=%23%21%3A%3Ar%3Dlive",
            Some("123456"),
        );
        let secrets = d.secrets();
        assert!(secrets.contains(&"123456".to_string()));
        assert!(secrets.contains(&"pass%20phrase99".to_string()));
        let shown = d.redacted_url();
        assert_eq!(
            shown,
            "srt://h:9000?latency=200&passphrase=***&streamid=***&streamid=***"
        );
        let debug = format!("{d:?}");
        for leak in ["123456", "phrase99", "pass+phrase", "r%3Dlive", "r=live"] {
            assert!(!debug.contains(leak), "{leak} in {debug}");
        }
        // What srtsink might quote: the decoded passphrase.
        assert_eq!(
            d.redact("bad passphrase \"pass phrase99\" for #!::r=live"),
            "bad passphrase \"***\" for ***"
        );
    }

    #[test]
    fn credentials_and_signed_queries_in_the_url_are_secrets() {
        let d = dest(
            "rtmp://farmer:hunter22@h/app?sign=abcdef123&expire=99",
            Some("k"),
        );
        let shown = d.redacted_url();
        for leak in ["hunter22", "farmer:", "abcdef123"] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
            assert!(!format!("{d:?}").contains(leak), "{leak} in Debug");
        }
    }

    #[test]
    fn a_number_in_a_key_file_is_text_and_hidden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "0123456\n").unwrap();
        let mut c = config_with("k");
        assert!(resolve_keys(&mut c, dir.path()).is_empty());
        let d = &c.destinations[0];
        assert_eq!(d.key.as_ref().unwrap().expose(), "0123456");
        assert_eq!(d.ingest_url(), "rtmp://h/live/0123456");
        assert_eq!(
            d.redact("failed: rtmp://h/live/0123456"),
            "failed: rtmp://h/live/***"
        );
    }

    #[test]
    fn rtmp_key_parts_are_hidden_but_not_short_words() {
        let d = dest("rtmp://h/live", Some("a/b c?d&e=f%g"));
        let secrets = d.secrets();
        assert!(secrets.contains(&"a/b c?d&e=f%g".to_string()));
        assert!(!secrets.iter().any(|s| s == "d" || s == "f%g"));
        assert_eq!(
            d.redact("rtmp://h/live/a%2Fb%20c%3Fd%26e%3Df%25g failed; d"),
            "rtmp://h/live/*** failed; d"
        );
    }

    fn config_with(key_file: &str) -> Config {
        let mut c = Config::default();
        let mut d = dest("rtmp://h/live", None);
        d.key_file = Some(key_file.into());
        c.destinations.push(d);
        c
    }

    #[test]
    fn reads_relative_key_files_and_trims_the_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/taobao"), "s3cr3t-key\n").unwrap();
        let mut c = config_with("keys/taobao");
        assert!(resolve_keys(&mut c, dir.path()).is_empty());
        assert_eq!(
            c.destinations[0].key.as_ref().unwrap().expose(),
            "s3cr3t-key"
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn reads_absolute_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        std::fs::write(&file, "abs-key\r\n").unwrap();
        let mut c = config_with(file.to_str().unwrap());
        assert!(resolve_keys(&mut c, Path::new("/elsewhere")).is_empty());
        assert_eq!(c.destinations[0].key.as_ref().unwrap().expose(), "abs-key");
    }

    #[test]
    fn disabled_destinations_need_no_key_file() {
        let mut c = config_with("nope");
        c.destinations[0].enabled = false;
        assert!(resolve_keys(&mut c, Path::new("/nonexistent")).is_empty());
        assert!(c.destinations[0].key.is_none());
    }

    #[test]
    fn missing_and_empty_key_files_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config_with("nope");
        let problems = resolve_keys(&mut c, dir.path());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "destinations[0].key_file");
        assert!(c.destinations[0].key.is_none());

        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let mut c = config_with("empty");
        let problems = resolve_keys(&mut c, dir.path());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("empty"));
    }

    /// A key under 6 characters is a warning on its key path (inline or
    /// file), never a refusal, and the warning never shows the key.
    #[test]
    fn short_keys_are_warned_about_without_echoing_them() {
        use crate::config::load::{check_sources, Depth};
        let src =
            |key: &str| format!("[[destinations]]\nname = \"a\"\nurl = \"rtmp://h/live\"\n{key}\n");
        let r = check_sources(&[&src("key = \"Zq9x1\"")], Depth::Values);
        assert!(r.config.is_some(), "{:?}", r.problems);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        let w = &r.warnings[0];
        assert_eq!((w.path.as_str(), w.line), ("destinations[0].key", Some(4)));
        assert!(w.message.contains("shorter than 6"), "{}", w.message);
        assert!(!w.message.contains("Zq9x1"), "{}", w.message);
        let r = check_sources(&[&src("key = \"Zq9x1Y\"")], Depth::Values);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), "Zq9\n").unwrap();
        std::fs::write(dir.path().join("long"), "Zq9x1Y-live\n").unwrap();
        let r = check_sources(&[&src("key_file = \"short\"")], Depth::Full(dir.path()));
        assert!(r.config.is_some(), "{:?}", r.problems);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        let w = &r.warnings[0];
        assert_eq!(w.path, "destinations[0].key_file");
        assert!(!w.message.contains("Zq9"), "{}", w.message);
        let r = check_sources(&[&src("key_file = \"long\"")], Depth::Full(dir.path()));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }
}
