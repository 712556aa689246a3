//! Alarms: detectors that watch frames for trouble, and earcons that make it unmissable.
//!
//! [`AlarmDetector::observe`] looks at each frame's raw values (per-layer gradient norms) and
//! its loss ([`objective`]: the one named `loss`, else the only one; a game's several terms
//! have none). Each detector fires **once per episode**: after firing it stays quiet until its
//! condition has been false for `rearm_after` consecutive steps (default 20). Every detector
//! judges from step 1: a run that goes wrong at its first update is heard at once.
//!
//! | kind | condition (defaults) | earcon |
//! |---|---|---|
//! | [`NonFinite`](AlarmKind::NonFinite) | any value or loss is NaN or ±∞ | fast two-tone siren, 1000/1500 Hz |
//! | [`Explosion`](AlarmKind::Explosion) | the total norm `√Σ v²` > `factor` (10) × the median of the previous (up to `window` = 50) totals, from step `warmup` (1) on; or, in the first `early_steps` (10) steps, > `early_factor` (5) × the first step's; or two steps running > `persist_factor` (6) × the median before them | rising sweep 250 → 3000 Hz |
//! | [`Divergence`](AlarmKind::Divergence) | the loss > `start_factor` (3) × its starting level; or the median of the last `smooth_steps` (3) losses > `smooth_factor` (2) × the starting level; or the median of the last `min_window` (25) losses > `min_factor` (4) × the lowest such median so far | a climbing four-note figure, 330 → 784 Hz |
//! | [`Dead`](AlarmKind::Dead) | every value < `epsilon` (1e-7) in magnitude: vanished or exactly 0 (checked per instrument when the names carry several, e.g. `g_adv/…`; see [`gradtone_frame::naming::instrument_of`]) | three low falling thuds |
//! | [`LayerDead`](AlarmKind::LayerDead) | some layers that were alive drop below `epsilon` (or to exactly 0) while others still move | a glide falling away, 880 → 110 Hz, then a dull knock |
//! | [`Plateau`](AlarmKind::Plateau) | the median loss of the last `window` (50) steps has not beaten its best by `min_improvement_pct` (1 %) for `patience` (100) steps; worded "rising" when it is above its best by more than that, else "flat" | soft double beep, 660 Hz |
//!
//! A **trouble** alarm ([`AlarmKind::is_trouble`]) is every kind but the plateau.
//!
//! The detector is one [`Watch`] (frame in, alarms out) among others, fired by whoever can see
//! the condition: [`Rank`](AlarmKind::Rank) (knocks) by the rank merger's watch,
//! [`Imbalance`](AlarmKind::Imbalance) (a slow up-and-down seesaw),
//! [`Collapse`](AlarmKind::Collapse) (a trill that narrows to one note) and
//! [`Oscillation`](AlarmKind::Oscillation) (a wide, fast vibrato) by a GAN's.
//!
//! **Clipped gradients.** When a frame says the run clips ([`Frame::clip`]) and its total norm
//! is above the threshold, the step's update was bounded: the explosion detector does not call
//! that spike a divergence (nor count it in its median). The loss still counts.
//!
//! **Tuning.** The defaults were tuned on `gradtone train` runs (the five presets, seeds 1–8;
//! table in the README), the GAN presets, the recorded fixtures and the PyTorch reference
//! trajectories. Healthy runs (lr 0.01 and 0.1) reach at most 6.3× the running median of the
//! total norm on one step (but 3.0× step 0's in their first 10 steps), and a single-batch loss
//! of 2.0× the starting level, but a median of three losses of only 1.03×; runs at lr 1.0 jump
//! 9–40× in norm at their first updates (batch 10) or 7–16× step 0's within 5 steps (batch 256).
//! Single-step thresholds are therefore high, or limited to the first steps, and the lower ones
//! need two or three steps to agree.
//!
//! **Bounded state.** Per-name state lives in a hash map: every per-frame cost is O(values in
//! the frame). A name unseen for `forget_after` (1000) frames is forgotten, and whenever the map
//! holds more than `max(4 × values in the frame, 1024)` names, names not in the current frame
//! are evicted, oldest first by frame. A stream whose names never repeat therefore keeps at most
//! that many — see [`AlarmDetector::tracked_names`]. Every other statistic is a window of fixed
//! length.
//!
//! [`WithAlarms`] wraps any [`Mapping`] and plays the alarms it is given: it mixes each one's
//! earcon into the audio of the step where it fired (ducking the music under it, so the sum
//! stays within ±1); an earcon longer than a step carries on into the next steps' audio.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use serde::Deserialize;

