//! Fleet configuration end to end below the daemon: keys made by the real
//! `openssl`, signatures checked both ways, `config sign`, the session's
//! decisions, and power cuts at every step of a push.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use farmcast::config::{VideoEncoder, VideoSource};
use farmcast::fleet::envelope::{self, signing_bytes, Envelope};
use farmcast::fleet::keys::{read_private_key, read_public_keys};
use farmcast::fleet::sim_disk::SimDisk;
use farmcast::fleet::store::{write_atomic, Disk, RealDisk};
use farmcast::fleet::{cli, Action, Layers, Session, Source, Status, Store};
use proptest::prelude::*;

mod common;
use common::fleet::openssl_keypair;

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed for these tests (Debian package `openssl`)");
    out
}

#[test]
fn openssl_and_we_verify_each_others_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = openssl_keypair(dir.path(), "manager");
    let key = read_private_key(&private).unwrap();
    let trusted = read_public_keys(&public).unwrap();
    assert_eq!(trusted, vec![key.verifying_key()]);

    let config = "[video]\nbitrate_kbps = 1800\n";
    let msg = dir.path().join("msg");
    std::fs::write(&msg, signing_bytes("farm-01", 7, config)).unwrap();

    // openssl signs, we verify.
    let sig = dir.path().join("sig");
    let out = openssl(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-inkey",
        private.to_str().unwrap(),
        "-in",
        msg.to_str().unwrap(),
        "-out",
        sig.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = Envelope {
        v: None,
        version: 7,
        target: "farm-01".into(),
        config: config.into(),
        signature: Some(
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(&sig).unwrap()),
        ),
        apply: None,
    };
    envelope::verify(&theirs, &trusted).unwrap();
    let mut bumped = theirs.clone();
    bumped.version = 8;
    assert!(envelope::verify(&bumped, &trusted).is_err());

    // We sign, openssl verifies; and refuses the same signature over other bytes.
    let ours = envelope::sign(&key, "farm-01", 7, config);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(ours.signature.as_deref().unwrap())
        .unwrap();
    let oursig = dir.path().join("oursig");
    std::fs::write(&oursig, raw).unwrap();
    let verify = |msg: &Path| {
        openssl(&[
            "pkeyutl",
            "-verify",
            "-rawin",
            "-pubin",
            "-inkey",
            public.to_str().unwrap(),
            "-in",
            msg.to_str().unwrap(),
            "-sigfile",
            oursig.to_str().unwrap(),
        ])
        .status
        .success()
    };
    assert!(verify(&msg));
    let other = dir.path().join("other");
    std::fs::write(&other, signing_bytes("farm-02", 7, config)).unwrap();
    assert!(!verify(&other));
}

#[test]
fn sign_command_signs_only_valid_layers() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = openssl_keypair(dir.path(), "manager");
    let layer = dir.path().join("layer.toml");
    std::fs::write(&layer, "[video]\nbitrate_kbps = 1800\n").unwrap();

    let json = cli::sign_command(&private, "group:north", 12, None, &layer).unwrap();
    let env = envelope::parse(json.as_bytes()).unwrap();
    assert_eq!((env.version, env.target.as_str()), (12, "group:north"));
    assert_eq!(env.config, "[video]\nbitrate_kbps = 1800\n");
    assert_eq!(
        (env.v, env.apply),
        (None, None),
        "no --apply: a v1 envelope"
    );
    envelope::verify(&env, &read_public_keys(&public).unwrap()).unwrap();

    // --apply: a v2 envelope whose signature covers it, checked by openssl.
    let apply = farmcast::fleet::Apply::Now;
    let json = cli::sign_command(&private, "farm-01", 13, Some(apply), &layer).unwrap();
    let env = envelope::parse(json.as_bytes()).unwrap();
    assert_eq!((env.v, env.apply), (Some(2), Some(apply)));
    envelope::verify(&env, &read_public_keys(&public).unwrap()).unwrap();
    let msg = dir.path().join("v2.msg");
    std::fs::write(
        &msg,
        b"farmcast-config-v2\nfarm-01\n13\nnow\n[video]\nbitrate_kbps = 1800\n",
    )
    .unwrap();
    let sig = dir.path().join("v2.sig");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(env.signature.as_deref().unwrap())
        .unwrap();
    std::fs::write(&sig, raw).unwrap();
    let out = openssl(&[
        "pkeyutl",
        "-verify",
        "-rawin",
        "-pubin",
        "-inkey",
        public.to_str().unwrap(),
        "-in",
        msg.to_str().unwrap(),
        "-sigfile",
        sig.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "openssl does not verify the documented v2 bytes"
    );
    assert!(!json.contains("PRIVATE"));

    for bad in [
        "[video]\nwidht = 640\n",
        "[video\n",
        "device_id = \"x\"\n",
        "[video]\nwidth = \"wide\"\n",
        // Right type, wrong value: caught before it is signed, with its line.
        "[video]\nwidth = 33\n",
        "[[destinations]]\nname = \"a\"\nurl = \"http://x/live\"\nkey = \"k\"\n",
    ] {
        std::fs::write(&layer, bad).unwrap();
        let e = cli::sign_command(&private, "farm-01", 1, None, &layer);
        assert!(e.is_err(), "signed a broken layer: {bad}");
    }
    std::fs::write(&layer, "# a comment\n[video]\nwidth = 33\n").unwrap();
    let why = format!(
        "{:#}",
        cli::sign_command(&private, "farm-01", 1, None, &layer).unwrap_err()
    );
    assert!(why.contains(":3: video.width"), "{why}");
    std::fs::write(&layer, "").unwrap();
    assert!(
        cli::sign_command(&dir.path().join("missing.pem"), "farm-01", 1, None, &layer).is_err()
    );
    assert!(
        cli::sign_command(&public, "farm-01", 1, None, &layer).is_err(),
        "a public key cannot sign"
    );
    assert!(cli::sign_command(&private, "", 1, None, &layer).is_err());
}

