//! gradtone's browser sink: a small HTTP server with one page that plays the run's sound (the
//! very samples the WAV gets, over a WebSocket into an AudioWorklet), draws the voices, the loss
//! and the alarms live, and gives a late joiner the history so far.
//!
//! It runs on a thread of its own (hyper and axum's WebSockets on a single-threaded tokio
//! runtime): the training thread only appends to a shared log, idle or hostile connections cost
//! a task each, and a page that stops reading is skipped ahead, never buffered for.
//!
//! Safe by default: it binds loopback; any other address needs a token (random unless given),
//! checked on every request, as in the URL Jupyter prints. Without a token the `Host` header
//! must name a loopback host (DNS rebinding), and a WebSocket's `Origin` must be the page's own
//! (cross-site WebSockets). The page is read-only: nothing it sends is acted on.
//!
//! ```no_run
//! use gradtone_serve::{Server, ServeOptions};
//! let server = Server::start(ServeOptions::new("127.0.0.1:0".parse()?, 44_100, 1))?;
//! println!("open {}", server.url());
//! server.push_point(0, Some(("loss", 2.3)), &["conv1", "fc1"], &[0.5, 0.2]);
//! server.push_audio(0, &[0.0; 441]);
//! server.finish();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod http;
mod hub;
mod sink;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use hub::AUDIO_HEADER;
pub use sink::{ServeArgs, ServeSink};

/// The port `--serve` uses when none is given.
pub const DEFAULT_PORT: u16 = 8737;

/// Pages (WebSocket clients) served at once at most; more are answered 503.
pub const MAX_CLIENTS: usize = 1000;

/// Connections that have not sent a valid request yet, kept at most (fewer when the process may
/// open few files); past this the oldest of them is closed to make room for the new one.
pub const MAX_PENDING: usize = 4096;

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is not `PORT`, `HOST`, `HOST:PORT`.
    #[error(
        "{0:?} is not an address to serve on: give PORT, IP or IP:PORT (e.g. 127.0.0.1:8737, 0 for any free port)"
    )]
    BadAddr(String),
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve on {0} without a token: any machine that can reach it could listen in. Drop the no-token option (a random token is printed in the URL), give one, or bind 127.0.0.1 and use an SSH tunnel"
    )]
    NeedToken(SocketAddr),
    /// A token that cannot go in a URL unescaped.
    #[error("the token must be 8 to 256 characters of A-Z a-z 0-9 - _ . ~")]
    BadToken,
    /// Binding failed.
    #[error(
        "cannot serve on {addr} (is another gradtone serving there? --serve 0 picks a free port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Whether the page needs a token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Token {
    /// None on loopback, a random one on any other address.
    #[default]
    Auto,
    /// No token: allowed on loopback only.
    Off,
    /// This token.
    Given(String),
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// Token policy.
    pub token: Token,
    /// Page title.
    pub title: String,
    /// Sample rate of the audio pushed.
    pub sample_rate: u32,
    /// Channels of the (interleaved) audio pushed.
    pub channels: u16,
    /// Chart points kept; at this many the history is halved (pairs merged).
    pub chart_points: usize,
    /// Interleaved samples of recent audio kept for late joiners (and the page's replay).
    pub audio_history: usize,
    /// Connections yet to send a valid request kept at most (see [`MAX_PENDING`]); lowered
    /// to a quarter of the process's open-file limit when that is smaller.
    pub max_pending: usize,
}

impl ServeOptions {
    /// Defaults for `addr` and this audio format: 4096 chart points, ~3 min of audio history.
    pub fn new(addr: SocketAddr, sample_rate: u32, channels: u16) -> Self {
        ServeOptions {
            addr,
            token: Token::Auto,
            title: "gradtone".into(),
            sample_rate,
            channels,
            chart_points: 4096,
            audio_history: sample_rate as usize * usize::from(channels.max(1)) * 180,
            max_pending: MAX_PENDING,
        }
    }
}

/// Parses `--serve`'s value: empty for the default (`127.0.0.1:8737`), `PORT` (on
/// 127.0.0.1; `0` for any free port), `IP` (default port) or `IP:PORT`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, ServeError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)));
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
            .map_err(|_| ServeError::BadAddr(s.into()));
    }
    if let Ok(ip) = s.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    s.parse().map_err(|_| ServeError::BadAddr(s.into()))
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..24)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn valid_token(t: &str) -> bool {
    (8..=256).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

/// Counters of a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Browsers (WebSocket clients) connected now.
    pub clients: usize,
    /// WebSocket clients served in all.
    pub clients_total: u64,
    /// Requests refused (bad token, host, origin, method, path; too many pages).
    pub refused: u64,
    /// Connections closed before sending a valid request, to make room for newer ones.
    pub evicted: u64,
}

