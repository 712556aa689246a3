//! Sonification of neural-network training for gradtone: frames in, audio out.
//!
//! A training source emits one [`Frame`] per step (per-layer gradient norms, losses). A
//! [`Mapping`] turns frames into samples; [`SeedMapping`] is the original 2019 mapping,
//! sample-exact with the PyTorch reference. [`wav`] streams audio to disk (trajectory CSV files are
//! `gradtone-csv`'s), and [`analysis`] measures audio (tone power, dominant frequency).
//!
//! Beyond the original: [`synth`] is a band-limited, click-free, never-clipping oscillator bank;
//! [`mapping`] selects mappings by name (`seed`, `depth`, `cents`); [`config`] reads every
//! setting from TOML; [`alarm`] sounds alarms as earcons ([`alarm::WithAlarms`]).
//!
//! What is not sound lives in `gradtone-frame` (the frame, watches) and `gradtone-detect` (the
//! alarm detector, and the grouping of hundreds of tensors into at most a dozen voices, which
//! the mappings play).
//!
//! No ML dependency: this crate compiles in seconds.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod alarm;
pub mod analysis;
pub mod config;
mod error;
pub mod mapping;
pub mod seed;
pub mod sink;
pub mod synth;
pub mod wav;

pub use alarm::WithAlarms;
pub use config::SoundConfig;
pub use error::SoundError;
use gradtone_frame::Frame;
pub use seed::SeedMapping;
pub use sink::{SoundArgs, SoundVoice, WavArgs};
pub use wav::{SampleFormat, WavWriter};

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

// Lets `Box<dyn Mapping + Send>` (what `mapping::build` returns) be wrapped and passed on.
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
