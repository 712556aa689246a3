//! `follow`: a JSONL file read like `tail -f`, with a writer thread appending to it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use gradtone_ingest::{FollowOptions, FrameSource, IngestError, follow};

/// A fresh temporary directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradtone-ingest-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn line(step: u64) -> String {
    format!("{{\"step\":{step},\"values\":{{\"a\":{step}}}}}\n")
}

fn append(path: &PathBuf, text: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Runs a follower on `path` in a thread, sending each step as it arrives.
fn spawn_follower(
    path: PathBuf,
    opts: FollowOptions,
) -> (
    mpsc::Receiver<u64>,
    thread::JoinHandle<gradtone_ingest::Diagnostics>,
) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut src = match follow(&path, opts) {
            Ok(s) => s,
            Err(e) => panic!("follow: {e}"),
        };
        for f in src.by_ref() {
            if tx.send(f.step).is_err() {
                break;
            }
        }
        assert!(src.take_error().is_none());
        src.diagnostics().clone()
    });
    (rx, handle)
}

/// Runs an already opened follower in a thread, sending each step as it arrives.
fn spawn_follower_from(
    mut src: gradtone_ingest::FollowReader,
) -> (
    mpsc::Receiver<u64>,
    thread::JoinHandle<gradtone_ingest::Diagnostics>,
) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        for f in src.by_ref() {
            if tx.send(f.step).is_err() {
                break;
            }
        }
        assert!(src.take_error().is_none());
        src.diagnostics().clone()
    });
    (rx, handle)
}

fn recv(rx: &mpsc::Receiver<u64>) -> Option<u64> {
    rx.recv_timeout(Duration::from_secs(5)).ok()
}

