//! What a GAN run is: loss form, weights, learning rates, and the named presets.

/// The generator's loss form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum GanLoss {
    /// `−log D(G(z))`: strong gradients while the generator is losing (the usual choice).
    NonSaturating,
    /// `log(1 − D(G(z)))`, the original minimax loss: its gradient vanishes once the
    /// discriminator wins.
    Saturating,
}

/// Everything a GAN run is set by.
#[derive(Clone, Debug, PartialEq)]
pub struct GanConfig {
    /// Images (and codes) per step.
    pub batch: usize,
    /// Steps (one discriminator and one generator update each).
    pub steps: usize,
    /// Discriminator learning rate (Adam).
    pub d_lr: f64,
    /// Generator learning rate (Adam).
    pub g_lr: f64,
    /// Adam β₁ of both (0.5 is the GAN custom; PyTorch's default is 0.9).
    pub beta1: f64,
    /// The generator's loss form.
    pub loss: GanLoss,
    /// Weights of `d_real`, `d_fake`, `g_adv` ([`TERMS`] order).
    pub weights: [f64; 3],
    /// Seeds both networks, the codes and the batches.
    pub seed: u64,
}

/// Named starting points that show the healthy run and the classic failure modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum GanPreset {
    /// Adam 2e-4 / 2e-4, β₁ 0.5, non-saturating: trains.
    Balanced,
    /// Saturating loss, discriminator 10× faster than the generator: the discriminator wins
    /// and the generator's gradient fades.
    #[cfg_attr(feature = "clap", value(name = "d-wins"))]
    DWins,
    /// Both learning rates 25× too high (5e-3): the losses swing, the norms jump.
    Unstable,
    /// Generator 10× faster than the discriminator: it chases the discriminator's current
    /// favourite and its samples lose diversity.
    Collapse,
}

impl GanPreset {
    /// Every preset.
    pub const ALL: [GanPreset; 4] = [
        GanPreset::Balanced,
        GanPreset::DWins,
        GanPreset::Unstable,
        GanPreset::Collapse,
    ];

    /// Short name (`balanced`, `d-wins`, `unstable`, `collapse`).
    pub fn name(self) -> &'static str {
        match self {
            GanPreset::Balanced => "balanced",
            GanPreset::DWins => "d-wins",
            GanPreset::Unstable => "unstable",
            GanPreset::Collapse => "collapse",
        }
    }

    /// The configuration of this preset with `seed` (batch 64, 2000 steps).
    pub fn config(self, seed: u64) -> GanConfig {
        let base = GanConfig {
            batch: 64,
            steps: 2000,
            d_lr: 2e-4,
            g_lr: 2e-4,
            beta1: 0.5,
            loss: GanLoss::NonSaturating,
            weights: [1.0; 3],
            seed,
        };
        match self {
            GanPreset::Balanced => base,
            GanPreset::DWins => GanConfig {
                d_lr: 1e-3,
                g_lr: 1e-4,
                loss: GanLoss::Saturating,
                ..base
            },
            GanPreset::Unstable => GanConfig {
                d_lr: 5e-3,
                g_lr: 5e-3,
                ..base
            },
            GanPreset::Collapse => GanConfig {
                d_lr: 1e-4,
                g_lr: 1e-3,
                ..base
            },
        }
    }
}
