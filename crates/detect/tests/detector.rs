//! The alarm detector on the real reference trajectories (`shared/reference/pytorch/trajectories`)
//! and on made-up runs: where each alarm fires, that it fires once per episode, that healthy runs
//! raise none, what it names. (How the alarms sound: `gradtone-sound`'s `tests/alarms.rs`.)

use std::path::PathBuf;

use gradtone_csv::read_frames;
use gradtone_detect::{AlarmConfig, AlarmDetector};
use gradtone_frame::{AlarmEvent, AlarmKind, Frame, Watch};

fn trajectories(test: &str) -> Option<PathBuf> {
    gradtone_testkit::shared(test, "reference/pytorch/trajectories")
}

fn load(dir: &std::path::Path, run: &str) -> Vec<Frame> {
    let path = dir.join(format!("{run}.csv"));
    match read_frames(&path) {
        Ok(frames) => frames,
        Err(e) => panic!("{e}"),
    }
}

fn detect(frames: &[Frame]) -> Vec<AlarmEvent> {
    let mut d = AlarmDetector::new(&AlarmConfig::default());
    frames.iter().flat_map(|f| d.observe(f)).collect()
}

fn of_kind(events: &[AlarmEvent], kind: AlarmKind) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.step)
        .collect()
}

fn first_non_finite(frames: &[Frame]) -> Option<u64> {
    frames
        .iter()
        .find(|f| {
            f.values
                .iter()
                .chain(&f.losses)
                .any(|n| !n.value.is_finite())
        })
        .map(|f| f.step)
}

fn all_zero(f: &Frame) -> bool {
    !f.values.is_empty() && f.values.iter().all(|n| n.value == 0.0)
}

/// Steps that start an episode of `cond`: the first true step, and any true step after at
/// least `rearm` consecutive false steps (computed here independently of the detector).
fn episode_starts(frames: &[Frame], cond: impl Fn(&Frame) -> bool, rearm: u32) -> Vec<u64> {
    let (mut starts, mut armed, mut calm) = (Vec::new(), true, 0);
    for f in frames {
        if cond(f) {
            calm = 0;
            if armed {
                starts.push(f.step);
                armed = false;
            }
        } else {
            calm += 1;
            if calm >= rearm {
                armed = true;
            }
        }
    }
    starts
}

#[test]
fn diverging_run_fires_explosion_then_non_finite_once() {
    let Some(dir) = trajectories("diverging_run_fires_explosion_then_non_finite_once") else {
        return;
    };
    let frames = load(&dir, "sgd_lr1.0_bs10_seed1");
    let events = detect(&frames);
    for e in &events {
        println!("{}", e.message);
    }
    let nan_at = first_non_finite(&frames).expect("this run diverges");
    let non_finite = of_kind(&events, AlarmKind::NonFinite);
    assert_eq!(
        non_finite,
        [nan_at],
        "exactly once, at the first non-finite step"
    );
    let explosion = of_kind(&events, AlarmKind::Explosion);
    assert!(
        explosion.first().is_some_and(|&s| s < nan_at),
        "explosion {explosion:?} before NaN at {nan_at}"
    );
    // The message names the step, the layers and the numbers.
    let msg = &events
        .iter()
        .find(|e| e.kind == AlarmKind::NonFinite)
        .expect("fired")
        .message;
    assert!(
        msg.starts_with(&format!("step {nan_at}: ALARM non_finite")),
        "{msg}"
    );
    assert!(msg.contains("fc1 = inf"), "{msg}");
    let msg = &events[0].message;
    assert!(msg.contains("× its running median"), "{msg}");
}