use crate::Mapping;
use crate::stats::{RunningMedian, median_of};
use crate::synth::sin_cycles;
pub use gradtone_frame::Watch;
pub use gradtone_frame::{AlarmEvent, AlarmKind};
use gradtone_frame::{Frame, Latch, Named};

/// Alarm settings (the `[alarms]` table of the config file).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlarmConfig {
    /// Whether the pipeline runs its watches (this detector and any other) at all (default
    /// true).
    pub enabled: bool,
    /// Earcon peak level, 0–1 (default 0.6); the music is ducked by the same amount under it.
    pub volume: f32,
    /// Calm steps after which a fired detector can fire again (default 20).
    pub rearm_after: u32,
    /// Frames after which the state kept for a value name that stopped arriving is dropped
    /// (default 1000). See the module docs on bounded state.
    pub forget_after: u32,
    /// NaN / ±∞ detector (`[alarms.non_finite]`).
    pub non_finite: NonFiniteConfig,
    /// Exploding-norm detector (`[alarms.explosion]`).
    pub explosion: ExplosionConfig,
    /// Diverging-loss detector (`[alarms.divergence]`).
    pub divergence: DivergenceConfig,
    /// Vanished/dead gradient detector (`[alarms.dead]`); its `epsilon` also defines a dead
    /// layer for `[alarms.layer_dead]`.
    pub dead: DeadConfig,
    /// Per-layer death detector (`[alarms.layer_dead]`).
    pub layer_dead: LayerDeadConfig,
    /// Loss plateau detector (`[alarms.plateau]`).
    pub plateau: PlateauConfig,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            enabled: true,
            volume: 0.6,
            rearm_after: 20,
            forget_after: 1000,
            non_finite: NonFiniteConfig::default(),
            explosion: ExplosionConfig::default(),
            divergence: DivergenceConfig::default(),
            dead: DeadConfig::default(),
            layer_dead: LayerDeadConfig::default(),
            plateau: PlateauConfig::default(),
        }
    }
}

impl AlarmConfig {
    /// Checks ranges; the error is `(field, what is allowed)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let bad = |f: &'static str, m: &str| Err((f, m.to_owned()));
        let above_one = |x: f64| x.is_finite() && x > 1.0;
        if !(0.0..=1.0).contains(&self.volume) {
            return bad("alarms.volume", "must be 0–1");
        }
        if self.rearm_after == 0 {
            return bad("alarms.rearm_after", "must be ≥ 1 step");
        }
        if self.forget_after == 0 {
            return bad("alarms.forget_after", "must be ≥ 1 frame");
        }
        let e = &self.explosion;
        if !above_one(e.factor) {
            return bad("alarms.explosion.factor", "must be > 1");
        }
        if !above_one(e.persist_factor) {
            return bad("alarms.explosion.persist_factor", "must be > 1");
        }
        if !above_one(e.early_factor) {
            return bad("alarms.explosion.early_factor", "must be > 1");
        }
        if e.window == 0 {
            return bad("alarms.explosion.window", "must be ≥ 1 step");
        }
        if e.warmup == 0 {
            return bad("alarms.explosion.warmup", "must be ≥ 1 step");
        }
        let d = &self.divergence;
        if !above_one(d.start_factor) {
            return bad("alarms.divergence.start_factor", "must be > 1");
        }
        if !above_one(d.smooth_factor) {
            return bad("alarms.divergence.smooth_factor", "must be > 1");
        }
        if !above_one(d.min_factor) {
            return bad("alarms.divergence.min_factor", "must be > 1");
        }
        if d.smooth_steps == 0 {
            return bad("alarms.divergence.smooth_steps", "must be ≥ 1 step");
        }
        if d.start_steps == 0 {
            return bad("alarms.divergence.start_steps", "must be ≥ 1 step");
        }
        if d.min_window == 0 {
            return bad("alarms.divergence.min_window", "must be ≥ 1 step");
        }
        if !(self.dead.epsilon.is_finite() && self.dead.epsilon >= 0.0) {
            return bad("alarms.dead.epsilon", "must be ≥ 0");
        }
        let p = &self.plateau;
        if p.window < 2 {
            return bad("alarms.plateau.window", "must be ≥ 2 steps");
        }
        if p.patience == 0 {
            return bad("alarms.plateau.patience", "must be ≥ 1 step");
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
    /// Fire when the total norm exceeds this multiple of the median of the previous totals
    /// (default 10).
    pub factor: f64,
    /// Fire when two steps running both exceed this multiple of the median of the totals
    /// before them (default 6): a growth that persists, where a healthy spike lasts one step
    /// (two healthy steps running reached 4.9× and 4.1× in the tuning runs).
    pub persist_factor: f64,
    /// Steps of history before the detector may fire (default 1: from step 1 on).
    pub warmup: usize,
    /// Steps in the running median (default 50).
    pub window: usize,
    /// For this many steps after the first (default 10), also fire when the total norm
    /// exceeds `early_factor` × the first step's: a healthy start does not grow the gradient
    /// (at most 1.8× in the tuning runs), a step size that is too large does, at once.
    pub early_steps: usize,
    /// See `early_steps` (default 5). `early_steps = 0` turns this rule off.
    pub early_factor: f64,
}

impl Default for ExplosionConfig {
    fn default() -> Self {
        ExplosionConfig {
            enabled: true,
            factor: 10.0,
            persist_factor: 6.0,
            warmup: 1,
            window: 50,
            early_steps: 10,
            early_factor: 5.0,
        }
    }
}

/// `[alarms.divergence]`: the loss ([`objective`]) rising far above where it started or its
/// best.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DivergenceConfig {
    /// On (default true).
    pub enabled: bool,
    /// The starting level is the lowest of the first `start_steps` finite losses (default 5;
    /// at step 1 it is step 0's loss).
    pub start_steps: usize,
    /// Fire when one step's loss exceeds this multiple of the starting level (default 3).
    pub start_factor: f64,
    /// Fire when the median of the last `smooth_steps` losses exceeds `smooth_factor` × the
    /// starting level (defaults 3 steps, 2×); at step 1 the median is of that one loss.
    pub smooth_steps: usize,
    /// See `smooth_steps` (default 2).
    pub smooth_factor: f64,
    /// Fire when the median of the last `min_window` losses exceeds `min_factor` × the lowest
    /// such median seen (defaults 25 steps, 4×): a late divergence below the starting level.
    pub min_window: usize,
    /// See `min_window` (default 4).
    pub min_factor: f64,
}

