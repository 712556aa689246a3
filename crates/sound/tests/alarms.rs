//! The earcons and `WithAlarms`, measured: each alarm's earcon as designed and distinct from the
//! others, mixed into the audio at the step where it fired. (Where the detector fires:
//! `gradtone-detect`'s `tests/detector.rs`.)

use std::path::PathBuf;

use gradtone_csv::read_frames;
use gradtone_detect::{AlarmConfig, AlarmDetector};
use gradtone_frame::{AlarmEvent, AlarmKind, Frame, Watch};
use gradtone_sound::alarm::{WithAlarms, earcon};
use gradtone_sound::analysis::{dominant_frequency, goertzel_power, peak};
use gradtone_sound::{Mapping, SeedMapping, SoundConfig, mapping};

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

/// What the pipeline does with one watch: the detector judges, the mapping plays its alarms.
struct Alarmed<M> {
    detector: AlarmDetector,
    player: WithAlarms<M>,
    events: Vec<AlarmEvent>,
}

impl<M: Mapping> Alarmed<M> {
    fn new(inner: M, config: &AlarmConfig) -> Self {
        Alarmed {
            detector: AlarmDetector::new(config),
            player: WithAlarms::new(inner, config),
            events: Vec::new(),
        }
    }

    fn render(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        let alarms = self.detector.observe(frame);
        self.player.play(frame, &alarms, out);
        self.events.extend(alarms);
    }
}

/// Dominant frequency of each consecutive `ms` slice of `x`.
fn slices(x: &[f32], ms: f32, lo: f64, hi: f64) -> Vec<f64> {
    let n = (ms * 44.1) as usize;
    x.chunks_exact(n)
        .map(|c| dominant_frequency(c, 44_100, lo, hi))
        .collect()
}

