//! Loading MNIST from where `DataArgs` says, with a download progress bar.

use anyhow::Result;
use gradtone_mnist::{Dataset, Split};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::DataArgs;

impl DataArgs {
    /// Loads a split, downloading (with a progress bar) if needed.
    pub fn load(&self, split: Split) -> Result<Dataset> {
        load(&self.from, split)
    }
}

/// Loads a split from where `from` says, downloading (with a progress bar) if needed.
pub fn load(from: &gradtone_mnist::DataArgs, split: Split) -> Result<Dataset> {
    let source = from.source()?;
    let mut progress = BarProgress(None);
    Ok(gradtone_mnist::load(&source, split, &mut progress)?)
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
