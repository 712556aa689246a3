//! The alarm detector: watches frames for trouble and says what it found, in words and numbers
//! ([`AlarmEvent`]). How an alarm sounds is the sound crate's business (`gradtone_sound::alarm`).
//!
//! [`AlarmDetector::observe`] looks at each frame's raw values (per-layer gradient norms) and
//! its loss ([`Frame::loss`]: the one named `loss`, else the only one; a game's several terms
//! have none). Each detector fires **once per episode**: after firing it stays quiet until its
//! condition has been false for `rearm_after` consecutive steps (default 20). Every detector
//! judges from step 1: a run that goes wrong at its first update is heard at once.
//!
//! | kind | condition (defaults) |
//! |---|---|
//! | [`NonFinite`](AlarmKind::NonFinite) | any value or loss is NaN or ±∞ |
//! | [`Explosion`](AlarmKind::Explosion) | the total norm `√Σ v²` > `factor` (10) × the median of the previous (up to `window` = 50) totals and of the last 5, from step `warmup` (1) on; or, in the first `early_steps` (10) steps, > `early_factor` (5) × the first step's; or two steps running > `persist_factor` (8) × the median before them — the first and last not while the loss is more than `learning_drop` (10 %) below where it was before the norm rose (learning); or, with parameter norms, one update that moves the weights' norm > `update_factor` (20) × its usual step |
//! | [`Divergence`](AlarmKind::Divergence) | the loss > `start_factor` (3) × its starting level; or the median of the last `smooth_steps` (3) losses > `smooth_factor` (2) × the starting level; or one loss > `jump_factor` (2) × the median of the `jump_window` (20) before it and > `jump_z` (6) × their noise; or the median of the last `shift_steps` (5) > `shift_factor` (1.3) × that level and > `shift_z` (8) × the noise of such a median |
//! | [`Dead`](AlarmKind::Dead) | every value < `epsilon` (1e-7) in magnitude: vanished or exactly 0 (checked per instrument when the names carry several, e.g. `g_adv/…`; see [`gradtone_frame::naming::instrument_of`]) |
//! | [`LayerDead`](AlarmKind::LayerDead) | some layers that were alive drop below `epsilon` (or to exactly 0) while others still move (vanishing layers excepted) |
//! | [`Vanishing`](AlarmKind::Vanishing) | some layers not 0 but below `ratio` (1e-5) × their instrument's largest norm for `steps` (5) steps running; names them |
//! | [`Frozen`](AlarmKind::Frozen) | with parameter norms ([`Frame::params`], in every frame or every k-th: each is compared with the last, over the steps between): every flowing layer's weights bit-identical for `steps` (5) steps running; or, after a non-finite step, the weights' relative change per step (median of `crippled_steps` = 10) below 1/`crippled_factor` (10) of what it was before |
//! | [`Plateau`](AlarmKind::Plateau) | the median loss of the last `window` (50) steps has neither beaten its best nor the median `patience` steps before by `min_improvement_pct` (1 %) for `patience` (100) steps; worded "rising" when it is above its best by more than that and two standard errors |
//!
//! **Noise.** A loss is judged against its own noise: the scaled median absolute deviation of
//! its logarithm over the window before (floored at 1 %), since a batch's loss varies in
//! proportion to its level. A ratio alone would call batch-4 spikes (4–7× their level) trouble;
//! a noise-scaled jump alone would call a quiet loss's 5 % wobble one.
//!
//! A **trouble** alarm ([`AlarmKind::is_trouble`]) is every kind but the plateau.
//!
//! The detector is one [`Watch`] (frame in, alarms out) among others, fired by whoever can see
//! the condition: [`Rank`](AlarmKind::Rank) by the rank merger's watch,
//! [`Imbalance`](AlarmKind::Imbalance), [`Collapse`](AlarmKind::Collapse) and
//! [`Oscillation`](AlarmKind::Oscillation) by a GAN's. It fires the kinds of
//! [`AlarmKind::DETECTOR`].
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
//! need two or three steps to agree. The rules that read the loss's noise, the weights
//! (`params`) and the layers' spread were tuned on the fault zoo (`python/zoo/`: CNN, MLP,
//! ResNet, RNN, LSTM, GRU and Transformer trainings with injected faults and healthy controls)
//! and checked on held-out seeds of it and on `sgd_lr0.01/0.1_bs10` seeds 1–32: healthy loss
//! jumps reach 5× their noise (batch 10 at the edge of stability), healthy updates 5× their
//! usual size (59× in a warmup whose loss falls, hence the learning exemption), a healthy
//! layer spread 1e-3; a learning rate gone 100× too large moves the weights 100–400× at once,
//! shuffled labels lift the loss's 5-step median 10–30× the noise of such a median, and a
//! 20-layer sigmoid stack puts its first layers at 1e-16…1e-6 of its last.
//!
//! **Bounded state.** Per-name state lives in a hash map: every per-frame cost is O(values in
//! the frame). A name unseen for `forget_after` (1000) frames is forgotten, and whenever the map
//! holds more than `max(4 × values in the frame, 1024)` names, names not in the current frame
//! are evicted, oldest first by frame. A stream whose names never repeat therefore keeps at most
//! that many — see [`AlarmDetector::tracked_names`]. Every other statistic is a window of fixed
//! length.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use serde::Deserialize;

