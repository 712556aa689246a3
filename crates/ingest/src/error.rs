//! Error types: [`IngestError`] ends a stream, [`LineError`] only skips one line.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a source could not start, or why it ended early. Bad *content* is never an
/// `IngestError`: it is counted in [`crate::Diagnostics`] instead.
///
/// The underlying I/O error is the [`source`](std::error::Error::source), not repeated in the
/// message: print the chain (`anyhow`'s `{:#}`) to see both, each once.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A file could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading a stream failed; the stream ended there.
    #[error("reading {name} stopped (the frames before this point were read)")]
    Read {
        /// The source's name (a path, `stdin`, `udp 127.0.0.1:9000`).
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A UDP socket could not be bound.
    #[error(
        "cannot listen on UDP {addr} (is another listener already using this port? choose \
         another port, or stop the other program)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A TCP listener could not be set up.
    #[error("cannot listen on TCP {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A CSV trajectory file cannot be opened, its header is malformed, or reading it failed
    /// (a bad row is only skipped and counted).
    #[error(transparent)]
    Csv(#[from] CsvError),
}

/// Why one JSONL line was rejected. The line is skipped and counted; the stream goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    /// The line is longer than [`crate::MAX_LINE_BYTES`]; it was skipped unread.
    #[error("line of {len} bytes is longer than the 1 MiB limit; skipped unread")]
    TooLong {
        /// The line's length in bytes (without the newline).
        len: u64,
    },
    /// The line is not valid UTF-8 (binary garbage, a different encoding).
    #[error("not valid UTF-8 (bad byte at offset {offset}); the stream must be UTF-8 JSON")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte within the line.
        offset: usize,
    },
    /// Not JSON, not an object, or a field of the wrong type or range.
    #[error("{message} (column {column})")]
    Json {
        /// What is wrong, e.g. ``missing field `step` ``.
        message: String,
        /// 1-based column (byte) where the JSON parser noticed.
        column: usize,
    },
    /// `"v"` is 0: there is no format version 0.
    #[error("format version \"v\":{version} does not exist (this reader reads version 1)")]
    Version {
        /// The version the line claims.
        version: u64,
    },
}

impl LineError {
    /// Converts a serde_json error, dropping its "at line 1 column N" (every line is line 1 to
    /// serde_json; the reader adds the real line number).
    pub(crate) fn from_json(e: &serde_json::Error) -> Self {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        LineError::Json {
            message,
            column: e.column(),
        }
    }
}

/// What can go wrong reading a CSV trajectory. Each variant names the file (or stream); an I/O
/// error is the [`source`](std::error::Error::source), as in [`IngestError`].
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// Reading the file failed.
    #[error("{}", path.display())]
    Io {
        /// The file (or stream name) being read.
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
