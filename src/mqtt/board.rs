//! Facts about the board for the status document: SoC temperature, the Raspberry
//! Pi's under-voltage/throttling flags, and which local address reaches the broker.
//!
//! Every reader returns `None` where the fact is not available (a laptop, a
//! container), never an error: status must go out regardless.

use std::net::{IpAddr, ToSocketAddrs, UdpSocket};
use std::path::Path;

const THERMAL_ZONE0: &str = "/sys/class/thermal/thermal_zone0/temp";
/// The firmware's `get_throttled` bit field, exposed by the raspberrypi-hwmon /
/// firmware driver without needing `vcgencmd`.
const PI_THROTTLED: &[&str] = &[
    "/sys/devices/platform/soc/soc:firmware/get_throttled",
    "/sys/devices/platform/soc/soc:firmware/raspberrypi-hwmon/get_throttled",
];

/// SoC temperature in °C from thermal zone 0.
pub fn cpu_temp_c() -> Option<f64> {
    read_trimmed(Path::new(THERMAL_ZONE0)).and_then(|s| parse_millidegrees(&s))
}

/// The Pi's throttled flags, decoded (`"ok"` when none are set).
pub fn throttled() -> Option<String> {
    PI_THROTTLED
        .iter()
        .find_map(|p| read_trimmed(Path::new(p)))
        .and_then(|s| parse_throttled(&s))
}

/// The local address the kernel would use to reach `host:port`. A UDP socket
/// "connected" sends nothing; it only picks a route.
pub fn uplink_addr(host: &str, port: u16) -> Option<IpAddr> {
    let target = (host, port).to_socket_addrs().ok()?.next()?;
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(target).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `"48312"` → 48.312.
pub fn parse_millidegrees(s: &str) -> Option<f64> {
    s.trim().parse::<i64>().ok().map(|m| m as f64 / 1000.0)
}

/// Decodes the `get_throttled` word (hex, `0x50005` or `50005`) into names.
pub fn parse_throttled(s: &str) -> Option<String> {
    let s = s.trim();
    let word = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        // sysfs prints the word in hex without a prefix.
        None => u32::from_str_radix(s, 16).ok()?,
    };
    const BITS: &[(u32, &str)] = &[
        (0, "under_voltage"),
        (1, "freq_capped"),
        (2, "throttled"),
        (3, "soft_temp_limit"),
        (16, "under_voltage_occurred"),
        (17, "freq_capped_occurred"),
        (18, "throttled_occurred"),
        (19, "soft_temp_limit_occurred"),
    ];
    let names: Vec<&str> = BITS
        .iter()
        .filter(|(bit, _)| word & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect();
    Some(if names.is_empty() {
        "ok".into()
    } else {
        names.join(",")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millidegrees() {
        assert_eq!(parse_millidegrees("48312\n"), Some(48.312));
        assert_eq!(parse_millidegrees("-1000"), Some(-1.0));
        assert_eq!(parse_millidegrees("hot"), None);
    }

    #[test]
    fn throttled_words() {
        assert_eq!(parse_throttled("0x0").as_deref(), Some("ok"));
        assert_eq!(
            parse_throttled("0x50005").as_deref(),
            Some("under_voltage,throttled,under_voltage_occurred,throttled_occurred")
        );
        assert_eq!(
            parse_throttled("50000").as_deref(),
            Some("under_voltage_occurred,throttled_occurred")
        );
        assert_eq!(parse_throttled("zz"), None);
    }

    #[test]
    fn uplink_to_loopback_is_loopback() {
        let a = uplink_addr("127.0.0.1", 1883);
        assert_eq!(a, Some("127.0.0.1".parse().unwrap()));
    }
}
