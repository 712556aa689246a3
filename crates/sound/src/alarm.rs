//! Alarms: detectors that watch frames for trouble, and earcons that make it unmissable.
//!
//! [`AlarmDetector::observe`] looks at each frame's raw values (per-layer gradient norms) and
//! first loss. Each detector fires **once per episode**: after firing it stays quiet until its
//! condition has been false for `rearm_after` consecutive steps (default 20).
//!
//! | kind | condition (defaults) | earcon |
//! |---|---|---|
//! | [`NonFinite`](AlarmKind::NonFinite) | any value or loss is NaN or ±∞ | fast two-tone siren, 1000/1500 Hz |
//! | [`Explosion`](AlarmKind::Explosion) | the total norm `√Σ v²` > `factor` (10) × its running median over the last `window` (50) steps, once `warmup` (2) steps are in | rising sweep 250 → 3000 Hz |
//! | [`Dead`](AlarmKind::Dead) | every value < `epsilon` (1e-7) in magnitude: vanished or exactly 0 (checked per instrument when the names carry several, e.g. `g_adv/…`; see [`crate::mapping::instrument_of`]) | three low falling thuds |
//! | [`Plateau`](AlarmKind::Plateau) | median loss of the last `window` (50) steps is not `min_improvement_pct` (1 %) below the median of the `window` steps before | soft double beep, 660 Hz |
//!
//!
//! Three more kinds are raised from outside with [`WithAlarms::raise`], by whoever can see the
//! condition: [`Rank`](AlarmKind::Rank) (knocks), [`Imbalance`](AlarmKind::Imbalance) (a slow
//! up-and-down seesaw), [`Collapse`](AlarmKind::Collapse) (a trill that narrows to one note) and
//! [`Oscillation`](AlarmKind::Oscillation) (a wide, fast vibrato).
//!
//! The explosion defaults were tuned on the reference trajectories (`shared/reference/pytorch/
//! trajectories`): the healthy `sgd_lr0.01` and `sgd_lr0.1` runs peak at 2.8× and 6.3× their
//! running median (so factor 10 leaves a 1.6× margin), while the `sgd_lr1.0` runs reach 19×–1089×
//! at steps 2–4, before they go non-finite (step 5) or dead (steps 20, 30). A warm-up of 2 steps
//! skips the first update, which legitimately jumps 10–90× in every run. The total norm rather
//! than each layer's: one small layer (conv1) alone swings 9× in healthy runs.
//!
//! [`WithAlarms`] wraps any [`Mapping`] and mixes the earcon into the audio of the step where
//! the alarm fires (ducking the music under it, so the sum stays within ±1); an earcon longer
//! than a step carries on into the next steps' audio.

use std::collections::VecDeque;
use std::fmt;

use serde::Deserialize;

use crate::Mapping;
use crate::stats::{RunningMedian, median_of};
use crate::synth::sin_cycles;
use gradtone_frame::Frame;
pub use gradtone_frame::{AlarmEvent, AlarmKind};

/// Alarm settings (the `[alarms]` table of the config file).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlarmConfig {
    /// Whether mappings made by [`crate::mapping::with_alarms`] sound alarms at all (default
    /// true).
    pub enabled: bool,
    /// Earcon peak level, 0–1 (default 0.6); the music is ducked by the same amount under it.
    pub volume: f32,
    /// Calm steps after which a fired detector can fire again (default 20).
    pub rearm_after: u32,
    /// NaN / ±∞ detector (`[alarms.non_finite]`).
    pub non_finite: NonFiniteConfig,
    /// Exploding-norm detector (`[alarms.explosion]`).
    pub explosion: ExplosionConfig,
    /// Vanished/dead gradient detector (`[alarms.dead]`).
    pub dead: DeadConfig,
    /// Loss plateau detector (`[alarms.plateau]`).
    pub plateau: PlateauConfig,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            enabled: true,
            volume: 0.6,
            rearm_after: 20,
            non_finite: NonFiniteConfig::default(),
            explosion: ExplosionConfig::default(),
            dead: DeadConfig::default(),
            plateau: PlateauConfig::default(),
        }
    }
}