#[test]
fn dying_runs_fire_dead_at_the_first_all_zero_step() {
    let Some(dir) = trajectories("dying_runs_fire_dead_at_the_first_all_zero_step") else {
        return;
    };
    let rearm = AlarmConfig::default().rearm_after;
    for run in ["sgd_lr1.0_bs10_seed2", "sgd_lr1.0_bs10_seed3"] {
        let frames = load(&dir, run);
        let events = detect(&frames);
        for e in &events {
            println!("{run}: {}", e.message);
        }
        let zero_at = frames
            .iter()
            .find(|f| all_zero(f))
            .map(|f| f.step)
            .expect("this run dies");
        let dead = of_kind(&events, AlarmKind::Dead);
        assert_eq!(dead.first(), Some(&zero_at), "{run}: dead alarms {dead:?}");
        // Once per episode: exactly the episode starts of "all zero" with the re-arm rule.
        assert_eq!(dead, episode_starts(&frames, all_zero, rearm), "{run}");
        let explosion = of_kind(&events, AlarmKind::Explosion);
        assert!(
            explosion.first().is_some_and(|&s| s < zero_at),
            "{run}: explosion {explosion:?} before dead at {zero_at}"
        );
        assert!(of_kind(&events, AlarmKind::NonFinite).is_empty(), "{run}");
        let msg = &events
            .iter()
            .find(|e| e.kind == AlarmKind::Dead)
            .expect("fired")
            .message;
        assert!(msg.contains("exactly 0") && msg.contains("conv1"), "{msg}");
    }
}

#[test]
fn healthy_runs_raise_no_false_alarms() {
    let Some(dir) = trajectories("healthy_runs_raise_no_false_alarms") else {
        return;
    };
    for lr in ["0.01", "0.1"] {
        for seed in 1..=3 {
            let run = format!("sgd_lr{lr}_bs10_seed{seed}");
            let events = detect(&load(&dir, &run));
            let plateau = of_kind(&events, AlarmKind::Plateau);
            println!("{run}: plateau alarms at {plateau:?}");
            assert!(plateau.is_empty(), "{run}: plateau alarms at {plateau:?}");
            // Every trouble kind, the new divergence and layer_dead included.
            for kind in AlarmKind::DETECTOR.into_iter().filter(|k| k.is_trouble()) {
                let fired = of_kind(&events, kind);
                assert!(fired.is_empty(), "{run}: false {kind} alarm at {fired:?}");
            }
        }
    }
}

#[test]
fn plateau_fires_on_a_stuck_loss_and_not_on_a_falling_one() {
    let cfg = AlarmConfig::default();
    let mut d = AlarmDetector::new(&cfg);
    let mut fired = Vec::new();
    for s in 0..450u64 {
        // Falling for 150 steps, then flat (with noise).
        let loss = if s < 150 {
            2.3 * (-(s as f64) / 60.0).exp()
        } else {
            0.19
        } + 0.01 * ((s as f64) * 1.3).sin();
        let f = Frame::new(s).with_value("w", 1.0).with_loss("loss", loss);
        fired.extend(
            d.observe(&f)
                .into_iter()
                .filter(|e| e.kind == AlarmKind::Plateau),
        );
    }
    let steps: Vec<u64> = fired.iter().map(|e| e.step).collect();
    println!(
        "plateau at {steps:?}: {}",
        fired.first().map_or("", |e| e.message.as_str())
    );
    assert_eq!(steps.len(), 1, "once: {steps:?}");
    // Changed with issue 23's progress rule (a noisy run that still improves steadily is no
    // plateau): the clock also restarts while the median beats the median `patience` (100)
    // steps before it, whose window (50 steps) lies half in the fall until step 275; then 100
    // steps without progress: between steps 350 and 400.
    assert!((350..400).contains(&steps[0]), "{steps:?}");
    assert!(
        fired[0].message.contains("loss flat"),
        "{}",
        fired[0].message
    );
}

/// A loss that rises after its best is worded "rising", with a positive percentage.
#[test]
fn plateau_says_rising_when_the_loss_rises() {
    let mut d = AlarmDetector::new(&AlarmConfig::default());
    let mut fired = Vec::new();
    for s in 0..400u64 {
        // Falls to 0.5 by step 100, then creeps up by 40 % over 300 steps (no divergence).
        let x = s as f64;
        let loss = if s < 100 {
            2.3 - 1.8 * x / 100.0
        } else {
            0.5 * (1.0 + 0.4 * (x - 100.0) / 300.0)
        } + 0.01 * (x * 1.7).sin();
        let f = Frame::new(s).with_value("w", 1.0).with_loss("loss", loss);
        fired.extend(d.observe(&f));
    }
    assert!(
        fired.iter().all(|e| e.kind == AlarmKind::Plateau),
        "{fired:?}"
    );
    let msg = &fired.first().expect("a plateau alarm").message;
    println!("{msg}");
    assert!(
        msg.contains("loss rising") && msg.contains("% above"),
        "{msg}"
    );
    assert!(!msg.contains('-'), "no negative percentage: {msg}");
}

