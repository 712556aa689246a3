//! Where MNIST comes from, as options ([`DataArgs`], whose flags are behind the `clap`
//! feature): `--data DIR` / `GRADTONE_MNIST_DIR`, or the download cache.

use std::path::PathBuf;

use crate::{DEFAULT_MIRRORS, MnistError, Source, default_cache_dir};

/// MNIST location options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DataArgs {
    /// Use MNIST from this folder (train-images-idx3-ubyte[.gz] ...; no checksum check, subsets
    /// welcome) instead of downloading the full dataset into the cache.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR", env = crate::DATA_ENV))]
    pub data: Option<PathBuf>,
    /// Download cache folder (default: the platform cache dir, e.g. ~/.cache/gradtone/mnist).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub cache_dir: Option<PathBuf>,
}

impl DataArgs {
    /// The folder given, or the download into the cache folder (given, or the platform's).
    pub fn source(&self) -> Result<Source, MnistError> {
        if let Some(dir) = &self.data {
            return Ok(Source::Dir(dir.clone()));
        }
        let cache_dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => default_cache_dir().ok_or(MnistError::NoCacheDir)?,
        };
        Ok(Source::Download {
            cache_dir,
            mirrors: DEFAULT_MIRRORS.iter().map(|s| s.to_string()).collect(),
        })
    }
}