pub(crate) struct Shared {
    pub hub: hub::Hub,
    pub token: Option<String>,
    /// The page, with the token in its script's URL.
    pub index: axum::body::Bytes,
    pub max_pending: usize,
    pub refused: AtomicU64,
    pub evicted: AtomicU64,
}

/// A running server; dropping it (or [`Server::close`]) stops it.
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// Raises the soft limit on open files to the hard one (as Go's runtime does at start): each
/// connection is a descriptor, and 1024 is too few to outlast a flood. The limit it ends at.
#[cfg(unix)]
fn raise_open_files() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

#[cfg(not(unix))]
fn raise_open_files() -> usize {
    8192
}

/// Binds `addr` now (a port in use fails here, before anything else starts) with room for a
/// burst of connections: std's backlog of 128 drops SYNs under a churn, and a dropped SYN is a
/// 1 s stall for whoever sent it.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl Server {
    /// Binds now — a taken port or a refused address is [`ServeError::Bind`] here, before
    /// anything else starts — then serves on a thread of its own.
    pub fn start(opts: ServeOptions) -> Result<Server, ServeError> {
        let loopback = opts.addr.ip().is_loopback();
        let token = match opts.token {
            Token::Auto if loopback => None,
            Token::Auto => Some(random_token()),
            Token::Off if loopback => None,
            Token::Off => return Err(ServeError::NeedToken(opts.addr)),
            Token::Given(t) if valid_token(&t) => Some(t),
            Token::Given(_) => return Err(ServeError::BadToken),
        };
        let asked = |source| ServeError::Bind {
            addr: opts.addr,
            source,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(asked)?;
        let listener = {
            let _in = runtime.enter();
            listen(opts.addr).map_err(asked)?
        };
        let addr = listener.local_addr().map_err(asked)?;
        let host = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let url = match &token {
            Some(t) => format!("http://{host}:{}/?token={t}", addr.port()),
            None => format!("http://{host}:{}/", addr.port()),
        };
        let bind_err = |source| ServeError::Bind { addr, source };
        // A quarter of the descriptors for connections yet to send a request: the training
        // and the pages keep the rest.
        let max_pending = (raise_open_files() / 4).clamp(16, opts.max_pending.max(16));
        let shared = Arc::new(Shared {
            hub: hub::Hub::new(
                opts.title,
                opts.sample_rate,
                opts.channels,
                opts.chart_points,
                opts.audio_history,
            ),
            index: http::index_html(token.as_deref()),
            token,
            max_pending,
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("gradtone-serve".into())
            .spawn(move || {
                runtime.block_on(http::serve(listener, s, stopped));
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(bind_err)?;
        Ok(Server {
            shared,
            addr,
            url,
            stop,
            thread: Some(thread),
        })
    }

    /// The page's URL (with the token, if any).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address bound (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token requests must carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.shared.token.as_deref()
    }

    /// A step's point for the chart: its loss (name, value) and its voices' values, in the
    /// order of `names` (the names the listener hears, as in the legend).
    pub fn push_point(&self, step: u64, loss: Option<(&str, f64)>, names: &[&str], values: &[f64]) {
        self.shared.hub.push_point(step, loss, names, values);
    }

    /// An alarm: a marker on the chart and its console text.
    pub fn push_alarm(&self, step: u64, kind: &str, message: &str) {
        self.shared.hub.push_alarm(step, kind, message);
    }

    /// Rendered audio (interleaved f32, as the WAV gets it) of step `step`.
    pub fn push_audio(&self, step: u64, samples: &[f32]) {
        self.shared.hub.push_audio(step, samples);
    }

    /// Tells the pages the run is over (they offer a replay); the server keeps serving.
    pub fn finish(&self) {
        self.shared.hub.finish();
    }

    /// Counters.
    pub fn stats(&self) -> ServeStats {
        let st = self.shared.hub.lock();
        ServeStats {
            clients: st.clients,
            clients_total: st.clients_total,
            refused: self.shared.refused.load(Ordering::Relaxed),
            evicted: self.shared.evicted.load(Ordering::Relaxed),
        }
    }

    /// Waits until a browser is connected, `stop` is raised or `timeout` passes; whether one is.
    pub fn wait_for_client(&self, stop: &AtomicBool, timeout: Option<Duration>) -> bool {
        let start = Instant::now();
        loop {
            if self.stats().clients > 0 {
                return true;
            }
            if stop.load(Ordering::SeqCst) || timeout.is_some_and(|t| start.elapsed() >= t) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops serving: the pages get what was pushed (the run's end), for up to 2 s, then the
    /// connections close and the server's thread is joined.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.hub.close();
        self.stop.send_replace(true);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
