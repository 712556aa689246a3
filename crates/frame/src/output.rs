//! [`Output`]: how an output crate opens its [`Sink`] from its own options, so that the binary
//! wires an output in with one line and no library prints.
//!
//! Each output crate has an options struct (its command-line flags, behind the crate's `clap`
//! feature) that implements [`Output`]: [`Output::precheck`] refuses a bad path before anything
//! is touched, [`Output::open`] makes the ready sink (a file is created beside its path, put
//! there at its first data: [`crate::OutputFile`]) or `None` when the output was not asked for.
//! The binary prechecks every output, then opens them all, before the run starts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::{Sink, SinkError};

/// Where a library says something to the user (a note, a warning, the page's address): one
/// message, without a trailing newline. The binary decides what reaches the terminal.
pub type Report = Arc<dyn Fn(&str) + Send + Sync>;

/// A [`Report`] that says nothing (tests, and callers that want no messages).
pub fn silent_report() -> Report {
    Arc::new(|_| {})
}

/// What every output is told when it opens: the sound's format, the run's title, the sound
/// configuration `C` (the binary's; outputs that need none accept any), where to report, and
/// the flag that stops waiting (Ctrl-C).
pub struct Opening<'a, C: ?Sized> {
    /// Sample rate of the sound every sink gets, Hz.
    pub sample_rate: u32,
    /// Interleaved channels of that sound.
    pub channels: u16,
    /// The run's title (a plot's, the page's); may be empty.
    pub title: &'a str,
    /// The sound configuration the run uses.
    pub config: &'a C,
    /// Where to say things.
    pub report: &'a Report,
    /// Raised to stop waiting (for a browser, lingering): Ctrl-C.
    pub stop: &'a Arc<AtomicBool>,
}

/// One output's options: checked before anything is touched, then opened into a sink.
pub trait Output<C: ?Sized> {
    /// Fails, naming the path, when this output cannot be written where asked (its folder
    /// missing, a folder where a file should be); touches nothing.
    fn precheck(&self) -> Result<(), OutputError> {
        Ok(())
    }

    /// Opens the output: `None` when it was not asked for.
    fn open(&self, at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError>;

    /// Whether the output, as asked, keeps something after the run (a file, a page to replay):
    /// a render that keeps nothing is refused. Sending (OSC) or playing keeps nothing.
    fn keeps(&self) -> bool {
        false
    }
}

/// Why an output cannot be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum OutputError {
    /// A file's folder does not exist (checked before any work).
    NoFolder {
        /// What the file is (`"plot"`, `"MIDI file"`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its missing folder.
        folder: PathBuf,
    },
    /// A file output's path is a folder.
    IsFolder {
        /// What the file is (`"WAV file"`).
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A log folder's path is a file.
    NotAFolder(PathBuf),
    /// A sink could not be opened.
    Open {
        /// The sink (`"OSC output"`).
        what: String,
        /// Why.
        source: SinkError,
    },
}

impl OutputError {
    /// The error of an output `what` that failed to open.
    pub fn open(what: &str, source: impl Into<SinkError>) -> Self {
        OutputError::Open {
            what: what.to_string(),
            source: source.into(),
        }
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::NoFolder { what, path, folder } => write!(
                f,
                "cannot write the {what} {}: folder {} does not exist",
                path.display(),
                folder.display()
            ),
            OutputError::IsFolder { what, path } => {
                write!(
                    f,
                    "cannot write the {what} {}: it is a folder",
                    path.display()
                )
            }
            OutputError::NotAFolder(p) => write!(
                f,
                "cannot write TensorBoard logs into {}: it is a file, not a folder",
                p.display()
            ),
            OutputError::Open { what, .. } => write!(f, "cannot open the {what}"),
        }
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OutputError::Open { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Fails, naming the file, when `path`'s folder does not exist (checked before any work).
pub fn check_parent(path: &Path, what: &'static str) -> Result<(), OutputError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if parent.is_dir() {
        Ok(())
    } else {
        Err(OutputError::NoFolder {
            what,
            path: path.to_path_buf(),
            folder: parent.to_path_buf(),
        })
    }
}

/// Fails, naming the file, when a file output cannot be written at `path`: its folder is
/// missing or the path is a folder. `None` (not asked for) passes.
pub fn check_file(path: Option<&Path>, what: &'static str) -> Result<(), OutputError> {
    let Some(p) = path else { return Ok(()) };
    check_parent(p, what)?;
    if p.is_dir() {
        return Err(OutputError::IsFolder {
            what,
            path: p.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_and_a_folder_are_refused_by_name() {
        let missing = Path::new("/nonexistent-gradtone-dir/x.wav");
        let e = check_file(Some(missing), "WAV file")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cannot write the WAV file /nonexistent-gradtone-dir/x.wav: folder \
             /nonexistent-gradtone-dir does not exist"
        );
        let dir = std::env::temp_dir();
        let e = check_file(Some(&dir), "plot").unwrap_err().to_string();
        assert!(e.ends_with(": it is a folder"), "{e}");
        assert!(check_file(None, "plot").is_ok());
        assert!(check_file(Some(Path::new("here.wav")), "WAV file").is_ok());
    }
}
