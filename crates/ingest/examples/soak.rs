//! Soak test of the UDP and OSC listeners: N datagrams on 127.0.0.1 as fast as they go, one in
//! ten garbage, checking that every datagram is accounted for (frames + skipped = received,
//! received + dropped by the kernel = sent) and that resident memory stays flat.
//!
//! `cargo run --release -p gradtone-ingest --example soak [DATAGRAMS] [udp|osc|both] [window]`
//!
//! With `window` (default) the sender keeps at most 64 datagrams ahead of the listener, so
//! the kernel drops none and the counts must match exactly; `full` sends with no flow control
//! and reports the kernel's drops (from /proc/net/snmp, `RcvbufErrors`) instead.
//! `tests/soak.rs` runs a 100,000-datagram version in the normal test suite.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gradtone_ingest::{Frame, FrameSource, OscSource, UdpOptions, UdpSource};

// Test support, not the library's: encodes a frame as a `docs/osc.md` sender would.
#[path = "../tests/support/frame_packet.rs"]
mod support;
use support::frame_packet;

/// Which listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// JSONL lines in datagrams (`listen --udp`).
    Udp,
    /// OSC packets (`listen --osc`).
    Osc,
}

/// What one soak run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Valid frames sent.
    pub sent_valid: u64,
    /// Garbage datagrams sent.
    pub sent_garbage: u64,
    /// Datagrams the listener received.
    pub received: u64,
    /// Frames it delivered.
    pub frames: u64,
    /// Datagrams (or lines, or messages) it skipped as malformed or ignored.
    pub skipped: u64,
    /// Datagrams the kernel dropped for the listener's socket, as the listener reports them.
    pub kernel_drops: u64,
    /// UDP receive-buffer drops counted by the kernel during the run, all sockets.
    pub kernel_drops_all: u64,
    /// Resident memory (KiB) after each tenth of the run.
    pub rss_kib: Vec<u64>,
    /// Peak resident memory of the process (KiB).
    pub hwm_kib: u64,
    /// Seconds the run took.
    pub secs: f64,
    /// Frames whose step or values were not what was sent.
    pub wrong: u64,
}

