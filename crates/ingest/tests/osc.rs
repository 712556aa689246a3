//! `OscSource`: rosc-encoded packets sent from a socket of the test itself, on 127.0.0.1.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gradtone_ingest::{
    ADDR_FRAME, ADDR_LOSS, ADDR_RANK, Frame, FrameSource, IngestError, OscSource, UdpOptions,
};
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};

#[path = "support/frame_packet.rs"]
mod support;
use support::frame_packet;

fn msg(addr: &str, args: Vec<OscType>) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    })
}

fn bundle(content: Vec<OscPacket>) -> OscPacket {
    OscPacket::Bundle(OscBundle {
        timetag: OscTime::from((0, 1)),
        content,
    })
}

fn s(x: &str) -> OscType {
    OscType::String(x.into())
}

struct Harness {
    src: OscSource,
    stop: Arc<AtomicBool>,
    tx: UdpSocket,
    to: SocketAddr,
}

impl Harness {
    fn new() -> Self {
        Self::with_idle(Duration::from_secs(5))
    }

    /// A source that ends after `idle` without datagrams (or when `stop` is set).
    fn with_idle(idle: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let src = OscSource::loopback(
            0,
            UdpOptions {
                stop: Some(Arc::clone(&stop)),
                idle_timeout: Some(idle),
                ..UdpOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let to = src.local_addr();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        Harness { src, stop, tx, to }
    }

    fn send(&self, p: &OscPacket) {
        let bytes = rosc::encoder::encode(p).unwrap_or_else(|e| panic!("encode: {e}"));
        self.send_raw(&bytes);
    }

    fn send_raw(&self, bytes: &[u8]) {
        self.tx
            .send_to(bytes, self.to)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    fn take(&mut self, n: usize) -> Vec<Frame> {
        let t = Instant::now();
        let frames: Vec<Frame> = self.src.by_ref().take(n).collect();
        assert!(t.elapsed() < Duration::from_secs(5), "timed out");
        frames
    }
}

#[test]
fn messages_bundles_losses_ranks_and_wrong_addresses() {
    let mut h = Harness::new();
    // 1. A plain frame message: step, then (name, value) pairs of several number types.
    h.send(&msg(
        ADDR_FRAME,
        vec![
            OscType::Int(3),
            s("fc2"),
            OscType::Float(0.5),
            s("conv1"),
            OscType::Double(1e-300),
            s("fc1"),
            OscType::Float(f32::NAN),
            s("b"),
            OscType::Inf,
            s("c"),
            OscType::Nil,
            s("d"),
            s("-inf"),
        ],
    ));
    // 2. A loss first, then its frame: they arrive as one Frame.
    h.send(&msg(
        ADDR_LOSS,
        vec![OscType::Int(4), s("loss"), OscType::Float(2.5)],
    ));
    // 3. An unknown address: ignored and counted.
    h.send(&msg("/synth/freq", vec![OscType::Float(440.0)]));
    h.send(&msg(
        ADDR_FRAME,
        vec![OscType::Long(4), s("fc1"), OscType::Int(2)],
    ));
    // 4. A bundle with two steps, losses after their frames, and a nested bundle with a
    //    wrong-address message and a malformed one.
    h.send(&bundle(vec![
        msg(
            ADDR_FRAME,
            vec![OscType::Int(5), s("a"), OscType::Float(1.0)],
        ),
        msg(
            ADDR_FRAME,
            vec![OscType::Int(6), s("a"), OscType::Float(2.0)],
        ),
        msg(
            ADDR_LOSS,
            vec![OscType::Int(5), s("loss"), OscType::Float(0.25)],
        ),
        bundle(vec![
            msg("/gradtone/unknown", vec![]),
            msg(ADDR_FRAME, vec![OscType::Int(7), s("a")]),
        ]),
        msg(
            ADDR_LOSS,
            vec![OscType::Int(6), s("d_real"), OscType::Float(0.5)],
        ),
        msg(
            ADDR_LOSS,
            vec![OscType::Int(6), s("g"), OscType::Float(1.5)],
        ),
    ]));
    // 5. Not OSC at all, and a frame with a negative step.
    h.send_raw(b"{\"step\":1}\n");
    h.send(&msg(ADDR_FRAME, vec![OscType::Int(-1)]));
    // 6. A rank frame with its loss (rank given on the loss too), via the encoder helper.
    let mut ranked = Frame::new(8)
        .with_value("fc1", 0.75)
        .with_loss("loss", 1.25);
    ranked.rank = Some(2);
    h.send(&frame_packet(&ranked, Some(4)));

    let got = h.take(5);
    let steps: Vec<u64> = got.iter().map(|f| f.step).collect();
    assert_eq!(steps, [3, 4, 5, 6, 8]);

    let f = &got[0];
    let names: Vec<&str> = f.values.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["fc2", "conv1", "fc1", "b", "c", "d"], "order kept");
    assert_eq!(f.value("fc2"), Some(0.5));
    assert_eq!(
        f.value("conv1"),
        Some(1e-300),
        "doubles keep their precision"
    );
    assert!(f.value("fc1").is_some_and(f64::is_nan));
    assert_eq!(f.value("b"), Some(f64::INFINITY));
    assert!(f.value("c").is_some_and(f64::is_nan));
    assert_eq!(f.value("d"), Some(f64::NEG_INFINITY));
    assert_eq!((f.rank, f.loss()), (None, None));

    assert_eq!(got[1].loss(), Some(2.5));
    assert_eq!(got[1].value("fc1"), Some(2.0));
    assert_eq!((got[2].value("a"), got[2].loss()), (Some(1.0), Some(0.25)));
    let l6: Vec<_> = got[3]
        .losses
        .iter()
        .map(|n| (n.name.as_str(), n.value))
        .collect();
    assert_eq!(l6, [("d_real", 0.5), ("g", 1.5)]);
    assert_eq!(got[4].rank, Some(2));
    assert_eq!(
        (got[4].value("fc1"), got[4].loss()),
        (Some(0.75), Some(1.25))
    );

    h.stop.store(true, Ordering::Relaxed);
    assert_eq!(h.src.next(), None);
    let d = h.src.diagnostics();
    assert_eq!(d.ignored, 2, "{:?}", d.first_errors);
    assert_eq!(d.malformed, 3, "{:?}", d.first_errors);
    assert_eq!(d.datagrams, 8);
    let all = d.first_errors.join("\n");
    for want in [
        "packet 3: unknown address \"/synth/freq\" ignored",
        "packet 5: unknown address \"/gradtone/unknown\"",
        "packet 5: /gradtone/frame: after the first 1 arguments, expected (name, value) pairs",
        "packet 6: not an OSC packet",
        "packet 7: /gradtone/frame: argument 1 (step) must be ≥ 0, found -1",
    ] {
        assert!(all.contains(want), "missing {want:?} in\n{all}");
    }
    assert_eq!(
        d.summary(),
        Some(format!(
            "osc {}: 3 malformed messages skipped, 2 messages with an unknown address ignored",
            h.to
        ))
    );
}

#[test]
fn encoder_round_trip_of_frames_from_four_ranks() {
    let mut h = Harness::with_idle(Duration::from_millis(300));
    let mut sent = Vec::new();
    for step in 0..3u64 {
        for rank in [3u32, 0, 2, 1] {
            let mut f = Frame::new(step)
                .with_value("conv1", 0.125 * f64::from(rank + 1))
                .with_value("fc1", step as f64)
                .with_loss("loss", 2.0 - step as f64 * 0.5);
            f.rank = Some(rank);
            h.send(&frame_packet(&f, Some(4)));
            sent.push(f);
        }
    }
    // A loss for a step whose frame never comes is still delivered when the stream ends (here
    // at the idle timeout: a raised stop flag ends at once, without reading what is queued).
    h.send(&msg(
        ADDR_LOSS,
        vec![
            OscType::Int(9),
            s("loss"),
            OscType::Float(0.5),
            OscType::Int(1),
        ],
    ));
    let mut got = h.take(sent.len());
    assert_eq!(got, sent, "values are exact in f32");
    got = h.src.by_ref().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].step, got[0].rank, got[0].loss()),
        (9, Some(1), Some(0.5))
    );
    assert!(got[0].values.is_empty());
    assert_eq!(h.src.diagnostics().malformed, 0);
}

#[test]
fn rank_message_world_must_be_positive_and_port_in_use_is_clear() {
    let mut h = Harness::new();
    h.send(&msg(
        ADDR_RANK,
        vec![OscType::Int(1), OscType::Int(0), OscType::Int(0)],
    ));
    h.send(&msg(
        ADDR_RANK,
        vec![
            OscType::Int(1),
            OscType::Int(2),
            OscType::Int(5),
            s("a"),
            OscType::Float(1.0),
        ],
    ));
    let rec = h.src.next_record().unwrap_or_else(|| panic!("no record"));
    assert_eq!(
        (rec.frame.step, rec.frame.rank, rec.world),
        (5, Some(1), Some(2))
    );
    let d = h.src.diagnostics();
    assert_eq!(d.malformed, 1);
    assert!(
        d.first_errors[0]
            .ends_with("packet 1: /gradtone/rank: argument 2 (world) must be ≥ 1, found 0"),
        "{:?}",
        d.first_errors
    );

    match OscSource::bind(h.to, UdpOptions::default()) {
        Err(e @ IngestError::Bind { .. }) => {
            assert!(e.to_string().contains(&h.to.to_string()), "{e}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("bound a port in use"),
    }
}
