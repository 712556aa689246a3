//! Live audio output for gradtone: hear training while it runs, without slowing it down more
//! than you ask for.
//!
//! The caller (the training loop) hands interleaved `f32` samples to [`LivePlayer::push`]. They
//! go into a lock-free single-producer ring (`rtrb`); a dedicated audio thread takes them out in
//! 10 ms blocks and writes them to the sound server, writing silence whenever the ring is empty.
//! The training thread never touches the sound server, never takes a lock and never allocates in
//! `push`.
//!
//! How `push` behaves when training produces sound faster than it plays is the [`Pace`]:
//! [`Pace::Realtime`] makes `push` wait (training slows to the sound), [`Pace::Live`] never waits
//! and skips the oldest queued audio instead. When training is *slower* than the sound, the
//! output simply holds silence between steps.
//!
//! Backend: on Linux, the PulseAudio native protocol over its Unix socket (pure Rust, no system
//! libraries), which PipeWire's `pipewire-pulse` also serves. Other platforms have no backend
//! yet: [`LivePlayer::open`] returns [`LiveError::NoDevice`] there.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

#[cfg(target_os = "linux")]
mod pulse;
mod queue;
#[cfg(target_os = "linux")]
mod resample;
mod sink;

pub use sink::LiveArgs;

use queue::{QueueParams, QueueWriter};

/// How [`LivePlayer::push`] behaves when training produces sound faster than it plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Pace {
    /// One step's sound per step: when the queue holds more than ~`max_lead` of audio, `push`
    /// waits (training slows to the sound's speed: the original's feel).
    #[default]
    Realtime,
    /// The sound follows the newest step; training never waits: when the queue is full, the
    /// oldest queued audio is dropped (skipped) in whole blocks, at block boundaries with a short
    /// fade so no click.
    Live,
}

/// Settings for [`LivePlayer::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// Sample rate of the pushed samples, Hz. The stream itself runs at the default sink's
    /// rate: the audio thread converts, so the sound server does not resample.
    pub sample_rate: u32,
    /// Interleaved channels of the pushed samples (1 to 8).
    pub channels: u16,
    /// What `push` does when the queue is full.
    pub pace: Pace,
    /// Target latency of the device-side buffer (stream buffer plus sink), ms. Default 40.
    pub latency_ms: u32,
    /// Bound on the audio queued ahead of the device, ms. Default 500.
    pub max_lead_ms: u32,
    /// Whether [`LivePlayer::finish`] plays out the queued audio before it returns (up to
    /// `max_lead_ms` plus the device latency) or stops at once. `None` (the default): play it
    /// out in [`Pace::Realtime`], where every step's sound is the point; stop at once in
    /// [`Pace::Live`], so listening never holds the process at the end of a run.
    pub drain_on_finish: Option<bool>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            // gradtone-sound's `SeedMapping` renders mono at 44.1 kHz.
            sample_rate: 44_100,
            channels: 1,
            pace: Pace::Realtime,
            latency_ms: 40,
            max_lead_ms: 500,
            drain_on_finish: None,
        }
    }
}

/// Errors of live playback.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// No sound server or output device could be opened (headless machine, no server running,
    /// unsupported platform). Callers usually fall back to writing a file.
    #[error("no live audio output: {reason}")]
    NoDevice {
        /// What was tried and why it failed.
        reason: String,
    },
    /// The configuration cannot be played (zero rate, unsupported channel count, ...).
    #[error("invalid live audio configuration: {0}")]
    Config(String),
    /// `push` got a number of samples that is not a whole number of frames.
    #[error("{len} samples are not a whole number of {channels}-channel frames")]
    PartialFrame {
        /// Samples passed to `push`.
        len: usize,
        /// Configured channel count.
        channels: u16,
    },
    /// The connection to the sound server failed after opening.
    #[error("live audio stream failed: {reason}")]
    Stream {
        /// What failed.
        reason: String,
    },
    /// [`Pace::Realtime`]: `push` waited for room but the device took no audio at all.
    #[error("live audio stalled: the device took no audio for {waited_ms} ms")]
    Stalled {
        /// How long `push` waited without progress.
        waited_ms: u64,
    },
}

/// What one [`LivePlayer::push`] observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Samples dropped since the previous `push` (interleaved samples, not frames): skipped by
    /// [`Pace::Live`], or lost because the ring itself was full. Always 0 in [`Pace::Realtime`].
    pub dropped_samples: u64,
    /// Samples queued ahead of the device right after this push.
    pub queued_samples: usize,
}

/// Totals reported by [`LivePlayer::finish`]. Sample counts are interleaved samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Pushed samples that were sent to the device.
    pub samples_played: u64,
    /// Pushed samples that were dropped (see [`PushStats::dropped_samples`]).
    pub samples_dropped: u64,
    /// Dropouts that were not the producer's doing: the sound server reported that our stream's
    /// buffer ran empty (the audio thread was late), or the ring ran dry while the producer was
    /// inside `push`. Silence because training is slower than the sound is *not* an underrun;
    /// that is counted in `gaps`.
    pub underruns: u64,
    /// Times the queue ran dry after audio and audio resumed later: training slower than its
    /// sound, so silence was played between steps. Harmless; a hint to use a longer step sound.
    pub gaps: u64,
    /// Estimated time from the first `push` to its first sample reaching the device: queueing
    /// until the audio thread sent it, plus the server's buffered audio and sink latency then.
    pub first_sample_latency: Option<Duration>,
    /// Last device-side latency the server reported (stream buffer plus sink), if any.
    pub device_latency: Option<Duration>,
}

