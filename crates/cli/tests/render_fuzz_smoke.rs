//! A stable-Rust stand-in for the cargo-fuzz targets in `fuzz/` (`read_csv`, `render`): seeded
//! random and mutated inputs read as CSV, JSONL and TensorBoard event files, their frames sounded
//! by the default mapping with alarms and written to CSV and read back. Asserts no panic, finite
//! samples, one CSV item per line at most, and an exact CSV round trip. A few go through the
//! `gradtone render` binary too, which must end cleanly (success, or exit 1 with a message).

mod common;

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use gradtone_csv::{CsvReader, CsvWriter};
use gradtone_detect::AlarmDetector;
use gradtone_frame::{Frame, Named, Watch};
use gradtone_ingest::JsonlReader;
use gradtone_sound::config::SoundConfig;
use gradtone_sound::mapping;
use gradtone_testkit::TempDir;

/// SplitMix64: a tiny seeded generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const CSV_SEED: &str = "step,loss,loss:r0/loss,conv1,value:loss_ce/fc1,\"a,b\"\n\
                        0,2.3,2.2,0.5,nan,1\n1,,inf,-inf,0.25,\n2,2.1,2.0,1e-300,1e300,0\n";
const JSONL_SEED: &str = "{\"step\":0,\"values\":{\"conv1\":0.5,\"fc1\":1.0},\"losses\":{\"loss\":2.3}}\n\
                          {\"step\":1,\"values\":{\"conv1\":\"nan\"},\"losses\":{\"loss\":2.2},\"rank\":1,\"world\":2}\n\
                          {\"step\":1,\"values\":{\"fc2\":1e30},\"rank\":0,\"world\":2}\n";
const TOKENS: &[&[u8]] = &[
    b",",
    b"\n",
    b"\r",
    b"\"",
    b"nan",
    b"inf",
    b"-",
    b"1e999",
    b"loss",
    b"loss:",
    b"value:",
    b"step",
    b"\xff",
    b"\x00",
    b"{",
    b"}",
    b"\"values\":{",
    b"0",
    b"18446744073709551616",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(5) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let end = (at + rng.below(12)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 => v.truncate(at.max(v.len() / 2)),
            4 => {
                let b = rng.next() as u8;
                v.insert(at, b);
            }
            _ => {
                let from = rng.below(v.len());
                let to = (from + rng.below(30)).min(v.len());
                let chunk = v[from..to].to_vec();
                v.splice(at..at, chunk);
            }
        }
    }
    v
}

fn same(a: &[Named], b: &[Named]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(p, q)| {
            p.name == q.name
                && (p.value.to_bits() == q.value.to_bits()
                    || (p.value.is_nan() && q.value.is_nan()))
        })
}

/// Frames → sound (finite samples) and → CSV → frames (identical).
fn sonify_and_round_trip(frames: &[Frame]) {
    let config = SoundConfig::default();
    let mut m = mapping::with_alarms(&config);
    let mut detector = AlarmDetector::new(&config.alarms);
    let mut buf = Vec::new();
    for f in frames {
        buf.clear();
        let alarms = detector.observe(f);
        m.play(f, &alarms, &mut buf);
        assert!(buf.iter().all(|s| s.is_finite()), "non-finite sample");
    }
    let mut w = CsvWriter::new(Cursor::new(Vec::new()), &[], &[]).expect("writer");
    for f in frames {
        w.write(f).expect("write");
    }
    let bytes = w.finish().expect("finish").into_inner();
    let back: Vec<Frame> = CsvReader::new(bytes.as_slice(), "again.csv")
        .expect("header reads back")
        .collect::<Result<_, _>>()
        .expect("rows read back");
    assert_eq!(back.len(), frames.len());
    for (a, b) in frames.iter().zip(&back) {
        assert_eq!(a.step, b.step);
        assert!(
            same(&a.losses, &b.losses) && same(&a.values, &b.values),
            "{a:?} vs {b:?}"
        );
    }
}

