//! Files that used to lose data, hang or fail the whole run: changing value names in the CSV,
//! missing vs NaN, per-rank and `loss_*` names, a bad CSV row mid-file, a damaged TensorBoard
//! record, a runs folder, MNIST folders with no images, a failing sink, doubled causes.

mod common;
use common::{gradtone, text};
use gradtone_testkit::TempDir;
use std::path::Path;
use std::process::Output;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn samples(path: &str) -> Vec<i16> {
    hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", text(o));
    assert!(!text(o).contains("panicked"), "{}", text(o));
}

fn clean_error(o: &Output, needle: &str) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(t.contains(needle), "message lacks {needle:?}: {t}");
}

/// A stream whose names change from frame to frame: a first frame with no values, layers that
/// appear later, alternating sets, values missing from some frames.
fn changing_stream() -> String {
    let mut s = String::from("{\"step\":0,\"values\":{},\"losses\":{\"loss\":2.0}}\n");
    for step in 1..60u32 {
        let x = f64::from(step);
        let mut values = vec![format!("\"conv1\":{}", 0.5 + 0.01 * x)];
        if step >= 10 {
            values.push(format!("\"fc1\":{}", 1.0 / x));
        }
        if step % 2 == 0 {
            values.push(format!("\"a\":{}", 0.1 * x));
        } else {
            values.push(format!("\"b\":{}", 0.2 * x));
        }
        let loss = if step % 7 == 3 {
            String::new()
        } else {
            format!(",\"losses\":{{\"loss\":{}}}", 2.0 - 0.01 * x)
        };
        s.push_str(&format!(
            "{{\"step\":{step},\"values\":{{{}}}{loss}}}\n",
            values.join(",")
        ));
    }
    s
}

/// Every value of a stream whose names change reaches the CSV, missing stays missing (an empty
/// cell, not `nan`), and rendering that CSV sounds exactly like the stream did.
#[test]
fn changing_names_all_reach_the_csv_and_it_renders_to_the_same_sound() {
    let t = TempDir::new("hostile-changing");
    let input = t.join("run.jsonl");
    std::fs::write(&input, changing_stream()).expect("write");
    let (csv, a, b) = (t.arg("run.csv"), t.arg("a.wav"), t.arg("b.wav"));
    ok(&gradtone(&[
        "listen",
        input.to_str().expect("utf8"),
        "--no-live",
        "--csv",
        &csv,
        "--wav",
        &a,
    ]));
    let frames = gradtone_csv::read_frames(Path::new(&csv)).expect("csv reads");
    assert_eq!(frames.len(), 60);
    assert!(frames[0].values.is_empty() && frames[0].loss() == Some(2.0));
    assert_eq!(
        frames[12].value("fc1"),
        Some(1.0 / 12.0),
        "a later layer kept"
    );
    assert_eq!(frames[12].value("a"), Some(0.1 * 12.0));
    assert_eq!(frames[12].value("b"), None, "missing stays missing");
    assert_eq!(frames[13].value("b"), Some(0.2 * 13.0));
    assert_eq!(frames[3].loss(), None, "a missing loss is not NaN");
    let body = std::fs::read_to_string(&csv).expect("csv");
    assert!(!body.contains("nan"), "nothing was NaN: {body}");
    ok(&gradtone(&["render", &csv, "-o", &b]));
    let (sa, sb) = (samples(&a), samples(&b));
    assert!(!sa.is_empty());
    assert!(sa == sb, "render(CSV) differs from the stream's own sound");
}

/// `--merge per-rank` names losses `r0/loss`, and loss terms may be `loss_ce/conv1` values: the
/// CSV takes every such name and reads it back as the same kind.
#[test]
fn per_rank_and_loss_term_names_round_trip_through_the_csv() {
    let t = TempDir::new("hostile-ranks");
    let (csv, wav, png) = (t.arg("r.csv"), t.arg("r.wav"), t.arg("r.png"));
    ok(&gradtone(&[
        "render",
        &fixture("pytorch_ddp_4ranks.jsonl"),
        "--merge",
        "per-rank",
        "--csv",
        &csv,
        "-o",
        &wav,
        "--plot",
        &png,
    ]));
    let frames = gradtone_csv::read_frames(Path::new(&csv)).expect("csv reads");
    assert!(!frames.is_empty());
    let losses: Vec<&str> = frames[0].losses.iter().map(|n| n.name.as_str()).collect();
    assert!(
        losses.contains(&"r0/loss") && losses.contains(&"r3/loss"),
        "{losses:?}"
    );
    assert!(frames[0].values.iter().all(|n| n.name.starts_with('r')));
    assert!(Path::new(&png).exists() && !samples(&wav).is_empty());

    let input = t.join("terms.jsonl");
    std::fs::write(
        &input,
        "{\"step\":0,\"values\":{\"loss_ce/conv1\":0.5,\"loss_l2/conv1\":0.25},\"losses\":{\"loss_ce\":2.0,\"loss_l2\":0.1,\"total\":2.1}}\n\
         {\"step\":1,\"values\":{\"loss_ce/conv1\":0.4,\"loss_l2/conv1\":0.2},\"losses\":{\"loss_ce\":1.9,\"loss_l2\":0.1,\"total\":2.0}}\n",
    )
    .expect("write");
    let csv2 = t.arg("terms.csv");
    ok(&gradtone(&[
        "render",
        input.to_str().expect("utf8"),
        "--csv",
        &csv2,
    ]));
    let frames = gradtone_csv::read_frames(Path::new(&csv2)).expect("csv reads");
    assert_eq!(frames[1].value("loss_ce/conv1"), Some(0.4));
    let losses: Vec<&str> = frames[1].losses.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(losses, ["loss_ce", "loss_l2", "total"]);
}

