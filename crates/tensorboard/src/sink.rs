//! TensorBoard as a [`Sink`]: every value and loss as a scalar (`gradtone/NAME`), the sound as
//! audio clips (`gradtone/sound`, one clip per [`CLIP_STEPS`] steps), and the alarms as text
//! (`gradtone/alarms`, one entry per step that fired any: their console lines). Its options,
//! [`TensorBoardArgs`], open it through [`Output`].

/// The text tag of the alarms.
pub const ALARMS_TAG: &str = "gradtone/alarms";

use std::path::{Path, PathBuf};

use gradtone_frame::{
    AlarmEvent, Frame, Opening, Output, OutputError, Sink, SinkError, remove_partial,
};

use crate::{EventWriter, TbError, wall_time_now};

/// Steps of audio per TensorBoard clip.
pub const CLIP_STEPS: usize = 100;

/// A run's scalars and sound in a TensorBoard log folder. The folder and its event file are
/// made at the first data, so a run that is refused or receives nothing creates neither.
pub struct TensorBoardSink {
    dir: PathBuf,
    /// `None` until the first data.
    writer: Option<EventWriter>,
    /// The log folder, when this sink created it (removed again on discard if left empty).
    made_dir: Option<PathBuf>,
    rate: u32,
    channels: u16,
    clip: Vec<f32>,
    clip_steps: usize,
    last_step: u64,
}

impl TensorBoardSink {
    /// A sink writing an event file in `dir` (made at the first data) for audio of `rate` Hz
    /// and `channels` channels.
    ///
    /// # Errors
    /// [`TbError::Io`] when `dir` exists and is not a folder.
    pub fn create(dir: &Path, rate: u32, channels: u16) -> Result<Self, TbError> {
        if dir.exists() && !dir.is_dir() {
            return Err(TbError::Io {
                path: dir.to_path_buf(),
                action: "use as the log folder",
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "it is a file"),
            });
        }
        Ok(TensorBoardSink {
            dir: dir.to_path_buf(),
            writer: None,
            made_dir: None,
            rate,
            channels,
            clip: Vec::new(),
            clip_steps: 0,
            last_step: 0,
        })
    }

    /// The event writer, made (with its folder) at the first call.
    fn writer(&mut self) -> Result<&mut EventWriter, TbError> {
        if self.writer.is_none() {
            let made_dir = (!self.dir.exists()).then(|| self.dir.clone());
            self.writer = Some(EventWriter::create(&self.dir)?);
            self.made_dir = made_dir;
        }
        match &mut self.writer {
            Some(w) => Ok(w),
            None => unreachable!("made just above"),
        }
    }

    fn flush_clip(&mut self) -> Result<(), TbError> {
        if !self.clip.is_empty() {
            let clip = std::mem::take(&mut self.clip);
            let (step, rate, channels) = (self.last_step, self.rate, self.channels);
            let r = self.writer().and_then(|w| {
                w.add_audio(
                    "gradtone/sound",
                    step,
                    &clip,
                    rate,
                    channels,
                    wall_time_now(),
                )
            });
            self.clip = clip;
            r?;
        }
        self.clip.clear();
        self.clip_steps = 0;
        Ok(())
    }
}

impl Sink for TensorBoardSink {
    fn describe(&self) -> String {
        match &self.writer {
            Some(w) => format!("TensorBoard event file {}", w.path().display()),
            None => format!("TensorBoard log folder {}", self.dir.display()),
        }
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
        let writer = self.writer()?;
        if !alarms.is_empty() {
            // One entry per step; Markdown paragraphs, one per alarm.
            let lines: Vec<&str> = alarms.iter().map(|e| e.message.as_str()).collect();
            writer.add_text(ALARMS_TAG, frame.step, &lines.join("\n\n"), t)?;
        }
        for v in frame.values.iter().chain(&frame.losses) {
            writer.add_scalar(
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
        let Some(writer) = self.writer.take() else {
            return Ok(format!("{} (no frames: not written)", self.dir.display()));
        };
        let path = writer.finish()?;
        Ok(format!(
            "{} (TensorBoard: scalars gradtone/*, audio gradtone/sound, alarms as text {ALARMS_TAG})",
            path.display()
        ))
    }

    // An abandoned run (nothing received, or its source failed) leaves no event file behind
    // that TensorBoard would list as a run.
    fn discard(self: Box<Self>) {
        let TensorBoardSink {
            writer, made_dir, ..
        } = *self;
        let Some(writer) = writer else { return };
        let path = writer.path().to_path_buf();
        drop(writer);
        remove_partial(&path);
        if let Some(dir) = made_dir {
            // Only an empty folder goes: anything else in it is not ours to delete.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The TensorBoard output's options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TensorBoardArgs {
    /// Write the values as scalars and the sound as audio clips into TensorBoard event files in DIR.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub tensorboard: Option<PathBuf>,
}

impl<C: ?Sized> Output<C> for TensorBoardArgs {
    fn precheck(&self) -> Result<(), OutputError> {
        match &self.tensorboard {
            Some(d) if d.exists() && !d.is_dir() => Err(OutputError::NotAFolder(d.clone())),
            _ => Ok(()),
        }
    }

    fn open(&self, at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(d) = &self.tensorboard else {
            return Ok(None);
        };
        let tb = TensorBoardSink::create(d, at.sample_rate, at.channels)
            .map_err(|e| OutputError::open("TensorBoard log", e))?;
        Ok(Some(Box::new(tb)))
    }

    fn keeps(&self) -> bool {
        self.tensorboard.is_some()
    }
}
