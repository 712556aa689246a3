//! [`TbError`]: everything that can go wrong reading or writing event files.

use std::path::PathBuf;

/// An error reading or writing a TensorBoard event file. Each names the file, and where it applies
/// the byte offset of the record at fault. An underlying error is the
/// [`source`](std::error::Error::source), not repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum TbError {
    /// The operating system refused a file operation.
    #[error("{path}: cannot {action}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done, e.g. `"create the log folder"`.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file ends inside a record: a writer still running, or one that crashed.
    #[error(
        "{path}: record at byte {offset} is truncated ({what}: needs {needed} bytes, {got} left); \
         a writer may still be writing it: read again later, or ignore the tail"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// The part that is cut short: `"length header"`, `"data"`, …
        what: &'static str,
        /// Bytes that part needs.
        needed: u64,
        /// Bytes that were there.
        got: u64,
    },
    /// Bytes that are not a valid record (a bad length checksum, an impossible length) were
    /// skipped up to the next valid record header, or to the end of the file.
    #[error(
        "{path}: record at byte {offset} is damaged ({why}); skipped {skipped} bytes{}",
        if *resynced { " to the next valid record" } else { " to the end of the file" }
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Byte offset where the damage starts.
        offset: u64,
        /// Bytes skipped.
        skipped: u64,
        /// What is wrong.
        why: String,
        /// Whether a valid record header was found after the damage.
        resynced: bool,
    },
    /// A checksum does not match: the file is corrupt (or not an event file at all).
    #[error(
        "{path}: record at byte {offset}: {what} checksum mismatch (stored {stored:#010x}, \
         computed {computed:#010x}); the file is corrupt or not a TensorBoard event file"
    )]
    BadCrc {
        /// The file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// `"length"` or `"data"`.
        what: &'static str,
        /// The masked CRC32C stored in the file.
        stored: u32,
        /// The masked CRC32C of the bytes read.
        computed: u32,
    },
    /// A record's checksum is right but its bytes are not an `Event` protobuf.
    #[error("{path}: record at byte {offset} is not a valid Event protobuf")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// The decoder's complaint.
        #[source]
        source: prost::DecodeError,
    },
    /// A folder holds no file whose name contains `tfevents`.
    #[error("{path}: no TensorBoard event files (names containing \"tfevents\") in this folder")]
    NoEventFiles {
        /// The folder.
        path: PathBuf,
    },
    /// An argument cannot be written as asked.
    #[error("{what}")]
    InvalidInput {
        /// What is wrong and what to do instead.
        what: String,
    },
    /// The in-memory WAV encoder failed.
    #[error("encoding audio for tag {tag:?} as WAV")]
    Wav {
        /// The audio's tag.
        tag: String,
        /// The cause.
        #[source]
        source: hound::Error,
    },
    /// No scalar tag of the input matches the patterns asked for.
    #[error("{}: no scalar tags match {patterns:?}", path.display())]
    NoTagsMatch {
        /// The event file or log folder.
        path: PathBuf,
        /// The patterns.
        patterns: Vec<String>,
    },
}
