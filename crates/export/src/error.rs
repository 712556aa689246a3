//! [`ExportError`]: what can go wrong creating a sink or finishing a file.

use std::path::PathBuf;

/// An export failure. Each variant names the file, address or option and says what to do.
///
/// Network *send* failures are not errors: [`crate::OscSender`] counts them (see
/// [`crate::OscStats`]) so that a missing listener never stops a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A file could not be created, written, synced or renamed.
    #[error("{}: cannot {action}: {cause} (check that the folder exists and is writable)", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done, e.g. `"create the temporary file"`.
        action: &'static str,
        /// The underlying error, shown in the message (before the hint), so not the `source()`.
        cause: std::io::Error,
    },
    /// An option is outside what the format can express.
    #[error("MIDI option `{field}` = {value}: {reason}")]
    BadOption {
        /// The option's name, e.g. `"ticks_per_step"`.
        field: &'static str,
        /// The offending value, as text.
        value: String,
        /// Why it is refused and what range works.
        reason: &'static str,
    },
    /// The voice list is unusable (empty, or a name repeated).
    #[error("MIDI voices {voices:?}: {reason}")]
    BadVoices {
        /// The voices given.
        voices: Vec<String>,
        /// What is wrong and what to pass instead.
        reason: &'static str,
    },
    /// The file would break a limit of the Standard MIDI File format.
    #[error("{}: {reason}", path.display())]
    MidiLimit {
        /// The file being written.
        path: PathBuf,
        /// Which limit, and how to stay within it.
        reason: String,
    },
    /// An OSC destination address did not resolve or no local socket could be opened for it.
    #[error("OSC destination `{addr}`: {what}: {cause} (give host:port, e.g. 127.0.0.1:57120)")]
    Osc {
        /// The address as the user gave it.
        addr: String,
        /// What failed, e.g. `"cannot resolve"`.
        what: &'static str,
        /// The underlying error, shown in the message (before the hint), so not the `source()`.
        cause: std::io::Error,
    },
}
