//! Fuzzes the rank merger with arbitrary sequences of rank frames (ranks up to 65535, steps
//! out of order, names that never repeat): no panic, output steps strictly increasing, and
//! memory bounded by the lag window, whatever ranks and steps are claimed.
#![no_main]

use gradtone_ingest::{Frame, MAX_WORLD, MergeMode, MergeOptions, RankMerger};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let lag = u64::from(mode % 8) + 1;
    let mut m = RankMerger::new(MergeOptions {
        world: u32::from(mode >> 4) + 1,
        lag,
        mode: if mode & 8 == 0 {
            MergeMode::Mean
        } else {
            MergeMode::PerRank
        },
        disagreement_factor: 10.0,
    });
    let mut last: Option<u64> = None;
    let mut frames = 0u64;
    let mut check = |m: &mut RankMerger| {
        while let Some(out) = m.pop() {
            assert!(last.is_none_or(|l| out.frame.step > l), "steps go forward");
            last = Some(out.frame.step);
            assert!(out.lagging.iter().all(|&r| r < m.world()));
            assert!(out.disagreeing.iter().all(|(r, _)| *r < MAX_WORLD));
        }
        assert!(m.world() <= MAX_WORLD);
        assert!(m.pending_frames() <= (lag as usize + 1) * m.world() as usize);
    };
    // Each frame: rank (2 bytes), step delta (1 byte, signed), value count (1 byte), then
    // (name byte, value byte) pairs.
    let mut step: u64 = 1000;
    let mut rest = data;
    while let [r0, r1, ds, nv, tail @ ..] = rest {
        let rank = u32::from(u16::from_le_bytes([*r0, *r1]));
        step = step.wrapping_add_signed(i64::from(*ds as i8));
        let n = usize::from(*nv % 16).min(tail.len() / 2);
        let mut f = Frame::new(step);
        f.rank = Some(rank);
        for (k, pair) in tail[..2 * n].chunks_exact(2).enumerate() {
            let value = match pair[1] {
                0 => f64::NAN,
                1 => f64::INFINITY,
                v => f64::from(v) * 0.1,
            };
            // Names: a few shared ones, and some that never repeat.
            let name = if pair[0] < 128 {
                format!("l{}", pair[0] % 8)
            } else {
                format!("u{frames}_{k}")
            };
            f = f.with_value(name, value);
        }
        m.push(f);
        frames += 1;
        check(&mut m);
        rest = &tail[2 * n..];
    }
    m.finish();
    check(&mut m);
    assert_eq!(m.pending_frames(), 0);
});
