//! OSC over loopback UDP: the test binds the receiving socket itself and decodes with rosc.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use gradtone_export::osc::{ADDR_ALARM, ADDR_LOSS, ADDR_STEP, ADDR_VALUE};
use gradtone_export::{ExportError, OscSender};
use gradtone_frame::Frame;
use rosc::{OscMessage, OscPacket, OscType};

/// A receiving socket on 127.0.0.1 with a bounded wait, and a sender pointed at it.
fn pair() -> (UdpSocket, OscSender) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tx = OscSender::connect(&rx.local_addr().unwrap().to_string()).unwrap();
    (rx, tx)
}

/// One datagram, decoded: the bundle's messages (or the lone message).
fn recv(rx: &UdpSocket) -> (usize, Vec<OscMessage>) {
    let mut buf = vec![0u8; 70_000];
    let n = rx.recv(&mut buf).expect("datagram within 5 s");
    let (rest, packet) = rosc::decoder::decode_udp(&buf[..n]).unwrap();
    assert!(rest.is_empty());
    let messages = match packet {
        OscPacket::Message(m) => vec![m],
        OscPacket::Bundle(b) => {
            assert_eq!(
                (b.timetag.seconds, b.timetag.fractional),
                (0, 1),
                "immediately"
            );
            b.content
                .into_iter()
                .map(|p| match p {
                    OscPacket::Message(m) => m,
                    OscPacket::Bundle(_) => panic!("nested bundle"),
                })
                .collect()
        }
    };
    (n, messages)
}

fn msg(addr: &str, args: Vec<OscType>) -> OscMessage {
    OscMessage {
        addr: addr.to_owned(),
        args,
    }
}

fn s(x: &str) -> OscType {
    OscType::String(x.to_owned())
}

#[test]
fn a_frame_is_one_bundle_in_scheme_order() {
    let (rx, mut tx) = pair();
    let frame = Frame::new(42)
        .with_value("conv1", 0.25)
        .with_value("fc1", 1e40) // beyond f32: saturates, must not read as infinity
        .with_loss("loss", 2.5)
        .with_loss("aux", f64::NEG_INFINITY);
    assert!(tx.send_frame(&frame));
    let (n, got) = recv(&rx);
    let want = vec![
        msg(ADDR_STEP, vec![OscType::Int(42)]),
        msg(
            ADDR_VALUE,
            vec![s("conv1"), OscType::Float(0.25), OscType::Int(0)],
        ),
        msg(
            ADDR_VALUE,
            vec![s("fc1"), OscType::Float(f32::MAX), OscType::Int(1)],
        ),
        msg(ADDR_LOSS, vec![s("loss"), OscType::Float(2.5)]),
        msg(ADDR_LOSS, vec![s("aux"), OscType::Float(f32::NEG_INFINITY)]),
        msg(ADDR_ALARM, vec![s("-inf"), s("step 42: loss aux = -inf")]),
    ];
    assert_eq!(got, want);
    println!("frame of 2 values + 2 losses + 1 alarm: {n} bytes");
    assert_eq!(tx.stats().datagrams_sent, 1);
    assert_eq!(tx.stats().bytes_sent, n as u64);
    assert_eq!(tx.stats().send_errors, 0);
}

#[test]
fn nan_values_are_sent_and_alarmed() {
    let (rx, mut tx) = pair();
    let frame = Frame::new(3)
        .with_value("a", f64::NAN)
        .with_value("b", f64::INFINITY);
    assert!(tx.send_frame(&frame));
    let (_, got) = recv(&rx);
    assert_eq!(got.len(), 5);
    match &got[1].args[1] {
        OscType::Float(v) => assert!(v.is_nan()),
        other => panic!("expected a NaN float, got {other:?}"),
    }
    assert_eq!(got[2].args[1], OscType::Float(f32::INFINITY));
    assert_eq!(
        got[3],
        msg(ADDR_ALARM, vec![s("nan"), s("step 3: value a = NaN")])
    );
    assert_eq!(
        got[4],
        msg(ADDR_ALARM, vec![s("inf"), s("step 3: value b = inf")])
    );
}

#[test]
fn frames_arrive_in_order_and_alarms_can_be_sent_alone() {
    let (rx, mut tx) = pair();
    for step in 0..50u64 {
        let f = Frame::new(step).with_value("w", step as f64 / 10.0);
        assert!(tx.send_frame(&f));
    }
    for step in 0..50 {
        let (_, got) = recv(&rx);
        assert_eq!(got[0].args, [OscType::Int(step)]);
        assert_eq!(got[1].args[1], OscType::Float(step as f32 / 10.0));
    }
    assert!(tx.send_alarm("spike", "fc1 grew 40x\0 in one step"));
    let (_, got) = recv(&rx);
    assert_eq!(
        got,
        [msg(
            ADDR_ALARM,
            vec![s("spike"), s("fc1 grew 40x? in one step")]
        )],
        "a lone message, NUL replaced so that the OSC string stays intact"
    );
    assert_eq!(tx.stats().frames, 50);
    assert_eq!(tx.stats().datagrams_sent, 51);
}

