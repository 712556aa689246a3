//! Sinks that hand gradtone's training sound to tools musicians and ML people already use.
//!
//! - [`MidiWriter`]: a Standard MIDI File with one track per voice (e.g. per layer), pitch from
//!   the gradient norm, velocity from relative loudness, and an alarm track (GM drums) where a
//!   value was NaN or infinite. Open it in any DAW or read it with `mido`/`pretty_midi`.
//! - [`OscSender`]: one OSC bundle per frame over UDP (`/gradtone/step`, `/gradtone/value`,
//!   `/gradtone/loss`, `/gradtone/alarm`) for SuperCollider, Pure Data, Max… Ready patches live in
//!   `examples/supercollider/` and `examples/puredata/`; the scheme is in `docs/osc.md`.
//!
//! Both take [`gradtone_frame::Frame`]s, the values one training step emits.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod error;
pub mod midi;
pub mod osc;
pub mod sink;

pub use error::ExportError;
pub use midi::{MidiOptions, MidiSummary, MidiWriter, PitchMap};
pub use osc::{OscSender, OscStats};
pub use sink::{MidiArgs, OscArgs};

// Compiles the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
