//! The server against clients this test starts on 127.0.0.1: every refusal, the history a late
//! joiner gets, the live stream, bounded memory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use gradtone_serve::{AUDIO_HEADER, ServeError, ServeOptions, Server, Token};
use tungstenite::Message;

fn server(token: Token) -> Server {
    let mut o = ServeOptions::new("127.0.0.1:0".parse().unwrap(), 44_100, 1);
    o.token = token;
    o.chart_points = 64;
    o.audio_history = 10_000;
    Server::start(o).expect("serves on loopback")
}

/// Sends a raw request, returns the status line and the whole response.
fn request(s: &Server, head: &str) -> (u16, String) {
    let mut c = TcpStream::connect(s.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    // A WebSocket stays open: read what arrives for a moment.
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.starts_with(b"HTTP/1.1 101") {
                    break;
                }
            }
            Err(_) => break,
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

fn get(s: &Server, path: &str, host: &str, extra: &str) -> (u16, String) {
    request(
        s,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n"),
    )
}

const WS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[test]
fn token_is_required_on_page_and_websocket() {
    let s = server(Token::Given("s3cret-token".into()));
    let host = format!("127.0.0.1:{}", s.local_addr().port());
    assert!(s.url().ends_with("/?token=s3cret-token"), "{}", s.url());
    assert_eq!(get(&s, "/", &host, "").0, 403, "no token");
    assert_eq!(
        get(&s, "/?token=wrong-token!", &host, "").0,
        403,
        "wrong token"
    );
    assert_eq!(get(&s, "/?token=s3cret-toke", &host, "").0, 403, "a prefix");
    assert_eq!(get(&s, "/app.js", &host, "").0, 403, "assets too");
    assert_eq!(get(&s, "/ws", &host, WS).0, 403, "websocket without token");
    assert_eq!(get(&s, "/ws?token=nope-nope", &host, WS).0, 403);
    let (code, body) = get(&s, "/?token=s3cret-token", &host, "");
    assert_eq!(code, 200);
    assert!(body.contains("<canvas id=\"chart\""));
    assert!(
        !body.contains("http://") && !body.contains("https://"),
        "no CDN: the page is self-contained"
    );
    assert_eq!(get(&s, "/ws?token=s3cret-token", &host, WS).0, 101);
    assert!(s.stats().refused >= 6);
}

#[test]
fn foreign_origin_and_rebinding_are_refused() {
    let s = server(Token::Auto);
    assert!(s.token().is_none(), "loopback needs no token by default");
    let port = s.local_addr().port();
    let host = format!("127.0.0.1:{port}");
    // A page on another site opening a WebSocket to us.
    let (code, body) = get(
        &s,
        "/ws",
        &host,
        &format!("Origin: http://evil.example\r\n{WS}"),
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cross-origin"));
    let (code, _) = get(
        &s,
        "/ws",
        &host,
        &format!("Origin: http://localhost:{port}\r\n{WS}"),
    );
    assert_eq!(
        code, 403,
        "origin must be the page's own host, not just any loopback"
    );
    assert_eq!(
        get(&s, "/ws", &host, &format!("Origin: http://{host}\r\n{WS}")).0,
        101
    );
    // DNS rebinding: evil.example resolved to 127.0.0.1, the browser sends its name.
    let (code, body) = get(&s, "/", &format!("evil.example:{port}"), "");
    assert_eq!(code, 403);
    assert!(body.contains("not a loopback name"));
    assert_eq!(
        get(&s, "/", &format!("localhost:{port}"), "").0,
        200,
        "ssh -L tunnels send localhost"
    );
    assert_eq!(get(&s, "/", &host, "").0, 200);
    // Read-only, four paths.
    assert_eq!(
        request(
            &s,
            &format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n")
        )
        .0,
        405
    );
    assert_eq!(get(&s, "/../../etc/passwd", &host, "").0, 404);
    assert_eq!(request(&s, "GET / HTTP/1.1\r\n\r\n").0, 400, "no Host");
    assert_eq!(request(&s, "garbage\r\n\r\n").0, 400);
}

#[test]
fn non_loopback_without_token_is_a_clear_error() {
    // Checked before binding: nothing listens on another address, ever, in a test.
    let mut o = ServeOptions::new("0.0.0.0:0".parse().unwrap(), 44_100, 1);
    o.token = Token::Off;
    let e = Server::start(o).err().expect("refused");
    assert!(matches!(e, ServeError::NeedToken(_)));
    let msg = e.to_string();
    assert!(
        msg.contains("without a token") && msg.contains("0.0.0.0"),
        "{msg}"
    );
    let mut o = ServeOptions::new("127.0.0.1:0".parse().unwrap(), 44_100, 1);
    o.token = Token::Given("short".into());
    assert!(matches!(Server::start(o).err(), Some(ServeError::BadToken)));
    assert!(gradtone_serve::parse_addr("nonsense:addr").is_err());
    assert_eq!(
        gradtone_serve::parse_addr("").unwrap(),
        format!("127.0.0.1:{}", gradtone_serve::DEFAULT_PORT)
            .parse()
            .unwrap()
    );
    assert_eq!(
        gradtone_serve::parse_addr("0").unwrap(),
        "127.0.0.1:0".parse().unwrap()
    );
}

fn connect(s: &Server) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>> {
    let url = format!("ws://127.0.0.1:{}/ws", s.local_addr().port());
    let (ws, _) = tungstenite::connect(url).expect("websocket");
    ws
}

fn json(m: Message) -> serde_json::Value {
    match m {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn audio(m: &Message) -> (f64, Vec<f32>) {
    let Message::Binary(b) = m else {
        panic!("expected audio")
    };
    let off = f64::from_le_bytes(b[..8].try_into().unwrap());
    let s = b[AUDIO_HEADER..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (off, s)
}

#[test]
fn late_joiner_gets_history_then_live_and_memory_is_bounded() {
    let s = server(Token::Auto);
    for step in 0..100u64 {
        s.push_point(
            step,
            Some(("loss", 1.0 / (step + 1) as f64)),
            &["a", "b"],
            &[step as f64, f64::NAN],
        );
        s.push_audio(step, &vec![step as f32 / 100.0; 441]);
    }
    s.push_alarm(42, "spike", "ALARM spike: step 42");
    let mut ws = connect(&s);
    let hello = json(ws.read().unwrap());
    assert_eq!(hello["t"], "hello");
    assert_eq!(hello["names"], serde_json::json!(["a", "b"]));
    let points = hello["points"].as_array().unwrap();
    // 64-point cap: halved at 64 (twice by step 96), spikes kept (max of 4 steps per point).
    assert!(points.len() < 64 && points.len() >= 32, "{}", points.len());
    assert_eq!(hello["stride"], 4);
    assert_eq!(points.len(), 36);
    assert_eq!(
        points[0]["v"],
        serde_json::json!([3.0, "nan"]),
        "pairs keep their max, NaN wins"
    );
    assert_eq!(hello["alarms"][0]["message"], "ALARM spike: step 42");
    // Audio history: the most recent ≤ 10 000 samples, whole messages, ending at the last.
    let mut got = 0usize;
    let last_end = loop {
        let m = ws.read().unwrap();
        let (off, smp) = audio(&m);
        got += smp.len();
        if off + smp.len() as f64 >= 44_100.0 {
            break off + smp.len() as f64;
        }
    };
    assert!(got <= 10_000 && got > 10_000 - 441, "{got}");
    assert_eq!(last_end, 44_100.0);
    // Live from here on.
    s.push_point(100, Some(("loss", 0.5)), &["a", "b"], &[1.0, 2.0]);
    s.push_audio(100, &[0.25; 10]);
    s.finish();
    let p = json(ws.read().unwrap());
    assert_eq!(
        (p["t"].as_str(), p["p"]["step"].as_u64()),
        (Some("point"), Some(100))
    );
    let (off, smp) = audio(&ws.read().unwrap());
    assert_eq!((off, smp), (44_100.0, vec![0.25; 10]));
    assert_eq!(json(ws.read().unwrap())["t"], "done");
    assert_eq!(s.stats().clients, 1);
    // Several at once: a second page gets the same history.
    let mut ws2 = connect(&s);
    let hello2 = json(ws2.read().unwrap());
    assert_eq!(hello2["done"], true);
    assert_eq!(hello2["points"].as_array().unwrap().len(), points.len() + 1);
    assert!(s.wait_for_client(&Default::default(), Some(Duration::from_secs(1))));
    assert_eq!(s.stats().clients, 2);
    s.close();
}

#[test]
fn a_long_history_comes_in_small_messages() {
    let mut o = ServeOptions::new("127.0.0.1:0".parse().unwrap(), 44_100, 1);
    o.chart_points = 4096;
    let s = Server::start(o).expect("serves");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for step in 0..3000u64 {
        s.push_point(step, Some(("loss", 1.5)), &names, &[0.123_456_789; 8]);
    }
    let mut ws = connect(&s);
    let hello = json(ws.read().unwrap());
    assert_eq!(hello["t"], "hello");
    let mut steps: Vec<u64> = hello["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_u64().unwrap())
        .collect();
    let mut messages = 1;
    while steps.len() < 3000 {
        let m = ws.read().unwrap();
        let Message::Text(t) = &m else {
            panic!("expected the rest of the history, got {m:?}")
        };
        assert!(t.len() < 48 << 10, "a history message of {} bytes", t.len());
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["t"], "points");
        steps.extend(
            v["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["step"].as_u64().unwrap()),
        );
        messages += 1;
    }
    assert_eq!(
        steps,
        (0..3000).collect::<Vec<_>>(),
        "every point, in order"
    );
    assert!(messages > 10, "{messages} messages");
    s.close();
}

#[test]
fn a_taken_port_fails_at_start() {
    let s = server(Token::Auto);
    let mut o = ServeOptions::new(s.local_addr(), 44_100, 1);
    o.token = Token::Auto;
    match Server::start(o) {
        Err(ServeError::Bind { addr, .. }) => assert_eq!(addr, s.local_addr()),
        other => panic!(
            "expected a bind error, got {:?}",
            other.map(|s| s.url().to_string())
        ),
    }
    s.close();
}