impl Default for DivergenceConfig {
    fn default() -> Self {
        DivergenceConfig {
            enabled: true,
            start_steps: 5,
            start_factor: 3.0,
            smooth_steps: 3,
            smooth_factor: 2.0,
            min_window: 25,
            min_factor: 4.0,
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

/// `[alarms.layer_dead]`: some layers died (below `alarms.dead.epsilon` or exactly 0) after
/// having moved, while others still move. A layer that never moved (frozen) never counts.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerDeadConfig {
    /// On (default true).
    pub enabled: bool,
}

impl Default for LayerDeadConfig {
    fn default() -> Self {
        LayerDeadConfig { enabled: true }
    }
}

/// `[alarms.plateau]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateauConfig {
    /// On (default true).
    pub enabled: bool,
    /// Steps in the running median of the loss (default 50).
    pub window: usize,
    /// Steps the running median may go without beating its best before the alarm (default 100).
    pub patience: usize,
    /// An improvement smaller than this percentage of the best does not count (default 1).
    pub min_improvement_pct: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            enabled: true,
            window: 50,
            patience: 100,
            min_improvement_pct: 1.0,
        }
    }
}

/// What the detector remembers about one value name.
#[derive(Clone, Debug)]
struct NameState {
    /// Frame counter when last seen (for eviction).
    seen: u64,
    /// Whether it was ever at or above epsilon (a frozen layer never was, and is never "dead").
    alive: bool,
    /// Its typical level: an exponential moving average of its finite values (α = 0.2), for
    /// naming the layers that explode.
    level: f64,
}

/// Per-name state with bounded size: see the module docs.
#[derive(Clone, Debug)]
struct NameTable {
    map: HashMap<String, NameState>,
    forget_after: u64,
}

/// The fewest names the table may hold before it evicts.
const MIN_NAME_CAPACITY: usize = 1024;

impl NameTable {
    fn new(forget_after: u32) -> Self {
        NameTable {
            map: HashMap::new(),
            forget_after: u64::from(forget_after.max(1)),
        }
    }

