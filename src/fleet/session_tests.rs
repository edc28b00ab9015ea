//! The session's answers to hostile or repeated pushes, on a real state dir.

use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::SigningKey;

use super::*;
use crate::fleet::envelope::{sign, sign_v2, Apply};

const BASE: &str =
    "device_id = \"farm-01\"\n[video]\nsource = \"test\"\n[fleet]\ngroups = [\"north\"]\n";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The local file trusting `k`, with its key file written beside it.
fn trusting(dir: &Path, k: &SigningKey) -> String {
    let pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    std::fs::write(dir.join("trusted.pem"), pem).unwrap();
    format!("{BASE}trusted_keys_file = \"trusted.pem\"\n")
}

fn start(dir: &Path, file: &str) -> Session {
    let store = Store::open(&dir.join("state")).unwrap();
    Session::start(store, file.to_string(), dir.to_path_buf())
        .unwrap()
        .session
}

fn json(env: &Envelope) -> Vec<u8> {
    serde_json::to_vec(env).unwrap()
}

#[test]
fn without_trusted_keys_every_push_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), BASE);
    let mut unsigned = sign(&key(1), "farm-01", 1, "[video]\nbitrate_kbps = 900\n");
    unsigned.signature = None;
    for env in [unsigned, sign(&key(1), "farm-01", 2, "")] {
        let (r, a) = s.handle(&Source::Device, &json(&env), false);
        assert_eq!(r.status, Status::Rejected, "{r:?}");
        assert_eq!(r.field.as_deref(), Some("fleet.trusted_keys_file"));
        assert_eq!(a, Action::None);
    }
    assert!(!dir.path().join("state/fleet/layers.json").exists());
    assert_eq!(
        s.config().video.bitrate_kbps,
        Config::default().video.bitrate_kbps
    );

    // A lab box that says so takes them.
    let lab = format!("{BASE}allow_unsigned = true\n");
    let mut s = start(dir.path(), &lab);
    let mut unsigned = sign(&key(1), "farm-01", 3, "[video]\nbitrate_kbps = 900\n");
    unsigned.signature = None;
    let (r, _) = s.handle(&Source::Device, &json(&unsigned), false);
    assert_eq!(r.status, Status::Applied, "{r:?}");
}

#[test]
fn a_rejected_payload_is_answered_from_memory_until_the_state_changes() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(2);
    let file = trusting(dir.path(), &k);
    let mut s = start(dir.path(), &file);
    let bad = json(&sign(&key(3), "farm-01", 5, "[video]\nwidth = 641\n"));
    let (first, _) = s.handle(&Source::Device, &bad, false);
    assert_eq!(first.field.as_deref(), Some("signature"));
    assert_eq!(s.validations(), 1);
    let (again, a) = s.handle(&Source::Device, &bad, false);
    assert_eq!((again, a), (first.clone(), Action::None));
    assert_eq!(s.validations(), 1, "checked again instead of remembered");

    // A restart (the retained push is delivered again): still from memory.
    drop(s);
    let mut s = start(dir.path(), &file);
    assert_eq!(s.handle(&Source::Device, &bad, false).0, first);
    assert_eq!(s.validations(), 0, "checked again after a restart");

    // A technician changes the local file: the push is judged afresh.
    let mut s = start(dir.path(), &format!("{file}# edited\n"));
    assert_eq!(s.handle(&Source::Device, &bad, false).0, first);
    assert_eq!(s.validations(), 1);

    // Bounded: the oldest are forgotten.
    for v in 0..(REJECTED_KEPT as u64 + 4) {
        let other = json(&sign(&key(3), "farm-01", 100 + v, ""));
        s.handle(&Source::Device, &other, false);
    }
    let kept: Vec<RejectedEntry> =
        serde_json::from_slice(&std::fs::read(s.store.rejected_path()).unwrap()).unwrap();
    assert_eq!(kept.len(), REJECTED_KEPT);

    // A good push is never remembered as rejected.
    let good = json(&sign(&k, "farm-01", 1, "[video]\nbitrate_kbps = 900\n"));
    assert_eq!(
        s.handle(&Source::Device, &good, false).0.status,
        Status::Applied
    );
}

#[test]
fn damaged_layers_do_not_make_old_signed_envelopes_replayable() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(4);
    let file = trusting(dir.path(), &k);
    let mut s = start(dir.path(), &file);
    let v1 = json(&sign(&k, "farm-01", 1, "[video]\nbitrate_kbps = 900\n"));
    let v2 = json(&sign(&k, "farm-01", 2, "[video]\nbitrate_kbps = 1100\n"));
    let g1 = json(&sign(&k, "group:north", 4, "[video]\nframerate = 25\n"));
    for p in [&v1, &v2] {
        assert_eq!(
            s.handle(&Source::Device, p, false).0.status,
            Status::Applied
        );
    }
    let north = Source::Group("north".into());
    assert_eq!(s.handle(&north, &g1, false).0.status, Status::Applied);
    drop(s);

    std::fs::write(dir.path().join("state/fleet/layers.json"), b"{ torn").unwrap();
    let mut s = start(dir.path(), &file);
    assert_eq!(
        s.config().video.bitrate_kbps,
        Config::default().video.bitrate_kbps
    );
    for (source, payload) in [
        (&Source::Device, &v1),
        (&Source::Device, &v2),
        (&north, &g1),
    ] {
        let (r, a) = s.handle(source, payload, false);
        assert_eq!(
            (r.status, r.field.as_deref()),
            (Status::Rejected, Some("version")),
            "{r:?}"
        );
        assert_eq!(a, Action::None);
    }
    let v3 = json(&sign(&k, "farm-01", 3, "[video]\nbitrate_kbps = 1200\n"));
    assert_eq!(
        s.handle(&Source::Device, &v3, false).0.status,
        Status::Applied
    );
}

