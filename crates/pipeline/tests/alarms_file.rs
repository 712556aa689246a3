//! `--alarms FILE`: every alarm event as a line of JSON, read back; the same alarms as text in
//! the TensorBoard log; and the file rules (nothing touched before the first frame, a healthy
//! run leaves an empty file, a run without frames leaves a user's file as it was).

use gradtone_frame::{AlarmEvent, AlarmKind, Frame};
use gradtone_pipeline::alarms_file::event_json;
use gradtone_pipeline::{AlarmsArgs, Outputs, PipelineError};
use gradtone_sound::{SoundArgs, SoundVoice};
use gradtone_tensorboard::TensorBoardArgs;
use gradtone_tensorboard::proto::Value;
use gradtone_tensorboard::{ALARMS_TAG, EventReader, event_files};
use gradtone_testkit::TempDir;
use serde_json::Value as Json;

/// 30 calm steps, a 40× norm spike at step 30 (explosion), a NaN at step 31 (non-finite).
fn troubled(step: u64) -> Frame {
    let norm = match step {
        30 => 40.0,
        31 => f64::NAN,
        _ => 1.0 + 0.05 * (step % 3) as f64,
    };
    Frame::new(step)
        .with_loss("loss", 2.0)
        .with_value("conv1", norm)
        .with_value("fc1", 0.5)
}

/// The seed mapping into the alarms file at `alarms` and, if given, a TensorBoard log `tb`.
fn open(alarms: std::path::PathBuf, tb: Option<std::path::PathBuf>) -> Outputs {
    let sound = SoundArgs {
        mapping: Some(gradtone_sound::mapping::MappingKind::Seed),
        ..SoundArgs::default()
    };
    let alarms = AlarmsArgs {
        alarms: Some(alarms),
    };
    let tb = TensorBoardArgs { tensorboard: tb };
    let stop = std::sync::Arc::default();
    let report = gradtone_frame::silent_report();
    let config = sound.config().unwrap();
    let voice = Box::new(SoundVoice::new(config.clone()));
    Outputs::open(voice, &config, &[&alarms, &tb], "test", report, &stop).unwrap()
}

fn lines(path: &std::path::Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn every_alarm_is_a_json_line_and_a_tensorboard_text() {
    let dir = TempDir::new("alarms-file");
    let path = dir.join("alarms.jsonl");
    let mut out = open(path.clone(), Some(dir.join("tb")));
    let mut fired = Vec::new();
    for step in 0..40 {
        fired.extend(out.push(&troubled(step)).unwrap());
        if step == 20 {
            assert!(
                !path.exists(),
                "renamed into place only when the run completes"
            );
        }
    }
    out.finish().unwrap();
    let got = lines(&path);
    println!("{got:#?}");
    assert_eq!(got.len(), fired.len(), "one line per event");
    let kinds: Vec<(u64, &str)> = got
        .iter()
        .map(|o| (o["step"].as_u64().unwrap(), o["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [(30, "explosion"), (31, "non_finite")]);
    let explosion = &got[0];
    assert_eq!(explosion["layers"][0], "conv1", "the layer that grew most");
    let ratio = explosion["numbers"]["ratio"].as_f64().unwrap();
    assert!(ratio > 10.0, "{explosion}");
    assert!(
        explosion["message"]
            .as_str()
            .unwrap()
            .starts_with("step 30: ALARM explosion")
    );
    // No partial file is left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");

    // TensorBoard: the same alarms as text, one entry per step that fired.
    let mut texts = Vec::new();
    for file in event_files(dir.join("tb")).unwrap() {
        for event in EventReader::open(&file).unwrap() {
            let event = event.unwrap();
            for v in event.summary.iter().flat_map(|s| &s.value) {
                if v.tag != ALARMS_TAG {
                    continue;
                }
                let plugin = v.metadata.as_ref().and_then(|m| m.plugin_data.as_ref());
                assert_eq!(plugin.map(|p| p.plugin_name.as_str()), Some("text"));
                let Some(Value::Tensor(t)) = &v.value else {
                    panic!("text is a string tensor: {v:?}");
                };
                texts.push((
                    event.step,
                    String::from_utf8(t.string_val[0].clone()).unwrap(),
                ));
            }
        }
    }
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0].0, 30);
    assert!(texts[0].1.contains("ALARM explosion"), "{texts:?}");
    assert!(texts[1].1.contains("ALARM non_finite"), "{texts:?}");
}

#[test]
fn a_healthy_run_leaves_an_empty_file_and_no_frames_leave_the_old_one() {
    let dir = TempDir::new("alarms-file-empty");
    let path = dir.join("alarms.jsonl");
    std::fs::write(&path, "old\n").unwrap();
    // No frames: the run fails and the user's file is as it was.
    let out = open(path.clone(), None);
    assert!(matches!(out.finish(), Err(PipelineError::NoFrames)));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
    // A healthy run: an empty file (no alarm is a result too).
    let mut out = open(path.clone(), None);
    for step in 0..10 {
        assert!(out.push(&troubled(step)).unwrap().is_empty());
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "old\n",
        "until the end"
    );
    out.finish().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

#[test]
fn non_finite_numbers_are_spelled_as_in_the_stream_format() {
    let e = AlarmEvent::new(7, AlarmKind::Frozen, "weights stopped")
        .with_layers(["fc1", "fc2"])
        .with_number("ratio", f64::INFINITY)
        .with_number("level", f64::NAN)
        .with_number("steps", 5.0);
    let j = event_json(&e);
    assert_eq!(
        j.to_string(),
        r#"{"kind":"frozen","layers":["fc1","fc2"],"message":"step 7: ALARM frozen: weights stopped","numbers":{"level":"nan","ratio":"inf","steps":5.0},"step":7}"#
    );
}
