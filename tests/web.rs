//! The farmer's phone page against the real daemon (test sources, real
//! nginx-rtmp, real mosquitto): pairing, the session gate, CSRF, hostile
//! requests, go-live and end from the page, today's push address, a product
//! tap, the preview and `/metrics` (checked by `promtool`). Plain HTTP here;
//! `web_browser` drives the same page in a real headless Chromium.

mod common;
#[path = "web/http.rs"]
mod http;
#[path = "web/webdriver.rs"]
mod webdriver;

use std::path::Path;
use std::time::Duration;

use common::config::{TestConfig, SIM_SCALE_AND_MUSSELS};
use common::observer::{topic, Observer};
use common::{free_port, wait_for_tcp, wait_until, Farmcast, Mosquitto, NginxRtmp};
use http::{get, post_json, request};
use serde_json::json;

pub const CODE: &str = "482913";
const OLD_KEY: &str = "oldkey-1111";
const NEW_KEY: &str = "todaykey-7777";
const NEW_CODE: &str = "907153";

/// The test config with `[web]` on, a key file, the sim scale and a product.
pub fn config(
    tc: &TestConfig,
    rtmp: &str,
    key_file: &Path,
    web: u16,
    metrics: u16,
    mqtt: u16,
) -> String {
    let mut t = tc.mqtt_table(mqtt);
    let extra: toml::Table = toml::from_str(SIM_SCALE_AND_MUSSELS).unwrap();
    t.extend(extra);
    let more: toml::Table = toml::from_str(&format!(
        "[[destinations]]\nname = \"taobao\"\nurl = {rtmp:?}\nkey_file = {kf:?}\n\n\
         [web]\nenabled = true\nlisten = \"127.0.0.1:{web}\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\n\
         pairing_code = \"{CODE}\"\n",
        kf = key_file.display().to_string(),
    ))
    .unwrap();
    t.extend(more);
    toml::to_string(&t).unwrap()
}

/// Logs in; returns the cookie header value and the page's CSRF token.
pub fn login(port: u16) -> (String, String) {
    let r = post_json(port, "/login", &[], &json!({ "code": CODE }));
    assert_eq!(r.status, 200, "{}", r.text());
    let set = r.header("set-cookie").expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let page = get(port, "/", &[("Cookie", &cookie)]).text();
    let csrf = page
        .split("name=\"csrf\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page carries its CSRF token")
        .to_string();
    (cookie, csrf)
}

fn sales_lines(rec_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(rec_dir).into_iter().flatten().flatten() {
        if let Ok(t) = std::fs::read_to_string(e.path().join("sales.jsonl")) {
            out.extend(t.lines().map(str::to_string));
        }
    }
    out
}