const FILE: &str =
    "device_id = \"farm-01\"\n[video]\nsource = \"test\"\n[fleet]\ngroups = [\"north\"]\n";

/// A lab box: no trusted keys, unsigned pushes allowed.
const LAB: &str = "device_id = \"farm-01\"\n[video]\nsource = \"test\"\n[fleet]\ngroups = [\"north\"]\nallow_unsigned = true\n";

fn signed(key: &ed25519_dalek::SigningKey, target: &str, version: u64, config: &str) -> Vec<u8> {
    serde_json::to_vec(&envelope::sign(key, target, version, config)).unwrap()
}

/// A session over a real state dir, trusting `key`.
fn real_session(dir: &Path, key: &ed25519_dalek::SigningKey) -> Session {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    std::fs::write(dir.join("trusted.pem"), pem).unwrap();
    let file = format!("{FILE}trusted_keys_file = \"trusted.pem\"\n");
    let store = Store::open(&dir.join("state")).unwrap();
    let started = Session::start(store, file, dir.to_path_buf()).unwrap();
    assert!(started.reported.is_none());
    started.session
}

#[test]
fn pushes_apply_live_wait_for_the_show_or_cut_it_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut s = real_session(dir.path(), &k);

    let (r, a) = s.handle(
        &Source::Device,
        &signed(&k, "farm-01", 1, "[video]\nbitrate_kbps = 1800\n"),
        true,
    );
    assert_eq!(r.status, Status::Applied, "{r:?}");
    assert!(matches!(a, Action::ApplyLive(c) if c.video.bitrate_kbps == 1800));

    let (r, a) = s.handle(
        &Source::Group("north".into()),
        &signed(&k, "group:north", 1, "[video]\nwidth = 640\nheight = 360\n"),
        true,
    );
    assert_eq!((r.status, a), (Status::Pending, Action::None));
    assert_eq!(s.config().video.width, 1280, "a show is not cut");
    let (r, a) = s.show_ended().unwrap();
    assert_eq!(r.status, Status::Applied);
    assert!(
        matches!(a, Action::Restart(c) if c.video.width == 640 && c.video.bitrate_kbps == 1800)
    );
    assert!(s.show_ended().is_none());

    // `apply: now` only counts when signed: a v2 envelope.
    let now = envelope::sign_v2(
        &k,
        "farm-01",
        2,
        farmcast::fleet::Apply::Now,
        "[video]\nencoder = \"x264enc\"\n",
    );
    let (r, a) = s.handle(&Source::Device, &serde_json::to_vec(&now).unwrap(), true);
    assert_eq!(r.status, Status::Applied);
    assert!(
        matches!(a, Action::Restart(c) if c.video.encoder == VideoEncoder::Element("x264enc".into()))
    );
    assert_eq!(s.config_version(), 2);
}