    /// Drops stale names once the table outgrows `max(4 × frame_len, 1024)`: first those
    /// unseen for `forget_after` frames, then, if still more than half the limit, all not seen
    /// in frame `now`. Each sweep halves the table, so its cost is amortised over the
    /// insertions that refilled it: O(1) per value.
    fn evict(&mut self, now: u64, frame_len: usize) {
        let limit = (4 * frame_len).max(MIN_NAME_CAPACITY);
        if self.map.len() <= limit {
            return;
        }
        let horizon = now.saturating_sub(self.forget_after);
        self.map.retain(|_, s| s.seen >= horizon);
        if self.map.len() > limit / 2 {
            self.map.retain(|_, s| s.seen == now);
        }
    }
}

/// The explosion detector's history of total norms.
#[derive(Clone, Debug)]
struct NormHistory {
    median: RunningMedian,
    /// The median the previous step was judged against, when it rose above `persist_factor`
    /// times it without firing: the next step is judged against the same level.
    pending: Option<f64>,
    /// The first finite, non-zero total, and the steps since.
    first: Option<(f64, usize)>,
}

/// The divergence detector's view of the loss.
#[derive(Clone, Debug)]
struct LossHistory {
    /// Finite losses seen so far, up to `start_steps`; the lowest is the starting level.
    start: Vec<f64>,
    /// The last `max(smooth_steps, min_window)` finite losses, newest last.
    recent: VecDeque<f64>,
    /// The lowest median of `min_window` losses so far.
    best_window: Option<f64>,
    /// Finite losses seen.
    count: usize,
}

/// The plateau detector's running median and best.
#[derive(Clone, Debug)]
struct PlateauState {
    losses: VecDeque<f64>,
    /// The best (lowest) running median so far and how many steps ago it was set.
    best: Option<(f64, usize)>,
}

/// Runs every enabled detector over a stream of frames. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AlarmDetector {
    config: AlarmConfig,
    latches: [Latch; 6],
    /// Frames observed.
    frames: u64,
    names: NameTable,
    norms: NormHistory,
    loss: LossHistory,
    plateau: PlateauState,
    scratch: Vec<f64>,
}

impl AlarmDetector {
    /// A detector with `config`'s thresholds.
    pub fn new(config: &AlarmConfig) -> Self {
        AlarmDetector {
            config: config.clone(),
            latches: Default::default(),
            frames: 0,
            names: NameTable::new(config.forget_after),
            norms: NormHistory {
                median: RunningMedian::new(config.explosion.window),
                pending: None,
                first: None,
            },
            loss: LossHistory {
                start: Vec::new(),
                recent: VecDeque::new(),
                best_window: None,
                count: 0,
            },
            plateau: PlateauState {
                losses: VecDeque::new(),
                best: None,
            },
            scratch: Vec::new(),
        }
    }

    /// How many value names the detector currently keeps state for (bounded: see the module
    /// docs).
    pub fn tracked_names(&self) -> usize {
        self.names.map.len()
    }

    /// Feeds one frame; returns the alarms that fire at its step (in [`AlarmKind::ALL`] order).
    /// Costs O(values in the frame). (The [`Watch`] implementation.)
    fn judge(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        let rearm = self.config.rearm_after;
        let now = self.frames;
        self.frames += 1;
        let layer_dead = self.layer_dead(frame, now);
        let conditions = [
            self.non_finite(frame),
            self.explosion(frame),
            self.divergence(frame),
            self.dead(frame),
            layer_dead,
            self.plateau(frame),
        ];
        self.names.evict(now, frame.values.len());
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
            .take(7)
            .map(|n| format!("{} = {}", n.name, n.value))
            .collect();
        if bad.is_empty() {
            return None;
        }
        let count = frame
            .values
            .iter()
            .chain(&frame.losses)
            .filter(|n| !n.value.is_finite())
            .count();
        let mut list = bad[..bad.len().min(6)].join(", ");
        if count > 6 {
            list.push_str(&format!(" (+{} more)", count - 6));
        }
        Some(format!("non-finite {list}; the run has diverged"))
    }

