//! Several weighted losses, end to end on real MNIST: `train --model gan` (three instruments,
//! generated digits, diagnostics), `train --loss-weights l2=…` (two instruments), and `sweep`
//! (one WAV of several weights, pings between them, a table whose ratio follows the weight).

mod common;
use common::{gradtone, text};
use gradtone_testkit::TempDir;
use std::path::Path;

/// Stereo samples per step of the `cents` mapping: 80 ms at 44.1 kHz, two channels.
const STEP: usize = 2 * 3528;

fn mnist(test: &str) -> Option<String> {
    gradtone_testkit::shared(test, "data/mnist-20k").map(|p| p.to_string_lossy().into_owned())
}

/// Width, height and colour type from a PNG's IHDR chunk.
fn png_header(path: &Path) -> (u32, u32, u8) {
    let b = std::fs::read(path).expect("png exists");
    assert_eq!(&b[1..4], b"PNG", "{}", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20), b[25])
}

fn wav(path: &Path) -> (hound::WavSpec, Vec<f32>) {
    let mut r = hound::WavReader::open(path).expect("wav parses");
    let spec = r.spec();
    let s = r
        .samples::<i16>()
        .map(|x| f32::from(x.expect("sample")) / 32767.0)
        .collect();
    (spec, s)
}

fn failure(o: &std::process::Output, needle: &str) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(t.contains(needle), "message lacks {needle:?}: {t}");
}

#[test]
fn gan_train_writes_three_instruments_digits_and_diagnostics() {
    let Some(data) = mnist("gan_train") else {
        return;
    };
    let t = TempDir::new("cli-gan");
    let p = |n: &str| t.join(n).to_string_lossy().into_owned();
    let o = gradtone(&[
        "train",
        "--model",
        "gan",
        "--steps",
        "40",
        "--batch",
        "16",
        "--no-live",
        "--data",
        &data,
        "--wav",
        &p("gan.wav"),
        "--csv",
        &p("gan.csv"),
        "--samples",
        &p("digits.png"),
        "--diagnostics",
        &p("diag.csv"),
        "--plot",
        &p("norms.png"),
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("40 GAN steps") && out.contains("D(real)"),
        "{out}"
    );

    let frames = gradtone_csv::read_frames(&t.join("gan.csv")).expect("csv reads");
    assert_eq!(frames.len(), 40);
    let names: Vec<&str> = frames[0].values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "d_real/D.fc1",
            "d_real/D.fc2",
            "d_real/D.fc3",
            "d_fake/D.fc1",
            "d_fake/D.fc2",
            "d_fake/D.fc3",
            "g_adv/G.fc1",
            "g_adv/G.fc2",
            "g_adv/G.fc3"
        ]
    );
    let losses: Vec<&str> = frames[0].losses.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(losses, ["loss_d_real", "loss_d_fake", "loss_g_adv"]);
    assert!(
        frames
            .iter()
            .flat_map(|f| &f.values)
            .all(|v| v.value.is_finite() && v.value > 0.0)
    );
    // At the start both discriminator losses sit near ln 2 (it cannot tell yet).
    for l in &frames[0].losses[..2] {
        assert!(
            (l.value - 2f64.ln()).abs() < 0.35,
            "{} = {}",
            l.name,
            l.value
        );
    }

    // Sound: 40 steps of stereo cents chords; the instruments sit left (d_real) to right
    // (g_adv), so the channels differ.
    let (spec, s) = wav(&t.join("gan.wav"));
    assert_eq!((spec.channels, spec.sample_rate), (2, 44_100));
    assert!(
        s.len() >= 40 * STEP && s.len() < 40 * STEP + 2 * 44_100,
        "{}",
        s.len()
    );
    let step = &s[10 * STEP..11 * STEP];
    let (l, r): (Vec<f32>, Vec<f32>) = (
        step.iter().step_by(2).copied().collect(),
        step.iter().skip(1).step_by(2).copied().collect(),
    );
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    assert!(rms(&l) > 0.01 && rms(&r) > 0.01);
    let diff: Vec<f32> = l.iter().zip(&r).map(|(a, b)| a - b).collect();
    assert!(rms(&diff) > 0.1 * rms(&l), "stereo field used");
    assert!(s.iter().all(|v| v.abs() <= 1.0));

    // Digits: an 8×8 grid of 28×28 at 2×; progress: 10 codes every 4 steps (10 rows) + the end.
    assert_eq!(png_header(&t.join("digits.png")), (466, 466, 0));
    assert_eq!(
        png_header(&t.join("digits-progress.png")),
        (582, 11 * 58 + 2, 0)
    );
    assert_eq!(
        png_header(&t.join("norms.png")).2,
        2,
        "the norms plot is RGB"
    );

    let diag = std::fs::read_to_string(t.join("diag.csv")).expect("diagnostics");
    let mut lines = diag.lines();
    assert_eq!(
        lines.next(),
        Some("step,p_real,p_fake,diversity,d_total/D.fc1,d_total/D.fc2,d_total/D.fc3")
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|x| x.parse().expect("number")).collect())
        .collect();
    assert_eq!(rows.len(), 40);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0] as usize, i);
        assert!(
            (0.0..=1.0).contains(&r[1]) && (0.0..=1.0).contains(&r[2]),
            "{r:?}"
        );
        assert!(r[3] > 0.0 && r[4..].iter().all(|v| *v > 0.0));
        // The total's norm is at most the sum of the two terms' (triangle inequality).
        let f = &frames[i];
        for k in 0..3 {
            assert!(r[4 + k] <= (f.values[k].value + f.values[3 + k].value) * (1.0 + 1e-5));
        }
    }
}

