//! `gradtone run` flags.

use std::ffi::OsString;

use clap::Args;

use gradtone_ingest::RankOptions;

use super::{LiveArgs, SinkArgs};

/// `gradtone run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub ranks: RankOptions,
    #[command(flatten)]
    pub sinks: SinkArgs,
    #[command(flatten)]
    pub live: LiveArgs,
    /// The command and its arguments, after `--` (e.g. `-- python train.py --epochs 3`, or
    /// `-- torchrun --nproc-per-node 4 train.py`: every rank reaches this one listener).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}