#[test]
fn non_finite_rearms_after_calm_steps() {
    let cfg = AlarmConfig {
        rearm_after: 5,
        ..AlarmConfig::default()
    };
    let mut d = AlarmDetector::new(&cfg);
    let pattern = [
        1.0,
        f64::NAN,
        f64::NAN,
        1.0,
        1.0,
        f64::NAN,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        f64::INFINITY,
    ];
    let steps: Vec<u64> = pattern
        .iter()
        .enumerate()
        .flat_map(|(s, &v)| {
            d.observe(&Frame::new(s as u64).with_value("a", v).with_value("b", 2.0))
        })
        .map(|e| e.step)
        .collect();
    // Step 5 is within 5 calm steps of step 2; step 11 follows 5 calm steps.
    assert_eq!(steps, [1, 11]);
}

/// With several instruments (`term/layer` names), one instrument going silent is a dead
/// alarm naming it, while the others still play.
#[test]
fn dead_alarm_names_the_silent_instrument() {
    let mut d = AlarmDetector::new(&AlarmConfig::default());
    let frame = |s, g: f64| {
        Frame::new(s)
            .with_value("d_real/D.fc1", 0.5)
            .with_value("d_fake/D.fc1", 0.4)
            .with_value("g_adv/G.fc1", g)
            .with_value("g_adv/G.fc2", g / 2.0)
    };
    assert!(d.observe(&frame(0, 0.3)).is_empty());
    let events = d.observe(&frame(1, 1e-9));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, AlarmKind::Dead);
    assert!(
        events[0].message.contains("gradients of g_adv vanished")
            && !events[0].message.contains("d_real"),
        "{}",
        events[0].message
    );
    // A single-instrument frame keeps the plain message.
    let mut d = AlarmDetector::new(&AlarmConfig::default());
    let e = d.observe(&Frame::new(0).with_value("fc1", 0.0).with_value("fc2", 0.0));
    assert!(
        e[0].message
            .starts_with("step 0: ALARM dead: gradients are dead"),
        "{}",
        e[0].message
    );
}

/// Issue 12: a stream whose value names never repeat costs O(values) per frame and keeps
/// bounded state (asserted on the map's size, not on time), while names that keep arriving
/// keep their state: a layer that dies after 100 000 frames of churn is still recognised.
#[test]
fn fresh_names_every_frame_keep_state_bounded() {
    let mut d = AlarmDetector::new(&AlarmConfig::default());
    let mut most = 0;
    for s in 0..100_000u64 {
        let mut f = Frame::new(s)
            .with_value("fc1", 1.0 + (s % 7) as f64 * 0.01)
            .with_value("fc2", 0.5);
        for j in 0..4 {
            f = f.with_value(format!("fresh{s}_{j}"), 0.25);
        }
        assert!(
            d.observe(&f).is_empty(),
            "step {s}: no alarm on a calm stream"
        );
        most = most.max(d.tracked_names());
    }
    println!("at most {most} names tracked over 100 000 frames of 6 values");
    assert!(most <= 1024 + 6, "{most} names tracked");
    // 20 frames of 10 000 fresh names each: the limit follows the frame (4 × values).
    for s in 100_000..100_020u64 {
        let mut f = Frame::new(s).with_value("fc1", 1.0).with_value("fc2", 0.5);
        f.values.extend((0..10_000).map(|j| gradtone_frame::Named {
            name: format!("wide{s}_{j}"),
            value: 0.3,
        }));
        d.observe(&f);
        most = most.max(d.tracked_names());
    }
    assert!(most <= 4 * 10_002 + 10_002, "{most} names tracked");
    // fc1 was kept throughout: its death is news.
    let events = d.observe(
        &Frame::new(100_020)
            .with_value("fc1", 0.0)
            .with_value("fc2", 0.5),
    );
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [AlarmKind::LayerDead]
    );
    assert!(d.tracked_names() <= 2 + 1024, "{}", d.tracked_names());
}

