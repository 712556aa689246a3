//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong reading or writing a CSV trajectory. Each variant names the file (or
/// stream). An I/O error is the [`source`](std::error::Error::source), not repeated in the
/// message: print the chain ([`gradtone_frame::ErrorChain`]) to see both, each once.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// Reading or writing the file failed.
    #[error("{}", path.display())]
    Io {
        /// The file (or stream name) being read or written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// One field of a row is wrong (e.g. not a number).
    #[error("{file} line {line}, column {column}: {message}")]
    Field {
        /// The CSV source's name, as given to the reader.
        file: String,
        /// 1-based line number (the header is line 1).
        line: u64,
        /// The column's header name.
        column: String,
        /// What is wrong with the field.
        message: String,
    },
    /// A line is wrong as a whole (bad header, wrong number of fields, too long, not UTF-8).
    #[error("{file} line {line}: {message}")]
    Format {
        /// The CSV source's name, as given to the reader.
        file: String,
        /// 1-based line number (the header is line 1).
        line: u64,
        /// What is wrong with the line.
        message: String,
    },
}
