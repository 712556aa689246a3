//! The pipeline's contract: sinks are independent, a failure keeps the other outputs, and an
//! unfinished run leaves nothing that passes for a result.

use std::sync::{Arc, Mutex};

use gradtone_csv::CsvArgs;
use gradtone_export::MidiArgs;
use gradtone_frame::Output;
use gradtone_frame::{AlarmEvent, AlarmKind, Frame, Sink, SinkError, Watch};
use gradtone_pipeline::{Outputs, PipelineError};
use gradtone_plot::PlotArgs;
use gradtone_sound::mapping::MappingKind;
use gradtone_sound::wav::read_wav;
use gradtone_sound::{SoundArgs, SoundConfig, SoundVoice, WavArgs};

/// Outputs sounding `config`, into `sinks`.
fn with_sinks(config: SoundConfig, sinks: Vec<Box<dyn Sink>>) -> Outputs {
    Outputs::new(Box::new(SoundVoice::new(config)), sinks)
}
use gradtone_tensorboard::TensorBoardArgs;
use gradtone_testkit::TempDir;

/// What a test sink saw.
#[derive(Default)]
struct Seen {
    audio_samples: usize,
    samples: Vec<f32>,
    frames: Vec<u64>,
    alarms: usize,
    messages: Vec<String>,
    parts: Vec<String>,
    finished: bool,
    discarded: bool,
}

/// A sink that records what it gets and fails at frame `fail_at` (if any).
struct Probe {
    seen: Arc<Mutex<Seen>>,
    fail_at: Option<u64>,
    essential: bool,
}

fn probe(fail_at: Option<u64>, essential: bool) -> (Box<dyn Sink>, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = Probe {
        seen: Arc::clone(&seen),
        fail_at,
        essential,
    };
    (Box::new(sink), seen)
}

impl Sink for Probe {
    fn describe(&self) -> String {
        "probe".into()
    }
    fn audio(&mut self, _step: u64, samples: &[f32]) -> Result<(), SinkError> {
        let mut s = self.seen.lock().unwrap();
        s.audio_samples += samples.len();
        s.samples.extend_from_slice(samples);
        Ok(())
    }
    fn frame(&mut self, frame: &Frame, alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        if self.fail_at == Some(frame.step) {
            return Err("disk full".into());
        }
        let mut s = self.seen.lock().unwrap();
        s.frames.push(frame.step);
        s.alarms += alarms.len();
        s.messages.extend(alarms.iter().map(|a| a.message.clone()));
        Ok(())
    }
    fn part(&mut self, _step: u64, label: &str) {
        self.seen.lock().unwrap().parts.push(label.into());
    }
    fn essential(&self) -> bool {
        self.essential
    }
    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        self.seen.lock().unwrap().finished = true;
        Ok("probe done".into())
    }
    fn discard(self: Box<Self>) {
        self.seen.lock().unwrap().discarded = true;
    }
}

fn frame(step: u64, norm: f64) -> Frame {
    Frame::new(step)
        .with_loss("loss", 2.0)
        .with_value("conv1", norm)
        .with_value("fc1", norm / 2.0)
}

/// The sound configuration of `--mapping NAME`.
fn config(mapping: MappingKind) -> SoundConfig {
    let sound = SoundArgs {
        mapping: Some(mapping),
        ..SoundArgs::default()
    };
    sound.config().unwrap()
}

fn open(
    config: SoundConfig,
    outputs: &[&dyn Output<SoundConfig>],
) -> Result<Outputs, PipelineError> {
    let stop = Arc::default();
    let voice = Box::new(SoundVoice::new(config.clone()));
    Outputs::open(
        voice,
        &config,
        outputs,
        "test",
        gradtone_frame::silent_report(),
        &stop,
    )
}

/// The seed mapping into `run.wav` and `run.csv` in `dir`.
fn seed_outputs(dir: &TempDir) -> Outputs {
    let wav = WavArgs {
        wav: Some(dir.join("run.wav")),
        ..WavArgs::default()
    };
    let csv = CsvArgs {
        csv: Some(dir.join("run.csv")),
    };
    open(config(MappingKind::Seed), &[&wav, &csv]).unwrap()
}

