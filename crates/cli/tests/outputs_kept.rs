//! How a run starts and ends around the user's files and command: nothing at an output path is
//! touched before the run has data for it (a refused or empty run leaves existing files byte
//! for byte); `gradtone run` refuses before starting the command, and once the command runs
//! nothing of ours stops it and its exit status comes back; `listen` and `run` write nothing of
//! their own to stdout.
//!
//! The commands that send frames use the hook's writer in `python3` (no torch needed); every
//! server and socket is on 127.0.0.1, started by the test or by gradtone.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, text};
use gradtone_testkit::TempDir;

fn python() -> String {
    std::env::var("GRADTONE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python")
}

/// Sends `argv[1]` frames through the hook's writer, printing a line per frame, then exits
/// with `argv[2]`.
const SENDER: &str = r#"
import sys
from gradtone_hook import StreamWriter
w = StreamWriter()
n = int(sys.argv[1])
for s in range(n):
    w.write_frame(s, {"a": 0.5 + s / 10, "b": 1.0}, {"loss": 1.0 / (s + 1)})
    print("log line", s)
sys.stdout.flush()
sys.exit(int(sys.argv[2]))
"#;

/// Runs gradtone with `args`, stdin from `stdin`, the hook on the PYTHONPATH.
fn gradtone_with(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("PYTHONPATH", python_dir())
        .env_remove("GRADTONE_TO")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gradtone starts");
    // A refused run may exit before reading its stdin: a broken pipe here is expected.
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    child.wait_with_output().expect("gradtone ends")
}

/// The user's earlier outputs: an 18 KB file at `o.wav` and a CSV at `o.csv`.
fn user_files(t: &TempDir) -> (String, String, Vec<u8>, Vec<u8>) {
    let wav_bytes: Vec<u8> = (0..18_000u32).map(|i| (i % 251) as u8).collect();
    let csv_bytes = b"step,loss,a\n0,2.5,0.5\n1,2.0,0.6\n".to_vec();
    std::fs::write(t.join("o.wav"), &wav_bytes).expect("write");
    std::fs::write(t.join("o.csv"), &csv_bytes).expect("write");
    (t.arg("o.wav"), t.arg("o.csv"), wav_bytes, csv_bytes)
}

/// The names in `dir`, sorted (a temporary file left behind shows here).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `o.wav` and `o.csv` hold exactly the user's bytes, and nothing else is in the folder.
fn assert_untouched(t: &TempDir, wav: &[u8], csv: &[u8], what: &str) {
    assert_eq!(listing(t.path()), ["o.csv", "o.wav"], "{what}");
    assert!(
        std::fs::read(t.join("o.wav")).expect("o.wav") == wav,
        "{what}: o.wav changed"
    );
    assert!(
        std::fs::read(t.join("o.csv")).expect("o.csv") == csv,
        "{what}: o.csv changed"
    );
}

fn csv_rows(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .expect("csv")
        .lines()
        .count()
        .saturating_sub(1)
}

fn wav_samples(path: &Path) -> usize {
    hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{}: not a WAV: {e}", path.display()))
        .len() as usize
}

