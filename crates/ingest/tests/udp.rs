//! `UdpSource`: JSONL lines in datagrams sent from a socket of the test itself, on 127.0.0.1.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gradtone_ingest::{FrameSource, IngestError, UdpOptions, UdpSource};

fn sender() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind sender: {e}"))
}

#[test]
fn datagrams_with_one_or_more_lines_and_a_malformed_one() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut src = match UdpSource::loopback(
        0,
        UdpOptions {
            stop: Some(Arc::clone(&stop)),
            // Bounds the test even if a datagram were lost.
            idle_timeout: Some(Duration::from_secs(5)),
            ..UdpOptions::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let to = src.local_addr();
    assert!(to.ip().is_loopback(), "binds loopback by default: {to}");
    let tx = sender();
    let send = |d: &[u8]| {
        tx.send_to(d, to)
            .unwrap_or_else(|e| panic!("send to {to}: {e}"));
    };
    send(b"{\"step\":0,\"values\":{\"b\":1,\"a\":\"nan\"},\"rank\":1}\n");
    // Three lines in one datagram, the middle one malformed, no final newline.
    send(b"{\"step\":1,\"values\":{}}\r\n{\"step\":oops}\n{\"step\":2,\"values\":{\"x\":3}}");
    send(b"\xff\xfe garbage \x00");
    send(b"\n\n"); // blank: nothing
    send(b"{\"step\":3,\"values\":{},\"v\":2}\n");

    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < 4 {
        match src.next() {
            Some(f) => got.push(f),
            None => break,
        }
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    let steps: Vec<u64> = got.iter().map(|f| f.step).collect();
    assert_eq!(steps, [0, 1, 2, 3]);
    let names: Vec<&str> = got[0].values.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    assert!(got[0].value("a").is_some_and(f64::is_nan));
    assert_eq!(got[0].rank, Some(1));
    assert_eq!(got[2].value("x"), Some(3.0));

    // The stop flag ends the stream within about one poll interval.
    stop.store(true, Ordering::Relaxed);
    let t = Instant::now();
    assert_eq!(src.next(), None);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(src.take_error().is_none());

    let d = src.diagnostics();
    assert_eq!(d.datagrams, 5);
    assert_eq!(d.frames, 4);
    assert_eq!(d.malformed, 2);
    let src_name = format!("udp {to}");
    assert!(
        d.first_errors[0].starts_with(&format!("{src_name} datagram 2 line 2: ")),
        "{:?}",
        d.first_errors
    );
    assert!(
        d.first_errors[1].starts_with(&format!("{src_name} datagram 3 line 1: not valid UTF-8")),
        "{:?}",
        d.first_errors
    );
    assert!(d.newer_version_seen);
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = sender();
    let port = taken.local_addr().map(|a| a.port()).unwrap_or(0);
    match UdpSource::loopback(port, UdpOptions::default()) {
        Err(e @ IngestError::Bind { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("choose another port"),
                "{msg}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("bound a port that is in use"),
    }
}

#[test]
fn nothing_sent_ends_at_the_idle_timeout_with_no_frames() {
    let mut src = match UdpSource::loopback(
        0,
        UdpOptions {
            idle_timeout: Some(Duration::from_millis(200)),
            ..UdpOptions::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let t = Instant::now();
    assert_eq!(src.by_ref().count(), 0);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(src.diagnostics().datagrams, 0);
    assert!(src.take_error().is_none());
    let w = src.diagnostics().warnings.join("\n");
    assert!(
        w.contains("no frame arrived") && w.contains("sender"),
        "a hint for the user: {w}"
    );
}
