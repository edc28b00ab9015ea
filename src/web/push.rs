//! Today's push address: the whole URL a platform hands out
//! (`rtmp://host/app/STREAM?expire=...&sign=...`) split into the server the
//! destination connects to and the stream key, checked with the config's own
//! URL parser, and the key written to the destination's `key_file`.
//!
//! The split follows the rule the rest of the box uses for RTMP
//! (`DestinationConfig::ingest_url`): the first path segment is the
//! application, everything after it (query included, verbatim) is the key.
//! No error here echoes the pasted text: it holds the key.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::secret::Secret;
use crate::config::url::{self, Scheme};
use crate::config::{Config, DestinationConfig};

/// Longest URL taken: platform addresses are a few hundred characters.
pub const MAX_URL: usize = 2048;

#[derive(Debug, PartialEq)]
pub struct PushAddress {
    /// `rtmp://host[:port]/app`, as pasted: the destination's new `url`.
    pub server: String,
    pub key: Secret,
}

impl PushAddress {
    /// The last four characters of the key: all the page ever shows of it.
    pub fn tail(&self) -> String {
        key_tail(self.key.expose())
    }
}

pub fn key_tail(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// Why a pasted address was refused; the texts go to the page as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the address is empty")]
    Empty,
    #[error("the address is too long")]
    TooLong,
    #[error("the address contains spaces or control characters")]
    Spaces,
    #[error("the address {0}")]
    Url(url::UrlError),
    #[error("the address has a bad port")]
    Port,
    #[error("only rtmp:// and rtmps:// addresses can be pasted here")]
    Scheme,
    #[error("the address carries a user name or password")]
    Credentials,
    #[error("the address has no application and stream name (rtmp://host/app/stream)")]
    NoKey,
}

/// Splits a pasted push address; surrounding spaces and line breaks (a
/// phone's paste) are dropped.
pub fn split(pasted: &str) -> Result<PushAddress, PushError> {
    let s = pasted.trim();
    if s.is_empty() {
        return Err(PushError::Empty);
    }
    if s.len() > MAX_URL {
        return Err(PushError::TooLong);
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PushError::Spaces);
    }
    let u = url::parse(s).map_err(|e| match e {
        // Both would quote part of the text, which may be the key.
        url::UrlError::BadPort(_) => PushError::Port,
        url::UrlError::Unsupported(_) => PushError::Scheme,
        e => PushError::Url(e),
    })?;
    if !matches!(u.scheme, Scheme::Rtmp | Scheme::Rtmps) {
        return Err(PushError::Scheme);
    }
    if u.userinfo.is_some() {
        return Err(PushError::Credentials);
    }
    let path = u.path.trim_start_matches('/');
    let Some((app, stream)) = path.split_once('/') else {
        return Err(PushError::NoKey);
    };
    if app.is_empty() || stream.trim_matches('/').is_empty() {
        return Err(PushError::NoKey);
    }
    let key = match u.query {
        Some(q) => format!("{stream}?{q}"),
        None => stream.to_string(),
    };
    // The server as pasted: everything before the stream name.
    let server_len = s.len() - u.query.map_or(0, |q| q.len() + 1) - stream.len();
    let server = s[..server_len].trim_end_matches('/').to_string();
    Ok(PushAddress {
        server,
        key: Secret::new(key),
    })
}

/// Writes `key` to `path` so that a reader sees the old file or the new one,
/// never half of it, and only its owner can read it (mode 0600 from the
/// first byte: the file is created so, not chmod-ed after).
pub fn write_key_file(path: &Path, key: &Secret) -> std::io::Result<()> {
    write_private(path, format!("{}\n", key.expose()).as_bytes())
}