/// Per-layer death is its own alarm: on a reference run where conv1, conv2 and fc1 go to
/// exactly 0 while fc2 still moves, it fires at that step, naming both sides; the full death
/// comes later as `dead`.
#[test]
fn layer_death_fires_when_some_layers_die_and_names_them() {
    let Some(dir) = trajectories("layer_death_fires_when_some_layers_die") else {
        return;
    };
    let frames = load(&dir, "sgd_lr1.0_bs10_seed3");
    let events = detect(&frames);
    let first_partial = frames
        .iter()
        .find(|f| f.values.iter().any(|n| n.value == 0.0) && !all_zero(f))
        .map(|f| f.step)
        .expect("layers die one by one in this run");
    let layer_dead: Vec<&AlarmEvent> = events
        .iter()
        .filter(|e| e.kind == AlarmKind::LayerDead)
        .collect();
    assert_eq!(layer_dead.first().map(|e| e.step), Some(first_partial));
    let msg = &layer_dead[0].message;
    println!("{msg}");
    assert!(
        msg.contains("conv1, conv2, fc1 dead (gradient exactly 0); fc2 still learning"),
        "{msg}"
    );
    let dead = of_kind(&events, AlarmKind::Dead);
    assert!(dead.first().is_some_and(|&s| s > first_partial), "{dead:?}");
    // A layer that never moved (frozen) is not "dead".
    let mut d = AlarmDetector::new(&AlarmConfig::default());
    for s in 0..30 {
        let f = Frame::new(s)
            .with_value("frozen", 0.0)
            .with_value("fc", 1.0)
            .with_loss("loss", 2.0);
        assert!(d.observe(&f).is_empty());
    }
}

/// The divergence alarm needs no history: a loss that jumps at step 1 fires at step 1. A
/// clipped norm spike is not an explosion, but its loss still counts.
#[test]
fn divergence_fires_at_step_one_and_clipped_spikes_are_not_explosions() {
    let mut d = AlarmDetector::new(&AlarmConfig::default());
    assert!(
        d.observe(&Frame::new(0).with_value("a", 1.0).with_loss("loss", 2.3))
            .is_empty()
    );
    let e = d.observe(&Frame::new(1).with_value("a", 1.2).with_loss("loss", 7.5));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].step, e[0].kind), (1, AlarmKind::Divergence));
    assert!(
        e[0].message.contains("3.3× its starting level 2.3000"),
        "{}",
        e[0].message
    );

    let run = |clip: Option<f64>, spike_loss: f64| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut kinds = Vec::new();
        for s in 0..40u64 {
            let norm = if s == 30 {
                50.0
            } else {
                1.0 + 0.1 * (s % 3) as f64
            };
            let loss = if s == 30 {
                spike_loss
            } else {
                2.0 - 0.02 * s as f64
            };
            let mut f = Frame::new(s).with_value("a", norm).with_loss("loss", loss);
            f.clip = clip;
            kinds.extend(d.observe(&f).into_iter().map(|e| (e.step, e.kind)));
        }
        kinds
    };
    assert_eq!(run(None, 1.4), [(30, AlarmKind::Explosion)]);
    assert_eq!(run(Some(5.0), 1.4), [], "clipped at 5: bounded update");
    // Clipping above the spike does not hide it.
    assert_eq!(run(Some(100.0), 1.4), [(30, AlarmKind::Explosion)]);
    // The loss counts even when the norm was clipped.
    assert_eq!(run(Some(5.0), 9.0), [(30, AlarmKind::Divergence)]);
}

/// The loss alarms watch the loss ([`Frame::loss`]): the one named `loss`, else the only one. A game's
/// several terms with no total (a GAN's `d_real`, `g_adv`) may rise while training goes well,
/// so they raise no divergence; the same numbers as a total `loss` do.
#[test]
fn loss_alarms_watch_the_objective_only() {
    assert_eq!(Frame::new(0).with_loss("x", 2.0).loss(), Some(2.0));
    let run = |names: [&str; 2]| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut kinds = Vec::new();
        for s in 0..60u64 {
            // The first term climbs 5× (a discriminator losing ground), the second falls.
            let up = 0.3 * (1.0 + 4.0 * s as f64 / 60.0);
            let f = Frame::new(s)
                .with_value("d_real/D.fc1", 1.0)
                .with_value("g_adv/G.fc1", 0.5)
                .with_loss(names[0], up)
                .with_loss(names[1], 1.0 / (1.0 + s as f64));
            kinds.extend(d.observe(&f).into_iter().map(|e| e.kind));
        }
        kinds
    };
    assert_eq!(
        run(["d_real", "g_adv"]),
        [],
        "a game's terms: no loss alarm"
    );
    assert_eq!(
        run(["loss", "g_adv"]),
        [AlarmKind::Divergence],
        "a named total counts"
    );
}

