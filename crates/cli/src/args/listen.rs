//! `gradtone listen` and `gradtone render` flags.

use std::path::PathBuf;

use clap::Args;
use gradtone_ingest::RankOptions;

use super::{LiveArgs, SinkArgs};

/// `gradtone render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Input: a JSONL stream (`-` for stdin), a CSV (`step,loss,<name>...`), or a TensorBoard
    /// event file or log folder (a `runs/` folder of several runs: each run's tags as `RUN/TAG`).
    pub input: PathBuf,
    /// WAV to write (same as --wav).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// TensorBoard input: scalar tags to sonify, `*` globs (default: everything); in a folder of
    /// several runs, `RUN/*` picks one run.
    #[arg(long, value_name = "PATTERN")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub ranks: RankOptions,
    #[command(flatten)]
    pub sinks: SinkArgs,
}

/// `gradtone listen`.
#[derive(Args, Debug)]
pub struct ListenArgs {
    #[command(flatten)]
    pub source: gradtone_ingest::ListenArgs,
    #[command(flatten)]
    pub ranks: RankOptions,
    #[command(flatten)]
    pub sinks: SinkArgs,
    #[command(flatten)]
    pub live: LiveArgs,
}