/// [`write_key_file`] for any text: atomic, mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself survives a power cut only once the folder is synced.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The servers of pasted push addresses, by destination: a local layer in
/// `STATE_DIR/web/push.toml` (the keys are in the key files), laid over
/// every config the daemon runs, so that a platform that moves a show to
/// another server (not only to a new key) is still right after a restart.
/// Each entry remembers the `url` it replaced: when the config's `url`
/// changes (a technician's edit, a fleet push), the config wins and the
/// entry does nothing until the farmer pastes again.
pub fn servers_file(state_dir: &str) -> PathBuf {
    Path::new(state_dir).join("web").join("push.toml")
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedServer {
    pub server: String,
    /// The destination's `url` in the config when the address was pasted.
    pub replaced: String,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServersFile {
    #[serde(default)]
    servers: BTreeMap<String, SavedServer>,
}

/// Saved servers by destination name; a missing or unreadable file is none.
pub fn parse_servers(text: &str) -> BTreeMap<String, SavedServer> {
    toml::from_str::<ServersFile>(text)
        .map(|f| f.servers)
        .unwrap_or_default()
}

/// Records `saved` for `destination` in `file` (atomic, mode 0600).
pub fn save_server(file: &Path, destination: &str, saved: SavedServer) -> std::io::Result<()> {
    let mut servers = parse_servers(&std::fs::read_to_string(file).unwrap_or_default());
    servers.insert(destination.to_string(), saved);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = toml::to_string(&ServersFile { servers }).unwrap_or_default();
    write_private(file, text.as_bytes())
}

/// The saved servers laid over `config`'s destinations (at start and over
/// every fleet push).
pub fn apply_saved_servers(config: &mut Config) {
    let text = std::fs::read_to_string(servers_file(&config.state_dir)).unwrap_or_default();
    overlay_servers(&mut config.destinations, &parse_servers(&text));
}

/// Only over a destination that takes pasted addresses (its key is in a
/// `key_file`, its URL is RTMP(S)) whose `url` is still the one replaced,
/// and only a server that still reads as one.
pub fn overlay_servers(
    destinations: &mut [DestinationConfig],
    servers: &BTreeMap<String, SavedServer>,
) {
    for d in destinations {
        let Some(saved) = servers.get(&d.name) else {
            continue;
        };
        if d.key_file.is_some() && d.url == saved.replaced && is_rtmp(&saved.server) {
            d.url = saved.server.clone();
        }
    }
}

/// The `url` the config gave `destination` before the saved server was laid
/// over it (what a new paste replaces).
pub fn configured_url(url: &str, saved: Option<&SavedServer>) -> String {
    match saved {
        Some(s) if s.server == url => s.replaced.clone(),
        _ => url.to_string(),
    }
}

fn is_rtmp(url: &str) -> bool {
    url::parse(url).is_ok_and(|u| matches!(u.scheme, Scheme::Rtmp | Scheme::Rtmps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_signed_platform_address() {
        let a = split(
            " rtmp://push-rtmp-l1.douyincdn.com/third/stream-6912?expire=1733190000&sign=ab12cd\n",
        )
        .unwrap();
        assert_eq!(a.server, "rtmp://push-rtmp-l1.douyincdn.com/third");
        assert_eq!(a.key.expose(), "stream-6912?expire=1733190000&sign=ab12cd");
        assert_eq!(a.tail(), "12cd");
    }

    #[test]
    fn keeps_port_and_multi_segment_names() {
        let a = split("rtmps://127.0.0.1:1936/live/a/b").unwrap();
        assert_eq!(a.server, "rtmps://127.0.0.1:1936/live");
        assert_eq!(a.key.expose(), "a/b");
        let a = split("rtmp://[::1]/live/show").unwrap();
        assert_eq!(a.server, "rtmp://[::1]/live");
    }

    #[test]
    fn refuses_what_is_not_a_push_address() {
        let bad = [
            ("", PushError::Empty),
            ("rtmp://h/live", PushError::NoKey),
            ("rtmp://h/live/", PushError::NoKey),
            ("rtmp://h//k", PushError::NoKey),
            ("rtmp://u:p@h/live/k", PushError::Credentials),
            ("srt://h:9000?streamid=k", PushError::Scheme),
            ("mqtt://h/live/k", PushError::Scheme),
            ("rtmp://h/live/k k", PushError::Spaces),
            ("rtmp://h/live/k\u{7}", PushError::Spaces),
        ];
        for (s, want) in bad {
            assert_eq!(split(s).unwrap_err(), want, "{s:?}");
        }
        assert!(matches!(split("live/k"), Err(PushError::Url(_))));
        assert_eq!(split("rtmp://h:99999/live/k").unwrap_err(), PushError::Port);
        assert_eq!(
            split(&"rtmp://h/live/".repeat(300)).unwrap_err(),
            PushError::TooLong
        );
    }

    #[test]
    fn errors_never_echo_the_address() {
        for s in [
            "rtmp://u:SECRETKEY@h/live/k",
            "ftp://h/SECRETKEY",
            "rtmp://h:SECRETKEY/a/b",
        ] {
            let e = split(s).unwrap_err().to_string();
            assert!(!e.contains("SECRETKEY"), "{e}");
        }
    }

    #[test]
    fn tails_count_characters() {
        assert_eq!(key_tail("ab"), "ab");
        assert_eq!(key_tail("密钥一二三四"), "一二三四");
    }

    #[test]
    fn key_file_is_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taobao");
        std::fs::write(&path, "old\n").unwrap();
        write_key_file(&path, &Secret::new("new-key")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new-key\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    fn dest(url: &str, key_file: bool) -> DestinationConfig {
        DestinationConfig {
            name: "taobao".into(),
            url: url.into(),
            key_file: key_file.then(|| "taobao.key".into()),
            key: None,
            enabled: true,
        }
    }

    #[test]
    fn a_saved_server_holds_until_the_config_changes_the_url() {
        let saved: BTreeMap<String, SavedServer> = [(
            "taobao".to_string(),
            SavedServer {
                server: "rtmp://today.example/live".into(),
                replaced: "rtmp://old.example/live".into(),
            },
        )]
        .into_iter()
        .collect();
        // Over the url it replaced: taken.
        let mut d = [dest("rtmp://old.example/live", true)];
        overlay_servers(&mut d, &saved);
        assert_eq!(d[0].url, "rtmp://today.example/live");
        assert_eq!(
            configured_url(&d[0].url, saved.get("taobao")),
            "rtmp://old.example/live"
        );
        // A technician or a fleet push changed the url since: the config wins.
        let mut d = [dest("rtmp://new.example/live", true)];
        overlay_servers(&mut d, &saved);
        assert_eq!(d[0].url, "rtmp://new.example/live");
        // An inline key is not the page's to replace.
        let mut d = [dest("rtmp://old.example/live", false)];
        overlay_servers(&mut d, &saved);
        assert_eq!(d[0].url, "rtmp://old.example/live");
    }

    #[test]
    fn the_servers_file_round_trips_and_junk_is_no_layer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web").join("push.toml");
        let saved = SavedServer {
            server: "rtmp://today.example/live".into(),
            replaced: "rtmp://old.example/live".into(),
        };
        save_server(&file, "taobao", saved.clone()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(parse_servers(&text).get("taobao"), Some(&saved));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        for junk in [
            "",
            "servers = 1",
            "[servers.taobao]\nserver = 2",
            "\u{0}\u{1}",
        ] {
            assert!(parse_servers(junk).is_empty(), "{junk:?}");
        }
        // A saved server that is not RTMP is not laid over anything.
        let bad: BTreeMap<String, SavedServer> = [(
            "taobao".to_string(),
            SavedServer {
                server: "http://evil.example/".into(),
                replaced: "rtmp://old.example/live".into(),
            },
        )]
        .into_iter()
        .collect();
        let mut d = [dest("rtmp://old.example/live", true)];
        overlay_servers(&mut d, &bad);
        assert_eq!(d[0].url, "rtmp://old.example/live");
    }
}
