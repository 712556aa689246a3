//! A stable-Rust fuzz run: 100 000 seeded random and mutated inputs through [`EventReader`]
//! (and the scalar extraction), asserting no panic, termination, and bounded output.
//! The coverage-guided version is `fuzz/` (cargo-fuzz, nightly).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{SplitMix, sine, temp_dir};
use gradtone_tensorboard::{
    AudioFormat, EventReader, EventWriter, TbError, frame_record, scalar_of,
};

const CASES: usize = 100_000;

/// A small valid file with every kind of record we know (scalars, both audio layouts).
fn seed_file() -> Vec<u8> {
    let dir = temp_dir("fuzz-seed");
    let mut w = EventWriter::create(&dir).unwrap();
    for step in 0..4 {
        w.add_scalar("loss", step, 1.0 / (step as f32 + 1.0), 1.0)
            .unwrap();
        w.add_scalar("grad/fc1", step, 0.5, 1.0).unwrap();
    }
    w.add_audio("a", 1, &sine(440.0, 0.5, 8000, 40), 8000, 1, 1.0)
        .unwrap();
    let mut w = w.with_audio_format(AudioFormat::Tensor);
    w.add_audio("t", 2, &sine(440.0, 0.5, 8000, 40), 8000, 2, 1.0)
        .unwrap();
    std::fs::read(w.finish().unwrap()).unwrap()
}

fn mutate(rng: &mut SplitMix, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    match rng.below(7) {
        // Pure noise.
        0 => (0..rng.below(400)).map(|_| rng.next_u64() as u8).collect(),
        // Flip 1–8 random bits.
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            b
        }
        // Truncate anywhere.
        2 => {
            b.truncate(rng.below(b.len() + 1));
            b
        }
        // Overwrite a random span with noise.
        3 => {
            let at = rng.below(b.len());
            let n = rng.below(64).min(b.len() - at);
            b[at..at + n]
                .iter_mut()
                .for_each(|x| *x = rng.next_u64() as u8);
            b
        }
        // Checksummed records of random bytes (exercises the protobuf decoder).
        4 => {
            let mut out = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let data: Vec<u8> = (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect();
                frame_record(&data, &mut out);
            }
            out
        }
        // A checksummed header claiming a huge length, then a little data: no huge allocation.
        5 => {
            let len = rng.next_u64() >> rng.below(64);
            let len_bytes = len.to_le_bytes();
            b.extend_from_slice(&len_bytes);
            b.extend_from_slice(&gradtone_tensorboard::masked_crc32c(&len_bytes).to_le_bytes());
            b.extend((0..rng.below(100)).map(|_| rng.next_u64() as u8));
            b
        }
        // Splice: a copy of one random slice inserted elsewhere.
        _ => {
            let from = rng.below(b.len());
            let n = rng.below(b.len() - from + 1);
            let piece = b[from..from + n].to_vec();
            let at = rng.below(b.len() + 1);
            b.splice(at..at, piece);
            b
        }
    }
}

/// Reads everything; returns (ok events, errors).
fn read_all(bytes: &[u8]) -> (usize, usize) {
    let (mut ok, mut err) = (0, 0);
    let mut last_fatal = false;
    for item in EventReader::new(bytes, "fuzz") {
        assert!(!last_fatal, "an item after a framing error");
        match item {
            Ok(event) => {
                ok += 1;
                for v in event.summary.iter().flat_map(|s| &s.value) {
                    let _ = scalar_of(v, None);
                    let _ = scalar_of(v, Some("scalars"));
                }
            }
            Err(e) => {
                err += 1;
                last_fatal = matches!(
                    e,
                    TbError::Truncated { .. }
                        | TbError::Damaged {
                            resynced: false,
                            ..
                        }
                );
                assert!(e.to_string().contains("fuzz: record at byte"), "{e}");
            }
        }
    }
    (ok, err)
}

#[test]
fn hundred_thousand_mutations_never_panic() {
    let seed = seed_file();
    let (ok, err) = read_all(&seed);
    assert_eq!((ok, err), (1 + 8 + 2, 0), "the seed file is valid");

    let mut rng = SplitMix(0x6772_6164_746f_6e65);
    let (mut total_ok, mut total_err, mut clean) = (0usize, 0usize, 0usize);
    for case in 0..CASES {
        let input = mutate(&mut rng, &seed);
        let result = catch_unwind(AssertUnwindSafe(|| read_all(&input)));
        let Ok((ok, err)) = result else {
            let head: String = input.iter().take(64).map(|x| format!("{x:02x}")).collect();
            panic!(
                "case {case} panicked; input ({} bytes) starts {head}",
                input.len()
            );
        };
        // Every record costs at least 16 bytes, so items are bounded by the input.
        assert!(
            ok + err <= input.len() / 16 + 1,
            "case {case}: {ok} + {err} items"
        );
        total_ok += ok;
        total_err += err;
        clean += usize::from(err == 0);
    }
    eprintln!(
        "{CASES} inputs: {total_ok} events decoded, {total_err} errors, {clean} inputs without error"
    );
    // The mutations must actually reach both outcomes, or the test tests nothing.
    assert!(total_err > CASES / 2, "{total_err} errors");
    assert!(total_ok > CASES, "{total_ok} events");
}
