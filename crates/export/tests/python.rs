//! Cross-checks with the tools people use: `mido` reads our MIDI, `python-osc` receives our OSC.
//!
//! Needs `python3` with `mido` and `python-osc` (`pip install mido python-osc`); skips loudly
//! without them, and fails instead when `GRADTONE_REQUIRE_PY=1`. `GRADTONE_PYTHON` picks the
//! interpreter (default `python3`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gradtone_export::{MidiOptions, MidiWriter, OscSender, PitchMap};
use gradtone_frame::Frame;

fn python() -> String {
    std::env::var("GRADTONE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// Whether `module` imports; otherwise a loud skip (or a failure under `GRADTONE_REQUIRE_PY=1`).
fn have_module(test: &str, module: &str, pip: &str) -> bool {
    let ok = gradtone_testkit::runs(&python(), &["-c", &format!("import {module}")]);
    let hint = format!("python module {module} missing (pip install {pip})");
    gradtone_testkit::require(test, "PY", ok, &hint)
}

/// Waits for `child` at most `limit`, killing it after; returns (success, stdout, stderr).
fn wait_bounded(mut child: Child, limit: Duration) -> (bool, String, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).unwrap();
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err).unwrap();
    }
    if status.is_none() {
        err.push_str(&format!("\n(killed after {limit:?})"));
    }
    (status.is_some_and(|s| s.success()), out, err)
}

#[test]
fn mido_reads_the_midi_file() {
    let test = "mido_reads_the_midi_file";
    if !have_module(test, "mido", "mido") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("gradtone-export-mido-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.mid");
    let options = MidiOptions {
        ticks_per_step: 120,
        step_seconds: 0.125,
        pitch: PitchMap::Fixed { reference: 0.5 },
    };
    let mut w = MidiWriter::create(&path, &["conv1", "fc2", "loss"], options).unwrap();
    // conv1: 0.5·2^(k/12) climbs a chromatic scale from 60; fc2: 0.25 → 48 (NaN at 2, +inf at
    // 5); "loss" is a voice taken from the losses: 0.5/2^k falls by octaves from 60, clamped.
    for k in 0..8 {
        let fc2 = match k {
            2 => f64::NAN,
            5 => f64::INFINITY,
            _ => 0.25,
        };
        w.push(
            &Frame::new(k)
                .with_value("conv1", 0.5 * 2f64.powf(k as f64 / 12.0))
                .with_value("fc2", fc2)
                .with_loss("loss", 0.5 / 2f64.powi(k as i32 * 2)),
        );
    }
    let summary = w.finish().unwrap();
    let expected = serde_json::json!({
        "ticks_per_step": 120,
        "tempo": 500_000,
        "tracks": ["gradtone", "conv1", "fc2", "loss", "alarm"],
        "notes": {
            "conv1": [60, 61, 62, 63, 64, 65, 66, 67],
            "fc2": [48, 48, 48, 48, 48, 48],
            "loss": [60, 36, 24, 24, 24, 24, 24, 24],
        },
        "alarm_rows": [2, 5],
    });
    let expected_path = dir.join("expected.json");
    std::fs::write(&expected_path, expected.to_string()).unwrap();
    let child = Command::new(python())
        .arg(script("read_midi.py"))
        .args([&path, &expected_path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, out, err) = wait_bounded(child, Duration::from_secs(30));
    println!("{out}{err}");
    assert!(ok, "read_midi.py failed:\n{out}\n{err}");
    assert!(
        out.contains("OK read_midi: 5 tracks, 22 notes, 2 alarms"),
        "{out}"
    );
    assert_eq!((summary.notes, summary.alarms), (22, 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn python_osc_receives_frames() {
    let test = "python_osc_receives_frames";
    if !have_module(test, "pythonosc", "python-osc") {
        return;
    }
    let frames = 20u64;
    let mut child = Command::new(python())
        .arg(script("recv_osc.py"))
        .args([frames.to_string(), "10".to_owned()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The port line comes first; read it on a thread so that a stuck script cannot hang us.
    let stdout = child.stdout.take().unwrap();
    let (tx_line, rx_line) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok);
        tx_line.send(first).unwrap();
        lines.map_while(Result::ok).collect::<Vec<_>>().join("\n")
    });
    let first = rx_line.recv_timeout(Duration::from_secs(20)).ok().flatten();
    let Some(port) = first
        .as_deref()
        .and_then(|l| l.strip_prefix("PORT "))
        .and_then(|p| p.parse::<u16>().ok())
    else {
        let _ = child.kill();
        let (_, _, err) = wait_bounded(child, Duration::from_secs(5));
        panic!("recv_osc.py printed no port (first line {first:?}):\n{err}");
    };
    let mut osc = OscSender::connect(&format!("127.0.0.1:{port}")).unwrap();
    for k in 0..frames {
        let fc1 = if k == 3 {
            f64::NAN
        } else {
            2f64.powi(k as i32)
        };
        let f = Frame::new(1000 + k)
            .with_value("conv1", 0.1 * (k + 1) as f64)
            .with_value("fc1", fc1)
            .with_loss("loss", 1.0 / (k + 1) as f64);
        assert!(osc.send_frame(&f), "{:?}", osc.stats());
        std::thread::sleep(Duration::from_millis(2));
    }
    let (ok, _, err) = wait_bounded(child, Duration::from_secs(20));
    let out = reader.join().unwrap();
    println!("{out}{err}");
    assert!(ok, "recv_osc.py failed:\n{out}\n{err}");
    assert!(out.contains("OK recv_osc: 20 frames, 1 alarm"), "{out}");
    assert_eq!(osc.stats().send_errors, 0);
}