/// A small deterministic noise in [-1, 1] (an LCG), for synthetic runs.
fn noise(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

fn kinds_at(events: &[AlarmEvent]) -> Vec<(u64, AlarmKind)> {
    events.iter().map(|e| (e.step, e.kind)).collect()
}

/// Vanishing gradients through depth: 20 layers whose norms fall 10× per layer from the top,
/// so fc1–fc11 sit below 1e-5 × the largest (fc20) from step 0. The alarm names exactly those,
/// after `steps` (5) frames, and no layer is called dead; the same stack at 3× per layer (a
/// healthy spread of 1e-9 … 1) raises nothing.
#[test]
fn vanishing_gradients_are_named_within_a_few_steps() {
    let run_with = |per_layer: f64, lr: bool| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let mut s = 7u64;
        for step in 0..40u64 {
            let mut f = Frame::new(step).with_loss("loss", 2.3 - 0.001 * step as f64);
            for layer in 1..=20 {
                let v = 0.5 * per_layer.powi(layer - 20) * (1.0 + 0.1 * noise(&mut s));
                f = f.with_value(format!("fc{layer}"), v);
                if lr {
                    f = f.with_param(format!("fc{layer}"), 3.0 + 0.001 * step as f64);
                }
            }
            if lr {
                // An extra value after the norms (a learning rate in warmup): no layer, since
                // it has no parameter norm.
                f = f.with_value("lr", 1e-7 * (step + 1) as f64);
            }
            events.extend(d.observe(&f));
        }
        events
    };
    let run = |per_layer: f64| run_with(per_layer, false);
    assert!(run_with(1.5, true).is_empty(), "{:?}", run_with(1.5, true));
    let events = run(10.0);
    assert_eq!(kinds_at(&events), [(4, AlarmKind::Vanishing)], "{events:?}");
    let want: Vec<String> = (1..=14).map(|l| format!("fc{l}")).collect();
    // 0.5 × 10^(l−20) < 1e-5 × ≈0.5: l ≤ 14 (fc15 at 5e-6 is at the edge: noise decides).
    assert!(
        events[0].layers.len() >= 14 && events[0].layers[..14] == want[..],
        "{:?}",
        events[0].layers
    );
    assert!(
        events[0].message.contains("gradients vanish") && events[0].message.contains("fc1, fc2"),
        "{}",
        events[0].message
    );
    assert!(
        run(1.5).is_empty(),
        "a spread of 1.5^19 ≈ 2200 is no vanishing"
    );
}

/// A frozen optimiser: the parameter norms stop changing at step 30 while the gradients
/// flow; the alarm fires at the fifth identical frame (step 34). Frames without `params`, or
/// with gradients that do not flow, never fire it.
#[test]
fn frozen_weights_are_heard_while_gradients_flow() {
    let run = |with_params: bool, grad: f64| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let mut s = 3u64;
        for step in 0..60u64 {
            let t = step.min(29) as f64;
            let mut f = Frame::new(step).with_loss("loss", 2.0 - 0.01 * t + 0.02 * noise(&mut s));
            for (i, layer) in ["conv1", "fc1"].into_iter().enumerate() {
                f = f.with_value(layer, grad * (1.0 + 0.1 * noise(&mut s)));
                if with_params {
                    f = f.with_param(layer, 5.0 + i as f64 + 0.01 * t);
                }
            }
            events.extend(d.observe(&f));
        }
        events
    };
    let events = run(true, 0.5);
    let frozen: Vec<&AlarmEvent> = events
        .iter()
        .filter(|e| e.kind == AlarmKind::Frozen)
        .collect();
    assert_eq!(frozen.len(), 1, "{events:?}");
    assert_eq!(frozen[0].step, 34);
    assert!(
        frozen[0].message.contains("bit-identical for 5 steps"),
        "{}",
        frozen[0].message
    );
    assert!(run(false, 0.5).iter().all(|e| e.kind != AlarmKind::Frozen));
    assert!(
        run(true, 0.0).iter().all(|e| e.kind != AlarmKind::Frozen),
        "no gradient, nothing to apply"
    );
}