#[test]
fn large_frames_split_into_bounded_bundles() {
    let (rx, tx) = pair();
    let mut tx = tx.with_max_datagram(1024);
    let frame = (0..300).fold(Frame::new(9).with_loss("loss", 1.0), |f, i| {
        f.with_value(format!("layers.{i}.weight"), f64::from(i))
    });
    assert!(tx.send_frame(&frame));
    let datagrams = tx.stats().datagrams_sent;
    let mut values = Vec::new();
    let mut steps = 0;
    let mut losses = 0;
    let mut largest = 0;
    for k in 0..datagrams {
        let (n, got) = recv(&rx);
        largest = largest.max(n);
        for m in got {
            match m.addr.as_str() {
                ADDR_STEP => {
                    assert_eq!(k, 0, "only the first bundle carries the step");
                    steps += 1;
                }
                ADDR_VALUE => values.push(m.args),
                ADDR_LOSS => losses += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    println!("300 values in {datagrams} datagrams of at most {largest} bytes");
    assert!(datagrams >= 15, "{datagrams} datagrams");
    assert!(largest <= 1024);
    assert_eq!((steps, losses, values.len()), (1, 1, 300));
    for (i, args) in values.iter().enumerate() {
        let want = vec![
            s(&format!("layers.{i}.weight")),
            OscType::Float(i as f32),
            OscType::Int(i as i32),
        ];
        assert_eq!(args, &want);
    }
}

#[test]
fn nothing_listening_counts_errors_and_never_fails() {
    // A port that was just free: bind, note it, close.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut tx = OscSender::connect(&format!("127.0.0.1:{port}")).unwrap();
    let start = Instant::now();
    let mut refused = 0;
    for step in 0..20 {
        if !tx.send_frame(&Frame::new(step).with_value("a", 1.0)) {
            refused += 1;
        }
        // Gives the ICMP "port unreachable" time to come back.
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let st = tx.stats().clone();
    println!("nothing listening: {st:?} in {elapsed:?}");
    assert_eq!(st.frames, 20);
    assert_eq!(st.datagrams_sent + st.send_errors, 20);
    assert_eq!(st.send_errors, refused);
    assert!(elapsed < Duration::from_secs(2));
    if cfg!(target_os = "linux") {
        // Linux reports each ICMP error on the next send: about every other send fails.
        assert!(st.send_errors >= 5, "{st:?}");
        let last = st.last_error.unwrap_or_default();
        assert!(last.contains("refused"), "{last}");
    }
}

#[test]
fn sending_never_blocks_on_a_receiver_that_does_not_read() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut tx = OscSender::connect(&rx.local_addr().unwrap().to_string()).unwrap();
    let frame = (0..20).fold(Frame::new(0), |f, i| f.with_value(format!("l{i}"), 0.5));
    let start = Instant::now();
    for _ in 0..20_000 {
        tx.send_frame(&frame);
    }
    let elapsed = start.elapsed();
    let st = tx.stats();
    println!(
        "20 000 frames to a full receiver: {} sent, {} errors, {elapsed:?} ({:.1} µs/frame)",
        st.datagrams_sent,
        st.send_errors,
        elapsed.as_secs_f64() * 1e6 / 20_000.0
    );
    assert_eq!(st.datagrams_sent + st.send_errors, 20_000);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    drop(rx);
}

#[test]
fn ipv6_loopback_works_where_available() {
    let Ok(rx) = UdpSocket::bind("[::1]:0") else {
        eprintln!("\n*** SKIPPED ipv6_loopback_works_where_available: no IPv6 loopback ***\n");
        return;
    };
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tx = OscSender::connect(&rx.local_addr().unwrap().to_string()).unwrap();
    assert!(tx.peer().is_ipv6());
    assert!(tx.send_frame(&Frame::new(1).with_value("a", 1.0)));
    let (_, got) = recv(&rx);
    assert_eq!(got[0].args, [OscType::Int(1)]);
}

#[test]
fn bad_addresses_are_named() {
    for bad in [
        "not-an-address",
        "127.0.0.1",
        "127.0.0.1:99999",
        "no.such.host.invalid:1",
    ] {
        let e = OscSender::connect(bad).unwrap_err();
        assert!(matches!(e, ExportError::Osc { .. }));
        let m = e.to_string();
        assert!(m.contains(bad) && m.contains("host:port"), "{m}");
    }
}
