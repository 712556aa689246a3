//! Writing and reading WAV files.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use gradtone_frame::OutputFile;

use crate::error::SoundError;

/// How [`WavWriter`] stores samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SampleFormat {
    /// 16-bit signed integer PCM (plays everywhere): each sample × 32767, rounded half to even,
    /// clipped, NaN as 0 (`to_pcm16`).
    #[default]
    Pcm16,
    /// 32-bit IEEE float. NaN is written as 0, and samples are clamped to [−1, 1].
    Float32,
}

impl SampleFormat {
    fn bytes(self) -> u64 {
        match self {
            SampleFormat::Pcm16 => 2,
            SampleFormat::Float32 => 4,
        }
    }
}

/// The float → 16-bit conversion of [`SampleFormat::Pcm16`]: the one every 16-bit writer uses.
pub use gradtone_dsp::to_pcm16;

/// Room left in the RIFF header's 32-bit sizes for the header itself.
const RIFF_HEADER_MARGIN: u64 = 1024;

/// Streaming WAV file writer: memory stays flat however long the run. Named after hound's
/// `WavWriter`, which it wraps; it is not a [`Sink`](gradtone_frame::Sink) (the sink that
/// writes a run's WAV is [`WavFile`](crate::sink::WavFile), built on this).
///
/// The file is written beside its path and put there at the first samples (an
/// [`OutputFile`]): until then an existing file at the path is left as it was, and a writer
/// dropped without samples leaves nothing. The header's sizes are kept current (hound's
/// `WavWriter::flush` rewrites them) at the first samples and then at least every `flush_every`
/// sample frames (default: 0.5 s of audio), so a process killed mid-run leaves a playable file
/// holding everything up to the last flush. The WAV format caps a file at 4 GiB
/// (about 13.5 h of 16-bit mono at 44.1 kHz); a write past that is refused with an error rather
/// than corrupting the header.
///
/// ```no_run
/// use gradtone_sound::wav::{SampleFormat, WavWriter};
/// let mut wav = WavWriter::create("out.wav".as_ref(), 44_100, 1, SampleFormat::Pcm16)?;
/// wav.write(&[0.0, 0.5, -0.5])?;
/// wav.finalize()?;
/// # Ok::<(), gradtone_sound::SoundError>(())
/// ```
pub struct WavWriter {
    writer: hound::WavWriter<BufWriter<File>>,
    /// Dropped after `writer` (field order): an unplaced file is removed once closed.
    output: OutputFile,
    path: PathBuf,
    format: SampleFormat,
    channels: u16,
    samples: u64,
    max_samples: u64,
    flush_every: u64,
    since_flush: u64,
}

