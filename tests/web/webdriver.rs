//! A real headless Chromium through chromedriver (W3C WebDriver over plain
//! HTTP with [`super::http`]): Debian's `chromium` and `chromium-driver`.
//! As root Chromium needs `--no-sandbox`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::common::process::GroupChild;
use super::common::{free_port, require, wait_for_tcp, wait_until};
use super::http::{get, post_json, request};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    port: u16,
    session: String,
    pub shots: PathBuf,
    _driver: GroupChild,
}

impl Browser {
    /// A phone-sized window (`width` x 780) whose browser asks for `lang` first.
    pub fn start(width: u32, lang: &str) -> Browser {
        let driver = require("chromedriver", "chromium-driver");
        let chromium = require("chromium", "chromium");
        let port = free_port();
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = GroupChild::spawn(cmd, "chromedriver");
        assert!(
            wait_for_tcp(port, Duration::from_secs(20)),
            "chromedriver did not listen"
        );
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},780"), format!("--lang={lang}")],
            "prefs": {"intl.accept_languages": lang},
            // A desktop window has a minimum width (500 px here); a phone's
            // viewport is emulated instead.
            "mobileEmulation": {"deviceMetrics": {"width": width, "height": 780, "pixelRatio": 2.0}}
        }}}});
        let r = post_json(port, "/session", &[], &caps);
        assert_eq!(r.status, 200, "no browser session: {}", r.text());
        let session = r.json()["value"]["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        let shots = std::env::temp_dir().join(format!("farmcast-web-shots-{}", std::process::id()));
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            port,
            session,
            shots,
            _driver: child,
        }
    }

    fn cmd(&self, path: &str, body: Value) -> Value {
        let r = post_json(
            self.port,
            &format!("/session/{}{path}", self.session),
            &[],
            &body,
        );
        assert_eq!(r.status, 200, "webdriver {path}: {}", r.text());
        r.json()["value"].clone()
    }

    pub fn open(&self, url: &str) {
        self.cmd("/url", json!({ "url": url }));
    }

    /// The page's answer to a script (`return ...`).
    pub fn js(&self, script: &str) -> Value {
        self.cmd("/execute/sync", json!({"script": script, "args": []}))
    }

    fn find(&self, css: &str) -> Option<String> {
        let r = post_json(
            self.port,
            &format!("/session/{}/element", self.session),
            &[],
            &json!({"using": "css selector", "value": css}),
        );
        (r.status == 200).then(|| {
            r.json()["value"][ELEMENT]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    }

    /// Waits for the element (up to 15 s) and clicks it.
    pub fn click(&self, css: &str) {
        let id = self.wait_for(css);
        self.cmd(&format!("/element/{id}/click"), json!({}));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.wait_for(css);
        self.cmd(&format!("/element/{id}/value"), json!({ "text": text }));
    }

    pub fn wait_for(&self, css: &str) -> String {
        let mut found = None;
        wait_until(Duration::from_secs(15), || {
            found = self.find(css);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {css} on the page: {}", self.text("body")))
    }

    /// `textContent` of the first match, or empty.
    pub fn text(&self, css: &str) -> String {
        let q = serde_json::to_string(css).unwrap();
        self.js(&format!(
            "const e = document.querySelector({q}); return e ? e.textContent : '';"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Waits until the script returns `true`.
    pub fn until(&self, what: &str, script: &str, within: Duration) {
        // A page that is still loading (a login reloads) is not an error yet.
        let guarded = format!("try {{ {script} }} catch (_) {{ return false; }}");
        let ok = wait_until(within, || self.js(&guarded) == Value::Bool(true));
        assert!(
            ok,
            "{what}: never true; the page says {:?}",
            self.text("body")
        );
    }

    /// Saves a PNG of the window under [`Self::shots`].
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let r = get(
            self.port,
            &format!("/session/{}/screenshot", self.session),
            &[],
        );
        let b64 = r.json()["value"].as_str().unwrap_or_default().to_string();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("PNG in base64");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub fn shots_dir(&self) -> &Path {
        &self.shots
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = request(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            b"",
        );
    }
}
