//! Errors: each names the file involved and, where there is one, the fix.

use std::fmt;
use std::path::PathBuf;

/// The expected file names, for messages.
const EXPECTED: &str = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, \
                        t10k-labels-idx1-ubyte (each raw or with .gz)";

/// How to work without the network, for the download failure message.
const OFFLINE_FIX: &str = "To work offline, pass --data DIR (or set GRADTONE_MNIST_DIR) to a \
                           folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
                           t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz";

/// One mirror's failure to deliver a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorFailure {
    /// The URL that was tried.
    pub url: String,
    /// What went wrong, briefly.
    pub error: String,
}

/// `url: error; url: error` for the download failure message.
struct Failures<'a>(&'a [MirrorFailure]);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} ({})", m.url, m.error)?;
        }
        Ok(())
    }
}

/// Everything that can go wrong reading or downloading MNIST.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MnistError {
    /// Neither a data folder nor a cache folder: the platform has no cache folder.
    #[error(
        "no cache folder on this platform: pass --cache-dir DIR, or --data DIR with MNIST in it"
    )]
    NoCacheDir,
    /// A split holds zero images: nothing to train or test on.
    #[error(
        "{} holds zero images: there is nothing to train or evaluate on; point --data at a \
         folder whose files hold images",
        path.display()
    )]
    Empty {
        /// The images file.
        path: PathBuf,
    },
    /// The data folder does not exist.
    #[error("MNIST folder {} does not exist; it should hold {EXPECTED}", dir.display())]
    MissingDir {
        /// The folder.
        dir: PathBuf,
    },
    /// A needed file is in neither raw nor `.gz` form in the folder.
    #[error("{} has no {file} (nor {file}.gz); an MNIST folder holds {EXPECTED}", dir.display())]
    MissingFile {
        /// The folder searched.
        dir: PathBuf,
        /// The base name looked for.
        file: String,
    },
    /// Reading or writing a file failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A gzip file's compressed stream is cut off or corrupt.
    #[error("{} is a truncated or corrupt gzip file ({cause}); replace it with a fresh copy", path.display())]
    CorruptGzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported, shown in the message (before the advice), so not the
        /// `source()`.
        cause: std::io::Error,
    },
    /// The file (after decompression) ends before its header says it should.
    #[error("{} is truncated: its header promises {expected} bytes but it holds {got}; replace it with a fresh copy", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header calls for (header included, decompressed).
        expected: u64,
        /// Bytes actually there.
        got: u64,
    },
    /// The file holds more bytes than its header accounts for.
    #[error("{} has data past the {expected} bytes its header describes; it is not a valid IDX file", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes the header calls for (header included, decompressed).
        expected: u64,
    },
    /// The file does not start like an IDX file.
    #[error("{} is not an IDX file (magic number {magic:#010x})", path.display())]
    NotIdx {
        /// The file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// The IDX data type is not u8 (`0x08`).
    #[error("{} holds IDX data type {code:#04x}; only unsigned bytes (0x08) are supported", path.display())]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The type code found.
        code: u8,
    },
    /// The IDX header is unusable.
    #[error("{} has a bad IDX header: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An IDX file has the wrong magic number for its role (images or labels).
    #[error("{} has magic number {found:#010x}, expected {expected:#010x}; is it the right file?", path.display())]
    WrongMagic {
        /// The file.
        path: PathBuf,
        /// The magic number required.
        expected: u32,
        /// The magic number found.
        found: u32,
    },
    /// The images are not 28×28.
    #[error("{} holds images of dimensions {dims:?}; MNIST images are N×28×28", path.display())]
    BadDims {
        /// The file.
        path: PathBuf,
        /// The dimensions found.
        dims: Vec<usize>,
    },
    /// The images and labels files disagree on the count.
    #[error("{} holds {images} images but {} holds {labels} labels; the two files must belong together", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Its image count.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Its label count.
        labels: usize,
    },
    /// A labels file holds a label outside 0..=9.
    #[error("{} holds label {label} at index {index}; MNIST labels are 0..=9", path.display())]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Index of the first bad label.
        index: usize,
        /// The bad label.
        label: u8,
    },
    /// [`Dataset::from_parts`](crate::Dataset::from_parts): the image bytes are not 784 per label.
    #[error("{image_bytes} image bytes do not make 784 per label for {labels} labels")]
    PartsMismatch {
        /// Length of the image buffer.
        image_bytes: usize,
        /// Number of labels.
        labels: usize,
    },
    /// [`Dataset::from_parts`](crate::Dataset::from_parts): a label outside 0..=9.
    #[error("label {label} at index {index} is outside 0..=9")]
    LabelOutOfRange {
        /// Index of the first bad label.
        index: usize,
        /// The bad label.
        label: u8,
    },
    /// No mirror was given to download from.
    #[error("no download mirrors given for {file}. {OFFLINE_FIX}")]
    NoMirrors {
        /// The file that was to be downloaded.
        file: String,
    },
    /// Every mirror failed for one file.
    #[error(
        "could not download {file} from any mirror: {}. Check the network connection, or try again later. {OFFLINE_FIX}",
        Failures(failures)
    )]
    AllMirrorsFailed {
        /// The file.
        file: String,
        /// Each mirror's failure, in the order tried.
        failures: Vec<MirrorFailure>,
    },
}
