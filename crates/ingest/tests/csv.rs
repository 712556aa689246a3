//! `csv_source`: trajectory CSVs through `gradtone_sound::csv::CsvReader`.

use gradtone_ingest::{FrameSource, IngestError, csv_source};

#[test]
fn reads_rows_then_stops_with_an_error_at_a_bad_row() {
    let dir = std::env::temp_dir().join(format!("gradtone-ingest-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("traj.csv");
    std::fs::write(
        &path,
        "step,loss,conv1,fc1\n0,2.3,0.5,nan\n1,2.1,0.4,inf\n2,2.0,oops,1\n3,1,1,1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut src = csv_source(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(src.names(), ["step", "loss", "conv1", "fc1"]);
    let frames: Vec<_> = src.by_ref().collect();
    assert_eq!(
        frames.len(),
        2,
        "stops at the bad row: later rows may be misaligned"
    );
    assert_eq!(
        (frames[0].loss(), frames[0].value("conv1")),
        (Some(2.3), Some(0.5))
    );
    assert!(frames[0].value("fc1").is_some_and(f64::is_nan));
    assert_eq!(frames[1].value("fc1"), Some(f64::INFINITY));
    let e = src.take_error().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("traj.csv line 4, column conv1"), "{e}");
    assert_eq!(src.diagnostics().frames, 2);
    let missing = dir.join("none.csv");
    assert!(matches!(csv_source(&missing), Err(IngestError::Csv(_))));
    let _ = std::fs::remove_dir_all(&dir);
}
