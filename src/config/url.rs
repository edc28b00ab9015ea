//! A small parser for the URLs the config holds (`rtmp://`, `rtmps://`,
//! `srt://`, `mqtt://`, `mqtts://`): enough to check them and to splice a
//! stream key in, without a URL crate.

/// `scheme://host[:port][/path][?query]`, borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    /// `Some(Err(text))` when a port is written but is not a number in 1..=65535.
    pub port: Option<Result<u16, &'a str>>,
    /// Starts with '/' when present; empty when absent.
    pub path: &'a str,
    pub query: Option<&'a str>,
}

/// `None` when there is no `scheme://`.
pub(crate) fn parse(s: &str) -> Option<Url<'_>> {
    let (scheme, rest) = s.split_once("://")?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    // `user:pass@` is not expected here, but must not be taken for a port.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_port(authority);
    let port = port.map(|p| match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(p),
    });
    Some(Url {
        scheme,
        host,
        port,
        path,
        query,
    })
}

fn split_port(authority: &str) -> (&str, Option<&str>) {
    // IPv6 literal: [::1]:1935
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let (host, rest) = authority.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_parts() {
        let u = parse("rtmp://example.com:1935/live/x?a=b").unwrap();
        assert_eq!(u.scheme, "rtmp");
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(Ok(1935)));
        assert_eq!(u.path, "/live/x");
        assert_eq!(u.query, Some("a=b"));
    }

    #[test]
    fn ipv6_and_bad_ports() {
        let u = parse("srt://[::1]:9000").unwrap();
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.port, Some(Ok(9000)));
        assert_eq!(parse("srt://h:0").unwrap().port, Some(Err("0")));
        assert_eq!(parse("srt://h:99999").unwrap().port, Some(Err("99999")));
        assert_eq!(parse("srt://h").unwrap().port, None);
        assert!(parse("example.com/live").is_none());
    }
}
