//! The sound crate's [`Sink`]s: the WAV file of the rendered audio and the CSV of the frames.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gradtone_frame::{AlarmEvent, Frame, OutputFile, Sink, SinkError};

use crate::SoundError;
use crate::csv::{CsvWriter, MAX_COLUMNS};
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

/// The run's frames as a CSV file (`step,loss…,value…`), readable by `render`: written beside
/// its path and put there at the first frame (an [`OutputFile`]), so a run without frames
/// leaves an existing file as it was.
pub struct CsvFile {
    output: OutputFile,
    path: PathBuf,
    // Until the first frame: the header needs the frame's names.
    file: Option<File>,
    writer: Option<CsvWriter<File>>,
    overflow_told: bool,
    /// When the rows were last flushed to the file.
    flushed: Instant,
}

/// How often a CSV's rows reach the file: a process killed mid-run (`kill -9`) loses at most
/// the rows of this last moment, as the WAV keeps its header current.
const CSV_FLUSH_EVERY: Duration = Duration::from_millis(500);

impl CsvFile {
    /// Creates the file beside `path` now, so a bad path fails before any work.
    pub fn create(path: &Path) -> Result<Self, SoundError> {
        let (output, file) = OutputFile::create(path).map_err(|source| SoundError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(CsvFile {
            output,
            path: path.to_path_buf(),
            file: Some(file),
            writer: None,
            overflow_told: false,
            flushed: Instant::now(),
        })
    }

    fn io_err(&self, source: std::io::Error) -> SoundError {
        SoundError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl Sink for CsvFile {
    fn describe(&self) -> String {
        format!("CSV file {}", self.path.display())
    }

    fn frame(&mut self, frame: &Frame, _alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        if let Some(file) = self.file.take() {
            let losses: Vec<&str> = frame.losses.iter().map(|v| v.name.as_str()).collect();
            let values: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
            let mut w = CsvWriter::with_file(file, &self.path, &losses, &values)?;
            w.write(frame)?;
            w.flush()?;
            self.writer = Some(w);
            // The first row is on disk: now the file may replace what was at the path.
            self.output.place().map_err(|e| self.io_err(e))?;
        } else if let Some(w) = &mut self.writer {
            w.write(frame)?;
            if self.flushed.elapsed() >= CSV_FLUSH_EVERY {
                w.flush()?;
                self.flushed = Instant::now();
            }
        }
        if let Some(w) = &mut self.writer
            && !self.overflow_told
            && let (n, Some(first)) = w.overflow()
            && n > 0
        {
            // Never silent: said once here, counted in the summary line.
            self.overflow_told = true;
            eprintln!(
                "warning: {}: more than {MAX_COLUMNS} distinct names; later ones (first: \
                 {first:?}) are counted, not written (--tensorboard or the JSONL stream keep \
                 them)",
                self.path.display(),
            );
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        let overflow = match self.writer {
            Some(w) => {
                let (n, _) = w.overflow();
                w.finish()?;
                n
            }
            // Nothing to write: an existing file stays as it was.
            None => return Ok(format!("{} (no frames: not written)", self.path.display())),
        };
        Ok(if overflow == 0 {
            self.path.display().to_string()
        } else {
            format!(
                "{} ({overflow} values past {MAX_COLUMNS} columns not written)",
                self.path.display()
            )
        })
    }

    fn discard(self: Box<Self>) {
        let CsvFile { output, writer, .. } = *self;
        drop(writer);
        output.discard();
    }
}
