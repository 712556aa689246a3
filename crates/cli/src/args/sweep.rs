//! `gradtone sweep` flags.

use std::path::PathBuf;

use clap::Args;
use gradtone_sound::SampleFormat;

use super::{DataArgs, ModelArg};

/// `gradtone sweep` flags.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// What to train: the seed CNN (sgd_lr0.1_bs10 plus an L2 term) or the balanced GAN.
    #[arg(long, value_enum, default_value_t = ModelArg::Cnn)]
    pub model: ModelArg,
    /// The loss term whose weight varies: cnn `l2`; gan `d_real` or `d_fake` (default: l2 / d_fake).
    #[arg(long)]
    pub term: Option<String>,
    /// The weights to try, in order, comma-separated (default: cnn 1e-4,1e-3,1e-2,1e-1; gan
    /// 0.25,1,4).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub weights: Vec<f64>,
    /// Steps per setting (default: cnn 201, gan 600).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of every setting (the same initial weights and batches for all).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder: sweep.wav, sweep.csv (every step), sweep.png, sweep.md (the table).
    #[arg(long)]
    pub out: PathBuf,
    /// WAV sample format.
    #[arg(long, value_enum, default_value_t = SampleFormat::Pcm16)]
    pub wav_format: SampleFormat,
    /// TOML sound configuration (default: cents mapping with absolute pitch, so the same norm
    /// has the same pitch in every setting).
    #[arg(long, value_name = "FILE")]
    pub sound_config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}
