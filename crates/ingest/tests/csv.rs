//! `csv_source`: trajectory CSVs through `gradtone_csv::CsvReader`.

use gradtone_ingest::{FrameSource, IngestError, csv_source};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gradtone-ingest-csv-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn bad_rows_are_skipped_counted_and_reported_and_the_rest_is_read() {
    let dir = temp_dir("bad");
    let path = dir.join("traj.csv");
    std::fs::write(
        &path,
        "step,loss,conv1,fc1\n0,2.3,0.5,nan\n1,2.1,0.4,inf\n2,2.0,oops,1\n3,1,1\n4,1,1,\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut src = csv_source(&path).unwrap_or_else(|e| panic!("{e}"));
    let reported = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let r = reported.clone();
    src.set_reporter(std::sync::Arc::new(move |m: &str| {
        if let Ok(mut v) = r.lock() {
            v.push(m.to_string());
        }
    }));
    assert_eq!(src.names(), ["step", "loss", "conv1", "fc1"]);
    let frames: Vec<_> = src.by_ref().collect();
    let steps: Vec<u64> = frames.iter().map(|f| f.step).collect();
    assert_eq!(
        steps,
        [0, 1, 4],
        "the good rows around the bad ones are kept"
    );
    assert_eq!(
        (frames[0].loss(), frames[0].value("conv1")),
        (Some(2.3), Some(0.5))
    );
    assert!(frames[0].value("fc1").is_some_and(f64::is_nan));
    assert_eq!(frames[1].value("fc1"), Some(f64::INFINITY));
    assert_eq!(frames[2].value("fc1"), None, "an empty cell is missing");
    assert!(src.take_error().is_none(), "bad rows are not an I/O error");
    let d = src.diagnostics();
    assert_eq!((d.frames, d.malformed), (3, 2));
    assert!(
        d.first_errors[0].contains("traj.csv line 4, column conv1: 'oops' is not a number"),
        "{:?}",
        d.first_errors
    );
    assert!(d.first_errors[1].contains("line 5"), "{:?}", d.first_errors);
    assert!(
        d.summary()
            .is_some_and(|s| s.ends_with("2 malformed rows skipped")),
        "{:?}",
        d.summary()
    );
    assert_eq!(
        reported.lock().map(|v| v.len()).unwrap_or(0),
        2,
        "each bad row reported once"
    );
    let missing = dir.join("none.csv");
    assert!(matches!(csv_source(&missing), Err(IngestError::Csv(_))));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flood_of_bad_rows_is_counted_with_bounded_reports() {
    let dir = temp_dir("flood");
    let path = dir.join("flood.csv");
    let mut text = String::from("step,loss\n");
    for i in 0..10_000 {
        // Long garbage cells: the reports must stay short.
        text.push_str(&format!("{i},{}\n", "x".repeat(1000)));
    }
    text.push_str("10000,1.5\n");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let mut src = csv_source(&path).unwrap_or_else(|e| panic!("{e}"));
    let frames: Vec<_> = src.by_ref().collect();
    assert_eq!(frames.len(), 1);
    let d = src.diagnostics();
    assert_eq!(d.malformed, 10_000);
    assert_eq!(d.first_errors.len(), gradtone_ingest::MAX_REPORTED);
    assert!(
        d.first_errors.iter().all(|m| m.len() < 300),
        "{:?}",
        d.first_errors[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
