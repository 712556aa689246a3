//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong reading a configuration or writing audio and CSV.
///
/// Each variant names the file (or stream) it is about, so a message printed on its own still
/// tells the user where to look. An underlying error is the
/// [`source`](std::error::Error::source), not repeated in the message: print the chain
/// (`anyhow`'s `{:#}`, or [`gradtone_frame::ErrorChain`]) to see both, each once.
#[derive(Debug, thiserror::Error)]
pub enum SoundError {
    /// Reading or writing a file failed.
    #[error("{}", path.display())]
    Io {
        /// The file (or stream name) being read or written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A column name the CSV writer cannot write so that it reads back the same.
    #[error("CSV column name {name:?}: {reason}")]
    ColumnName {
        /// The offending name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The WAV encoder/decoder (hound) reported an error.
    #[error("{}", path.display())]
    Wav {
        /// The WAV file.
        path: PathBuf,
        /// hound's error.
        #[source]
        source: hound::Error,
    },
    /// A WAV write that cannot be done as asked (partial frame, file would exceed the
    /// 4 GiB RIFF limit, bad channel count or sample rate).
    #[error("{}: {message}", path.display())]
    WavUsage {
        /// The WAV file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A sound config (TOML) is wrong: bad syntax, an unknown field, a value of the wrong type
    /// or out of range, or an unknown mapping name.
    #[error("{file}{}: field `{field}`: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Config {
        /// The config file's path (or the name given to the text).
        file: String,
        /// 1-based line of the offending text, when known.
        line: Option<u64>,
        /// Dotted path of the field, e.g. `cents.tone_ms` (`(document)` for syntax errors).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}