use crate::stats::{RunningMedian, median_of};
use gradtone_frame::{AlarmEvent, AlarmKind, Frame, Latch, Named, Watch};

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
    /// Vanishing-gradient detector (`[alarms.vanishing]`).
    pub vanishing: VanishingConfig,
    /// Frozen-optimiser detector (`[alarms.frozen]`; needs the frames' parameter norms).
    pub frozen: FrozenConfig,
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
            vanishing: VanishingConfig::default(),
            frozen: FrozenConfig::default(),
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
        if d.smooth_steps == 0 {
            return bad("alarms.divergence.smooth_steps", "must be ≥ 1 step");
        }
        if d.start_steps == 0 {
            return bad("alarms.divergence.start_steps", "must be ≥ 1 step");
        }
        if !(self.dead.epsilon.is_finite() && self.dead.epsilon >= 0.0) {
            return bad("alarms.dead.epsilon", "must be ≥ 0");
        }
        let v = &self.vanishing;
        if !(v.ratio.is_finite() && v.ratio > 0.0 && v.ratio < 1.0) {
            return bad("alarms.vanishing.ratio", "must be between 0 and 1");
        }
        if v.steps == 0 {
            return bad("alarms.vanishing.steps", "must be ≥ 1 step");
        }
        let f = &self.frozen;
        if f.steps == 0 {
            return bad("alarms.frozen.steps", "must be ≥ 1 step");
        }
        if f.crippled_steps == 0 {
            return bad("alarms.frozen.crippled_steps", "must be ≥ 1 step");
        }
        if !above_one(f.crippled_factor) {
            return bad("alarms.frozen.crippled_factor", "must be > 1");
        }
        if d.jump_window < 3 {
            return bad("alarms.divergence.jump_window", "must be ≥ 3 steps");
        }
        if !above_one(d.jump_factor) {
            return bad("alarms.divergence.jump_factor", "must be > 1");
        }
        if !(d.jump_z.is_finite() && d.jump_z > 0.0) {
            return bad("alarms.divergence.jump_z", "must be > 0");
        }

        if d.shift_steps == 0 {
            return bad("alarms.divergence.shift_steps", "must be ≥ 1 step");
        }
        if !above_one(d.shift_factor) {
            return bad("alarms.divergence.shift_factor", "must be > 1");
        }
        if !(d.shift_z.is_finite() && d.shift_z > 0.0) {
            return bad("alarms.divergence.shift_z", "must be > 0");
        }
        if !(e.update_factor == 0.0 || above_one(e.update_factor)) {
            return bad(
                "alarms.explosion.update_factor",
                "must be > 1, or 0 for off",
            );
        }
        if !(0.0..1.0).contains(&e.learning_drop) {
            return bad("alarms.explosion.learning_drop", "must be 0 to below 1");
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
    /// Fire when the total norm exceeds this multiple of the median of the previous totals,
    /// and of the median of the last 5 (default 10): after a rise that was learning, the
    /// running median lags behind the norms.
    pub factor: f64,
    /// Fire when two steps running both exceed this multiple of the median of the totals
    /// before them (default 8): a growth that persists, where a healthy spike lasts one step
    /// (two healthy steps running reached 6.3× on `sgd_lr0.1_bs10` seed 29).
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
    /// A norm rise while the loss falls is learning, not an explosion: neither the `factor`
    /// nor the `persist_factor` rule fires while the step's loss is more than this fraction
    /// below its level before the rise (the median of
    /// the losses of the last three calm steps, whose total was at most twice its running
    /// median). Default 0.1.
    pub learning_drop: f64,
    /// With parameter norms in the frames ([`Frame::params`]): fire when one update changes
    /// the weights' norm by more than this multiple of the usual change (the larger of its
    /// running median and the previous step's), unless the loss falls (default 20; 0 turns
    /// the rule off). Healthy runs stay below 5×; a learning rate gone 100× too large moves
    /// them 100–400× at once, clipped or not.
    pub update_factor: f64,
}

impl Default for ExplosionConfig {
    fn default() -> Self {
        ExplosionConfig {
            enabled: true,
            factor: 10.0,
            persist_factor: 8.0,
            warmup: 1,
            window: 50,
            early_steps: 10,
            early_factor: 5.0,
            learning_drop: 0.1,
            update_factor: 20.0,
        }
    }
}