#[test]
fn the_page_pairs_gates_steers_the_show_and_takes_todays_push_address() {
    let _serial = common::serial();
    // Today's address is on another application of the server, as a
    // platform may move a show to another server, not only to a new key.
    let nginx = NginxRtmp::start_with_apps(&["live", "today"]);
    let broker = Mosquitto::start();
    let tc = TestConfig::new().autostart(false);
    let key_file = tc.dir.path().join("taobao.key");
    std::fs::write(&key_file, format!("{OLD_KEY}\n")).unwrap();
    let (web, metrics) = (free_port(), free_port());
    let toml = config(
        &tc,
        &nginx.url("live"),
        &key_file,
        web,
        metrics,
        broker.port,
    );
    let mut obs = Observer::new(broker.port, "web-spy", true, &[&topic("#")]);
    let mut fc = Farmcast::start(&toml);
    assert!(
        wait_for_tcp(web, Duration::from_secs(30)),
        "no page: {}",
        fc.log()
    );
    obs.wait_standby();

    // Without a session only the login answers.
    let login_page = get(web, "/", &[("Accept-Language", "zh-CN,zh;q=0.9")]);
    assert_eq!(login_page.status, 200);
    assert!(login_page.text().contains("lang=\"zh\"") && login_page.text().contains("id=\"code\""));
    assert!(
        !login_page.text().contains("golive"),
        "the login page is not the phone page"
    );
    for (m, p) in [
        ("GET", "/api/status"),
        ("GET", "/api/preview.jpg"),
        ("POST", "/api/go-live"),
        ("POST", "/api/push"),
        ("POST", "/api/tag"),
        ("POST", "/logout"),
        ("GET", "/nothing"),
        ("GET", "/metrics"),
    ] {
        let r = request(web, m, p, &[("Content-Type", "application/json")], b"{}");
        assert_eq!(
            r.status,
            401,
            "{m} {p} answered without a session: {}",
            r.text()
        );
    }
    let forged = get(web, "/api/status", &[("Cookie", "farmcast_session=00ff")]);
    assert_eq!(forged.status, 401);

    // Log in; then four wrong codes are refused and the fifth is throttled,
    // the right code included, while the phone already paired keeps working.
    let (cookie, csrf) = login(web);
    for i in 0..4 {
        let r = post_json(web, "/login", &[], &json!({ "code": format!("00000{i}") }));
        assert_eq!(r.status, 401, "wrong code {i}");
        assert!(r.header("set-cookie").is_none());
    }
    let r = post_json(web, "/login", &[], &json!({ "code": CODE }));
    assert_eq!(r.status, 429, "the fifth try in a minute: {}", r.text());
    assert!(r.header("retry-after").is_some());
    let auth = [
        ("Cookie", cookie.as_str()),
        ("X-Farmcast-Csrf", csrf.as_str()),
    ];
    assert_eq!(get(web, "/api/status", &auth[..1]).status, 200);

    // CSRF: a POST without the token, or not JSON, reaches nothing.
    let r = post_json(web, "/api/go-live", &auth[..1], &json!({}));
    assert_eq!(r.status, 403);
    let r = request(
        web,
        "POST",
        "/api/go-live",
        &[auth[0], auth[1], ("Content-Type", "text/plain")],
        b"{}",
    );
    assert_eq!(r.status, 415);
    // Hostile bodies: huge, not JSON, bad addresses.
    let huge = vec![b'a'; 4 << 20];
    let r = request(
        web,
        "POST",
        "/api/push",
        &[auth[0], auth[1], ("Content-Type", "application/json")],
        &huge,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let r = request(
        web,
        "POST",
        "/api/tag",
        &[auth[0], auth[1], ("Content-Type", "application/json")],
        b"{\"product_id\":",
    );
    assert_eq!(r.status, 400);
    for bad in [
        "",
        "live/x",
        "http://h/live/k",
        "rtmp://h/live",
        "rtmp://u:p@h/live/k",
        "rtmp://h/live/a b",
        "srt://h:9000?streamid=k",
        &format!("rtmp://h/live/{}", "k".repeat(5000)),
    ] {
        let r = post_json(
            web,
            "/api/push",
            &auth,
            &json!({"destination": "taobao", "url": bad}),
        );
        assert_eq!(r.status, 400, "{bad:?} was taken: {}", r.text());
    }
    let r = post_json(
        web,
        "/api/push",
        &auth,
        &json!({"destination": "nope", "url": "rtmp://h/live/k"}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        format!("{OLD_KEY}\n"),
        "refusals leave the key alone"
    );

    // Go live from the page: nginx receives the old key's stream.
    let r = post_json(web, "/api/go-live", &auth, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        nginx.wait_for_publishes("live", 1, Duration::from_secs(30)),
        "no publish: {}",
        fc.log()
    );
    assert!(nginx.media_flows());
    obs.status("live");
    let s = get(web, "/api/status", &auth[..1]).json();
    assert_eq!(s["status"]["state"], "live", "{s}");
    assert_eq!(s["destinations"][0]["key_tail"], "1111");

    // The preview: JPEGs of what goes out, and they change over time.
    let a = get(web, "/api/preview.jpg", &auth[..1]);
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(&a.body[..2], &[0xff, 0xd8]);
    let changed = wait_until(Duration::from_secs(10), || {
        get(web, "/api/preview.jpg", &auth[..1]).body != a.body
    });
    assert!(changed, "the preview did not change in 10 s");

    // A product tap tags as the button does: the sales log gets its line.
    fc.sim("weight 1.250");
    let settled = wait_until(Duration::from_secs(15), || {
        let s = get(web, "/api/status", &auth[..1]).json();
        s["status"]["scale"]["stable"] == true
            && s["status"]["scale"]["weight_kg"].as_f64() > Some(1.0)
    });
    assert!(settled, "the page never showed the settled weight");
    let r = post_json(web, "/api/tag", &auth, &json!({"product_id": "mussels"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = tc.recording_dir();
    assert!(
        wait_until(Duration::from_secs(15), || sales_lines(&rec)
            .iter()
            .any(|l| l.contains("mussels"))),
        "no sales line: {}",
        fc.log()
    );
    let r = post_json(
        web,
        "/api/tag",
        &auth,
        &json!({"product_id": "not-a-product"}),
    );
    assert_eq!(r.status, 404);

    // /metrics on its own address, valid for promtool, live now.
    let m = get(metrics, "/metrics", &[]);
    assert_eq!(m.status, 200);
    assert!(
        m.text().contains("farmcast_state{state=\"live\"} 1"),
        "{}",
        m.text()
    );
    assert!(
        m.text()
            .contains("farmcast_destination_up{destination=\"taobao\"} 1"),
        "{}",
        m.text()
    );
    promtool_check(&m.text());

    // Today's push address: split, written 0600, shown as its last four.
    let new_url = format!("  {}/{NEW_KEY}\n", nginx.url("today"));
    let r = post_json(
        web,
        "/api/push",
        &auth,
        &json!({"destination": "taobao", "url": new_url}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["key_tail"], "7777");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        format!("{NEW_KEY}\n")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // End (the page asks first: no confirmation, no end), then go live again:
    // nginx sees the new stream name.
    let r = post_json(web, "/api/end", &auth, &json!({}));
    assert_eq!(r.status, 400);
    let r = post_json(web, "/api/end", &auth, &json!({"confirm": true}));
    assert_eq!(r.status, 200);
    obs.status("standby");
    assert!(nginx.wait_idle(Duration::from_secs(15)));
    let r = post_json(web, "/api/go-live", &auth, &json!({}));
    assert_eq!(r.status, 200);
    assert!(
        nginx.wait_for_publishes("today", 1, Duration::from_secs(30)),
        "no publish at today's server: {}",
        fc.log()
    );
    assert!(
        wait_until(Duration::from_secs(15), || nginx
            .stat()
            .contains(&format!("<name>{NEW_KEY}</name>"))),
        "nginx does not see the new stream name: {}",
        nginx.stat()
    );
    let s = get(web, "/api/status", &auth[..1]).json();
    assert_eq!(s["destinations"][0]["key_tail"], "7777");
    let r = post_json(web, "/api/end", &auth, &json!({"confirm": true}));
    assert_eq!(r.status, 200);
    obs.status("standby");

    // Logged out: the cookie reaches nothing any more.
    assert_eq!(post_json(web, "/logout", &auth, &json!({})).status, 200);
    assert_eq!(get(web, "/api/status", &auth[..1]).status, 401);

    // The new key never appeared in a response, a log line or MQTT.
    fc.stop();
    for r in http::SEEN.lock().unwrap().iter() {
        assert!(
            !r.contains(NEW_KEY) && !r.contains(OLD_KEY),
            "a response carried a key: {r}"
        );
    }
    let log = fc.log();
    assert!(log.contains("web: a phone logged in"), "{log}");
    assert!(
        !log.contains(NEW_KEY) && !log.contains(OLD_KEY),
        "the log carried a key:\n{log}"
    );
    obs.assert_no_secret(NEW_KEY);
    obs.assert_no_secret(OLD_KEY);

    // After a restart (a power cut at the stall) today's address still
    // holds: the key from its file, the server from the page's local layer.
    let mut fc = Farmcast::start(&toml);
    // A press before standby goes live as soon as the capture is ready.
    assert_eq!(fc.sim("press go_live"), "ok");
    assert!(
        nginx.wait_for_publishes("today", 2, Duration::from_secs(30)),
        "after a restart the box did not go back to today's server: {}",
        fc.log()
    );
    assert_eq!(nginx.publish_times("live").len(), 1, "{}", fc.log());
    fc.stop();
    let log = fc.log();
    assert!(
        !log.contains(NEW_KEY) && !log.contains(OLD_KEY),
        "the log carried a key:\n{log}"
    );
}

#[test]
fn a_real_phone_browser_logs_in_goes_live_pastes_todays_address_and_tags() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    let broker = Mosquitto::start();
    let tc = TestConfig::new().autostart(false);
    let key_file = tc.dir.path().join("taobao.key");
    std::fs::write(&key_file, format!("{OLD_KEY}\n")).unwrap();
    let (web, metrics) = (free_port(), free_port());
    // Status only every 30 s (and on each change): the page must still show
    // the scale and the preview live.
    let toml = config(
        &tc,
        &nginx.url("live"),
        &key_file,
        web,
        metrics,
        broker.port,
    )
    .replace("status_interval_s = 1", "status_interval_s = 30");
    assert!(toml.contains("status_interval_s = 30"));
    let mut fc = Farmcast::start(&toml);
    assert!(
        wait_for_tcp(web, Duration::from_secs(30)),
        "no page: {}",
        fc.log()
    );
    let b = webdriver::Browser::start(360, "zh-CN");
    let secs = Duration::from_secs;

    // The login, in Chinese; a wrong code is refused on the page.
    b.open(&format!("http://127.0.0.1:{web}/"));
    assert_eq!(b.js("return document.documentElement.lang;"), "zh");
    b.type_into("#code", "000000");
    b.click("#go");
    b.until(
        "the wrong code is refused",
        "return document.getElementById('msg').textContent === '配对码不对。';",
        secs(10),
    );
    b.screenshot("1-wrong-code");
    b.js("document.getElementById('code').value = '';");
    b.type_into("#code", CODE);
    b.click("#go");
    b.wait_for("#golive");
    b.until(
        "the page shows standby",
        "return document.getElementById('state').dataset.state === 'standby';",
        secs(15),
    );
    assert_eq!(b.text("#state-text"), "待机");
    assert_eq!(b.text("#golive"), "开始直播");
    // Fits a 360 px screen: nothing wider than the window.
    assert_eq!(
        b.js("return document.documentElement.scrollWidth <= window.innerWidth;"),
        true
    );
    assert_eq!(b.js("return window.innerWidth;"), 360);
    b.screenshot("2-standby");

    // Go live from the page: nginx receives the publish.
    b.click("#golive");
    assert!(
        nginx.wait_for_publishes("live", 1, secs(30)),
        "no publish: {}",
        fc.log()
    );
    b.until(
        "the page shows live",
        "return document.getElementById('state').dataset.state === 'live';",
        secs(15),
    );
    assert_eq!(b.text("#state-text"), "直播中");
    // The preview shows the picture and changes over time.
    b.until("a preview frame", "const i = document.getElementById('preview'); return i.complete && i.naturalWidth === 320;", secs(10));
    let first = b.js("return document.getElementById('preview').src;");
    b.until(
        "the preview changes",
        &format!("return document.getElementById('preview').src !== {first};"),
        secs(10),
    );
    b.screenshot("3-live");

    // A product tap with produce on the scale: the sales log gets the line.
    fc.sim("weight 0.800");
    b.until(
        "the scale settles",
        "return document.getElementById('weight').textContent.includes('0.800 kg, 稳定');",
        secs(15),
    );
    // The farmer renames the product and changes its price on the page.
    b.click("#h-edit");
    b.js("const r = document.querySelector('.edit[data-id=mussels]'); r.querySelector('.edit-name').value = ''; r.querySelector('.edit-price').value = '';");
    b.type_into(".edit[data-id=mussels] .edit-name", "大青口");
    b.type_into(".edit[data-id=mussels] .edit-price", "32.50");
    b.click(".edit[data-id=mussels] .edit-save");
    b.until(
        "the edit is saved",
        "return document.getElementById('msg').textContent === '商品已保存。';",
        secs(30),
    );
    assert_eq!(b.text(".product[data-id=mussels]"), "大青口 32.50 CNY/kg");
    b.click(".product[data-id=mussels]");
    b.until(
        "the tap is confirmed",
        "return document.getElementById('msg').textContent.startsWith('已标记');",
        secs(10),
    );
    let rec = tc.recording_dir();
    let sold =
        |l: &String| l.contains("mussels") && l.contains("大青口") && l.contains("\"32.50\"");
    assert!(
        wait_until(secs(15), || sales_lines(&rec).iter().any(sold)),
        "no sales line at the new price: {:?}",
        sales_lines(&rec)
    );
    b.screenshot("4-tagged");

    // Today's push address, pasted whole; the page shows only its last four.
    b.type_into(
        ".dest[data-name=taobao] .push-url",
        &format!("{}/{NEW_KEY}", nginx.url("live")),
    );
    b.click(".dest[data-name=taobao] .push-save");
    b.until(
        "the address is saved",
        "return document.getElementById('msg').textContent === '已保存，下次开播时生效。';",
        secs(30),
    );
    b.until("the key's tail is shown", "return document.querySelector('.dest[data-name=taobao] .dest-head').textContent.includes('…7777');", secs(10));
    assert!(!b.text("body").contains(NEW_KEY), "the page shows the key");
    b.screenshot("5-pushed");

    // End (asks first), go live again: nginx sees the new stream name.
    b.click("#end");
    assert_eq!(
        b.js("return document.getElementById('end-ask').hidden;"),
        false
    );
    b.screenshot("6-end-ask");
    b.click("#end-confirm");
    b.until(
        "the page shows standby again",
        "return document.getElementById('state').dataset.state === 'standby';",
        secs(20),
    );
    assert!(nginx.wait_idle(secs(15)));
    b.click("#golive");
    assert!(
        nginx.wait_for_publishes("live", 2, secs(30)),
        "no second publish: {}",
        fc.log()
    );
    assert!(
        wait_until(secs(15), || nginx
            .stat()
            .contains(&format!("<name>{NEW_KEY}</name>"))),
        "nginx does not see the new stream name"
    );
    b.screenshot("7-live-again");

    // The technician hands out a new code over MQTT: the phone is logged
    // out, the old code is refused, the new one lets it in again.
    let mut obs = Observer::new(broker.port, "web-tech", true, &[&topic("cmd/result")]);
    let res = obs.command(
        "code-1",
        json!({"cmd": "set_pairing_code", "args": {"code": NEW_CODE}}),
    );
    assert_eq!(res["ok"], true, "{res}");
    assert!(!res.to_string().contains(NEW_CODE));
    b.open(&format!("http://127.0.0.1:{web}/"));
    b.wait_for("#code");
    b.type_into("#code", CODE);
    b.click("#go");
    b.until(
        "the old code is refused",
        "return document.getElementById('msg').textContent === '配对码不对。';",
        secs(10),
    );
    b.js("document.getElementById('code').value = '';");
    b.type_into("#code", NEW_CODE);
    b.click("#go");
    b.until(
        "the new code lets the phone in",
        "return document.getElementById('state').dataset.state === 'live';",
        secs(15),
    );
    let kept = tc.state_dir().join("web/pairing_code");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
        0o600
    );
    eprintln!("screenshots in {}", b.shots_dir().display());
    fc.stop();
    let log = fc.log();
    assert!(
        log.contains("pairing code changed; every phone logged out"),
        "{log}"
    );

    // After a restart the new code and the edited product are still there.
    let mut again = Farmcast::start(&toml);
    assert!(
        wait_for_tcp(web, secs(30)),
        "no page after the restart: {}",
        again.log()
    );
    b.open(&format!("http://127.0.0.1:{web}/"));
    b.type_into("#code", NEW_CODE);
    b.click("#go");
    b.wait_for(".product[data-id=mussels]");
    assert_eq!(b.text(".product[data-id=mussels]"), "大青口 32.50 CNY/kg");
    b.screenshot("8-after-restart");
    again.stop();
    assert!(
        !log.contains(NEW_KEY) && !log.contains(NEW_CODE),
        "the log carried a secret:\n{log}"
    );
    obs.assert_no_secret(NEW_CODE);
}

/// `promtool check metrics` reads the exposition from standard input.
fn promtool_check(text: &str) {
    use std::io::Write;
    let bin = common::require("promtool", "prometheus");
    let mut child = std::process::Command::new(bin)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
