//! The HTTP layer: hyper (HTTP/1.1, one request per connection) on the server's own
//! single-threaded tokio runtime, axum's WebSocket upgrade, GET only, four paths, every request
//! checked (one `Host`, token, `Origin`) before anything is served.
//!
//! Nobody can lock a viewer out: a connection costs a task and a socket, not a thread; its
//! request head must arrive within [`HEAD_TIMEOUT`]; and connections that have not yet sent a
//! valid request are the only ones counted against a cap, past which the *oldest* of them is
//! closed, so a new viewer always gets in. WebSocket clients that stop reading are skipped
//! ahead by the hub (each holds one batch of the log, a few hundred KiB, and one message in
//! the socket's writer) and dropped after [`SEND_TIMEOUT`] without progress.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, watch};

use crate::Shared;

/// Time a connection has to send its whole request head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a connection has for its request and response (a WebSocket leaves this behind).
const CONN_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a WebSocket client has to take one message before it is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Ping an idle WebSocket this often (a dead peer shows as a failed send).
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long a woken WebSocket client waits for more before sending: a few ms of latency
/// against a wake-up per message.
const GATHER: Duration = Duration::from_millis(5);
/// Request head bytes read at most (more: 431).
const MAX_HEAD: usize = 16 * 1024;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const WORKLET_JS: &str = include_str!("../assets/worklet.js");
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data:";

/// The page, with the token in its script's URL when there is one (the browser would send
/// none: a relative URL drops the query).
pub(crate) fn index_html(token: Option<&str>) -> Bytes {
    match token {
        Some(t) => {
            Bytes::from(INDEX_HTML.replace("src=\"app.js\"", &format!("src=\"app.js?token={t}\"")))
        }
        None => Bytes::from_static(INDEX_HTML.as_bytes()),
    }
}

/// Connections that have not sent a valid request yet, oldest first, each with the switch that
/// closes it.
#[derive(Default)]
pub(crate) struct Pending {
    next: u64,
    conns: BTreeMap<u64, Arc<Notify>>,
}

type PendingSet = Arc<Mutex<Pending>>;

fn lock(p: &PendingSet) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes the oldest unserved connection, if any.
fn evict_oldest(p: &PendingSet, shared: &Shared) -> bool {
    match lock(p).conns.pop_first() {
        Some((_, gone)) => {
            gone.notify_one();
            shared.evicted.fetch_add(1, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Accepts and serves until `stop` turns true, then gives the WebSocket clients up to 2 s to
/// take the run's last messages.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let pending: PendingSet = Arc::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors (or a peer gone before accept): free one by closing the
                // oldest connection that has sent nothing valid, and keep serving.
                if !evict_oldest(&pending, &shared) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gone = Arc::new(Notify::new());
        let id = {
            let mut p = lock(&pending);
            let id = p.next;
            p.next += 1;
            p.conns.insert(id, gone.clone());
            id
        };
        while lock(&pending).conns.len() > shared.max_pending {
            evict_oldest(&pending, &shared);
        }
        let (s, p, p_done) = (shared.clone(), pending.clone(), pending.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (s, p) = (s.clone(), p.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(req, &s, &p, id).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .keep_alive(false)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::select! {
                _ = conn => {}
                _ = gone.notified() => {}
                _ = tokio::time::sleep(CONN_TIMEOUT) => {}
            }
            lock(&p_done).conns.remove(&id);
        });
        // Each connection is read once before the next is accepted: a burst waiting in the
        // backlog must not push a viewer's request, already there, out as the oldest.
        tokio::task::yield_now().await;
    }
    drop(listener);
    let deadline = Instant::now() + Duration::from_secs(2);
    while shared.hub.lock().clients > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn respond(status: StatusCode, ctype: &'static str, body: impl Into<Body>) -> Response<Body> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page's URL holds the token: no request it makes may carry it elsewhere.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

fn refuse(shared: &Shared, status: StatusCode, why: &str) -> Response<Body> {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    respond(status, "text/plain; charset=utf-8", format!("{why}\n"))
}

/// The host part of a `Host` header (`name`, `1.2.3.4`, `[::1]`, each with an optional port).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        // An unclosed bracket names no host.
        return rest.split_once(']').map_or("", |(h, _)| h);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Whether `Host` names this machine's loopback: what a browser sends for the printed URL, an
/// SSH tunnel (`localhost:PORT`) or an editor's port forwarding. Anything else, without a
/// token, may be DNS rebinding: another site's name resolved to 127.0.0.1.
fn loopback_host(host: &str) -> bool {
    let name = host_name(host).to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Constant-time comparison (the token must not leak through timing).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of `key` in `query`; `None` when it is missing or given more than once (which one
/// counts would be a guess).
fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    let mut found = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v);
    match (found.next(), found.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// Checks a request; the refusal's status and reason, if refused.
fn check(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    shared: &Shared,
) -> Result<(), (StatusCode, String)> {
    // The token first: without it every request is the same 403, whatever else it breaks.
    if let Some(t) = &shared.token
        && !query_param(uri.query().unwrap_or(""), "token").is_some_and(|q| same(q, t))
    {
        return Err((
            StatusCode::FORBIDDEN,
            "missing or wrong token: open the URL gradtone printed (…/?token=…)".into(),
        ));
    }
    if method != Method::GET && method != Method::HEAD {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "the page is read-only: GET only".into(),
        ));
    }
    // RFC 9112 §3.2: no Host, or more than one, is a bad request; so is an absolute target
    // (its authority would stand in for Host).
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "a request needs exactly one Host header".into(),
        ));
    };
    if uri.authority().is_some() {
        return Err((StatusCode::BAD_REQUEST, "absolute request target".into()));
    }
    let Ok(host) = host.to_str() else {
        return Err((StatusCode::BAD_REQUEST, "Host is not text".into()));
    };
    if shared.token.is_none() && !loopback_host(host) {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "Host {host:?} is not a loopback name; open http://127.0.0.1:PORT/ or http://localhost:PORT/ (or serve with a token)"
            ),
        ));
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) => {}
        (Some(origin), None) => {
            let origin = origin.to_str().unwrap_or("").trim();
            let own = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|o| o.eq_ignore_ascii_case(host.trim()));
            if !own {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("cross-origin request from {origin:?} refused"),
                ));
            }
        }
        (Some(_), Some(_)) => {
            return Err((
                StatusCode::BAD_REQUEST,
                "more than one Origin header".into(),
            ));
        }
    }
    Ok(())
}

