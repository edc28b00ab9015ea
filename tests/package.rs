//! The Debian package: built with cargo-deb from the binary this test run
//! already compiled (a release build would double CI time on 2 cores; the
//! package layout and scripts do not depend on the profile), then checked
//! with `dpkg-deb`: files, conffile, Depends, maintainer scripts, and the
//! provisioning unit with `systemd-analyze verify`.
//!
//! Installing it into a throwaway Debian root (mmdebstrap, downloads about
//! 60 MB) is `#[ignore]`d for CI time; run it with
//! `cargo test --test package -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const PLUGIN_PACKAGES: &[&str] = &[
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-libav",
    "gstreamer1.0-alsa",
    // textoverlay (slate and lower third) lives in the pango plugin here.
    "gstreamer1.0-x",
    "glib-networking",
    "fonts-noto-cjk",
    "adduser",
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// cargo-deb from PATH or ~/.cargo/bin; a missing one is a failure that says
/// how to install it.
fn cargo_deb() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin")));
    for dir in candidates {
        let bin = dir.join("cargo-deb");
        if bin.is_file() {
            return bin;
        }
    }
    panic!("cargo-deb is not installed: run `cargo install cargo-deb --locked`");
}

struct Built {
    _dir: tempfile::TempDir,
    deb: PathBuf,
    /// `dpkg-deb -x` of the package.
    root: PathBuf,
    /// `dpkg-deb -e`: control, conffiles, maintainer scripts.
    control: PathBuf,
}

/// Builds the package once for all tests in this file.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        // cargo-deb takes `target/release/farmcast` from the target dir it is
        // given; put this run's binary there instead of building again.
        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("release")).expect("target dir");
        std::fs::copy(
            env!("CARGO_BIN_EXE_farmcast"),
            target.join("release/farmcast"),
        )
        .expect("copying the binary");
        let deb = dir.path().join("farmcast.deb");
        run(Command::new(cargo_deb())
            .arg("deb")
            .arg("--manifest-path")
            .arg(manifest_dir().join("Cargo.toml"))
            .args(["--no-build", "--fast", "-o"])
            .arg(&deb)
            .env("CARGO_TARGET_DIR", &target));
        let root = dir.path().join("root");
        let control = dir.path().join("control");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
        Built {
            _dir: dir,
            deb,
            root,
            control,
        }
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn package_holds_binary_units_config_and_docs() {
    let b = built();
    let listing = stdout(Command::new("dpkg-deb").arg("-c").arg(&b.deb));
    for (path, mode) in [
        ("./usr/bin/farmcast", "-rwxr-xr-x"),
        ("./usr/lib/systemd/system/farmcast.service", "-rw-r--r--"),
        (
            "./usr/lib/systemd/system/farmcast-provision.service",
            "-rw-r--r--",
        ),
        ("./etc/farmcast/farmcast.toml", "-rw-r--r--"),
        ("./usr/share/doc/farmcast/copyright", "-rw-r--r--"),
        ("./usr/share/doc/farmcast/changelog.Debian.gz", "-rw-r--r--"),
        ("./usr/share/lintian/overrides/farmcast", "-rw-r--r--"),
    ] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"));
        assert!(line.starts_with(mode), "{path}: {line}");
        assert!(line.contains(" 0/0 "), "{path} must be root-owned: {line}");
    }
    // The shipped files are the repository's, byte for byte.
    for (inside, source) in [
        (
            "usr/lib/systemd/system/farmcast.service",
            "systemd/farmcast.service",
        ),
        (
            "usr/lib/systemd/system/farmcast-provision.service",
            "systemd/farmcast-provision.service",
        ),
        ("etc/farmcast/farmcast.toml", "configs/farmcast.toml"),
    ] {
        assert_eq!(
            read(&b.root.join(inside)),
            read(&manifest_dir().join(source)),
            "{inside}"
        );
    }
    let conffiles = read(&b.control.join("conffiles"));
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/farmcast/farmcast.toml"),
        "conffiles: {conffiles}"
    );
}

