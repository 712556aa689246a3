//! MNIST for gradtone: read the IDX files (raw or gzip), and download the full dataset,
//! checksum-verified, for real users.
//!
//! ```no_run
//! use gradtone_mnist::{load, NoProgress, Source, Split};
//! let source = Source::Dir("data/mnist".into());
//! let train = load(&source, Split::Train, &mut NoProgress)?;
//! println!("{} images, first label {}", train.len(), train.label(0));
//! # Ok::<(), gradtone_mnist::MnistError>(())
//! ```
//!
//! The library never prints; downloads report through the [`Progress`] trait.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod args;
mod dataset;
mod download;
mod error;
mod idx;

pub use args::DataArgs;
pub use dataset::{Dataset, IMAGE_LEN, IMAGE_SIDE, NORM_LUT, norm_lut};
pub use download::{
    DEFAULT_MIRRORS, FILES, NoProgress, Progress, RemoteFile, default_cache_dir, download,
    download_files, md5_file,
};
pub use error::{MirrorFailure, MnistError};
pub use idx::{Idx, read_idx};

use std::path::{Path, PathBuf};

// Compiles the README's example as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Environment variable naming a local MNIST folder (the CLI's `--data` default).
pub const DATA_ENV: &str = "GRADTONE_MNIST_DIR";

/// Base names of the four IDX files, in the order train images, train labels, test images,
/// test labels; each may be stored raw or with a `.gz` suffix.
pub const FILE_BASES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Which half of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training set (60,000 images in the full dataset).
    Train,
    /// The test set (10,000 images).
    Test,
}

impl Split {
    /// File-name prefix of this split (`train` or `t10k`).
    pub fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Where the MNIST files come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A local folder holding the IDX files (raw or `.gz`); no checksums, so subsets work.
    Dir(PathBuf),
    /// Download the official files into `cache_dir` (once), trying `mirrors` in order.
    Download {
        /// Folder the `.gz` files are kept in.
        cache_dir: PathBuf,
        /// Base URLs, each followed by the file name (a missing trailing `/` is added).
        mirrors: Vec<String>,
    },
}

/// Magic number of an IDX file of u8 images with three dimensions.
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels with one dimension.
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Finds `base` or `base.gz` in `dir`; `.gz` first because that is what [`download`] writes.
fn find_file(dir: &Path, base: &str) -> Result<PathBuf, MnistError> {
    let gz = dir.join(format!("{base}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(base);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(MnistError::MissingFile {
        dir: dir.to_path_buf(),
        file: base.to_string(),
    })
}

/// Loads one split from a folder holding `train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
///
/// Validates the magic numbers, the 28×28 image size, that image and label counts agree and are
/// not zero, that no file is truncated (or its gzip stream corrupt), and that labels are 0..=9.
/// Checksums are not checked: a local folder may hold a subset.
pub fn load_dir(dir: &Path, split: Split) -> Result<Dataset, MnistError> {
    if !dir.is_dir() {
        return Err(MnistError::MissingDir {
            dir: dir.to_path_buf(),
        });
    }
    let prefix = split.prefix();
    let images_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;

    let images = read_idx(&images_path)?;
    check_magic(&images_path, &images, IMAGES_MAGIC)?;
    if images.dims[1..] != [IMAGE_SIDE, IMAGE_SIDE] {
        return Err(MnistError::BadDims {
            path: images_path,
            dims: images.dims,
        });
    }
    let labels = read_idx(&labels_path)?;
    check_magic(&labels_path, &labels, LABELS_MAGIC)?;
    if images.dims[0] == 0 {
        // Every loop over the data would run zero steps (or, planned by epochs, forever).
        return Err(MnistError::Empty { path: images_path });
    }

    if images.dims[0] != labels.dims[0] {
        return Err(MnistError::CountMismatch {
            images_path,
            images: images.dims[0],
            labels_path,
            labels: labels.dims[0],
        });
    }
    if let Some(index) = labels.data.iter().position(|&l| l > 9) {
        return Err(MnistError::BadLabel {
            path: labels_path,
            index,
            label: labels.data[index],
        });
    }
    // Sizes and labels are checked above, so this cannot fail; map it anyway rather than panic.
    Dataset::from_parts(images.data, labels.data)
}

fn check_magic(path: &Path, idx: &Idx, expected: u32) -> Result<(), MnistError> {
    let found = idx.magic();
    if found != expected {
        return Err(MnistError::WrongMagic {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    Ok(())
}

/// Resolves a split: [`Source::Dir`] loads the folder; [`Source::Download`] first makes sure the
/// verified files are in the cache ([`download`]), then loads from there.
pub fn load(
    source: &Source,
    split: Split,
    progress: &mut dyn Progress,
) -> Result<Dataset, MnistError> {
    match source {
        Source::Dir(dir) => load_dir(dir, split),
        Source::Download { cache_dir, mirrors } => {
            download(cache_dir, mirrors, progress)?;
            load_dir(cache_dir, split)
        }
    }
}
