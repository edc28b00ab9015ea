//! The HTTP edge: axum on the daemon's runtime. Every decision it leans on
//! (throttling, sessions, splitting an address, the metrics text, the page's
//! language) is pure code in the sibling modules; this file binds, reads
//! requests and answers.
//!
//! Nothing answers without a session but `GET /` (the login page then) and
//! `POST /login`. Every other POST needs the session's CSRF token in the
//! `X-Farmcast-Csrf` header (a cross-site form cannot set a header, and a
//! cross-site script cannot read the token) and a JSON body; the cookie is
//! also `SameSite=Strict`. Bodies are parsed here, not by an extractor, so
//! that no error echoes what was sent (it may be a stream key).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Limiter, Sessions};
use super::{
    auth, metrics, page, products, push, Bridge, DestinationView, ProductView, WebRequest,
    WebSettings,
};
use crate::config::secret::Secret;
use crate::excerpt::excerpt;

const COOKIE: &str = "farmcast_session";
pub const CSRF_HEADER: &str = "x-farmcast-csrf";
/// No request the page makes is larger; a push address is at most 2 KiB.
const BODY_LIMIT: usize = 16 * 1024;
/// A preview frame younger than this is served again rather than made anew:
/// several phones cost one JPEG per interval.
const PREVIEW_REUSE: Duration = Duration::from_millis(200);
/// How long a request waits for the driver's answer. The key or the edit is
/// already saved by then; a loaded box still answers well within it.
const LOOP_ANSWER: Duration = Duration::from_secs(30);

struct App {
    settings: WebSettings,
    code: Mutex<Option<Secret>>,
    sessions: Mutex<Sessions>,
    limiter: Mutex<Limiter>,
    bridge: Bridge,
    destinations: Mutex<Vec<DestinationView>>,
    products: Mutex<Vec<ProductView>>,
    preview: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
}

#[derive(Clone)]
struct Session {
    token: String,
    csrf: String,
}

pub(super) fn spawn(settings: WebSettings, bridge: Bridge) {
    let code = std::fs::read_to_string(&settings.code_file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .or_else(|| settings.pairing_code.clone());
    if code.is_none() {
        tracing::warn!("web: no pairing code is set (web.pairing_code); no phone can log in");
    }
    let app = Arc::new(App {
        destinations: Mutex::new(settings.destinations.clone()),
        products: Mutex::new(settings.products.clone()),
        settings,
        code: Mutex::new(code),
        sessions: Mutex::default(),
        limiter: Mutex::default(),
        bridge,
        preview: tokio::sync::Mutex::new(None),
    });
    let router = Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/status", get(status))
        .route("/api/go-live", post(go_live))
        .route("/api/end", post(end_show))
        .route("/api/tag", post(tag))
        .route("/api/push", post(set_push))
        .route("/api/product", post(edit_product))
        .route("/api/preview.jpg", get(preview))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app.clone());
    tokio::spawn(new_codes(app.clone()));
    let listen = app.settings.listen.clone();
    tokio::spawn(serve(listen, router, "page"));
    if let Some(addr) = app.settings.metrics_listen.clone() {
        let status = app.bridge.status.clone();
        let router = Router::new().route(
            "/metrics",
            get(move || {
                let text = metrics::render(status.borrow().status.as_ref());
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
        tokio::spawn(serve(addr, router, "metrics"));
    }
}

/// A code from the technician replaces the old one, is kept (mode 0600) so
/// that it survives a restart, and logs every phone out.
async fn new_codes(app: Arc<App>) {
    let mut rx = app.bridge.code.clone();
    while rx.changed().await.is_ok() {
        let Some(code) = rx.borrow_and_update().clone() else {
            continue;
        };
        let file = app.settings.code_file.clone();
        let kept = code.clone();
        let saved = tokio::task::spawn_blocking(move || {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            push::write_key_file(&file, &kept)
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::error!(
                "web: the new pairing code could not be kept; it lasts until a restart"
            );
        }
        if let Ok(mut c) = app.code.lock() {
            *c = Some(code);
        }
        if let Ok(mut s) = app.sessions.lock() {
            s.clear();
        }
        tracing::info!("web: pairing code changed; every phone logged out");
    }
}

async fn serve(addr: String, router: Router, what: &'static str) {
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %addr, error = %e, "web: cannot listen; the box streams without the {what}");
            return;
        }
    };
    tracing::info!(address = %addr, "web: {what} listening");
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "web: the {what} server stopped");
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The session gate and the CSRF check, in front of every route.
async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let now = Instant::now();
    let session = cookie_token(req.headers()).and_then(|t| {
        let s = app.sessions.lock().ok()?.touch(now, &t)?;
        Some(Session {
            token: t,
            csrf: s.csrf,
        })
    });
    let path = req.uri().path();
    let open = matches!(
        (req.method(), path),
        (&Method::GET, "/") | (&Method::POST, "/login")
    );
    if let Some(s) = &session {
        req.extensions_mut().insert(s.clone());
    }
    if !open {
        let Some(s) = &session else {
            return (StatusCode::UNAUTHORIZED, "log in first").into_response();
        };
        if req.method() != Method::GET {
            let given = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !given.is_some_and(|g| auth::same_code(g, &s.csrf)) {
                return (StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response();
            }
        }
    }
    if req.method() == Method::POST && !is_json(req.headers()) {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "send JSON").into_response();
    }
    next.run(req).await
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

fn not_json() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "the request is not the JSON this route takes",
    )
        .into_response()
}

