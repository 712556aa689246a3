//! [`Sink`]: where a run's frames, alarms and sound go.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{AlarmEvent, Frame};

/// A sink's error: each sink crate keeps its own error type (`thiserror`) and boxes it here, so
/// the pipeline can hold sinks of every crate side by side.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its causes on one line, `: `-separated (`out.wav: No space left on device`), as
/// `anyhow`'s `{:#}` shows them: how to print a [`SinkError`] or any of the workspace's errors,
/// which leave their cause to [`source`](std::error::Error::source) rather than repeating it.
///
/// ```
/// use gradtone_frame::ErrorChain;
/// #[derive(Debug)]
/// struct Outer(std::io::Error);
/// impl std::fmt::Display for Outer {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("cannot write out.wav")
///     }
/// }
/// impl std::error::Error for Outer {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
/// let e = Outer(std::io::Error::other("disk full"));
/// assert_eq!(ErrorChain(&e).to_string(), "cannot write out.wav: disk full");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// One output of a run: a WAV file, a CSV, the speakers, a browser page, TensorBoard…
///
/// The pipeline calls, per step, [`Sink::audio`] with the samples the mapping rendered for the
/// step (the alarms' earcons mixed in) and then [`Sink::frame`] with the frame and the alarms
/// it fired; at the end, [`Sink::finish`] once. A sink that fails is taken out of the run on
/// its own ([`Sink::discard`]): the other sinks go on and keep their outputs.
///
/// Every method but `describe` and `finish` has a default that ignores its input, so a sink
/// implements only what it consumes.
pub trait Sink: Send {
    /// What and where this sink writes, for messages (`"WAV out.wav"`).
    fn describe(&self) -> String;

    /// The interleaved samples rendered for `step`, in the format the sink was opened with.
    fn audio(&mut self, step: u64, samples: &[f32]) -> Result<(), SinkError> {
        let _ = (step, samples);
        Ok(())
    }

    /// One step's frame and the alarms it fired (possibly none).
    fn frame(&mut self, frame: &Frame, alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        let _ = (frame, alarms);
        Ok(())
    }

    /// A new part starts at `step` in a file made of several runs (a sweep's settings).
    fn part(&mut self, step: u64, label: &str) {
        let _ = (step, label);
    }

    /// Whether losing this sink fails the run. The speakers are not (the files keep everything);
    /// files are.
    fn essential(&self) -> bool {
        true
    }

    /// Completes the output; returns a line for the run's summary.
    fn finish(self: Box<Self>) -> Result<String, SinkError>;

    /// Abandons the output after a failure, removing any file that would pass for a complete
    /// result. The default removes nothing.
    fn discard(self: Box<Self>) {}
}

/// Removes a sink's partial output at `path` — only if it is a regular file. Output paths come
/// from the user and gradtone may run as root: `--csv /dev/full` or a link must never make a
/// discard delete a device node or what a link points to.
pub fn remove_partial(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
        let _ = std::fs::remove_file(path);
    }
}

/// A file output that replaces what is at its path only once it has data to put there: it is
/// written beside the path (a temporary file in the same folder) and renamed onto it by
/// [`OutputFile::place`], which every file sink calls once its first data is written. A run that
/// is refused, fails or receives nothing so leaves an existing file exactly as it was, and its
/// temporary file is removed when the `OutputFile` is dropped unplaced.
///
/// The file handle stays valid across the rename (same file), so a sink keeps writing after
/// placing and a file it keeps current (a WAV header) is usable at the path even if the process
/// is then killed. A path that exists and is not a regular file (`/dev/null`, a FIFO) is written
/// in place, as there is nothing there to keep. A symbolic link is followed: the file it points
/// to is replaced and the link kept.
#[derive(Debug)]
pub struct OutputFile {
    /// The path as given, for messages.
    path: PathBuf,
    /// Where the temporary file is renamed to: `path` with a symbolic link resolved.
    target: PathBuf,
    /// The temporary file while it is not placed.
    temp: Option<PathBuf>,
}

