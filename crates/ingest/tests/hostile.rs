//! Hostile input: what a peer or a file claims never costs more than what was received.
//! Each test reproduces one class of the hostile-input report (deep OSC nesting, huge ranks,
//! never-repeating names, unbounded messages, garbage holding a listener open).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gradtone_ingest::{
    Frame, FrameSource, JsonlReader, MAX_MESSAGE_CHARS, MAX_WORLD, MergeMode, MergeOptions,
    OscDecoder, RankMerger, UdpOptions, UdpSource, parse_record,
};
use rosc::{OscMessage, OscPacket, OscType};

/// Runs `f` on a thread with a small stack: anything recursing per level of a hostile nesting
/// overflows it (and aborts the test binary), so passing shows the work is iterative.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap_or_else(|e| panic!("spawn: {e}"))
        .join()
        .unwrap_or_else(|_| panic!("panicked"))
}

/// An OSC string: the bytes, a NUL, padded to 4 bytes.
fn osc_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[test]
fn deeply_nested_osc_arrays_are_skipped_not_a_stack_overflow() {
    // 30,000 levels of `[`, then as many `]`: fits one datagram.
    let mut p = Vec::new();
    osc_str(&mut p, b"/gradtone/frame");
    let tags: Vec<u8> = std::iter::once(b',')
        .chain(std::iter::repeat_n(b'[', 30_000))
        .chain(std::iter::repeat_n(b']', 30_000))
        .collect();
    osc_str(&mut p, &tags);
    // Unclosed arrays too.
    let mut q = Vec::new();
    osc_str(&mut q, b"/gradtone/frame");
    let open: Vec<u8> = std::iter::once(b',')
        .chain(std::iter::repeat_n(b'[', 60_000))
        .collect();
    osc_str(&mut q, &open);
    let d = on_small_stack(move || {
        let mut dec = OscDecoder::new("t");
        assert!(!dec.push(&p));
        assert!(!dec.push(&q));
        dec.diagnostics().clone()
    });
    assert_eq!(d.malformed, 2, "{:?}", d.first_errors);
    assert!(
        d.first_errors[0].contains("arrays nested deeper"),
        "{:?}",
        d
    );
}

#[test]
fn deeply_nested_osc_bundles_are_skipped() {
    // 3,000 bundles, each the only element of the one around it.
    let mut inner = Vec::new();
    osc_str(&mut inner, b"/gradtone/frame");
    osc_str(&mut inner, b",i");
    inner.extend_from_slice(&7i32.to_be_bytes());
    for _ in 0..3000 {
        let mut b = Vec::new();
        osc_str(&mut b, b"#bundle");
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        b.extend_from_slice(&inner);
        inner = b;
    }
    let d = on_small_stack(move || {
        let mut dec = OscDecoder::new("t");
        dec.push(&inner);
        dec.diagnostics().clone()
    });
    assert_eq!(d.malformed, 1);
    assert!(d.first_errors[0].contains("bundles nested deeper"), "{d:?}");
}

#[test]
fn a_bundle_element_claiming_more_than_was_received_is_skipped() {
    let mut b = Vec::new();
    osc_str(&mut b, b"#bundle");
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    b.extend_from_slice(b"/gra");
    let mut dec = OscDecoder::new("t");
    assert!(!dec.push(&b));
    let d = dec.diagnostics();
    assert_eq!(d.malformed, 1);
    assert!(
        d.first_errors[0].contains("claims 4294967295 bytes"),
        "{d:?}"
    );
}

#[test]
fn osc_messages_quoting_huge_input_stay_short() {
    let encode = |m: OscMessage| {
        rosc::encoder::encode(&OscPacket::Message(m)).unwrap_or_else(|e| panic!("{e}"))
    };
    let long = "n".repeat(60_000);
    let mut dec = OscDecoder::new("t");
    // An unknown 60 KB address; a 60 KB name with a bad value; an array where a name goes.
    dec.push(&encode(OscMessage {
        addr: format!("/{long}"),
        args: vec![],
    }));
    dec.push(&encode(OscMessage {
        addr: "/gradtone/frame".into(),
        args: vec![
            OscType::Int(0),
            OscType::String(long.clone()),
            OscType::Blob(vec![0; 30_000]),
        ],
    }));
    dec.push(&encode(OscMessage {
        addr: "/gradtone/frame".into(),
        args: vec![
            OscType::Int(0),
            OscType::Array(rosc::OscArray {
                content: vec![OscType::String(long.clone()); 2],
            }),
            OscType::Float(1.0),
        ],
    }));
    let d = dec.diagnostics();
    assert_eq!((d.ignored, d.malformed), (1, 2), "{:?}", d.first_errors);
    for m in &d.first_errors {
        assert!(m.len() < 2 * MAX_MESSAGE_CHARS + 100, "{} bytes", m.len());
    }
    assert!(d.first_errors[2].contains("an array of 2 items"), "{d:?}");
}

