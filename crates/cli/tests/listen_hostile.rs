//! `gradtone listen` beside a real training: a file that does not exist yet, a run that sends
//! nothing, senders that say `localhost` or `[::1]`, and the loopback-only rule.

mod common;
use common::{BIN, gradtone, text};
use gradtone_testkit::TempDir;
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

fn frame(step: u64) -> String {
    format!("{{\"step\":{step},\"values\":{{\"a\":0.5}},\"losses\":{{\"loss\":1.0}}}}\n")
}

fn wav_samples(path: &str) -> usize {
    hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .len() as usize
}

/// A free UDP port on `ip` (bound then released), or `None` where `ip` cannot be bound.
fn free_port(ip: &str) -> Option<u16> {
    Some(UdpSocket::bind((ip, 0)).ok()?.local_addr().ok()?.port())
}

/// Listens on `addr` (as given on the command line) until 1.5 s without a frame, while
/// `count` frames are sent to `to`; returns the run's output.
fn listen_udp(addr: &str, to: (&str, u16), count: u64, wav: &str) -> std::process::Output {
    let child = Command::new(BIN)
        .args([
            "listen",
            "--udp",
            addr,
            "--idle-timeout",
            "1.5",
            "--no-live",
            "--mapping",
            "seed",
            "--wav",
            wav,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let any = if to.0.contains(':') {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let tx = UdpSocket::bind(any).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(400));
    for step in 0..count {
        tx.send_to(frame(step).as_bytes(), to)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

/// One frame of one value with the seed mapping: 10 ms of tone and 20 ms of silence.
const FRAME_SAMPLES: usize = 441 + 882;

#[test]
fn udp_accepts_localhost_and_ipv6_loopback() {
    let t = TempDir::new("listen-hosts");
    let port = free_port("127.0.0.1").unwrap_or_else(|| panic!("no IPv4 loopback"));
    let wav = t.arg("localhost.wav");
    let o = listen_udp(&format!("localhost:{port}"), ("127.0.0.1", port), 3, &wav);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(wav_samples(&wav), 3 * FRAME_SAMPLES);

    match free_port("::1") {
        Some(port) => {
            let wav = t.arg("v6.wav");
            let o = listen_udp(&format!("[::1]:{port}"), ("::1", port), 2, &wav);
            assert!(o.status.success(), "{}", text(&o));
            assert!(text(&o).contains("udp://[::1]:"), "{}", text(&o));
            assert_eq!(wav_samples(&wav), 2 * FRAME_SAMPLES);
        }
        None => eprintln!("\n*** SKIPPED the [::1] half: this machine has no IPv6 loopback ***\n"),
    }
}

#[test]
fn a_non_loopback_address_needs_allow_remote() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let o = gradtone(&["listen", "--udp", addr, "--no-live", "--idle-timeout", "1"]);
        assert!(!o.status.success(), "{addr}: {}", text(&o));
        assert!(text(&o).contains("--allow-remote"), "{}", text(&o));
    }
    let o = gradtone(&["listen", "--osc", "no-such-port", "--no-live"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("[::1]:9999"),
        "usage in the error: {}",
        text(&o)
    );
}

#[test]
fn a_run_that_receives_nothing_fails_and_writes_nothing() {
    let t = TempDir::new("listen-nothing");
    let port = free_port("127.0.0.1").unwrap_or_else(|| panic!("no IPv4 loopback"));
    let (wav, csv, png) = (t.arg("a.wav"), t.arg("a.csv"), t.arg("a.png"));
    let tb = t.arg("tb");
    for proto in ["--udp", "--osc"] {
        let o = gradtone(&[
            "listen",
            proto,
            &port.to_string(),
            "--idle-timeout",
            "0.5",
            "--no-live",
            "--wav",
            &wav,
            "--csv",
            &csv,
            "--plot",
            &png,
            "--tensorboard",
            &tb,
        ]);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("no frames"), "{}", text(&o));
        for p in [&wav, &csv, &png, &tb] {
            assert!(!std::path::Path::new(p).exists(), "{p} was written");
        }
    }
    // A followed file that never appears: the same.
    let o = gradtone(&[
        "listen",
        &t.arg("never.jsonl"),
        "--follow",
        "--idle-timeout",
        "0.5",
        "--no-live",
        "--wav",
        &wav,
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("never appeared"), "{}", text(&o));
    assert!(!std::path::Path::new(&wav).exists());
}

#[test]
fn follow_waits_for_the_file_to_appear() {
    let t = TempDir::new("listen-follow-wait");
    let input = t.join("run.jsonl");
    let wav = t.arg("f.wav");
    let child = Command::new(BIN)
        .args(["listen"])
        .arg(&input)
        .args([
            "--follow",
            "--idle-timeout",
            "2",
            "--no-live",
            "--mapping",
            "seed",
            "--wav",
            &wav,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    std::thread::sleep(Duration::from_millis(500));
    let mut f = std::fs::File::create(&input).unwrap_or_else(|e| panic!("{e}"));
    for step in 0..4 {
        f.write_all(frame(step).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        f.flush().unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    let o = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("waiting for"), "{}", text(&o));
    assert_eq!(wav_samples(&wav), 4 * FRAME_SAMPLES);
}

#[test]
fn a_missing_input_names_it_and_its_cause_once() {
    let t = TempDir::new("listen-missing");
    let o = gradtone(&["listen", &t.arg("none.jsonl"), "--no-live"]);
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(msg.contains("none.jsonl"), "{msg}");
    assert_eq!(
        msg.matches("os error 2").count(),
        1,
        "the cause once: {msg}"
    );
}

/// A rank that never sends raises one alarm, not one per step; a line claiming a huge rank is
/// skipped and counted, and the merger does not allocate for it.
#[test]
fn rank_alarms_do_not_flood_and_huge_ranks_are_skipped() {
    let t = TempDir::new("listen-ranks");
    let input = t.join("ranks.jsonl");
    let mut text_in = String::new();
    for step in 0..60 {
        for rank in 0..3 {
            text_in.push_str(&format!(
                "{{\"step\":{step},\"values\":{{\"fc1\":1.0}},\"rank\":{rank},\"world\":4}}\n"
            ));
        }
    }
    text_in.push_str("{\"step\":61,\"values\":{\"fc1\":1.0},\"rank\":4000000000}\n");
    std::fs::write(&input, text_in).unwrap_or_else(|e| panic!("{e}"));
    let csv = t.arg("r.csv");
    let o = gradtone(&["render", input.to_str().unwrap_or_default(), "--csv", &csv]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("not heard from").count(), 1, "{out}");
    assert!(out.contains("repeats"), "{out}");
    assert!(out.contains("1 malformed line"), "{out}");
    assert!(out.contains("from 0 to 1023"), "{out}");
}
