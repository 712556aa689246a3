//! `gradtone run -- CMD`: the command's stdout, stdin and exit status untouched, its frames
//! heard through GRADTONE_TO; and `python train.py | gradtone listen` keeping the prints.
//!
//! The PyTorch test needs `import torch` in `GRADTONE_PYTHON` (default `python3`): it skips
//! loudly without, and fails when `GRADTONE_REQUIRE_TORCH=1` (CI). The others need only python3.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::BIN;
use gradtone_testkit::TempDir;

fn python() -> String {
    std::env::var("GRADTONE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python")
}

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py/train_tiny.py")
        .to_string_lossy()
        .into_owned()
}

fn has_torch(test: &str) -> bool {
    let hint = format!("no torch in {} (set GRADTONE_PYTHON)", python());
    let ok = gradtone_testkit::runs(&python(), &["-c", "import torch"]);
    gradtone_testkit::require(test, "TORCH", ok, &hint)
}

/// Runs `cmd` with `stdin` fed in, PYTHONPATH at the hook.
fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .env("PYTHONPATH", python_dir())
        .env_remove("GRADTONE_TO")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("finishes")
}

fn csv_rows(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("csv")
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn run_wraps_a_real_pytorch_script() {
    let test = "run_wraps_a_real_pytorch_script";
    if !has_torch(test) {
        return;
    }
    let t = TempDir::new("run-torch");
    let steps = 30;
    // Without gradtone: the hook's frames go to a file, the script's own lines to stdout.
    let mut plain = Command::new(python());
    plain
        .args([script(), steps.to_string(), "3".into()])
        .env("GRADTONE_TO", t.join("frames.jsonl"));
    let mut plain_cmd = plain;
    plain_cmd.env("PYTHONPATH", python_dir());
    let base = {
        let mut child = plain_cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"hello\n")
            .expect("stdin");
        child.wait_with_output().expect("python ends")
    };
    assert_eq!(
        base.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&base.stderr)
    );
    let frames = std::fs::read_to_string(t.join("frames.jsonl")).expect("frames file");
    assert_eq!(frames.lines().count(), steps);

    let csv = t.join("run.csv");
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--no-live", "--csv"])
        .arg(&csv)
        .args(["--wav"])
        .arg(t.join("run.wav"))
        .args(["--", &python(), &script(), &steps.to_string(), "3"]);
    let out = run_with_stdin(cmd, "hello\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "the script's exit code: {err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&base.stdout),
        "stdout byte for byte as without gradtone"
    );
    assert_eq!(out.stdout, base.stdout);
    assert!(String::from_utf8_lossy(&base.stdout).contains("stdin said: hello"));
    assert!(
        err.contains("a line on stderr"),
        "stderr passes through: {err}"
    );
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), steps, "one CSV row per step: {err}");
    for (i, r) in rows.iter().enumerate() {
        assert!(r.starts_with(&format!("{i},")), "row {i}: {r}");
    }
    let wav = hound::WavReader::open(t.join("run.wav")).expect("wav");
    assert!(wav.len() > 0);
}

/// A plain-python "training" that sends frames through the hook's writer (no torch needed).
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

#[test]
fn run_keeps_exit_status_and_hears_every_frame() {
    let t = TempDir::new("run-plain");
    for (n, code) in [(50usize, 0), (7, 5)] {
        let csv = t.join(&format!("run{n}.csv"));
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--no-live", "--csv"]).arg(&csv).args([
            "--",
            &python(),
            "-c",
            SENDER,
            &n.to_string(),
            &code.to_string(),
        ]);
        let out = run_with_stdin(cmd, "");
        assert_eq!(out.status.code(), Some(code), "{}", common::text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected: String = (0..n).map(|s| format!("log line {s}\n")).collect();
        assert_eq!(stdout, expected, "only the command's own stdout");
        assert_eq!(csv_rows(&csv).len(), n);
    }
    // A command that cannot start is a clear error, not a hang.
    let out = common::gradtone(&["run", "--no-live", "--", "/nonexistent/trainer"]);
    assert!(!out.status.success());
    assert!(common::text(&out).contains("cannot run /nonexistent/trainer"));
    // Serving beyond loopback without a token is refused before anything binds.
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pytorch_ddp_4ranks.jsonl");
    let out = common::gradtone(&[
        "render",
        fixture.to_str().expect("utf8"),
        "--serve",
        "0.0.0.0:0",
        "--serve-no-token",
    ]);
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("without a token"),
        "{}",
        common::text(&out)
    );
    // A bad output path fails before the command runs.
    let out = common::gradtone(&[
        "run",
        "--no-live",
        "--csv",
        "/nonexistent/dir/x.csv",
        "--",
        "sh",
        "-c",
        "echo ran",
    ]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ran"));
}