/// A bad row in the middle of a CSV is skipped and reported with its line; the good steps and
/// the WAV are kept.
#[test]
fn a_bad_csv_row_is_skipped_and_the_rest_rendered() {
    let t = TempDir::new("hostile-badrow");
    let bad = t.join("bad.csv");
    let mut body = String::from("step,loss,conv1\n");
    for step in 0..20 {
        if step == 7 {
            body.push_str("7,2.2,abc\n");
        } else if step == 9 {
            body.push_str("9,1\n");
        } else {
            body.push_str(&format!("{step},2.0,0.{step}\n"));
        }
    }
    std::fs::write(&bad, &body).expect("write");
    let out = t.arg("bad.wav");
    let o = gradtone(&[
        "render",
        bad.to_str().expect("utf8"),
        "--mapping",
        "seed",
        "-o",
        &out,
    ]);
    ok(&o);
    let msg = text(&o);
    assert_eq!(
        msg.matches("bad.csv line 9, column conv1").count(),
        1,
        "{msg}"
    );
    assert_eq!(msg.matches("bad.csv line 11").count(), 1, "{msg}");
    assert!(msg.contains("2 malformed rows skipped"), "{msg}");
    // The seed mapping: 4 × 10 ms... here one value per step: 10 ms tone + 20 ms silence.
    let per_step = 441 + 882;
    assert_eq!(samples(&out).len(), 18 * per_step, "18 good steps sounded");
}

/// A TensorBoard file with a damaged record in the middle: reported with its offset, the rest
/// rendered. A `runs/` folder of two runs renders both, one picks one with `--tags`.
#[test]
fn damaged_tensorboard_and_runs_folders_render() {
    let t = TempDir::new("hostile-tb");
    let runs = t.join("runs");
    for (run, k) in [("a", 1.0f32), ("b", 3.0)] {
        let mut w = gradtone_tensorboard::EventWriter::create(runs.join(run)).expect("tb");
        for step in 0..30u64 {
            w.add_scalar("grad/fc1", step, k * (1.0 + step as f32), 1.0)
                .expect("scalar");
        }
        w.finish().expect("finish");
    }
    let wav = t.arg("runs.wav");
    let o = gradtone(&["render", runs.to_str().expect("utf8"), "-o", &wav]);
    ok(&o);
    assert!(
        text(&o).contains("a/grad/fc1") && text(&o).contains("b/grad/fc1"),
        "{}",
        text(&o)
    );
    let o = gradtone(&[
        "render",
        runs.to_str().expect("utf8"),
        "--tags",
        "b/*",
        "-o",
        &wav,
    ]);
    ok(&o);
    assert!(
        text(&o).contains("1 scalar tags: b/grad/fc1"),
        "{}",
        text(&o)
    );

    // Damage the length of a record in the middle of run a's file.
    let file = gradtone_tensorboard::event_files(runs.join("a")).expect("files")[0].clone();
    let mut bytes = std::fs::read(&file).expect("read");
    let mut at = 0usize;
    for _ in 0..10 {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8")) as usize;
        at += 12 + len + 4;
    }
    bytes[at + 2] ^= 0x10;
    std::fs::write(&file, &bytes).expect("write");
    let o = gradtone(&["render", file.to_str().expect("utf8"), "-o", &wav]);
    ok(&o);
    let msg = text(&o);
    assert!(
        msg.contains(&format!("record at byte {at} is damaged")),
        "{msg}"
    );
    assert!(msg.contains("1 damaged record(s) skipped"), "{msg}");
    assert!(msg.contains("29 frames"), "{msg}");
}

/// MNIST folders that give no training step end at once with a clear error, and no WAV.
#[test]
fn mnist_without_steps_is_a_clear_error_not_a_hang() {
    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }
    for (name, n, batch) in [("zero", 0u32, "10"), ("small", 5, "10")] {
        let t = TempDir::new(&format!("hostile-mnist-{name}"));
        let data = t.join("mnist");
        std::fs::create_dir_all(&data).expect("dir");
        for split in ["train", "t10k"] {
            let pixels = vec![7u8; n as usize * 784];
            std::fs::write(
                data.join(format!("{split}-images-idx3-ubyte")),
                idx(&[n, 28, 28], &pixels),
            )
            .expect("w");
            std::fs::write(
                data.join(format!("{split}-labels-idx1-ubyte")),
                idx(&[n], &vec![3u8; n as usize]),
            )
            .expect("w");
        }
        let wav = t.join("run.wav");
        let o = gradtone(&[
            "train",
            "--data",
            data.to_str().expect("utf8"),
            "--batch",
            batch,
            "--epochs",
            "1",
            "--no-live",
            "--wav",
            wav.to_str().expect("utf8"),
        ]);
        clean_error(
            &o,
            if n == 0 {
                "zero images"
            } else {
                "zero training steps"
            },
        );
        assert!(!wav.exists(), "{name}: an empty WAV was left");
    }
}