async fn handle(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    pending: &PendingSet,
    id: u64,
) -> Response<Body> {
    if let Err((status, why)) = check(req.method(), req.uri(), req.headers(), shared) {
        return refuse(shared, status, &why);
    }
    // A valid request: this connection is a viewer's now, never closed to make room.
    lock(pending).conns.remove(&id);
    let js = "text/javascript; charset=utf-8";
    match req.uri().path() {
        "/" | "/index.html" => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            shared.index.clone(),
        ),
        "/app.js" => respond(StatusCode::OK, js, APP_JS),
        "/worklet.js" => respond(StatusCode::OK, js, WORKLET_JS),
        "/ws" => websocket(req, shared).await,
        _ => refuse(shared, StatusCode::NOT_FOUND, "not found"),
    }
}

async fn websocket(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    if shared.hub.lock().clients >= crate::MAX_CLIENTS {
        return refuse(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "too many pages open",
        );
    }
    let (mut parts, _) = req.into_parts();
    let Ok(upgrade) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        return refuse(
            shared,
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade",
        );
    };
    let s = shared.clone();
    upgrade
        // The page sends nothing but control frames: small buffers, small limits (each page
        // would otherwise hold 128 KiB for reading).
        .read_buffer_size(4 << 10)
        .max_message_size(64 << 10)
        .max_frame_size(64 << 10)
        .on_upgrade(move |ws| client(ws, s))
}

async fn client(mut ws: WebSocket, shared: Arc<Shared>) {
    let mut news = shared.hub.subscribe();
    news.borrow_and_update();
    let (hello, audio, mut cursor) = shared.hub.join();
    let _ = follow(&mut ws, &shared, &mut news, hello, audio, &mut cursor).await;
    shared.hub.leave();
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(Message::Close(None))).await;
}

/// Sends one message, or fails when the page does not take it within [`SEND_TIMEOUT`].
async fn send(ws: &mut WebSocket, m: Message) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(m)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn follow(
    ws: &mut WebSocket,
    shared: &Shared,
    news: &mut watch::Receiver<u64>,
    hello: Vec<Message>,
    (mut audio, audio_end): (u64, u64),
    cursor: &mut u64,
) -> Result<(), ()> {
    for m in hello {
        send(ws, m).await?;
    }
    loop {
        let batch = shared.hub.audio_history(&mut audio, audio_end, 16);
        if batch.is_empty() {
            break;
        }
        for m in batch {
            send(ws, m).await?;
        }
    }
    loop {
        news.borrow_and_update();
        let Some(batch) = shared.hub.take(cursor) else {
            return Ok(());
        };
        if batch.is_empty() {
            tokio::select! {
                changed = news.changed() => {
                    changed.map_err(|_| ())?;
                    // Gather what follows for a moment (a step's point, then its audio; a fast
                    // loop's next steps): one wake-up and one write per batch, not per message,
                    // so the server's thread takes little from a training loop's cores.
                    tokio::time::sleep(GATHER).await;
                }
                // What the page sends is never acted on; its close (or EOF) ends it.
                m = ws.recv() => match m {
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
                    Some(Ok(_)) => {}
                },
                _ = tokio::time::sleep(PING_EVERY) => send(ws, Message::Ping(Bytes::new())).await?,
            }
            continue;
        }
        for m in batch {
            send(ws, m).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert!(loopback_host("127.0.0.1:8737"));
        assert!(loopback_host("localhost:9"));
        assert!(loopback_host("LOCALHOST"));
        assert!(loopback_host("[::1]:80"));
        assert!(loopback_host("127.5.0.1"));
        assert!(!loopback_host("evil.example:8737"));
        assert!(!loopback_host("localhost.evil.example"));
        assert!(!loopback_host("10.0.0.1:8737"));
        assert!(!loopback_host(""));
        assert!(!loopback_host("[::1"), "an unclosed bracket");
    }

    #[test]
    fn constant_time_compare() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }

    #[test]
    fn a_repeated_parameter_counts_as_missing() {
        assert_eq!(query_param("a=1&token=x&b=2", "token"), Some("x"));
        assert_eq!(query_param("token=x&token=x", "token"), None);
        assert_eq!(query_param("token=x&token=y", "token"), None);
        assert_eq!(query_param("token&b=1", "token"), None);
    }

    #[test]
    fn token_goes_into_the_script_url() {
        let page = index_html(Some("abcdefgh12"));
        let page = std::str::from_utf8(&page).unwrap();
        assert!(page.contains("src=\"app.js?token=abcdefgh12\""), "{page}");
        assert!(!index_html(None).windows(6).any(|w| w == b"token="));
    }
}