#[test]
fn listen_passes_a_scripts_prints_through() {
    let t = TempDir::new("listen-pass");
    let input = "epoch 1 | 100/310 batches | ppl 123.4\n\
                 {\"step\":0,\"values\":{\"fc1\":0.5},\"losses\":{\"loss\":2.0}}\n\
                 \n\
                 {'not': 'json'}\n\
                 {\"step\":1,\"values\":{\"fc1\":0.7}}\r\n\
                 {\"step\": 2, \"values\": {\"fc1\": oops}}\n\
                 the end";
    let csv = t.join("l.csv");
    let mut cmd = Command::new(BIN);
    cmd.args(["listen", "--no-live", "--csv"]).arg(&csv);
    let out = run_with_stdin(cmd, input);
    assert!(out.status.success(), "{}", common::text(&out));
    // Stdout is the script's alone: the summary is on stderr.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "epoch 1 | 100/310 batches | ppl 123.4\n\n{'not': 'json'}\n{\"step\": 2, \"values\": {\"fc1\": oops}}\nthe end"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrote") && err.contains("l.csv"), "{err}");
    assert!(!err.contains("line 1"), "no warning for a print: {err}");
    assert!(
        err.contains("line 6"),
        "a damaged frame is still reported: {err}"
    );
    assert_eq!(csv_rows(&csv).len(), 2);
}

/// Ctrl-C in a terminal reaches the whole process group: the command stops (its own way),
/// gradtone waits for it, keeps every frame it sent, finalises the outputs and exits with the
/// command's status.
#[test]
fn ctrl_c_reaches_the_command_and_outputs_are_finalised() {
    if Command::new("setsid").arg("--version").output().is_err() {
        eprintln!("\n*** SKIPPED ctrl_c test: no setsid ***\n");
        return;
    }
    let t = TempDir::new("run-ctrlc");
    let (csv, wav) = (t.join("c.csv"), t.join("c.wav"));
    let script = r#"
import sys, time
from gradtone_hook import StreamWriter
w = StreamWriter()
s = 0
try:
    while True:
        w.write_frame(s, {"a": 0.5, "b": 1.0})
        print("step", s, flush=True)
        s += 1
        time.sleep(0.02)
except KeyboardInterrupt:
    print("interrupted at", s, flush=True)
    sys.exit(7)
"#;
    let out = run_and_signal_the_group("-INT", ["--wav".as_ref(), wav.as_os_str()], &csv, script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = stdout.lines().filter(|l| l.starts_with("step ")).count();
    assert!(sent > 5, "{stdout}");
    assert!(stdout.contains("interrupted at"));
    assert_eq!(
        csv_rows(&csv).len(),
        sent,
        "every frame sent before Ctrl-C is kept"
    );
    let r = hound::WavReader::open(&wav).expect("the WAV is finalised");
    assert!(r.len() > 0);
}

/// `gradtone run --no-live --csv CSV OUTPUT… -- python -c SCRIPT` in a process group of its own
/// (setsid, like a terminal's foreground job); after 3 s, `signal` goes to the whole group.
fn run_and_signal_the_group(
    signal: &str,
    output: [&std::ffi::OsStr; 2],
    csv: &std::path::Path,
    script: &str,
) -> Output {
    let child = Command::new("setsid")
        .arg(BIN)
        .args(["run", "--no-live", "--csv"])
        .arg(csv)
        .args(output)
        .args(["--", &python(), "-c", script])
        .env("PYTHONPATH", python_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let pgid = child.id().to_string();
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .status();
    child.wait_with_output().expect("ends")
}

/// A scheduler's stop (SLURM preemption, `systemctl stop`, `timeout`) sends SIGTERM to the
/// whole process group: the command ends as it would alone, and gradtone, which must not die
/// with it, finalises every output (the plot exists only then, the CSV has every frame) and
/// exits with the command's status.
#[test]
fn sigterm_to_the_group_ends_the_command_and_outputs_are_finalised() {
    if Command::new("setsid").arg("--version").output().is_err() {
        eprintln!("\n*** SKIPPED sigterm test: no setsid ***\n");
        return;
    }
    let t = TempDir::new("run-sigterm");
    let (csv, plot) = (t.join("t.csv"), t.join("t.png"));
    let script = r#"
import time
from gradtone_hook import StreamWriter
w = StreamWriter()
s = 0
while True:
    w.write_frame(s, {"a": 0.5 + s, "b": 1.0})
    print("step", s, flush=True)
    s += 1
    time.sleep(0.02)
"#;
    let out =
        run_and_signal_the_group("-TERM", ["--plot".as_ref(), plot.as_os_str()], &csv, script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + 15), "{stdout}{stderr}");
    let sent = stdout.lines().filter(|l| l.starts_with("step ")).count();
    assert!(sent > 5, "{stdout}");
    let rows = csv_rows(&csv).len();
    // A frame is written before its line is printed: the kill may fall between the two.
    assert!(
        rows == sent || rows == sent + 1,
        "{rows} rows for {sent} steps; {stderr}"
    );
    let png = std::fs::read(&plot).expect("the plot is drawn when the run ends");
    assert!(png.starts_with(b"\x89PNG"), "{stderr}");
}
