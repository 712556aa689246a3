//! The trajectory CSV format of gradtone, its one home: [`CsvReader`] reads it, [`CsvWriter`]
//! writes it and [`CsvFile`] is the writer as a [`Sink`](gradtone_frame::Sink). It depends on
//! the frame core (`gradtone-frame`) and the `csv` crate only.
//!
//! **Format** (what the PyTorch reference writes): a header `step,loss,<name1>,<name2>,...` and
//! one row per step, e.g. `0,2.3001,0.0123,...`. The first column must be `step` (a
//! non-negative integer).
//!
//! **Which columns are losses** is the rule of [`column_kind`]: a header name `loss:NAME` is the
//! loss `NAME`, and `value:NAME` the value `NAME`; any other name is a loss when it starts with
//! `loss` (the reference files' rule), else a value. The writer writes a name plainly when that
//! rule already gives its kind (`loss`, `conv1`) and with the prefix otherwise (a per-rank loss
//! `r0/loss` is written `loss:r0/loss`, a value `loss_ce/conv1` is written
//! `value:loss_ce/conv1`), so every name the stream format allows reads back as itself. Header
//! names may be quoted as in RFC 4180 (`"a,b"`, `""` for a quote inside); unquoted names are
//! trimmed.
//!
//! **Cells.** Numbers are anything Rust's `f64` parser accepts plus Python's spellings `nan`,
//! `inf`, `-inf` (case-insensitive). An **empty cell is a value the step did not have** (it is
//! left out of that frame), which is not the same as `nan` (a diverged value). Row cells are
//! plain (no quoting); surrounding spaces and a trailing `\r` are ignored, blank lines are
//! skipped.
//!
//! **Damage.** A bad row (wrong number of cells, a cell that is not a number, not UTF-8, longer
//! than [`MAX_ROW_BYTES`]) is reported as an error for that row only: [`CsvReader`] goes on
//! with the next line, so a caller can skip and count it and keep the good rows.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod error;
mod read;
mod sink;
mod write;

pub use error::CsvError;
pub use read::{CsvReader, read_frames};
pub use sink::{CsvArgs, CsvFile};
pub use write::{CsvWriter, MAX_COLUMNS, MAX_HEADER_BYTES};

/// The longest row (or header) the reader reads, in bytes: a longer line is skipped unread (as
/// a bad row), so a file without line breaks cannot make it hold it all in memory. The writer
/// keeps its header to half of this.
pub const MAX_ROW_BYTES: usize = 16 << 20;

/// Header prefix of a loss column whose name alone would read back as a value.
pub const LOSS_PREFIX: &str = "loss:";
/// Header prefix of a value column whose name alone would read back as a loss.
pub const VALUE_PREFIX: &str = "value:";

/// What a header name stands for: the frame name and whether it is a loss. `loss:NAME` is the
/// loss `NAME` and `value:NAME` the value `NAME`; any other name is a loss when it starts with
/// `loss` (the reference files' rule), else a value.
///
/// ```
/// use gradtone_csv::column_kind;
/// assert_eq!(column_kind("loss_val"), ("loss_val", true));
/// assert_eq!(column_kind("conv1"), ("conv1", false));
/// assert_eq!(column_kind("loss:r0/loss"), ("r0/loss", true));
/// assert_eq!(column_kind("value:loss_ce/conv1"), ("loss_ce/conv1", false));
/// ```
pub fn column_kind(header_name: &str) -> (&str, bool) {
    if let Some(n) = header_name.strip_prefix(LOSS_PREFIX) {
        (n, true)
    } else if let Some(n) = header_name.strip_prefix(VALUE_PREFIX) {
        (n, false)
    } else {
        (header_name, header_name.starts_with("loss"))
    }
}

/// Cuts `s` to at most `max` characters for a message (names and cells can be megabytes long).
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}