impl AlarmConfig {
    /// Checks ranges; the error is `(field, what is allowed)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let bad = |f: &'static str, m: &str| Err((f, m.to_owned()));
        if !(0.0..=1.0).contains(&self.volume) {
            return bad("alarms.volume", "must be 0–1");
        }
        if self.rearm_after == 0 {
            return bad("alarms.rearm_after", "must be ≥ 1 step");
        }
        let e = &self.explosion;
        if !(e.factor.is_finite() && e.factor > 1.0) {
            return bad("alarms.explosion.factor", "must be > 1");
        }
        if e.window == 0 {
            return bad("alarms.explosion.window", "must be ≥ 1 step");
        }
        if e.warmup == 0 {
            return bad("alarms.explosion.warmup", "must be ≥ 1 step");
        }
        if !(self.dead.epsilon.is_finite() && self.dead.epsilon >= 0.0) {
            return bad("alarms.dead.epsilon", "must be ≥ 0");
        }
        let p = &self.plateau;
        if p.window < 2 {
            return bad("alarms.plateau.window", "must be ≥ 2 steps");
        }
        if !(p.min_improvement_pct.is_finite() && p.min_improvement_pct >= 0.0) {
            return bad("alarms.plateau.min_improvement_pct", "must be ≥ 0");
        }
        Ok(())
    }
}

/// `[alarms.non_finite]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NonFiniteConfig {
    /// On (default true).
    pub enabled: bool,
}

impl Default for NonFiniteConfig {
    fn default() -> Self {
        NonFiniteConfig { enabled: true }
    }
}

/// `[alarms.explosion]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExplosionConfig {
    /// On (default true).
    pub enabled: bool,
    /// Fire when the total norm exceeds this multiple of its running median (default 10).
    pub factor: f64,
    /// Steps of history before the detector may fire (default 2).
    pub warmup: usize,
    /// Steps in the running median (default 50).
    pub window: usize,
}

impl Default for ExplosionConfig {
    fn default() -> Self {
        ExplosionConfig {
            enabled: true,
            factor: 10.0,
            warmup: 2,
            window: 50,
        }
    }
}

/// `[alarms.dead]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadConfig {
    /// On (default true).
    pub enabled: bool,
    /// Fire when every value's magnitude is below this (default 1e-7; 0 means exactly zero).
    pub epsilon: f64,
}

impl Default for DeadConfig {
    fn default() -> Self {
        DeadConfig {
            enabled: true,
            epsilon: 1e-7,
        }
    }
}

/// `[alarms.plateau]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateauConfig {
    /// On (default true).
    pub enabled: bool,
    /// Steps per comparison window (default 50; needs 2 × window finite losses).
    pub window: usize,
    /// Fire when the loss improved by less than this percentage between windows (default 1).
    pub min_improvement_pct: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            enabled: true,
            window: 50,
            min_improvement_pct: 1.0,
        }
    }
}

/// Once-per-episode latch: fires on the first true step, re-arms after `rearm` false steps.
#[derive(Clone, Debug, Default)]
struct Latch {
    fired: bool,
    calm: u32,
}

impl Latch {
    fn update(&mut self, condition: bool, rearm: u32) -> bool {
        if condition {
            self.calm = 0;
            if !self.fired {
                self.fired = true;
                return true;
            }
        } else if self.fired {
            self.calm += 1;
            if self.calm >= rearm {
                self.fired = false;
                self.calm = 0;
            }
        }
        false
    }
}

/// Runs every enabled detector over a stream of frames. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AlarmDetector {
    config: AlarmConfig,
    latches: [Latch; 4],
    total_median: RunningMedian,
    /// Per-layer medians, for naming the exploding layers.
    layer_medians: Vec<(String, RunningMedian)>,
    losses: VecDeque<f64>,
    scratch: Vec<f64>,
}

