//! Provisioning on a fake boot partition (a temp dir) and a fake config
//! folder; ownership is left alone so the tests do not depend on being root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;

use super::bundle::{is_safe_key_name, key_source};
use super::*;

const KEY: &str = "live_8f3a-SECRET-do-not-leak";

const GOOD: &str = r#"device_id = "farm-07"

[video]
source = "test"

[[destinations]]
name = "taobao"
url = "rtmp://127.0.0.1:1935/live"
key_file = "/etc/farmcast/keys/taobao"
"#;

struct Fake {
    _dir: tempfile::TempDir,
    boot: PathBuf,
    etc: PathBuf,
}

fn fake() -> Fake {
    let dir = tempfile::tempdir().expect("temp dir");
    let boot = dir.path().join("boot");
    let etc = dir.path().join("etc");
    fs::create_dir_all(&boot).expect("boot");
    fs::create_dir_all(&etc).expect("etc");
    Fake {
        boot,
        etc,
        _dir: dir,
    }
}

impl Fake {
    fn put_boot(&self, rel: &str, text: &[u8]) {
        let p = self.boot.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(p, text).expect("write boot file");
    }
    fn run(&self) -> Result<Outcome, ProvisionError> {
        provision_with(&self.boot, &self.etc, &Ownership::Unchanged)
    }
    fn error_text(&self) -> String {
        fs::read_to_string(self.boot.join(ERROR_FILE)).expect("error file on the boot partition")
    }
    fn assert_bundle_gone(&self) {
        assert!(!self.boot.join(CONFIG_NAME).exists(), "config left on boot");
        assert!(!self.boot.join(KEYS_DIR).exists(), "keys left on boot");
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn nothing_on_boot_is_nothing_to_do() {
    let f = fake();
    assert_eq!(f.run().expect("ok"), Outcome::NothingToDo);
    assert_eq!(fs::read_dir(&f.etc).expect("etc").count(), 0);
    assert!(!f.boot.join(ERROR_FILE).exists());
}

#[test]
fn valid_bundle_is_installed_tight_and_wiped_from_boot() {
    let f = fake();
    f.put_boot(CONFIG_NAME, GOOD.as_bytes());
    f.put_boot("keys/taobao", format!("{KEY}\n").as_bytes());
    f.put_boot("keys/._taobao", b"macOS resource fork");

    let Outcome::Installed(done) = f.run().expect("installed") else {
        panic!("expected Installed");
    };
    assert_eq!(done.device_id, "farm-07");
    assert_eq!(done.keys, vec!["taobao".to_string()]);
    assert!(done.leftovers.is_empty(), "{:?}", done.leftovers);

    let config = f.etc.join(CONFIG_NAME);
    let key = f.etc.join("keys/taobao");
    assert_eq!(fs::read_to_string(&config).expect("config"), GOOD);
    assert_eq!(fs::read_to_string(&key).expect("key"), format!("{KEY}\n"));
    assert_eq!(mode(&config), 0o640);
    assert_eq!(mode(&key), 0o640);
    assert_eq!(mode(&f.etc.join("keys")), 0o750);
    // No temp files left behind.
    let stray: Vec<_> = fs::read_dir(&f.etc)
        .expect("etc")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".provision-tmp"))
        .collect();
    assert!(stray.is_empty());

    f.assert_bundle_gone();
    assert!(!f.boot.join(ERROR_FILE).exists());
    let note = fs::read_to_string(f.boot.join(DONE_FILE)).expect("done note");
    assert!(note.contains("farm-07") && !note.contains(KEY));
}

#[test]
fn previous_config_is_kept_beside_the_new_one() {
    let f = fake();
    fs::write(f.etc.join(CONFIG_NAME), "device_id = \"old\"\n").expect("old config");
    fs::create_dir_all(f.etc.join("keys")).expect("keys");
    fs::write(f.etc.join("keys/taobao"), "old-key").expect("old key");
    f.put_boot(CONFIG_NAME, GOOD.as_bytes());

    // The key already in the config folder satisfies the config.
    f.run().expect("installed");
    assert_eq!(
        fs::read_to_string(f.etc.join(CONFIG_NAME)).expect("new"),
        GOOD
    );
    assert_eq!(
        fs::read_to_string(f.etc.join("farmcast.toml.previous")).expect("previous"),
        "device_id = \"old\"\n"
    );
    assert_eq!(
        fs::read_to_string(f.etc.join("keys/taobao")).expect("key"),
        "old-key"
    );
}