/// Parameter norms in every k-th frame only (what the Python hook sends when reading the weights
/// is costly): each is compared with the last, and identical steps count the steps between. The
/// weights stop moving at step 30: with k = 4 the norms at 36 equal those at 32
/// (4 identical steps) and at 40 (8 ≥ 5): the alarm fires at step 40, once; with k = 3, at 36
/// (33, then 36: 6 steps). A healthy run with the same sparse norms hears nothing.
#[test]
fn frozen_weights_are_heard_from_norms_sent_every_kth_step() {
    let run = |k: u64, stop: u64| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let mut s = 3u64;
        for step in 0..80u64 {
            let t = step.min(stop - 1) as f64;
            let mut f = Frame::new(step).with_loss("loss", 2.0 - 0.01 * t + 0.02 * noise(&mut s));
            for (i, layer) in ["conv1", "fc1"].into_iter().enumerate() {
                f = f.with_value(layer, 0.5 * (1.0 + 0.1 * noise(&mut s)));
                if step % k == 0 {
                    f = f.with_param(layer, 5.0 + i as f64 + 0.01 * t);
                }
            }
            events.extend(d.observe(&f));
        }
        events
    };
    let events = run(4, 31);
    assert_eq!(kinds_at(&events), [(40, AlarmKind::Frozen)], "{events:?}");
    assert!(
        events[0].message.contains("bit-identical for 8 steps"),
        "{}",
        events[0].message
    );
    let events = run(3, 31);
    assert_eq!(kinds_at(&events), [(36, AlarmKind::Frozen)], "{events:?}");
    assert_eq!(kinds_at(&run(4, 1000)), [], "healthy, norms every 4th step");
}

/// A non-finite step that leaves the run crippled (a poisoned optimiser: the weights move
/// 100× less after it) is followed by the frozen alarm 10 steps later; a run that recovers
/// (the weights move as before) only hears the non-finite siren.
#[test]
fn a_crippled_run_after_a_non_finite_step_is_heard_as_frozen() {
    let run = |after: f64| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let (mut p, mut s) = (10.0, 11u64);
        for step in 0..80u64 {
            let bad = step == 40;
            let rate = if step > 40 { after } else { 1e-3 };
            p *= 1.0 + rate * (1.0 + 0.3 * noise(&mut s));
            let g = if bad { f64::INFINITY } else { 0.4 };
            let f = Frame::new(step)
                .with_loss("loss", 1.0 + 0.02 * noise(&mut s))
                .with_value("w", g)
                .with_param("w", p);
            events.extend(d.observe(&f));
        }
        events
    };
    let crippled = run(1e-5);
    assert_eq!(
        kinds_at(&crippled),
        [(40, AlarmKind::NonFinite), (50, AlarmKind::Frozen)],
        "{crippled:?}"
    );
    assert!(
        crippled[1].message.contains("since the non-finite step 40"),
        "{}",
        crippled[1].message
    );
    assert_eq!(kinds_at(&run(1e-3)), [(40, AlarmKind::NonFinite)]);
}

/// As above with the weights' norms in every 4th frame until the non-finite step (at 60) and in
/// every frame after it (what the Python hook sends when reading the weights is costly): the
/// movement per step before is measured over the 4-step spans, and the crippled run is heard
/// 10 steps after; the run that recovers is not.
#[test]
fn a_crippled_run_is_heard_from_norms_sent_every_kth_step_before_it() {
    let run = |after: f64| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let (mut p, mut s) = (10.0, 11u64);
        for step in 0..100u64 {
            let bad = step == 60;
            let rate = if step > 60 { after } else { 1e-3 };
            p *= 1.0 + rate * (1.0 + 0.3 * noise(&mut s));
            let g = if bad { f64::INFINITY } else { 0.4 };
            let mut f = Frame::new(step)
                .with_loss("loss", 1.0 + 0.02 * noise(&mut s))
                .with_value("w", g);
            if step >= 60 || step % 4 == 0 {
                f = f.with_param("w", p);
            }
            events.extend(d.observe(&f));
        }
        events
    };
    let crippled = run(1e-5);
    assert_eq!(
        kinds_at(&crippled),
        [(60, AlarmKind::NonFinite), (70, AlarmKind::Frozen)],
        "{crippled:?}"
    );
    assert_eq!(kinds_at(&run(1e-3)), [(60, AlarmKind::NonFinite)]);
}