impl AlarmDetector {
    /// A detector with `config`'s thresholds.
    pub fn new(config: &AlarmConfig) -> Self {
        AlarmDetector {
            config: config.clone(),
            latches: Default::default(),
            total_median: RunningMedian::new(config.explosion.window),
            layer_medians: Vec::new(),
            losses: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// Feeds one frame; returns the alarms that fire at its step (in [`AlarmKind::ALL`] order).
    pub fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        let rearm = self.config.rearm_after;
        let conditions = [
            self.non_finite(frame),
            self.explosion(frame),
            self.dead(frame),
            self.plateau(frame),
        ];
        for (i, condition) in conditions.into_iter().enumerate() {
            let fire = self.latches[i].update(condition.is_some(), rearm);
            if let (true, Some(detail)) = (fire, condition) {
                let kind = AlarmKind::ALL[i];
                events.push(AlarmEvent {
                    step: frame.step,
                    kind,
                    message: format!("step {}: ALARM {}: {detail}", frame.step, kind),
                });
            }
        }
        events
    }

    fn non_finite(&self, frame: &Frame) -> Option<String> {
        if !self.config.non_finite.enabled {
            return None;
        }
        let bad: Vec<String> = frame
            .values
            .iter()
            .chain(&frame.losses)
            .filter(|n| !n.value.is_finite())
            .map(|n| format!("{} = {}", n.name, n.value))
            .collect();
        (!bad.is_empty())
            .then(|| format!("non-finite {}; the run has diverged", list_some(&bad, 6)))
    }

    fn explosion(&mut self, frame: &Frame) -> Option<String> {
        let cfg = &self.config.explosion;
        if !cfg.enabled {
            return None;
        }
        let finite: Vec<&crate::Named> = frame
            .values
            .iter()
            .filter(|n| n.value.is_finite())
            .collect();
        let total = finite.iter().map(|n| n.value * n.value).sum::<f64>().sqrt();
        let mut detail = None;
        if !finite.is_empty()
            && total.is_finite()
            && self.total_median.len() >= cfg.warmup
            && let Some(median) = self.total_median.median()
            && median > self.config.dead.epsilon.max(f64::MIN_POSITIVE)
            && total > cfg.factor * median
        {
            // Name the layers that grew the most against their own medians.
            let mut ratios: Vec<(f64, String)> = finite
                .iter()
                .filter_map(|n| {
                    let m = self
                        .layer_medians
                        .iter_mut()
                        .find(|(name, _)| *name == n.name)?
                        .1
                        .median()?;
                    (m > 0.0).then(|| {
                        (
                            n.value / m,
                            format!(
                                "{} = {:.4} ({:.0}× its median {:.4})",
                                n.name,
                                Sci(n.value),
                                n.value / m,
                                Sci(m)
                            ),
                        )
                    })
                })
                .collect();
            ratios.sort_by(|a, b| b.0.total_cmp(&a.0));
            let layers: Vec<String> = ratios.into_iter().take(3).map(|(_, s)| s).collect();
            detail = Some(format!(
                "gradient norm exploded: total {:.4} is {:.0}× its running median {:.4} (> {}×){}{}",
                Sci(total),
                total / median,
                Sci(median),
                cfg.factor,
                if layers.is_empty() { "" } else { "; " },
                layers.join(", ")
            ));
        }
        // Dead steps (all ~0) do not define the normal level: a dead stretch would make any
        // revival look like an explosion, and hide a real one after it.
        if !finite.is_empty() && total > self.config.dead.epsilon {
            self.total_median.push(total);
        }
        for n in &finite {
            match self
                .layer_medians
                .iter_mut()
                .find(|(name, _)| *name == n.name)
            {
                Some((_, m)) => m.push(n.value),
                None => {
                    let mut m = RunningMedian::new(cfg.window);
                    m.push(n.value);
                    self.layer_medians.push((n.name.clone(), m));
                }
            }
        }
        detail
    }

    fn dead(&self, frame: &Frame) -> Option<String> {
        let cfg = &self.config.dead;
        if !cfg.enabled || frame.values.is_empty() {
            return None;
        }
        let eps = cfg.epsilon;
        // One instrument (a loss term's voices) going silent is news even while the others
        // play on: a GAN whose generator gradients vanish.
        let mut instruments: Vec<(&str, Vec<&gradtone_frame::Named>)> = Vec::new();
        for n in &frame.values {
            let inst = crate::mapping::instrument_of(&n.name);
            match instruments.iter_mut().find(|(i, _)| *i == inst) {
                Some((_, members)) => members.push(n),
                None => instruments.push((inst, vec![n])),
            }
        }
        let several = instruments.len() > 1;
        let lines: Vec<String> = instruments
            .iter()
            .filter(|(_, members)| {
                members
                    .iter()
                    .all(|n| n.value == 0.0 || n.value.abs() < eps)
            })
            .map(|(inst, members)| {
                let largest = members.iter().map(|n| n.value.abs()).fold(0.0, f64::max);
                let names: Vec<&str> = members.iter().map(|n| n.name.as_str()).collect();
                let whose = if several {
                    format!("gradients of {inst}")
                } else {
                    "gradients".to_owned()
                };
                if largest == 0.0 {
                    format!(
                        "{whose} are dead: all {} norms are exactly 0 ({}); nothing is learning",
                        names.len(),
                        list_some(&names, 6)
                    )
                } else {
                    format!(
                        "{whose} vanished: all {} norms < {eps:e} (largest {largest:e}; {})",
                        names.len(),
                        list_some(&names, 6)
                    )
                }
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("; "))
    }

    fn plateau(&mut self, frame: &Frame) -> Option<String> {
        let cfg = &self.config.plateau;
        if !cfg.enabled {
            return None;
        }
        let loss = frame.loss().filter(|l| l.is_finite())?;
        let w = cfg.window;
        if self.losses.len() == 2 * w {
            self.losses.pop_front();
        }
        self.losses.push_back(loss);
        if self.losses.len() < 2 * w {
            return None;
        }
        let before = median_of(&mut self.scratch, self.losses.iter().take(w).copied())?;
        let recent = median_of(&mut self.scratch, self.losses.iter().skip(w).copied())?;
        let improvement = if before.abs() > 0.0 {
            100.0 * (before - recent) / before.abs()
        } else {
            0.0
        };
        (improvement < cfg.min_improvement_pct).then(|| {
            format!(
                "loss plateau: median loss {:.4} over the last {w} steps vs {:.4} over the {w} before ({improvement:+.2} %, less than {} %)",
                Sci(recent),
                Sci(before),
                cfg.min_improvement_pct
            )
        })
    }
}

/// `a, b, c (+N more)`.
fn list_some<S: AsRef<str>>(items: &[S], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(AsRef::as_ref).collect();
    let mut s = shown.join(", ");
    if items.len() > max {
        s.push_str(&format!(" (+{} more)", items.len() - max));
    }
    s
}

/// A number printed plainly when moderate and in exponent form when huge or tiny.
struct Sci(f64);

impl fmt::Display for Sci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let prec = f.precision().unwrap_or(4);
        if v != 0.0 && v.is_finite() && !(1e-3..1e6).contains(&v.abs()) {
            write!(f, "{v:.prec$e}", prec = prec.min(3))
        } else {
            write!(f, "{v:.prec$}")
        }
    }
}

