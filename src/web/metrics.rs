//! `GET /metrics`: the last published status in the Prometheus text format
//! (version 0.0.4), for the technicians' Prometheus. Pure: status in, text out.

use std::fmt::Write as _;

use crate::mqtt::payloads::Status;

const STATES: &[&str] = &[
    "standby",
    "connecting",
    "live",
    "reconnecting",
    "stopping",
    "error",
];

/// A label value as the format wants it: `\`, `"` and line breaks escaped.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// The exposition text; before the first status only `farmcast_up`.
pub fn render(status: Option<&Status>) -> String {
    let mut o = Out(String::new());
    o.one(
        "farmcast_up",
        "gauge",
        "1 once the daemon has published a status.",
        f64::from(u8::from(status.is_some())),
    );
    let Some(s) = status else { return o.0 };
    o.family("farmcast_state", "gauge", "1 for the show's current state.");
    for st in STATES {
        o.sample(
            "farmcast_state",
            &[("state", st)],
            f64::from(u8::from(s.state == *st)),
        );
    }
    o.one(
        "farmcast_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        s.uptime_s as f64,
    );
    o.one(
        "farmcast_video_fps",
        "gauge",
        "Encoded frames per second.",
        s.video.fps,
    );
    o.one(
        "farmcast_video_target_bitrate_kbps",
        "gauge",
        "The encoder's bitrate target.",
        f64::from(s.video.bitrate_kbps),
    );
    o.one(
        "farmcast_video_dropped_frames_total",
        "counter",
        "Frames dropped before the encoder.",
        s.video.dropped_frames as f64,
    );
    let per_dest: [(&str, &str, &str); 4] = [
        (
            "farmcast_destination_up",
            "gauge",
            "1 while the destination is sending.",
        ),
        (
            "farmcast_destination_bitrate_kbps",
            "gauge",
            "Measured send rate.",
        ),
        (
            "farmcast_destination_target_bitrate_kbps",
            "gauge",
            "What adaptive bitrate aims at for this link.",
        ),
        (
            "farmcast_destination_reconnects_total",
            "counter",
            "Reconnects since the show began.",
        ),
    ];
    for (name, kind, help) in per_dest {
        o.family(name, kind, help);
        for d in &s.destinations {
            let v = match name {
                "farmcast_destination_up" => f64::from(u8::from(d.state == "up")),
                "farmcast_destination_bitrate_kbps" => f64::from(d.bitrate_kbps),
                "farmcast_destination_target_bitrate_kbps" => f64::from(d.target_kbps),
                _ => f64::from(d.reconnects),
            };
            o.sample(name, &[("destination", &d.name)], v);
        }
    }
    let srt: [(&str, &str, &str); 3] = [
        ("farmcast_srt_rtt_ms", "gauge", "SRT round trip."),
        (
            "farmcast_srt_packets_lost_total",
            "counter",
            "SRT packets reported lost by the server.",
        ),
        (
            "farmcast_srt_packets_dropped_total",
            "counter",
            "SRT packets given up as too late.",
        ),
    ];
    for (name, kind, help) in srt {
        o.family(name, kind, help);
        for d in &s.destinations {
            let Some(x) = &d.srt else { continue };
            let v = match name {
                "farmcast_srt_rtt_ms" => f64::from(x.rtt_ms),
                "farmcast_srt_packets_lost_total" => x.packets_lost as f64,
                _ => x.packets_dropped as f64,
            };
            o.sample(name, &[("destination", &d.name)], v);
        }
    }
    o.one(
        "farmcast_disk_free_bytes",
        "gauge",
        "Free space on the recordings' disk.",
        s.recording.free_bytes as f64,
    );
    o.one(
        "farmcast_recordings_bytes",
        "gauge",
        "Space the recordings take.",
        s.recording.used_bytes as f64,
    );
    if let Some(t) = s.cpu_temp_c {
        o.one(
            "farmcast_cpu_temperature_celsius",
            "gauge",
            "The SoC's temperature.",
            t,
        );
    }
    o.family(
        "farmcast_tags_total",
        "counter",
        "Products tagged on air since the daemon started.",
    );
    for (product, n) in &s.sales.by_product {
        o.sample("farmcast_tags_total", &[("product", product)], *n as f64);
    }
    o.family(
        "farmcast_sales_amount_total",
        "counter",
        "The tagged prices summed since the daemon started, by currency.",
    );
    for (currency, sum) in &s.sales.amount {
        o.sample(
            "farmcast_sales_amount_total",
            &[("currency", currency)],
            *sum,
        );
    }
    if let Some(w) = s.scale.weight_kg {
        o.one(
            "farmcast_scale_weight_kg",
            "gauge",
            "The scale's reading.",
            w,
        );
        o.one(
            "farmcast_scale_stable",
            "gauge",
            "1 while the reading is stable.",
            f64::from(u8::from(s.scale.stable)),
        );
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::payloads::DestinationStatus;

    #[test]
    fn renders_state_destinations_and_escapes_labels() {
        let mut s = Status {
            state: "live".into(),
            ..Default::default()
        };
        s.destinations.push(DestinationStatus {
            name: "a\"b\\c".into(),
            state: "up".into(),
            bitrate_kbps: 600,
            ..Default::default()
        });
        let text = render(Some(&s));
        assert!(
            text.contains("farmcast_state{state=\"live\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("farmcast_state{state=\"standby\"} 0\n"));
        assert!(
            text.contains("farmcast_destination_bitrate_kbps{destination=\"a\\\"b\\\\c\"} 600\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE farmcast_destination_reconnects_total counter\n"));
        assert_eq!(render(None), "# HELP farmcast_up 1 once the daemon has published a status.\n# TYPE farmcast_up gauge\nfarmcast_up 0\n");
    }

    #[test]
    fn tags_and_sales_are_counters_by_product_and_currency() {
        let mut s = Status::default();
        s.sales.record("mussels", "CNY", "37.50");
        s.sales.record("mussels", "CNY", "12.00");
        s.sales.record("eggs", "CNY", "18.5");
        let text = render(Some(&s));
        assert!(
            text.contains("# TYPE farmcast_tags_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("farmcast_tags_total{product=\"mussels\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("farmcast_tags_total{product=\"eggs\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("farmcast_sales_amount_total{currency=\"CNY\"} 68\n"),
            "{text}"
        );
    }
}
