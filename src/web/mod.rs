//! The farmer's phone page and the technicians' metrics: an HTTP server
//! inside the daemon, on the daemon's tokio runtime (`docs/web.md`).
//!
//! The bridge to the driver is narrow and channel-shaped, so the driver can
//! change shape without this module noticing:
//! - requests go to the loop as [`WebRequest`]s (the same inputs a button or
//!   an MQTT command makes);
//! - what the page shows comes from a `watch` of [`WebStatus`], updated at
//!   each status publish, and a `watch` of the capture's [`Snapshotter`]
//!   (the preview: JPEGs are made only while a phone asks for them).
//!
//! Pure parts: [`auth`] (pairing limiter, sessions), [`push`] (splitting a
//! pasted push address), [`metrics`] (the Prometheus text). I/O lives in
//! [`server`].

pub mod auth;
pub mod metrics;
mod page;
pub mod probe;
pub mod products;
pub mod push;
mod server;

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::secret::Secret;
use crate::config::Config;
use crate::media::capture::Snapshotter;
use crate::mqtt::payloads::{ScaleStatus, Status};

/// What the page asks of the driver.
#[derive(Debug)]
pub enum WebRequest {
    GoLive,
    EndShow,
    Tag {
        product_id: String,
    },
    /// Today's push address for a destination, already split and checked,
    /// its key already written to the key file: used from the next go-live.
    SetPush {
        destination: String,
        server: String,
        key: Secret,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A product's name and price, checked and already saved in the local
    /// layer (`products.rs`): used from the next tag.
    EditProduct {
        edit: products::Edit,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What the page shows: the status the driver publishes (the same as MQTT's).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WebStatus {
    pub status: Option<Status>,
}

impl WebStatus {
    /// The status with the freshest scale reading (the status document
    /// itself goes out only every `mqtt.status_interval_s`).
    fn with_scale(&self, scale: &ScaleStatus) -> Option<Status> {
        self.status.clone().map(|mut s| {
            s.scale = scale.clone();
            s
        })
    }
}

/// The driver's side of the bridge.
pub struct Handle {
    status: watch::Sender<WebStatus>,
    preview: watch::Sender<Option<Snapshotter>>,
    code: watch::Sender<Option<Secret>>,
    scale: watch::Sender<ScaleStatus>,
}

impl Handle {
    /// The scale's reading, at every health tick: the page shows it live.
    pub fn scale(&self, scale: ScaleStatus) {
        self.scale.send_if_modified(|s| {
            let changed = *s != scale;
            *s = scale;
            changed
        });
    }

    pub fn status(&self, status: &Status) {
        self.status.send_replace(WebStatus {
            status: Some(status.clone()),
        });
    }

    /// A new pairing code (MQTT `set_pairing_code`): kept in the state
    /// directory, and every phone logged out.
    pub fn set_code(&self, code: Secret) {
        self.code.send_replace(Some(code));
    }

    /// The capture's frame tap, or none while the capture is down.
    pub fn preview(&self, snap: Option<Snapshotter>) {
        let same = matches!((&*self.preview.borrow(), &snap), (None, None));
        if !same {
            self.preview.send_replace(snap);
        }
    }
}

/// The server's side of the bridge.
pub struct Bridge {
    pub to_loop: mpsc::Sender<WebRequest>,
    /// A new pairing code from the technician.
    pub code: watch::Receiver<Option<Secret>>,
    pub scale: watch::Receiver<ScaleStatus>,
    pub status: watch::Receiver<WebStatus>,
    pub preview: watch::Receiver<Option<Snapshotter>>,
}

/// What the server needs from the config, taken once at start.
#[derive(Clone)]
pub struct WebSettings {
    pub listen: String,
    pub metrics_listen: Option<String>,
    pub pairing_code: Option<Secret>,
    /// Where `set_pairing_code` keeps a code (wins over the config key).
    pub code_file: PathBuf,
    /// The local layer of product edits (`products.rs`).
    pub products_file: PathBuf,
    /// The local layer of pasted servers (`push::servers_file`).
    pub servers_file: PathBuf,
    pub destinations: Vec<DestinationView>,
    pub products: Vec<ProductView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationView {
    pub name: String,
    /// The `url` the config gives it, under any pasted server (what a
    /// paste replaces; see `push::SavedServer`).
    #[serde(skip)]
    pub configured_url: String,
    /// `key_file` resolved against the config's folder; none when the key
    /// is inline (the page then cannot replace it).
    #[serde(skip)]
    pub key_file: Option<PathBuf>,
    pub pushable: bool,
    /// The last four characters of the key in use.
    pub key_tail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductView {
    pub id: String,
    pub name: String,
    pub unit: String,
    pub unit_price: String,
    pub currency: String,
}

impl WebSettings {
    pub fn from_config(config: &Config, config_dir: &Path) -> WebSettings {
        let saved = push::parse_servers(
            &std::fs::read_to_string(push::servers_file(&config.state_dir)).unwrap_or_default(),
        );
        WebSettings {
            listen: config.web.listen.clone(),
            metrics_listen: config.web.metrics_listen.clone(),
            pairing_code: config.web.pairing_code.clone(),
            code_file: Path::new(&config.state_dir)
                .join("web")
                .join("pairing_code"),
            products_file: products::file(&config.state_dir),
            servers_file: push::servers_file(&config.state_dir),
            destinations: config
                .destinations
                .iter()
                .filter(|d| d.enabled)
                .map(|d| {
                    let is_rtmp = crate::config::url::parse(&d.url).is_ok_and(|u| {
                        matches!(
                            u.scheme,
                            crate::config::url::Scheme::Rtmp | crate::config::url::Scheme::Rtmps
                        )
                    });
                    DestinationView {
                        configured_url: push::configured_url(&d.url, saved.get(&d.name)),
                        name: d.name.clone(),
                        key_file: d.key_file.as_ref().map(|f| config_dir.join(f)),
                        pushable: d.key_file.is_some() && is_rtmp,
                        key_tail: d.key.as_ref().map(|k| push::key_tail(k.expose())),
                    }
                })
                .collect(),
            products: config
                .products
                .iter()
                .map(|p| ProductView {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    unit: p.unit.to_string(),
                    unit_price: p.unit_price.clone(),
                    currency: p.currency.clone(),
                })
                .collect(),
        }
    }
}

/// Starts the page (and the metrics endpoint) on the current runtime when
/// `[web]` is on; returns the driver's handle and the requests' receiver.
/// A port that cannot be bound is logged, and the box streams without the page.
pub fn start(config: &Config, config_dir: &Path) -> Option<(Handle, mpsc::Receiver<WebRequest>)> {
    if !config.web.enabled {
        return None;
    }
    let (to_loop, requests) = mpsc::channel(16);
    let (status_tx, status) = watch::channel(WebStatus::default());
    let (preview_tx, preview) = watch::channel(None);
    let (code_tx, code) = watch::channel(None);
    let (scale_tx, scale) = watch::channel(ScaleStatus::default());
    let bridge = Bridge {
        to_loop,
        code,
        scale,
        status,
        preview,
    };
    server::spawn(WebSettings::from_config(config, config_dir), bridge);
    Some((
        Handle {
            status: status_tx,
            preview: preview_tx,
            code: code_tx,
            scale: scale_tx,
        },
        requests,
    ))
}
