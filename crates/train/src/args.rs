//! `gradtone train`'s own flags (behind the `clap` feature): the model, its loss weights, the
//! optimiser and run length, and the GAN's flags, as changes to a preset. The binary adds the
//! outputs', playback and data flags.
// The fields' docs are their --help texts: `<name>` there is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::gan::{GanLoss, GanOverrides, GanPreset};
use crate::{OptimKind, Preset, RunOverrides};

/// What `gradtone train` and `sweep` train.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ModelArg {
    /// The 2019 seed CNN classifier (loss terms: nll, and l2 when weighted).
    #[default]
    Cnn,
    /// A small MLP GAN (loss terms: d_real, d_fake, g_adv).
    Gan,
}

/// Loss-term weights, `name=weight` pairs in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct LossWeights(
    /// The pairs, in the order given.
    pub Vec<(String, f64)>,
);

/// Parses `name=weight[,name=weight…]` (weights finite and ≥ 0).
fn parse_weights(s: &str) -> Result<LossWeights, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (name, w) = p
                .split_once('=')
                .ok_or_else(|| format!("{p:?} is not name=weight (e.g. l2=0.001)"))?;
            let w: f64 = w
                .trim()
                .parse()
                .map_err(|_| format!("weight of {:?} is not a number: {w:?}", name.trim()))?;
            if !w.is_finite() || w < 0.0 {
                return Err(format!(
                    "weight of {:?} must be finite and ≥ 0, got {w}",
                    name.trim()
                ));
            }
            Ok((name.trim().to_string(), w))
        })
        .collect::<Result<_, _>>()
        .map(LossWeights)
}

/// `gradtone train`'s own flags but the model: its loss weights, the optimiser and run length, and
/// the GAN's flags.
#[derive(Args, Debug)]
pub struct TrainFlags {
    /// Weights of the loss terms, name=weight,…: cnn `l2=λ` adds λ·Σ‖W‖² (its NLL weight stays
    /// 1); gan `d_real=…,d_fake=…,g_adv=…` (default 1 each). Each term becomes an instrument.
    #[arg(long, value_name = "NAME=W,...", value_parser = parse_weights)]
    pub loss_weights: Option<LossWeights>,
    /// Start from one of the five original settings; the flags below override its fields.
    #[arg(long, value_enum, default_value = "sgd_lr0.1_bs10")]
    pub preset: Preset,
    /// Optimiser.
    #[arg(long, value_enum)]
    pub optim: Option<OptimKind>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// SGD momentum (PyTorch semantics, dampening 0). The presets use 0.5.
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Batch size.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Stop after this many steps (the original: 201). 0 = no step limit (use --epochs).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Stop after this many epochs (whichever of --steps/--epochs comes first).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed for the initial weights and each epoch's shuffle.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Go through the training set in file order instead of shuffling each epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Keep the last incomplete batch of each epoch (default: drop it, as the original).
    #[arg(long)]
    pub keep_last: bool,
    /// Start from raw float32 parameter files (PyTorch layout, <name>.f32) instead of a seeded init.
    #[arg(long, value_name = "DIR")]
    pub init_params: Option<PathBuf>,
    /// Skip the test-set accuracy at the end.
    #[arg(long)]
    pub no_eval: bool,
    /// The GAN's own flags.
    #[command(flatten)]
    pub gan: GanFlags,
}

impl TrainFlags {
    fn weights(&self) -> Vec<(String, f64)> {
        self.loss_weights.clone().map(|w| w.0).unwrap_or_default()
    }

    /// The CNN flags as changes to `--preset`.
    pub fn overrides(&self) -> RunOverrides {
        RunOverrides {
            optim: self.optim,
            lr: self.lr,
            momentum: self.momentum,
            batch: self.batch,
            steps: self.steps,
            epochs: self.epochs,
            no_shuffle: self.no_shuffle,
            keep_last: self.keep_last,
            loss_weights: self.weights(),
        }
    }

    /// The GAN flags as changes to `--gan-preset`; the CNN-only flags given, as an error line.
    pub fn gan_overrides(&self) -> Result<GanOverrides, String> {
        for (given, flag) in [
            (self.optim.is_some(), "--optim"),
            (self.momentum.is_some(), "--momentum"),
            (self.epochs.is_some(), "--epochs"),
            (self.init_params.is_some(), "--init-params"),
            (self.lr.is_some(), "--lr (use --g-lr / --d-lr)"),
        ] {
            if given {
                return Err(format!("{flag} does not apply to --model gan"));
            }
        }
        Ok(GanOverrides {
            steps: self.steps,
            batch: self.batch,
            g_lr: self.gan.g_lr,
            d_lr: self.gan.d_lr,
            loss: self.gan.gan_loss,
            weights: self.weights(),
        })
    }
}

/// Flags of `train --model gan`.
#[derive(Args, Debug, Clone)]
pub struct GanFlags {
    /// GAN: starting point; the GAN flags below override its fields (batch 64, 2000 steps).
    #[arg(long, value_enum, default_value_t = GanPreset::Balanced)]
    pub gan_preset: GanPreset,
    /// GAN: generator learning rate (Adam).
    #[arg(long)]
    pub g_lr: Option<f64>,
    /// GAN: discriminator learning rate (Adam).
    #[arg(long)]
    pub d_lr: Option<f64>,
    /// GAN: the generator's loss form.
    #[arg(long, value_enum)]
    pub gan_loss: Option<GanLoss>,
    /// GAN: write 64 generated digits (after the last step) to this PNG, and beside it
    /// <name>-progress.png: the same 10 codes' digits every --sample-every steps, a row each.
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
    /// GAN: steps between the rows of the progress picture (default: steps / 10).
    #[arg(long, value_name = "STEPS")]
    pub sample_every: Option<usize>,
    /// GAN: per-step CSV of D(real), D(fake), sample diversity and the discriminator's total
    /// gradient norms (d_real + d_fake).
    #[arg(long, value_name = "FILE")]
    pub diagnostics: Option<PathBuf>,
}
