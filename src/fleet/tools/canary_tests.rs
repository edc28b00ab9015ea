use super::*;

fn boxv(id: &str, online: bool, state: &str) -> BoxView {
    BoxView {
        id: id.into(),
        online: Some(online),
        state: Some(state.into()),
        groups: vec!["g".into()],
        ..Default::default()
    }
}

fn report(version: u64, status: &str, hash: &str) -> ReportView {
    ReportView {
        version: Some(version),
        status: status.into(),
        hash: hash.into(),
        error: Some("why".into()),
        field: Some("video.framerate".into()),
        note: None,
    }
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("3"), Ok(CanarySize::Count(3)));
    assert_eq!(parse_size("10%"), Ok(CanarySize::Percent(10)));
    for bad in ["0", "0%", "101%", "x", "-1", ""] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_canary_is_online_off_air_boxes_by_id() {
    let boxes = [
        boxv("d", true, "standby"),
        boxv("a", true, "live"),
        boxv("c", false, "standby"),
        boxv("b", true, "standby"),
        boxv("e", true, "standby"),
    ];
    let refs: Vec<&BoxView> = boxes.iter().collect();
    assert_eq!(pick(&refs, CanarySize::Count(2)), ["b", "d"]);
    // 20% of five is one box; never zero.
    assert_eq!(pick(&refs, CanarySize::Percent(20)), ["b"]);
    assert_eq!(pick(&refs, CanarySize::Percent(1)), ["b"]);
    assert_eq!(pick(&refs, CanarySize::Count(10)), ["b", "d", "e"]);
}

#[test]
fn healthy_canaries_release_the_group_push_after_the_hold() {
    let t0 = Instant::now();
    let (a, b) = (boxv("a", true, "standby"), boxv("b", true, "standby"));
    let hold = Duration::from_secs(30);
    let mut r = Rollout::new(7, "h", &[&a, &b], hold, t0);
    assert_eq!(r.poll(t0), None);
    let t1 = t0 + Duration::from_secs(2);
    r.on_report("a", &report(7, "applied", "h"), t1);
    r.on_state("a", "connecting");
    let t2 = t0 + Duration::from_secs(4);
    r.on_report("b", &report(7, "applied", "h"), t2);
    assert_eq!(r.next_deadline(t2), Some(t1 + hold));
    // a's hold is over, but b's is not, and a has not come back to standby.
    assert_eq!(r.poll(t1 + hold), None);
    r.on_state("a", "standby");
    assert_eq!(r.poll(t1 + hold), None);
    assert_eq!(r.poll(t2 + hold), Some(Step::PushGroup));
    assert_eq!(r.poll(t2 + hold), None, "a step is given once");
}

#[test]
fn a_rejection_stops_the_rollout_and_says_why() {
    let t0 = Instant::now();
    let (a, b) = (boxv("a", true, "standby"), boxv("b", true, "standby"));
    let mut r = Rollout::new(7, "h", &[&a, &b], Duration::from_secs(30), t0);
    r.on_report("a", &report(7, "applied", "h"), t0);
    r.on_report(
        "b",
        &report(7, "rejected", "h"),
        t0 + Duration::from_secs(1),
    );
    match r.poll(t0 + Duration::from_secs(1)) {
        Some(Step::Stop(why)) => {
            assert!(
                why.contains("canary box b rejected: video.framerate: why"),
                "{why}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rollback_during_the_hold_stops_the_rollout() {
    let t0 = Instant::now();
    let a = boxv("a", true, "standby");
    let hold = Duration::from_secs(60);
    let mut r = Rollout::new(7, "h", &[&a], hold, t0);
    r.on_report("a", &report(7, "applied", "h"), t0);
    // The daemon's trial ends before the hold: its rollback is seen.
    let t1 = t0 + Duration::from_secs(45);
    r.on_report("a", &report(6, "rolled_back", "old"), t1);
    assert!(matches!(r.poll(t1), Some(Step::Stop(w)) if w.contains("rolled back")));
    assert_eq!(r.poll(t0 + hold), None);
}
