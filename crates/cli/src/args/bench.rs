//! `gradtone bench` flags.

use clap::Args;

use super::DataArgs;

/// `gradtone bench` flags.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "10,64,256")]
    pub batch: Vec<usize>,
    /// Steps per batch size (the original's 201).
    #[arg(long, default_value_t = 201)]
    pub steps: usize,
    /// Steps excluded from the medians.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Instead: time each part of a step alone (data, each layer's forward and backward,
    /// pooling, norms, optimiser) per batch size, median of --steps runs each.
    #[arg(long)]
    pub profile: bool,
    /// Instead: the cost of `--serve` to training. Steps at the first --batch size, each
    /// followed by its sound and chart (cents mapping), in alternating blocks with the page
    /// served to one connected client and without; plus the push → client delay.
    #[arg(long)]
    pub serve: bool,
    #[command(flatten)]
    pub data: DataArgs,
}
