//! The five settings of the 2019 experiment.

use crate::trainer::{Optim, RunConfig};

/// One of the original experiment's five settings (SGD momentum 0.5 throughout, 201 steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Preset {
    /// SGD lr 0.01, batch 10: trains slowly and steadily.
    #[cfg_attr(feature = "clap", value(name = "sgd_lr0.01_bs10"))]
    SgdLr001,
    /// SGD lr 0.1, batch 10: trains fast; the good setting.
    #[cfg_attr(feature = "clap", value(name = "sgd_lr0.1_bs10"))]
    SgdLr01,
    /// SGD lr 1.0, batch 10: explodes within a few steps, then NaN or dead ReLUs.
    #[cfg_attr(feature = "clap", value(name = "sgd_lr1.0_bs10"))]
    SgdLr1,
    /// SGD lr 1.0, batch 256: explodes too, with smoother gradients.
    #[cfg_attr(feature = "clap", value(name = "sgd_lr1.0_bs256"))]
    SgdLr1Bs256,
    /// Adam lr 0.01, batch 10: trains for some seeds, dies for others.
    #[cfg_attr(feature = "clap", value(name = "adam_lr0.01_bs10"))]
    AdamLr001,
}

impl Preset {
    /// All five, in the article's order.
    pub const ALL: [Preset; 5] = [
        Preset::SgdLr001,
        Preset::SgdLr01,
        Preset::SgdLr1,
        Preset::SgdLr1Bs256,
        Preset::AdamLr001,
    ];

    /// The name used on the command line and in the reference files, e.g. `sgd_lr0.1_bs10`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::SgdLr001 => "sgd_lr0.01_bs10",
            Preset::SgdLr01 => "sgd_lr0.1_bs10",
            Preset::SgdLr1 => "sgd_lr1.0_bs10",
            Preset::SgdLr1Bs256 => "sgd_lr1.0_bs256",
            Preset::AdamLr001 => "adam_lr0.01_bs10",
        }
    }

    /// Looks a preset up by [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The run configuration of this setting with `seed`.
    pub fn config(self, seed: u64) -> RunConfig {
        let sgd = Optim::Sgd { momentum: 0.5 };
        let (optim, lr, batch) = match self {
            Preset::SgdLr001 => (sgd, 0.01, 10),
            Preset::SgdLr01 => (sgd, 0.1, 10),
            Preset::SgdLr1 => (sgd, 1.0, 10),
            Preset::SgdLr1Bs256 => (sgd, 1.0, 256),
            Preset::AdamLr001 => (Optim::Adam, 0.01, 10),
        };
        RunConfig {
            optim,
            lr,
            batch,
            steps: Some(201),
            epochs: None,
            seed,
            shuffle: true,
            drop_last: true,
            l2: 0.0,
        }
    }
}
