//! The sound crate's [`Sink`]: the WAV file of the rendered audio.

use std::path::{Path, PathBuf};

use gradtone_frame::{Sink, SinkError};

use crate::SoundError;
use crate::wav::{SampleFormat, WavWriter};

/// The run's audio as a WAV file, written as it comes (the header kept current).
pub struct WavFile {
    sink: WavWriter,
    path: PathBuf,
    rate: u32,
    channels: u16,
    mapping: String,
}

impl WavFile {
    /// Prepares `path` for audio of `rate` Hz and `channels` channels (written beside it, put
    /// there at the first samples: see [`WavWriter`]); `mapping` names what made the sound, for the
    /// summary line.
    pub fn create(
        path: &Path,
        rate: u32,
        channels: u16,
        format: SampleFormat,
        mapping: &str,
    ) -> Result<Self, SoundError> {
        Ok(WavFile {
            sink: WavWriter::create(path, rate, channels, format)?,
            path: path.to_path_buf(),
            rate,
            channels,
            mapping: mapping.to_string(),
        })
    }
}

impl Sink for WavFile {
    fn describe(&self) -> String {
        format!("WAV file {}", self.path.display())
    }

    fn audio(&mut self, _step: u64, samples: &[f32]) -> Result<(), SinkError> {
        Ok(self.sink.write(samples)?)
    }

    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        let n = self.sink.samples_written();
        self.sink.finalize()?;
        Ok(format!(
            "{} ({:.1} s of audio, {} mapping)",
            self.path.display(),
            n as f64 / f64::from(self.rate) / f64::from(self.channels),
            self.mapping
        ))
    }

    fn discard(self: Box<Self>) {
        self.sink.discard();
    }
}
