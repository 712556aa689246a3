//! A stream of frames from any source (a JSONL file or pipe, UDP, OSC, a followed file, a
//! TensorBoard log's frames) through the ranks' merger and the step decimator into the
//! [`Outputs`]: the loop behind `gradtone listen`, `render` and `run`.
//!
//! Nothing here prints: the source's warnings and summary, each alarm and the ranks' counts go
//! to the outputs' [`gradtone_frame::Report`]; the frame count and the outputs' summary lines
//! come back in [`Finished`], for the caller to show. With [`StreamOptions::drain_on_failure`],
//! outputs that fail mid-stream leave the source read to its end, so whatever writes into it is
//! never blocked.

use gradtone_frame::{Decimator, Frame, Shared};
use gradtone_pipeline::{Outputs, PipelineError};

use crate::{
    BoxedSource, IngestError, MAX_MESSAGE_CHARS, MAX_WORLD, MergeMode, MergeOptions, RankAlarms,
    RankMerger, shorten,
};

/// What can end a stream's run.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The source failed (an I/O error, a bad CSV row).
    #[error(transparent)]
    Source(#[from] IngestError),
    /// The outputs failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Nothing arrived from the source (named here, shortened): nothing was written, and every
    /// existing file at an output path was left as it was.
    #[error("no frames from {0}: nothing was written, existing files were left as they were")]
    NoFrames(String),
}

/// How the ranks of a distributed stream are merged, and how many steps make a frame (the
/// flags of the streams that may carry several ranks, behind the `clap` feature).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RankOptions {
    /// Combine the ranks of a distributed run (frames with `rank`/`world`).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = MergeMode::Mean))]
    pub merge: MergeMode,
    /// Emit a step without the ranks that are this many steps behind (they raise a lag alarm).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub max_lag: u64,
    /// A rank whose norm differs from the other ranks' median by this factor raises an alarm.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10.0))]
    pub disagreement: f64,
    /// Sound the mean of every N steps as one (non-finite values win): hear a million-step run in minutes.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 1))]
    pub steps_per_frame: usize,
}

impl Default for RankOptions {
    /// Means, lag 8, disagreement factor 10, every step its own frame.
    fn default() -> Self {
        RankOptions {
            merge: MergeMode::Mean,
            max_lag: 8,
            disagreement: 10.0,
            steps_per_frame: 1,
        }
    }
}

/// What a stream's run is called and does when its outputs fail.
#[derive(Clone, Debug, Default)]
pub struct StreamOptions {
    /// The stream, for the message of a run without frames (a path, `stdin`, `udp 9999`).
    pub name: String,
    /// When the outputs fail mid-stream, read the source on to its end (dropping the frames)
    /// instead of stopping: the training that writes into it (`gradtone run`'s command, a
    /// script piped into `listen`) is then never blocked or broken by our failure.
    pub drain_on_failure: bool,
}

/// A finished stream's run: how many frames were sounded, and a summary line per output kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// Frames sent to the outputs (after merging ranks and decimating).
    pub frames: u64,
    /// A line per finished output (`out.wav (3.2 s of audio, seed mapping)`).
    pub lines: Vec<String>,
}

/// Runs `source` through `outputs` until it ends; the rank count is read from the first
/// frame's `rank`/`world`. The outputs come opened (a `--serve` page is up while the stream is
/// still silent; `gradtone run` opens them before it starts the command, so nothing that can
/// fail is left once the command runs); a stream that yields no frame, or fails, leaves no
/// output behind and existing files as they were.
pub fn run_source(
    mut source: BoxedSource,
    outputs: Outputs,
    ranks: &RankOptions,
    opts: &StreamOptions,
) -> Result<Finished, StreamError> {
    let report = outputs.report().clone();
    let warn = report.clone();
    source.set_reporter(std::sync::Arc::new(move |m: &str| {
        warn(&format!("warning: {m}"))
    }));
    // Distributed streams are recognised from their first frame's rank/world.
    let first = source.next_record();
    let world = first
        .as_ref()
        .and_then(|r| r.world.or(r.frame.rank.map(|k| k + 1)));
    let mut first = first.map(|r| Ok(r.frame));
    let mut ended = false;
    // The source's I/O error (or a bad CSV row) arrives as the last item, before any file is
    // finalised, so a broken input never leaves a complete-looking output.
    let frames = std::iter::from_fn(move || {
        if let Some(f) = first.take() {
            return Some(f);
        }
        if ended {
            return None;
        }
        match source.next_record() {
            Some(r) => Some(Ok(r.frame)),
            None => {
                ended = true;
                if let Some(s) = source.diagnostics().summary() {
                    report(&s);
                }
                source.take_error().map(|e| Err(e.into()))
            }
        }
    });
    run_frames(frames, world, outputs, ranks, opts)
}