    /// Updates every name's state (O(values)); returns the per-layer death condition.
    fn layer_dead(&mut self, frame: &Frame, now: u64) -> Option<String> {
        let eps = self.config.dead.epsilon;
        let is_dead = |v: f64| v == 0.0 || v.abs() < eps;
        let (mut dead, mut moving) = (Vec::new(), Vec::new());
        let mut all_zero = true;
        // Instruments whose every value is dead are the `dead` alarm's news, not this one's.
        let mut instruments: HashMap<&str, (usize, usize)> = HashMap::new();
        for n in &frame.values {
            let e = instruments
                .entry(gradtone_frame::naming::instrument_of(&n.name))
                .or_default();
            e.0 += 1;
            e.1 += usize::from(is_dead(n.value));
        }
        let whole = |name: &str| {
            instruments
                .get(gradtone_frame::naming::instrument_of(name))
                .is_some_and(|&(all, d)| all == d)
        };
        for n in &frame.values {
            let state = match self.names.map.get_mut(n.name.as_str()) {
                Some(s) => s,
                None => self.names.map.entry(n.name.clone()).or_insert(NameState {
                    seen: now,
                    alive: false,
                    level: f64::NAN,
                }),
            };
            state.seen = now;
            if !n.value.is_finite() {
                continue;
            }
            if is_dead(n.value) {
                if state.alive && !whole(&n.name) {
                    dead.push(n.name.as_str());
                    all_zero &= n.value == 0.0;
                }
            } else {
                state.alive = true;
                moving.push(n.name.as_str());
            }
        }
        if !self.config.layer_dead.enabled || dead.is_empty() || moving.is_empty() {
            return None;
        }
        Some(format!(
            "{} dead (gradient {}); {} still learning",
            list_some(&dead, 6),
            if all_zero {
                "exactly 0".to_owned()
            } else {
                format!("below {eps:e}")
            },
            list_some(&moving, 6)
        ))
    }

    fn explosion(&mut self, frame: &Frame) -> Option<String> {
        let cfg = self.config.explosion.clone();
        let eps = self.config.dead.epsilon.max(f64::MIN_POSITIVE);
        let finite = frame.values.iter().filter(|n| n.value.is_finite());
        let (mut sum, mut count) = (0.0, 0usize);
        for n in finite {
            sum += n.value * n.value;
            count += 1;
        }
        let total = sum.sqrt();
        let clipped = frame.clip.is_some_and(|c| total > c);
        let median = (self.norms.median.len() >= cfg.warmup)
            .then(|| self.norms.median.median())
            .flatten()
            .filter(|&m| m > eps);
        let mut detail = None;
        let mut pending = None;
        if let Some((_, since)) = &mut self.norms.first {
            *since += 1;
        }
        if cfg.enabled
            && count > 0
            && total.is_finite()
            && !clipped
            && let Some(median) = median
        {
            let ratio = total / median;
            // A one-step spike must be large; a smaller rise must last two steps, judged
            // against the level before it began.
            let persisted = self
                .norms
                .pending
                .filter(|&base| total > cfg.persist_factor * base);
            let early = self
                .norms
                .first
                .filter(|&(t0, since)| since <= cfg.early_steps && total > cfg.early_factor * t0);
            let why = if ratio > cfg.factor {
                Some(format!(
                    "total {:.4} is {:.0}× its running median {:.4} (> {}×)",
                    Sci(total),
                    ratio,
                    Sci(median),
                    cfg.factor
                ))
            } else if let Some((t0, since)) = early {
                Some(format!(
                    "total {:.4} is {:.1}× the first step's {:.4}, {since} steps in (> {}× in the first {} steps)",
                    Sci(total),
                    total / t0,
                    Sci(t0),
                    cfg.early_factor,
                    cfg.early_steps
                ))
            } else if let Some(base) = persisted {
                Some(format!(
                    "total {:.4} is {:.1}× the median {:.4} before it rose, two steps running (> {}×)",
                    Sci(total),
                    total / base,
                    Sci(base),
                    cfg.persist_factor
                ))
            } else {
                pending = (ratio > cfg.persist_factor).then_some(median);
                None
            };
            if let Some(why) = why {
                let layers = self.top_growth(frame, 3);
                detail = Some(format!(
                    "gradient norm exploded: {why}{}{}",
                    if layers.is_empty() { "" } else { "; " },
                    layers.join(", ")
                ));
            }
        }
        self.norms.pending = pending;
        if self.norms.first.is_none() && count > 0 && total.is_finite() && total > eps {
            self.norms.first = Some((total, 0));
        }
        // Dead steps (all ~0) do not define the normal level: a dead stretch would make any
        // revival look like an explosion, and hide a real one after it. A clipped spike is not
        // the normal level either.
        if count > 0 && total > eps && !clipped {
            self.norms.median.push(total);
        }
        // Each layer's typical level, for naming the layers that grew most.
        for n in &frame.values {
            if let Some(s) = self.names.map.get_mut(n.name.as_str())
                && n.value.is_finite()
            {
                s.level = if s.level.is_finite() {
                    0.8 * s.level + 0.2 * n.value
                } else {
                    n.value
                };
            }
        }
        detail
    }

