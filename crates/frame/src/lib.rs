//! The frame core of gradtone: what flows through the pipeline, with no dependency at all.
//!
//! A source (a trainer, a stream reader) emits one [`Frame`] per training step. [`Watch`]es turn
//! frames into [`AlarmEvent`]s; a mapping turns frames and events into samples; [`Sink`]s take
//! all three (a WAV file, a CSV, the speakers, a browser page…). Every crate of the pipeline
//! speaks these nouns, so a source or a sink depends on this small crate, not on the synthesiser.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod alarm;
mod frame;
pub mod naming;
mod output;
mod sink;
pub mod stats;
mod voice;
mod watch;

pub use alarm::{AlarmEvent, AlarmKind};
pub use frame::{Decimator, Frame, Named};
pub use output::{Opening, Output, OutputError, Report, check_file, check_parent, silent_report};
pub use sink::{ErrorChain, OutputFile, Sink, SinkError, remove_partial};
pub use voice::Voice;
pub use watch::{Latch, Shared, Watch};
