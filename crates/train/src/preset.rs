//! The five settings of the 2019 experiment.

use crate::ConfigError;
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

/// An optimiser without its settings, to pick one by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OptimKind {
    /// SGD with momentum (PyTorch semantics: dampening 0).
    Sgd,
    /// Adam (betas 0.9/0.999, eps 1e-8, as PyTorch).
    Adam,
}

/// Changes to a preset's configuration; `None` (and `false`, and no weight) keeps the
/// preset's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOverrides {
    /// Optimiser; SGD keeps the preset's momentum (0.5 after Adam).
    pub optim: Option<OptimKind>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// SGD momentum (ignored for Adam).
    pub momentum: Option<f64>,
    /// Batch size.
    pub batch: Option<usize>,
    /// Step limit; `Some(0)`: none (epochs decide).
    pub steps: Option<usize>,
    /// Epoch limit.
    pub epochs: Option<usize>,
    /// Go through the training set in file order.
    pub no_shuffle: bool,
    /// Keep each epoch's last incomplete batch.
    pub keep_last: bool,
    /// `name=weight` pairs: `l2`, and `nll` at 1 only.
    pub loss_weights: Vec<(String, f64)>,
}

impl Preset {
    /// This setting with `seed`, changed by `o`; fails on a loss term the CNN does not have,
    /// an NLL weight other than 1, or a batch size of 0.
    pub fn config_with(self, seed: u64, o: &RunOverrides) -> Result<RunConfig, ConfigError> {
        let mut cfg = self.config(seed);
        let momentum = match cfg.optim {
            Optim::Sgd { momentum } => momentum,
            Optim::Adam => 0.5,
        };
        match o.optim {
            Some(OptimKind::Adam) => cfg.optim = Optim::Adam,
            Some(OptimKind::Sgd) => cfg.optim = Optim::Sgd { momentum },
            None => {}
        }
        if let (Some(m), Optim::Sgd { momentum }) = (o.momentum, &mut cfg.optim) {
            *momentum = m;
        }
        cfg.lr = o.lr.unwrap_or(cfg.lr);
        cfg.batch = o.batch.unwrap_or(cfg.batch);
        if let Some(s) = o.steps {
            cfg.steps = (s > 0).then_some(s);
        }
        if o.epochs.is_some() {
            cfg.epochs = o.epochs;
        }
        cfg.shuffle = !o.no_shuffle;
        cfg.drop_last = !o.keep_last;
        for (name, w) in &o.loss_weights {
            match name.as_str() {
                "l2" => cfg.l2 = *w,
                "nll" if *w == 1.0 => {}
                "nll" => return Err(ConfigError::NllWeight(*w)),
                other => return Err(ConfigError::CnnTerm(other.to_string())),
            }
        }
        if cfg.batch == 0 {
            return Err(ConfigError::ZeroBatch);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_change_the_preset() {
        let o = RunOverrides {
            optim: Some(OptimKind::Sgd),
            momentum: Some(0.9),
            steps: Some(0),
            epochs: Some(2),
            keep_last: true,
            loss_weights: vec![("nll".into(), 1.0), ("l2".into(), 1e-3)],
            ..RunOverrides::default()
        };
        let cfg = Preset::AdamLr001.config_with(4, &o).unwrap();
        assert_eq!(cfg.optim, Optim::Sgd { momentum: 0.9 });
        assert_eq!((cfg.lr, cfg.batch, cfg.seed), (0.01, 10, 4));
        assert_eq!((cfg.steps, cfg.epochs), (None, Some(2)));
        assert!(cfg.shuffle && !cfg.drop_last);
        assert_eq!(cfg.l2, 1e-3);
        let adam = RunOverrides {
            optim: Some(OptimKind::Adam),
            momentum: Some(0.9),
            ..RunOverrides::default()
        };
        assert_eq!(
            Preset::SgdLr01.config_with(1, &adam).unwrap().optim,
            Optim::Adam
        );
    }

    #[test]
    fn overrides_refuse_what_the_cnn_cannot_train() {
        let w = |name: &str, w: f64| RunOverrides {
            loss_weights: vec![(name.into(), w)],
            ..RunOverrides::default()
        };
        let err = |o: &RunOverrides| Preset::SgdLr01.config_with(1, o).unwrap_err();
        assert_eq!(err(&w("nll", 2.0)), ConfigError::NllWeight(2.0));
        assert_eq!(
            err(&w("d_real", 1.0)).to_string(),
            "--loss-weights: the cnn has the terms nll and l2, not \"d_real\" (for d_real/d_fake/g_adv use --model gan)"
        );
        let zero = RunOverrides {
            batch: Some(0),
            ..RunOverrides::default()
        };
        assert_eq!(err(&zero), ConfigError::ZeroBatch);
    }

    #[test]
    fn a_plan_without_steps_is_refused() {
        let mut cfg = Preset::SgdLr1Bs256.config(1);
        cfg.epochs = Some(1);
        assert_eq!(cfg.check_plan(256), Ok(()));
        assert_eq!(
            cfg.check_plan(100).unwrap_err().to_string(),
            "batch 256 makes zero training steps on 100 images (the last partial batch is \
             dropped); use --batch 100 or less, or --keep-last"
        );
        assert_eq!(cfg.check_plan(0), Err(ConfigError::NoImages));
        cfg.drop_last = false;
        assert_eq!(cfg.check_plan(100), Ok(()));
        cfg.batch = 0;
        assert_eq!(cfg.check_plan(100), Err(ConfigError::ZeroBatch));
    }
}