impl WavWriter {
    /// Creates the file beside `path` and writes a WAV header; the file replaces `path` at the
    /// first [`write`](Self::write) (or [`finalize`](Self::finalize)). Errors name the path.
    ///
    /// `channels` and `sample_rate` must be non-zero.
    pub fn create(
        path: &Path,
        sample_rate: u32,
        channels: u16,
        format: SampleFormat,
    ) -> Result<Self, SoundError> {
        if channels == 0 || sample_rate == 0 {
            return Err(SoundError::WavUsage {
                path: path.to_path_buf(),
                message: format!(
                    "invalid WAV format: {channels} channels at {sample_rate} Hz (both must be > 0)"
                ),
            });
        }
        let spec = hound::WavSpec {
            channels,
            sample_rate,
            bits_per_sample: (format.bytes() * 8) as u16,
            sample_format: match format {
                SampleFormat::Pcm16 => hound::SampleFormat::Int,
                SampleFormat::Float32 => hound::SampleFormat::Float,
            },
        };
        let (output, file) = OutputFile::create(path).map_err(|source| SoundError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let writer = hound::WavWriter::new(BufWriter::new(file), spec).map_err(|source| {
            SoundError::Wav {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let max_bytes = u64::from(u32::MAX) - RIFF_HEADER_MARGIN;
        let frame_bytes = format.bytes() * u64::from(channels);
        let mut sink = WavWriter {
            writer,
            output,
            path: path.to_path_buf(),
            format,
            channels,
            samples: 0,
            max_samples: max_bytes / frame_bytes * u64::from(channels),
            flush_every: u64::from(sample_rate / 2).max(1),
            since_flush: 0,
        };
        // Put the header on disk now: the file is a valid (empty) WAV from the start.
        sink.flush()?;
        Ok(sink)
    }

    /// Sets how many sample frames may be written between header updates (minimum 1).
    #[must_use]
    pub fn with_flush_every(mut self, frames: u64) -> Self {
        self.flush_every = frames.max(1);
        self
    }

    fn wav_err(&self, source: hound::Error) -> SoundError {
        SoundError::Wav {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends interleaved samples; the length must be a whole number of frames (a multiple of
    /// the channel count). See [`SampleFormat`] for how samples are stored.
    pub fn write(&mut self, samples: &[f32]) -> Result<(), SoundError> {
        let n = samples.len() as u64;
        if !n.is_multiple_of(u64::from(self.channels)) {
            return Err(SoundError::WavUsage {
                path: self.path.clone(),
                message: format!(
                    "{n} samples is not a whole number of {}-channel frames",
                    self.channels
                ),
            });
        }
        if self.samples + n > self.max_samples {
            return Err(SoundError::WavUsage {
                path: self.path.clone(),
                message: format!(
                    "writing {n} more samples would exceed the WAV format's 4 GiB limit \
                     ({} samples written)",
                    self.samples
                ),
            });
        }
        let result: Result<(), hound::Error> = match self.format {
            SampleFormat::Pcm16 => samples
                .iter()
                .try_for_each(|&s| self.writer.write_sample(to_pcm16(s))),
            SampleFormat::Float32 => samples.iter().try_for_each(|&s| {
                let v = if s.is_nan() { 0.0 } else { s.clamp(-1.0, 1.0) };
                self.writer.write_sample(v)
            }),
        };
        result.map_err(|e| self.wav_err(e))?;
        self.samples += n;
        self.since_flush += n / u64::from(self.channels);
        if self.since_flush >= self.flush_every || !self.output.is_placed() {
            self.flush()?;
        }
        if !self.output.is_placed() {
            // The first samples are on disk with a current header: now the file may replace
            // whatever was at the path.
            self.place()?;
        }
        Ok(())
    }

    /// Rewrites the header's sizes and flushes to disk: the file is now a valid WAV of everything
    /// written so far. Writing may continue afterwards.
    pub fn flush(&mut self) -> Result<(), SoundError> {
        self.writer.flush().map_err(|e| self.wav_err(e))?;
        self.since_flush = 0;
        Ok(())
    }

    fn place(&mut self) -> Result<(), SoundError> {
        self.output.place().map_err(|source| SoundError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Individual samples written so far (all channels counted).
    pub fn samples_written(&self) -> u64 {
        self.samples
    }

    /// Sample frames written so far (samples per channel; seconds = frames / sample rate).
    pub fn frames_written(&self) -> u64 {
        self.samples / u64::from(self.channels)
    }

    /// Writes the final header and closes the file, reporting any error (dropping a sink also
    /// finalizes, but silently).
    pub fn finalize(self) -> Result<(), SoundError> {
        let WavWriter {
            writer,
            mut output,
            path,
            ..
        } = self;
        writer.finalize().map_err(|source| SoundError::Wav {
            path: path.clone(),
            source,
        })?;
        output
            .place()
            .map_err(|source| SoundError::Io { path, source })
    }

    /// Abandons the file after a failure: the temporary file, or once placed the partial file
    /// at the path, is removed (see [`OutputFile::discard`]).
    pub fn discard(self) {
        let WavWriter { writer, output, .. } = self;
        drop(writer);
        output.discard();
    }
}

/// Reads a WAV (integer PCM of 8–32 bits, or 32-bit float) as interleaved `f32` samples in
/// [−1, 1] (for tests and analysis).
///
/// Integer samples are divided by `2^(bits−1) − 1`, the inverse of [`to_pcm16`]'s scaling for
/// 16-bit, so a write → read round trip is within half an LSB; the most negative code reads as −1.
pub fn read_wav(path: &Path) -> Result<(hound::WavSpec, Vec<f32>), SoundError> {
    let wav_err = |source| SoundError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let reader = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = reader.spec();
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = ((1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) - 1).max(1) as f64;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| (v as f64 / scale).max(-1.0) as f32))
                .collect()
        }
    }
    .map_err(wav_err)?;
    Ok((spec, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_overflow_the_riff_size() -> Result<(), SoundError> {
        let path =
            std::env::temp_dir().join(format!("gradtone-sound-cap-{}.wav", std::process::id()));
        let mut sink = WavWriter::create(&path, 44_100, 2, SampleFormat::Pcm16)?;
        // The real cap is ~2^31 samples; shrink it to test the boundary without writing 4 GiB.
        assert_eq!(
            sink.max_samples,
            (u64::from(u32::MAX) - RIFF_HEADER_MARGIN) / 4 * 2
        );
        sink.max_samples = 10;
        sink.write(&[0.0; 10])?;
        let err = sink
            .write(&[0.0; 2])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("4 GiB"), "{err}");
        assert_eq!(sink.samples_written(), 10);
        sink.finalize()?;
        let _ = std::fs::remove_file(&path);
        Ok(())
    }
}