/// An earcon: mono samples with the level they occupy (`|sample| ≤ level ≤ 1`), so the music
/// can be ducked by exactly that much.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Earcon {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Envelope level at each sample.
    pub level: Vec<f32>,
}

/// Builds earcons by appending tone segments with a continuous phase.
struct EarconBuilder {
    sr: f32,
    phase: f32,
    out: Earcon,
}

impl EarconBuilder {
    fn new(sample_rate: u32) -> Self {
        EarconBuilder {
            sr: sample_rate as f32,
            phase: 0.0,
            out: Earcon::default(),
        }
    }

    /// `ms` of a tone gliding exponentially from `f0` to `f1` Hz with odd-harmonic `partials`
    /// (normalised; harmonics above 0.45·fs dropped) under the envelope `env(t ∈ [0,1))`.
    fn tone(&mut self, ms: f32, f0: f32, f1: f32, partials: &[f32], env: impl Fn(f32) -> f32) {
        let n = (ms * 1e-3 * self.sr) as usize;
        let limit = crate::synth::BAND_LIMIT * self.sr;
        for i in 0..n {
            let t = i as f32 / n as f32;
            let f = f0 * (f1 / f0).powf(t);
            let (mut acc, mut norm) = (0.0f32, 0.0f32);
            for (j, &w) in partials.iter().enumerate() {
                let k = (2 * j + 1) as f32;
                if k * f < limit {
                    acc += w * sin_cycles(k * self.phase);
                    norm += w.abs();
                }
            }
            let level = env(t).clamp(0.0, 1.0);
            self.out
                .samples
                .push(if norm > 0.0 { level * acc / norm } else { 0.0 });
            self.out.level.push(level);
            self.phase = (self.phase + f / self.sr).fract();
        }
    }

