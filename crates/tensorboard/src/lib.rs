//! TensorBoard event files for gradtone.
//!
//! - [`EventWriter`] writes scalars and audio clips (16-bit WAV) that TensorBoard 2.x shows in its
//!   Scalars and Audio panels;
//! - [`EventReader`] iterates the records of any event file, reporting corruption with byte
//!   offsets, never panicking;
//! - [`read_scalars`] collects scalar series (legacy and TF2 tensor scalars) by tag globs, and
//!   [`ScalarSeries::to_frames`] turns them into [`gradtone_frame::Frame`]s to sonify a run.
//!
//! The file format is TFRecord (length, masked CRC32C, data, masked CRC32C) around `Event`
//! protobufs; the few messages needed are declared by hand in [`proto`].
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod error;
pub mod proto;
mod reader;
mod scalars;
mod sink;
mod writer;

pub use error::TbError;
pub use reader::{EventReader, MAX_RECORD_BYTES, frame_record, masked_crc32c};
pub use scalars::{
    MAX_PROBLEMS, ScalarSeries, event_files, frames_of, glob_match, is_event_input, read_scalars,
    scalar_of,
};
pub use sink::{ALARMS_TAG, CLIP_STEPS, TensorBoardArgs, TensorBoardSink};
pub use writer::{AudioFormat, DEFAULT_FLUSH_INTERVAL, EventWriter, FILE_VERSION, wall_time_now};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