#[test]
fn the_same_layer_with_a_signed_apply_now_cuts_the_show_it_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(5);
    let file = trusting(dir.path(), &k);
    let mut s = start(dir.path(), &file);
    let layer = "[video]\nwidth = 640\nheight = 360\n";
    let later = json(&sign_v2(&k, "farm-01", 7, Apply::AfterShow, layer));
    let (r, a) = s.handle(&Source::Device, &later, true);
    assert_eq!((r.status, a), (Status::Pending, Action::None));
    assert!(r.note.is_some());

    // A v1 of the same layer with an unsigned apply added is refused.
    let mut forged = sign(&k, "farm-01", 7, layer);
    forged.apply = Some(Apply::Now);
    let (r, _) = s.handle(&Source::Device, &json(&forged), true);
    assert_eq!(r.field.as_deref(), Some("apply"), "{r:?}");
    assert_eq!(s.config().video.width, 1280);

    // The manager re-signs version 7 with apply now: acted on at once.
    let now = json(&sign_v2(&k, "farm-01", 7, Apply::Now, layer));
    assert!(!s.is_current(&Source::Device, &now));
    let (r, a) = s.handle(&Source::Device, &now, true);
    assert_eq!((r.status, r.version), (Status::Applied, Some(7)), "{r:?}");
    assert!(matches!(a, Action::Restart(c) if c.video.width == 640));
    assert_eq!(s.config().video.width, 640);
    assert!(s.show_ended().is_none());
    // Delivered again (retained): held, nothing to do.
    assert!(s.is_current(&Source::Device, &now));
    // Back to after_show for a layer in force: reported as in force, no cut.
    let (r, a) = s.handle(&Source::Device, &later, true);
    assert_eq!((r.status, a), (Status::Applied, Action::None));
}

#[test]
fn hardware_changes_wait_for_a_restart_and_never_become_the_last_good_before() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(6);
    let file = trusting(dir.path(), &k);
    let mut s = start(dir.path(), &file);
    s.confirm_running().unwrap();
    let lkg = std::fs::read(s.store.last_good_path()).unwrap();
    let push = json(&sign(
        &k,
        "farm-01",
        1,
        "[gpio]\ngo_live_pin = 5\n[video]\nbitrate_kbps = 900\n",
    ));
    let (r, a) = s.handle(&Source::Device, &push, false);
    assert_eq!((r.status, a), (Status::Pending, Action::None), "{r:?}");
    assert_eq!(r.field.as_deref(), Some("gpio.go_live_pin"));
    assert!(
        r.note.as_deref().is_some_and(|n| n.contains("restart")),
        "{r:?}"
    );
    assert_eq!(s.config().gpio.go_live_pin, 17, "the old pins are in force");
    s.confirm_running().unwrap();
    assert_eq!(std::fs::read(s.store.last_good_path()).unwrap(), lkg);
    // The retained push delivered again before the restart: still pending.
    assert!(s.is_current(&Source::Device, &push));
    drop(s);

    // After the restart it is in force, and the redelivered push says so once.
    let mut s = start(dir.path(), &file);
    assert_eq!(s.config().gpio.go_live_pin, 5);
    assert!(!s.is_current(&Source::Device, &push));
    let (r, a) = s.handle(&Source::Device, &push, false);
    assert_eq!(
        (r.status, r.version, a),
        (Status::Applied, Some(1), Action::None)
    );
    assert!(s.is_current(&Source::Device, &push));
    drop(s);
    assert!(start(dir.path(), &file).is_current(&Source::Device, &push));
}

#[test]
fn the_last_good_runs_when_the_file_is_gone_and_is_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = || Store::open(&dir.path().join("state")).unwrap();
    assert!(Session::start_last_good(store(), dir.path().to_path_buf()).is_none());
    let s = start(dir.path(), BASE);
    s.confirm_running().unwrap();
    let path = s.store.last_good_path();
    let before = std::fs::read(&path).unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let started = Session::start_last_good(store(), dir.path().to_path_buf()).unwrap();
    assert_eq!(started.session.config().device_id, "farm-01");
    started.session.confirm_running().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
}

#[test]
fn reports_echo_only_excerpts_of_what_was_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(7);
    let file = trusting(dir.path(), &k);
    let mut s = start(dir.path(), &file);
    let huge = "k".repeat(20_000);
    let payloads = [
        json(&sign(&k, "farm-01", 1, &format!("[video]\n{huge} = 1\n"))),
        json(&sign(&k, &huge, 1, "")),
        format!("{{\"version\": \"{huge}\"}}").into_bytes(),
    ];
    for payload in payloads {
        let (r, _) = s.handle(&Source::Device, &payload, false);
        assert_eq!(r.status, Status::Rejected);
        let echoed = serde_json::to_string(&r).unwrap();
        assert!(
            echoed.len() < 1_000,
            "{} bytes: {}",
            echoed.len(),
            &echoed[..200]
        );
    }
    let north = Source::Group(huge.clone());
    let (r, _) = s.handle(&north, &json(&sign(&k, "group:x", 1, "")), false);
    assert!(serde_json::to_string(&r).unwrap().len() < 1_000);
}
