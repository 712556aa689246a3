//! Trouble is heard the step it starts: trains the four SGD presets of `gradtone train` over
//! seeds 1–8 (the Burn trainer on `shared/data/mnist-20k`, exactly as the CLI does) and runs the
//! default alarms over each run's frames.
//!
//! - lr 1.0 (batch 10 and 256): the first trouble alarm comes at most 1 step after the onset —
//!   the first step with a non-finite value, a total norm above 5× step 0's, a loss above 2×
//!   step 0's, or at least half the layers exactly 0. These runs stop 10 steps after the onset
//!   once an alarm has fired (what follows is not measured, and batch 256 is slow).
//! - lr 0.01 and 0.1 (batch 10, 201 steps): no trouble alarm, and at most 2 plateau alarms over
//!   the 16 runs — unless such a run really diverges (see [`diverges`]). Then its first trouble
//!   alarm must come within 1 step of that, and none earlier. At lr 0.1 these runs are at the
//!   edge of stability: a change of rounding in the weight gradients (a different summation
//!   order, as PyTorch's own kernels have) tips single seeds into or out of a divergence, so
//!   the test judges each run by what it did, not by a fixed list of seeds.
//!
//! Prints the Markdown table that the README shows (`cargo test --release -p gradtone --test
//! alarm_onsets -- --nocapture`).

use std::ops::ControlFlow;

use gradtone_detect::{AlarmConfig, AlarmDetector};
use gradtone_frame::{AlarmEvent, Frame, Watch, stats};
use gradtone_mnist::Split;
use gradtone_testkit::onset::onset_of_trouble;
use gradtone_train::{Preset, SeedParams};

/// The onset of trouble: `(step, why)`.
fn onset(frames: &[Frame]) -> Option<(u64, &'static str)> {
    onset_of_trouble(frames).map(|(i, why)| (frames[i].step, why))
}

/// The first step where a run really diverges, whatever its preset:
/// - a non-finite value or loss;
/// - a loss spike: one loss above 3× step 0's (an instability that a listener should hear,
///   even if the run recovers);
/// - a sustained rise: the median of 3 consecutive losses above 2× step 0's (a single batch of
///   10 images can spike to 2–3× its start and fall back; that is noise, not divergence);
///
/// Norms alone do not count: they swing 5× on single batches of healthy runs. A rise that stays
/// below the start is not judged here: the lowest 25-step median of a batch-10 run is a
/// minimum over windows that noise drives low, so "4× the best window" called healthy runs
/// (seed 15, 88.5 % at the end) divergent; the detector judges such a rise against the loss's
/// own noise and recent level instead (issue 23).
fn diverges(frames: &[Frame]) -> Option<u64> {
    let l0 = frames.first()?.loss()?;
    let losses: Vec<f64> = frames
        .iter()
        .map(|f| f.loss().unwrap_or(f64::NAN))
        .collect();
    let median = |w: &[f64]| stats::median(&mut w.to_vec()).unwrap_or(f64::NAN);
    frames.iter().enumerate().find_map(|(i, f)| {
        let non_finite = f
            .values
            .iter()
            .chain(&f.losses)
            .any(|n| !n.value.is_finite());
        let spike = losses[i] > 3.0 * l0;
        let sustained = i >= 2 && median(&losses[i - 2..=i]) > 2.0 * l0;
        (non_finite || spike || sustained).then_some(f.step)
    })
}

/// The trainer's frames carry each layer's weight norm (`params`, read back with the gradient
/// norms): at step 0 they are the initial weights' norms, and they move with training.
fn check_params(frames: &[Frame], seed: u64) {
    let init = SeedParams::init(seed);
    let first = &frames[0];
    let names: Vec<&str> = first.params.iter().map(|p| p.name.as_str()).collect();
    let values: Vec<&str> = first.values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names, values,
        "params under the values' names, in their order"
    );
    for p in &first.params {
        let t = init
            .tensors
            .iter()
            .find(|t| t.name == format!("{}.weight", p.name))
            .unwrap_or_else(|| panic!("no init tensor for {}", p.name));
        let want = stats::l2(t.values.iter().map(|&x| f64::from(x)));
        assert!(
            (p.value - want).abs() <= 1e-4 * want,
            "seed {seed} {}: param norm {} at step 0, init {want}",
            p.name,
            p.value
        );
    }
    if let Some(second) = frames.get(1) {
        assert!(
            second
                .params
                .iter()
                .zip(&first.params)
                .any(|(b, a)| b.value != a.value),
            "seed {seed}: the weights moved after the first update"
        );
    }
}

