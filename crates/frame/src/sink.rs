//! [`Sink`]: where a run's frames, alarms and sound go.

use std::path::Path;

use crate::{AlarmEvent, Frame};

/// A sink's error: each sink crate keeps its own error type (`thiserror`) and boxes it here, so
/// the pipeline can hold sinks of every crate side by side.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
}
