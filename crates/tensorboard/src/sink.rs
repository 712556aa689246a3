//! TensorBoard as a [`Sink`]: every value and loss as a scalar (`gradtone/NAME`), the sound as
//! audio clips (`gradtone/sound`, one clip per [`CLIP_STEPS`] steps), and the alarms as text
//! (`gradtone/alarms`, one entry per step that fired any: their console lines).

/// The text tag of the alarms.
pub const ALARMS_TAG: &str = "gradtone/alarms";

use std::path::Path;

use gradtone_frame::{AlarmEvent, Frame, Sink, SinkError, remove_partial};

use crate::{EventWriter, TbError, wall_time_now};

/// Steps of audio per TensorBoard clip.
pub const CLIP_STEPS: usize = 100;

/// A run's scalars and sound in a TensorBoard log folder.
pub struct TensorBoardSink {
    writer: EventWriter,
    /// The log folder, when this sink created it (removed again on discard if left empty).
    made_dir: Option<std::path::PathBuf>,
    rate: u32,
    channels: u16,
    clip: Vec<f32>,
    clip_steps: usize,
    last_step: u64,
}

impl TensorBoardSink {
    /// Creates an event file in `dir` for audio of `rate` Hz and `channels` channels.
    pub fn create(dir: &Path, rate: u32, channels: u16) -> Result<Self, TbError> {
        let made_dir = (!dir.exists()).then(|| dir.to_path_buf());
        Ok(TensorBoardSink {
            writer: EventWriter::create(dir)?,
            made_dir,
            rate,
            channels,
            clip: Vec::new(),
            clip_steps: 0,
            last_step: 0,
        })
    }

    fn flush_clip(&mut self) -> Result<(), TbError> {
        if !self.clip.is_empty() {
            self.writer.add_audio(
                "gradtone/sound",
                self.last_step,
                &self.clip,
                self.rate,
                self.channels,
                wall_time_now(),
            )?;
        }
        self.clip.clear();
        self.clip_steps = 0;
        Ok(())
    }
}

impl Sink for TensorBoardSink {
    fn describe(&self) -> String {
        format!("TensorBoard event file {}", self.writer.path().display())
    }

    fn audio(&mut self, step: u64, samples: &[f32]) -> Result<(), SinkError> {
        self.clip.extend_from_slice(samples);
        self.clip_steps += 1;
        self.last_step = step;
        if self.clip_steps >= CLIP_STEPS {
            self.flush_clip()?;
        }
        Ok(())
    }

    fn frame(&mut self, frame: &Frame, alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        let t = wall_time_now();
        if !alarms.is_empty() {
            // One entry per step; Markdown paragraphs, one per alarm.
            let lines: Vec<&str> = alarms.iter().map(|e| e.message.as_str()).collect();
            self.writer
                .add_text(ALARMS_TAG, frame.step, &lines.join("\n\n"), t)?;
        }
        for v in frame.values.iter().chain(&frame.losses) {
            self.writer.add_scalar(
                &format!("gradtone/{}", v.name),
                frame.step,
                v.value as f32,
                t,
            )?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<String, SinkError> {
        self.flush_clip()?;
        let path = self.writer.finish()?;
        Ok(format!(
            "{} (TensorBoard: scalars gradtone/*, audio gradtone/sound, alarms as text {ALARMS_TAG})",
            path.display()
        ))
    }

    // An abandoned run (nothing received, or its source failed) leaves no event file behind
    // that TensorBoard would list as a run.
    fn discard(self: Box<Self>) {
        let path = self.writer.path().to_path_buf();
        let made_dir = self.made_dir.clone();
        drop(self);
        remove_partial(&path);
        if let Some(dir) = made_dir {
            // Only an empty folder goes: anything else in it is not ours to delete.
            let _ = std::fs::remove_dir(dir);
        }
    }
}