    fn silence(&mut self, ms: f32) {
        let n = (ms * 1e-3 * self.sr) as usize;
        self.out.samples.resize(self.out.samples.len() + n, 0.0);
        self.out.level.resize(self.out.level.len() + n, 0.0);
    }
}

/// Linear attack/release of `ramp` (fraction of the segment) around a flat top.
fn flat(ramp: f32) -> impl Fn(f32) -> f32 {
    move |t: f32| (t / ramp).min((1.0 - t) / ramp).min(1.0)
}

/// The earcon for `kind` at `sample_rate`, peak `volume`. Durations: siren 440 ms, sweep
/// 400 ms, thuds 570 ms, double beep 250 ms.
pub fn earcon(kind: AlarmKind, sample_rate: u32, volume: f32) -> Earcon {
    let mut b = EarconBuilder::new(sample_rate);
    let v = volume.clamp(0.0, 1.0);
    match kind {
        AlarmKind::NonFinite => {
            // Siren: 8 × 55 ms alternating 1500/1000 Hz, a reed-like buzz; ramps only at the ends.
            for i in 0..8 {
                let f = if i % 2 == 0 { 1500.0 } else { 1000.0 };
                let env = move |t: f32| {
                    let edge = if i == 0 {
                        t / 0.1
                    } else if i == 7 {
                        (1.0 - t) / 0.1
                    } else {
                        1.0
                    };
                    v * edge.min(1.0)
                };
                b.tone(55.0, f, f, &[1.0, 0.33, 0.2], env);
            }
        }
        AlarmKind::Explosion => {
            // Rising exponential sweep, 250 → 3000 Hz.
            let env = flat(0.03);
            b.tone(400.0, 250.0, 3000.0, &[1.0, 0.25], move |t| v * env(t));
        }
        AlarmKind::Dead => {
            // Three falling thuds, each lower than the last, with a fast decay.
            for (i, f) in [110.0f32, 90.0, 70.0].into_iter().enumerate() {
                b.tone(130.0, f, f * 0.6, &[1.0, 0.15], move |t| {
                    v * (t / 0.04).min(1.0) * (-5.0 * t).exp() * ((1.0 - t) / 0.05).min(1.0)
                });
                if i < 2 {
                    b.silence(90.0);
                }
            }
        }
        AlarmKind::Rank => {
            // Knocks: three short, fast-decaying 880 Hz ticks, "someone is out of step".
            for i in 0..3 {
                b.tone(35.0, 880.0, 880.0, &[1.0, 0.5], move |t| {
                    v * (t / 0.1).min(1.0) * (-6.0 * t).exp() * ((1.0 - t) / 0.1).min(1.0)
                });
                if i < 2 {
                    b.silence(70.0);
                }
            }
        }
        AlarmKind::Imbalance => {
            // Seesaw: a slow glide up an octave and back down, "the balance tipped".
            let env = flat(0.08);
            b.tone(200.0, 330.0, 660.0, &[1.0, 0.3], |t| v * env(t));
            b.tone(200.0, 660.0, 330.0, &[1.0, 0.3], |t| v * env(t));
        }
        AlarmKind::Collapse => {
            // A trill whose notes slow down and narrow into one held note: "all the same".
            let pairs = [(523.0f32, 784.0f32), (587.0, 698.0), (622.0, 659.0)];
            for (i, (lo, hi)) in pairs.into_iter().enumerate() {
                let ms = 45.0 + 15.0 * i as f32;
                let edge = move |t: f32, first: bool| if first { (t / 0.2).min(1.0) } else { 1.0 };
                b.tone(ms, lo, lo, &[1.0, 0.2], move |t| v * edge(t, i == 0));
                b.tone(ms, hi, hi, &[1.0, 0.2], move |t| v * edge(t, false));
            }
            b.tone(180.0, 640.0, 640.0, &[1.0, 0.2], move |t| {
                v * ((1.0 - t) / 0.15).min(1.0)
            });
        }
        AlarmKind::Oscillation => {
            // Wide vibrato: 480 Hz swinging ±3 semitones, 8 times a second, for 400 ms.
            let env = flat(0.06);
            for i in 0..8 {
                let (f0, f1) = if i % 2 == 0 {
                    (404.0, 571.0)
                } else {
                    (571.0, 404.0)
                };
                let env = &env;
                b.tone(50.0, f0, f1, &[1.0, 0.2], move |t| {
                    v * env((i as f32 + t) / 8.0)
                });
            }
        }
        AlarmKind::Plateau => {
            // Soft double beep: two short pure tones at 60 % of the alarm level.
            let env = flat(0.1);
            b.tone(90.0, 660.0, 660.0, &[1.0], |t| 0.6 * v * env(t));
            b.silence(70.0);
            b.tone(90.0, 660.0, 660.0, &[1.0], |t| 0.6 * v * env(t));
        }
    }
    b.out
}

