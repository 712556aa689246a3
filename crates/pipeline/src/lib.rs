//! The pipeline of a gradtone run, as a library: frames in; alarms, sound and every output out.
//!
//! [`Outputs`] owns the run's [`Watch`]es, its [`Voice`] (the mapping, from the sound crate) and
//! the [`Sink`]s. Each [`Outputs::push`] runs every watch on the frame (the voice's gradient
//! detector and any added with [`Outputs::add_watch`]: a GAN's, a rank merger's), has the voice
//! render the frame with the
//! earcons of the alarms they fired, then hands the samples and the frame with its alarms to
//! every sink. Sinks are independent: one that fails is reported, its own
//! partial output removed, and the others go on; [`Outputs::finish`] completes every sink that
//! is left. Dropping an unfinished `Outputs` (an error, a panic unwinding) discards every
//! partial output, so nothing incomplete passes for a finished result. A file output is written
//! beside its path and replaces it only at its first data ([`gradtone_frame::OutputFile`]), so
//! a run that is refused, fails to start or receives nothing leaves the user's files as they
//! were.
//!
//! The pipeline knows no output: each output crate has options that open its sink
//! ([`gradtone_frame::Output`]); the binary lists them, and [`Outputs::open`] checks them all,
//! then opens them, before the run. A new output is one `impl Sink` and one `impl Output` in its
//! own crate, plus its line in the binary. Nothing here prints: what the user should hear of
//! (a failed output, the voices' legend, an alarm) goes to the [`Report`] the caller gives.
//!
//! [`driver::FrameDriver`] feeds a training loop's frames to the outputs; a source's stream
//! (its ranks merged) is driven through them by `gradtone_ingest::stream`. This crate depends
//! on the frame crate alone.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod alarms_file;
pub mod driver;

pub use alarms_file::AlarmsArgs;
pub use driver::{FrameDriver, RunProgress};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use gradtone_frame::{
    AlarmEvent, ErrorChain, Frame, Opening, Output, OutputError, Report, Sink, SinkError, Voice,
    Watch,
};

/// What can go wrong in a run's outputs.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The voice could not start a new part.
    #[error("{0}")]
    Voice(SinkError),
    /// An output could not be checked or opened.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Every essential output failed during the run: there is nothing left to write to.
    #[error("every output failed ({}); nothing was kept", failed.join("; "))]
    AllFailed {
        /// A line per failed output: what it was and why.
        failed: Vec<String>,
    },
    /// The run ended before its first frame: every output was removed, since an empty WAV or
    /// CSV would pass for a result.
    #[error("no frames: the input held no training step to sonify, so nothing was written")]
    NoFrames,
    /// Some outputs failed; the others were finished and kept.
    #[error("{} output(s) failed: {}; kept: {}", failed.len(), failed.join("; "),
        if finished.is_empty() { "nothing".to_string() } else { finished.join(", ") })]
    SomeFailed {
        /// A line per failed output: what it was and why.
        failed: Vec<String>,
        /// The summary lines of the outputs that were finished and kept.
        finished: Vec<String>,
    },
}

/// A run's watches, mapping and sinks. The sinks come ready-made (opened by their
/// [`gradtone_frame::Output`]s before any work); an output file replaces what is at its path
/// only at its first data ([`gradtone_frame::OutputFile`]).
pub struct Outputs {
    /// The added watches in the order added, then the voice's (the gradient detector).
    watches: Vec<Box<dyn Watch + Send>>,
    /// How many of `watches` (at the end) are the voice's own.
    builtin: usize,
    voice: Box<dyn Voice>,
    sinks: Vec<Box<dyn Sink>>,
    failed: Vec<String>,
    buf: Vec<f32>,
    legend_shown: bool,
    frames_seen: u64,
    report: Report,
}