/// A field of /proc/self/status in KiB (Linux); 0 elsewhere.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer (Linux); 0 elsewhere.
fn rcvbuf_errors() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut udp = s.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(head), Some(vals)) = (udp.next(), udp.next()) else {
        return 0;
    };
    head.split_whitespace()
        .zip(vals.split_whitespace())
        .find(|(h, _)| *h == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// SplitMix64: seeded garbage, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Random bytes that are neither a frame nor blank, on one line.
fn garbage(rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    let len = 1 + (rng.next() % 300) as usize;
    out.extend((0..len).map(|_| match rng.next() as u8 {
        b'\n' => b'?',
        b => b,
    }));
    // Not blank (a blank line is skipped silently, not counted), and not `/` or `#` (which a
    // lucky tail could turn into a valid OSC message).
    out[0] = b'!';
}

fn value(step: u64) -> f64 {
    (step % 1000) as f64 / 100.0
}

/// Runs one soak: `n` datagrams, every tenth garbage; `window`: the most datagrams the sender
/// may be ahead of the listener (`None`: no flow control).
pub fn soak(proto: Proto, n: u64, window: Option<u64>) -> Report {
    let stop = Arc::new(AtomicBool::new(false));
    let opts = UdpOptions {
        idle_timeout: Some(Duration::from_secs(2)),
        stop: Some(Arc::clone(&stop)),
        ..UdpOptions::default()
    };
    let mut src: Box<dyn FrameSource + Send> = match proto {
        Proto::Udp => Box::new(UdpSource::loopback(0, opts).unwrap_or_else(|e| panic!("{e}"))),
        Proto::Osc => Box::new(OscSource::loopback(0, opts).unwrap_or_else(|e| panic!("{e}"))),
    };
    let to = match proto {
        Proto::Udp => src
            .diagnostics()
            .source
            .trim_start_matches("udp ")
            .to_string(),
        Proto::Osc => src
            .diagnostics()
            .source
            .trim_start_matches("osc ")
            .to_string(),
    };
    // What the listener has taken, published for the sender's flow control.
    let progress = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&progress);
    let listener = std::thread::spawn(move || {
        let (mut frames, mut wrong, mut rss) = (0u64, 0u64, Vec::new());
        let tenth = (n / 10).max(1);
        while let Some(r) = src.next_record() {
            frames += 1;
            let f = &r.frame;
            let v = f.value("a").unwrap_or(f64::NAN);
            if (v - value(f.step)).abs() > 1e-3 || f.values.len() != 3 || f.losses.len() != 1 {
                wrong += 1;
            }
            let d = src.diagnostics();
            seen.store(frames + d.malformed + d.ignored, Ordering::Release);
            if frames % (tenth * 9 / 10).max(1) == 0 {
                rss.push(status_kib("VmRSS:"));
            }
        }
        let d = src.diagnostics().clone();
        (frames, wrong, rss, d)
    });
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(12);
    let mut buf = Vec::with_capacity(512);
    let mut report = Report::default();
    let drops_before = rcvbuf_errors();
    let t = Instant::now();
    for i in 0..n {
        if let Some(w) = window {
            while i.saturating_sub(progress.load(Ordering::Acquire)) > w {
                std::hint::spin_loop();
                std::thread::yield_now();
            }
        }
        if i % 10 == 5 {
            garbage(&mut rng, &mut buf);
            report.sent_garbage += 1;
        } else {
            let step = i;
            let frame = Frame::new(step)
                .with_value("a", value(step))
                .with_value("layer.1.weight", 0.25)
                .with_value("c", f64::NAN)
                .with_loss("loss", 2.5);
            buf.clear();
            match proto {
                Proto::Udp => buf.extend_from_slice(
                    format!(
                        "{{\"step\":{step},\"values\":{{\"a\":{},\"layer.1.weight\":0.25,\"c\":\"nan\"}},\"losses\":{{\"loss\":2.5}}}}\n",
                        value(step)
                    )
                    .as_bytes(),
                ),
                Proto::Osc => buf.extend(
                    rosc::encoder::encode(&frame_packet(&frame, None))
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
            }
            report.sent_valid += 1;
        }
        // A full send buffer is not a lost datagram: retry.
        while let Err(e) = tx.send_to(&buf, &to) {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                panic!("send: {e}");
            }
        }
    }
    let (frames, wrong, rss, d) = listener.join().unwrap_or_else(|_| panic!("listener"));
    report.secs = t.elapsed().as_secs_f64() - 2.0; // less the idle timeout that ended it
    report.kernel_drops_all = rcvbuf_errors().saturating_sub(drops_before);
    report.kernel_drops = d.os_dropped;
    report.received = d.datagrams;
    report.frames = frames;
    report.skipped = d.malformed + d.ignored;
    report.rss_kib = rss;
    report.hwm_kib = status_kib("VmHWM:");
    report.wrong = wrong;
    stop.store(true, Ordering::SeqCst);
    report
}

#[allow(dead_code)] // when included by tests/soak.rs
fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |a| {
        a.parse().unwrap_or_else(|e| panic!("{a}: {e}"))
    });
    let protos = match args.next().as_deref() {
        None | Some("both") => vec![Proto::Udp, Proto::Osc],
        Some("udp") => vec![Proto::Udp],
        Some("osc") => vec![Proto::Osc],
        Some(other) => panic!("{other}: give udp, osc or both"),
    };
    let window = match args.next().as_deref() {
        Some("full") => None,
        _ => Some(64),
    };
    for proto in protos {
        let r = soak(proto, n, window);
        let rss: Vec<String> = r.rss_kib.iter().map(|k| format!("{}", k / 1024)).collect();
        println!(
            "{proto:?}: {} datagrams in {:.1} s ({:.0}/s), {} valid + {} garbage sent; received \
             {}, reported dropped by the kernel {} (all sockets: {}); {} frames + {} skipped = {} (wrong {}); RSS MiB by tenths [{}], \
             peak {} MiB",
            n,
            r.secs,
            n as f64 / r.secs,
            r.sent_valid,
            r.sent_garbage,
            r.received,
            r.kernel_drops,
            r.kernel_drops_all,
            r.frames,
            r.skipped,
            r.frames + r.skipped,
            r.wrong,
            rss.join(", "),
            r.hwm_kib / 1024
        );
        assert_eq!(
            r.frames + r.skipped,
            r.received,
            "every received datagram accounted for"
        );
        assert!(
            r.received + r.kernel_drops >= n,
            "sent = received + dropped"
        );
        assert_eq!(r.wrong, 0);
        if window.is_some() {
            assert_eq!((r.frames, r.skipped), (r.sent_valid, r.sent_garbage));
        }
    }
}