fn check(input: &[u8], tb_scratch: &std::path::Path) -> usize {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut frames_seen = 0;
        if let Ok(r) = CsvReader::new(input, "fuzz.csv") {
            let lines = input.iter().filter(|&&b| b == b'\n').count() + 1;
            let items: Vec<_> = r.collect();
            assert!(items.len() <= lines);
            let frames: Vec<Frame> = items.into_iter().filter_map(Result::ok).collect();
            frames_seen += frames.len();
            sonify_and_round_trip(&frames);
        }
        let frames: Vec<Frame> = JsonlReader::new(input, "fuzz.jsonl").collect();
        frames_seen += frames.len();
        sonify_and_round_trip(&frames);
        std::fs::write(tb_scratch, input).expect("scratch");
        let frames = gradtone_tensorboard::read_scalars(tb_scratch, &[])
            .map(|s| s.to_frames())
            .unwrap_or_default();
        frames_seen += frames.len();
        sonify_and_round_trip(&frames);
        frames_seen
    }));
    match outcome {
        Ok(n) => n,
        Err(_) => panic!("input {:?} panicked", String::from_utf8_lossy(input)),
    }
}

fn tb_seed(dir: &TempDir) -> Vec<u8> {
    let mut w = gradtone_tensorboard::EventWriter::create(dir.join("seed")).expect("tb");
    for step in 0..4u64 {
        w.add_scalar("grad/fc1", step, 0.5 + step as f32, 1.0)
            .expect("scalar");
        w.add_scalar("train/loss", step, 2.0, 1.0).expect("scalar");
    }
    std::fs::read(w.finish().expect("finish")).expect("read")
}

#[test]
fn mutated_csv_jsonl_and_event_files_render_without_panic() {
    let t = TempDir::new("render-fuzz-smoke");
    let scratch = t.join("events.out.tfevents.fuzz");
    let seeds = [
        CSV_SEED.as_bytes().to_vec(),
        JSONL_SEED.as_bytes().to_vec(),
        tb_seed(&t),
    ];
    let mut rng = Rng(0x7265_6e64_6572); // "render"
    let (mut inputs_with_frames, cases) = (0, 3_000);
    for i in 0..cases {
        let input = if i % 10 == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            let s = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s)
        };
        if check(&input, &scratch) > 0 {
            inputs_with_frames += 1;
        }
    }
    // The mutations must keep many inputs readable, or the test exercises little.
    assert!(
        (cases / 4..cases).contains(&inputs_with_frames),
        "{inputs_with_frames} of {cases} inputs gave frames"
    );
}

/// A sample of the same inputs through the real binary: every run ends cleanly.
#[test]
fn the_render_command_ends_cleanly_on_mutated_files() {
    let t = TempDir::new("render-fuzz-bin");
    let seeds = [
        (CSV_SEED.as_bytes().to_vec(), "csv"),
        (JSONL_SEED.as_bytes().to_vec(), "jsonl"),
        (tb_seed(&t), "tfevents"),
    ];
    let mut rng = Rng(0x0062_696e);
    for i in 0..24 {
        let (seed, ext) = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, seed);
        let path = if *ext == "tfevents" {
            t.join(&format!("events.out.tfevents.{i}"))
        } else {
            t.join(&format!("in{i}.{ext}"))
        };
        std::fs::write(&path, &input).expect("write");
        let out = t.join(&format!("out{i}.wav"));
        let o = common::gradtone(&[
            "render",
            path.to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
        ]);
        let msg = common::text(&o);
        assert!(!msg.contains("panicked"), "{msg}");
        match o.status.code() {
            Some(0) => assert!(out.exists(), "success without a WAV: {msg}"),
            Some(1) => {
                assert!(msg.contains("error: "), "{msg}");
                assert!(!out.exists(), "an error left a WAV: {msg}");
            }
            other => panic!("exit {other:?}: {msg}"),
        }
    }
}