struct Outcome {
    steps: usize,
    diverges: Option<u64>,
    onset: Option<(u64, &'static str)>,
    events: Vec<AlarmEvent>,
}

fn train(preset: Preset, seed: u64, data: &gradtone_mnist::Dataset, stop_early: bool) -> Outcome {
    let cfg = preset.config(seed);
    let mut detector = AlarmDetector::new(&AlarmConfig::default());
    let (mut frames, mut events) = (Vec::new(), Vec::new());
    gradtone_train::run(
        &cfg,
        &SeedParams::init(seed),
        data,
        &gradtone_train::default_device(),
        |frame| {
            events.extend(detector.observe(&frame));
            frames.push(frame);
            let done = stop_early
                && onset(&frames).is_some_and(|(s, _)| frames.len() as u64 > s + 10)
                && events.iter().any(|e| e.kind.is_trouble());
            if done {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    check_params(&frames, seed);
    Outcome {
        steps: frames.len(),
        diverges: diverges(&frames),
        onset: onset(&frames),
        events,
    }
}

/// Seeds 1–8; `GRADTONE_ONSET_SEEDS=A-B` widens the healthy presets' range (the lr 1.0 runs
/// keep 1–8: batch 256 is slow). CI keeps the default: 32 healthy runs cost a minute more.
fn seeds(diverging: bool) -> std::ops::RangeInclusive<u64> {
    let wide = std::env::var("GRADTONE_ONSET_SEEDS").ok().and_then(|v| {
        let (a, b) = v.split_once('-')?;
        Some(a.trim().parse().ok()?..=b.trim().parse().ok()?)
    });
    match wide {
        Some(r) if !diverging => r,
        _ => 1..=8,
    }
}

#[test]
fn alarms_fire_at_the_onset_and_not_on_healthy_runs() {
    let Some(dir) = gradtone_testkit::shared("alarm_onsets", "data/mnist-20k") else {
        return;
    };
    let data = match gradtone_mnist::load_dir(&dir, Split::Train) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let mut failures = Vec::new();
    let mut plateaus = 0;
    println!(
        "| preset | seed | onset of trouble | first trouble alarm | delay | other alarms (first 10 steps after the onset, or the whole run) |"
    );
    println!("|---|---:|---|---|---:|---|");
    for preset in [
        Preset::SgdLr1,
        Preset::SgdLr1Bs256,
        Preset::SgdLr001,
        Preset::SgdLr01,
    ] {
        let diverging = matches!(preset, Preset::SgdLr1 | Preset::SgdLr1Bs256);
        for seed in seeds(diverging) {
            let o = train(preset, seed, &data, diverging);
            let first = o.events.iter().find(|e| e.kind.is_trouble());
            let delay = o
                .onset
                .zip(first)
                .map(|((s, _), e)| e.step as i64 - s as i64);
            let others: Vec<String> = o
                .events
                .iter()
                .filter(|e| !first.is_some_and(|f| std::ptr::eq(*e, f)))
                .map(|e| format!("{} {}", e.step, e.kind))
                .collect();
            println!(
                "| {} | {seed} | {} | {} | {} | {} |",
                preset.name(),
                o.onset
                    .map_or("none".into(), |(s, why)| format!("step {s} ({why})")),
                first.map_or("none".into(), |e| format!("step {} {}", e.step, e.kind)),
                delay.map_or("—".into(), |d| format!("{d:+}")),
                if others.is_empty() {
                    "—".into()
                } else {
                    others.join(", ")
                }
            );
            if diverging {
                match (o.onset, delay) {
                    (None, _) => failures.push(format!(
                        "{} seed {seed}: no onset in {} steps",
                        preset.name(),
                        o.steps
                    )),
                    (Some(_), None) => {
                        failures.push(format!("{} seed {seed}: no trouble alarm", preset.name()))
                    }
                    (Some(_), Some(d)) if d > 1 => failures.push(format!(
                        "{} seed {seed}: alarm {d} steps after the onset",
                        preset.name()
                    )),
                    _ => {}
                }
            } else {
                match (first, o.diverges) {
                    (Some(e), None) => failures.push(format!(
                        "{} seed {seed}: false alarm: {}",
                        preset.name(),
                        e.message
                    )),
                    (Some(e), Some(d)) if e.step + 1 < d || e.step > d + 1 => {
                        failures.push(format!(
                            "{} seed {seed}: diverges at step {d}, first trouble alarm: {}",
                            preset.name(),
                            e.message
                        ))
                    }
                    (None, Some(d)) => failures.push(format!(
                        "{} seed {seed}: diverges at step {d} without an alarm",
                        preset.name()
                    )),
                    _ => {}
                }
                plateaus += o.events.iter().filter(|e| !e.kind.is_trouble()).count();
            }
        }
    }
    let healthy = 2 * seeds(false).count();
    println!("\nplateau alarms on the {healthy} healthy runs: {plateaus}");
    // At most one per 8 healthy runs.
    if plateaus > healthy / 8 {
        failures.push(format!(
            "{plateaus} plateau alarms on the {healthy} healthy runs (at most {})",
            healthy / 8
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