#[test]
fn earcons_are_distinct_and_bounded() {
    let sr = 44_100;
    let siren = earcon(AlarmKind::NonFinite, sr, 0.6);
    let sweep = earcon(AlarmKind::Explosion, sr, 0.6);
    let thud = earcon(AlarmKind::Dead, sr, 0.6);
    let beep = earcon(AlarmKind::Plateau, sr, 0.6);
    for (name, e) in [
        ("siren", &siren),
        ("sweep", &sweep),
        ("thud", &thud),
        ("beep", &beep),
    ] {
        assert_eq!(e.samples.len(), e.level.len());
        assert!(
            e.samples
                .iter()
                .zip(&e.level)
                .all(|(s, l)| s.abs() <= *l + 1e-6 && *l <= 0.6),
            "{name}: |sample| ≤ level ≤ volume"
        );
        // Click-free edges: starts and ends near silence.
        assert!(
            e.samples[0].abs() < 0.01 && e.samples[e.samples.len() - 1].abs() < 0.05,
            "{name}"
        );
    }
    // Siren: alternating 1500 / 1000 Hz every 55 ms.
    let f = slices(&siren.samples, 55.0, 200.0, 5000.0);
    println!(
        "siren: {:?}",
        f.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    for (i, got) in f.iter().enumerate() {
        let want = if i % 2 == 0 { 1500.0 } else { 1000.0 };
        assert!((got - want).abs() < 30.0, "segment {i}: {got}");
    }
    // Sweep: rising, low to high.
    let f = slices(&sweep.samples, 50.0, 100.0, 5000.0);
    println!(
        "sweep: {:?}",
        f.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    assert!(f.windows(2).all(|w| w[1] > w[0]), "monotonic rise");
    assert!(f[0] < 400.0 && f[f.len() - 1] > 2000.0);
    // Thud: low (< 120 Hz), three bursts, each lower.
    let n = (0.13 * 44_100.0) as usize;
    let gap = (0.09 * 44_100.0) as usize;
    let bursts: Vec<f64> = (0..3)
        .map(|k| {
            dominant_frequency(
                &thud.samples[k * (n + gap)..k * (n + gap) + n],
                sr,
                20.0,
                1000.0,
            )
        })
        .collect();
    println!("thuds: {bursts:?}");
    assert!(bursts.iter().all(|&f| f < 120.0) && bursts[0] > bursts[1] && bursts[1] > bursts[2]);
    assert!(
        peak(&thud.samples[n..n + gap]) == 0.0,
        "silence between thuds"
    );
    // Beep: 660 Hz, two of them, softer than the others.
    let got = dominant_frequency(&beep.samples, sr, 100.0, 5000.0);
    assert!((got - 660.0).abs() < 10.0, "{got}");
    let max_level =
        |e: &gradtone_sound::alarm::Earcon| e.level.iter().fold(0.0f32, |a, &b| a.max(b));
    assert!(
        max_level(&beep) <= 0.6 * max_level(&siren) + 1e-6,
        "the beep is the soft one"
    );
}

#[test]
fn with_alarms_mixes_the_earcon_at_the_firing_step_and_leaves_the_rest_alone() {
    let Some(dir) = trajectories("with_alarms_mixes_the_earcon_at_the_firing_step") else {
        return;
    };
    let frames = load(&dir, "sgd_lr1.0_bs10_seed1");
    let nan_at = first_non_finite(&frames).expect("diverges");
    // Seed mapping with alarms: mono, so the earcon is mixed in mono.
    let mut plain = SeedMapping::new();
    let mut cfg = AlarmConfig::default();
    // Only the siren, for a clean measurement (the divergence alarm, new, fires at step 1).
    cfg.explosion.enabled = false;
    cfg.divergence.enabled = false;
    let mut wrapped = Alarmed::new(SeedMapping::new(), &cfg);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut step_start = 0;
    for f in &frames {
        if f.step == nan_at {
            step_start = a.len();
        }
        plain.render(f, &mut a);
        wrapped.render(f, &mut b);
    }
    assert_eq!(a.len(), b.len(), "alarms do not change the timing");
    assert_eq!(
        a[..step_start],
        b[..step_start],
        "untouched before the alarm"
    );
    let events = &wrapped.events;
    assert_eq!(events.iter().map(|e| e.step).collect::<Vec<_>>(), [nan_at]);
    // The first 55 ms after the step starts carry the siren's 1500 Hz.
    let win = &b[step_start..step_start + 2425];
    let p = goertzel_power(win, 44_100, 1500.0);
    let p0 = goertzel_power(&a[step_start..step_start + 2425], 44_100, 1500.0);
    println!("1500 Hz power at the NaN step: {p:.2e} with alarms, {p0:.2e} without");
    assert!(p > 0.02 && p > 100.0 * p0);
    assert!(peak(&b) <= 1.0);

    // A stereo mapping from the config, alarms on: same story, both channels, never clipping.
    let mut sc = SoundConfig::default();
    sc.synth.volume = 1.0;
    let mut m = Alarmed {
        detector: AlarmDetector::new(&sc.alarms),
        player: mapping::with_alarms(&sc),
        events: Vec::new(),
    };
    let mut out = Vec::new();
    for f in &frames {
        m.render(f, &mut out);
    }
    m.player.flush(&mut out);
    let kinds: Vec<AlarmKind> = m.events.iter().map(|e| e.kind).collect();
    // The loss diverges at step 1 with the norm (new: the divergence alarm).
    assert_eq!(
        kinds,
        [
            AlarmKind::Explosion,
            AlarmKind::Divergence,
            AlarmKind::NonFinite
        ]
    );
    assert!(peak(&out) <= 1.0, "{}", peak(&out));
    assert_eq!(out.len() % 2, 0);
}

/// A rank alarm (another watch's: the rank merger's) knocks at 880 Hz in its step's audio; of
/// several alarms at one step, each of another watch sounds, but only the first gradient one.
#[test]
fn played_rank_alarm_knocks_in_its_steps_audio() {
    let mut m = WithAlarms::new(SeedMapping::new(), &AlarmConfig::default());
    let frame = |s| Frame::new(s).with_value("fc1", 1.0).with_value("fc2", 1.0);
    let mut quiet = Vec::new();
    m.play(&frame(0), &[], &mut quiet);
    let rank = AlarmEvent::new(1, AlarmKind::Rank, "rank 3 lags");
    let mut knocked = Vec::new();
    m.play(&frame(1), std::slice::from_ref(&rank), &mut knocked);
    // The seed tones sit at 300 Hz; the knock adds 880 Hz energy that the quiet step lacks.
    let (before, after) = (
        goertzel_power(&quiet[..1500], 44_100, 880.0),
        goertzel_power(&knocked[..1500], 44_100, 880.0),
    );
    assert!(
        after > 100.0 * before.max(1e-12),
        "880 Hz power {before} → {after}"
    );
    assert!(knocked.iter().all(|x| x.abs() <= 1.0));

    // How long the earcons queued by one (silent) step ring.
    let ringing = |alarms: &[AlarmEvent]| {
        let mut m = WithAlarms::new(SeedMapping::new(), &AlarmConfig::default());
        let mut out = Vec::new();
        m.play(&Frame::new(0), alarms, &mut out);
        m.flush(&mut out);
        out.len()
    };
    let ev = |kind| AlarmEvent::new(1, kind, "x");
    let (nan, dead) = (ev(AlarmKind::NonFinite), ev(AlarmKind::Dead));
    let two_gradient = ringing(&[nan.clone(), dead.clone()]);
    assert_eq!(
        two_gradient,
        ringing(std::slice::from_ref(&nan)),
        "one gradient alarm sounds"
    );
    assert!(
        ringing(&[rank.clone(), nan.clone(), dead]) > two_gradient,
        "the knock sounds too"
    );
    assert!(
        ringing(&[rank.clone(), rank]) > ringing(&[ev(AlarmKind::Rank)]),
        "every other alarm sounds"
    );
    assert!(two_gradient > ringing(&[]), "the siren rings past the step");
}

/// The seesaw rises an octave then falls; the collapse trill narrows to one held note; the
/// sweep marker pings as often as asked. All stay within their level and start quietly.
#[test]
fn imbalance_collapse_and_marker_earcons_measure_as_designed() {
    let sr = 44_100;
    let seesaw = earcon(AlarmKind::Imbalance, sr, 0.6);
    let f = slices(&seesaw.samples, 50.0, 100.0, 2000.0);
    println!(
        "seesaw: {:?}",
        f.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    let top = f
        .iter()
        .enumerate()
        .fold(0, |b, (i, &x)| if x > f[b] { i } else { b });
    assert!((3..=4).contains(&top), "peak in the middle: {top}");
    assert!(f[0] < 420.0 && f[top] > 560.0 && f[f.len() - 1] < 420.0);
    let collapse = earcon(AlarmKind::Collapse, sr, 0.6);
    // Trill spread (Hz between neighbouring notes) shrinks: 784−523, 698−587, 659−622.
    let mut at = 0;
    let mut spreads = Vec::new();
    for i in 0..3 {
        let n = ((45.0 + 15.0 * i as f32) * 44.1) as usize;
        let a = dominant_frequency(&collapse.samples[at..at + n], sr, 300.0, 1200.0);
        let b = dominant_frequency(&collapse.samples[at + n..at + 2 * n], sr, 300.0, 1200.0);
        spreads.push((b - a).abs());
        at += 2 * n;
    }
    println!("collapse spreads: {spreads:?}");
    assert!(
        spreads[0] > spreads[1] && spreads[1] > spreads[2],
        "{spreads:?}"
    );
    let held = dominant_frequency(&collapse.samples[at..], sr, 300.0, 1200.0);
    assert!((held - 640.0).abs() < 15.0, "{held}");
    for e in [&seesaw, &collapse] {
        assert!(
            e.samples
                .iter()
                .zip(&e.level)
                .all(|(s, l)| s.abs() <= *l + 1e-6 && *l <= 0.6)
        );
        assert!(e.samples[0].abs() < 0.01);
    }
    // Marker: count the pings by their onsets.
    for count in [1usize, 3] {
        let m = gradtone_sound::alarm::marker(count, sr, 0.5);
        let onsets = m
            .level
            .windows(2)
            .filter(|w| w[0] == 0.0 && w[1] > 0.0)
            .count()
            + usize::from(m.level[0] > 0.0);
        assert_eq!(onsets, count);
        let f = dominant_frequency(&m.samples, sr, 200.0, 5000.0);
        assert!((f - 1760.0).abs() < 20.0, "{f}");
    }
}

/// The oscillation earcon swings between 404 and 571 Hz eight times in 400 ms.
#[test]
fn oscillation_earcon_swings() {
    let e = earcon(AlarmKind::Oscillation, 44_100, 0.6);
    assert_eq!(e.samples.len(), 8 * 2205);
    // Each 50 ms glide: its first and last 12 ms sit near opposite ends.
    let n = 2205;
    let seg = |k: usize, from: usize| {
        dominant_frequency(
            &e.samples[k * n + from..k * n + from + 530],
            44_100,
            300.0,
            800.0,
        )
    };
    for k in 0..8 {
        let (start, end) = (seg(k, 0), seg(k, n - 530));
        if k % 2 == 0 {
            assert!(end > start + 80.0, "glide {k} rises: {start} → {end}");
        } else {
            assert!(start > end + 80.0, "glide {k} falls: {start} → {end}");
        }
    }
    assert!(
        e.samples
            .iter()
            .zip(&e.level)
            .all(|(s, l)| s.abs() <= *l + 1e-6 && *l <= 0.6)
    );
    assert!(e.samples[0].abs() < 0.01);
}

/// Spectrogram of 20 ms frames in 24 log-spaced bands (50 Hz – 6 kHz), each frame normalised.
fn band_frames(x: &[f32]) -> Vec<Vec<f64>> {
    let n = 882;
    let edges: Vec<f64> = (0..=24)
        .map(|i| 50.0 * (6000.0f64 / 50.0).powf(i as f64 / 24.0))
        .collect();
    x.chunks_exact(n)
        .map(|c| {
            let spec = gradtone_sound::analysis::Spectrum::of(c, 44_100);
            let v: Vec<f64> = edges
                .windows(2)
                .map(|w| spec.band_power(w[0], w[1]))
                .collect();
            let norm = v.iter().map(|p| p * p).sum::<f64>().sqrt();
            v.into_iter()
                .map(|p| if norm > 0.0 { p / norm } else { 0.0 })
                .collect()
        })
        .collect()
}

/// Best mean cosine similarity of `a`'s frames against `b`'s over every alignment that
/// overlaps by at least half the shorter one.
fn similarity(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let min_overlap = a.len().min(b.len()) / 2;
    let mut best = 0.0f64;
    for lag in -(b.len() as i64)..(a.len() as i64) {
        let pairs: Vec<f64> = (0..a.len() as i64)
            .filter_map(|i| {
                let j = i - lag;
                (j >= 0 && (j as usize) < b.len()).then(|| {
                    a[i as usize]
                        .iter()
                        .zip(&b[j as usize])
                        .map(|(x, y)| x * y)
                        .sum::<f64>()
                })
            })
            .collect();
        if pairs.len() >= min_overlap.max(1) {
            best = best.max(pairs.iter().sum::<f64>() / pairs.len() as f64);
        }
    }
    best
}

/// Every detector kind has its own earcon, and no two sound alike: their spectrograms match
/// themselves perfectly and each other poorly at any alignment. The two new ones measure as
/// designed: the divergence figure climbs in four steps, the layer-death glide falls and ends
/// in one low knock.
#[test]
fn the_six_detector_earcons_are_distinct() {
    let sr = 44_100;
    let specs: Vec<(AlarmKind, Vec<Vec<f64>>)> = AlarmKind::DETECTOR
        .into_iter()
        .map(|k| (k, band_frames(&earcon(k, sr, 0.6).samples)))
        .collect();
    for (i, (ka, a)) in specs.iter().enumerate() {
        assert!(
            (similarity(a, a) - 1.0).abs() < 0.05 || a.iter().any(|f| f.iter().all(|&x| x == 0.0))
        );
        for (kb, b) in &specs[i + 1..] {
            let s = similarity(a, b);
            println!("{ka} vs {kb}: {s:.2}");
            assert!(s < 0.75, "{ka} and {kb} sound alike: {s:.2}");
        }
    }
    // Divergence: four notes, each higher, a fourth apart.
    let div = earcon(AlarmKind::Divergence, sr, 0.6);
    let note = (0.085 * 44_100.0) as usize;
    let gap = (0.02 * 44_100.0) as usize;
    let notes: Vec<f64> = (0..4)
        .map(|k| {
            dominant_frequency(
                &div.samples[k * (note + gap)..k * (note + gap) + note],
                sr,
                100.0,
                2000.0,
            )
        })
        .collect();
    println!("divergence notes: {notes:?}");
    for (got, want) in notes.iter().zip([330.0, 440.0, 587.0, 784.0]) {
        assert!((got - want).abs() < 10.0, "{notes:?}");
    }
    // Layer death: a falling glide, then a knock below 120 Hz.
    let ld = earcon(AlarmKind::LayerDead, sr, 0.6);
    let glide = slices(&ld.samples[..(0.3 * 44_100.0) as usize], 50.0, 60.0, 2000.0);
    println!("layer_dead glide: {glide:?}");
    assert!(glide.windows(2).all(|w| w[1] < w[0]), "falls: {glide:?}");
    assert!(
        glide[0] > 600.0 && glide[glide.len() - 1] < 250.0,
        "{glide:?}"
    );
    let knock_at = (0.36 * 44_100.0) as usize;
    let knock = dominant_frequency(&ld.samples[knock_at..], sr, 20.0, 1000.0);
    assert!(knock < 120.0, "{knock}");
    for e in [&div, &ld] {
        assert!(
            e.samples
                .iter()
                .zip(&e.level)
                .all(|(s, l)| s.abs() <= *l + 1e-6 && *l <= 0.6)
        );
        assert!(e.samples[0].abs() < 0.01 && e.samples[e.samples.len() - 1].abs() < 0.05);
    }
}

/// The new alarms are heard in the rendered audio at the step they fire: the divergence
/// figure's first note (330 Hz) and the layer-death glide's start (≈ 860 Hz) are there with
/// alarms and not without.
#[test]
fn divergence_and_layer_death_are_heard_at_their_step() {
    let Some(dir) = trajectories("divergence_and_layer_death_are_heard") else {
        return;
    };
    let frames = load(&dir, "sgd_lr1.0_bs10_seed3");
    for (kind, freq, ms) in [
        (AlarmKind::Divergence, 330.0, 80.0),
        (AlarmKind::LayerDead, 860.0, 12.0),
    ] {
        let mut cfg = AlarmConfig::default();
        cfg.non_finite.enabled = kind == AlarmKind::NonFinite;
        cfg.explosion.enabled = false;
        cfg.dead.enabled = false;
        cfg.plateau.enabled = false;
        cfg.divergence.enabled = kind == AlarmKind::Divergence;
        cfg.layer_dead.enabled = kind == AlarmKind::LayerDead;
        let mut plain = SeedMapping::new();
        let mut wrapped = Alarmed::new(SeedMapping::new(), &cfg);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut starts = Vec::new();
        for f in &frames {
            starts.push(b.len());
            plain.render(f, &mut a);
            wrapped.render(f, &mut b);
        }
        let e = wrapped.events.first().expect("fired");
        assert_eq!(e.kind, kind);
        let at = starts[frames.iter().position(|f| f.step == e.step).expect("step")];
        let n = (ms * 44.1) as usize;
        let (p, p0) = (
            goertzel_power(&b[at..at + n], 44_100, freq),
            goertzel_power(&a[at..at + n], 44_100, freq),
        );
        println!(
            "{kind} at step {}: {freq} Hz power {p:.2e} with alarms, {p0:.2e} without",
            e.step
        );
        assert!(p > 0.003 && p > 100.0 * p0, "{kind}: {p} vs {p0}");
        assert!(peak(&b) <= 1.0);
    }
}
