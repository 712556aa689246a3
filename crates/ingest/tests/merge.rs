//! `RankMerger`: frames of several ranks, interleaved and out of order, into one per step.

use gradtone_ingest::{Frame, MergeMode, MergeOptions, MergedFrame, RankMerger};

fn ranked(step: u64, rank: u32, values: &[(&str, f64)], loss: f64) -> Frame {
    let mut f = Frame::new(step).with_loss("loss", loss);
    for (n, v) in values {
        f = f.with_value(*n, *v);
    }
    f.rank = Some(rank);
    f
}

/// The norm rank `r` reports for layer `layer` at `step`: distinct, so means are checkable.
fn norm(step: u64, r: u32, layer: usize) -> f64 {
    1.0 + step as f64 * 0.1 + f64::from(r) * 0.01 + layer as f64
}

fn frame_of(step: u64, r: u32) -> Frame {
    ranked(
        step,
        r,
        &[("conv1", norm(step, r, 0)), ("fc1", norm(step, r, 1))],
        2.0 + f64::from(r),
    )
}

fn drain(m: &mut RankMerger) -> Vec<MergedFrame> {
    std::iter::from_fn(|| m.pop()).collect()
}

#[test]
fn four_ranks_interleaved_with_one_lagging_rank() {
    let mut opts = MergeOptions::new(4);
    opts.lag = 3;
    let mut m = RankMerger::new(opts);
    let mut out = Vec::new();
    // Ranks 0..3 interleaved, out of order within a step; rank 3 runs 5 steps behind.
    for step in 0..20u64 {
        for r in [2u32, 0, 1] {
            m.push(frame_of(step, r));
        }
        if step >= 5 {
            m.push(frame_of(step - 5, 3));
        }
        out.extend(drain(&mut m));
    }
    m.finish();
    out.extend(drain(&mut m));

    let steps: Vec<u64> = out.iter().map(|f| f.frame.step).collect();
    assert_eq!(
        steps,
        (0..20).collect::<Vec<_>>(),
        "every step once, in order"
    );
    // Rank 3 is 5 steps behind with lag 3: every step is emitted before rank 3 sends it.
    for f in &out[..17] {
        assert_eq!(f.lagging, [3], "step {}", f.frame.step);
    }
    assert!(
        m.late_frames() > 0,
        "rank 3's frames arrive after their steps went out"
    );
    // Means over the three ranks present: (r0 + r1 + r2) / 3.
    for f in &out[..17] {
        let s = f.frame.step;
        let want = (norm(s, 0, 0) + norm(s, 1, 0) + norm(s, 2, 0)) / 3.0;
        let got = f.frame.value("conv1").unwrap_or(f64::NAN);
        assert!((got - want).abs() < 1e-12, "step {s}: {got} vs {want}");
        assert_eq!(f.frame.loss(), Some(3.0), "(2 + 3 + 4) / 3");
        assert!(f.disagreeing.is_empty());
        assert_eq!(f.frame.rank, None);
    }
}

#[test]
fn complete_steps_go_out_at_once_and_means_are_exact() {
    let mut m = RankMerger::new(MergeOptions::new(4));
    for r in [3u32, 1, 0] {
        m.push(frame_of(0, r));
    }
    assert!(m.pop().is_none(), "step 0 waits for rank 2");
    m.push(frame_of(1, 0)); // a rank running ahead
    assert!(m.pop().is_none());
    m.push(frame_of(0, 2));
    let f = m.pop().unwrap_or_else(|| panic!("step 0 complete"));
    assert!(m.pop().is_none(), "step 1 still waits");
    assert!(f.lagging.is_empty());
    let want = (0..4).map(|r| norm(0, r, 1)).sum::<f64>() / 4.0;
    assert_eq!(f.frame.value("fc1"), Some(want));
    assert_eq!(f.frame.loss(), Some((2.0 + 3.0 + 4.0 + 5.0) / 4.0));
    let names: Vec<&str> = f.frame.values.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["conv1", "fc1"]);
    // NaN on one rank makes the mean NaN: the alarm must not be averaged away.
    for r in 1..4 {
        m.push(frame_of(1, r));
    }
    let f = m.pop().unwrap_or_else(|| panic!("step 1"));
    assert_eq!(f.frame.step, 1);
    let mut m = RankMerger::new(MergeOptions::new(2));
    m.push(ranked(0, 0, &[("a", f64::NAN)], 1.0));
    m.push(ranked(0, 1, &[("a", 1.0)], 1.0));
    let f = m.pop().unwrap_or_else(|| panic!("step 0"));
    assert!(f.frame.value("a").is_some_and(f64::is_nan));
}

