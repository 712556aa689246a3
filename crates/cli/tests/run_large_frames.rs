//! `gradtone run` carries frames of any size: the real hook with 1,200 and 5,000 parameter
//! tensors heard one by one (frames of ~90 KB and ~370 KB, far above what one UDP datagram can
//! carry) arrive whole, one CSV row per step, with no warning of the hook's on the console.
//!
//! Needs `import torch` in `GRADTONE_PYTHON` (default `python3`): skips loudly without, and
//! fails when `GRADTONE_REQUIRE_TORCH=1` (CI).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use gradtone_testkit::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_gradtone");

fn python() -> String {
    std::env::var("GRADTONE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn here(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn frames_of_thousands_of_tensors_all_arrive() {
    let test = "frames_of_thousands_of_tensors_all_arrive";
    let hint = format!("no torch in {} (set GRADTONE_PYTHON)", python());
    let ok = gradtone_testkit::runs(&python(), &["-c", "import torch"]);
    if !gradtone_testkit::require(test, "TORCH", ok, &hint) {
        return;
    }
    let t = TempDir::new("run-large");
    let script = here("tests/py/train_many_tensors.py");
    let steps = 6;
    for (tensors, min_bytes) in [(1200usize, 65_508usize), (5000, 300_000)] {
        let csv = t.join(&format!("t{tensors}.csv"));
        let out = Command::new(BIN)
            .args(["run", "--no-live", "--csv"])
            .arg(&csv)
            .arg("--")
            .arg(python())
            .arg(&script)
            .args([tensors.to_string(), steps.to_string()])
            .env("PYTHONPATH", here("../../python"))
            .env_remove("GRADTONE_TO")
            .stdin(Stdio::null())
            .output()
            .expect("gradtone runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{tensors} tensors: {err}");
        // The frames really are beyond a datagram.
        let largest: usize = err
            .lines()
            .find_map(|l| l.strip_prefix("largest frame: "))
            .and_then(|l| l.strip_suffix(" bytes"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the script reports its frame size: {err}"));
        assert!(largest >= min_bytes, "{tensors} tensors: {largest} bytes");
        // Nothing of the hook's on the console: no MTU warning, no send failure.
        assert!(!err.contains("gradtone_hook"), "{err}");
        assert!(!err.contains("Message too long"), "{err}");
        // Every step, every tensor.
        let text = std::fs::read_to_string(&csv).expect("the CSV is written");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
        let tensor_columns = header
            .iter()
            .filter(|h| h.ends_with(".attention.query_projection.weight"))
            .count();
        // A frame is parsed whole or not at all, so a row proves its whole line arrived; the
        // CSV itself keeps at most 4096 names (step aside), and says so.
        assert_eq!(tensor_columns, tensors.min(4095), "one column per tensor");
        if tensors > 4095 {
            assert!(err.contains("past 4096 columns not written"), "{err}");
        }
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), steps, "one row per step: {err}");
        for (i, r) in rows.iter().enumerate() {
            assert!(r.starts_with(&format!("{i},")), "row {i}");
            let empty = r.split(',').filter(|c| c.is_empty()).count();
            assert_eq!(empty, 0, "row {i} has every value");
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), steps, "the script's own lines only");
    }
}

/// Two ranks, each its own process and its own connection (as under `torchrun`), with frames
/// larger than a datagram: merged into one row per step. Needs only python3.
#[test]
fn ranks_each_on_their_own_connection_are_merged() {
    let t = TempDir::new("run-ranks");
    let sender = r#"
import sys
from gradtone_hook import StreamWriter
rank, steps = int(sys.argv[1]), int(sys.argv[2])
w = StreamWriter()
for s in range(steps):
    values = {f"block{i}.weight": 1.0 + rank for i in range(3000)}
    w.write_frame(s, values, {"loss": 2.0 + rank}, rank=rank, world=2)
"#;
    let script = format!(
        "{py} -c '{sender}' 0 15 & {py} -c '{sender}' 1 15; wait",
        py = python()
    );
    let csv = t.join("ranks.csv");
    let out = Command::new(BIN)
        // The ranks start at different times: wait for the late one rather than sound a step
        // without it (a lagging rank is otherwise flagged after 8 steps).
        .args(["run", "--no-live", "--max-lag", "100", "--csv"])
        .arg(&csv)
        .args(["--", "sh", "-c", &script])
        .env("PYTHONPATH", here("../../python"))
        .env_remove("GRADTONE_TO")
        .stdin(Stdio::null())
        .output()
        .expect("gradtone runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("gradtone_hook"), "{err}");
    let text = std::fs::read_to_string(&csv).expect("the CSV is written");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "block2999.weight")
        .expect("the last value has a column");
    let loss = header.iter().position(|h| *h == "loss").expect("loss");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 15, "one row per step: {err}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], i.to_string());
        // The mean of the two ranks: both arrived.
        assert_eq!(r[col].parse::<f64>().ok(), Some(1.5), "step {i}");
        assert_eq!(r[loss].parse::<f64>().ok(), Some(2.5), "step {i}");
    }
}
