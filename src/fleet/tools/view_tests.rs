use super::*;

fn at() -> Instant {
    Instant::now()
}

#[test]
fn topics_are_told_apart() {
    assert_eq!(classify("p", "p/a/status"), Some(Topic::Status("a".into())));
    assert_eq!(
        classify("p", "p/a/availability"),
        Some(Topic::Availability("a".into()))
    );
    assert_eq!(
        classify("p", "p/a/config/reported"),
        Some(Topic::Reported("a".into()))
    );
    assert_eq!(
        classify("p", "p/a/config/desired"),
        Some(Topic::Desired("a".into()))
    );
    assert_eq!(
        classify("p", "p/fleet/g/config/desired"),
        Some(Topic::GroupDesired("g".into()))
    );
    assert_eq!(classify("p", "q/a/status"), None);
    assert_eq!(classify("p", "pp/a/status"), None);
    assert_eq!(classify("p", "p/a/events"), None);
}

#[test]
fn a_box_is_built_from_its_three_topics() {
    let mut v = FleetView::new("p");
    let now = at();
    v.on_message("p/a/availability", b"online", true, now);
    v.on_message(
        "p/a/status",
        br#"{"state":"live","version":"0.1.0","config_version":3,"groups":["north"],
            "uplink_addr":"10.0.0.2","recording":{"free_bytes":1073741824}}"#,
        true,
        now,
    );
    v.on_message(
        "p/a/config/reported",
        br#"{"version":7,"status":"pending","hash":"ab","note":"waits"}"#,
        false,
        now,
    );
    let b = &v.boxes["a"];
    assert_eq!(b.online, Some(true));
    assert!(b.is_live());
    assert!(b.in_group("north"));
    assert_eq!(b.config_version, Some(3));
    assert_eq!(b.disk_free_bytes, Some(1 << 30));
    assert_eq!(b.reported.as_ref().unwrap().status, "pending");
    assert_eq!(b.rank(), Rank::Pending);
    // Only the live message counts as seen.
    assert_eq!(b.seen_ago(now), Some(Duration::ZERO));
}

#[test]
fn problems_sort_first() {
    let mut v = FleetView::new("p");
    let now = at();
    let ok = br#"{"state":"standby","groups":["g"]}"#;
    for id in ["a", "b", "c", "d"] {
        v.on_message(&format!("p/{id}/availability"), b"online", true, now);
        v.on_message(&format!("p/{id}/status"), ok, true, now);
    }
    v.on_message("p/b/availability", b"offline", true, now);
    v.on_message(
        "p/d/config/reported",
        br#"{"version":2,"status":"rolled_back","hash":"x","error":"no standby"}"#,
        true,
        now,
    );
    v.on_message(
        "p/c/status",
        br#"{"state":"error","groups":["g"]}"#,
        true,
        now,
    );
    let order: Vec<&str> = v.sorted(Some("g")).iter().map(|b| b.id.as_str()).collect();
    assert_eq!(order, ["d", "c", "b", "a"]);
    assert!(v.sorted(Some("other")).is_empty());
}

#[test]
fn hostile_documents_are_bounded() {
    let mut v = FleetView::new("p");
    let now = at();
    let huge = vec![b'x'; MAX_DOC + 1];
    v.on_message("p/a/status", &huge, true, now);
    assert!(v.boxes["a"].problems[0].contains("more than"));
    let long = format!(
        r#"{{"state":"{}","groups":[{}],"errors":{{"capture":"{}"}}}}"#,
        "\\u001b".repeat(500),
        (0..100)
            .map(|i| format!("\"g{i}\""))
            .collect::<Vec<_>>()
            .join(","),
        "e".repeat(5000)
    );
    v.on_message("p/a/status", long.as_bytes(), true, now);
    let b = &v.boxes["a"];
    assert!(b.state.as_ref().unwrap().chars().count() < 120);
    assert!(!b.state.as_ref().unwrap().contains('\u{1b}'));
    assert_eq!(b.groups.len(), MAX_LIST);
    assert!(b.problems.iter().all(|p| p.len() < 400), "{:?}", b.problems);
    // A new good status clears the old problems.
    v.on_message("p/a/status", br#"{"state":"standby"}"#, true, now);
    assert!(v.boxes["a"].problems.is_empty());
    // Ids too long to be a box are counted, not kept.
    v.on_message(&format!("p/{}/status", "i".repeat(200)), b"{}", true, now);
    assert_eq!(v.ignored, 1);
    assert_eq!(v.boxes.len(), 1);
}

#[test]
fn an_empty_retained_payload_clears_the_report() {
    let mut v = FleetView::new("p");
    let now = at();
    v.on_message(
        "p/a/config/reported",
        br#"{"version":1,"status":"applied","hash":"h"}"#,
        true,
        now,
    );
    assert!(v.boxes["a"].reported.is_some());
    v.on_message("p/a/config/reported", b"", false, now);
    assert!(v.boxes["a"].reported.is_none());
}