    /// The `k` layers with the largest value / typical level, formatted. O(values).
    fn top_growth(&mut self, frame: &Frame, k: usize) -> Vec<String> {
        let mut ratios: Vec<(f64, &Named, f64)> = frame
            .values
            .iter()
            .filter_map(|n| {
                let level = self.names.map.get(n.name.as_str())?.level;
                (n.value.is_finite() && level.is_finite() && level > 0.0).then_some((
                    n.value / level,
                    n,
                    level,
                ))
            })
            .collect();
        if ratios.len() > k {
            ratios.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            ratios.truncate(k);
        }
        ratios.sort_by(|a, b| b.0.total_cmp(&a.0));
        ratios
            .into_iter()
            .map(|(r, n, level)| {
                format!(
                    "{} = {:.4} ({:.0}× its usual {:.4})",
                    n.name,
                    Sci(n.value),
                    r,
                    Sci(level)
                )
            })
            .collect()
    }

    fn divergence(&mut self, frame: &Frame) -> Option<String> {
        let cfg = &self.config.divergence;
        let loss = objective(frame).filter(|l| l.is_finite())?;
        let h = &mut self.loss;
        // The starting level as known before this step.
        let start = h.start.iter().copied().reduce(f64::min);
        if h.start.len() < cfg.start_steps {
            h.start.push(loss);
        }
        let keep = cfg.smooth_steps.max(cfg.min_window);
        if h.recent.len() == keep {
            h.recent.pop_front();
        }
        h.recent.push_back(loss);
        h.count += 1;
        let n = h.recent.len();
        // The losses after the first one: at step 1 the median is that step's loss alone.
        let smooth_n = cfg.smooth_steps.min(h.count.saturating_sub(1)).min(n);
        let smooth = median_of(
            &mut self.scratch,
            h.recent.iter().skip(n - smooth_n).copied(),
        );
        let window = (n >= cfg.min_window)
            .then(|| {
                median_of(
                    &mut self.scratch,
                    h.recent.iter().skip(n - cfg.min_window).copied(),
                )
            })
            .flatten();
        let best = h.best_window;
        if let Some(w) = window {
            h.best_window = Some(best.map_or(w, |b| b.min(w)));
        }
        if !cfg.enabled {
            return None;
        }
        // Losses near 0 (or negative) have no meaningful ratio.
        let start = start.filter(|&s| s > 0.0)?;
        if loss > cfg.start_factor * start {
            return Some(format!(
                "loss diverged: {:.4} is {:.1}× its starting level {:.4} (> {}×)",
                Sci(loss),
                loss / start,
                Sci(start),
                cfg.start_factor
            ));
        }
        if let Some(m) = smooth
            && m > cfg.smooth_factor * start
        {
            return Some(format!(
                "loss diverged: the median {:.4} of the last {} losses is {:.1}× its starting level {:.4} (> {}×)",
                Sci(m),
                smooth_n,
                m / start,
                Sci(start),
                cfg.smooth_factor
            ));
        }
        if let (Some(w), Some(b)) = (window, best)
            && b > 0.0
            && w > cfg.min_factor * b
        {
            return Some(format!(
                "loss diverged: the median {:.4} of the last {} losses is {:.1}× its best such median {:.4} (> {}×)",
                Sci(w),
                cfg.min_window,
                w / b,
                Sci(b),
                cfg.min_factor
            ));
        }
        None
    }

    fn dead(&self, frame: &Frame) -> Option<String> {
        let cfg = &self.config.dead;
        if !cfg.enabled || frame.values.is_empty() {
            return None;
        }
        let eps = cfg.epsilon;
        // One instrument (a loss term's voices) going silent is news even while the others
        // play on: a GAN whose generator gradients vanish. Grouped through a hash map: O(values).
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut instruments: Vec<(&str, Vec<&Named>)> = Vec::new();
        for n in &frame.values {
            let inst = gradtone_frame::naming::instrument_of(&n.name);
            let i = *index.entry(inst).or_insert_with(|| {
                instruments.push((inst, Vec::new()));
                instruments.len() - 1
            });
            instruments[i].1.push(n);
        }
        let several = instruments.len() > 1;
        let silent: Vec<&(&str, Vec<&Named>)> = instruments
            .iter()
            .filter(|(_, members)| {
                members
                    .iter()
                    .all(|n| n.value == 0.0 || n.value.abs() < eps)
            })
            .collect();
        let mut lines: Vec<String> = silent
            .iter()
            .take(6)
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
        if silent.len() > 6 {
            lines.push(format!("(+{} more instruments)", silent.len() - 6));
        }
        (!lines.is_empty()).then(|| lines.join("; "))
    }