/// A gradient norm that rises 8× over ten steps while the loss falls fast is learning: no
/// alarm. The same rise with a loss that does not fall is an explosion.
#[test]
fn a_norm_rise_while_the_loss_falls_is_learning() {
    let run = |falls: bool| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let mut s = 5u64;
        for step in 0..60u64 {
            let t = step as f64;
            let rise = ((t - 30.0) / 10.0).clamp(0.0, 1.0);
            let norm = (1.0 + 7.0 * rise) * (1.0 + 0.05 * noise(&mut s));
            let loss = if falls { 2.3 - 1.0 * rise } else { 2.3 } + 0.02 * noise(&mut s);
            let f = Frame::new(step)
                .with_loss("loss", loss)
                .with_value("fc1", norm);
            events.extend(d.observe(&f));
        }
        events
    };
    assert!(run(true).is_empty(), "{:?}", run(true));
    let trouble = run(false);
    assert_eq!(
        trouble.first().map(|e| e.kind),
        Some(AlarmKind::Explosion),
        "{trouble:?}"
    );
}

/// The loss is judged against its own noise and recent level: a quiet loss (±2 %) that jumps
/// to 2.5× is heard at that step; one that steps up 1.6× and stays there is heard within the
/// five steps of the shift's median; a noisy loss (level 0.2, ×e^±1.5 per batch) whose single
/// batches reach 4.5× its level raises nothing.
#[test]
fn loss_jumps_and_shifts_are_judged_against_the_loss_noise() {
    let run = |loss_at: &dyn Fn(u64, f64) -> f64| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let mut s = 9u64;
        for step in 0..100u64 {
            let loss = loss_at(step, noise(&mut s));
            let f = Frame::new(step)
                .with_loss("loss", loss)
                .with_value("fc1", 1.0);
            events.extend(d.observe(&f));
        }
        events
    };
    let jump = run(&|step, n| if step >= 60 { 2.5 } else { 1.0 } * (1.0 + 0.02 * n));
    assert_eq!(
        kinds_at(&jump)[..1],
        [(60, AlarmKind::Divergence)],
        "{jump:?}"
    );
    assert!(
        jump[0].message.contains("loss jumped"),
        "{}",
        jump[0].message
    );
    let shift = run(&|step, n| if step >= 60 { 1.6 } else { 1.0 } * (1.0 + 0.05 * n));
    assert_eq!(shift.len(), 1, "{shift:?}");
    assert!((60..65).contains(&shift[0].step), "{shift:?}");
    assert!(
        shift[0].message.contains("rose and stays up"),
        "{}",
        shift[0].message
    );
    let noisy = run(&|step, n| {
        let t = step as f64;
        if step < 30 {
            2.0 - 1.8 * (t / 30.0)
        } else {
            0.2 * (1.5 * n).exp()
        }
    });
    assert!(noisy.is_empty(), "{noisy:?}");
}

/// With parameter norms in the frames, an update that moves the weights 100× more than usual
/// is an explosion at that step, even when the gradient was clipped; a warmup that grows the
/// steps gradually is not.
#[test]
fn an_update_that_jumps_is_an_explosion_even_when_clipped() {
    let run = |jump: bool| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let (mut p, mut s) = (20.0, 13u64);
        for step in 0..80u64 {
            // A warmup: the step grows 20× over the first 20 steps.
            let rate =
                1e-4 * (step.min(20) as f64 + 1.0) * if jump && step == 50 { 100.0 } else { 1.0 };
            p *= 1.0 + rate * (1.0 + 0.2 * noise(&mut s));
            let mut f = Frame::new(step)
                .with_loss("loss", 1.5 + 0.02 * noise(&mut s))
                .with_value("w", 3.0 + 0.1 * noise(&mut s))
                .with_param("w", p);
            f.clip = Some(1.0);
            events.extend(d.observe(&f));
        }
        events
    };
    assert!(run(false).is_empty(), "{:?}", run(false));
    let events = run(true);
    assert_eq!(
        kinds_at(&events),
        [(50, AlarmKind::Explosion)],
        "{events:?}"
    );
    assert!(
        events[0].message.contains("the weights jumped"),
        "{}",
        events[0].message
    );
}

