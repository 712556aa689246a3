//! The server against hostile clients this test starts on 127.0.0.1, bounded in count and time:
//! requests that break HTTP's rules, every wrong form of the token on every path, pages that
//! send (many frames, one too big), and floods of idle, slow, unauthenticated and churning
//! connections that must not lock a viewer out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gradtone_serve::{ServeOptions, Server, Token};
use tungstenite::Message;

const TOKEN: &str = "Tok3n-for-tests_0123";
const WS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn server(token: Token, max_pending: usize) -> Server {
    let mut o = ServeOptions::new("127.0.0.1:0".parse().unwrap(), 44_100, 1);
    o.token = token;
    o.chart_points = 64;
    o.audio_history = 10_000;
    o.max_pending = max_pending;
    Server::start(o).expect("serves on loopback")
}

/// Sends `raw`, returns the status and the response (up to EOF, or the 101's head).
fn raw(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.starts_with(b"HTTP/1.1 101") && out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response
        .split("\r\n\r\n")
        .next()?
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

#[test]
fn http_by_the_book() {
    let s = server(Token::Auto, 4096);
    let a = s.local_addr();
    let host = format!("127.0.0.1:{}", a.port());
    // RFC 9112 §3.2: two Host headers are a bad request, for the page and for the upgrade.
    let two = format!("GET / HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n\r\n");
    assert_eq!(raw(a, &two).0, 400, "two Host headers");
    let two = format!("GET / HTTP/1.1\r\nHost: evil.example\r\nHost: {host}\r\n\r\n");
    assert_eq!(raw(a, &two).0, 400, "two Host headers, loopback last");
    let ws2 = format!("GET /ws HTTP/1.1\r\nHost: {host}\r\nHost: {host}\r\n{WS}\r\n");
    assert_eq!(
        raw(a, &ws2).0,
        400,
        "a WebSocket upgrade with two Host headers"
    );
    // An absolute target names another host than Host.
    let abs = format!("GET http://evil.example/ HTTP/1.1\r\nHost: {host}\r\n\r\n");
    assert_eq!(raw(a, &abs).0, 400, "absolute-form target");
    // An oversized head is refused, not buffered.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let code = raw(a, &big).0;
    assert!(
        code == 431 || code == 400 || code == 0,
        "oversized head: {code}"
    );
    // A well-formed request still works, and says where it may refer (nowhere).
    let (code, resp) = raw(a, &format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    assert_eq!(code, 200);
    assert_eq!(header(&resp, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(&resp, "x-content-type-options"), Some("nosniff"));
    assert!(header(&resp, "set-cookie").is_none());
    // HEAD: the head alone.
    let (code, resp) = raw(a, &format!("HEAD /app.js HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    assert_eq!(code, 200);
    assert!(resp.ends_with("\r\n\r\n"), "no body for HEAD: {resp}");
    s.close();
}

#[test]
fn every_wrong_token_is_refused_on_every_path() {
    let s = server(Token::Given(TOKEN.into()), 4096);
    let a = s.local_addr();
    // A token mode server accepts any Host (a remote name), so use one.
    let host = "gpu-box.example:8737";
    let upper = TOKEN.to_uppercase();
    let lower = TOKEN.to_lowercase();
    let prefix = &TOKEN[..TOKEN.len() - 1];
    let longer = format!("{TOKEN}x");
    let before = format!("x{TOKEN}");
    let encoded = format!("%54{}", &TOKEN[1..]); // 'T' percent-encoded
    let wrong: Vec<String> = vec![
        String::new(),
        "?".into(),
        "?token=".into(),
        format!("?token={upper}"),
        format!("?token={lower}"),
        format!("?token={prefix}"),
        format!("?token={longer}"),
        format!("?token={before}"),
        format!("?token={encoded}"),
        format!("?Token={TOKEN}"),
        format!("?xtoken={TOKEN}"),
        format!("?token%3D{TOKEN}"),
        format!("?token=+{TOKEN}"),
        format!("?token={TOKEN}&token=nope"),
        format!("?token=nope&token={TOKEN}"),
        format!("?token={TOKEN}&token={TOKEN}"),
    ];
    let paths = ["/", "/index.html", "/app.js", "/worklet.js", "/ws", "/nope"];
    for path in paths {
        for q in &wrong {
            let extra = if path == "/ws" { WS } else { "" };
            let req = format!("GET {path}{q} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
            let (code, body) = raw(a, &req);
            assert_eq!(code, 403, "{path}{q}: {body}");
            assert!(!body.contains(TOKEN), "a refusal never echoes the token");
        }
    }
    // Without the token, whatever else a request breaks it is the same 403.
    for bad in [
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi".to_string(),
        "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n".into(),
        format!("PUT /?token={prefix} HTTP/1.1\r\nHost: h\r\n\r\n"),
        "GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n".into(),
        "GET http://evil.example/ HTTP/1.1\r\nHost: h\r\n\r\n".into(),
        "GET / HTTP/1.0\r\n\r\n".into(),
    ] {
        let (code, body) = raw(a, &bad);
        assert_eq!(code, 403, "{bad:?}: {body}");
        assert!(!body.contains(TOKEN), "a refusal never echoes the token");
    }
    // The right one opens every path, the WebSocket included; the page's script carries it.
    let good = format!("?token={TOKEN}&autoplay=1");
    for path in ["/", "/index.html", "/app.js", "/worklet.js"] {
        let (code, body) = raw(
            a,
            &format!("GET {path}{good} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        );
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(header(&body, "referrer-policy"), Some("no-referrer"));
    }
    let (_, page) = raw(a, &format!("GET /{good} HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    assert!(
        page.contains(&format!("src=\"app.js?token={TOKEN}\"")),
        "{page}"
    );
    let ws = format!("GET /ws{good} HTTP/1.1\r\nHost: {host}\r\n{WS}\r\n");
    assert_eq!(raw(a, &ws).0, 101);
    // The token does not open another site's WebSocket to us.
    let cross = format!(
        "GET /ws{good} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://evil.example\r\n{WS}\r\n"
    );
    assert_eq!(raw(a, &cross).0, 403);
    assert!(s.stats().refused >= (paths.len() * wrong.len()) as u64);
    s.close();
}

/// Pushes 50 ms of audio every 50 ms until stopped, like a run.
fn pusher(s: Arc<Server>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut step = 0;
        while !stop.load(Ordering::SeqCst) {
            s.push_point(step, Some(("loss", 1.0)), &["a"], &[0.5]);
            s.push_audio(step, &[0.1; 2205]);
            step += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// A page's WebSocket, reading on its own thread: the longest gap between audio messages.
fn viewer(addr: SocketAddr, token: Option<&str>, stop: Arc<AtomicBool>) -> JoinHandle<(f64, u64)> {
    let q = token.map_or(String::new(), |t| format!("?token={t}"));
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/ws{q}")).expect("viewer joins");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    std::thread::spawn(move || {
        let (mut last, mut worst, mut n) = (None::<Instant>, 0.0f64, 0u64);
        while !stop.load(Ordering::SeqCst) {
            match ws.read() {
                Ok(Message::Binary(_)) => {
                    let now = Instant::now();
                    if let Some(l) = last {
                        worst = worst.max(now.duration_since(l).as_secs_f64());
                    }
                    last = Some(now);
                    n += 1;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("the viewer was cut off: {e}"),
            }
        }
        (worst, n)
    })
}

/// Seconds a viewer's `GET /` takes, from connect to the whole page.
fn page_load(addr: SocketAddr, token: Option<&str>) -> f64 {
    let t0 = Instant::now();
    let q = token.map_or(String::new(), |t| format!("?token={t}"));
    let (code, body) = raw(
        addr,
        &format!(
            "GET /{q} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            addr.port()
        ),
    );
    let dt = t0.elapsed().as_secs_f64();
    assert_eq!(
        code, 200,
        "a viewer's GET / under load, after {dt:.3} s: {body:?}"
    );
    assert!(body.contains("<canvas id=\"chart\""));
    dt
}

/// Idle, slow (a header byte a second) and unauthenticated connections, then a connect/close
/// churn: a viewer's page loads in ≤ 1 s throughout and its stream never pauses over 1 s.
fn no_lockout(token: Option<&str>) {
    const IDLE: usize = 700;
    const SLOW: usize = 300;
    const CHURN: usize = 5000;
    let s = Arc::new(server(
        token.map_or(Token::Auto, |t| Token::Given(t.into())),
        // Fewer than the flood: the oldest connections that sent nothing make room.
        512,
    ));
    let a = s.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let push = pusher(s.clone(), stop.clone());
    let view = viewer(a, token, stop.clone());
    let mut loads = vec![page_load(a, token)];

    // 1,000 connections that never send a valid request: idle ones, and slow ones.
    let mut idle: Vec<TcpStream> = (0..IDLE)
        .filter_map(|_| TcpStream::connect(a).ok())
        .collect();
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .filter_map(|_| TcpStream::connect(a).ok())
        .collect();
    assert!(idle.len() + slow.len() >= 900, "the flood connected");
    let slow_stop = Arc::new(AtomicBool::new(false));
    let slow_thread = {
        let stop = slow_stop.clone();
        std::thread::spawn(move || {
            let head =
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let mut k = 0;
            while !stop.load(Ordering::SeqCst) && k < head.len() {
                for c in &mut slow {
                    let _ = c.write_all(&head[k..k + 1]);
                }
                k += 1;
                std::thread::sleep(Duration::from_millis(1000));
            }
            slow
        })
    };
    // Unauthenticated requests, back to back (a wrong token, or a foreign Host).
    let unauth_stop = Arc::new(AtomicBool::new(false));
    let unauth = {
        let stop = unauth_stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 2000 {
                let code = raw(
                    a,
                    "GET /?token=wrong-wrong-wrong HTTP/1.1\r\nHost: evil.example\r\n\r\n",
                )
                .0;
                assert!(code == 403 || code == 0, "{code}");
                n += 1;
            }
            n
        })
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(7) {
        loads.push(page_load(a, token));
        std::thread::sleep(Duration::from_millis(250));
    }
    unauth_stop.store(true, Ordering::SeqCst);
    slow_stop.store(true, Ordering::SeqCst);
    let unauth_n = unauth.join().expect("unauthenticated client");
    let mut slow = slow_thread.join().expect("slow client");
    let flood_worst = loads.iter().cloned().fold(0.0, f64::max);
    let evicted = s.stats().evicted;
    // The idle ones were closed by the server (head timeout or room for newer ones).
    let mut closed = 0;
    for c in idle.iter_mut().chain(slow.iter_mut()) {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 256];
        if c.read(&mut b).is_ok() {
            closed += 1;
        }
    }
    drop((idle, slow));

    // A churn: connect and close, 4 threads at once, some with half a request.
    let churn: Vec<JoinHandle<usize>> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut ok = 0;
                for i in 0..CHURN / 4 {
                    if let Ok(mut c) = TcpStream::connect(a) {
                        if (i + t) % 3 == 0 {
                            let _ = c.write_all(b"GET / HTT");
                        }
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let t1 = Instant::now();
    while !churn.iter().all(JoinHandle::is_finished) {
        loads.push(page_load(a, token));
        assert!(t1.elapsed() < Duration::from_secs(60), "churn too slow");
        std::thread::sleep(Duration::from_millis(100));
    }
    let churned: usize = churn.into_iter().map(|h| h.join().expect("churn")).sum();
    loads.push(page_load(a, token));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.stats().clients, 1, "the viewer is still there");
    stop.store(true, Ordering::SeqCst);
    let (gap, audio) = view.join().expect("viewer");
    push.join().expect("pusher");
    let worst = loads.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "token {}: {} page loads, worst {:.0} ms (under the 1,000: {:.0} ms); viewer: {audio} audio messages, longest gap {:.0} ms; \
         {unauth_n} unauthenticated requests, {closed} of the flood closed by the server, {evicted} evicted, {churned} churned",
        token.is_some(),
        loads.len(),
        worst * 1e3,
        flood_worst * 1e3,
        gap * 1e3
    );
    assert!(
        worst <= 1.0,
        "a page load took {worst:.2} s under the flood"
    );
    assert!(gap <= 1.0, "the viewer's audio paused {gap:.2} s");
    assert!(audio > 100, "the viewer kept receiving: {audio}");
    assert!(churned >= CHURN * 9 / 10, "{churned}");
    assert!(
        evicted > 0,
        "1,000 unserved connections over a cap of 512 evict some"
    );
    assert!(
        closed >= 900,
        "the server closed the flood's connections: {closed}"
    );
}

#[test]
fn no_lockout_on_loopback() {
    no_lockout(None);
}

#[test]
fn no_lockout_with_a_token() {
    no_lockout(Some(TOKEN));
}

#[test]
fn a_page_that_stops_reading_is_skipped_not_buffered() {
    let s = Arc::new(server(Token::Auto, 4096));
    let a = s.local_addr();
    // Connects, upgrades, then never reads.
    let mut stuck = TcpStream::connect(a).unwrap();
    stuck
        .write_all(format!("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n{WS}\r\n").as_bytes())
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let view = viewer(a, None, stop.clone());
    // 200 s of audio at 100× real time: 35 MB, far more than the kernel buffers hold.
    let t0 = Instant::now();
    for step in 0..400 {
        s.push_audio(step, &[0.25; 22_050]);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.stats().clients, 2, "both pages are still connected");
    stop.store(true, Ordering::SeqCst);
    let (gap, n) = view.join().expect("viewer");
    eprintln!(
        "reading viewer: {n} messages in {:.1} s, longest gap {:.0} ms",
        t0.elapsed().as_secs_f64(),
        gap * 1e3
    );
    assert!(n >= 390, "the reading page got (nearly) everything: {n}");
    assert!(gap < 1.0, "a stuck page does not hold the others up: {gap}");
    drop(stuck);
}

#[test]
fn what_a_page_sends_is_capped_and_ignored() {
    let s = Arc::new(server(Token::Auto, 4096));
    let a = s.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let push = pusher(s.clone(), stop.clone());
    let view = viewer(a, None, stop.clone());
    let open = |timeout_ms| {
        let (mut ws, _) = tungstenite::connect(format!("ws://{a}/ws")).expect("joins");
        if let tungstenite::stream::MaybeTlsStream::Plain(t) = ws.get_mut() {
            t.set_read_timeout(Some(Duration::from_millis(timeout_ms)))
                .unwrap();
        }
        ws
    };
    // Many small frames, pings among them: read and dropped, the page still gets its audio.
    let mut chatty = open(100);
    for i in 0..2000 {
        let m = if i % 10 == 0 {
            Message::Ping(vec![1; 8].into())
        } else {
            Message::Text(format!("{{\"t\":\"hello\",\"n\":{i}}}").into())
        };
        chatty.send(m).expect("a small frame is taken");
    }
    let t = Instant::now();
    let mut audio = 0;
    while audio < 5 && t.elapsed() < Duration::from_secs(5) {
        match chatty.read() {
            Ok(Message::Binary(_)) => audio += 1,
            Ok(_) | Err(tungstenite::Error::Io(_)) => {}
            Err(e) => panic!("the chatty page was cut off: {e}"),
        }
    }
    assert_eq!(audio, 5, "the chatty page is still served");
    // One message over the cap (64 KiB): the connection is closed, not the message buffered.
    let mut big = open(5000);
    let _ = big.send(Message::Binary(vec![7u8; 1 << 20].into()));
    let t = Instant::now();
    let closed = loop {
        match big.read() {
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => break true,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            Err(_) => break true,
            Ok(_) if t.elapsed() > Duration::from_secs(5) => break false,
            Ok(_) => {}
        }
    };
    assert!(closed, "a 1 MiB message from a page closes its connection");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        s.stats().clients,
        2,
        "the viewer and the chatty page remain"
    );
    stop.store(true, Ordering::SeqCst);
    let (gap, n) = view.join().expect("viewer");
    push.join().expect("pusher");
    assert!(
        n >= 5 && gap < 1.0,
        "the viewer was not held up: {n}, {gap}"
    );
    drop(chatty);
}