impl OutputFile {
    /// Creates the temporary file beside `path` (readable and writable), with the permissions
    /// of the file it will replace, if any. Fails at once where the folder is missing or not
    /// writable, `path` is a folder, or the file there may not be written, so a bad path is
    /// found before any work.
    pub fn create(path: &Path) -> io::Result<(Self, File)> {
        let target = resolve_link(path);
        match std::fs::metadata(&target) {
            Ok(m) if m.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "it is a folder",
                ));
            }
            Ok(m) if !m.is_file() => {
                // A device or a FIFO: written in place, never renamed or removed.
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&target)
                    .or_else(|_| OpenOptions::new().write(true).open(&target))?;
                let out = OutputFile {
                    path: path.to_path_buf(),
                    target,
                    temp: None,
                };
                return Ok((out, file));
            }
            Ok(_) => {
                // A file the user may not write is not replaced behind their back either
                // (opened, not truncated: nothing in it changes).
                OpenOptions::new().write(true).open(&target)?;
            }
            Err(_) => {}
        }
        static N: AtomicU64 = AtomicU64::new(0);
        let name = target
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let temp = target.with_file_name(format!(
            ".{name}.gradtone-{}-{}.tmp",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)?;
        if let Ok(m) = std::fs::metadata(&target) {
            // The replacement is no more readable by others than the file it replaces.
            let _ = file.set_permissions(m.permissions());
        }
        let out = OutputFile {
            path: path.to_path_buf(),
            target,
            temp: Some(temp),
        };
        Ok((out, file))
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is at its path now (placed, or written in place from the start).
    pub fn is_placed(&self) -> bool {
        self.temp.is_none()
    }

    /// Puts the file at its path, replacing what was there (once; later calls do nothing).
    pub fn place(&mut self) -> io::Result<()> {
        if let Some(temp) = &self.temp {
            std::fs::rename(temp, &self.target)?;
            self.temp = None;
        }
        Ok(())
    }

    /// Abandons the output after a failure: the temporary file is removed, or, once placed, the
    /// partial file at the path (only a regular file, see [`remove_partial`]), so that nothing
    /// incomplete passes for a result.
    pub fn discard(mut self) {
        match self.temp.take() {
            Some(temp) => {
                let _ = std::fs::remove_file(temp);
            }
            None => remove_partial(&self.target),
        }
    }
}

impl Drop for OutputFile {
    /// An unplaced file leaves nothing behind; a placed one stays.
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// `path`, or where the symbolic link at `path` points (so that the file, not the link, is
/// replaced).
fn resolve_link(path: &Path) -> PathBuf {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return path.to_path_buf();
    }
    if let Ok(t) = std::fs::canonicalize(path) {
        return t;
    }
    // A link to a file not made yet: its target, relative to the link's folder.
    match std::fs::read_link(path) {
        Ok(t) => path.parent().map_or(t.clone(), |p| p.join(&t)),
        Err(_) => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_partial_takes_regular_files_only() {
        let dir = std::env::temp_dir().join(format!("gradtone-frame-rp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("partial.csv");
        std::fs::write(&file, "step\n").unwrap();
        remove_partial(&file);
        assert!(!file.exists(), "a regular file goes");
        remove_partial(&dir);
        assert!(dir.is_dir(), "a folder stays");
        remove_partial(Path::new("/dev/null"));
        assert!(Path::new("/dev/null").exists(), "a device stays");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gradtone-frame-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_output_replaces_the_old_file_only_when_placed() {
        use std::io::Write;
        let dir = scratch("of-place");
        let path = dir.join("o.csv");
        std::fs::write(&path, "old").unwrap();
        // Dropped unplaced: the old file is as it was, the temporary file gone.
        let (out, mut f) = OutputFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(
            listing(&dir).len(),
            2,
            "written beside: {:?}",
            listing(&dir)
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        drop(out);
        assert_eq!(listing(&dir), ["o.csv"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        // Placed: the new file is at the path, and writes after placing reach it.
        let (mut out, mut f) = OutputFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        assert!(!out.is_placed());
        out.place().unwrap();
        assert!(out.is_placed());
        f.write_all(b" more").unwrap();
        drop(out);
        assert_eq!(listing(&dir), ["o.csv"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"new more");
        // Discarded once placed: the partial file goes.
        let (mut out, _f) = OutputFile::create(&path).unwrap();
        out.place().unwrap();
        out.discard();
        assert!(listing(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn links_devices_folders_and_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("of-kinds");
        // A link: the file it points to is replaced, the link kept.
        let real = dir.join("real.wav");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.join("link.wav");
        std::os::unix::fs::symlink("real.wav", &link).unwrap();
        let (mut out, _f) = OutputFile::create(&link).unwrap();
        out.place().unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let m = std::fs::metadata(&real).unwrap();
        assert_eq!((m.len(), m.permissions().mode() & 0o777), (0, 0o600));
        // A device is written in place; discarding never removes it.
        let (out, _f) = OutputFile::create(Path::new("/dev/null")).unwrap();
        assert!(out.is_placed());
        out.discard();
        assert!(Path::new("/dev/null").exists());
        // A folder is refused at once; a missing folder too.
        let e = OutputFile::create(&dir).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::IsADirectory);
        assert!(OutputFile::create(&dir.join("no/x.csv")).is_err());
        assert_eq!(listing(&dir), ["link.wav", "real.wav"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
