//! The stream loop: a source's frames, merged and decimated, into every output; a stream with
//! no frame, or one that fails, leaves nothing behind.

use std::io::{BufReader, Cursor, Read};
use std::sync::{Arc, Mutex};

use gradtone_csv::CsvArgs;
use gradtone_frame::{AlarmEvent, Frame, Sink, SinkError};
use gradtone_ingest::stream::{run_frames, run_source};
use gradtone_ingest::{
    BoxedSource, Finished, JsonlReader, RankOptions, StreamError, StreamOptions,
};
use gradtone_pipeline::Outputs;
use gradtone_sound::wav::read_wav;
use gradtone_sound::{SoundArgs, SoundConfig, SoundVoice, WavArgs};
use gradtone_testkit::TempDir;

/// A JSONL source over `text`.
fn jsonl(text: &str) -> BoxedSource {
    Box::new(JsonlReader::new(
        Cursor::new(text.as_bytes().to_vec()),
        "test",
    ))
}

fn lines(steps: std::ops::Range<u64>) -> String {
    steps
        .map(|s| format!("{{\"step\":{s},\"values\":{{\"conv1\":0.5,\"fc1\":0.25}},\"losses\":{{\"loss\":2.0}}}}\n"))
        .collect()
}

fn seed() -> SoundConfig {
    let sound = SoundArgs {
        mapping: Some(gradtone_sound::mapping::MappingKind::Seed),
        ..SoundArgs::default()
    };
    sound.config().unwrap()
}

/// The seed mapping into `run.wav` and `run.csv` in `dir`, reporting to `report`.
fn outputs(dir: &TempDir, report: gradtone_frame::Report) -> Outputs {
    let wav = WavArgs {
        wav: Some(dir.join("run.wav")),
        ..WavArgs::default()
    };
    let csv = CsvArgs {
        csv: Some(dir.join("run.csv")),
    };
    let stop = Arc::default();
    let voice = Box::new(SoundVoice::new(seed()));
    let outputs: [&dyn gradtone_frame::Output<SoundConfig>; 2] = [&wav, &csv];
    Outputs::open(voice, &seed(), &outputs, "test stream", report, &stop).unwrap()
}

fn opts(drain_on_failure: bool) -> StreamOptions {
    StreamOptions {
        name: "test stream".into(),
        drain_on_failure,
    }
}

/// `source` through [`outputs`] in `dir`.
fn run(source: BoxedSource, dir: &TempDir, ranks: &RankOptions) -> Result<Finished, StreamError> {
    let silent = gradtone_frame::silent_report();
    run_source(source, outputs(dir, silent), ranks, &opts(false))
}

fn csv_rows(dir: &TempDir) -> usize {
    let csv = std::fs::read_to_string(dir.join("run.csv")).expect("the CSV was written");
    csv.lines().count() - 1
}

#[test]
fn every_frame_reaches_the_outputs() {
    let dir = TempDir::new("stream-frames");
    run(jsonl(&lines(0..5)), &dir, &RankOptions::default()).expect("a clean run");
    assert_eq!(csv_rows(&dir), 5);
    // 5 steps of the seed sound (2 layers × 441 + 882 samples each).
    let (_, samples) = read_wav(&dir.join("run.wav")).unwrap();
    assert_eq!(samples.len(), 5 * (2 * 441 + 882));
}

#[test]
fn steps_are_decimated() {
    let dir = TempDir::new("stream-decimate");
    let ranks = RankOptions {
        steps_per_frame: 3,
        ..RankOptions::default()
    };
    run(jsonl(&lines(0..7)), &dir, &ranks).expect("a clean run");
    assert_eq!(
        csv_rows(&dir),
        3,
        "7 steps, 3 per frame: 2 full frames and a last partial one"
    );
}

#[test]
fn a_stream_without_frames_writes_nothing() {
    let dir = TempDir::new("stream-empty");
    let err = run(jsonl("not a frame\n\n"), &dir, &RankOptions::default())
        .expect_err("no frames is an error");
    assert!(
        matches!(&err, StreamError::NoFrames(t) if t == "test stream"),
        "{err}"
    );
    assert!(!dir.join("run.wav").exists());
    assert!(!dir.join("run.csv").exists());
}

/// A reader that gives `data`, then fails.
struct Failing(Cursor<Vec<u8>>);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::other("cable unplugged")),
            n => Ok(n),
        }
    }
}

#[test]
fn a_failing_source_leaves_no_output() {
    let dir = TempDir::new("stream-fail");
    let reader = BufReader::new(Failing(Cursor::new(lines(0..4).into_bytes())));
    let source: BoxedSource = Box::new(JsonlReader::new(reader, "test"));
    let err =
        run(source, &dir, &RankOptions::default()).expect_err("the source's error ends the run");
    assert!(matches!(err, StreamError::Source(_)), "{err}");
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        text += &format!(": {c}");
        cause = c.source();
    }
    assert!(text.contains("cable unplugged"), "{text}");
    assert!(!dir.join("run.wav").exists());
    assert!(!dir.join("run.csv").exists());
}

/// A sink that counts frames and keeps alarm messages.
struct Probe(Arc<Mutex<(Vec<u64>, Vec<String>)>>);

impl Sink for Probe {
    fn describe(&self) -> String {
        "probe".into()
    }
    fn audio(&mut self, _step: u64, _samples: &[f32]) -> Result<(), SinkError> {
        Ok(())
    }
    fn frame(&mut self, frame: &Frame, alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        let mut s = self.0.lock().unwrap();
        s.0.push(frame.step);
        s.1.extend(alarms.iter().map(|a| a.message.clone()));
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        Ok("probe".into())
    }
}