    fn plateau(&mut self, frame: &Frame) -> Option<String> {
        let cfg = &self.config.plateau;
        if !cfg.enabled {
            return None;
        }
        let loss = objective(frame).filter(|l| l.is_finite())?;
        let w = cfg.window;
        let p = &mut self.plateau;
        if p.losses.len() == w {
            p.losses.pop_front();
        }
        p.losses.push_back(loss);
        if p.losses.len() < w {
            return None;
        }
        let median = median_of(&mut self.scratch, p.losses.iter().copied())?;
        let margin = cfg.min_improvement_pct / 100.0;
        let (best, since) = match p.best {
            // A real improvement resets the clock.
            Some((b, _)) if median < b - margin * b.abs() => (median, 0),
            Some((b, s)) => (b, s + 1),
            None => (median, 0),
        };
        p.best = Some((best, since));
        if since < cfg.patience {
            return None;
        }
        let change = if best.abs() > 0.0 {
            100.0 * (median - best) / best.abs()
        } else {
            0.0
        };
        let how = if change > cfg.min_improvement_pct {
            format!("loss rising: {change:.1} % above")
        } else {
            format!("loss flat: within {} % of", cfg.min_improvement_pct)
        };
        Some(format!(
            "{how} its best median {:.4}, {since} steps without improving (median loss {:.4} over the last {w} steps)",
            Sci(best),
            Sci(median),
        ))
    }
}

impl Watch for AlarmDetector {
    /// Feeds one frame; returns the alarms that fire at its step (in [`AlarmKind::ALL`] order).
    /// Costs O(values in the frame).
    fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        self.judge(frame)
    }
}