impl Outputs {
    /// Checks every output in `outputs` (nothing is touched), then opens them in order for
    /// the sound of `voice`, whose configuration `config` they are told: each file is created
    /// beside its path (it replaces the path at its first data), a socket opened, the page's
    /// server bound. A failure touches no output path and leaves no file: the outputs already
    /// open are dropped unfinished. Their messages, and the outputs', go to `report`; `stop`
    /// (Ctrl-C) ends waiting for a browser.
    pub fn open<C: ?Sized>(
        voice: Box<dyn Voice>,
        config: &C,
        outputs: &[&dyn Output<C>],
        title: &str,
        report: Report,
        stop: &Arc<AtomicBool>,
    ) -> Result<Self, PipelineError> {
        for o in outputs {
            o.precheck()?;
        }
        let (sample_rate, channels) = voice.format();
        let at = Opening {
            sample_rate,
            channels,
            title,
            config,
            report: &report,
            stop,
        };
        let mut sinks = Vec::new();
        for o in outputs {
            sinks.extend(o.open(&at)?);
        }
        Ok(Self::new(voice, sinks).reporting_to(report))
    }

    /// Outputs made of `sinks` (made by the caller for `voice`'s [`Outputs::audio_format`]),
    /// sounding `voice`; they report nothing until [`Outputs::reporting_to`].
    pub fn new(voice: Box<dyn Voice>, sinks: Vec<Box<dyn Sink>>) -> Self {
        let watches = voice.watches();
        Outputs {
            builtin: watches.len(),
            watches,
            voice,
            sinks,
            failed: Vec::new(),
            buf: Vec::new(),
            legend_shown: false,
            frames_seen: 0,
            report: gradtone_frame::silent_report(),
        }
    }

    /// Says what the user should know through `report` (one message a call, no trailing
    /// newline): a failed output, the voices' legend.
    pub fn reporting_to(mut self, report: Report) -> Self {
        self.report = report;
        self
    }

