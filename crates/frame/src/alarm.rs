//! What an alarm is about, and one fired alarm.

use std::fmt;

/// What an alarm is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmKind {
    /// A NaN or infinite value or loss.
    NonFinite,
    /// The gradient norm jumped far above its recent level.
    Explosion,
    /// The loss rose far above its starting level or its best.
    Divergence,
    /// Every gradient norm vanished (below epsilon) or is exactly zero.
    Dead,
    /// Some layers' gradients died (exactly zero or below epsilon) while others still move.
    LayerDead,
    /// The loss stopped improving.
    Plateau,
    /// Gradients vanish through depth: the first layers' norms are orders of magnitude below
    /// the last layers' (a deep sigmoid stack).
    Vanishing,
    /// The weights stopped moving (the optimiser skips its step, or its state is poisoned)
    /// while gradients still flow. Needs the frame's parameter norms ([`crate::Frame::params`]).
    Frozen,
    /// A rank of a distributed run lags behind or disagrees with the others. Not fired by
    /// the gradient detector: by the watch of whoever merges ranks.
    Rank,
    /// One weighted loss term overwhelms another (a GAN's discriminator wins, a regulariser
    /// drowns the task). Fired by a watch that knows what the terms mean (a GAN's).
    Imbalance,
    /// The model's outputs lost their diversity (a GAN's mode collapse). Fired by a GAN's watch.
    Collapse,
    /// A norm swings up and down from step to step instead of settling (an adversarial game
    /// that oscillates). Fired by a GAN's watch.
    Oscillation,
}

impl AlarmKind {
    /// The kinds the gradient detector (`gradtone_detect::alarm::AlarmDetector`) fires, in the
    /// order it reports them, most urgent first. The other kinds ([`AlarmKind::Rank`],
    /// [`AlarmKind::Imbalance`], [`AlarmKind::Collapse`], [`AlarmKind::Oscillation`]) are fired
    /// by other watches.
    pub const DETECTOR: [AlarmKind; 8] = [
        AlarmKind::NonFinite,
        AlarmKind::Explosion,
        AlarmKind::Divergence,
        AlarmKind::Dead,
        AlarmKind::LayerDead,
        AlarmKind::Vanishing,
        AlarmKind::Frozen,
        AlarmKind::Plateau,
    ];

    /// Short lowercase name, as in the config file (`non_finite`, `explosion`, …).
    pub fn name(self) -> &'static str {
        match self {
            AlarmKind::NonFinite => "non_finite",
            AlarmKind::Explosion => "explosion",
            AlarmKind::Divergence => "divergence",
            AlarmKind::Dead => "dead",
            AlarmKind::LayerDead => "layer_dead",
            AlarmKind::Plateau => "plateau",
            AlarmKind::Vanishing => "vanishing",
            AlarmKind::Frozen => "frozen",
            AlarmKind::Rank => "rank",
            AlarmKind::Imbalance => "imbalance",
            AlarmKind::Collapse => "collapse",
            AlarmKind::Oscillation => "oscillation",
        }
    }

    /// Whether the run is in trouble (every kind but [`AlarmKind::Plateau`], which only says
    /// that progress stalled).
    pub fn is_trouble(self) -> bool {
        self != AlarmKind::Plateau
    }
}

impl fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fired alarm.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmEvent {
    /// The step it fired at.
    pub step: u64,
    /// What it is about.
    pub kind: AlarmKind,
    /// A ready console line naming the step, the layers and the numbers.
    pub message: String,
    /// The layers (value names) it is about, if any: the ones that exploded, died, vanished.
    pub layers: Vec<String>,
    /// The numbers behind it, by name (`ratio`, `median`, `loss` …), for scripts that act on
    /// alarms (`--alarms FILE`).
    pub numbers: Vec<(String, f64)>,
}

impl AlarmEvent {
    /// An event in the one console format: `step N: ALARM kind: detail`.
    ///
    /// ```
    /// use gradtone_frame::{AlarmEvent, AlarmKind};
    /// let e = AlarmEvent::new(4, AlarmKind::Dead, "every gradient is exactly 0");
    /// assert_eq!(e.to_string(), "step 4: ALARM dead: every gradient is exactly 0");
    /// ```
    pub fn new(step: u64, kind: AlarmKind, detail: impl fmt::Display) -> Self {
        AlarmEvent {
            step,
            kind,
            message: format!("step {step}: ALARM {kind}: {detail}"),
            layers: Vec::new(),
            numbers: Vec::new(),
        }
    }

    /// The event with the layers it is about (builder style).
    #[must_use]
    pub fn with_layers<S: Into<String>>(mut self, layers: impl IntoIterator<Item = S>) -> Self {
        self.layers = layers.into_iter().map(Into::into).collect();
        self
    }

    /// The event with one more number behind it (builder style).
    #[must_use]
    pub fn with_number(mut self, name: impl Into<String>, value: f64) -> Self {
        self.numbers.push((name.into(), value));
        self
    }
}

impl fmt::Display for AlarmEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