#[test]
fn picks_up_appended_lines_and_stops_on_the_flag() {
    let dir = temp_dir("follow-append");
    let path = dir.join("run.jsonl");
    std::fs::write(&path, line(0) + &line(1)).unwrap_or_else(|e| panic!("{e}"));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = FollowOptions {
        stop: Some(Arc::clone(&stop)),
        ..FollowOptions::default()
    };
    let (rx, handle) = spawn_follower(path.clone(), opts);
    assert_eq!(recv(&rx), Some(0));
    assert_eq!(recv(&rx), Some(1));
    // Appended later, the second line in two pieces (a writer caught mid-line).
    thread::sleep(Duration::from_millis(120));
    append(&path, &line(2));
    assert_eq!(recv(&rx), Some(2));
    let l3 = line(3);
    append(&path, &l3[..10]);
    thread::sleep(Duration::from_millis(150));
    assert!(rx.try_recv().is_err(), "half a line must not be parsed");
    append(&path, &l3[10..]);
    assert_eq!(recv(&rx), Some(3));
    append(&path, "not json\n");
    append(&path, &line(4));
    assert_eq!(recv(&rx), Some(4));

    let t = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let diag = handle
        .join()
        .unwrap_or_else(|_| panic!("follower panicked"));
    let took = t.elapsed();
    assert!(took < Duration::from_millis(500), "stopped after {took:?}");
    assert_eq!(diag.frames, 5);
    assert_eq!(diag.malformed, 1);
    assert!(
        diag.first_errors[0].contains("run.jsonl line 5:"),
        "{:?}",
        diag.first_errors
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncation_and_rotation_restart_from_the_top() {
    let dir = temp_dir("follow-rotate");
    let path = dir.join("run.jsonl");
    std::fs::write(&path, line(0) + &line(1) + &line(2)).unwrap_or_else(|e| panic!("{e}"));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = FollowOptions {
        stop: Some(Arc::clone(&stop)),
        ..FollowOptions::default()
    };
    let (rx, handle) = spawn_follower(path.clone(), opts);
    for want in 0..3 {
        assert_eq!(recv(&rx), Some(want));
    }
    // Truncate and write a shorter file in place.
    thread::sleep(Duration::from_millis(120));
    std::fs::write(&path, line(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recv(&rx), Some(10));
    // Rotate: the old file moves away (gets one more line first), a new one takes the path.
    thread::sleep(Duration::from_millis(120));
    append(&path, "{\"step\":11,\"values\":{}}"); // unterminated, completed by rotation
    std::fs::rename(&path, dir.join("run.jsonl.1")).unwrap_or_else(|e| panic!("{e}"));
    let mut f = File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    f.write_all((line(20) + "bad\n").as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    assert_eq!(recv(&rx), Some(11));
    assert_eq!(recv(&rx), Some(20));
    thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Relaxed);
    let diag = handle
        .join()
        .unwrap_or_else(|_| panic!("follower panicked"));
    assert_eq!(diag.frames, 6);
    assert_eq!(diag.malformed, 1);
    assert!(
        diag.first_errors[0].ends_with("run.jsonl line 2: expected value (column 1)"),
        "line numbers restart in the new file: {:?}",
        diag.first_errors
    );
    let w = diag.warnings.join("\n");
    assert!(w.contains("truncated") && w.contains("rotated"), "{w}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_timeout_ends_and_parses_the_unterminated_tail() {
    let dir = temp_dir("follow-idle");
    let path = dir.join("run.jsonl");
    std::fs::write(&path, line(0) + "{\"step\":1,\"values\":{}}").unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let mut src = match follow(
        &path,
        FollowOptions {
            idle_timeout: Some(Duration::from_millis(200)),
            ..FollowOptions::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let steps: Vec<u64> = src.by_ref().map(|f| f.step).collect();
    let took = t.elapsed();
    assert_eq!(steps, [0, 1]);
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // From the end: only what is appended counts.
    let mut src = match follow(
        &path,
        FollowOptions {
            idle_timeout: Some(Duration::from_millis(100)),
            from_end: true,
            ..FollowOptions::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(src.by_ref().count(), 0);
    assert_eq!(src.diagnostics().malformed, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The hook creates the file at its first step: a follower started before waits for it.
#[test]
fn a_missing_file_is_waited_for() {
    let dir = temp_dir("wait");
    let path = dir.join("later.jsonl");
    let stop = Arc::new(AtomicBool::new(false));
    let opts = FollowOptions {
        poll: Duration::from_millis(10),
        stop: Some(Arc::clone(&stop)),
        ..FollowOptions::default()
    };
    let src = follow(&path, opts).unwrap_or_else(|e| panic!("a missing file is waited for: {e}"));
    assert!(src.waiting());
    let (rx, handle) = spawn_follower_from(src);
    thread::sleep(Duration::from_millis(100));
    std::fs::write(&path, format!("{}{}", line(0), line(1))).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<u64> = (0..2)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    assert_eq!(got, [0, 1], "the file's lines from its start");
    stop.store(true, Ordering::SeqCst);
    let diag = handle
        .join()
        .unwrap_or_else(|_| panic!("follower panicked"));
    assert_eq!(diag.malformed, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With an idle timeout, a file that never appears ends the stream with a notice, no frame.
#[test]
fn a_file_that_never_appears_ends_at_the_idle_timeout() {
    let path = std::env::temp_dir().join("gradtone-ingest-follow-never.jsonl");
    let _ = std::fs::remove_file(&path);
    let opts = FollowOptions {
        poll: Duration::from_millis(10),
        idle_timeout: Some(Duration::from_millis(200)),
        ..FollowOptions::default()
    };
    let mut src = follow(&path, opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(src.by_ref().count(), 0);
    assert!(src.take_error().is_none());
    let w = src.diagnostics().warnings.join("\n");
    assert!(w.contains("never appeared"), "{w}");
}

/// A folder is not waited for: it is a clear error naming it.
#[test]
fn a_folder_is_a_clear_error() {
    let dir = temp_dir("folder");
    match follow(&dir, FollowOptions::default()) {
        Err(e @ IngestError::Open { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("gradtone-ingest-folder") && m.contains("folder"),
                "{m}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("followed a folder"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
