use std::path::PathBuf;

/// Errors of the trainer crate; each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file was read but its content is wrong.
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what was expected.
        message: String,
    },
}

/// A run configuration that cannot be trained as asked. Messages name `gradtone train`'s
/// flags, which is where such configurations come from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A loss term the GAN does not have.
    #[error("--loss-weights: the gan has the terms {terms}, not {0:?}", terms = crate::gan::TERMS.join(", "))]
    GanTerm(String),
    /// A loss term the seed CNN does not have.
    #[error(
        "--loss-weights: the cnn has the terms nll and l2, not {0:?} (for d_real/d_fake/g_adv use --model gan)"
    )]
    CnnTerm(String),
    /// The CNN's NLL weight other than 1.
    #[error("--loss-weights: the cnn's nll weight is fixed at 1 (scale --lr instead), got {0}")]
    NllWeight(f64),
    /// A batch size of 0.
    #[error("--batch must be at least 1")]
    ZeroBatch,
    /// A GAN with a batch size or step count of 0.
    #[error("--batch and --steps must be at least 1 for --model gan")]
    GanZero,
    /// A training set without images.
    #[error("the training set holds zero images")]
    NoImages,
    /// A batch larger than the training set, with the last partial batch dropped.
    #[error(
        "batch {batch} makes zero training steps on {images} images (the last partial batch is \
         dropped); use --batch {images} or less, or --keep-last"
    )]
    NoSteps {
        /// The batch size.
        batch: usize,
        /// The training set's size.
        images: usize,
    },
}
