//! `gradtone train` flags: the trainer's own (`gradtone_train::args`), then the outputs',
//! playback and data flags.

use clap::Args;
use gradtone_train::args::{ModelArg, TrainFlags};

use super::{DataArgs, LiveArgs, SinkArgs};

/// `gradtone train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// What to train: the seed CNN, or a GAN (see the GAN flags).
    #[arg(long, value_enum, default_value_t = ModelArg::Cnn)]
    pub model: ModelArg,
    #[command(flatten)]
    pub run: TrainFlags,
    #[command(flatten)]
    pub sinks: SinkArgs,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub data: DataArgs,
}