/// A separator between the parts of one file (the settings of a sweep): `count` bright
/// 1760 Hz pings, 60 ms each and 110 ms apart, so the listener can count which part begins.
/// Peak `volume`; mono at `sample_rate`.
///
/// ```
/// let m = gradtone_sound::alarm::marker(3, 44_100, 0.5);
/// assert_eq!(m.samples.len(), m.level.len());
/// assert!(m.samples.iter().all(|s| s.abs() <= 0.5));
/// ```
pub fn marker(count: usize, sample_rate: u32, volume: f32) -> Earcon {
    let mut b = EarconBuilder::new(sample_rate);
    let v = volume.clamp(0.0, 1.0);
    for i in 0..count.max(1) {
        if i > 0 {
            b.silence(50.0);
        }
        b.tone(60.0, 1760.0, 1760.0, &[1.0], move |t| {
            v * (t / 0.08).min(1.0) * (-3.0 * t).exp() * ((1.0 - t) / 0.1).min(1.0)
        });
    }
    b.out
}

/// A [`Mapping`] with alarms: renders `M`, runs an [`AlarmDetector`] on each frame, and mixes
/// each alarm's [`earcon`] into the audio from the start of the step it fired at.
///
/// Mixing ducks the music by the earcon's level: `out = music·(1 − level) + earcon`, so if
/// the music stays within ±1 the sum does too. Several alarms at one step play one after the
/// other, 50 ms apart; an earcon outlasting the step continues in the next steps' audio (call
/// [`WithAlarms::flush`] at the end of a stream for the rest).
///
/// ```
/// use gradtone_sound::alarm::{AlarmConfig, AlarmKind, WithAlarms};
/// use gradtone_sound::{Frame, Mapping, SeedMapping};
/// let mut m = WithAlarms::new(SeedMapping::new(), &AlarmConfig::default());
/// let mut out = Vec::new();
/// m.render(&Frame::new(0).with_value("fc1", 1.0), &mut out);
/// m.render(&Frame::new(1).with_value("fc1", f64::NAN), &mut out);
/// let events = m.take_events();
/// assert_eq!(events.len(), 1);
/// assert_eq!((events[0].step, events[0].kind), (1, AlarmKind::NonFinite));
/// assert!(events[0].message.contains("fc1 = NaN"));
/// ```
pub struct WithAlarms<M> {
    inner: M,
    detector: AlarmDetector,
    enabled: bool,
    volume: f32,
    /// Earcon samples still to be mixed, with their levels.
    pending: VecDeque<(f32, f32)>,
    events: Vec<AlarmEvent>,
}