#[test]
fn a_rank_with_100x_norms_is_flagged() {
    let mut m = RankMerger::new(MergeOptions::new(4));
    for r in 0..4u32 {
        let scale = if r == 2 { 100.0 } else { 1.0 };
        m.push(ranked(
            0,
            r,
            &[("conv1", 0.5 * scale), ("fc1", 0.2 + 0.01 * f64::from(r))],
            1.0,
        ));
    }
    let f = m.pop().unwrap_or_else(|| panic!("step 0"));
    assert_eq!(f.disagreeing, [(2, "conv1".to_string())]);
    // 5× is within the default factor of 10; a tiny (0.001×) norm and a NaN are flagged.
    let mut m = RankMerger::new(MergeOptions::new(5));
    let vals = [0.5, 2.5, 0.5 * 0.001, f64::NAN, 0.6];
    for (r, v) in vals.iter().enumerate() {
        m.push(ranked(0, r as u32, &[("fc1", *v)], 1.0));
    }
    let f = m.pop().unwrap_or_else(|| panic!("step 0"));
    assert_eq!(
        f.disagreeing,
        [(2, "fc1".to_string()), (3, "fc1".to_string())]
    );
    // A configurable factor: at 3×, rank 1's 2.5 (5× the others' median of 0.5) is flagged too.
    let mut opts = MergeOptions::new(5);
    opts.disagreement_factor = 3.0;
    let mut m = RankMerger::new(opts);
    for (r, v) in vals.iter().enumerate() {
        m.push(ranked(0, r as u32, &[("fc1", *v)], 1.0));
    }
    let flagged: Vec<u32> = m
        .pop()
        .map(|f| f.disagreeing.iter().map(|(r, _)| *r).collect())
        .unwrap_or_default();
    assert_eq!(flagged, [1, 2, 3]);
    // With two ranks neither can be told wrong.
    let mut m = RankMerger::new(MergeOptions::new(2));
    m.push(ranked(0, 0, &[("a", 1.0)], 1.0));
    m.push(ranked(0, 1, &[("a", 1000.0)], 1.0));
    assert_eq!(m.pop().map(|f| f.disagreeing.len()), Some(0));
}

#[test]
fn per_rank_voices_are_prefixed_in_rank_order() {
    let mut opts = MergeOptions::new(3);
    opts.mode = MergeMode::PerRank;
    let frames = vec![
        frame_of(0, 2),
        frame_of(0, 0),
        frame_of(0, 1),
        frame_of(1, 1),
    ];
    let out: Vec<MergedFrame> = RankMerger::merge(frames, opts).collect();
    assert_eq!(out.len(), 2, "step 1 flushed at the end of the input");
    let names: Vec<&str> = out[0]
        .frame
        .values
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "r0/conv1", "r0/fc1", "r1/conv1", "r1/fc1", "r2/conv1", "r2/fc1"
        ]
    );
    assert_eq!(out[0].frame.value("r2/fc1"), Some(norm(0, 2, 1)));
    let losses: Vec<&str> = out[0]
        .frame
        .losses
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(losses, ["r0/loss", "r1/loss", "r2/loss"]);
    assert_eq!(out[1].lagging, [0, 2]);
    assert_eq!(out[1].frame.values.len(), 2);
}

#[test]
fn unranked_frames_and_ranks_beyond_world() {
    // No rank counts as rank 0; rank 5 widens a world of 2 to 6.
    let mut m = RankMerger::new(MergeOptions::new(2));
    m.push(Frame::new(0).with_value("a", 1.0));
    m.push(ranked(0, 5, &[("a", 3.0)], 1.0));
    assert_eq!(m.world(), 6);
    m.finish();
    let f = m.pop().unwrap_or_else(|| panic!("step 0"));
    assert_eq!(f.lagging, [1, 2, 3, 4]);
    assert_eq!(f.frame.value("a"), Some(2.0));
    // A frame for an emitted step is dropped and counted.
    m.push(ranked(0, 1, &[("a", 3.0)], 1.0));
    assert_eq!(m.late_frames(), 1);
    assert!(m.pop().is_none());
}
