//! Where MNIST comes from: `--data DIR` / `GRADTONE_MNIST_DIR`, or the download cache.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use gradtone_mnist::{Dataset, Source, Split};
use gradtone_train::RunConfig;
use indicatif::{ProgressBar, ProgressStyle};

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

impl DataArgs {
    fn source(&self) -> Result<Source> {
        if let Some(dir) = &self.data {
            return Ok(Source::Dir(dir.clone()));
        }
        let cache_dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => gradtone_mnist::default_cache_dir().context(
                "no cache folder on this platform: pass --cache-dir DIR, or --data DIR with MNIST in it",
            )?,
        };
        Ok(Source::Download {
            cache_dir,
            mirrors: gradtone_mnist::DEFAULT_MIRRORS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        })
    }

    /// Loads a split, downloading (with a progress bar) if needed.
    pub fn load(&self, split: Split) -> Result<Dataset> {
        let source = self.source()?;
        let mut progress = BarProgress(None);
        Ok(gradtone_mnist::load(&source, split, &mut progress)?)
    }
}

/// Fails, with what to change, when `cfg` makes no training step on a set of `n` images (batch
/// 0, or a batch larger than the set with the last partial batch dropped): checked before any
/// output file is created, so a degenerate plan never leaves an empty WAV.
pub fn check_plan(cfg: &RunConfig, n: usize, what: &str) -> Result<()> {
    if cfg.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    if n == 0 {
        anyhow::bail!("{what}: the training set holds zero images");
    }
    if cfg.total_steps(n) == 0 {
        anyhow::bail!(
            "{what}: batch {} makes zero training steps on {n} images (the last partial batch is \
             dropped); use --batch {n} or less, or --keep-last",
            cfg.batch
        );
    }
    Ok(())
}

/// Download progress on stderr.
struct BarProgress(Option<ProgressBar>);

impl gradtone_mnist::Progress for BarProgress {
    fn start(&mut self, file: &str, url: &str, total_bytes: Option<u64>) {
        // A failed attempt on one mirror ends with a note, not finish: clear its bar here.
        if let Some(old) = self.0.take() {
            old.finish_and_clear();
        }
        let pb = match total_bytes {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(format!("{file} from {url}"));
        self.0 = Some(pb);
    }
    fn advance(&mut self, bytes: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(bytes);
        }
    }
    fn finish(&mut self, _file: &str) {
        if let Some(pb) = self.0.take() {
            pb.finish_and_clear();
        }
    }
    fn note(&mut self, message: &str) {
        match &self.0 {
            Some(pb) => pb.println(message),
            None => eprintln!("{message}"),
        }
    }
}