/// The loss that training minimises, which the divergence and plateau alarms watch: the one
/// named `loss` (a weighted sum sent beside its terms), else the only one. Several losses and
/// none called `loss` are the terms of a game or of an unsent sum (a GAN's `d_real`, `d_fake`,
/// `g_adv`): each may rightly rise while training goes well, so no loss alarm judges them.
pub fn objective(frame: &Frame) -> Option<f64> {
    match frame.losses.as_slice() {
        [only] => Some(only.value),
        many => many.iter().find(|n| n.name == "loss").map(|n| n.value),
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
/// 400 ms, climbing figure 400 ms, thuds 570 ms, falling glide and knock 490 ms, double beep
/// 250 ms.
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
        AlarmKind::Divergence => {
            // A climbing figure of four bright notes a fourth apart, "the loss climbs":
            // stepped where the explosion glides, and in the middle register.
            for (i, f) in [330.0f32, 440.0, 587.0, 784.0].into_iter().enumerate() {
                b.tone(85.0, f, f, &[1.0, 0.4, 0.25], move |t| {
                    v * (t / 0.08).min(1.0) * ((1.0 - t) / 0.1).min(1.0)
                });
                if i < 3 {
                    b.silence(20.0);
                }
            }
        }
        AlarmKind::LayerDead => {
            // A glide falling away, 880 → 110 Hz (the explosion's sweep upside down: "some
            // voices drop out"), then one dull knock where the full death has three thuds.
            let env = flat(0.05);
            b.tone(300.0, 880.0, 110.0, &[1.0, 0.2], move |t| v * env(t));
            b.silence(60.0);
            b.tone(130.0, 80.0, 55.0, &[1.0, 0.15], move |t| {
                v * (t / 0.04).min(1.0) * (-5.0 * t).exp() * ((1.0 - t) / 0.05).min(1.0)
            });
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

/// A [`Mapping`] that plays alarms: renders `M` and mixes the [`earcon`] of each alarm it is
/// given into the audio from the start of that step. It judges nothing: the watches (the
/// [`AlarmDetector`] among them) decide what fires, and the pipeline hands their alarms here.
///
/// Mixing ducks the music by the earcon's level: `out = music·(1 − level) + earcon`, so if
/// the music stays within ±1 the sum does too. Alarms of one step tell one story (a diverging
/// step raises the norm and the loss alarms together): of the gradient alarms
/// ([`AlarmKind::ALL`]) given at one step only the first, the most urgent, sounds, so that the
/// next step's news is not queued behind a chain of earcons; every alarm of another kind (a
/// rank's, a GAN's) sounds. Earcons play after what is still ringing, 50 ms apart; one
/// outlasting the step continues in the next steps' audio (call [`WithAlarms::flush`] at the
/// end of a stream for the rest).
///
/// ```
/// use gradtone_sound::alarm::{AlarmConfig, AlarmDetector, AlarmKind, Watch, WithAlarms};
/// use gradtone_sound::{Frame, SeedMapping};
/// let config = AlarmConfig::default();
/// let (mut detector, mut m) = (AlarmDetector::new(&config), WithAlarms::new(SeedMapping::new(), &config));
/// let mut out = Vec::new();
/// for f in [Frame::new(0).with_value("fc1", 1.0), Frame::new(1).with_value("fc1", f64::NAN)] {
///     let alarms = detector.observe(&f);
///     m.play(&f, &alarms, &mut out);
///     if f.step == 1 {
///         assert_eq!((alarms[0].step, alarms[0].kind), (1, AlarmKind::NonFinite));
///         assert!(alarms[0].message.contains("fc1 = NaN"));
///     }
/// }
/// ```
pub struct WithAlarms<M> {
    inner: M,
    volume: f32,
    /// Earcon samples still to be mixed, with their levels.
    pending: VecDeque<(f32, f32)>,
}

impl<M: Mapping> WithAlarms<M> {
    /// Wraps `inner`; earcons peak at `config.volume`.
    pub fn new(inner: M, config: &AlarmConfig) -> Self {
        WithAlarms {
            inner,
            volume: config.volume,
            pending: VecDeque::new(),
        }
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

    /// Sample rate of the output, Hz (the wrapped mapping's).
    pub fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    /// Interleaved channels of the output (the wrapped mapping's).
    pub fn channels(&self) -> u16 {
        self.inner.channels()
    }

    /// Appends `frame`'s audio to `out` with the earcons of `alarms` (what the watches fired at
    /// this step) mixed in, as the type's docs say.
    pub fn play(&mut self, frame: &Frame, alarms: &[AlarmEvent], out: &mut Vec<f32>) {
        let start = out.len();
        self.inner.render(frame, out);
        let mut gradient_sounded = false;
        for event in alarms {
            if AlarmKind::ALL.contains(&event.kind) {
                if gradient_sounded {
                    continue;
                }
                gradient_sounded = true;
            }
            self.queue(event.kind);
        }
        self.mix_pending(&mut out[start..]);
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

    /// Queues an earcon after what is already ringing (50 ms apart).
    fn queue(&mut self, kind: AlarmKind) {
        let sr = self.inner.sample_rate();
        if !self.pending.is_empty() {
            let gap = (0.05 * sr as f32) as usize;
            self.pending.extend(std::iter::repeat_n((0.0, 0.0), gap));
        }
        let e = earcon(kind, sr, self.volume);
        self.pending.extend(e.samples.into_iter().zip(e.level));
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

/// The onset of trouble as gradtone's alarms are judged against it (what a listener should hear
/// at once): the index of the first frame with a non-finite value or loss, a total norm `√Σv²`
/// above 5× the first frame's, a loss above 2× the first frame's, or at least half the values
/// exactly 0; with which of `"non-finite"`, `"norm > 5× step 0"`, `"loss > 2× step 0"`,
/// `"half the layers 0"` it is. `None` for a run without trouble (or without frames).
pub fn onset_of_trouble(frames: &[Frame]) -> Option<(usize, &'static str)> {
    let total = |f: &Frame| gradtone_frame::stats::l2(f.values.iter().map(|n| n.value));
    let first = frames.first()?;
    let (t0, l0) = (total(first), first.loss());
    frames.iter().enumerate().find_map(|(i, f)| {
        let non_finite = f
            .values
            .iter()
            .chain(&f.losses)
            .any(|n| !n.value.is_finite());
        let zeros = f.values.iter().filter(|n| n.value == 0.0).count();
        let why = if non_finite {
            "non-finite"
        } else if total(f) > 5.0 * t0 {
            "norm > 5× step 0"
        } else if l0.zip(f.loss()).is_some_and(|(a, b)| b > 2.0 * a) {
            "loss > 2× step 0"
        } else if !f.values.is_empty() && 2 * zeros >= f.values.len() {
            "half the layers 0"
        } else {
            return None;
        };
        Some((i, why))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sci_format() {
        assert_eq!(Sci(2.5).to_string(), "2.5000");
        assert_eq!(format!("{:.2}", Sci(1.2871722962892867e25)), "1.29e25");
        assert_eq!(Sci(0.0).to_string(), "0.0000");
    }
}
