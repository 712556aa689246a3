//! Detection for gradtone: what a run's frames say, before anything is heard or drawn.
//!
//! [`alarm`] holds the gradient detector ([`AlarmDetector`], a [`gradtone_frame::Watch`]: frames
//! in, [`gradtone_frame::AlarmEvent`]s out) and its settings ([`AlarmConfig`]); [`stats`] the
//! rolling statistics it judges by; [`grouping`] folds hundreds of named values into at most a
//! dozen voices, which the mappings sound and the plot draws.
//!
//! Depends on `gradtone-frame` (and serde, for the config tables) only: sources, watches and
//! sinks use it without the synthesiser. How an alarm sounds lives in `gradtone-sound`.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod alarm;
pub mod grouping;
pub mod stats;

pub use alarm::{AlarmConfig, AlarmDetector};