#[test]
fn loss_weight_flags_fail_clearly() {
    let o = gradtone(&["train", "--model", "gan", "--optim", "adam", "--no-live"]);
    failure(&o, "--optim does not apply to --model gan");
    let o = gradtone(&[
        "train",
        "--model",
        "gan",
        "--loss-weights",
        "bogus=1",
        "--no-live",
    ]);
    failure(&o, "d_real, d_fake, g_adv");
    let o = gradtone(&["train", "--loss-weights", "d_real=2", "--no-live"]);
    failure(&o, "the cnn has the terms nll and l2");
    let o = gradtone(&["train", "--loss-weights", "l2=x"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects it: {}", text(&o));
    assert!(text(&o).contains("not a number"), "{}", text(&o));
    let o = gradtone(&[
        "sweep", "--model", "gan", "--term", "g_adv", "--out", "/tmp/x",
    ]);
    failure(&o, "d_real or d_fake");
    let o = gradtone(&["sweep", "--weights", "0,0.1", "--out", "/tmp/x"]);
    failure(&o, "finite and > 0");
}

#[test]
fn l2_term_trains_as_a_second_instrument() {
    let Some(data) = mnist("l2_train") else {
        return;
    };
    let t = TempDir::new("cli-l2");
    let csv = t.join("run.csv").to_string_lossy().into_owned();
    let o = gradtone(&[
        "train",
        "--loss-weights",
        "l2=0.01",
        "--steps",
        "8",
        "--no-live",
        "--no-eval",
        "--data",
        &data,
        "--csv",
        &csv,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let frames = gradtone_csv::read_frames(Path::new(&csv)).expect("csv");
    assert_eq!(frames.len(), 8);
    let names: Vec<&str> = frames[0].values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "nll/conv1",
            "nll/conv2",
            "nll/fc1",
            "nll/fc2",
            "l2/conv1",
            "l2/conv2",
            "l2/fc1",
            "l2/fc2"
        ]
    );
    for f in &frames {
        let l: Vec<f64> = f.losses.iter().map(|l| l.value).collect();
        assert_eq!(f.losses[1].name, "loss_nll");
        assert!((l[0] - (l[1] + l[2])).abs() < 1e-5 * l[0], "{l:?}");
    }
}

#[test]
fn sweep_renders_each_weight_after_its_pings_and_tabulates_the_balance() {
    let Some(data) = mnist("sweep") else {
        return;
    };
    let t = TempDir::new("cli-sweep");
    let out = t.path().to_string_lossy().into_owned();
    let o = gradtone(&[
        "sweep",
        "--weights",
        "0.001,0.1",
        "--steps",
        "15",
        "--out",
        &out,
        "--data",
        &data,
    ]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    let md = std::fs::read_to_string(t.join("sweep.md")).expect("table");
    let rows: Vec<Vec<String>> = md
        .lines()
        .filter(|l| l.starts_with("| 1 ") || l.starts_with("| 2 "))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{md}");
    // | # | weight | steps | ratio | late | late NLL | test acc |
    assert_eq!(rows[0][3], "0–14");
    assert_eq!(rows[1][3], "15–29");
    let ratio = |r: &Vec<String>| r[4].parse::<f64>().expect("ratio");
    let (a, b) = (ratio(&rows[0]), ratio(&rows[1]));
    // ‖∇(λ‖W‖²)‖ = 2λ‖W‖: 100× the weight is about 100× the ratio (the NLL's norm moves a bit).
    assert!(b / a > 30.0 && b / a < 300.0, "ratios {a} → {b}");
    let acc: f64 = rows[0][7].parse().expect("accuracy");
    assert!((0.0..=1.0).contains(&acc));

    let frames = gradtone_csv::read_frames(&t.join("sweep.csv")).expect("csv");
    assert_eq!(frames.len(), 30);
    assert_eq!(frames[15].step, 15);
    assert_eq!(png_header(&t.join("sweep.png")).2, 2);

    // Sound: part k = k pings (60 ms, 50 ms apart) + 300 ms silence + 15 steps.
    let (spec, s) = wav(&t.join("sweep.wav"));
    assert_eq!(spec.channels, 2);
    let ms = |m: usize| m * 441 / 10;
    let part1 = ms(60) + ms(300) + 15 * 3528;
    let part2 = ms(60) * 2 + ms(50) + ms(300) + 15 * 3528;
    assert!(s.len() >= 2 * (part1 + part2), "{} samples", s.len());
    let left = |from: usize, len: usize| -> Vec<f32> {
        s[2 * from..2 * (from + len)]
            .iter()
            .step_by(2)
            .copied()
            .collect()
    };
    let ping =
        |from: usize| gradtone_sound::analysis::goertzel_power(&left(from, ms(60)), 44_100, 1760.0);
    let second = ms(60) + ms(50);
    let (p1_first, p1_second) = (ping(0), ping(second));
    let (p2_first, p2_second) = (ping(part1), ping(part1 + second));
    println!(
        "ping power: part 1 {p1_first:.3e} {p1_second:.3e}; part 2 {p2_first:.3e} {p2_second:.3e}"
    );
    assert!(p1_first > 1e3 * p1_second.max(1e-12), "part 1: one ping");
    assert!(
        p2_first > 1e-3 && p2_second > 0.3 * p2_first,
        "part 2: two pings"
    );
}
