use super::*;

fn report(version: u64, status: &str, hash: &str) -> ReportView {
    ReportView {
        version: Some(version),
        status: status.into(),
        hash: hash.into(),
        error: (status == "rejected").then(|| "signature does not verify".into()),
        field: (status == "rejected").then(|| "signature".into()),
        note: None,
    }
}

#[test]
fn a_push_settles_when_every_box_answered() {
    let t0 = Instant::now();
    let mut t = Tally::new(7, "h", t0);
    t.add("a", Some(true), None, true, t0);
    t.add(
        "b",
        Some(true),
        Some(&report(6, "applied", "old")),
        true,
        t0,
    );
    assert!(!t.settled());
    assert_eq!(t.counts().waiting, 2);
    let t1 = t0 + Duration::from_secs(3);
    assert_eq!(
        t.on_report("a", &report(7, "applied", "h"), t1),
        Some(Outcome::Applied)
    );
    // Another version's report, or another layer's hash, is not an answer.
    assert_eq!(t.on_report("b", &report(6, "applied", "h"), t1), None);
    assert_eq!(t.on_report("b", &report(7, "applied", "other"), t1), None);
    assert!(!t.settled());
    let t2 = t0 + Duration::from_secs(5);
    assert_eq!(
        t.on_report("b", &report(7, "pending", "h"), t2),
        Some(Outcome::Pending)
    );
    assert!(t.settled(), "a box in a show has answered: pending");
    assert!(!t.failed());
    assert_eq!(t.last_applied(), Some(Duration::from_secs(3)));
    assert_eq!(
        summary(&t.counts()),
        "applied 1/2 · pending until the show ends 1"
    );
}

#[test]
fn a_retained_answer_counts_at_once() {
    let t0 = Instant::now();
    let mut t = Tally::new(7, "h", t0);
    t.add("a", Some(true), Some(&report(7, "applied", "h")), true, t0);
    assert!(t.settled());
    assert_eq!(t.counts().applied, 1);
}

#[test]
fn a_box_away_at_the_push_is_late_not_lost() {
    let t0 = Instant::now();
    let mut t = Tally::new(7, "h", t0);
    t.add("a", Some(false), None, true, t0);
    t.add("b", Some(true), None, true, t0);
    assert_eq!(t.counts().offline, 1);
    // b drops before answering, then both come back and apply.
    t.on_availability("b", false, t0 + Duration::from_secs(1));
    assert_eq!(t.counts().offline, 2);
    let later = t0 + Duration::from_secs(600);
    t.on_availability("a", true, later);
    t.on_availability("b", true, later);
    assert_eq!(t.counts().waiting, 2);
    t.on_report("a", &report(7, "applied", "h"), later);
    t.on_report("b", &report(7, "applied", "h"), later);
    let c = t.counts();
    assert_eq!((c.applied, c.late, c.offline), (2, 2, 0));
    assert!(t.get("a").unwrap().late);
    assert_eq!(t.last_applied(), Some(Duration::from_secs(600)));
}

#[test]
fn a_box_first_seen_after_the_push_is_late() {
    let t0 = Instant::now();
    let mut t = Tally::new(7, "h", t0);
    t.add("new", Some(true), None, false, t0 + Duration::from_secs(9));
    t.on_report(
        "new",
        &report(7, "applied", "h"),
        t0 + Duration::from_secs(10),
    );
    assert_eq!(t.counts().late, 1);
}

#[test]
fn rejections_and_rollbacks_fail_the_push() {
    let t0 = Instant::now();
    let mut t = Tally::new(7, "h", t0);
    t.add("a", Some(true), None, true, t0);
    t.add("b", Some(true), None, true, t0);
    // A rollback that was already retained before the push is no answer.
    t.add(
        "c",
        Some(true),
        Some(&report(3, "rolled_back", "x")),
        true,
        t0,
    );
    assert_eq!(t.get("c").unwrap().outcome, Outcome::Waiting);
    t.on_report("a", &report(7, "applied", "h"), t0 + Duration::from_secs(1));
    // The rollback report carries the layer the box went back to.
    let rb = ReportView {
        error: Some("did not reach standby".into()),
        ..report(6, "rolled_back", "old")
    };
    assert_eq!(
        t.on_report("a", &rb, t0 + Duration::from_secs(31)),
        Some(Outcome::RolledBack)
    );
    t.on_report(
        "b",
        &report(7, "rejected", "h"),
        t0 + Duration::from_secs(2),
    );
    assert!(t.failed());
    let (id, e) = t.first_failure().unwrap();
    assert_eq!((id.as_str(), e.field.as_deref()), ("b", Some("signature")));
    assert_eq!(t.counts().rolled_back, 1);
}

#[test]
fn the_bar_fills_with_answers() {
    assert_eq!(bar(0, 4, 4), "[....]");
    assert_eq!(bar(2, 4, 4), "[##..]");
    assert_eq!(bar(4, 4, 4), "[####]");
    assert_eq!(bar(0, 0, 4), "[####]");
}
