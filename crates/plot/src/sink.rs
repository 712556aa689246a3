//! The picture as a [`Sink`]: frames, alarm markers and (the first ten minutes of) the sound are
//! kept, and drawn into one PNG when the run finishes.

use std::path::{Path, PathBuf};

use gradtone_frame::{AlarmEvent, Frame, Sink, SinkError};
use gradtone_sound::grouping::GroupingConfig;

use crate::{Marker, PlotInput, render_png};

/// Audio kept in memory for the spectrogram, at most (samples): ~10 min of stereo at 44.1 kHz.
const AUDIO_CAP: usize = 44_100 * 2 * 600;

/// A PNG of the run's values, losses, alarms and spectrogram, drawn at the end.
pub struct PlotFile {
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
    /// the voices `grouping` makes (`None`: every value, as `seed` plays them). The caller
    /// checks the folder.
    pub fn new(
        path: &Path,
        title: &str,
        (rate, channels): (u32, u16),
        grouping: Option<GroupingConfig>,
    ) -> Self {
        PlotFile {
            path: path.to_path_buf(),
            title: title.to_string(),
            rate,
            channels,
            frames: Vec::new(),
            audio: Vec::new(),
            markers: Vec::new(),
            grouping,
        }
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
        render_png(&self.path, &input)?;
        Ok(self.path.display().to_string())
    }
}
