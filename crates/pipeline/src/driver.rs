//! A training loop's frames into a run's [`Outputs`]: the progress reported as they go, every
//! frame kept, and the loop told to stop on a stop flag (Ctrl-C) or when the outputs fail.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gradtone_frame::{AlarmEvent, Frame};

use crate::{Outputs, PipelineError};

/// What a [`FrameDriver`] reports as the run goes (a progress bar, a log).
pub trait RunProgress {
    /// An alarm fired at the step just pushed.
    fn alarm(&mut self, alarm: &AlarmEvent);
    /// A step went through; `message` is a short status (`loss 0.1234`).
    fn step(&mut self, message: String);
    /// The run ended (finished, stopped or failed).
    fn finish(&mut self);
}

/// Feeds a training loop's frames to the outputs: reports alarms and progress, keeps the
/// frames, and stops the loop when `stop` is raised or on an output error (kept for
/// [`FrameDriver::finish`]).
pub struct FrameDriver<P: RunProgress> {
    progress: P,
    stop: Arc<AtomicBool>,
    failure: Option<PipelineError>,
    frames: Vec<Frame>,
}

impl<P: RunProgress> FrameDriver<P> {
    /// A driver reporting to `progress`, stopping once `stop` is raised.
    pub fn new(progress: P, stop: Arc<AtomicBool>) -> Self {
        FrameDriver {
            progress,
            stop,
            failure: None,
            frames: Vec::new(),
        }
    }

    /// Sends `frame` to `outputs`, with `message` as its status; `Break` ends the run.
    pub fn push(
        &mut self,
        outputs: &mut Outputs,
        frame: Frame,
        message: String,
    ) -> ControlFlow<()> {
        match outputs.push(&frame) {
            Ok(alarms) => alarms.iter().for_each(|a| self.progress.alarm(a)),
            Err(e) => {
                self.failure = Some(e);
                return ControlFlow::Break(());
            }
        }
        self.progress.step(message);
        self.frames.push(frame);
        if self.stop.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// The frames and whether `stop` ended the run, or the output error that did.
    pub fn finish(mut self) -> Result<(Vec<Frame>, bool), PipelineError> {
        self.progress.finish();
        match self.failure {
            Some(e) => Err(e),
            None => Ok((self.frames, self.stop.load(Ordering::SeqCst))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradtone_sound::{SoundConfig, SoundVoice};

    #[derive(Default)]
    struct Log(Vec<String>);

    impl RunProgress for &mut Log {
        fn alarm(&mut self, alarm: &AlarmEvent) {
            self.0.push(format!("alarm {}", alarm.step));
        }
        fn step(&mut self, message: String) {
            self.0.push(message);
        }
        fn finish(&mut self) {
            self.0.push("end".into());
        }
    }

    fn frame(step: u64, v: f64) -> Frame {
        Frame::new(step)
            .with_loss("loss", 1.0)
            .with_value("conv1", v)
    }

    #[test]
    fn frames_are_kept_and_the_stop_flag_breaks_the_loop() {
        let mut outputs = Outputs::new(
            Box::new(SoundVoice::new(SoundConfig::default())),
            Vec::new(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let mut log = Log::default();
        let mut d = FrameDriver::new(&mut log, stop.clone());
        assert!(
            d.push(&mut outputs, frame(0, 1.0), "a".into())
                .is_continue()
        );
        stop.store(true, Ordering::SeqCst);
        assert!(d.push(&mut outputs, frame(1, 1.0), "b".into()).is_break());
        let (frames, stopped) = d.finish().unwrap();
        assert_eq!((frames.len(), stopped), (2, true));
        assert_eq!(log.0, ["a", "b", "end"]);
    }

    #[test]
    fn alarms_are_reported_before_the_step() {
        let mut outputs = Outputs::new(
            Box::new(SoundVoice::new(SoundConfig::default())),
            Vec::new(),
        );
        let mut log = Log::default();
        let mut d = FrameDriver::new(&mut log, Arc::default());
        let _ = d.push(&mut outputs, frame(0, f64::NAN), "nan".into());
        let (frames, stopped) = d.finish().unwrap();
        assert_eq!((frames.len(), stopped), (1, false));
        assert!(log.0.len() >= 3 && log.0[0] == "alarm 0", "{:?}", log.0);
        assert_eq!(log.0[log.0.len() - 2..], ["nan", "end"]);
    }
}
