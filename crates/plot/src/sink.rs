//! The picture as a [`Sink`]: frames, alarm markers and (the first ten minutes of) the sound are
//! kept, and drawn into one PNG when the run finishes. Its options, [`PlotArgs`], open it
//! through [`Output`].

use std::path::{Path, PathBuf};

use gradtone_detect::grouping::{GroupingConfig, Voicing};
use gradtone_frame::{
    AlarmEvent, Frame, Opening, Output, OutputError, OutputFile, Sink, SinkError, check_file,
};

use crate::{Marker, PlotError, PlotInput, render_png_into};

/// Audio kept in memory for the spectrogram, at most (samples): ~10 min of stereo at 44.1 kHz.
const AUDIO_CAP: usize = 44_100 * 2 * 600;

/// A PNG of the run's values, losses, alarms and spectrogram, drawn at the end into a file
/// beside its path and then put there (an [`OutputFile`]): until then an existing file at the
/// path is left as it was.
pub struct PlotFile {
    output: OutputFile,
    file: std::fs::File,
    path: PathBuf,
    title: String,
    rate: u32,
    channels: u16,
    frames: Vec<Frame>,
    audio: Vec<f32>,
    markers: Vec<Marker>,
    grouping: Option<GroupingConfig>,
}

impl PlotFile {
    /// A plot at `path` titled `title`, for audio of `rate` Hz and `channels` channels, drawing
    /// the voices `grouping` makes (`None`: every value, as `seed` plays them). Its file is
    /// created beside `path` now, so a bad path fails before any work.
    ///
    /// # Errors
    /// [`PlotError::Io`] when the file cannot be created there.
    pub fn create(
        path: &Path,
        title: &str,
        (rate, channels): (u32, u16),
        grouping: Option<GroupingConfig>,
    ) -> Result<Self, PlotError> {
        let (output, file) = OutputFile::create(path).map_err(|source| PlotError::Io {
            path: path.to_path_buf(),
            cause: source,
        })?;
        Ok(PlotFile {
            output,
            file,
            path: path.to_path_buf(),
            title: title.to_string(),
            rate,
            channels,
            frames: Vec::new(),
            audio: Vec::new(),
            markers: Vec::new(),
            grouping,
        })
    }
}

impl Sink for PlotFile {
    fn describe(&self) -> String {
        format!("plot {}", self.path.display())
    }

    fn audio(&mut self, _step: u64, samples: &[f32]) -> Result<(), SinkError> {
        let room = AUDIO_CAP.saturating_sub(self.audio.len());
        self.audio
            .extend_from_slice(&samples[..samples.len().min(room)]);
        Ok(())
    }

    fn frame(&mut self, frame: &Frame, alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        self.frames.push(frame.clone());
        self.markers.extend(alarms.iter().map(|e| Marker {
            step: e.step,
            label: e.kind.name().into(),
        }));
        Ok(())
    }

    fn part(&mut self, step: u64, label: &str) {
        self.markers.push(Marker {
            step,
            label: label.to_string(),
        });
    }

    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        let input = PlotInput {
            title: &self.title,
            frames: &self.frames,
            markers: &self.markers,
            audio: Some((&self.audio, self.rate, self.channels)),
            grouping: self.grouping.as_ref(),
        };
        render_png_into(self.file, &self.path, &input)?;
        let mut output = self.output;
        output.place().map_err(|source| PlotError::Io {
            path: self.path.clone(),
            cause: source,
        })?;
        Ok(self.path.display().to_string())
    }

    fn discard(self: Box<Self>) {
        self.output.discard();
    }
}

/// The plot's options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PlotArgs {
    /// Draw the values per step (log scale, alarm markers) and a spectrogram of the sound to this PNG.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub plot: Option<PathBuf>,
}

impl<C: Voicing + ?Sized> Output<C> for PlotArgs {
    fn precheck(&self) -> Result<(), OutputError> {
        check_file(self.plot.as_deref(), "plot")
    }

    fn open(&self, at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(p) = &self.plot else { return Ok(None) };
        gradtone_frame::check_parent(p, "plot")?;
        // The voices the sound plays: none for a mapping that voices every value (`seed`).
        let grouping = at
            .config
            .groups_values()
            .then(|| at.config.grouping().clone());
        let plot = PlotFile::create(p, at.title, (at.sample_rate, at.channels), grouping)
            .map_err(|e| OutputError::open("plot", e))?;
        Ok(Some(Box::new(plot)))
    }

    fn keeps(&self) -> bool {
        self.plot.is_some()
    }
}