    /// Where these outputs report.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Adds a sink to a running pipeline (it gets the steps from now on).
    pub fn add_sink(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// The sample rate (Hz) and channel count of the sound every sink gets.
    pub fn audio_format(&self) -> (u32, u16) {
        self.voice.format()
    }

    /// Adds a watch: from the next [`Outputs::push`] on it judges every frame, before the
    /// gradient detector (so its alarms come first in what `push` returns), after the watches
    /// added before it. A watch that needs more than the frame carries is a
    /// [`gradtone_frame::Shared`] its source also holds. With the voice's alarms off it still
    /// sees every frame, but nothing it fires is reported or sounded.
    pub fn add_watch(&mut self, watch: Box<dyn Watch + Send>) {
        let at = self.watches.len() - self.builtin;
        self.watches.insert(at, watch);
    }

    /// Starts part `index` (0-based) of a file made of several runs (a sweep's settings): the
    /// voice starts afresh with its own watches ([`Voice::begin_part`]: for the sound crate's, a
    /// fresh mapping and gradient detector, then `index + 1` marker pings and 300 ms of silence),
    /// so no statistics or alarm state carry over from the previous part (the watches added for
    /// it are dropped: add the new part's after this), and a part marker called `label` at
    /// `step`, the first step of the part.
    pub fn begin_part(
        &mut self,
        index: usize,
        label: &str,
        step: u64,
    ) -> Result<(), PipelineError> {
        self.buf.clear();
        let mut buf = std::mem::take(&mut self.buf);
        let begun = self.voice.begin_part(index, &mut buf);
        self.buf = buf;
        begun.map_err(PipelineError::Voice)?;
        self.watches = self.voice.watches();
        self.builtin = self.watches.len();
        self.send_audio(step)?;
        for s in &mut self.sinks {
            s.part(step, label);
        }
        Ok(())
    }

    /// Runs every watch on one frame, renders it with their alarms' earcons, and sends both to
    /// every sink; returns the alarms (for the console), the added watches' first.
    ///
    /// A sink that fails is reported and dropped; the error returned here means that
    /// no essential sink is left.
    pub fn push(&mut self, frame: &Frame) -> Result<Vec<AlarmEvent>, PipelineError> {
        self.frames_seen += 1;
        if !self.legend_shown {
            self.legend_shown = true;
            let names: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
            // What plays: voices for cents/depth, every value in turn for seed; bounded text.
            if let Some(legend) = self.voice.legend(&names) {
                (self.report)(&legend);
            }
        }
        let mut events: Vec<AlarmEvent> = Vec::new();
        for w in &mut self.watches {
            events.extend(w.observe(frame));
        }
        if !self.voice.alarms_enabled() {
            events.clear();
        }
        self.buf.clear();
        self.voice.play(frame, &events, &mut self.buf);
        self.send_audio(frame.step)?;
        self.each_sink(|s| s.frame(frame, &events))?;
        Ok(events)
    }

    /// The rendered samples in `self.buf` go to every sink.
    fn send_audio(&mut self, step: u64) -> Result<(), PipelineError> {
        let buf = std::mem::take(&mut self.buf);
        let r = self.each_sink(|s| s.audio(step, &buf));
        self.buf = buf;
        r
    }

    /// Runs `f` on every sink; a sink whose call fails leaves the run (reported, its partial
    /// output discarded). Errs when sinks were asked for and no essential one is left.
    fn each_sink(
        &mut self,
        mut f: impl FnMut(&mut dyn Sink) -> Result<(), SinkError>,
    ) -> Result<(), PipelineError> {
        let mut i = 0;
        let mut lost = false;
        while i < self.sinks.len() {
            match f(self.sinks[i].as_mut()) {
                Ok(()) => i += 1,
                Err(e) => {
                    let sink = self.sinks.remove(i);
                    lost |= sink.essential();
                    self.drop_failed(sink, &e);
                }
            }
        }
        if lost && !self.sinks.iter().any(|s| s.essential()) {
            return Err(PipelineError::AllFailed {
                failed: self.failed.clone(),
            });
        }
        Ok(())
    }

    fn drop_failed(&mut self, sink: Box<dyn Sink>, e: &SinkError) {
        let what = sink.describe();
        if sink.essential() {
            (self.report)(&format!(
                "error: {what}: {}; that output is abandoned, the others go on",
                ErrorChain(&**e)
            ));
            self.failed.push(format!("{what}: {}", ErrorChain(&**e)));
            sink.discard();
        } else {
            // Losing the speakers must not lose the run: the files keep everything.
            (self.report)(&format!(
                "note: {what}: {}; it stopped, the other outputs go on",
                ErrorChain(&**e)
            ));
        }
    }

    /// Plays out what the mapping still holds (an earcon's tail), then finishes every sink;
    /// returns a line per sink. Errs if any essential sink failed during the run or now: the
    /// others are finished and kept all the same, and the error lists both. A run without a
    /// single frame is [`PipelineError::NoFrames`], and leaves nothing behind.
    pub fn finish(mut self) -> Result<Vec<String>, PipelineError> {
        if self.frames_seen == 0 {
            // Dropping discards every sink's partial output.
            drop(self);
            return Err(PipelineError::NoFrames);
        }
        self.buf.clear();
        self.voice.flush(&mut self.buf);
        if !self.buf.is_empty() {
            let step = self.frames_seen;
            // A failure here is recorded in `self.failed`, reported below.
            let _ = self.send_audio(step);
        }
        let mut lines = Vec::new();
        for sink in std::mem::take(&mut self.sinks) {
            let (what, essential) = (sink.describe(), sink.essential());
            match sink.finish() {
                Ok(line) => lines.push(line),
                Err(e) if essential => self.failed.push(format!("{what}: {}", ErrorChain(&*e))),
                Err(e) => (self.report)(&format!("note: {what}: {}", ErrorChain(&*e))),
            }
        }
        if self.failed.is_empty() {
            Ok(lines)
        } else {
            Err(PipelineError::SomeFailed {
                failed: std::mem::take(&mut self.failed),
                finished: lines,
            })
        }
    }

    /// Removes every partial output (what dropping an unfinished `Outputs` does).
    pub fn discard(self) {}
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for sink in self.sinks.drain(..) {
            sink.discard();
        }
    }
}
