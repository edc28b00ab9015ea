//! The one parser for the URLs the config holds: ingest servers (`rtmp://`,
//! `rtmps://`, `srt://`) and the MQTT broker (`mqtt://`, `mqtts://`).
//! Validation, the destination pipeline, the down-server probe and the MQTT
//! link all read these typed endpoints, so they cannot disagree about a URL
//! (three hand-written parsers did: one turned `[::1]:1935` into
//! `[::1]:1935:1935`, another dropped every IPv6 server).
//!
//! The `url` crate (WHATWG rules) decides what is valid and yields the
//! scheme, the host (IPv6 literals included) and the port. The path, query
//! and user info are also kept as slices of the text *as written*: the sink
//! is handed the configured text, not the crate's re-encoded form, so the
//! redaction of secrets (`DestinationConfig::secrets`) must look for them
//! exactly as written.
//!
//! No error echoes the URL: it may hold a stream key or a password. A scheme
//! or a port that is echoed goes through [`crate::excerpt::excerpt`].

use std::fmt;
use std::net::IpAddr;

use crate::excerpt::excerpt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Rtmp,
    Rtmps,
    Srt,
    Mqtt,
    Mqtts,
}

impl Scheme {
    fn from_name(s: &str) -> Option<Scheme> {
        Some(match s {
            "rtmp" => Scheme::Rtmp,
            "rtmps" => Scheme::Rtmps,
            "srt" => Scheme::Srt,
            "mqtt" => Scheme::Mqtt,
            "mqtts" => Scheme::Mqtts,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
            Scheme::Srt => "srt",
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
        }
    }

    /// The port when the URL names none. SRT has no well-known port: its
    /// URLs must name one.
    pub fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Rtmp => Some(1935),
            Scheme::Rtmps => Some(443),
            Scheme::Srt => None,
            Scheme::Mqtt => Some(1883),
            Scheme::Mqtts => Some(8883),
        }
    }

    /// An ingest server's scheme (a destination), not the broker's.
    pub fn is_media(self) -> bool {
        matches!(self, Scheme::Rtmp | Scheme::Rtmps | Scheme::Srt)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// The host as a resolver or a client library takes it: an IPv6 address
    /// without brackets (`::1`), a name as written.
    pub fn connect_str(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

/// As in a URL: IPv6 in brackets.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A parsed URL, borrowing the raw parts from the input. `Debug` shows no
/// path, query or user info: they may hold secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub scheme: Scheme,
    pub host: Host,
    /// The port written in the URL, if any (see [`Endpoint::port`]).
    pub explicit_port: Option<u16>,
    /// As written; starts with '/' when present, empty when absent.
    pub path: &'a str,
    /// As written, after the '?' (a '#' in it is kept: SRT stream ids
    /// start with `#!::`).
    pub query: Option<&'a str>,
    /// `user[:password]` in front of the host, as written.
    pub userinfo: Option<&'a str>,
}

impl Endpoint<'_> {
    /// The port to connect to: the written one, else the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.explicit_port.or(self.scheme.default_port())
    }

    /// `(host, port)` for `ToSocketAddrs` or a TCP connect; `None` when the
    /// URL names no port and the scheme has none (SRT).
    pub fn connect_target(&self) -> Option<(String, u16)> {
        Some((self.host.connect_str(), self.port()?))
    }
}

impl fmt::Debug for Endpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("explicit_port", &self.explicit_port)
            .finish_non_exhaustive()
    }
}

/// Why a URL was refused. The texts are fragments ("has no host") the
/// caller puts after the config key and follows with an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// No `scheme://` in front.
    NoScheme,
    /// A scheme this box does not speak (excerpted).
    Unsupported(String),
    NoHost,
    /// The port as written (excerpted), not a number from 1 to 65535.
    BadPort(String),
    /// Anything else the URL rules refuse (the parser's words, never the URL).
    Invalid(String),
    /// `user:password@` in a broker URL: it would end up in logs.
    Credentials,
    /// A path or query in a broker URL, which takes only a host and a port.
    NotHostPort,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NoScheme => f.write_str("has no scheme"),
            UrlError::Unsupported(s) => write!(f, "scheme \"{s}\" is not supported"),
            UrlError::NoHost => f.write_str("has no host"),
            UrlError::BadPort(p) => write!(f, "port \"{p}\" is not a number from 1 to 65535"),
            UrlError::Invalid(why) => write!(f, "is not a valid URL ({why})"),
            UrlError::Credentials => f.write_str("must not carry a user name or password"),
            UrlError::NotHostPort => f.write_str("takes only a host and a port"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Parses any URL of the five schemes.
pub fn parse(s: &str) -> Result<Endpoint<'_>, UrlError> {
    let raw = RawParts::of(s);
    let url = match url::Url::parse(s) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => return Err(UrlError::NoScheme),
        Err(url::ParseError::EmptyHost) => return Err(UrlError::NoHost),
        Err(url::ParseError::InvalidPort) => {
            return Err(UrlError::BadPort(excerpt(
                raw.map_or("", |r| r.port_text()),
            )))
        }
        Err(e) => return Err(UrlError::Invalid(e.to_string())),
    };
    // `broker:1883` is a valid URL with scheme "broker" and no authority.
    let Some(raw) = raw.filter(|_| !url.cannot_be_a_base()) else {
        return Err(UrlError::NoScheme);
    };
    let scheme = Scheme::from_name(url.scheme())
        .ok_or_else(|| UrlError::Unsupported(excerpt(url.scheme())))?;
    let host = match url.host() {
        None => return Err(UrlError::NoHost),
        Some(url::Host::Domain("")) => return Err(UrlError::NoHost),
        // These schemes are not "special" to WHATWG, so an IPv4 address
        // stays an opaque name: read it as an address here.
        Some(url::Host::Domain(d)) => d
            .parse()
            .map_or_else(|_| Host::Name(d.to_string()), Host::Ip),
        Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
    };
    let explicit_port = match url.port() {
        Some(0) => return Err(UrlError::BadPort("0".into())),
        p => p,
    };
    Ok(Endpoint {
        scheme,
        host,
        explicit_port,
        path: raw.path,
        query: raw.query,
        userinfo: raw.userinfo,
    })
}

