//! A stable-Rust stand-in for the cargo-fuzz target (`fuzz/`): 200,000 seeded random and
//! mutated inputs through `parse_line` and `JsonlReader`, asserting no panic and that the reader
//! accounts for every non-blank line (as a frame or as a malformed line).

use std::panic::{AssertUnwindSafe, catch_unwind};

use gradtone_ingest::{FrameSource, JsonlReader, parse_line};

#[path = "support/frame_packet.rs"]
mod support;

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

/// Valid OSC datagrams to mutate: a frame bundle, a rank message, a loss, nested bundles.
fn osc_seeds() -> Vec<Vec<u8>> {
    use gradtone_ingest::Frame;
    use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
    use support::frame_packet;
    let enc = |p: &OscPacket| rosc::encoder::encode(p).unwrap_or_else(|e| panic!("{e}"));
    let mut ranked = Frame::new(12)
        .with_value("conv1", 0.1)
        .with_value("fc1", f64::NAN)
        .with_loss("loss", 2.3);
    ranked.rank = Some(3);
    let frame = frame_packet(&Frame::new(7).with_value("a", 1.0), None);
    let msg = |addr: &str, args| {
        OscPacket::Message(OscMessage {
            addr: addr.into(),
            args,
        })
    };
    let nested = OscPacket::Bundle(OscBundle {
        timetag: OscTime::from((0, 1)),
        content: vec![
            frame.clone(),
            msg(
                "/gradtone/loss",
                vec![
                    OscType::Int(7),
                    OscType::String("g".into()),
                    OscType::Float(1.0),
                ],
            ),
        ],
    });
    vec![
        enc(&frame),
        enc(&frame_packet(&ranked, Some(4))),
        enc(&nested),
        enc(&msg(
            "/gradtone/rank",
            vec![
                OscType::Int(1),
                OscType::Int(2),
                OscType::Int(0),
                OscType::String("x".into()),
                OscType::Double(0.5),
            ],
        )),
        enc(&msg(
            "/other",
            vec![OscType::Array(rosc::OscArray {
                content: vec![OscType::Nil],
            })],
        )),
    ]
}

const OSC_TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[[[",
    b"#bundle\0",
    b"\0\0\0\x10",
    b"\xff\xff\xff\xff",
    b",iisf",
    b"/gradtone/rank\0\0",
    b"\x7f\xff\xff\xff",
];

fn mutate_osc(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(at),
            2 => {
                let t = OSC_TOKENS[rng.below(OSC_TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 if v.len() >= 4 => {
                // Overwrite a 4-byte word (sizes, integers) with an extreme value.
                let i = rng.below(v.len() - 3);
                let w = [0u32, 1, 0x7fff_ffff, 0xffff_ffff, 1024, 1023][rng.below(6)];
                v[i..i + 4].copy_from_slice(&w.to_be_bytes());
            }
            _ => {
                let b = rng.next() as u8;
                v.insert(at, b);
            }
        }
    }
    v
}

/// 100,000 mutated and random datagrams through the OSC decoder: no panic, every datagram
/// counted, every frame within the rank limits, messages bounded.
#[test]
fn a_hundred_thousand_mutated_osc_datagrams_do_not_panic() {
    use gradtone_ingest::{MAX_WORLD, OscDecoder};
    let seeds = osc_seeds();
    let mut rng = Rng(0x6f73_6321);
    let mut dec = OscDecoder::new("fuzz");
    let (mut taken, mut frames) = (0u64, 0u64);
    for i in 0..100_000u32 {
        let input = if i % 5 == 0 {
            random_bytes(&mut rng)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate_osc(&mut rng, seed)
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| dec.push(&input)));
        match outcome {
            Ok(took) => taken += u64::from(took),
            Err(_) => panic!("datagram {input:?} panicked"),
        }
        while let Some(r) = dec.pop() {
            frames += 1;
            if let Some(rank) = r.frame.rank {
                assert!(rank < MAX_WORLD, "{r:?}");
                assert!(r.world.is_none_or(|w| rank < w && w <= MAX_WORLD), "{r:?}");
            }
        }
    }
    dec.finish();
    frames += std::iter::from_fn(|| dec.pop()).count() as u64;
    let d = dec.diagnostics();
    assert_eq!(d.datagrams, 100_000);
    assert_eq!(d.frames, frames);
    assert!(
        (1_000..90_000).contains(&taken),
        "{taken} of 100000 datagrams had a message taken"
    );
    assert!(d.malformed > 10_000, "{d:?}");
    assert!(d.first_errors.iter().all(|m| m.len() < 1000), "{d:?}");
}

/// 100,000 random rank frames (ranks up to 65535, steps jumping both ways, names that never
/// repeat) through the merger: no panic, steps out in order, pending work bounded.
#[test]
fn a_hundred_thousand_random_rank_frames_merge_within_bounds() {
    use gradtone_ingest::{Frame, MAX_WORLD, MergeMode, MergeOptions, RankMerger};
    let mut rng = Rng(0x006d_6572_6765);
    let lag = 6;
    let mut m = RankMerger::new(MergeOptions {
        world: 8,
        lag,
        mode: MergeMode::PerRank,
        disagreement_factor: 10.0,
    });
    let (mut step, mut last, mut out) = (100u64, None::<u64>, 0u64);
    for i in 0..100_000u64 {
        step = match rng.below(20) {
            0 => step + rng.below(100_000) as u64,
            1..=2 => step.saturating_sub(rng.below(10) as u64),
            _ => step + rng.below(2) as u64,
        };
        let rank = match rng.below(50) {
            0 => rng.next() as u32,
            1 => MAX_WORLD - 1,
            _ => rng.below(8) as u32,
        };
        let mut f = Frame::new(step);
        f.rank = Some(rank);
        for k in 0..rng.below(6) {
            let name = if rng.below(2) == 0 {
                format!("l{k}")
            } else {
                format!("u{i}_{k}")
            };
            let v =
                [f64::NAN, f64::INFINITY, 0.0, 1e300][rng.below(8).min(3)] + rng.below(100) as f64;
            f = f.with_value(name, v);
        }
        m.push(f);
        while let Some(merged) = m.pop() {
            assert!(
                last.is_none_or(|l| merged.frame.step > l),
                "steps go forward"
            );
            last = Some(merged.frame.step);
            assert!(merged.lagging.len() <= MAX_WORLD as usize);
            out += 1;
        }
        assert!(m.world() <= MAX_WORLD);
        assert!(m.pending_frames() <= (lag as usize + 1) * m.world() as usize);
    }
    m.finish();
    out += std::iter::from_fn(|| m.pop()).count() as u64;
    assert_eq!(m.pending_frames(), 0);
    let counts = (m.rejected_frames(), m.late_frames(), out);
    assert!(
        counts.0 > 0 && counts.1 > 0 && counts.2 > 1000,
        "{counts:?}"
    );
}