impl<M: Mapping> WithAlarms<M> {
    /// Wraps `inner`; with `config.enabled == false` it passes audio through and fires nothing.
    pub fn new(inner: M, config: &AlarmConfig) -> Self {
        WithAlarms {
            inner,
            detector: AlarmDetector::new(config),
            enabled: config.enabled,
            volume: config.volume,
            pending: VecDeque::new(),
            events: Vec::new(),
        }
    }

    /// The alarms fired since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<AlarmEvent> {
        std::mem::take(&mut self.events)
    }

    /// The wrapped mapping.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The wrapped mapping, mutably.
    pub fn inner_mut(&mut self) -> &mut M {
        &mut self.inner
    }

    /// Unwraps the mapping.
    pub fn into_inner(self) -> M {
        self.inner
    }

    /// Appends what is left of a ringing earcon (silence under it), so a stream's end does not
    /// cut it off.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let ch = usize::from(self.inner.channels().max(1));
        out.reserve(self.pending.len() * ch);
        for (s, _) in self.pending.drain(..) {
            out.extend(std::iter::repeat_n(s, ch));
        }
    }

    /// Raises an alarm found outside the detector (e.g. a lagging rank): its earcon is mixed
    /// into the next rendered audio and the event is returned by the next
    /// [`take_events`](Self::take_events). Ignored when alarms are disabled.
    pub fn raise(&mut self, event: AlarmEvent) {
        if self.enabled {
            self.queue(event);
        }
    }

    /// Queues an event's earcon after what is already ringing (50 ms apart) and records it.
    fn queue(&mut self, event: AlarmEvent) {
        let sr = self.inner.sample_rate();
        if !self.pending.is_empty() {
            let gap = (0.05 * sr as f32) as usize;
            self.pending.extend(std::iter::repeat_n((0.0, 0.0), gap));
        }
        let e = earcon(event.kind, sr, self.volume);
        self.pending.extend(e.samples.into_iter().zip(e.level));
        self.events.push(event);
    }

    fn mix_pending(&mut self, out: &mut [f32]) {
        let ch = usize::from(self.inner.channels().max(1));
        for frame in out.chunks_mut(ch) {
            let Some((s, level)) = self.pending.pop_front() else {
                break;
            };
            for x in frame {
                *x = *x * (1.0 - level) + s;
            }
        }
    }
}

impl<M: Mapping> Mapping for WithAlarms<M> {
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    fn channels(&self) -> u16 {
        self.inner.channels()
    }

    fn render(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        let start = out.len();
        self.inner.render(frame, out);
        if !self.enabled {
            return;
        }
        for event in self.detector.observe(frame) {
            self.queue(event);
        }
        self.mix_pending(&mut out[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latch_fires_once_per_episode() {
        let mut l = Latch::default();
        let seq = [true, true, false, true, false, false, false, true];
        let fired: Vec<bool> = seq.iter().map(|&c| l.update(c, 3)).collect();
        assert_eq!(
            fired,
            [true, false, false, false, false, false, false, true]
        );
    }

    #[test]
    fn sci_format() {
        assert_eq!(Sci(2.5).to_string(), "2.5000");
        assert_eq!(format!("{:.2}", Sci(1.2871722962892867e25)), "1.29e25");
        assert_eq!(Sci(0.0).to_string(), "0.0000");
    }
}