/// `[alarms.divergence]`: the loss ([`Frame::loss`]) rising far above where it started or its
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
    /// Fire when one loss jumps above `jump_factor` × the median of the `jump_window` losses
    /// before it, a jump that is also `jump_z` times the loss's own step-to-step noise (the
    /// scaled median absolute deviation of the log losses in that window): a sudden
    /// instability, heard at its first step even while the loss is still below its start.
    /// Defaults 20 steps, 2×, 6 (a batch of 10 at the edge of stability spikes to 4–5 times
    /// its noise; a learning rate gone wrong in a recurrent net, 19–24).
    pub jump_window: usize,
    /// See `jump_window` (default 2).
    pub jump_factor: f64,
    /// See `jump_window` (default 6).
    pub jump_z: f64,
    /// Fire when the median of the last `shift_steps` losses stays above `shift_factor` × the
    /// median of the `jump_window` losses before them, a rise that is also `shift_z` times the
    /// noise of such a median (the log losses' scaled MAD / √`shift_steps`): the loss went up
    /// and stays up (labels gone wrong). Defaults 5 steps, 1.3×, 8.
    pub shift_steps: usize,
    /// See `shift_steps` (default 1.3).
    pub shift_factor: f64,
    /// See `shift_steps` (default 8).
    pub shift_z: f64,
}

impl Default for DivergenceConfig {
    fn default() -> Self {
        DivergenceConfig {
            enabled: true,
            start_steps: 5,
            start_factor: 3.0,
            smooth_steps: 3,
            smooth_factor: 2.0,
            jump_window: 20,
            jump_factor: 2.0,
            jump_z: 6.0,
            shift_steps: 5,
            shift_factor: 1.3,
            shift_z: 8.0,
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

/// `[alarms.vanishing]`: gradients that vanish through depth. A layer whose gradient norm is
/// not 0 but below `ratio` × the largest norm of its instrument has all but vanished; when
/// some layers stay so for `steps` steps running, the alarm names them. (A layer at exactly 0
/// is frozen or dead: the `layer_dead` and `dead` alarms' news.) When the frames carry
/// parameter norms, only the values that have one are layers: an extra value such as a
/// learning rate is not judged.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VanishingConfig {
    /// On (default true).
    pub enabled: bool,
    /// A layer below this fraction of its instrument's largest norm has vanished (default
    /// 1e-5: five orders of magnitude; a healthy network's layers stay within about three).
    pub ratio: f64,
    /// Steps running before the alarm (default 5): a gradient that vanishes stays vanished.
    pub steps: usize,
}

impl Default for VanishingConfig {
    fn default() -> Self {
        VanishingConfig {
            enabled: true,
            ratio: 1e-5,
            steps: 5,
        }
    }
}

/// `[alarms.frozen]`: the weights stopped moving while gradients flow. Needs the frames'
/// parameter norms ([`Frame::params`]); silent without them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrozenConfig {
    /// On (default true).
    pub enabled: bool,
    /// Fire when every parameter norm whose gradient flows has stayed bit-identical for this
    /// many steps running (default 5): the optimiser skips its step. Steps, not frames: norms
    /// sent every k-th step count k steps each.
    pub steps: usize,
    /// After a non-finite value, loss or parameter: fire when the weights' relative change per
    /// step (the median over `crippled_steps` steps) falls below 1/`crippled_factor` of what it
    /// was before (defaults 10 steps, 10×): the optimiser's state is poisoned and the run is
    /// crippled, though nothing is non-finite any more.
    pub crippled_factor: f64,
    /// See `crippled_factor` (default 10).
    pub crippled_steps: usize,
}

impl Default for FrozenConfig {
    fn default() -> Self {
        FrozenConfig {
            enabled: true,
            steps: 5,
            crippled_factor: 10.0,
            crippled_steps: 10,
        }
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
    /// Steps the running median may go without beating its best, or the running median this
    /// many steps before, before the alarm (default 100).
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
    /// The objective's last [`CALM_LOSSES`] finite losses at calm steps (a total at most
    /// twice its running median), newest last: where the loss was before a norm rise began.
    calm_losses: VecDeque<f64>,
    /// This step's total against its running median (unclipped, finite steps only), reported
    /// beside a loss jump.
    last_ratio: Option<f64>,
}

/// Calm steps whose losses give the loss level before a norm rise.
const CALM_LOSSES: usize = 3;

/// Steps whose median total is the recent level a one-step spike must also stand out from.
const RECENT_TOTALS: usize = 5;

/// The frozen detector's view of the parameter norms. A producer may send them in some frames
/// only (the Python hook reads the weights every k-th step when they are costly): each frame
/// that has them is compared with the last that had them, over the steps between.
#[derive(Clone, Debug, Default)]
struct ParamHistory {
    /// The last parameter norms by name, from the last frame that had them (rebuilt at each
    /// such frame: O(params)), and its step.
    prev: HashMap<String, f64>,
    prev_step: Option<u64>,
    /// The names of the last frame with parameter norms: the layers (a value without a norm,
    /// such as a learning rate, is none); empty while no frame had them: every value counts.
    layers: HashSet<String>,
    /// Steps running with every flowing layer's parameters bit-identical.
    identical: usize,
    /// The weights' relative change per step, last [`MOVEMENT_WINDOW`] finite steps.
    movement: VecDeque<f64>,
    /// After a non-finite step: its step, the movement before it, the movements since.
    since_non_finite: Option<(u64, f64, Vec<f64>)>,
}

/// Steps of weight movement kept as the level a crippled run is judged against.
const MOVEMENT_WINDOW: usize = 50;

/// Steps of weight movement before a jump in it can be judged.
const MIN_MOVEMENT_HISTORY: usize = 10;

/// What the parameter norms of one frame say (see [`AlarmDetector::track_params`]).
#[derive(Clone, Debug, Default)]
struct ParamStep {
    /// The weights' relative change per step since the last frame with parameter norms,
    /// `Σ|Δ‖p‖| / Σ‖p‖ / steps between`.
    movement: Option<f64>,
    /// The usual movement before this step (see `track_params`).
    usual: Option<f64>,
    /// The total gradient norm of the frame.
    gradient: f64,
}

/// What a detector found: the console line's detail, the layers and the numbers behind it.
#[derive(Clone, Debug, Default)]
struct Finding {
    detail: String,
    layers: Vec<String>,
    numbers: Vec<(String, f64)>,
}

impl From<String> for Finding {
    fn from(detail: String) -> Self {
        Finding {
            detail,
            ..Finding::default()
        }
    }
}

impl Finding {
    fn num(mut self, name: &str, v: f64) -> Self {
        self.numbers.push((name.to_owned(), v));
        self
    }

