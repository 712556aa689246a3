//! End-to-end tests of the `gradtone` binary: real processes, real files, real signals.

mod common;
use common::{BIN, gradtone, text};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Samples per step of the seed mapping: 4 layers × 441 + 882 silence.
const STEP_SAMPLES: usize = 4 * 441 + 882;

use gradtone_testkit::TempDir;

/// A failed run: non-zero exit, no panic, a message that contains `needle`.
fn assert_clean_error(o: &Output, needle: &str) {
    let t = text(o);
    assert!(!o.status.success(), "expected failure, got success: {t}");
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(!t.contains("panicked"), "panic: {t}");
    assert!(t.contains(needle), "message lacks {needle:?}: {t}");
}

fn idx_images(n: usize, rows: u32, magic: u32) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    v.extend((n as u32).to_be_bytes());
    v.extend(rows.to_be_bytes());
    v.extend(28u32.to_be_bytes());
    v.extend((0..n * rows as usize * 28).map(|i| (i * 7 % 256) as u8));
    v
}

fn idx_labels(n: usize) -> Vec<u8> {
    let mut v = 0x0801u32.to_be_bytes().to_vec();
    v.extend((n as u32).to_be_bytes());
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A tiny MNIST-shaped folder: `n` train and test images.
fn tiny_mnist(dir: &Path, n: usize) {
    for split in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte.gz")),
            gz(&idx_images(n, 28, 0x0803)),
        )
        .expect("w");
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte.gz")),
            gz(&idx_labels(n)),
        )
        .expect("w");
    }
}

fn train_args<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--data", data, "--no-live", "--mapping", "seed"];
    a.extend_from_slice(extra);
    a
}

#[test]
fn bad_mnist_input_is_a_clear_error_and_leaves_no_output() {
    let t = TempDir::new("cli-bad");
    let wav = t.join("out.wav");
    let wav_s = wav.to_str().expect("utf8");
    type Make = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "truncated gzip",
            Box::new(|d: &Path| {
                tiny_mnist(d, 40);
                let f = d.join("train-images-idx3-ubyte.gz");
                let b = std::fs::read(&f).expect("r");
                std::fs::write(&f, &b[..b.len() / 2]).expect("w");
            }),
            "train-images-idx3-ubyte",
        ),
        (
            "wrong magic",
            Box::new(|d: &Path| {
                tiny_mnist(d, 40);
                std::fs::write(
                    d.join("train-images-idx3-ubyte.gz"),
                    gz(&idx_images(40, 28, 0x0801)),
                )
                .expect("w");
            }),
            "train-images-idx3-ubyte",
        ),
        (
            "count mismatch",
            Box::new(|d: &Path| {
                tiny_mnist(d, 40);
                std::fs::write(d.join("train-labels-idx1-ubyte.gz"), gz(&idx_labels(39)))
                    .expect("w");
            }),
            "train-",
        ),
        (
            "wrong dims",
            Box::new(|d: &Path| {
                tiny_mnist(d, 40);
                std::fs::write(
                    d.join("train-images-idx3-ubyte.gz"),
                    gz(&idx_images(40, 27, 0x0803)),
                )
                .expect("w");
            }),
            "train-images-idx3-ubyte",
        ),
    ];
    for (what, make, needle) in cases {
        let d = t.join(what.replace(' ', "_").as_str());
        std::fs::create_dir_all(&d).expect("dir");
        make(&d);
        let o = gradtone(&train_args(
            d.to_str().expect("utf8"),
            &["--steps", "3", "--wav", wav_s, "--no-eval"],
        ));
        assert_clean_error(&o, needle);
        assert!(!wav.exists(), "{what}: an output file was left behind");
    }
    let missing = t.join("no-such-folder");
    let o = gradtone(&train_args(
        missing.to_str().expect("utf8"),
        &["--steps", "3", "--wav", wav_s],
    ));
    assert_clean_error(&o, "no-such-folder");
    assert!(!wav.exists());
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let t = TempDir::new("cli-unwritable");
    tiny_mnist(t.path(), 30);
    let bad = t.join("missing-dir/out.wav");
    let o = gradtone(&train_args(
        t.path().to_str().expect("utf8"),
        &[
            "--steps",
            "2",
            "--no-eval",
            "--wav",
            bad.to_str().expect("utf8"),
        ],
    ));
    assert_clean_error(&o, "missing-dir");
    let o = gradtone(&train_args(
        t.path().to_str().expect("utf8"),
        &[
            "--steps",
            "2",
            "--no-eval",
            "--csv",
            t.path().to_str().expect("utf8"),
        ],
    ));
    assert_clean_error(&o, "CSV");
}

