//! Where MNIST comes from: the mnist crate's options (`--data`, `--cache-dir`).

use clap::Args;

/// MNIST location flags.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    #[command(flatten)]
    pub from: gradtone_mnist::DataArgs,
}