    fn layers<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.layers = names.iter().map(|n| n.as_ref().to_owned()).collect();
        self
    }
}

/// The divergence detector's view of the loss.
#[derive(Clone, Debug)]
struct LossHistory {
    /// Finite losses seen so far, up to `start_steps`; the lowest is the starting level.
    start: Vec<f64>,
    /// The last `smooth_steps` finite losses, newest last.
    recent: VecDeque<f64>,
    /// The last `jump_window + shift_steps` finite losses before this step, newest last.
    jump: VecDeque<f64>,
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
    latches: [Latch; AlarmKind::DETECTOR.len()],
    /// Frames observed.
    frames: u64,
    names: NameTable,
    norms: NormHistory,
    loss: LossHistory,
    params: ParamHistory,
    /// Steps running with some layer vanished.
    vanished_for: usize,
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
                calm_losses: VecDeque::new(),
                last_ratio: None,
            },
            loss: LossHistory {
                start: Vec::new(),
                recent: VecDeque::new(),
                jump: VecDeque::new(),
                count: 0,
            },
            params: ParamHistory::default(),
            vanished_for: 0,
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

    /// Feeds one frame; returns the alarms that fire at its step (in [`AlarmKind::DETECTOR`] order).
    /// Costs O(values in the frame). (The [`Watch`] implementation.)
    fn judge(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        let rearm = self.config.rearm_after;
        let now = self.frames;
        self.frames += 1;
        let params = self.track_params(frame);
        let vanished = self.vanished_layers(frame);
        let layer_dead = self.layer_dead(frame, now, &vanished);
        let vanishing = self.vanishing(frame, vanished);
        let conditions: [Option<Finding>; AlarmKind::DETECTOR.len()] = [
            self.non_finite(frame).map(Finding::from),
            self.explosion(frame, &params),
            self.divergence(frame),
            self.dead(frame).map(Finding::from),
            layer_dead,
            vanishing,
            self.frozen(&params),
            self.plateau(frame),
        ];
        self.names.evict(now, frame.values.len());
        for (i, condition) in conditions.into_iter().enumerate() {
            let fire = self.latches[i].update(condition.is_some(), rearm);
            if let (true, Some(found)) = (fire, condition) {
                let kind = AlarmKind::DETECTOR[i];
                events.push(AlarmEvent {
                    step: frame.step,
                    kind,
                    message: format!("step {}: ALARM {}: {}", frame.step, kind, found.detail),
                    layers: found.layers,
                    numbers: found.numbers,
                });
            }
        }
        events
    }

    /// The layers that have all but vanished at this frame (see [`VanishingConfig`]): not 0,
    /// but below `ratio` × the largest norm of their instrument. O(values).
    fn vanished_layers(&self, frame: &Frame) -> Vec<String> {
        let cfg = &self.config.vanishing;
        if !cfg.enabled {
            return Vec::new();
        }
        let eps = self.config.dead.epsilon;
        // With parameter norms, the gradient norms are the values that have one: an extra value
        // (a learning rate of 1e-6) is no layer.
        let layers = &self.params.layers;
        let is_layer = |n: &&Named| layers.is_empty() || layers.contains(n.name.as_str());
        let mut largest: HashMap<&str, f64> = HashMap::new();
        for n in frame
            .values
            .iter()
            .filter(is_layer)
            .filter(|n| n.value.is_finite())
        {
            let e = largest
                .entry(gradtone_frame::naming::instrument_of(&n.name))
                .or_insert(0.0);
            *e = e.max(n.value.abs());
        }
        frame
            .values
            .iter()
            .filter(is_layer)
            .filter(|n| {
                let top = largest
                    .get(gradtone_frame::naming::instrument_of(&n.name))
                    .copied()
                    .unwrap_or(0.0);
                // An instrument whose every value is below epsilon is the `dead` alarm's news.
                n.value.is_finite()
                    && n.value != 0.0
                    && top > eps
                    && n.value.abs() < cfg.ratio * top
            })
            .map(|n| n.name.clone())
            .collect()
    }

