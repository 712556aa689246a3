//! The HTTP layer: one request per connection (`Connection: close`), GET only, four paths,
//! every request checked (token, `Host`, `Origin`) before anything is served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::Shared;

/// Request head bytes read at most.
const MAX_HEAD: usize = 16 * 1024;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const WORKLET_JS: &str = include_str!("../assets/worklet.js");

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// Reads the request head (bounded in size and time).
fn read_head(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() >= MAX_HEAD || Instant::now() > deadline {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let target = req.path?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some(Request {
        method: req.method?.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    })
}

fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &[u8], head_only: bool) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
         Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data:\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        let _ = stream.write_all(body);
    }
    let _ = stream.flush();
}

fn refuse(stream: &mut TcpStream, shared: &Shared, status: &str, why: &str) {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    respond(
        stream,
        status,
        "text/plain; charset=utf-8",
        format!("{why}\n").as_bytes(),
        false,
    );
}

/// Answers a connection over the limit.
pub(crate) fn busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    respond(
        &mut stream,
        "503 Service Unavailable",
        "text/plain",
        b"too many connections\n",
        false,
    );
}

/// The host part of a `Host` header (`name`, `1.2.3.4`, `[::1]`, each with an optional port).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
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

/// Checks a request; the refusal's status and reason, if refused.
fn check(req: &Request, shared: &Shared) -> Result<(), (&'static str, String)> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err((
            "405 Method Not Allowed",
            "the page is read-only: GET only".into(),
        ));
    }
    let Some(host) = req.header("host") else {
        return Err(("400 Bad Request", "no Host header".into()));
    };
    match &shared.token {
        Some(t) => {
            if !req.query_param("token").is_some_and(|q| same(q, t)) {
                return Err((
                    "403 Forbidden",
                    "missing or wrong token: open the URL gradtone printed (…/?token=…)".into(),
                ));
            }
        }
        None => {
            if !loopback_host(host) {
                return Err((
                    "403 Forbidden",
                    format!(
                        "Host {host:?} is not a loopback name; open http://127.0.0.1:PORT/ or http://localhost:PORT/ (or serve with a token)"
                    ),
                ));
            }
        }
    }
    if let Some(origin) = req.header("origin") {
        let origin = origin.trim();
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host.trim()));
        if !own {
            return Err((
                "403 Forbidden",
                format!("cross-origin request from {origin:?} refused"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn handle(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_nodelay(true);
    let Some(req) = read_head(&mut stream) else {
        refuse(
            &mut stream,
            shared,
            "400 Bad Request",
            "malformed or oversized request",
        );
        return;
    };
    if let Err((status, why)) = check(&req, shared) {
        refuse(&mut stream, shared, status, &why);
        return;
    }
    let head = req.method == "HEAD";
    match req.path.as_str() {
        "/" | "/index.html" => respond(
            &mut stream,
            "200 OK",
            "text/html; charset=utf-8",
            INDEX_HTML.as_bytes(),
            head,
        ),
        "/app.js" => respond(
            &mut stream,
            "200 OK",
            "text/javascript; charset=utf-8",
            APP_JS.as_bytes(),
            head,
        ),
        "/worklet.js" => respond(
            &mut stream,
            "200 OK",
            "text/javascript; charset=utf-8",
            WORKLET_JS.as_bytes(),
            head,
        ),
        "/ws" => websocket(stream, &req, shared),
        _ => refuse(&mut stream, shared, "404 Not Found", "not found"),
    }
}

fn websocket(mut stream: TcpStream, req: &Request, shared: &Shared) {
    let upgrade = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let (Some(key), true) = (req.header("sec-websocket-key"), upgrade) else {
        refuse(
            &mut stream,
            shared,
            "400 Bad Request",
            "expected a WebSocket upgrade",
        );
        return;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    // Reads only to notice a closed page; what the page sends is never acted on.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1)));
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 10))
        .max_frame_size(Some(64 << 10));
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    let (hello, audio, mut cursor) = shared.hub.join();
    let _ = serve_client(&mut ws, shared, hello, audio, &mut cursor);
    shared.hub.leave();
    let _ = ws.close(None);
    let _ = ws.flush();
}

fn serve_client(
    ws: &mut WebSocket<TcpStream>,
    shared: &Shared,
    hello: Message,
    audio: Vec<Message>,
    cursor: &mut u64,
) -> tungstenite::Result<()> {
    ws.send(hello)?;
    for m in audio {
        ws.write(m)?;
    }
    ws.flush()?;
    let mut last_ping = Instant::now();
    loop {
        let Some(batch) = shared.hub.next(cursor, Duration::from_millis(500)) else {
            return Ok(());
        };
        let idle = batch.is_empty();
        for m in batch {
            ws.write(m)?;
        }
        if idle && last_ping.elapsed() > Duration::from_secs(5) {
            ws.write(Message::Ping(Default::default()))?;
            last_ping = Instant::now();
        }
        ws.flush()?;
        // A closed page: its close frame or EOF ends this client.
        match ws.read() {
            Ok(Message::Close(_)) => return Ok(()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
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
    }

    #[test]
    fn constant_time_compare() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
