//! The sound crate's [`Sink`]: the WAV file of the rendered audio, with its options
//! ([`WavArgs`], an [`Output`]), the sound's options ([`SoundArgs`]) and the run's sound as
//! the pipeline plays it ([`SoundVoice`], a [`Voice`]).

use std::path::{Path, PathBuf};

use gradtone_detect::AlarmDetector;
use gradtone_frame::{
    AlarmEvent, Frame, Opening, Output, OutputError, Sink, SinkError, Voice, Watch, check_file,
};

use crate::SoundError;
use crate::alarm::WithAlarms;
use crate::config::{MappingKind, SoundConfig};
use crate::wav::{SampleFormat, WavWriter};
use crate::{Mapping, mapping};

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

/// How the sound is made: the mapping, a configuration file, the alarms' earcons.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SoundArgs {
    /// Mapping from values to sound: seed (the 2019 original, sample-exact), depth, cents
    /// (default: cents, or the --sound-config file's).
    #[cfg_attr(feature = "clap", arg(long))]
    pub mapping: Option<MappingKind>,
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
            config.mapping = *m;
        }
        if config.mapping == MappingKind::Seed && !self.alarm_sounds {
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
        let wav = WavFile::create(p, rate, channels, self.wav_format, at.config.mapping.name())
            .map_err(|e| OutputError::open("WAV file", e))?;
        Ok(Some(Box::new(wav)))
    }

    fn keeps(&self) -> bool {
        self.wav.is_some()
    }
}

/// The run's sound as a [`Voice`]: the mapping a [`SoundConfig`] names, with the alarms'
/// earcons, and the gradient detector its `alarms` configure.
pub struct SoundVoice {
    config: SoundConfig,
    mapping: WithAlarms<Box<dyn Mapping + Send>>,
}

impl SoundVoice {
    /// The voice of `config`.
    pub fn new(config: SoundConfig) -> Self {
        let mapping = mapping::with_alarms(&config);
        SoundVoice { config, mapping }
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
        self.mapping = mapping::with_alarms(&self.config);
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