/// Drives `frames` (merging ranks when `world` is above 1) through `outputs` and finishes
/// them; the first error discards them (with [`StreamOptions::drain_on_failure`], after
/// reading `frames` to their end). No frame at all is [`StreamError::NoFrames`], with nothing
/// written: the outputs, dropped unfinished, remove every file they had begun.
pub fn run_frames(
    frames: impl Iterator<Item = Result<Frame, StreamError>>,
    world: Option<u32>,
    mut outputs: Outputs,
    ranks: &RankOptions,
    opts: &StreamOptions,
) -> Result<Finished, StreamError> {
    let report = outputs.report().clone();
    let alarms = Shared::new(RankAlarms::new(ranks.max_lag));
    if world.is_some_and(|w| w > 1) {
        outputs.add_watch(Box::new(alarms.clone()));
    }
    let mut n = 0u64;
    let mut frames = frames;
    let mut decimator = Decimator::new(ranks.steps_per_frame);
    let mut merger = world.filter(|&w| w > 1).map(|w| {
        report(&format!("{w} ranks: merging ({:?})", ranks.merge));
        RankMerger::new(MergeOptions {
            world: w,
            lag: ranks.max_lag,
            mode: ranks.merge,
            disagreement_factor: ranks.disagreement,
        })
    });
    let drain = |merger: &mut RankMerger,
                 outputs: &mut Outputs,
                 decimator: &mut Decimator,
                 n: &mut u64|
     -> Result<(), StreamError> {
        while let Some(m) = merger.pop() {
            alarms.lock().note(&m);
            if let Some(f) = decimator.push(m.frame) {
                emit(outputs, &f, n)?;
            }
        }
        Ok(())
    };
    let result = (|| -> Result<(), StreamError> {
        for f in frames.by_ref() {
            let f = f?;
            match &mut merger {
                Some(m) => {
                    m.push(f);
                    drain(m, &mut outputs, &mut decimator, &mut n)?;
                }
                None => {
                    if let Some(f) = decimator.push(f) {
                        emit(&mut outputs, &f, &mut n)?;
                    }
                }
            }
        }
        if let Some(m) = &mut merger {
            m.finish();
            drain(m, &mut outputs, &mut decimator, &mut n)?;
        }
        if let Some(f) = decimator.finish() {
            emit(&mut outputs, &f, &mut n)?;
        }
        Ok(())
    })();
    if opts.drain_on_failure
        && let Err(StreamError::Pipeline(_)) = &result
    {
        // Whoever writes into the source must not block or break on our failure: the frames
        // are read (and dropped) until it ends. The error is reported when it has.
        report(
            "gradtone: no output is left; reading the frames on until the stream ends, \
             writing nothing",
        );
        for f in frames.by_ref() {
            if f.is_err() {
                break;
            }
        }
    }
    if let Some(m) = &merger {
        let (late, rejected) = (m.late_frames(), m.rejected_frames());
        if late > 0 || rejected > 0 {
            report(&format!(
                "ranks: {late} frames arrived after their step was sounded, {rejected} with a \
                 rank beyond {MAX_WORLD} (dropped)"
            ));
        }
    }
    let repeats = alarms.lock().repeats();
    if repeats > 0 {
        report(&format!(
            "rank alarms: {repeats} repeats of an alarm already raised were not sounded again"
        ));
    }
    let no_frames = || StreamError::NoFrames(shorten(&opts.name, MAX_MESSAGE_CHARS).into_owned());
    match result {
        Ok(()) if n == 0 => {
            // Nothing arrived: no empty WAV, CSV or picture passes for a result, and every
            // existing file at an output path stays as it was.
            drop(outputs);
            Err(no_frames())
        }
        Ok(()) => Ok(Finished {
            lines: outputs.finish()?,
            frames: n,
        }),
        Err(e) => {
            outputs.discard();
            Err(e)
        }
    }
}

/// One frame into the sinks; its alarms to the console.
fn emit(outputs: &mut Outputs, f: &Frame, n: &mut u64) -> Result<(), StreamError> {
    *n += 1;
    for a in outputs.push(f)? {
        (outputs.report())(&format!(
            "alarm: {}",
            shorten(&a.message, 2 * MAX_MESSAGE_CHARS)
        ));
    }
    Ok(())
}