#[test]
fn ranks_are_merged_and_a_disagreeing_one_raises_an_alarm() {
    let mut outputs = Outputs::new(Box::new(SoundVoice::new(seed())), Vec::new());
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    outputs.add_sink(Box::new(Probe(Arc::clone(&seen))));
    let mut frames = Vec::new();
    for step in 0..6 {
        for rank in 0..3u32 {
            // Rank 2 is a thousand times louder from step 3.
            let norm = if rank == 2 && step >= 3 { 500.0 } else { 0.5 };
            let mut f = Frame::new(step)
                .with_loss("loss", 2.0)
                .with_value("conv1", norm)
                .with_value("fc1", norm / 2.0);
            f.rank = Some(rank);
            frames.push(Ok::<_, StreamError>(f));
        }
    }
    run_frames(
        frames.into_iter(),
        Some(3),
        outputs,
        &RankOptions::default(),
        &opts(false),
    )
    .expect("a clean run");
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.0,
        (0..6).collect::<Vec<_>>(),
        "one merged frame per step"
    );
    assert!(
        seen.1
            .iter()
            .any(|m| m.starts_with("ALARM rank: step 3: disagrees")),
        "a rank alarm: {:?}",
        seen.1
    );
}

/// A sink that fails at its `fail_at`-th frame.
struct Breaks(u64);

impl Sink for Breaks {
    fn describe(&self) -> String {
        "breaking sink".into()
    }
    fn frame(&mut self, _frame: &Frame, _alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        if self.0 == 0 {
            return Err("disk gone".into());
        }
        self.0 -= 1;
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        Ok("breaking sink".into())
    }
}

/// With `drain_on_failure`, outputs that all failed leave the stream read to its end (whoever
/// writes into it is never blocked); without, the run stops at the failure. The error comes
/// back either way.
#[test]
fn failed_outputs_drain_the_stream_when_asked() {
    for drain in [false, true] {
        let mut outputs = Outputs::new(Box::new(SoundVoice::new(seed())), Vec::new());
        outputs.add_sink(Box::new(Breaks(3)));
        let pulled = Arc::new(Mutex::new(0u64));
        let p = Arc::clone(&pulled);
        let frames = (0..50u64).map(move |s| {
            *p.lock().unwrap() += 1;
            Ok(Frame::new(s).with_value("conv1", 0.5))
        });
        let err = run_frames(frames, None, outputs, &RankOptions::default(), &opts(drain))
            .expect_err("every output failed");
        assert!(err.to_string().contains("disk gone"), "{err}");
        let pulled = *pulled.lock().unwrap();
        if drain {
            assert_eq!(pulled, 50, "read to the end");
        } else {
            assert_eq!(pulled, 4, "stopped at the failure");
        }
    }
}

/// A stream without frames leaves the user's files at the output paths as they were, and no
/// temporary file beside them; a stream with frames replaces them.
#[test]
fn existing_files_are_replaced_only_by_data() {
    let dir = TempDir::new("stream-keep");
    std::fs::write(dir.join("run.wav"), b"the user's recording").unwrap();
    std::fs::write(dir.join("run.csv"), b"step,loss\n0,1\n").unwrap();
    let err = run(jsonl("not a frame\n"), &dir, &RankOptions::default()).expect_err("no frames");
    assert!(matches!(err, StreamError::NoFrames(_)), "{err}");
    assert_eq!(
        std::fs::read(dir.join("run.wav")).unwrap(),
        b"the user's recording"
    );
    assert_eq!(
        std::fs::read(dir.join("run.csv")).unwrap(),
        b"step,loss\n0,1\n"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    run(jsonl(&lines(0..3)), &dir, &RankOptions::default()).expect("a clean run");
    assert_eq!(csv_rows(&dir), 3);
    let (_, samples) = read_wav(&dir.join("run.wav")).unwrap();
    assert_eq!(samples.len(), 3 * (2 * 441 + 882));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Nothing is printed: the source's warnings and the alarms reach the outputs' report, and the
/// frame count and a line per output come back.
#[test]
fn messages_go_to_the_report_and_the_summary_comes_back() {
    let dir = TempDir::new("stream-report");
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&said);
    let report: gradtone_frame::Report =
        Arc::new(move |m: &str| log.lock().unwrap().push(m.into()));
    let text = format!(
        "{}not a frame\n{}",
        lines(0..2),
        "{\"step\":2,\"values\":{\"conv1\":\"nan\",\"fc1\":0.25},\"losses\":{\"loss\":2.0}}\n"
    );
    let finished = run_source(
        jsonl(&text),
        outputs(&dir, report),
        &RankOptions::default(),
        &opts(false),
    )
    .expect("a clean run");
    assert_eq!(finished.frames, 3);
    assert_eq!(finished.lines.len(), 2, "{:?}", finished.lines);
    assert!(finished.lines[0].starts_with(&dir.join("run.wav").display().to_string()));
    let said = said.lock().unwrap();
    assert!(said.iter().any(|m| m.starts_with("warning: ")), "{said:?}");
    assert!(said.iter().any(|m| m.starts_with("alarm: ")), "{said:?}");
    assert!(said.iter().all(|m| !m.ends_with('\n')), "{said:?}");
}
