//! Sonification of neural-network training for gradtone: frames in, audio out.
//!
//! A training source emits one [`Frame`] per step (per-layer gradient norms, losses). A
//! [`Mapping`] turns frames into samples; [`SeedMapping`] is the original 2019 mapping,
//! sample-exact with the PyTorch reference. [`csv`] writes trajectory files (`gradtone-ingest` reads them), [`wav`]
//! streams audio to disk, and [`analysis`] measures audio (tone power, dominant frequency).
//!
//! Beyond the original: [`synth`] is a band-limited, click-free, never-clipping oscillator bank;
//! [`mapping`] selects mappings by name (`seed`, `depth`, `cents`); [`config`] reads every
//! setting from TOML; [`alarm`] detects divergence, explosion, dead gradients and plateaus and
//! sounds them as earcons ([`alarm::WithAlarms`]); [`grouping`] folds hundreds of tensors into
//! at most a dozen voices; [`informativeness`] measures what a listener can tell from the audio
//! alone.
//!
//! No ML dependency: this crate compiles in seconds.
#![warn(missing_docs)]

pub mod alarm;
pub mod analysis;
pub mod config;
pub mod csv;
mod error;
pub mod grouping;
pub mod informativeness;
pub mod mapping;
pub mod seed;
pub mod sink;
mod stats;
pub mod synth;
pub mod wav;

pub use alarm::{AlarmEvent, AlarmKind, WithAlarms};
pub use config::SoundConfig;
pub use error::SoundError;
pub use gradtone_frame::{Decimator, Frame, Latch, Named, Shared, Watch};
pub use seed::SeedMapping;
pub use sink::{CsvArgs, SoundArgs, SoundVoice, WavArgs};
pub use wav::{SampleFormat, WavSink};

/// Turns frames into audio samples.
///
/// Implementations are stateful (`&mut self`) so that a mapping can keep phase or smoothing
/// across frames; the output format is fixed for a mapping's lifetime.
pub trait Mapping {
    /// Sample rate of the output, Hz.
    fn sample_rate(&self) -> u32;
    /// Number of interleaved channels of the output.
    fn channels(&self) -> u16;
    /// Appends the interleaved samples for `frame` to `out` (a whole number of sample frames).
    fn render(&mut self, frame: &Frame, out: &mut Vec<f32>);
}

// Lets `Box<dyn Mapping + Send>` (what `mapping::by_name` returns) be wrapped and passed on.
impl<M: Mapping + ?Sized> Mapping for Box<M> {
    fn sample_rate(&self) -> u32 {
        (**self).sample_rate()
    }

    fn channels(&self) -> u16 {
        (**self).channels()
    }

    fn render(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        (**self).render(frame, out);
    }
}

// Compiles the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