#[test]
fn a_failing_sink_leaves_the_others_complete() {
    let dir = TempDir::new("pipeline-fail-one");
    let mut out = seed_outputs(&dir);
    let (bad, bad_seen) = probe(Some(3), true);
    let (good, good_seen) = probe(None, true);
    out.add_sink(bad);
    out.add_sink(good);
    for step in 0..10 {
        out.push(&frame(step, 0.5)).expect("the other sinks go on");
    }
    let err = out
        .finish()
        .expect_err("a failed essential sink fails the run");
    let PipelineError::SomeFailed { failed, finished } = &err else {
        panic!("unexpected error {err}");
    };
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("disk full"), "{failed:?}");
    assert_eq!(
        finished.len(),
        3,
        "WAV, CSV and the good probe: {finished:?}"
    );
    let bad = bad_seen.lock().unwrap();
    assert!(bad.discarded && !bad.finished);
    assert_eq!(bad.frames, vec![0, 1, 2]);
    let good = good_seen.lock().unwrap();
    assert!(good.finished && !good.discarded);
    assert_eq!(good.frames, (0..10).collect::<Vec<_>>());
    // The files were finished, not deleted: 10 steps of the seed sound (2 layers × 441 + 882).
    let (_, samples) = read_wav(&dir.join("run.wav")).unwrap();
    assert_eq!(samples.len(), 10 * (2 * 441 + 882));
    assert_eq!(good.audio_samples, samples.len());
    let csv = std::fs::read_to_string(dir.join("run.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11, "header + 10 rows:\n{csv}");
}

#[test]
fn when_every_essential_sink_failed_push_stops_the_run() {
    let (a, _) = probe(Some(2), true);
    let (speakers, speakers_seen) = probe(None, false);
    let config = SoundArgs::default().config().unwrap();
    let mut out = with_sinks(config, vec![a, speakers]);
    out.push(&frame(0, 0.5)).unwrap();
    out.push(&frame(1, 0.5)).unwrap();
    let err = out
        .push(&frame(2, 0.5))
        .expect_err("nothing essential left");
    assert!(matches!(err, PipelineError::AllFailed { .. }), "{err}");
    drop(out);
    assert!(speakers_seen.lock().unwrap().discarded);
}

#[test]
fn dropping_an_unfinished_run_discards_partial_files() {
    let dir = TempDir::new("pipeline-drop");
    let (p, seen) = probe(None, true);
    {
        let mut out = seed_outputs(&dir);
        out.add_sink(p);
        out.push(&frame(0, 0.5)).unwrap();
        assert!(dir.join("run.wav").exists() && dir.join("run.csv").exists());
    }
    assert!(
        !dir.join("run.wav").exists(),
        "a partial WAV must not pass for a result"
    );
    assert!(!dir.join("run.csv").exists());
    assert!(seen.lock().unwrap().discarded);
}

#[test]
fn parts_reach_every_sink_and_alarms_come_with_their_frame() {
    let (p, seen) = probe(None, true);
    let config = SoundArgs::default().config().unwrap();
    let mut out = with_sinks(config, vec![p]);
    out.begin_part(0, "w=0.1", 0).unwrap();
    let mut fired = 0;
    for step in 0..5 {
        let norm = if step == 3 { f64::NAN } else { 0.5 };
        fired += out.push(&frame(step, norm)).unwrap().len();
    }
    assert!(fired >= 1, "a NaN norm raises an alarm");
    out.finish().unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(s.parts, vec!["w=0.1".to_string()]);
    assert_eq!(
        s.alarms, fired,
        "the sink gets the same alarms the console does"
    );
    assert!(s.audio_samples > 0);
}

#[test]
fn a_missing_folder_fails_before_any_work() {
    let dir = TempDir::new("pipeline-folder");
    let plot = PlotArgs {
        plot: Some(dir.join("no/such/folder/p.png")),
    };
    let wav = WavArgs {
        wav: Some(dir.join("ok.wav")),
        ..WavArgs::default()
    };
    let err = open(config(MappingKind::Seed), &[&wav, &plot])
        .err()
        .expect("no folder");
    assert!(
        !dir.join("ok.wav").exists(),
        "nothing is made before every output is checked"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no file beside it either"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("no/such/folder") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn precheck_names_the_output_that_cannot_be_written() {
    let dir = TempDir::new("pipeline-precheck");
    std::fs::write(dir.join("file"), b"x").unwrap();
    let check = |o: &dyn Output<SoundConfig>| o.precheck().map_err(|e| e.to_string());
    let wav = WavArgs {
        wav: Some(dir.join("ok.wav")),
        ..WavArgs::default()
    };
    let tb = |d: &str| TensorBoardArgs {
        tensorboard: Some(dir.join(d)),
    };
    assert_eq!(check(&wav), Ok(()));
    assert_eq!(check(&tb("tb")), Ok(()));
    let err = check(&CsvArgs {
        csv: Some(dir.path().to_path_buf()),
    })
    .unwrap_err();
    assert!(err.starts_with("cannot write the CSV file ") && err.ends_with(": it is a folder"));
    let err = check(&MidiArgs {
        midi: Some(dir.join("no/such/folder/x.mid")),
    })
    .unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
    let err = check(&tb("file")).unwrap_err();
    assert!(err.ends_with("it is a file, not a folder"), "{err}");
    assert!(!dir.join("ok.wav").exists(), "a precheck creates nothing");
}

/// A watch that fires a collapse alarm at step `at`, and records every step it judged.
struct ProbeWatch {
    at: u64,
    judged: Arc<Mutex<Vec<u64>>>,
}

impl Watch for ProbeWatch {
    fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        self.judged.lock().unwrap().push(frame.step);
        if frame.step == self.at {
            vec![AlarmEvent::new(frame.step, AlarmKind::Collapse, "probe")]
        } else {
            Vec::new()
        }
    }
}

/// Five steps of the seed mapping with its earcons on (a NaN at step 2 fires the gradient
/// detector), with or without a probe watch; what the sink saw, what `push` returned, and the
/// steps the watch judged.
fn watched_run(watch: bool, enabled: bool) -> (Seen, Vec<String>, Vec<u64>) {
    let sound = SoundArgs {
        mapping: Some(MappingKind::Seed),
        alarm_sounds: true,
        ..SoundArgs::default()
    };
    let mut config = sound.config().unwrap();
    config.alarms.enabled = enabled;
    let (p, seen) = probe(None, true);
    let mut out = with_sinks(config, vec![p]);
    let judged = Arc::new(Mutex::new(Vec::new()));
    if watch {
        out.add_watch(Box::new(ProbeWatch {
            at: 2,
            judged: Arc::clone(&judged),
        }));
    }
    let mut returned = Vec::new();
    for step in 0..5 {
        let norm = if step == 2 { f64::NAN } else { 0.5 };
        returned.extend(
            out.push(&frame(step, norm))
                .unwrap()
                .into_iter()
                .map(|a| a.message),
        );
    }
    out.finish().unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let judged = judged.lock().unwrap().clone();
    (seen, returned, judged)
}

#[test]
fn an_added_watch_judges_every_frame_and_its_alarms_reach_the_sinks_and_the_audio() {
    let (plain, plain_returned, _) = watched_run(false, true);
    let (watched, returned, judged) = watched_run(true, true);
    assert_eq!(judged, [0, 1, 2, 3, 4]);
    assert_eq!(plain_returned.len(), 1, "the NaN: {plain_returned:?}");
    assert!(plain_returned[0].starts_with("step 2: ALARM non_finite"));
    // The added watch's alarm first, then the gradient detector's; the sink gets the same.
    assert_eq!(returned.len(), 2, "{returned:?}");
    assert_eq!(returned[0], "step 2: ALARM collapse: probe");
    assert_eq!(returned[1], plain_returned[0]);
    assert_eq!(watched.messages, returned);
    // The audio: the same up to step 2, where the collapse trill sounds before the siren.
    let step_len = 2 * 441 + 882;
    let at = 2 * step_len;
    assert_eq!(plain.samples[..at], watched.samples[..at]);
    assert_ne!(
        plain.samples[at..at + step_len],
        watched.samples[at..at + step_len]
    );
    assert!(
        watched.samples.len() > plain.samples.len(),
        "two earcons ring longer"
    );
    assert!(watched.samples.iter().all(|x| x.abs() <= 1.0));

    // Alarms off: the watch still sees every frame, but nothing is reported or sounded.
    let (quiet, quiet_returned, judged) = watched_run(true, false);
    let (bare, _, _) = watched_run(false, false);
    assert_eq!(judged, [0, 1, 2, 3, 4]);
    assert!(quiet_returned.is_empty() && quiet.messages.is_empty());
    assert_eq!(quiet.samples, bare.samples);
}

#[test]
fn a_new_part_drops_the_watches_added_for_the_last() {
    let config = SoundArgs::default().config().unwrap();
    let mut out = with_sinks(config, Vec::new());
    let judged = Arc::new(Mutex::new(Vec::new()));
    out.add_watch(Box::new(ProbeWatch {
        at: 1,
        judged: Arc::clone(&judged),
    }));
    assert_eq!(out.push(&frame(0, 0.5)).unwrap().len(), 0);
    assert_eq!(out.push(&frame(1, 0.5)).unwrap().len(), 1);
    out.begin_part(1, "next", 2).unwrap();
    assert!(
        out.push(&frame(1, 0.5)).unwrap().is_empty(),
        "the probe is gone"
    );
    assert_eq!(*judged.lock().unwrap(), [0, 1]);
    out.discard();
}
