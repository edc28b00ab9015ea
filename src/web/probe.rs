//! `farmcast probe`'s lines about the phone page: where a phone finds it.

use std::path::Path;

/// The addresses of the page and of the metrics for a `[web]` table (as
/// TOML), on a host called `hostname` (announced as `hostname.local`).
pub fn lines(web: Option<&toml::Table>, hostname: &str) -> Vec<String> {
    let enabled = web
        .and_then(|w| w.get("enabled"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    if !enabled {
        return vec!["phone page: off (set [web] enabled = true)".into()];
    }
    let get = |k: &str| web.and_then(|w| w.get(k)).and_then(toml::Value::as_str);
    let default = crate::config::Config::default().web.listen;
    let mut out = vec![format!(
        "phone page: {}",
        url(get("listen").unwrap_or(&default), hostname, "/")
    )];
    if let Some(m) = get("metrics_listen") {
        out.push(format!("metrics: {}", url(m, hostname, "/metrics")));
    }
    out
}

fn url(listen: &str, hostname: &str, path: &str) -> String {
    let Ok(addr) = listen.parse::<std::net::SocketAddr>() else {
        return format!(
            "(web listen address {:?} is not valid)",
            crate::excerpt::excerpt(listen)
        );
    };
    let host = if addr.ip().is_unspecified() {
        format!("{hostname}.local")
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    match addr.port() {
        80 => format!("http://{host}{path}"),
        p => format!("http://{host}:{p}{path}"),
    }
}

/// The lines for the config at `path` on this machine.
pub fn for_config(path: &Path) -> Vec<String> {
    let table = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok());
    let web = table
        .as_ref()
        .and_then(|t| t.get("web"))
        .and_then(toml::Value::as_table);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let hostname = match hostname.trim() {
        "" => "farmcast",
        h => h,
    };
    lines(web, hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn names_the_page_by_its_mdns_name_or_its_address() {
        assert_eq!(
            lines(None, "farmcast"),
            ["phone page: off (set [web] enabled = true)"]
        );
        let w = web("enabled = true\nmetrics_listen = \"0.0.0.0:9100\"\n");
        assert_eq!(
            lines(Some(&w), "farmcast"),
            [
                "phone page: http://farmcast.local/",
                "metrics: http://farmcast.local:9100/metrics"
            ]
        );
        let w = web("enabled = true\nlisten = \"192.168.1.20:8080\"\n");
        assert_eq!(
            lines(Some(&w), "box"),
            ["phone page: http://192.168.1.20:8080/"]
        );
    }
}
