//! A stable-Rust stand-in for the cargo-fuzz target (`fuzz/`): 200,000 seeded random and
//! mutated inputs through `parse_line` and `JsonlReader`, asserting no panic and that the reader
//! accounts for every non-blank line (as a frame or as a malformed line).

use std::panic::{AssertUnwindSafe, catch_unwind};

use gradtone_ingest::{FrameSource, JsonlReader, parse_line};

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

const SEEDS: &[&str] = &[
    r#"{"v":1,"step":12,"values":{"conv1":0.12,"conv2":0.8,"fc1":1.1,"fc2":0.86},"losses":{"loss":2.30},"rank":0,"world":4,"t":1795775400.25}"#,
    r#"{"step":0,"values":{"a":"nan","b":"-INF","c":null}}"#,
    r#"{"step":3,"values":{},"losses":{"d_real":0.7,"d_fake":0.6,"g":1.9},"extra":[1,{"x":[]}]}"#,
    r#"{"v":2,"step":18446744073709551615,"values":{"é":1e-300,"\u0041":-0.0}}"#,
];

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"nan",
    b"\"inf\"",
    b"null",
    b"-1",
    b"1e999",
    b"\"step\"",
    b"\"values\"",
    b"\\u",
    b"\\ud800",
    b"\xff",
    b"\xc3",
    b"\n",
    b"\r",
    b"0.",
    b"\"v\":0",
    b"NaN",
    b" ",
    b"\x00",
    b"{\"a\":{\"b\":{\"c\":",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let end = (at + rng.below(8)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 => v.truncate(at),
            4 => {
                let b = rng.next() as u8;
                v.insert(at, b);
            }
            _ => {
                // Splice in part of another seed.
                let other = SEEDS[rng.below(SEEDS.len())].as_bytes();
                let from = rng.below(other.len());
                let to = (from + rng.below(40)).min(other.len());
                v.splice(at..at, other[from..to].iter().copied());
            }
        }
    }
    v
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    (0..rng.below(200)).map(|_| rng.next() as u8).collect()
}

fn check(input: &[u8]) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(s) = std::str::from_utf8(input) {
            let _ = parse_line(s);
        }
        let mut r = JsonlReader::new(input, "fuzz");
        let frames = r.by_ref().count() as u64;
        let d = r.diagnostics();
        let lines = input
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count() as u64;
        assert_eq!(frames, d.frames);
        assert_eq!(
            frames + d.malformed,
            lines,
            "every non-blank line is a frame or malformed"
        );
    }));
    if outcome.is_err() {
        panic!("input {:?} panicked", String::from_utf8_lossy(input));
    }
}

#[test]
fn two_hundred_thousand_mutated_and_random_inputs_do_not_panic() {
    let mut rng = Rng(0x6772_6164_746f_6e65); // "gradtone"
    let mut accepted = 0u64;
    for i in 0..200_000u32 {
        let input = if i % 5 == 0 {
            random_bytes(&mut rng)
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())].as_bytes();
            mutate(&mut rng, seed)
        };
        check(&input);
        if std::str::from_utf8(&input).is_ok_and(|s| parse_line(s).is_ok()) {
            accepted += 1;
        }
    }
    // The mutations must reach both outcomes, or the test exercises little.
    assert!(
        (1_000..190_000).contains(&accepted),
        "{accepted} of 200000 inputs parsed"
    );
    // Deep nesting in an unknown field is skipped without recursion (no stack overflow).
    let deep = format!(
        "{{\"step\":1,\"values\":{{}},\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    check(deep.as_bytes());
    assert_eq!(parse_line(&deep).map(|f| f.step), Ok(1));
    // In a known field it is a type error at the first bracket.
    let deep_values = format!("{{\"step\":1,\"values\":{}", "[".repeat(100_000));
    assert!(parse_line(&deep_values).is_err());
}
