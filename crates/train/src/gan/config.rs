//! What a GAN run is: loss form, weights, learning rates, and the named presets.

use super::TERMS;
use crate::ConfigError;

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

/// Changes to a preset's configuration; `None` (or no weight) keeps the preset's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GanOverrides {
    /// Steps.
    pub steps: Option<usize>,
    /// Batch size.
    pub batch: Option<usize>,
    /// Generator learning rate.
    pub g_lr: Option<f64>,
    /// Discriminator learning rate.
    pub d_lr: Option<f64>,
    /// The generator's loss form.
    pub loss: Option<GanLoss>,
    /// `name=weight` pairs, names from [`TERMS`].
    pub weights: Vec<(String, f64)>,
}

impl GanPreset {
    /// This preset with `seed`, changed by `o`; fails on an unknown term, or a batch size or
    /// step count of 0.
    pub fn config_with(self, seed: u64, o: &GanOverrides) -> Result<GanConfig, ConfigError> {
        let mut cfg = self.config(seed);
        cfg.steps = o.steps.unwrap_or(cfg.steps);
        cfg.batch = o.batch.unwrap_or(cfg.batch);
        cfg.g_lr = o.g_lr.unwrap_or(cfg.g_lr);
        cfg.d_lr = o.d_lr.unwrap_or(cfg.d_lr);
        cfg.loss = o.loss.unwrap_or(cfg.loss);
        cfg.set_weights(&o.weights)?;
        if cfg.batch == 0 || cfg.steps == 0 {
            return Err(ConfigError::GanZero);
        }
        Ok(cfg)
    }
}

impl GanConfig {
    /// Applies `name=weight` pairs (names: [`TERMS`]), in order.
    pub fn set_weights<'a>(
        &mut self,
        weights: impl IntoIterator<Item = &'a (String, f64)>,
    ) -> Result<(), ConfigError> {
        for (name, w) in weights {
            let Some(i) = TERMS.iter().position(|t| t == name) else {
                return Err(ConfigError::GanTerm(name.clone()));
            };
            self.weights[i] = *w;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_change_the_preset_and_unknown_terms_fail() {
        let o = GanOverrides {
            steps: Some(5),
            g_lr: Some(0.1),
            weights: vec![("d_fake".into(), 2.0)],
            ..GanOverrides::default()
        };
        let cfg = GanPreset::Balanced.config_with(3, &o).unwrap();
        assert_eq!((cfg.steps, cfg.batch, cfg.g_lr, cfg.seed), (5, 64, 0.1, 3));
        assert_eq!(cfg.weights, [1.0, 2.0, 1.0]);
        let bad = GanOverrides {
            weights: vec![("l2".into(), 1.0)],
            ..GanOverrides::default()
        };
        assert_eq!(
            GanPreset::Balanced
                .config_with(1, &bad)
                .unwrap_err()
                .to_string(),
            "--loss-weights: the gan has the terms d_real, d_fake, g_adv, not \"l2\""
        );
        let zero = GanOverrides {
            batch: Some(0),
            ..GanOverrides::default()
        };
        assert_eq!(
            GanPreset::Balanced.config_with(1, &zero),
            Err(ConfigError::GanZero)
        );
    }
}
