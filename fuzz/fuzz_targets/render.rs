//! Any bytes through what `gradtone render` does with a file, read as each of its three input
//! formats (CSV, JSONL, TensorBoard event file): frames (ranks merged when the stream says
//! so) → the default mapping with alarms → samples, and → the CSV writer and back. No panic, no
//! hang, memory bounded by the input, every sample finite.
#![no_main]

use std::io::Cursor;

use gradtone_csv::{CsvReader, CsvWriter};
use gradtone_ingest::{FrameSource, JsonlReader, MergeOptions, RankMerger};
use gradtone_detect::AlarmDetector;
use gradtone_frame::{Frame, Watch};
use gradtone_sound::config::SoundConfig;
use gradtone_sound::mapping;
use libfuzzer_sys::fuzz_target;

fn sonify(frames: &[Frame]) {
    let config = SoundConfig::default();
    let mut m = mapping::with_alarms(&config);
    let mut detector = AlarmDetector::new(&config.alarms);
    let mut buf = Vec::new();
    for f in frames {
        buf.clear();
        let alarms = detector.observe(f);
        m.play(f, &alarms, &mut buf);
        assert!(buf.iter().all(|s| s.is_finite()), "a non-finite sample");
    }
    buf.clear();
    m.flush(&mut buf);
    let mut w = CsvWriter::new(Cursor::new(Vec::new()), &[], &[]).expect("memory writer");
    for f in frames {
        w.write(f).expect("memory write");
    }
    let bytes = w.finish().expect("memory finish").into_inner();
    let n = CsvReader::new(bytes.as_slice(), "again.csv")
        .expect("our header reads back")
        .filter(Result::is_ok)
        .count();
    assert_eq!(n, frames.len(), "every frame written reads back");
}

fn jsonl_frames(data: &[u8]) -> Vec<Frame> {
    let mut src = JsonlReader::new(data, "fuzz.jsonl");
    let first = src.next_record();
    let world = first
        .as_ref()
        .and_then(|r| r.world.or(r.frame.rank.map(|k| k.saturating_add(1))));
    let mut frames: Vec<Frame> = first.into_iter().map(|r| r.frame).collect();
    frames.extend(src.by_ref());
    match world {
        // Ranks beyond the world (and huge worlds) are the merger's own fuzz target's business
        // (crates/ingest/fuzz); here they are left out so this target explores the rest.
        Some(w) if w > 1 && w <= 64 => {
            let mut m = RankMerger::new(MergeOptions::new(w));
            let mut out = Vec::new();
            for f in frames.into_iter().filter(|f| f.rank.is_none_or(|r| r < w)) {
                m.push(f);
                while let Some(x) = m.pop() {
                    out.push(x.frame);
                }
            }
            m.finish();
            while let Some(x) = m.pop() {
                out.push(x.frame);
            }
            out
        }
        _ => frames,
    }
}

fn tensorboard_frames(data: &[u8]) -> Vec<Frame> {
    // read_scalars reads files: a per-process scratch file in the temporary folder.
    let path = std::env::temp_dir().join(format!(
        "gradtone-fuzz-{}.tfevents",
        std::process::id()
    ));
    if std::fs::write(&path, data).is_err() {
        return Vec::new();
    }
    gradtone_tensorboard::read_scalars(&path, &[])
        .map(|s| s.to_frames())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = CsvReader::new(data, "fuzz.csv") {
        let frames: Vec<Frame> = r.filter_map(Result::ok).collect();
        sonify(&frames);
    }
    sonify(&jsonl_frames(data));
    sonify(&tensorboard_frames(data));
});
