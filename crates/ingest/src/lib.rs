//! Reads other people's training metrics as gradtone [`Frame`]s.
//!
//! Sources, each an `Iterator<Item = Frame>` that also implements [`FrameSource`]:
//!
//! - [`JsonlReader`]: the JSON Lines stream format v1 (`docs/stream-format.md`) from a file, stdin
//!   or any `BufRead`; [`parse_line`] / [`parse_record`] for one line.
//! - [`follow`]: like `tail -f`, keeps reading lines appended to a file.
//! - [`UdpSource`]: JSONL lines in UDP datagrams.
//! - [`TcpSource`]: JSONL lines over loopback TCP connections (any frame size, one connection
//!   per rank).
//! - [`OscSource`]: Open Sound Control messages over UDP (`docs/osc.md`).
//! - [`csv_source`]: trajectory CSV files, via [`gradtone_csv::CsvReader`]
//!   ([`gradtone_csv::read_frames`] reads a whole file).
//!
//! Sources never stop on bad content: a malformed line is skipped, counted and reported (with its
//! line number) in [`Diagnostics`]. Only I/O errors end a stream early; they are kept for
//! [`FrameSource::take_error`].
//!
//! [`RankMerger`] combines the frames of the ranks of a distributed run into one frame per step,
//! and flags lagging ranks and ranks whose gradient norms disagree with the others;
//! [`RankAlarms`] is the pipeline watch that turns those findings into alarms.
//!
//! [`open`] picks the reader a path names (stdin, CSV, JSONL); [`listen_addr`] turns what a
//! user typed into the address a UDP or OSC source binds; [`command::spawn`] runs a training
//! command with its frames coming back over loopback TCP (`gradtone run`).
//!
//! Everything a file or a peer sends is bounded by what was actually received, never by a number
//! it claims: lines of at most [`MAX_LINE_BYTES`], `rank < world ≤` [`MAX_WORLD`], OSC nesting of
//! at most a few levels, messages quoting the input cut to [`MAX_MESSAGE_CHARS`], the first
//! [`MAX_REPORTED`] problems reported and the rest counted (`docs/stream-format.md`, "Limits").
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod csv;
mod diag;
mod error;
mod follow;
mod jsonl;
mod lines;
mod merge;
mod osc;
mod rank_alarms;
mod tcp;
mod udp;

mod addr;
pub mod command;
mod listen;
mod open;
pub mod stream;

pub use crate::csv::{CsvSource, csv_source};
pub use diag::{Diagnostics, MAX_MESSAGE_CHARS, MAX_REPORTED, shorten};
pub use error::{IngestError, LineError};
pub use follow::{FollowOptions, FollowReader, follow};
pub use gradtone_frame::{Frame, Named};
pub use jsonl::{JsonlReader, MAX_LINE_BYTES, Record, parse_line, parse_record};
pub use merge::{
    MAX_PENDING_BYTES, MAX_WORLD, MergeMode, MergeOptions, Merged, MergedFrame, RankMerger,
};
pub use osc::{ADDR_FRAME, ADDR_LOSS, ADDR_RANK, OscDecoder, OscSource};
pub use rank_alarms::RankAlarms;
pub use tcp::{MAX_CONNECTIONS, TcpSource};
pub use udp::{UdpOptions, UdpSource};

pub use addr::{AddrError, listen_addr};
pub use listen::{ListenArgs, ListenError, Listened};
pub use open::{BoxedSource, open};
pub use stream::{Finished, RankOptions, StreamError, StreamOptions};

/// What every source offers beyond `Iterator<Item = Frame>`.
///
/// Iteration ends at the end of the data, when a stop flag is raised, after an idle timeout, or on
/// an I/O error; [`take_error`](FrameSource::take_error) tells the last case apart.
///
/// ```
/// use gradtone_ingest::{FrameSource, JsonlReader};
/// let text = "{\"step\":0,\"values\":{\"fc1\":0.5}}\nnot json\n";
/// let mut src = JsonlReader::new(text.as_bytes(), "inline");
/// let frames: Vec<_> = src.by_ref().collect();
/// assert_eq!(frames.len(), 1);
/// assert!(src.take_error().is_none());
/// assert_eq!(src.diagnostics().summary().as_deref(), Some("inline: 1 malformed line skipped"));
/// ```
pub trait FrameSource: Iterator<Item = Frame> {
    /// The next record: a frame plus what the line said about the stream (version, world, time).
    /// `Iterator::next` is this without the extras.
    fn next_record(&mut self) -> Option<Record>;
    /// Counts and first messages about malformed input so far.
    fn diagnostics(&self) -> &Diagnostics;
    /// The I/O error that ended the stream, if one did (taken: a second call returns `None`).
    fn take_error(&mut self) -> Option<IngestError>;
    /// Calls `reporter` with each message as it is recorded in [`Diagnostics::first_errors`] or
    /// [`Diagnostics::warnings`] (e.g. to print it to stderr at once).
    fn set_reporter(&mut self, reporter: gradtone_frame::Report);
}

/// Implements `Iterator` for a type with [`FrameSource::next_record`].
macro_rules! frames_from_records {
    ($t:ty $(, $g:ident : $b:path)?) => {
        impl$(<$g: $b>)? Iterator for $t {
            type Item = gradtone_frame::Frame;
            fn next(&mut self) -> Option<gradtone_frame::Frame> {
                crate::FrameSource::next_record(self).map(|r| r.frame)
            }
        }
    };
}
pub(crate) use frames_from_records;

// Compiles the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
