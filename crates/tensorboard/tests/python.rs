//! Interop with TensorBoard's own Python code (`pip install tensorboard`; no TensorFlow).
//!
//! Each test runs a script from `tests/py/` with `python3` when `import tensorboard` works,
//! and otherwise prints a loud SKIPPED line, or fails when `GRADTONE_REQUIRE_PY=1`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{sine, temp_dir};
use gradtone_tensorboard::{AudioFormat, EventWriter, read_scalars};

/// Whether `python3 -c "import tensorboard"` works; skips loudly (or panics under
/// `GRADTONE_REQUIRE_PY=1`) when it does not.
fn python_with_tensorboard(test: &str) -> bool {
    let ok = gradtone_testkit::runs("python3", &["-c", "import tensorboard, numpy"]);
    let hint = "python3 cannot import tensorboard (pip install tensorboard)";
    gradtone_testkit::require(test, "PY", ok, hint)
}

fn run_script(script: &str, args: &[&Path]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    eprintln!("{text}");
    text
}

#[test]
fn tensorboard_reads_our_scalars_and_audio() {
    if !python_with_tensorboard("tensorboard_reads_our_scalars_and_audio") {
        return;
    }
    let dir = temp_dir("py-ours");
    let logdir = dir.join("run");
    let mut w = EventWriter::create(&logdir).unwrap();
    let mut scalars = serde_json::Map::new();
    for tag in ["grad/conv1", "grad/fc2", "loss"] {
        let mut pts = Vec::new();
        for step in (0..200u64).step_by(7) {
            let v = (step as f32 * 0.37).sin() * if tag == "loss" { 2.0 } else { 0.1 };
            w.add_scalar(tag, step, v, 1e9 + step as f64).unwrap();
            pts.push(serde_json::json!([step, v]));
        }
        scalars.insert(tag.to_owned(), pts.into());
    }
    // Three clips of 0.3 s, 16 kHz stereo (600 Hz left, 300 Hz right).
    let (rate, frames) = (16_000u32, 4_800usize);
    let (l, r) = (
        sine(600.0, 0.5, rate, frames),
        sine(300.0, 0.5, rate, frames),
    );
    let stereo: Vec<f32> = l.iter().zip(&r).flat_map(|(a, b)| [*a, *b]).collect();
    for step in [10, 20, 30] {
        w.add_audio("sound/train", step, &stereo, rate, 2, 1e9)
            .unwrap();
    }
    w.finish().unwrap();
    // A second file in the same run, TF2 layout: 2 mono clips of 0.1 s at 8 kHz, 1 kHz.
    let mut t = EventWriter::create(&logdir)
        .unwrap()
        .with_audio_format(AudioFormat::Tensor);
    for step in [5, 15] {
        t.add_audio(
            "sound/tensor",
            step,
            &sine(1000.0, 0.5, 8000, 800),
            8000,
            1,
            1e9,
        )
        .unwrap();
    }
    // The alarms as text (two entries, one with two paragraphs).
    let texts = [
        (
            12u64,
            "step 12: ALARM explosion: total 9.1 is 12× its running median",
        ),
        (
            40,
            "step 40: ALARM non_finite: non-finite fc1 = NaN\n\nstep 40: ALARM frozen: weights stopped",
        ),
    ];
    for (step, text) in texts {
        t.add_text("gradtone/alarms", step, text, 1e9).unwrap();
    }
    t.finish().unwrap();
    let expected = serde_json::json!({
        "text": texts.iter().map(|(s, t)| serde_json::json!({"tag": "gradtone/alarms", "step": s, "text": t})).collect::<Vec<_>>(),
        "scalars": scalars,
        "audio": [
            {"tag": "sound/train", "format": "legacy", "count": 3, "sample_rate": rate,
             "channels": 2, "length_frames": frames, "freq": 600.0},
            {"tag": "sound/tensor", "format": "tensor", "count": 2, "sample_rate": 8000,
             "channels": 1, "length_frames": 800, "freq": 1000.0},
        ],
    });
    let exp_path = dir.join("expected.json");
    std::fs::write(&exp_path, expected.to_string()).unwrap();

    let out = run_script("read_ours.py", &[&logdir, &exp_path]);
    assert_eq!(out.matches("OK ").count(), 6, "{out}");
    // Our reader ignores both audio layouts when looking for scalars.
    assert_eq!(read_scalars(&logdir, &[]).unwrap().tags.len(), 3);
}

#[test]
fn we_read_tensorboards_own_files() {
    if !python_with_tensorboard("we_read_tensorboards_own_files") {
        return;
    }
    let dir = temp_dir("py-theirs");
    let logdir = dir.join("run");
    let exp_path = dir.join("expected.json");
    run_script("write_theirs.py", &[&logdir, &exp_path]);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&exp_path).unwrap()).unwrap();

    let s = read_scalars(&logdir, &[]).unwrap();
    let mut want_tags: Vec<&str> = expected
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut got_tags: Vec<&str> = s.tags.iter().map(String::as_str).collect();
    want_tags.sort_unstable();
    got_tags.sort_unstable();
    assert_eq!(
        got_tags, want_tags,
        "audio and histogram tags are no scalars"
    );
    for (tag, pts) in expected.as_object().unwrap() {
        let want: Vec<(u64, f64)> = pts
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_u64().unwrap(),
                    p[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(s.series(tag), want, "{tag}");
    }
    // The double keeps its precision (1e-12 would vanish in an f32).
    assert_eq!(s.series("tf2/double")[1].1, 0.1 * 3.0 + 1e-12);

    let frames = read_scalars(&logdir, &["tf2/*"]).unwrap().to_frames();
    assert_eq!(frames.len(), 13, "steps 0..30 by 3 ∪ 0..5");
    assert_eq!(frames[0].values.len(), 3);
    assert!(frames[0].losses.is_empty());
}