#[test]
fn a_rejected_push_changes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
    let mut s = real_session(dir.path(), &k);
    s.handle(
        &Source::Device,
        &signed(&k, "farm-01", 3, "[video]\nbitrate_kbps = 1800\n"),
        false,
    );
    let layers = dir.path().join("state/fleet/layers.json");
    let before = std::fs::read(&layers).unwrap();
    let config = s.config().clone();

    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut unsigned = envelope::sign(&k, "farm-01", 9, "");
    unsigned.signature = None;
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (
            signed(&k, "farm-01", 3, "[video]\nbitrate_kbps = 900\n"),
            Some("version"),
        ),
        (signed(&k, "farm-01", 2, ""), Some("version")),
        (signed(&k, "farm-02", 9, ""), Some("target")),
        (signed(&stranger, "farm-01", 9, ""), Some("signature")),
        (serde_json::to_vec(&unsigned).unwrap(), Some("signature")),
        (
            signed(&k, "farm-01", 9, "[video]\nwidth = 641\n"),
            Some("video.width"),
        ),
        (
            signed(&k, "farm-01", 9, "[fleet]\ngroups = []\n"),
            Some("fleet"),
        ),
        (b"{\"version\": 9}".to_vec(), None),
        (vec![b'{'; 70_000], None),
    ];
    for (payload, field) in cases {
        let (r, a) = s.handle(&Source::Device, &payload, false);
        assert_eq!(r.status, Status::Rejected, "{r:?}");
        assert_eq!(r.field.as_deref(), field, "{r:?}");
        assert!(r.error.is_some());
        assert_eq!(a, Action::None);
    }
    assert_eq!(std::fs::read(&layers).unwrap(), before);
    assert_eq!(s.config(), &config);
}

#[test]
fn roll_back_restores_the_last_good_and_refuses_the_failed_version_after_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let k = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    let mut s = real_session(dir.path(), &k);
    s.handle(
        &Source::Device,
        &signed(&k, "farm-01", 1, "[video]\nbitrate_kbps = 1800\n"),
        false,
    );
    s.confirm_running().unwrap();
    let (_, a) = s.handle(
        &Source::Device,
        &signed(&k, "farm-01", 2, "[video]\nsource = \"v4l2:/dev/video9\"\n"),
        false,
    );
    assert!(matches!(a, Action::Restart(_)));

    let (r, a) = s
        .roll_back("camera v4l2:/dev/video9 does not open")
        .unwrap();
    assert_eq!((r.status, r.version), (Status::RolledBack, Some(1)));
    assert!(
        matches!(a, Action::Restart(c) if c.video.source == VideoSource::Test && c.video.bitrate_kbps == 1800)
    );
    drop(s);

    let mut s = real_session(dir.path(), &k);
    assert_eq!(s.config().video.bitrate_kbps, 1800);
    let (r, _) = s.handle(
        &Source::Device,
        &signed(&k, "farm-01", 2, "[video]\nsource = \"v4l2:/dev/video9\"\n"),
        false,
    );
    assert_eq!(r.field.as_deref(), Some("version"), "{r:?}");
}

fn sim_store(disk: &SimDisk) -> Store {
    Store::with_disk(PathBuf::from("/state/fleet"), Box::new(disk.clone()))
}

fn start(disk: &SimDisk, file: &str) -> farmcast::fleet::session::Started {
    Session::start(sim_store(disk), file.to_string(), PathBuf::from("/")).unwrap()
}

#[test]
fn start_falls_back_to_the_last_good_and_says_so() {
    let disk = SimDisk::new();
    let mut s = start(&disk, LAB).session;
    let mut unsigned = envelope::sign(
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        "farm-01",
        4,
        "[video]\nbitrate_kbps = 1800\n",
    );
    unsigned.signature = None; // a lab box: taken, loudly
    let (r, _) = s.handle(
        &Source::Device,
        &serde_json::to_vec(&unsigned).unwrap(),
        false,
    );
    assert_eq!(r.status, Status::Applied);
    s.confirm_running().unwrap();

    // A stored layer that no longer loads (written behind the session's back).
    let mut broken = unsigned.clone();
    broken.version = 5;
    broken.config = "[video]\nwidth = 641\n".into();
    let store = sim_store(&disk);
    store
        .save_layers(&Layers::default().with(&Source::Device, broken))
        .unwrap();
    let started = start(&disk, LAB);
    let r = started.reported.expect("a rollback is reported");
    assert_eq!((r.status, r.version), (Status::RolledBack, Some(4)));
    assert_eq!(r.field.as_deref(), Some("video.width"));
    assert_eq!(started.session.config().video.bitrate_kbps, 1800);

    // The local file itself broken: the last good copy of it runs.
    let started = start(&disk, "[video\n");
    assert!(started.reported.is_some());
    assert_eq!(started.session.config().device_id, "farm-01");
    assert_eq!(started.session.config().video.bitrate_kbps, 1800);
}

