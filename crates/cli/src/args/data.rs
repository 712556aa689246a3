//! Where MNIST comes from: `--data DIR` / `GRADTONE_MNIST_DIR`, or the download cache.

use std::path::PathBuf;

use clap::Args;

/// MNIST location flags.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Use MNIST from this folder (train-images-idx3-ubyte[.gz] ...; no checksum check, subsets
    /// welcome) instead of downloading the full dataset into the cache.
    #[arg(long, value_name = "DIR", env = gradtone_mnist::DATA_ENV)]
    pub data: Option<PathBuf>,
    /// Download cache folder (default: the platform cache dir, e.g. ~/.cache/gradtone/mnist).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}
