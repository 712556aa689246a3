//! The sinks of a run: the sound (seed mapping → WAV) and the CSV of frames.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gradtone_sound::csv::CsvWriter;
use gradtone_sound::{Frame, Mapping, SampleFormat, SeedMapping, WavSink};

/// Where each frame goes. Files are created up front, so an unwritable path fails before any
/// training; on a failure after that, [`Outputs::discard`] removes what would look complete.
pub struct Outputs {
    wav: Option<(PathBuf, WavSink)>,
    csv: Option<(PathBuf, Option<CsvWriter<BufWriter<File>>>)>,
    mapping: SeedMapping,
    buf: Vec<f32>,
}

impl Outputs {
    /// Creates the requested files.
    pub fn create(wav: Option<&Path>, csv: Option<&Path>, format: SampleFormat) -> Result<Self> {
        let mapping = SeedMapping::new();
        let wav = match wav {
            Some(p) => Some((
                p.to_path_buf(),
                WavSink::create(p, mapping.sample_rate(), mapping.channels(), format)
                    .with_context(|| format!("cannot write the WAV file {}", p.display()))?,
            )),
            None => None,
        };
        // The CSV header needs the frame's names: its writer is made at the first frame, but
        // the path is checked now.
        let csv = match csv {
            Some(p) => {
                File::create(p).with_context(|| format!("cannot write the CSV file {}", p.display()))?;
                Some((p.to_path_buf(), None))
            }
            None => None,
        };
        Ok(Self { wav, csv, mapping, buf: Vec::new() })
    }

    /// Sends one frame to every sink.
    pub fn push(&mut self, frame: &Frame) -> Result<()> {
        if let Some((path, sink)) = &mut self.wav {
            self.buf.clear();
            self.mapping.render(frame, &mut self.buf);
            sink.write(&self.buf).with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some((path, writer)) = &mut self.csv {
            if writer.is_none() {
                let losses: Vec<&str> = frame.losses.iter().map(|v| v.name.as_str()).collect();
                let values: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
                *writer = Some(
                    CsvWriter::create(path, &losses, &values)
                        .with_context(|| format!("cannot write the CSV file {}", path.display()))?,
                );
            }
            if let Some(w) = writer {
                w.write(frame).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Finalises every file; returns a line per file written.
    pub fn finish(self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        if let Some((path, sink)) = self.wav {
            let n = sink.samples_written();
            sink.finalize().with_context(|| format!("finalising {}", path.display()))?;
            lines.push(format!(
                "{} ({:.1} s of audio)",
                path.display(),
                n as f64 / f64::from(self.mapping.sample_rate()) / f64::from(self.mapping.channels())
            ));
        }
        if let Some((path, writer)) = self.csv {
            if let Some(w) = writer {
                w.finish().with_context(|| format!("finalising {}", path.display()))?;
            }
            lines.push(path.display().to_string());
        }
        Ok(lines)
    }

    /// Removes the files after a failure, so nothing incomplete passes for a finished result.
    pub fn discard(self) {
        if let Some((path, sink)) = self.wav {
            drop(sink);
            let _ = std::fs::remove_file(path);
        }
        if let Some((path, writer)) = self.csv {
            drop(writer);
            let _ = std::fs::remove_file(path);
        }
    }
}