#[test]
fn write_atomic_leaves_old_or_new_after_a_power_cut_at_any_step() {
    let path = Path::new("/d/file.json");
    for k in 0..=4 {
        let disk = SimDisk::new();
        write_atomic(&disk, path, b"old").unwrap();
        disk.fail_after(k);
        let result = write_atomic(&disk, path, b"new");
        disk.crash();
        let got = disk.read(path).unwrap();
        assert!(
            got == Some(b"old".to_vec()) || got == Some(b"new".to_vec()),
            "cut after {k}: {got:?}"
        );
        if result.is_ok() {
            assert_eq!(
                got,
                Some(b"new".to_vec()),
                "a write that returned Ok is durable"
            );
        }
    }
}

#[test]
fn a_power_cut_at_any_step_of_a_push_leaves_a_valid_config() {
    let k = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let mut v1 = envelope::sign(&k, "farm-01", 1, "[video]\nbitrate_kbps = 1000\n");
    v1.signature = None;
    let mut v2 = envelope::sign(&k, "farm-01", 2, "[video]\nbitrate_kbps = 2000\n");
    v2.signature = None;
    let v2 = serde_json::to_vec(&v2).unwrap();
    let setup = || {
        let disk = SimDisk::new();
        let mut s = start(&disk, LAB).session;
        s.handle(&Source::Device, &serde_json::to_vec(&v1).unwrap(), false);
        s.confirm_running().unwrap();
        (disk, s)
    };
    let (disk, mut s) = setup();
    let before = disk.ops();
    s.handle(&Source::Device, &v2, false);
    s.confirm_running().unwrap();
    let steps = disk.ops() - before;
    assert!(
        steps >= 8,
        "two atomic writes of four steps each, got {steps}"
    );

    for cut in 0..=steps {
        let (disk, mut s) = setup();
        disk.fail_after(cut);
        s.handle(&Source::Device, &v2, false);
        let _ = s.confirm_running();
        disk.crash();
        let started = start(&disk, LAB);
        let bitrate = started.session.config().video.bitrate_kbps;
        assert!(
            bitrate == 1000 || bitrate == 2000,
            "cut after {cut}: {bitrate}"
        );
        if cut >= 4 {
            assert_eq!(bitrate, 2000, "cut after {cut}: layers were durable");
        }
    }
}

#[test]
fn a_real_disk_store_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.load_layers().unwrap(), Layers::default());
    let env = envelope::sign(
        &ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        "group:north",
        3,
        "",
    );
    let layers = Layers::default().with(&Source::Group("north".into()), env);
    store.save_layers(&layers).unwrap();
    assert_eq!(store.load_layers().unwrap(), layers);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("fleet"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    assert!(store.rollback().unwrap().is_none());
    store.promote_last_good(FILE, &layers).unwrap();
    assert_eq!(store.rollback().unwrap().unwrap().layers, layers);
    std::fs::write(store.layers_path(), b"{ torn").unwrap();
    assert!(store.load_layers().is_err());
    RealDisk.sync_dir(dir.path()).unwrap();
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = envelope::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_near_envelopes(
        version in any::<i64>(), target in ".{0,20}", config in ".{0,40}", sig in "[A-Za-z0-9+/=]{0,100}",
    ) {
        let json = serde_json::json!({"version": version, "target": target, "config": config, "signature": sig});
        if let Ok(env) = envelope::parse(json.to_string().as_bytes()) {
            let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]).verifying_key();
            let _ = envelope::verify(&env, &[key]);
        }
    }

    #[test]
    fn any_changed_byte_breaks_the_signature(
        seed in any::<[u8; 32]>(),
        target in "[ -~]{1,24}",
        version in any::<u64>(),
        config in "[ -~\n]{1,200}",
        which in 0usize..3,
        at in any::<prop::sample::Index>(),
        to in 0x20u8..0x7f,
    ) {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let env = envelope::sign(&key, &target, version, &config);
        let trusted = [key.verifying_key()];
        prop_assert!(envelope::verify(&env, &trusted).is_ok());
        let flip = |s: &str| {
            let mut b = s.as_bytes().to_vec();
            let i = at.index(b.len());
            b[i] = if b[i] == to { if to == b'~' { b' ' } else { to + 1 } } else { to };
            String::from_utf8(b).unwrap()
        };
        let mut bad = env.clone();
        match which {
            0 => bad.target = flip(&env.target),
            1 => bad.config = flip(&env.config),
            _ => bad.version = flip(&env.version.to_string()).parse().unwrap_or(env.version ^ 1),
        }
        if bad.version == env.version && which == 2 {
            bad.version = env.version ^ 1;
        }
        prop_assert_ne!(&bad, &env);
        prop_assert!(envelope::verify(&bad, &trusted).is_err());
    }
}