/// With parameter norms in the frames, a value without one (a learning rate sent after the
/// norms) is no layer: its cosine schedule ending at exactly 0 is not a layer dying. The same
/// stream without `params` cannot tell, and calls it a dead layer.
#[test]
fn an_extra_value_without_params_is_not_a_layer() {
    let run = |every: u64| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        for step in 0..60u64 {
            let t = step as f64;
            let lr = 1e-3 * (1.0 + (std::f64::consts::PI * t / 59.0).cos()) / 2.0;
            let mut f = Frame::new(step)
                .with_loss("loss", 2.0 - 0.01 * t)
                .with_value("fc1", 0.5 + 0.01 * (t * 0.7).sin())
                .with_value("fc2", 0.3)
                .with_value("lr", if step == 59 { 0.0 } else { lr });
            if every > 0 && step % every == 0 {
                f = f
                    .with_param("fc1", 4.0 + 0.01 * t)
                    .with_param("fc2", 2.0 + 0.01 * t);
            }
            events.extend(d.observe(&f));
        }
        kinds_at(&events)
    };
    assert_eq!(run(1), []);
    // Norms in every 4th frame only (step 59 has none): the last ones still name the layers.
    assert_eq!(run(4), []);
    assert_eq!(run(0), [(59, AlarmKind::LayerDead)]);
}

/// After a rise that was learning, the 50-step median lags behind the norms: a single noisy
/// batch at 2× the recent level (12× that median, its loss back near the start) is no
/// explosion; the same batch at 15× the recent level is one.
#[test]
fn a_spike_must_stand_out_from_the_recent_level_too() {
    let run = |spike: f64| {
        let mut d = AlarmDetector::new(&AlarmConfig::default());
        let mut events = Vec::new();
        let mut s = 17u64;
        for step in 0..50u64 {
            let t = step as f64;
            let rise = ((t - 20.0) / 10.0).clamp(0.0, 1.0);
            let mut norm = (0.7 + 5.0 * rise) * (1.0 + 0.05 * noise(&mut s));
            let mut loss = 2.3 - 1.0 * rise + 0.02 * noise(&mut s);
            if step == 40 {
                norm *= spike;
                loss = 2.2;
            }
            let f = Frame::new(step)
                .with_loss("loss", loss)
                .with_value("fc1", norm);
            events.extend(d.observe(&f));
        }
        kinds_at(&events)
    };
    assert_eq!(run(2.0), []);
    assert_eq!(run(15.0), [(40, AlarmKind::Explosion)]);
}

/// The detector fires only the kinds of [`AlarmKind::DETECTOR`], and the alarms of one step in
/// that order (the order `WithAlarms` relies on to sound the most urgent first).
#[test]
fn the_detector_fires_its_kinds_in_detector_order() {
    let Some(dir) = trajectories("the_detector_fires_its_kinds_in_detector_order") else {
        return;
    };
    let rank = |k: AlarmKind| AlarmKind::DETECTOR.iter().position(|&d| d == k);
    let mut seen = std::collections::HashSet::new();
    for run in [
        "sgd_lr1.0_bs10_seed1",
        "sgd_lr1.0_bs256_seed1",
        "sgd_lr0.01_bs10_seed1",
    ] {
        let events = detect(&load(&dir, run));
        for pair in events.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.step == b.step {
                assert!(rank(a.kind) < rank(b.kind), "{run}: {a} before {b}");
            }
        }
        for e in &events {
            assert!(rank(e.kind).is_some(), "{run}: {e} is not a detector kind");
            seen.insert(e.kind);
        }
    }
    assert!(seen.len() >= 2, "the runs exercise several kinds: {seen:?}");
}