async fn index(
    State(app): State<Arc<App>>,
    session: Option<Extension<Session>>,
    headers: HeaderMap,
) -> Response {
    let lang = page::pick_lang(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let html = match session {
        Some(Extension(s)) => page::main(lang, &s.csrf),
        None => page::login(lang, app.code.lock().map(|c| c.is_some()).unwrap_or(false)),
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

#[derive(Deserialize)]
struct Login {
    code: String,
}

async fn login(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    let now = Instant::now();
    let Some(given) = body::<Login>(&bytes) else {
        return not_json();
    };
    let Ok(mut limiter) = app.limiter.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Err(wait) = limiter.check(now) {
        tracing::warn!("web: pairing throttled after repeated wrong codes");
        let secs = wait.as_secs().max(1).to_string();
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong codes; wait a minute",
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let right = app
        .code
        .lock()
        .ok()
        .and_then(|c| c.as_ref().map(|c| auth::same_code(&given.code, c.expose())))
        .unwrap_or(false);
    if !right {
        limiter.failed(now);
        tracing::warn!("web: wrong pairing code");
        return (StatusCode::UNAUTHORIZED, "wrong code").into_response();
    }
    drop(limiter);
    let (Ok(a), Ok(b)) = (random(), random()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok((token, _)) = app.sessions.lock().map(|mut s| s.open(now, a, b)) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    tracing::info!("web: a phone logged in");
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        auth::IDLE.as_secs()
    );
    let mut r = Json(json!({"ok": true})).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(app): State<Arc<App>>, Extension(s): Extension<Session>) -> Response {
    if let Ok(mut sessions) = app.sessions.lock() {
        sessions.close(&s.token);
    }
    let mut r = Json(json!({"ok": true})).into_response();
    let gone = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// JSON without the json feature's extractor (see the module docs).
struct Json(serde_json::Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.0.to_string(),
        )
            .into_response()
    }
}

async fn status(State(app): State<Arc<App>>) -> Response {
    let status = app
        .bridge
        .status
        .borrow()
        .with_scale(&app.bridge.scale.borrow());
    let destinations = app
        .destinations
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    Json(json!({
        "status": status,
        "destinations": destinations,
        "products": app.products.lock().map(|p| p.clone()).unwrap_or_default(),
    }))
    .into_response()
}

async fn to_loop(app: &App, req: WebRequest) -> Response {
    match app.bridge.to_loop.send(req).await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping").into_response(),
    }
}

async fn go_live(State(app): State<Arc<App>>) -> Response {
    tracing::info!("web: go live");
    to_loop(&app, WebRequest::GoLive).await
}

#[derive(Deserialize)]
struct Confirm {
    confirm: bool,
}

async fn end_show(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    match body::<Confirm>(&bytes) {
        Some(Confirm { confirm: true }) => {
            tracing::info!("web: end the show");
            to_loop(&app, WebRequest::EndShow).await
        }
        Some(_) => (StatusCode::BAD_REQUEST, "ending needs {\"confirm\": true}").into_response(),
        None => not_json(),
    }
}

#[derive(Deserialize)]
struct Tag {
    product_id: String,
}

async fn tag(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    let Some(t) = body::<Tag>(&bytes) else {
        return not_json();
    };
    let known = app
        .products
        .lock()
        .is_ok_and(|p| p.iter().any(|p| p.id == t.product_id));
    if !known {
        return (
            StatusCode::NOT_FOUND,
            format!("no product \"{}\"", excerpt(&t.product_id)),
        )
            .into_response();
    }
    tracing::info!(product = %t.product_id, "web: product tapped");
    to_loop(
        &app,
        WebRequest::Tag {
            product_id: t.product_id,
        },
    )
    .await
}

#[derive(Deserialize)]
struct Push {
    destination: String,
    url: String,
}

async fn set_push(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    let Some(p) = body::<Push>(&bytes) else {
        return not_json();
    };
    let dest = app
        .destinations
        .lock()
        .ok()
        .and_then(|d| d.iter().find(|d| d.name == p.destination).cloned());
    let Some(dest) = dest else {
        return (
            StatusCode::NOT_FOUND,
            format!("no destination \"{}\"", excerpt(&p.destination)),
        )
            .into_response();
    };
    let (true, Some(file)) = (dest.pushable, dest.key_file.clone()) else {
        return (
            StatusCode::CONFLICT,
            "this destination's key is not kept in a key_file (or it is not RTMP); ask the technician",
        )
            .into_response();
    };
    let address = match push::split(&p.url) {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let key = address.key.clone();
    let (servers, name) = (app.settings.servers_file.clone(), dest.name.clone());
    let saved = push::SavedServer {
        server: address.server.clone(),
        replaced: dest.configured_url.clone(),
    };
    let written = tokio::task::spawn_blocking(move || {
        push::write_key_file(&file, &key).and_then(|()| push::save_server(&servers, &name, saved))
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        let why = match written {
            Ok(Err(e)) => e.to_string(),
            _ => "the writer stopped".into(),
        };
        tracing::error!(destination = %dest.name, error = %why, "web: cannot write the key file");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the key could not be saved",
        )
            .into_response();
    }
    let tail = address.tail();
    let (reply, answer) = tokio::sync::oneshot::channel();
    let req = WebRequest::SetPush {
        destination: dest.name.clone(),
        server: address.server.clone(),
        key: address.key,
        reply,
    };
    if app.bridge.to_loop.send(req).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping").into_response();
    }
    match tokio::time::timeout(LOOP_ANSWER, answer).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(why))) => return (StatusCode::CONFLICT, why).into_response(),
        _ => return (StatusCode::SERVICE_UNAVAILABLE, "the daemon did not answer").into_response(),
    }
    if let Ok(mut d) = app.destinations.lock() {
        if let Some(d) = d.iter_mut().find(|d| d.name == dest.name) {
            d.key_tail = Some(tail.clone());
        }
    }
    tracing::info!(destination = %dest.name, "web: today's push address saved; used from the next go-live");
    Json(json!({"ok": true, "destination": dest.name, "server": address.server, "key_tail": tail}))
        .into_response()
}