/// A refused start — a taken port, a public bind without a token, a bad token, a bad OSC
/// address — starts no command, exits non-zero with a message naming the cause, and leaves the
/// user's files exactly as they were (today: cut to 44 and 0 bytes, the command started and
/// then killed).
#[test]
fn a_refused_start_touches_no_file_and_starts_no_command() {
    let t = TempDir::new("kept-refused");
    let (wav, csv, wav_bytes, csv_bytes) = user_files(&t);
    let marks = TempDir::new("kept-refused-marker");
    let marker = marks.join("started");
    let touch = format!("touch '{}'; echo ran", marker.display());
    // Held by the test for the whole run: the port is taken.
    let busy = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = busy.local_addr().expect("addr").port();
    let taken = format!("127.0.0.1:{port}");
    let refusals: [(&[&str], &str); 4] = [
        (&["--serve", &taken], &port.to_string()),
        (
            &["--serve", "0.0.0.0:0", "--serve-no-token"],
            "without a token",
        ),
        (&["--serve", "--serve-token", "short"], "token"),
        (&["--osc-out", "127.0.0.1:notaport"], "OSC"),
    ];
    // The other file outputs too: none may be created (nor a temporary file left).
    let (png, mid, tb) = (t.arg("o.png"), t.arg("o.mid"), t.arg("tb"));
    let others = ["--plot", &png, "--midi", &mid, "--tensorboard", &tb];
    for (flags, needle) in refusals {
        let mut args = vec!["run", "--no-live", "--wav", &wav, "--csv", &csv];
        args.extend_from_slice(&others);
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sh", "-c", &touch]);
        let out = gradtone_with(&args, b"");
        let what = format!("run {flags:?}: {}", text(&out));
        assert!(!out.status.success(), "{what}");
        assert!(text(&out).contains(needle), "the cause is named: {what}");
        assert!(!marker.exists(), "the command was started: {what}");
        assert!(out.stdout.is_empty(), "{what}");
        assert_untouched(&t, &wav_bytes, &csv_bytes, &what);

        let mut args = vec!["listen", "--no-live", "--wav", &wav, "--csv", &csv];
        args.extend_from_slice(&others);
        args.extend_from_slice(flags);
        let frame = b"{\"step\":0,\"values\":{\"a\":0.5}}\n";
        let out = gradtone_with(&args, frame);
        let what = format!("listen {flags:?}: {}", text(&out));
        assert!(!out.status.success(), "{what}");
        assert!(text(&out).contains(needle), "{what}");
        assert_untouched(&t, &wav_bytes, &csv_bytes, &what);
    }
    drop(busy);
    // A command that cannot start: the outputs opened for it are dropped, nothing left behind.
    let out = common::gradtone(&[
        "run",
        "--no-live",
        "--wav",
        &wav,
        "--csv",
        &csv,
        "--",
        "/nonexistent/trainer",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot run /nonexistent/trainer"),
        "{}",
        text(&out)
    );
    assert_untouched(&t, &wav_bytes, &csv_bytes, "a missing program");
}

/// `listen` with nothing on stdin keeps the user's files (today it deletes them); a run with
/// frames replaces them, and says so on stderr only: stdout carries nothing of ours.
#[test]
fn an_empty_listen_keeps_the_files_and_a_real_one_replaces_them() {
    let t = TempDir::new("kept-listen");
    let (wav, csv, wav_bytes, csv_bytes) = user_files(&t);
    let (png, mid, tb) = (t.arg("o.png"), t.arg("o.mid"), t.arg("tb"));
    let empty = [
        "listen",
        "--no-live",
        "--wav",
        &wav,
        "--csv",
        &csv,
        "--plot",
        &png,
        "--midi",
        &mid,
        "--tensorboard",
        &tb,
    ];
    let out = gradtone_with(&empty, b"");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no frames"), "{}", text(&out));
    assert!(
        !text(&out).contains("see the messages above"),
        "{}",
        text(&out)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert_untouched(&t, &wav_bytes, &csv_bytes, "an empty listen");

    let args = ["listen", "--no-live", "--wav", &wav, "--csv", &csv];
    let frames: String = (0..4)
        .map(|s| {
            format!(
                "{{\"step\":{s},\"values\":{{\"a\":0.5,\"b\":1.5}},\"losses\":{{\"loss\":1.0}}}}\n"
            )
        })
        .collect();
    let input = format!("epoch 1 starts\n{frames}done\n");
    let out = gradtone_with(&args, input.as_bytes());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "epoch 1 starts\ndone\n",
        "stdout: the script's own lines and nothing of ours"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrote") && err.contains("o.wav"), "{err}");
    assert_eq!(listing(t.path()), ["o.csv", "o.wav"]);
    assert_eq!(csv_rows(&t.join("o.csv")), 4);
    assert!(wav_samples(&t.join("o.wav")) > 0);
}

/// A command that exits 0 without sending a frame: exit 0, its stdout untouched, and one line
/// saying no frame arrived and the likely cause; the user's files are kept. A command that fails
/// before its first frame keeps its own status.
#[test]
fn a_command_without_frames_keeps_its_status_and_gets_one_line() {
    let t = TempDir::new("kept-noframes");
    let (wav, csv, wav_bytes, csv_bytes) = user_files(&t);
    for code in [0, 3] {
        let script = format!("echo hi; exit {code}");
        let args = [
            "run",
            "--no-live",
            "--wav",
            &wav,
            "--csv",
            &csv,
            "--",
            "sh",
            "-c",
            &script,
        ];
        let out = gradtone_with(&args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
        assert_eq!(err.matches("no frame arrived").count(), 1, "{err}");
        let line = err
            .lines()
            .find(|l| l.contains("no frame arrived"))
            .unwrap_or_default();
        assert!(
            line.contains("hook") && line.contains("GRADTONE_TO"),
            "the likely cause, on the same line: {err}"
        );
        assert!(!err.contains("see the messages above"), "{err}");
        assert!(!err.contains("error"), "{err}");
        if code == 0 {
            // Ours: where the command was told to send, then the one line.
            assert_eq!(err.lines().count(), 2, "{err}");
        }
        assert_untouched(&t, &wav_bytes, &csv_bytes, &format!("exit {code}"));
    }
}

/// An output that fails mid-run (a full disk: /dev/full) is reported, the command runs to its
/// end — its stdout complete — and its exit status comes back; the other outputs are finished,
/// replacing the user's earlier file. With no output left, the frames are read on until the
/// command ends.
#[cfg(target_os = "linux")]
#[test]
fn a_failing_output_never_stops_the_command() {
    let t = TempDir::new("kept-midrun");
    let (wav, _, wav_bytes, _) = user_files(&t);
    let n = 40;
    let expected: String = (0..n).map(|s| format!("log line {s}\n")).collect();
    let py = python();
    for keep_wav in [true, false] {
        let mut args = vec!["run", "--no-live", "--csv", "/dev/full"];
        if keep_wav {
            args.extend_from_slice(&["--wav", &wav]);
        }
        let count = n.to_string();
        args.extend_from_slice(&["--", &py, "-c", SENDER, &count, "7"]);
        let out = gradtone_with(&args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "the command's status: {err}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "the command ran to its end, and stdout is its own: {err}"
        );
        assert!(err.contains("/dev/full"), "the failure is reported: {err}");
        if keep_wav {
            let samples = wav_samples(&t.join("o.wav"));
            assert!(samples > 0, "the WAV replaced the old file: {err}");
            assert!(err.contains("kept:") && err.contains("o.wav"), "{err}");
        } else {
            assert!(err.contains("no output is left"), "{err}");
        }
    }
    assert_ne!(std::fs::read(t.join("o.wav")).expect("o.wav"), wav_bytes);
    assert_eq!(listing(t.path()), ["o.csv", "o.wav"]);
}

/// A run whose frames arrive replaces the user's files with the new ones; gradtone's own
/// lines are on stderr, stdout is the command's alone.
#[test]
fn a_run_with_frames_replaces_the_files() {
    let t = TempDir::new("kept-replaced");
    let (wav, csv, _, csv_bytes) = user_files(&t);
    let py = python();
    let args = [
        "run",
        "--no-live",
        "--wav",
        &wav,
        "--csv",
        &csv,
        "--",
        &py,
        "-c",
        SENDER,
        "5",
        "0",
    ];
    let out = gradtone_with(&args, b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let expected: String = (0..5).map(|s| format!("log line {s}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert!(err.contains("wrote"), "{err}");
    assert_eq!(listing(t.path()), ["o.csv", "o.wav"]);
    assert_ne!(std::fs::read(t.join("o.csv")).expect("csv"), csv_bytes);
    assert_eq!(csv_rows(&t.join("o.csv")), 5);
    assert!(wav_samples(&t.join("o.wav")) > 0);
}

/// The new WAV takes the old one's place at the first frame, and from then on a SIGKILL leaves
/// a playable WAV at the path (its header kept current), with no temporary file beside it.
#[test]
fn a_killed_listen_leaves_a_playable_wav_in_the_old_ones_place() {
    let t = TempDir::new("kept-kill");
    let (wav, _, wav_bytes, _) = user_files(&t);
    let mut child = Command::new(BIN)
        .args(["listen", "--no-live", "--mapping", "seed", "--wav", &wav])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gradtone starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let frame = |s: u32| format!("{{\"step\":{s},\"values\":{{\"a\":0.5,\"b\":1.5}}}}\n");
    let path = t.join("o.wav");
    let t0 = Instant::now();
    let mut sent = 0;
    // Frames until the new WAV is in place (the first one should do).
    while std::fs::read(&path).expect("o.wav") == wav_bytes {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the WAV never replaced the old file"
        );
        if sent < 5 {
            stdin.write_all(frame(sent).as_bytes()).expect("frame");
            stdin.flush().expect("flush");
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(wav_samples(&path) > 0, "playable from its first frame");
    for s in sent..sent + 30 {
        stdin.write_all(frame(s).as_bytes()).expect("frame");
    }
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(500));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let n = wav_samples(&path);
    assert!(n > 0, "a playable WAV after SIGKILL");
    let r = hound::WavReader::open(&path).expect("wav");
    let read = r.into_samples::<i16>().filter_map(Result::ok).count();
    assert_eq!(read, n, "every sample the header counts is there");
    assert_eq!(
        listing(t.path()),
        ["o.csv", "o.wav"],
        "no temporary file left"
    );
}

/// A SIGKILLed listen (or run) leaves the CSV's rows but those of its last half second: the
/// rows reach the file as they come, not only at the end.
#[test]
fn a_killed_listen_leaves_the_csv_rows_it_had() {
    let t = TempDir::new("kept-kill-csv");
    let path = t.join("k.csv");
    let mut child = Command::new(BIN)
        .args(["listen", "--no-live", "--mapping", "seed", "--csv"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gradtone starts");
    let mut stdin = child.stdin.take().expect("stdin");
    // 40 frames over 2 s, then a pause, then SIGKILL.
    for s in 0..40 {
        let line = format!("{{\"step\":{s},\"values\":{{\"a\":0.5,\"b\":1.5}}}}\n");
        stdin.write_all(line.as_bytes()).expect("frame");
        stdin.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let text = std::fs::read_to_string(&path).expect("the CSV is in place from its first frame");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    // Every row up to the last flush (at most 0.5 s before the last frame: 10 frames).
    assert!(rows.len() >= 25, "{} rows of 40: {text}", rows.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(*r, format!("{i},0.5,1.5"), "row {i}");
    }
}