/// An input with no frame at all is an error and leaves no empty files.
#[test]
fn an_input_without_frames_is_an_error_and_leaves_nothing() {
    let t = TempDir::new("hostile-empty");
    let input = t.join("empty.jsonl");
    std::fs::write(&input, "not json\n\n").expect("write");
    let (wav, csv) = (t.join("e.wav"), t.join("e.csv"));
    let o = gradtone(&[
        "render",
        input.to_str().expect("utf8"),
        "-o",
        wav.to_str().expect("utf8"),
        "--csv",
        csv.to_str().expect("utf8"),
    ]);
    clean_error(&o, "no frames");
    assert!(!wav.exists() && !csv.exists(), "empty outputs left behind");
}

/// One sink failing (a full disk: /dev/full) is reported; the other outputs are finalised and
/// kept, and the run exits non-zero naming the failed one.
#[cfg(target_os = "linux")]
#[test]
fn a_failing_sink_keeps_the_other_outputs() {
    let t = TempDir::new("hostile-sink");
    let (wav, png) = (t.arg("k.wav"), t.arg("k.png"));
    let o = gradtone(&[
        "render",
        &fixture("pytorch_mnist_seed.jsonl"),
        "--csv",
        "/dev/full",
        "-o",
        &wav,
        "--plot",
        &png,
    ]);
    clean_error(&o, "/dev/full");
    let msg = text(&o);
    assert!(msg.contains("kept:") && msg.contains("k.wav"), "{msg}");
    assert!(
        samples(&wav).len() > 44_100,
        "the WAV is complete and readable"
    );
    let png_bytes = std::fs::read(&png).expect("plot kept");
    assert!(png_bytes.starts_with(b"\x89PNG"));
}

/// Causes are printed once, not in the message and again from the error chain.
#[test]
fn causes_are_not_printed_twice() {
    let t = TempDir::new("hostile-causes");
    for input in ["missing.jsonl", "missing.csv"] {
        let o = gradtone(&["render", &t.arg(input), "-o", &t.arg("x.wav")]);
        clean_error(&o, input);
        let msg = text(&o);
        assert_eq!(msg.matches("(os error 2)").count(), 1, "{msg}");
    }
    let o = gradtone(&[
        "train",
        "--data",
        &t.arg("nowhere"),
        "--steps",
        "1",
        "--no-live",
    ]);
    clean_error(&o, "nowhere");
}

/// Each error names its cause exactly once per line, whether the cause is part of the message
/// (a corrupt gzip, a plot) or its `source()` (a sound config, a WAV file, TensorBoard's folder,
/// reported by the pipeline while the run goes on).
#[test]
fn each_cause_is_printed_once_and_not_lost() {
    let t = TempDir::new("hostile-cause-once");
    let seed = fixture("pytorch_mnist_seed.jsonl");
    std::fs::write(t.path().join("afile"), b"").expect("write");
    let mnist = t.path().join("mnist");
    std::fs::create_dir_all(&mnist).expect("mkdir");
    // 40 noise images (incompressible), gzipped and cut in half: the deflate stream breaks off.
    let mut image = [0x803u32, 40, 28, 28]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
    let mut x = 1u32;
    image.extend((0..40 * 784).map(|_| {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (x >> 24) as u8
    }));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &image).expect("gzip");
    let gz = enc.finish().expect("gzip");
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(mnist.join(format!("{name}.gz")), &gz[..gz.len() / 2]).expect("write");
    }
    let (x_wav, no_toml, tb, t_wav) = (
        t.arg("x.wav"),
        t.arg("none.toml"),
        t.arg("afile/tb"),
        t.arg("t.wav"),
    );
    let data = mnist.display().to_string();
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["render", &seed, "--wav", &x_wav, "--sound-config", &no_toml],
            "none.toml",
            "(os error 2)",
        ),
        (
            &["render", &seed, "--tensorboard", &tb],
            "afile/tb: cannot create the log folder",
            "(os error 20)",
        ),
        (
            &[
                "train",
                "--no-live",
                "--steps",
                "1",
                "--wav",
                &t_wav,
                "--data",
                &data,
            ],
            "is a truncated or corrupt gzip file",
            "replace it with a fresh copy",
        ),
        (
            &["render", &seed, "--plot", "/proc/gradtone-test.png"],
            "cannot write plot /proc/gradtone-test.png",
            "(os error 2)",
        ),
    ];
    for (args, what, cause) in cases {
        let o = gradtone(args);
        clean_error(&o, what);
        let msg = String::from_utf8_lossy(&o.stderr).into_owned();
        for line in msg.lines().filter(|l| l.contains(what)) {
            assert_eq!(line.matches(cause).count(), 1, "{args:?}: {line}");
        }
    }
}