#[test]
fn invalid_config_keeps_the_old_one_and_explains_on_boot() {
    let f = fake();
    fs::write(f.etc.join(CONFIG_NAME), "device_id = \"old\"\n").expect("old config");
    let bad = GOOD.replace("source = \"test\"", "source = \"test\"\nwidth = 1281");
    f.put_boot(CONFIG_NAME, bad.as_bytes());
    f.put_boot("keys/taobao", KEY.as_bytes());

    let err = f.run().expect_err("must be rejected");
    let ProvisionError::Invalid { problems, .. } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    let width = problems
        .iter()
        .find(|p| p.path == "video.width")
        .expect("video.width named");
    assert_eq!(width.line, Some(5));

    assert_eq!(
        fs::read_to_string(f.etc.join(CONFIG_NAME)).expect("old"),
        "device_id = \"old\"\n"
    );
    assert!(!f.etc.join("keys").exists(), "no key installed on failure");
    let text = f.error_text();
    assert!(text.contains("farmcast.toml:5: video.width"), "{text}");
    assert!(!text.contains(KEY));
    // Secrets do not stay on the FAT partition even when rejected.
    f.assert_bundle_gone();
}

/// GOOD with the box's own MQTT login, TLS and CA, as docs/security.md says.
const WITH_MQTT: &str = r#"device_id = "farm-07"

[video]
source = "test"

[[destinations]]
name = "taobao"
url = "rtmp://127.0.0.1:1935/live"
key_file = "/etc/farmcast/keys/taobao"

[mqtt]
url = "mqtts://broker.example:8883"
username = "farm-07"
password_file = "/etc/farmcast/keys/mqtt-password"
ca_file = "/etc/farmcast/keys/mqtt-ca.pem"
"#;

const MQTT_PASSWORD: &str = "mqtt-pw-SECRET-for-farm-07";

#[test]
fn mqtt_credentials_travel_in_the_bundle_and_are_installed_tight() {
    let f = fake();
    f.put_boot(CONFIG_NAME, WITH_MQTT.as_bytes());
    f.put_boot("keys/taobao", KEY.as_bytes());
    f.put_boot(
        "keys/mqtt-password",
        format!("{MQTT_PASSWORD}\n").as_bytes(),
    );
    f.put_boot("keys/mqtt-ca.pem", b"-----BEGIN CERTIFICATE-----\n...\n");
    let outcome = f.run().expect("installed");
    let Outcome::Installed(done) = &outcome else {
        panic!("expected Installed");
    };
    assert_eq!(done.keys, vec!["mqtt-ca.pem", "mqtt-password", "taobao"]);
    let pw = f.etc.join("keys/mqtt-password");
    assert_eq!(
        fs::read_to_string(&pw).expect("password"),
        format!("{MQTT_PASSWORD}\n")
    );
    assert_eq!(mode(&pw), 0o640);
    assert_eq!(mode(&f.etc.join("keys/mqtt-ca.pem")), 0o640);
    assert!(!outcome.to_string().contains(MQTT_PASSWORD));
    let note = fs::read_to_string(f.boot.join(DONE_FILE)).expect("done note");
    assert!(!note.contains(MQTT_PASSWORD));
    f.assert_bundle_gone();
}

#[test]
fn a_missing_or_empty_mqtt_password_is_refused_on_its_key() {
    let f = fake();
    f.put_boot(CONFIG_NAME, WITH_MQTT.as_bytes());
    f.put_boot("keys/taobao", KEY.as_bytes());
    f.put_boot("keys/mqtt-ca.pem", b"-----BEGIN CERTIFICATE-----\n");
    let err = f.run().expect_err("no password anywhere");
    let ProvisionError::Invalid { problems, .. } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert!(
        problems.iter().any(|p| p.path == "mqtt.password_file"),
        "{problems:?}"
    );
    assert!(f.error_text().contains("mqtt.password_file"));
    assert!(!f.etc.join(CONFIG_NAME).exists());

    let f = fake();
    f.put_boot(CONFIG_NAME, WITH_MQTT.as_bytes());
    f.put_boot("keys/taobao", KEY.as_bytes());
    f.put_boot("keys/mqtt-password", b"");
    f.put_boot("keys/mqtt-ca.pem", b"-----BEGIN CERTIFICATE-----\n");
    let err = f.run().expect_err("empty password");
    assert!(
        err.explain().contains("mqtt.password_file"),
        "{}",
        err.explain()
    );

    // Installed earlier (a re-provisioned box keeps its login): fine.
    let f = fake();
    fs::create_dir_all(f.etc.join("keys")).expect("keys");
    fs::write(f.etc.join("keys/mqtt-password"), MQTT_PASSWORD).expect("pw");
    fs::write(f.etc.join("keys/mqtt-ca.pem"), "ca").expect("ca");
    f.put_boot(CONFIG_NAME, WITH_MQTT.as_bytes());
    f.put_boot("keys/taobao", KEY.as_bytes());
    f.run()
        .expect("installed with the login already on the box");
}

