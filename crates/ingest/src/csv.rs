//! [`csv_source`]: trajectory CSV files (the format and its reader are `gradtone_csv`) as a
//! [`FrameSource`].

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use gradtone_csv::{CsvError, CsvReader};

use crate::diag::{Diagnostics, Tally};
use crate::error::IngestError;
use crate::jsonl::Record;
use crate::{FrameSource, frames_from_records};
use gradtone_frame::Report;

/// Opens a trajectory CSV file (`step,loss,<name>,...`, see [`gradtone_csv`] for the format).
///
/// Like JSONL, a bad row (a cell that is not a number, a wrong number of cells, not UTF-8) is
/// skipped, counted in [`Diagnostics::malformed`] and reported with its line; the rows after it
/// are read as usual (each row stands alone). Only an I/O error ends the stream
/// ([`FrameSource::take_error`]). A bad header is an error from `csv_source` itself.
///
/// ```no_run
/// use gradtone_ingest::{csv_source, FrameSource};
/// let mut src = csv_source("trajectory.csv")?;
/// let frames: Vec<_> = src.by_ref().collect();
/// if let Some(s) = src.diagnostics().summary() {
///     eprintln!("{s}");
/// }
/// # Ok::<(), gradtone_ingest::IngestError>(())
/// ```
pub fn csv_source(path: impl AsRef<Path>) -> Result<CsvSource, IngestError> {
    let path = path.as_ref();
    Ok(CsvSource {
        inner: CsvReader::open(path)?,
        tally: Tally::new(path.display().to_string()).unit("row"),
        error: None,
    })
}

/// The source [`csv_source`] returns.
pub struct CsvSource {
    inner: CsvReader<BufReader<File>>,
    tally: Tally,
    error: Option<IngestError>,
}

impl CsvSource {
    /// The header's column names, `step` first.
    pub fn names(&self) -> &[String] {
        self.inner.names()
    }
}

impl FrameSource for CsvSource {
    fn next_record(&mut self) -> Option<Record> {
        loop {
            match self.inner.next()? {
                Ok(frame) => {
                    self.tally.diag.frames += 1;
                    return Some(Record::from_frame(frame));
                }
                Err(CsvError::Field {
                    line,
                    column,
                    message,
                    ..
                }) => self
                    .tally
                    .malformed(format_args!("line {line}, column {column}"), &message),
                Err(CsvError::Format { line, message, .. }) => {
                    self.tally.malformed(format_args!("line {line}"), &message)
                }
                Err(e) => {
                    // An I/O error: CsvReader ends after it.
                    self.error = Some(e.into());
                    return None;
                }
            }
        }
    }

    fn diagnostics(&self) -> &Diagnostics {
        &self.tally.diag
    }

    fn take_error(&mut self) -> Option<IngestError> {
        self.error.take()
    }

    fn set_reporter(&mut self, reporter: Report) {
        self.tally.set_reporter(reporter);
    }
}

frames_from_records!(CsvSource);