#[test]
fn train_writes_a_wav_whose_tones_are_the_csv_norms() {
    let t = TempDir::new("cli-train");
    tiny_mnist(t.path(), 200);
    let (wav, csv) = (t.join("run.wav"), t.join("run.csv"));
    let o = gradtone(&train_args(
        t.path().to_str().expect("utf8"),
        &[
            "--steps",
            "12",
            "--batch",
            "10",
            "--wav",
            wav.to_str().expect("utf8"),
            "--csv",
            csv.to_str().expect("utf8"),
        ],
    ));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("test accuracy"), "{}", text(&o));
    let frames = gradtone_csv::read_frames(&csv).expect("csv reads");
    assert_eq!(frames.len(), 12);
    let names: Vec<&str> = frames[0].values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["conv1", "conv2", "fc1", "fc2"]);
    let mut r = hound::WavReader::open(&wav).expect("wav parses");
    assert_eq!(r.spec().sample_rate, 44_100);
    assert_eq!(r.spec().bits_per_sample, 16);
    let s: Vec<f32> = r
        .samples::<i16>()
        .map(|x| x.expect("sample") as f32 / 32767.0)
        .collect();
    assert_eq!(s.len(), 12 * STEP_SAMPLES);
    // Measure the tone of each layer at a few steps: 200 + 100·norm Hz.
    for step in [0usize, 5, 11] {
        for (i, v) in frames[step].values.iter().enumerate() {
            let start = step * STEP_SAMPLES + i * 441;
            let want = 200.0 + 100.0 * v.value;
            let got = gradtone_sound::analysis::dominant_frequency(
                &s[start..start + 441],
                44_100,
                50.0,
                21_000.0,
            );
            assert!(
                (got - want).abs() < 2.0,
                "step {step} {}: {got} Hz vs {want} Hz",
                v.name
            );
        }
        let silence = &s[step * STEP_SAMPLES + 4 * 441..(step + 1) * STEP_SAMPLES];
        assert!(silence.iter().all(|&x| x == 0.0));
    }
}