/// A product's name and price from the page: checked, saved in the local
/// layer (mode 0600, atomic), then handed to the driver.
async fn edit_product(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    let Some(edit) = body::<products::Edit>(&bytes) else {
        return not_json();
    };
    let currency = app.products.lock().ok().and_then(|p| {
        p.iter()
            .find(|p| p.id == edit.id)
            .map(|p| p.currency.clone())
    });
    let Some(currency) = currency else {
        return (
            StatusCode::NOT_FOUND,
            format!("no product \"{}\"", excerpt(&edit.id)),
        )
            .into_response();
    };
    if let Err(why) = products::check(&edit, &currency) {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let file = app.settings.products_file.clone();
    let saved = edit.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut edits = products::parse(&std::fs::read_to_string(&file).unwrap_or_default());
        edits.insert(saved.id.clone(), saved);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        push::write_private(&file, products::render(&edits).as_bytes())
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::error!("web: the product edit could not be saved");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the edit could not be saved",
        )
            .into_response();
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let req = WebRequest::EditProduct {
        edit: edit.clone(),
        reply,
    };
    if app.bridge.to_loop.send(req).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping").into_response();
    }
    if !matches!(
        tokio::time::timeout(LOOP_ANSWER, answer).await,
        Ok(Ok(Ok(())))
    ) {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon did not answer").into_response();
    }
    if let Ok(mut p) = app.products.lock() {
        if let Some(p) = p.iter_mut().find(|p| p.id == edit.id) {
            p.name = edit.name.trim().to_string();
            p.unit_price = edit.unit_price.trim().to_string();
        }
    }
    tracing::info!(product = %edit.id, "web: product edited");
    Json(json!({"ok": true})).into_response()
}

async fn preview(State(app): State<Arc<App>>) -> Response {
    let mut cache = app.preview.lock().await;
    let now = Instant::now();
    let fresh = cache
        .as_ref()
        .filter(|(at, _)| now.saturating_duration_since(*at) < PREVIEW_REUSE)
        .map(|(_, j)| j.clone());
    let jpeg = match fresh {
        Some(j) => j,
        None => {
            let Some(snap) = app.bridge.preview.borrow().clone() else {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no picture: the capture is not running",
                )
                    .into_response();
            };
            match tokio::task::spawn_blocking(move || snap.jpeg(320)).await {
                Ok(Ok(j)) => {
                    let j = Bytes::from(j);
                    *cache = Some((now, j.clone()));
                    j
                }
                _ => return (StatusCode::SERVICE_UNAVAILABLE, "no picture yet").into_response(),
            }
        }
    };
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response()
}

/// 32 bytes from the kernel's generator.
fn random() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}