    fn vanishing(&mut self, frame: &Frame, vanished: Vec<String>) -> Option<Finding> {
        if vanished.is_empty() {
            self.vanished_for = 0;
            return None;
        }
        self.vanished_for += 1;
        if self.vanished_for < self.config.vanishing.steps {
            return None;
        }
        let norm = |name: &str| frame.value(name).unwrap_or(f64::NAN).abs();
        let (lo, hi) = vanished
            .iter()
            .map(|n| norm(n))
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        let top = frame
            .values
            .iter()
            .filter(|n| n.value.is_finite())
            .max_by(|a, b| a.value.abs().total_cmp(&b.value.abs()))?;
        Some(
            Finding::from(format!(
                "gradients vanish: {} of {} layers at {:.2e}…{:.2e} for {} steps, below {:e} × the largest, {} = {:.4} ({})",
                vanished.len(),
                frame.values.len(),
                lo,
                hi,
                self.vanished_for,
                self.config.vanishing.ratio,
                top.name,
                Sci(top.value.abs()),
                list_span(&vanished)
            ))
            .num("smallest", lo)
            .num("largest_vanished", hi)
            .num("largest", top.value.abs())
            .num("ratio", hi / top.value.abs())
            .layers(&vanished),
        )
    }

    /// Compares the frame's parameter norms with the last ones: how far the weights moved per
    /// step, and whether every flowing layer's stayed bit-identical (counted in steps, so that
    /// norms sent every k-th step count as k). A frame without parameter norms changes nothing
    /// here but still opens the watch after a non-finite step. O(params).
    fn track_params(&mut self, frame: &Frame) -> ParamStep {
        let eps = self.config.dead.epsilon;
        let crippled_steps = self.config.frozen.crippled_steps;
        let h = &mut self.params;
        let mut step = ParamStep {
            gradient: gradtone_frame::stats::l2(
                frame
                    .values
                    .iter()
                    .filter(|n| n.value.is_finite())
                    .map(|n| n.value),
            ),
            ..ParamStep::default()
        };
        let mut bad = frame
            .values
            .iter()
            .chain(&frame.losses)
            .any(|n| !n.value.is_finite());
        let mut movement = None;
        if !frame.params.is_empty() {
            let flowing: HashSet<&str> = frame
                .values
                .iter()
                .filter(|n| n.value.is_finite() && n.value.abs() > eps)
                .map(|n| n.name.as_str())
                .collect();
            let (mut checked, mut same) = (0usize, 0usize);
            let (mut moved, mut total) = (0.0f64, 0.0f64);
            for p in &frame.params {
                if !p.value.is_finite() {
                    bad = true;
                    continue;
                }
                let Some(&before) = h.prev.get(p.name.as_str()) else {
                    continue;
                };
                moved += (p.value - before).abs();
                total += before.abs();
                if flowing.contains(p.name.as_str()) {
                    checked += 1;
                    same += usize::from(p.value.to_bits() == before.to_bits());
                }
            }
            // Steps since the last norms; a stream that restarts its count is taken as one.
            let gap = h
                .prev_step
                .map_or(1, |s| frame.step.saturating_sub(s).max(1));
            let had_prev = !h.prev.is_empty();
            h.prev.clear();
            h.prev.extend(
                frame
                    .params
                    .iter()
                    .filter(|p| p.value.is_finite())
                    .map(|p| (p.name.clone(), p.value)),
            );
            h.prev_step = Some(frame.step);
            if h.layers.len() != frame.params.len()
                || frame.params.iter().any(|p| !h.layers.contains(&p.name))
            {
                h.layers = frame.params.iter().map(|p| p.name.clone()).collect();
            }
            h.identical = if checked > 0 && same == checked {
                h.identical
                    .saturating_add(usize::try_from(gap).unwrap_or(usize::MAX))
            } else {
                0
            };
            movement = (had_prev && total > 0.0 && !bad).then(|| moved / total / gap as f64);
        }
        step.movement = movement;
        // The usual movement: the larger of the median so far and the previous step's, so
        // that only a sudden jump stands out (a warmup grows the steps gradually).
        if movement.is_some() && h.movement.len() >= MIN_MOVEMENT_HISTORY {
            let median = median_of(&mut self.scratch, h.movement.iter().copied());
            step.usual = median
                .zip(h.movement.back().copied())
                .map(|(m, last)| m.max(last));
        }
        // A non-finite step opens a watch on what follows: a run that goes on crippled.
        if bad {
            if h.since_non_finite.is_none() && h.movement.len() >= crippled_steps {
                let before = median_of(&mut self.scratch, h.movement.iter().copied());
                if let Some(before) = before.filter(|&b| b > 0.0) {
                    h.since_non_finite = Some((frame.step, before, Vec::new()));
                }
            }
        } else if let Some(m) = movement {
            if let Some((_, _, after)) = &mut h.since_non_finite {
                after.push(m);
            } else {
                if h.movement.len() == MOVEMENT_WINDOW {
                    h.movement.pop_front();
                }
                h.movement.push_back(m);
            }
        }
        step
    }