/// Where an MQTT link connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub tls: bool,
    pub host: Host,
    pub port: u16,
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` (a trailing '/' allowed),
/// default ports 1883 and 8883. User info is refused, not parsed: a
/// password in the URL would reach logs.
pub fn broker(s: &str) -> Result<Broker, UrlError> {
    let e = parse(s)?;
    let tls = match e.scheme {
        Scheme::Mqtt => false,
        Scheme::Mqtts => true,
        other => return Err(UrlError::Unsupported(other.as_str().into())),
    };
    if e.userinfo.is_some() {
        return Err(UrlError::Credentials);
    }
    if !matches!(e.path, "" | "/") || e.query.is_some() {
        return Err(UrlError::NotHostPort);
    }
    let port = e.port().unwrap_or(if tls { 8883 } else { 1883 });
    Ok(Broker {
        tls,
        host: e.host,
        port,
    })
}

/// The parts as written, found by the same rule the URL standard uses for
/// these schemes (the authority ends at the first '/', '?' or '#').
struct RawParts<'a> {
    userinfo: Option<&'a str>,
    host_port: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> RawParts<'a> {
    fn of(s: &'a str) -> Option<RawParts<'a>> {
        let rest = &s[s.find("://")? + 3..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (path, query) = match tail.find('?') {
            Some(i) => (&tail[..i], Some(&tail[i + 1..])),
            None => (tail, None),
        };
        Some(RawParts {
            userinfo,
            host_port,
            path,
            query,
        })
    }

    /// The text after the host's ':' (after the ']' of an IPv6 literal).
    fn port_text(&self) -> &'a str {
        let after_host = match self.host_port.rfind(']') {
            Some(i) => &self.host_port[i + 1..],
            None => self.host_port,
        };
        after_host.rsplit_once(':').map_or("", |(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn splits_the_parts() {
        let u = parse("rtmp://example.com:1935/live/x?a=b").unwrap();
        assert_eq!(u.scheme, Scheme::Rtmp);
        assert_eq!(u.host, Host::Name("example.com".into()));
        assert_eq!(u.explicit_port, Some(1935));
        assert_eq!(u.path, "/live/x");
        assert_eq!(u.query, Some("a=b"));
        assert_eq!(u.userinfo, None);
        let u = parse("rtmp://127.0.0.1/live").unwrap();
        assert_eq!(u.host, Host::Ip(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(u.connect_target(), Some(("127.0.0.1".into(), 1935)));
        assert_eq!(parse("rtmps://a.example/app").unwrap().port(), Some(443));
    }

    /// The old destination parser made `[::1]:1935:1935` of this, and the
    /// probe kept only IPv4 addresses.
    #[test]
    fn rtmp_ipv6_literal() {
        let u = parse("rtmp://[::1]:1935/live").unwrap();
        assert_eq!(u.host, Host::Ip(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(u.host.to_string(), "[::1]");
        assert_eq!(u.port(), Some(1935));
        assert_eq!(u.path, "/live");
        assert_eq!(u.connect_target(), Some(("::1".into(), 1935)));
        let u = parse("rtmp://[::1]/live/key").unwrap();
        assert_eq!(u.connect_target(), Some(("::1".into(), 1935)));
    }

    #[test]
    fn srt_ipv6_with_query() {
        let u = parse("srt://[::1]:9000?streamid=x").unwrap();
        assert_eq!(u.scheme, Scheme::Srt);
        assert_eq!(u.host, Host::Ip(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(u.port(), Some(9000));
        assert_eq!(u.path, "");
        assert_eq!(u.query, Some("streamid=x"));
        // SRT has no default port.
        assert_eq!(parse("srt://h").unwrap().port(), None);
        assert_eq!(parse("srt://h").unwrap().connect_target(), None);
        // A stream id as written, '#' and all.
        let u = parse("srt://h:1?streamid=#!::r=live,m=publish").unwrap();
        assert_eq!(u.query, Some("streamid=#!::r=live,m=publish"));
    }

    #[test]
    fn brokers_and_their_default_ports() {
        let b = broker("mqtts://h").unwrap();
        assert_eq!((b.tls, b.port), (true, 8883));
        assert_eq!(b.host, Host::Name("h".into()));
        let b = broker("mqtt://127.0.0.1:1883").unwrap();
        assert_eq!(
            (b.tls, b.host.connect_str(), b.port),
            (false, "127.0.0.1".into(), 1883)
        );
        let b = broker("mqtt://[::1]").unwrap();
        assert_eq!((b.host.connect_str(), b.port), ("::1".into(), 1883));
        assert_eq!(broker("mqtt://[::1]:1884/").unwrap().port, 1884);
    }

    #[test]
    fn broker_with_user_info_is_refused_without_echoing_it() {
        for url in [
            "mqtt://u:hunter22@h:1",
            "mqtts://hunter22@h",
            "mqtt://farm:hunter22@[::1]:1883",
        ] {
            let e = broker(url).unwrap_err();
            assert_eq!(e, UrlError::Credentials, "{url}");
            assert!(!e.to_string().contains("hunter22"));
        }
    }

    #[test]
    fn broker_refusals() {
        for (bad, want) in [
            ("http://x", UrlError::Unsupported("http".into())),
            ("rtmp://x/live", UrlError::Unsupported("rtmp".into())),
            ("mqtt://", UrlError::NoHost),
            ("mqtt://h:port", UrlError::BadPort("port".into())),
            ("mqtt://h:0", UrlError::BadPort("0".into())),
            ("mqtt://h/x", UrlError::NotHostPort),
            ("mqtt://h?x=1", UrlError::NotHostPort),
            ("broker:1883", UrlError::NoScheme),
            ("h", UrlError::NoScheme),
        ] {
            assert_eq!(broker(bad), Err(want), "{bad}");
        }
        assert!(matches!(broker("mqtt://[::1"), Err(UrlError::Invalid(_))));
    }

    #[test]
    fn bad_ports_are_quoted() {
        assert_eq!(
            parse("rtmp://h:70000/live"),
            Err(UrlError::BadPort("70000".into()))
        );
        assert_eq!(parse("srt://[::1]:x"), Err(UrlError::BadPort("x".into())));
        assert_eq!(parse("rtmp:///live"), Err(UrlError::NoHost));
    }

    /// Junk of any size gets a message of bounded size that quotes neither
    /// the URL nor more than an excerpt of it.
    #[test]
    fn junk_is_refused_with_a_bounded_message() {
        let long = "x".repeat(100_000);
        for junk in [
            format!("{long}://h/live"),
            format!("rtmp://h:{long}/live"),
            format!("rtmp://[{long}]/live"),
            format!("rtmp://h/{long}\u{0}"),
            long.clone(),
            "\u{202e}://h".to_string(),
            "rtmp://\u{0}".to_string(),
        ] {
            match parse(&junk) {
                Ok(e) => assert!(format!("{e:?}").len() < 400),
                Err(e) => assert!(e.to_string().len() < 400, "{} chars", e.to_string().len()),
            }
        }
        assert!(parse(&format!("{long}://h")).is_err());
    }

    #[test]
    fn user_info_of_a_destination_is_kept_as_written_and_not_in_debug() {
        let u = parse("rtmp://farmer:hunter22@h/app?sign=abc").unwrap();
        assert_eq!(u.userinfo, Some("farmer:hunter22"));
        assert_eq!(u.query, Some("sign=abc"));
        assert_eq!(u.host, Host::Name("h".into()));
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("hunter22") && !dbg.contains("abc"), "{dbg}");
    }

    proptest::proptest! {
        /// Whatever a pushed config holds: no panic, a bounded message, and
        /// a broker never accepted with user info.
        #[test]
        fn any_text_parses_or_is_refused_briefly(
            s in "(rtmp|srt|mqtts?|[a-z]{1,8})://[\\PC@:\\[\\]/?#%]{0,60}|\\PC{0,80}"
        ) {
            match parse(&s) {
                Ok(_) => {}
                Err(e) => proptest::prop_assert!(e.to_string().len() < 400),
            }
            if let Ok(b) = broker(&s) {
                proptest::prop_assert!(parse(&s).is_ok_and(|e| e.userinfo.is_none()));
                proptest::prop_assert!(b.port > 0);
            }
        }
    }
}
