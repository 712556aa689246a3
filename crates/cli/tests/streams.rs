//! `gradtone render` / `gradtone listen` end to end: recorded PyTorch streams, UDP, stdin,
//! TensorBoard in and out, MIDI, OSC and PNG sinks.

mod common;
use common::{BIN, gradtone, text};
use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

use gradtone_testkit::TempDir;

fn samples(path: &str) -> Vec<i16> {
    hound::WavReader::open(path)
        .expect("wav")
        .samples::<i16>()
        .map(|s| s.expect("s"))
        .collect()
}

/// The PyTorch hook's recording of the seed run renders to PyTorch's own reference WAV.
#[test]
fn recorded_pytorch_stream_renders_like_the_reference() {
    let Some(reference) = gradtone_testkit::shared(
        "stream_render",
        "reference/pytorch/wav/sgd_lr0.1_bs10_seed1.wav",
    ) else {
        return;
    };
    let t = TempDir::new("streams-seed");
    let out = t.arg("seed.wav");
    let o = gradtone(&[
        "render",
        fixture("pytorch_mnist_seed.jsonl").to_str().expect("utf8"),
        "--mapping",
        "seed",
        "-o",
        &out,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ours, theirs) = (samples(&out), samples(reference.to_str().expect("utf8")));
    assert_eq!(ours.len(), theirs.len());
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max();
    assert!(worst <= Some(1), "{worst:?}");
}

/// Every sink at once, from the default mapping: stereo WAV, CSV, PNG, MIDI, OSC, TensorBoard;
/// then the TensorBoard output read back in as a source.
#[test]
fn all_sinks_from_one_stream_and_tensorboard_round_trip() {
    let t = TempDir::new("streams-sinks");
    let osc = UdpSocket::bind("127.0.0.1:0").expect("bind");
    osc.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let osc_addr = osc.local_addr().expect("addr").to_string();
    let (wav, csv, png, mid, tb) = (
        t.arg("a.wav"),
        t.arg("a.csv"),
        t.arg("a.png"),
        t.arg("a.mid"),
        t.arg("tb"),
    );
    let o = gradtone(&[
        "render",
        fixture("pytorch_mnist_seed.jsonl").to_str().expect("utf8"),
        "--wav",
        &wav,
        "--csv",
        &csv,
        "--plot",
        &png,
        "--midi",
        &mid,
        "--osc-out",
        &osc_addr,
        "--tensorboard",
        &tb,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r = hound::WavReader::open(&wav).expect("wav");
    assert_eq!(r.spec().channels, 2, "the default mapping is stereo");
    let s: Vec<f32> = r
        .into_samples::<i16>()
        .map(|x| f32::from(x.expect("s")) / 32767.0)
        .collect();
    assert!(gradtone_sound::analysis::rms(&s) > 0.01, "not silent");
    assert!(s.iter().all(|x| x.abs() <= 1.0));
    assert_eq!(
        gradtone_csv::read_frames(Path::new(&csv))
            .expect("csv")
            .len(),
        201
    );
    assert_eq!(&std::fs::read(&png).expect("png")[1..4], b"PNG");
    assert_eq!(&std::fs::read(&mid).expect("midi")[..4], b"MThd");
    let mut buf = [0u8; 65536];
    let n = osc.recv(&mut buf).expect("an OSC datagram arrived");
    assert!(buf[..n].starts_with(b"#bundle"), "OSC frames are bundles");
    let series =
        gradtone_tensorboard::read_scalars(Path::new(&tb), &["gradtone/*"]).expect("tb scalars");
    assert_eq!(series.points.len(), 201);
    assert!(
        series.tags.iter().any(|t| t == "gradtone/fc1"),
        "{:?}",
        series.tags
    );
    // TensorBoard back in: the same 201 steps, rendered with the seed mapping.
    let back = t.arg("back.wav");
    let o = gradtone(&[
        "render",
        &tb,
        "--tags",
        "gradtone/conv*",
        "--tags",
        "gradtone/fc*",
        "--mapping",
        "seed",
        "-o",
        &back,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(samples(&back).len(), 201 * (4 * 441 + 882));
}

/// Four ranks of a real distributed run merge into one frame per step; a lagging rank alarms.
#[test]
fn distributed_streams_merge_and_a_lagging_rank_is_flagged() {
    let t = TempDir::new("streams-ranks");
    let csv = t.arg("ddp.csv");
    let o = gradtone(&[
        "render",
        fixture("pytorch_ddp_4ranks.jsonl").to_str().expect("utf8"),
        "--csv",
        &csv,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("4 ranks"), "{}", text(&o));
    let frames = gradtone_csv::read_frames(Path::new(&csv)).expect("csv");
    assert_eq!(frames.len(), 50, "one merged frame per step");
    let o = gradtone(&[
        "render",
        fixture("pytorch_localsgd_4ranks.jsonl")
            .to_str()
            .expect("utf8"),
        "--max-lag",
        "3",
        "--csv",
        &t.arg("l.csv"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("not heard from"),
        "no lag alarm: {}",
        text(&o)
    );
}

/// `listen --udp` receives datagrams from a sender on loopback and stops after the idle timeout.
#[test]
fn listen_over_udp_and_stdin() {
    let t = TempDir::new("streams-udp");
    let port = UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let wav = t.arg("udp.wav");
    let child = Command::new(BIN)
        .args([
            "listen",
            "--udp",
            &port.to_string(),
            "--idle-timeout",
            "1.5",
            "--no-live",
            "--mapping",
            "seed",
            "--wav",
            &wav,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    std::thread::sleep(Duration::from_millis(500));
    for step in 0..5 {
        let line = format!(
            "{{\"step\":{step},\"values\":{{\"a\":0.5,\"b\":\"nan\"}},\"losses\":{{\"loss\":1.0}}}}\n"
        );
        sender
            .send_to(line.as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
    sender
        .send_to(b"garbage\n", ("127.0.0.1", port))
        .expect("send");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 malformed"), "{}", text(&out));
    assert!(
        text(&out).contains("alarm"),
        "NaN must raise an alarm: {}",
        text(&out)
    );
    assert_eq!(samples(&wav).len(), 5 * (2 * 441 + 882));

    // stdin: the same lines piped in.
    let wav2 = t.arg("stdin.wav");
    let mut child = Command::new(BIN)
        .args(["listen", "--no-live", "--mapping", "seed", "--wav", &wav2])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    for step in 0..3 {
        writeln!(stdin, "{{\"step\":{step},\"values\":{{\"a\":1.0}}}}").expect("write");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out));
    let s = samples(&wav2);
    assert_eq!(s.len(), 3 * (441 + 882));
    let f: Vec<f32> = s[..441].iter().map(|&x| f32::from(x) / 32767.0).collect();
    let hz = gradtone_sound::analysis::dominant_frequency(&f, 44_100, 50.0, 5000.0);
    assert!((hz - 300.0).abs() < 2.0, "{hz}");
}