/// What the backend thread reports when it ends.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BackendReport {
    pub first_sample_latency: Option<Duration>,
    pub device_latency: Option<Duration>,
}

/// A running backend thread.
#[derive(Debug)]
pub(crate) struct Running {
    pub done: mpsc::Receiver<Result<BackendReport, LiveError>>,
    pub handle: JoinHandle<()>,
}

/// Plays pushed audio on the default output, live.
#[derive(Debug)]
pub struct LivePlayer {
    writer: QueueWriter,
    running: Option<Running>,
    cfg: LiveConfig,
    backend: &'static str,
}

/// Extra time `finish` allows beyond the queued audio and device latency.
const FINISH_MARGIN: Duration = Duration::from_secs(3);

impl LivePlayer {
    /// Opens the default output. Never panics, never hangs (connection attempts bounded, ~2 s):
    /// `Err(LiveError::NoDevice { reason })` when there is no server/device.
    ///
    /// The server is found as libpulse finds it: `PULSE_SERVER` (`unix:` paths), else
    /// `$PULSE_RUNTIME_PATH/native`, else `$XDG_RUNTIME_DIR/pulse/native`, else the system socket.
    pub fn open(cfg: LiveConfig) -> Result<LivePlayer, LiveError> {
        validate(&cfg)?;
        let (writer, reader) = queue::queue(QueueParams {
            channels: usize::from(cfg.channels),
            sample_rate: cfg.sample_rate,
            pace: cfg.pace,
            max_lead_ms: cfg.max_lead_ms,
        });
        #[cfg(target_os = "linux")]
        {
            let running = pulse::start(&cfg, reader, pulse::server_from_env())?;
            Ok(LivePlayer {
                writer,
                running: Some(running),
                cfg,
                backend: pulse::NAME,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (writer, reader);
            Err(LiveError::NoDevice {
                reason: "live audio has a backend only on Linux (PulseAudio/PipeWire) so far"
                    .into(),
            })
        }
    }

    /// Queues interleaved `f32` samples (whole frames). Never blocks in [`Pace::Live`]; in
    /// [`Pace::Realtime`] waits only while the queue is over `max_lead` (sleeping, not spinning),
    /// and returns [`LiveError::Stalled`] if the device takes nothing for 2 s meanwhile.
    pub fn push(&mut self, samples: &[f32]) -> Result<PushStats, LiveError> {
        self.writer.push(samples)
    }

    /// Closes the player: plays out what is queued first (bounded wait) when
    /// [`LiveConfig::drain_on_finish`] says so, else stops at once (what was still queued then
    /// counts as dropped).
    pub fn finish(mut self) -> Result<LiveStats, LiveError> {
        let drain = self
            .cfg
            .drain_on_finish
            .unwrap_or(self.cfg.pace == Pace::Realtime);
        let queued = self.writer.queued() as f64
            / (f64::from(self.cfg.sample_rate) * f64::from(self.cfg.channels));
        let bound = if drain {
            Duration::from_secs_f64(queued) + Duration::from_millis(u64::from(self.cfg.latency_ms))
        } else {
            Duration::ZERO
        } + FINISH_MARGIN;
        let shared = std::sync::Arc::clone(self.writer.shared());
        shared.close_producer();
        if !drain {
            // The audio thread sends its report and ends within one poll interval.
            shared.request_stop();
        }
        let Some(running) = self.running.take() else {
            return Err(LiveError::Stream {
                reason: "player already finished".into(),
            });
        };
        let report = match running.done.recv_timeout(bound) {
            Ok(r) => {
                // The thread sends its report as its last act, so this join is immediate.
                let _ = running.handle.join();
                r?
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                shared.request_stop();
                return Err(LiveError::Stream {
                    reason: format!("playing out the queue took over {} ms", bound.as_millis()),
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(shared.failure().unwrap_or(LiveError::Stream {
                    reason: "audio thread ended unexpectedly".into(),
                }));
            }
        };
        let c = shared.counters();
        Ok(LiveStats {
            samples_played: c.played,
            // Without draining, what the audio thread never took is dropped too.
            samples_dropped: c.dropped + self.writer.queued() as u64,
            underruns: c.underruns,
            gaps: c.gaps,
            first_sample_latency: report.first_sample_latency,
            device_latency: report.device_latency,
        })
    }

    /// Name of the backend in use, e.g. `"pulseaudio"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend
    }

    /// The configuration this player was opened with.
    pub fn config(&self) -> &LiveConfig {
        &self.cfg
    }
}

impl Drop for LivePlayer {
    fn drop(&mut self) {
        // Dropped without `finish`: stop now, and do not wait for the thread (its socket
        // operations are time-bounded, so it ends on its own within a few ms).
        if self.running.is_some() {
            self.writer.shared().request_stop();
        }
    }
}

fn validate(cfg: &LiveConfig) -> Result<(), LiveError> {
    if !(1_000..=384_000).contains(&cfg.sample_rate) {
        return Err(LiveError::Config(format!(
            "sample rate {} Hz is outside 1000..=384000",
            cfg.sample_rate
        )));
    }
    if !(1..=8).contains(&cfg.channels) {
        return Err(LiveError::Config(format!(
            "{} channels; 1 to 8 are supported",
            cfg.channels
        )));
    }
    if !(5..=2_000).contains(&cfg.latency_ms) {
        return Err(LiveError::Config(format!(
            "latency {} ms is outside 5..=2000",
            cfg.latency_ms
        )));
    }
    if !(10..=60_000).contains(&cfg.max_lead_ms) {
        return Err(LiveError::Config(format!(
            "max lead {} ms is outside 10..=60000",
            cfg.max_lead_ms
        )));
    }
    Ok(())
}