#[test]
fn huge_ranks_and_worlds_are_rejected_by_the_parsers() {
    for (line, why) in [
        (
            r#"{"step":0,"values":{"a":1},"rank":4000000000}"#,
            "`rank` must be an integer from 0 to 1023",
        ),
        (
            r#"{"step":0,"values":{"a":1},"world":100000}"#,
            "`world` must be an integer from 1 to 1024",
        ),
        (
            r#"{"step":0,"values":{"a":1},"rank":5,"world":4}"#,
            "`rank` 5 must be below `world` 4",
        ),
    ] {
        match parse_record(line) {
            Err(e) => assert!(e.to_string().contains(why), "{line}: {e}"),
            Ok(r) => panic!("{line} accepted: {r:?}"),
        }
    }
    let r = parse_record(r#"{"step":0,"values":{},"rank":1023,"world":1024}"#)
        .unwrap_or_else(|e| panic!("the limit itself is allowed: {e}"));
    assert_eq!((r.frame.rank, r.world), (Some(1023), Some(1024)));

    let rank = |args: Vec<OscType>| {
        rosc::encoder::encode(&OscPacket::Message(OscMessage {
            addr: "/gradtone/rank".into(),
            args,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut dec = OscDecoder::new("t");
    dec.push(&rank(vec![
        OscType::Int(i32::MAX),
        OscType::Int(i32::MAX),
        OscType::Int(0),
    ]));
    dec.push(&rank(vec![
        OscType::Int(7),
        OscType::Int(4),
        OscType::Int(0),
    ]));
    dec.push(&rank(vec![
        OscType::Int(1),
        OscType::Int(4),
        OscType::Int(0),
    ]));
    dec.finish();
    let d = dec.diagnostics().clone();
    assert_eq!(d.malformed, 2, "{:?}", d.first_errors);
    assert!(
        d.first_errors[0].contains("above the limit of 1024"),
        "{d:?}"
    );
    assert!(
        d.first_errors[1].contains("rank 7 must be below world 4"),
        "{d:?}"
    );
    let r = dec.pop().unwrap_or_else(|| panic!("the valid message"));
    assert_eq!((r.frame.rank, r.world), (Some(1), Some(4)));
}

#[test]
fn the_merger_drops_ranks_beyond_the_limit_without_allocating_for_them() {
    let m = RankMerger::new(MergeOptions::new(u32::MAX));
    assert_eq!(m.world(), MAX_WORLD, "a claimed world is capped");
    let mut m2 = RankMerger::new(MergeOptions::new(2));
    for rank in [0, u32::MAX, 1 << 30, MAX_WORLD] {
        let mut f = Frame::new(0).with_value("a", 1.0);
        f.rank = Some(rank);
        m2.push(f);
    }
    assert_eq!(m2.rejected_frames(), 3);
    assert_eq!(m2.world(), 2);
    m2.finish();
    let out = m2.pop().unwrap_or_else(|| panic!("step 0"));
    assert_eq!(out.lagging, [1]);
}

#[test]
fn never_repeating_names_through_the_merger_keep_memory_bounded() {
    let lag = 4;
    let mut m = RankMerger::new(MergeOptions {
        world: 4,
        lag,
        mode: MergeMode::Mean,
        disagreement_factor: 10.0,
    });
    let mut emitted = 0u64;
    let mut peak = 0;
    for step in 0..20_000u64 {
        for rank in 0..4u32 {
            // Rank 3 sends only every other step: steps wait for it up to the lag.
            if rank == 3 && step % 2 == 1 {
                continue;
            }
            let mut f = Frame::new(step);
            f.rank = Some(rank);
            for k in 0..8 {
                f = f.with_value(format!("s{step}r{rank}v{k}"), 1.0);
            }
            m.push(f);
            peak = peak.max(m.pending_frames());
            while let Some(out) = m.pop() {
                assert!(out.frame.values.len() <= 8 * 4, "one step's values only");
                emitted += 1;
            }
        }
    }
    m.finish();
    while m.pop().is_some() {
        emitted += 1;
    }
    assert_eq!(emitted, 20_000, "every step emitted once");
    assert!(
        peak <= (lag as usize + 1) * 4,
        "pending frames peaked at {peak}"
    );
    assert_eq!(m.pending_frames(), 0);
}

#[test]
fn a_wide_step_merges_in_linear_work() {
    // 512 ranks × 200 names: the old quadratic-in-both disagreement search did ~10^10 name
    // comparisons here (minutes); now it is one pass plus a sort per name.
    let world = 512u32;
    let mut m = RankMerger::new(MergeOptions::new(world));
    for rank in 0..world {
        let mut f = Frame::new(0);
        f.rank = Some(rank);
        for k in 0..200 {
            // Rank 7 is 1000× off on every value.
            let v = if rank == 7 {
                1000.0
            } else {
                1.0 + f64::from(k)
            };
            f = f.with_value(format!("layer{k}"), v);
        }
        m.push(f);
    }
    let out = m.pop().unwrap_or_else(|| panic!("complete step"));
    assert_eq!(out.frame.values.len(), 200);
    let flagged: Vec<u32> = out.disagreeing.iter().map(|(r, _)| *r).collect();
    assert!(flagged.iter().all(|&r| r == 7), "{flagged:?}");
    // Only names whose typical value is more than 10× below 1000 are flagged: k + 1 < 100.
    assert_eq!(flagged.len(), 99, "{:?}", out.disagreeing.first());
}

#[test]
fn parse_errors_quoting_a_huge_value_are_reported_short() {
    let huge = "x".repeat(500_000);
    let text =
        format!("{{\"step\":0,\"values\":{{\"a\":\"{huge}\"}}}}\n{{\"step\":1,\"values\":{{}}}}\n");
    let mut r = JsonlReader::new(text.as_bytes(), "big.jsonl");
    assert_eq!(r.by_ref().count(), 1, "the good line is kept");
    let d = r.diagnostics();
    assert_eq!(d.malformed, 1);
    assert!(d.first_errors[0].starts_with("big.jsonl line 1:"), "{d:?}");
    assert!(
        d.first_errors[0].len() < MAX_MESSAGE_CHARS + 100,
        "{} bytes",
        d.first_errors[0].len()
    );
}

/// The idle timeout counts from the last frame: a stream of garbage does not hold the
/// listener open.
#[test]
fn garbage_does_not_hold_a_udp_listener_open() {
    let stop_sending = Arc::new(AtomicBool::new(false));
    let mut src = UdpSource::loopback(
        0,
        UdpOptions {
            idle_timeout: Some(Duration::from_millis(300)),
            ..UdpOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let to = src.local_addr();
    let flag = Arc::clone(&stop_sending);
    // Garbage every 10 ms for up to 60 s, or until the listener ended.
    let sender = std::thread::spawn(move || {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let mut sent = 0u32;
        while !flag.load(Ordering::SeqCst) && sent < 6000 {
            let _ = tx.send_to(b"garbage\n", to);
            sent += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        sent
    });
    assert_eq!(src.by_ref().count(), 0);
    let ended_while_sending = !sender.is_finished();
    stop_sending.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap_or_else(|_| panic!("sender"));
    assert!(
        ended_while_sending,
        "the listener outlived {sent} garbage datagrams"
    );
    let d = src.diagnostics();
    assert!(d.malformed > 0 && d.frames == 0, "{d:?}");
    let w = d.warnings.join("\n");
    assert!(w.contains("no frame arrived"), "{w}");
}

/// The decoder pads strings counting from the datagram's start: a deep array behind a bundle
/// element of odd size must be found all the same.
#[test]
fn deep_arrays_behind_a_misaligned_bundle_element_are_found() {
    let mut b = Vec::new();
    osc_str(&mut b, b"#bundle");
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    // Element 1: a valid empty message plus one stray byte (9 bytes).
    let mut e1 = Vec::new();
    osc_str(&mut e1, b"/x");
    osc_str(&mut e1, b",");
    e1.push(0);
    b.extend_from_slice(&(e1.len() as u32).to_be_bytes());
    b.extend_from_slice(&e1);
    // Element 2 starts at an odd offset; its type tags start at the next multiple of 4 of the
    // datagram, as the decoder reads them.
    let start = b.len() + 4;
    let mut e2 = b"/gradtone/frame\0".to_vec();
    while !(start + e2.len()).is_multiple_of(4) {
        e2.push(0);
    }
    let tags: Vec<u8> = std::iter::once(b',')
        .chain(std::iter::repeat_n(b'[', 20_000))
        .chain(std::iter::repeat_n(b']', 20_000))
        .collect();
    e2.extend_from_slice(&tags);
    e2.push(0);
    b.extend_from_slice(&(e2.len() as u32).to_be_bytes());
    b.extend_from_slice(&e2);
    let d = on_small_stack(move || {
        let mut dec = OscDecoder::new("t");
        dec.push(&b);
        dec.diagnostics().clone()
    });
    assert_eq!(d.malformed, 1, "{d:?}");
    assert!(d.first_errors[0].contains("arrays nested deeper"), "{d:?}");
}