#[test]
fn render_reproduces_the_reference_wav_and_skips_a_bad_csv_row() {
    let Some(dir) = gradtone_testkit::shared("render_cli", "reference/pytorch") else {
        return;
    };
    let t = TempDir::new("cli-render");
    let out = t.join("r.wav");
    let csv = dir.join("trajectories/sgd_lr0.1_bs10_seed1.csv");
    let o = gradtone(&[
        "render",
        csv.to_str().expect("utf8"),
        "--mapping",
        "seed",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ours: Vec<i16> = hound::WavReader::open(&out)
        .expect("ours")
        .samples::<i16>()
        .map(|s| s.expect("s"))
        .collect();
    let theirs: Vec<i16> = hound::WavReader::open(dir.join("wav/sgd_lr0.1_bs10_seed1.wav"))
        .expect("ref")
        .samples::<i16>()
        .map(|s| s.expect("s"))
        .collect();
    assert_eq!(ours.len(), theirs.len());
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max();
    assert!(worst <= Some(1), "max difference {worst:?} LSB");

    let bad = t.join("bad.csv");
    std::fs::write(&bad, "step,loss,conv1\n0,2.3,0.1\n1,2.2,abc\n").expect("w");
    let out2 = t.join("bad.wav");
    let o = gradtone(&[
        "render",
        bad.to_str().expect("utf8"),
        "-o",
        out2.to_str().expect("utf8"),
    ]);
    // The bad row is skipped and reported; the good step is rendered.
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("bad.csv line 3, column conv1"),
        "{}",
        text(&o)
    );
    assert!(out2.exists(), "the good steps' WAV is kept");
}

#[test]
fn reference_check_passes_and_fails_when_it_should() {
    let Some(dir) = gradtone_testkit::shared("reference_check_cli", "reference/pytorch/exact")
    else {
        return;
    };
    let o = gradtone(&["reference-check", dir.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("PASS"));
    // A copy whose expected fc1 norm is off by 1e-3 must fail.
    let t = TempDir::new("cli-refcheck");
    let copy = t.join("exact");
    std::fs::create_dir_all(copy.join("params")).expect("dir");
    for e in std::fs::read_dir(dir.join("params")).expect("ls") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), copy.join("params").join(e.file_name())).expect("cp");
    }
    for f in ["batch_x.f32", "batch_y.u8", "batch2_x.f32", "batch2_y.u8"] {
        std::fs::copy(dir.join(f), copy.join(f)).expect("cp");
    }
    let json = std::fs::read_to_string(dir.join("expected.json")).expect("json");
    let tampered = json.replacen(
        "\"fc1\": 1.1718508810817863",
        "\"fc1\": 1.1730227319628681",
        1,
    );
    assert_ne!(json, tampered, "fixture changed: update the tampered value");
    std::fs::write(copy.join("expected.json"), tampered).expect("w");
    let o = gradtone(&["reference-check", copy.to_str().expect("utf8")]);
    assert_clean_error(&o, "FAIL");
}

/// Ctrl-C finishes the step, finalises the WAV and CSV, and exits 0; SIGKILL leaves a WAV that
/// still parses up to its last header update.
#[test]
fn interrupted_runs_keep_their_sound() {
    let Some(data) = gradtone_testkit::shared("signals", "data/mnist-20k") else {
        return;
    };
    let t = TempDir::new("cli-signals");
    for (sig, name) in [("INT", "int"), ("KILL", "kill")] {
        let (wav, csv) = (
            t.join(&format!("{name}.wav")),
            t.join(&format!("{name}.csv")),
        );
        let child = Command::new(BIN)
            .args([
                "train",
                "--no-live",
                "--no-eval",
                "--mapping",
                "seed",
                "--steps",
                "0",
                "--epochs",
                "50",
            ])
            .args(["--data", data.to_str().expect("utf8")])
            .args([
                "--wav",
                wav.to_str().expect("utf8"),
                "--csv",
                csv.to_str().expect("utf8"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Wait until a few header updates have happened (the WAV grows past 1 s of audio).
        let t0 = Instant::now();
        while std::fs::metadata(&wav).map(|m| m.len()).unwrap_or(0) < 200_000
            && t0.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let out = child.wait_with_output().expect("wait");
        let log = text(&out);
        let r = hound::WavReader::open(&wav)
            .unwrap_or_else(|e| panic!("{sig}: WAV does not parse: {e}"));
        let n = r.len() as usize;
        let samples: Vec<i16> = r
            .into_samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(samples.len(), n);
        assert!(n >= 44_100, "{sig}: only {n} samples");
        if sig == "INT" {
            assert!(out.status.success(), "SIGINT exit: {log}");
            assert!(log.contains("interrupted after"), "{log}");
            let rows = gradtone_csv::read_frames(&csv).expect("csv parses").len();
            assert_eq!(
                n,
                rows * STEP_SAMPLES,
                "WAV holds exactly the steps in the CSV"
            );
        } else {
            assert!(!out.status.success());
        }
        if Command::new("sox").arg("--version").output().is_ok() {
            let o = Command::new("sox")
                .args(["--i", "-s", wav.to_str().expect("utf8")])
                .output()
                .expect("sox");
            assert!(
                o.status.success(),
                "sox --i rejects the {sig} WAV: {}",
                text(&o)
            );
            let sox_n: usize = String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("sox prints a sample count");
            assert_eq!(sox_n, n);
        } else {
            eprintln!("*** sox not installed: checked the {sig} WAV with hound only ***");
        }
    }
}