#[test]
fn missing_stream_key_is_a_problem_on_its_key() {
    let f = fake();
    f.put_boot(CONFIG_NAME, GOOD.as_bytes());
    let err = f.run().expect_err("no key anywhere");
    let ProvisionError::Invalid { problems, .. } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.path == "destinations[0].key_file"),
        "{problems:?}"
    );
    assert!(f.error_text().contains("destinations[0].key_file"));
}

#[test]
fn syntax_error_is_reported_with_its_line() {
    let f = fake();
    f.put_boot(CONFIG_NAME, b"device_id = \"a\"\n[video\n");
    let err = f.run().expect_err("syntax");
    assert!(matches!(err, ProvisionError::Invalid { .. }));
    assert!(
        f.error_text().contains("farmcast.toml:2"),
        "{}",
        f.error_text()
    );
}

#[test]
fn bad_bundle_shapes_are_refused() {
    let cases: [(&str, &[u8], &str); 3] = [
        ("keys/bad name", b"k", "bad name"),
        ("keys/sub/x", b"k", "not a plain file"),
        (CONFIG_NAME, b"\xff\xfe device", "UTF-8"),
    ];
    for (rel, content, expect) in cases {
        let f = fake();
        if rel != CONFIG_NAME {
            f.put_boot(CONFIG_NAME, GOOD.as_bytes());
        }
        f.put_boot(rel, content);
        let err = f.run().expect_err(rel);
        assert!(matches!(err, ProvisionError::Bundle(_)), "{rel}: {err:?}");
        assert!(f.error_text().contains(expect), "{rel}: {}", f.error_text());
        assert_eq!(fs::read_dir(&f.etc).expect("etc").count(), 0, "{rel}");
        f.assert_bundle_gone();
    }
}

#[test]
fn a_new_run_clears_an_old_error_file() {
    let f = fake();
    f.put_boot(ERROR_FILE, b"old failure");
    f.put_boot(CONFIG_NAME, GOOD.as_bytes());
    f.put_boot("keys/taobao", KEY.as_bytes());
    f.run().expect("installed");
    assert!(!f.boot.join(ERROR_FILE).exists());
}

#[test]
fn key_paths_map_into_the_bundle_or_the_config_folder() {
    let etc = Path::new("/tmp/x/etc");
    let boot = Path::new("/tmp/x/boot");
    let has = |n: &str| n == "taobao";
    let cases = [
        ("/etc/farmcast/keys/taobao", "/tmp/x/boot/keys/taobao"),
        ("keys/taobao", "/tmp/x/boot/keys/taobao"),
        ("/tmp/x/etc/keys/taobao", "/tmp/x/boot/keys/taobao"),
        ("/etc/farmcast/keys/other", "/tmp/x/etc/keys/other"),
        ("/etc/farmcast/taobao", "/tmp/x/etc/taobao"),
        (
            "/etc/farmcast/keys/../keys/taobao",
            "/tmp/x/etc/keys/../keys/taobao",
        ),
        ("/srv/keys/taobao", "/srv/keys/taobao"),
    ];
    for (input, want) in cases {
        assert_eq!(
            key_source(input, etc, boot, has),
            Path::new(want),
            "{input}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any text on the boot partition: no panic, and either it is installed
    /// byte for byte or the config folder is left exactly as it was; the
    /// bundle is gone from the boot partition in both cases.
    #[test]
    fn any_boot_file_is_installed_whole_or_not_at_all(
        text in prop_oneof![
            "\\PC{0,200}",
            Just(GOOD.to_string()),
            "[a-z_]{1,10} = \"[a-z0-9-]{0,8}\"\n",
        ],
        with_key in any::<bool>(),
    ) {
        let f = fake();
        fs::write(f.etc.join(CONFIG_NAME), "device_id = \"old\"\n").expect("old");
        f.put_boot(CONFIG_NAME, text.as_bytes());
        if with_key {
            f.put_boot("keys/taobao", KEY.as_bytes());
        }
        let result = f.run();
        let now = fs::read_to_string(f.etc.join(CONFIG_NAME)).expect("config");
        match result {
            Ok(Outcome::Installed(_)) => prop_assert_eq!(now, text),
            Ok(Outcome::NothingToDo) => prop_assert!(false, "the file was there"),
            Err(_) => {
                prop_assert_eq!(now, "device_id = \"old\"\n");
                prop_assert!(f.boot.join(ERROR_FILE).exists());
            }
        }
        prop_assert!(!f.boot.join(CONFIG_NAME).exists());
        prop_assert!(!f.boot.join(KEYS_DIR).exists());
    }

    /// A name accepted for `keys/` can never leave that folder.
    #[test]
    fn safe_key_names_stay_in_their_folder(name in "\\PC{0,20}") {
        if is_safe_key_name(&name) {
            prop_assert!(!name.contains('/') && name != "." && name != "..");
            prop_assert!(!name.starts_with('.'));
        }
    }
}