#[test]
fn packaged_binary_runs() {
    let b = built();
    let out = stdout(Command::new(b.root.join("usr/bin/farmcast")).arg("--version"));
    assert!(
        out.starts_with(&format!("farmcast {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn control_declares_runtime_dependencies() {
    let control = read(&built().control.join("control"));
    let depends = control
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends:\n{control}"));
    let names: Vec<&str> = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .collect();
    for p in PLUGIN_PACKAGES {
        assert!(names.contains(p), "Depends lacks {p}: {depends}");
    }
    // $auto found the shared libraries the binary links.
    assert!(names.contains(&"libgstreamer1.0-0"), "{depends}");
}

#[test]
fn postinst_creates_user_groups_and_enables_units() {
    let b = built();
    let postinst = read(&b.control.join("postinst"));
    for needle in [
        "addgroup --quiet --system \"$g\"",
        "adduser --quiet --system --ingroup farmcast --no-create-home",
        "for g in video audio gpio dialout render",
        "install -d -o root -g farmcast -m 0750 /etc/farmcast /etc/farmcast/keys",
        "deb-systemd-helper enable farmcast.service",
        "deb-systemd-helper enable farmcast-provision.service",
    ] {
        assert!(postinst.contains(needle), "postinst lacks `{needle}`");
    }
    assert!(!postinst.contains("#DEBHELPER#"), "placeholder not filled");
    for script in ["postinst", "prerm", "postrm"] {
        let path = b.control.join(script);
        run(Command::new("sh").arg("-n").arg(&path));
    }
}

#[test]
fn provision_unit_passes_systemd_analyze_verify() {
    let text = read(&manifest_dir().join("systemd/farmcast-provision.service"));
    assert!(text.contains(
        "ExecStart=/usr/bin/farmcast provision --boot /boot/firmware --etc /etc/farmcast"
    ));
    assert!(text.contains("Before=farmcast.service"));
    assert!(text.contains("ConditionPathExists=/boot/firmware/farmcast.toml"));
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("farmcast-provision.service");
    std::fs::write(
        &copy,
        text.replace("/usr/bin/farmcast", env!("CARGO_BIN_EXE_farmcast")),
    )
    .expect("unit copy");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .env("SYSTEMD_COLORS", "0")
        .output()
        .expect("systemd-analyze (Debian package `systemd`)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // farmcast.service is named in Before= but not beside the copy.
    let real: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("farmcast.service"))
        .collect();
    assert!(
        out.status.success() && real.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

/// Installs the package into a fresh Debian bookworm root and checks what
/// postinst did there: user, groups, folder modes, enabled units.
#[test]
#[ignore = "downloads Debian bookworm minbase (about 30 s here): cargo test --test package -- --ignored"]
fn installs_into_a_throwaway_debian_root() {
    let b = built();
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    run(Command::new("mmdebstrap")
        .args(["--variant=minbase", "--include=adduser,systemd", "--quiet"])
        .arg("bookworm")
        .arg(&root));
    std::fs::copy(&b.deb, root.join("tmp/farmcast.deb")).expect("copy deb");
    // GStreamer and fonts are left out to keep the download small: the
    // maintainer scripts do not need them.
    run(Command::new("chroot").arg(&root).args([
        "dpkg",
        "--force-depends",
        "-i",
        "/tmp/farmcast.deb",
    ]));
    let chroot = |args: &[&str]| stdout(Command::new("chroot").arg(&root).args(args));
    let passwd = chroot(&["getent", "passwd", "farmcast"]);
    assert!(
        passwd.contains(":/nonexistent:/usr/sbin/nologin"),
        "{passwd}"
    );
    let groups = chroot(&["id", "-nG", "farmcast"]);
    for g in ["farmcast", "video", "audio", "gpio", "dialout", "render"] {
        assert!(
            groups.split_whitespace().any(|x| x == g),
            "{g} not in {groups}"
        );
    }
    let modes = chroot(&[
        "stat",
        "-c",
        "%n %a %U:%G",
        "/etc/farmcast",
        "/etc/farmcast/keys",
        "/etc/farmcast/farmcast.toml",
    ]);
    for want in [
        "/etc/farmcast 750 root:farmcast",
        "/etc/farmcast/keys 750 root:farmcast",
        "/etc/farmcast/farmcast.toml 640 root:farmcast",
    ] {
        assert!(modes.lines().any(|l| l == want), "{want} not in:\n{modes}");
    }
    for unit in ["farmcast.service", "farmcast-provision.service"] {
        let link = root
            .join("etc/systemd/system/multi-user.target.wants")
            .join(unit);
        assert!(link.symlink_metadata().is_ok(), "{unit} not enabled");
    }
    // Installed as a package, the unit verifies against its own binary.
    chroot(&[
        "systemd-analyze",
        "verify",
        "--man=no",
        "/usr/lib/systemd/system/farmcast.service",
    ]);
}