    /// The frozen optimiser: weights that stop moving while gradients flow.
    fn frozen(&mut self, step: &ParamStep) -> Option<Finding> {
        let cfg = &self.config.frozen;
        let h = &mut self.params;
        if !cfg.enabled {
            return None;
        }
        if h.identical >= cfg.steps {
            return Some(
                Finding::from(format!(
                    "weights stopped moving: every parameter norm is bit-identical for {} steps while gradients flow (total gradient norm {:.4}); the optimiser skips its step",
                    h.identical,
                    Sci(step.gradient)
                ))
                .num("steps", h.identical as f64)
                .num("gradient_norm", step.gradient),
            );
        }
        let (at, before, after) = h.since_non_finite.as_ref()?;
        let (at, before) = (*at, *before);
        if after.len() < cfg.crippled_steps {
            return None;
        }
        let recent = after[after.len() - cfg.crippled_steps..].iter().copied();
        let now = median_of(&mut self.scratch, recent)?;
        let finding = (now < before / cfg.crippled_factor).then(|| {
            Finding::from(format!(
                "weights barely move since the non-finite step {at}: {:.2e} of their norm per step (median of the last {}), {:.0}× less than the {:.2e} before it, while gradients flow (total gradient norm {:.4}); the optimiser's state is poisoned",
                now,
                cfg.crippled_steps,
                before / now.max(f64::MIN_POSITIVE),
                before,
                Sci(step.gradient)
            ))
            .num("movement", now)
            .num("movement_before", before)
            .num("non_finite_step", at as f64)
        });
        // The run is judged over a few windows after the event, then the watch ends.
        if finding.is_some() || after.len() >= 3 * cfg.crippled_steps {
            h.since_non_finite = None;
        }
        finding
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
    /// Names in `vanished` are the vanishing alarm's news, not this one's.
    fn layer_dead(&mut self, frame: &Frame, now: u64, vanished: &[String]) -> Option<Finding> {
        let vanished: HashSet<&str> = vanished.iter().map(String::as_str).collect();
        let layers = &self.params.layers;
        let is_layer = |name: &str| layers.is_empty() || layers.contains(name);
        let eps = self.config.dead.epsilon;
        let is_dead = |v: f64| v == 0.0 || v.abs() < eps;
        let (mut dead, mut moving) = (Vec::new(), Vec::new());
        let mut all_zero = true;
        // Instruments whose every value is dead are the `dead` alarm's news, not this one's.
        let mut instruments: HashMap<&str, (usize, usize)> = HashMap::new();
        for n in frame.values.iter().filter(|n| is_layer(&n.name)) {
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
            if !n.value.is_finite() || !is_layer(&n.name) {
                continue;
            }
            if is_dead(n.value) {
                if state.alive && !whole(&n.name) && !vanished.contains(n.name.as_str()) {
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
        Some(
            Finding::from(format!(
                "{} dead (gradient {}); {} still learning",
                list_some(&dead, 6),
                if all_zero {
                    "exactly 0".to_owned()
                } else {
                    format!("below {eps:e}")
                },
                list_some(&moving, 6)
            ))
            .num("dead", dead.len() as f64)
            .num("moving", moving.len() as f64)
            .layers(&dead),
        )
    }

    fn explosion(&mut self, frame: &Frame, params: &ParamStep) -> Option<Finding> {
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
        let loss = frame.loss().filter(|l| l.is_finite());
        self.norms.last_ratio = None;
        // The loss well below where it was before the norm rose: the network learns.
        let calm_loss = median_of(&mut self.scratch, self.norms.calm_losses.iter().copied());
        let learning = loss
            .zip(calm_loss)
            .is_some_and(|(l, r)| r > 0.0 && l < (1.0 - cfg.learning_drop) * r);
        if cfg.enabled
            && count > 0
            && total.is_finite()
            && !clipped
            && let Some(median) = median
        {
            let ratio = total / median;
            self.norms.last_ratio = Some(ratio);
            // A spike stands out from the recent level too: after a rise that was learning,
            // the running median lags behind the norms of a network that now learns faster.
            let recent = self
                .norms
                .median
                .median_of_last(RECENT_TOTALS)
                .unwrap_or(median);
            let spike = ratio > cfg.factor && total > cfg.factor * recent;
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
            // Learning: no alarm, and the rise is no pending explosion either. Not in the
            // first steps: a healthy start does not grow the gradient (the early rule), while
            // a step size far too large can lower the loss once before it blows up.
            let why = if (spike || persisted.is_some()) && learning {
                None
            } else if spike {
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
                let names: Vec<String> = layers.iter().map(|(n, _)| n.clone()).collect();
                let lines: Vec<&str> = layers.iter().map(|(_, l)| l.as_str()).collect();
                detail = Some(
                    Finding::from(format!(
                        "gradient norm exploded: {why}{}{}",
                        if lines.is_empty() { "" } else { "; " },
                        lines.join(", ")
                    ))
                    .num("total", total)
                    .num("median", median)
                    .num("ratio", ratio)
                    .layers(&names),
                );
                if let Some(l) = loss {
                    detail = detail.map(|d| d.num("loss", l));
                }
            }
        }
        // The update itself: weights that moved far more than usual in one step (a step size
        // gone wrong), even when the gradient was clipped.
        if detail.is_none()
            && cfg.enabled
            && cfg.update_factor > 0.0
            && !learning
            && let (Some(m), Some(usual)) = (params.movement, params.usual)
            && usual > 0.0
            && m > cfg.update_factor * usual
        {
            detail = Some(
                Finding::from(format!(
                    "the weights jumped: the last update changed their norm by {:.2e} of it, {:.0}× the usual {:.2e} (> {}×); gradient norm {:.4}",
                    m,
                    m / usual,
                    usual,
                    cfg.update_factor,
                    Sci(total)
                ))
                .num("movement", m)
                .num("usual", usual)
                .num("ratio", m / usual)
                .num("total", total),
            );
        }
        self.norms.pending = pending;
        let calm = median.is_none_or(|m| total <= 2.0 * m);
        if let Some(l) = loss
            && calm
            && count > 0
            && total.is_finite()
        {
            if self.norms.calm_losses.len() == CALM_LOSSES {
                self.norms.calm_losses.pop_front();
            }
            self.norms.calm_losses.push_back(l);
        }
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

    /// The `k` layers with the largest value / typical level: names and formatted. O(values).
    fn top_growth(&mut self, frame: &Frame, k: usize) -> Vec<(String, String)> {
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
                (
                    n.name.clone(),
                    format!(
                        "{} = {:.4} ({:.0}× its usual {:.4})",
                        n.name,
                        Sci(n.value),
                        r,
                        Sci(level)
                    ),
                )
            })
            .collect()
    }

    fn divergence(&mut self, frame: &Frame) -> Option<Finding> {
        let cfg = self.config.divergence.clone();
        let loss = frame.loss().filter(|l| l.is_finite())?;
        let h = &mut self.loss;
        // The starting level as known before this step.
        let start = h.start.iter().copied().reduce(f64::min);
        if h.start.len() < cfg.start_steps {
            h.start.push(loss);
        }
        if h.recent.len() == cfg.smooth_steps {
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
        // The jump: this loss against the level and the noise of the losses just before it.
        let w = cfg.jump_window;
        let k = cfg.shift_steps;
        let len = h.jump.len();
        let jump = level_and_noise(
            &mut self.scratch,
            h.jump.iter().skip(len.saturating_sub(w)),
            w,
        )
        .filter(|_| loss > 0.0)
        .map(|(level, noise)| (level, (loss / level).ln() / noise));
        // The shift: the last `k` losses (this one too) against the `w` before them.
        let shift = (len + 1 >= k + w.div_ceil(2))
            .then(|| {
                let before = h
                    .jump
                    .iter()
                    .take(len + 1 - k)
                    .skip((len + 1 - k).saturating_sub(w));
                let (level, noise) = level_and_noise(&mut self.scratch, before, w)?;
                let last = h
                    .jump
                    .iter()
                    .skip(len + 1 - k)
                    .chain(std::iter::once(&loss));
                let m = median_of(&mut self.scratch, last.copied())?;
                (m > 0.0).then(|| (m, level, (m / level).ln() * (k as f64).sqrt() / noise))
            })
            .flatten();
        if h.jump.len() == w + k {
            h.jump.pop_front();
        }
        h.jump.push_back(loss);
        if !cfg.enabled {
            return None;
        }
        // Losses near 0 (or negative) have no meaningful ratio.
        let start = start.filter(|&s| s > 0.0)?;
        let found =
            |detail: String| Some(Finding::from(detail).num("loss", loss).num("start", start));
        if loss > cfg.start_factor * start {
            return found(format!(
                "loss diverged: {:.4} is {:.1}× its starting level {:.4} (> {}×)",
                Sci(loss),
                loss / start,
                Sci(start),
                cfg.start_factor
            ))
            .map(|f| f.num("ratio", loss / start));
        }
        if let Some(m) = smooth
            && m > cfg.smooth_factor * start
        {
            return found(format!(
                "loss diverged: the median {:.4} of the last {} losses is {:.1}× its starting level {:.4} (> {}×)",
                Sci(m),
                smooth_n,
                m / start,
                Sci(start),
                cfg.smooth_factor
            ))
            .map(|f| f.num("median", m).num("ratio", m / start));
        }
        let norm_ratio = self.norms.last_ratio;
        if let Some((level, z)) = jump
            && loss > cfg.jump_factor * level
            && z > cfg.jump_z
        {
            let with = format!(" (> {})", cfg.jump_z);
            let mut f = Finding::from(format!(
                "loss jumped: {:.4} is {:.1}× its level {:.4} over the last {} steps (> {}×), {:.1}× its step-to-step noise{with}",
                Sci(loss),
                loss / level,
                Sci(level),
                cfg.jump_window,
                cfg.jump_factor,
                z,
            ))
            .num("loss", loss)
            .num("level", level)
            .num("ratio", loss / level)
            .num("noise_z", z);
            if let Some(r) = norm_ratio {
                f = f.num("norm_ratio", r);
            }
            return Some(f);
        }
        if let Some((m, level, z)) = shift
            && m > cfg.shift_factor * level
            && z > cfg.shift_z
        {
            return found(format!(
                "loss rose and stays up: the median {:.4} of the last {} losses is {:.2}× its level {:.4} over the {} steps before, {:.0}× the noise of such a median (> {}× and > {})",
                Sci(m),
                k,
                m / level,
                Sci(level),
                w,
                z,
                cfg.shift_factor,
                cfg.shift_z
            ))
            .map(|f| f.num("median", m).num("level", level).num("ratio", m / level).num("noise_z", z));
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
        let layers = &self.params.layers;
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut instruments: Vec<(&str, Vec<&Named>)> = Vec::new();
        for n in frame
            .values
            .iter()
            .filter(|n| layers.is_empty() || layers.contains(n.name.as_str()))
        {
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

    fn plateau(&mut self, frame: &Frame) -> Option<Finding> {
        let cfg = &self.config.plateau;
        if !cfg.enabled {
            return None;
        }
        let loss = frame.loss().filter(|l| l.is_finite())?;
        let w = cfg.window;
        let p = &mut self.plateau;
        // The last `window` losses, and the `patience` before them.
        if p.losses.len() == w + cfg.patience {
            p.losses.pop_front();
        }
        p.losses.push_back(loss);
        let n = p.losses.len();
        if n < w {
            return None;
        }
        let median = median_of(&mut self.scratch, p.losses.iter().skip(n - w).copied())?;
        // The noise of that median (its standard error, in log space: a loss's noise is
        // relative to its level), for the wording: "rising" only when even the median's low
        // end, two standard errors down, is above the best.
        let se = if median > 0.0 && p.losses.iter().skip(n - w).all(|&l| l > 0.0) {
            let c = median.ln();
            let mad = median_of(
                &mut self.scratch,
                p.losses.iter().skip(n - w).map(|l| (l.ln() - c).abs()),
            )?;
            1.2533 * 1.4826 * mad / (w as f64).sqrt()
        } else {
            0.0
        };
        let lower = median * (-2.0 * se).exp();
        let margin = cfg.min_improvement_pct / 100.0;
        // Progress over the patience: the median now against the median `patience` steps ago.
        // The lowest median so far is a minimum over windows that noise drives low: a noisy
        // run that still improves steadily may not beat it for a long while.
        let progressed = (n == w + cfg.patience)
            .then(|| median_of(&mut self.scratch, p.losses.iter().take(w).copied()))
            .flatten()
            .is_some_and(|old| median < old - margin * old.abs());
        let (best, since) = match p.best {
            // A real improvement resets the clock.
            Some((b, _)) if median < b - margin * b.abs() => (median, 0),
            Some((b, _)) if progressed => (b, 0),
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
        let how = if lower > best + margin * best.abs() {
            format!("loss rising: {change:.1} % above")
        } else if change > cfg.min_improvement_pct {
            format!("loss not improving: {change:.1} % (within its noise) above")
        } else {
            format!("loss flat: within {} % of", cfg.min_improvement_pct)
        };
        Some(
            Finding::from(format!(
                "{how} its best level {:.4}, {since} steps without improving (median loss {:.4} over the last {w} steps, ±{:.1} % noise)",
                Sci(best),
                Sci(median),
                100.0 * se.exp_m1(),
            ))
            .num("median", median)
            .num("best", best)
            .num("noise", se)
            .num("steps", since as f64),
        )
    }
}

impl Watch for AlarmDetector {
    /// Feeds one frame; returns the alarms that fire at its step (in [`AlarmKind::DETECTOR`] order).
    /// Costs O(values in the frame).
    fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        self.judge(frame)
    }
}

/// The median of `losses` (at least half of `window` of them, all positive) and their noise
/// in log space (a loss's noise is relative to its level): `1.4826 · MAD(ln losses)`, floored
/// at 1 % so that a loss that never moved does not make every wobble infinitely significant.
fn level_and_noise<'a>(
    scratch: &mut Vec<f64>,
    losses: impl Iterator<Item = &'a f64> + Clone,
    window: usize,
) -> Option<(f64, f64)> {
    let n = losses.clone().count();
    if n < window.div_ceil(2) || losses.clone().any(|&l| l <= 0.0) {
        return None;
    }
    let level = median_of(scratch, losses.clone().copied())?;
    let center = level.ln();
    let mad = median_of(scratch, losses.map(|l| (l.ln() - center).abs()))?;
    Some((level, (1.4826 * mad).max(0.01)))
}

/// All of `items` when few, else `a, b, c, …, y, z (N layers)`.
fn list_span<S: AsRef<str>>(items: &[S]) -> String {
    if items.len() <= 6 {
        return list_some(items, 6);
    }
    let n = items.len();
    let part = |r: std::ops::Range<usize>| {
        items[r]
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(", ")
    };
    format!("{}, …, {} ({n} layers)", part(0..3), part(n - 2..n))
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
