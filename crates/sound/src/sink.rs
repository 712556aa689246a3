//! The sound crate's [`Sink`]s: the WAV file of the rendered audio and the CSV of the frames,
//! with their options ([`WavArgs`], [`CsvArgs`]) and the sound's ([`SoundArgs`]): each opens
//! its sink through [`Output`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gradtone_frame::{
    AlarmEvent, Frame, Opening, Output, OutputError, OutputFile, Report, Sink, SinkError, Voice,
    Watch, check_file,
};

use crate::SoundError;
use crate::alarm::{AlarmDetector, WithAlarms};
use crate::config::SoundConfig;
use crate::csv::{CsvWriter, MAX_COLUMNS};
use crate::wav::{SampleFormat, WavSink};
use crate::{Mapping, mapping};

/// The run's audio as a WAV file, written as it comes (the header kept current).
pub struct WavFile {
    sink: WavSink,
    path: PathBuf,
    rate: u32,
    channels: u16,
    mapping: String,
}

impl WavFile {
    /// Prepares `path` for audio of `rate` Hz and `channels` channels (written beside it, put
    /// there at the first samples: see [`WavSink`]); `mapping` names what made the sound, for the
    /// summary line.
    pub fn create(
        path: &Path,
        rate: u32,
        channels: u16,
        format: SampleFormat,
        mapping: &str,
    ) -> Result<Self, SoundError> {
        Ok(WavFile {
            sink: WavSink::create(path, rate, channels, format)?,
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
    /// Where the names that do not fit are reported.
    report: Option<Report>,
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
            report: None,
            flushed: Instant::now(),
        })
    }

    /// Says through `report` (once) that a run had more names than the file's columns.
    pub fn reporting_to(mut self, report: Report) -> Self {
        self.report = Some(report);
        self
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
            if let Some(report) = &self.report {
                report(&format!(
                    "warning: {}: more than {MAX_COLUMNS} distinct names; later ones (first: \
                     {first:?}) are counted, not written (--tensorboard or the JSONL stream \
                     keep them)",
                    self.path.display(),
                ));
            }
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

/// How the sound is made: the mapping, a configuration file, the alarms' earcons.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SoundArgs {
    /// Mapping from values to sound: seed (the 2019 original, sample-exact), depth, cents
    /// (default: cents, or the --sound-config file's).
    #[cfg_attr(feature = "clap", arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::mapping::NAMES)))]
    pub mapping: Option<String>,
    /// TOML file configuring mappings, synthesis, grouping and alarms (see crates/sound/examples/sound.toml).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub sound_config: Option<std::path::PathBuf>,
    /// Mix alarm earcons into the seed mapping too (it stays sample-exact without).
    #[cfg_attr(feature = "clap", arg(long))]
    pub alarm_sounds: bool,
}

impl SoundArgs {
    /// The sound configuration these options ask for: the file's (or the defaults), with the
    /// mapping and alarm choices applied.
    pub fn config(&self) -> Result<SoundConfig, SoundError> {
        let mut config = match &self.sound_config {
            Some(p) => SoundConfig::from_file(p)?,
            None => SoundConfig::default(),
        };
        if let Some(m) = &self.mapping {
            config.mapping = m.clone();
        }
        if config.mapping == "seed" && !self.alarm_sounds {
            // The seed mapping is the 2019 sound, sample for sample: alarms print, silently.
            config.alarms.volume = 0.0;
        }
        Ok(config)
    }
}

/// The WAV output's options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct WavArgs {
    /// Write the sound to this WAV file.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub wav: Option<PathBuf>,
    /// WAV sample format.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = SampleFormat::Pcm16))]
    pub wav_format: SampleFormat,
}

impl Output<SoundConfig> for WavArgs {
    fn precheck(&self) -> Result<(), OutputError> {
        check_file(self.wav.as_deref(), "WAV file")
    }

    fn open(&self, at: &Opening<'_, SoundConfig>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(p) = &self.wav else { return Ok(None) };
        let (rate, channels) = (at.sample_rate, at.channels);
        let wav = WavFile::create(p, rate, channels, self.wav_format, &at.config.mapping)
            .map_err(|e| OutputError::open("WAV file", e))?;
        Ok(Some(Box::new(wav)))
    }

    fn keeps(&self) -> bool {
        self.wav.is_some()
    }
}

/// The CSV output's options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CsvArgs {
    // The doc is the flag's --help text: `<values>` there is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    /// Write one row per step (step,loss,<values>...) to this CSV file.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub csv: Option<PathBuf>,
}

impl<C: ?Sized> Output<C> for CsvArgs {
    fn precheck(&self) -> Result<(), OutputError> {
        check_file(self.csv.as_deref(), "CSV file")
    }

    fn open(&self, at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(p) = &self.csv else { return Ok(None) };
        let csv = CsvFile::create(p).map_err(|e| OutputError::open("CSV file", e))?;
        Ok(Some(Box::new(csv.reporting_to(at.report.clone()))))
    }

    fn keeps(&self) -> bool {
        self.csv.is_some()
    }
}

/// The run's sound as a [`Voice`]: the mapping a [`SoundConfig`] names, with the alarms'
/// earcons, and the gradient detector its `alarms` configure.
pub struct SoundVoice {
    config: SoundConfig,
    mapping: WithAlarms<Box<dyn Mapping + Send>>,
}

impl SoundVoice {
    /// The voice of `config` (an unknown mapping fails here).
    pub fn new(config: SoundConfig) -> Result<Self, SoundError> {
        let mapping = mapping::with_alarms(&config)?;
        Ok(SoundVoice { config, mapping })
    }

    /// Its configuration.
    pub fn config(&self) -> &SoundConfig {
        &self.config
    }
}

impl Voice for SoundVoice {
    fn format(&self) -> (u32, u16) {
        (self.mapping.sample_rate(), self.mapping.channels())
    }

    fn watches(&self) -> Vec<Box<dyn Watch + Send>> {
        if self.config.alarms.enabled {
            vec![Box::new(AlarmDetector::new(&self.config.alarms))]
        } else {
            Vec::new()
        }
    }

    fn alarms_enabled(&self) -> bool {
        self.config.alarms.enabled
    }

    fn legend(&self, names: &[&str]) -> Option<String> {
        let legend = mapping::voice_legend(&self.config, names)?;
        Some(legend.strip_suffix('\n').unwrap_or(&legend).to_string())
    }

    fn play(&mut self, frame: &Frame, alarms: &[AlarmEvent], out: &mut Vec<f32>) {
        self.mapping.play(frame, alarms, out);
    }

    fn flush(&mut self, out: &mut Vec<f32>) {
        // Silent earcons (the seed mapping's default) leave no tail: its length stays exact.
        if self.config.alarms.volume > 0.0 {
            self.mapping.flush(out);
        }
    }

    /// A fresh mapping, then `index + 1` marker pings and 300 ms of silence.
    fn begin_part(&mut self, index: usize, out: &mut Vec<f32>) -> Result<(), SinkError> {
        self.mapping = mapping::with_alarms(&self.config)?;
        let (rate, channels) = self.format();
        let volume = self.config.alarms.volume.max(0.3);
        let m = crate::alarm::marker(index + 1, rate, volume);
        let silence = (0.3 * f64::from(rate)) as usize;
        for s in m
            .samples
            .into_iter()
            .chain(std::iter::repeat_n(0.0, silence))
        {
            out.extend(std::iter::repeat_n(s, usize::from(channels)));
        }
        Ok(())
    }
}
