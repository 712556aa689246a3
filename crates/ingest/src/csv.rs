//! [`csv_source`]: trajectory CSV files as a [`FrameSource`].

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use gradtone_sound::csv::CsvReader;

use crate::diag::{Diagnostics, Reporter, Tally};
use crate::error::IngestError;
use crate::jsonl::Record;
use crate::{FrameSource, frames_from_records};

/// Opens a trajectory CSV file (`step,loss,<name>,...`, see [`gradtone_sound::csv`]).
///
/// Unlike JSONL, a bad CSV row ends the stream with an error ([`FrameSource::take_error`]):
/// after a ragged row the columns of later rows cannot be trusted.
///
/// ```no_run
/// use gradtone_ingest::{csv_source, FrameSource};
/// let mut src = csv_source("trajectory.csv")?;
/// let frames: Vec<_> = src.by_ref().collect();
/// if let Some(e) = src.take_error() {
///     eprintln!("stopped early: {e}");
/// }
/// # Ok::<(), gradtone_ingest::IngestError>(())
/// ```
pub fn csv_source(path: impl AsRef<Path>) -> Result<CsvSource, IngestError> {
    let path = path.as_ref();
    Ok(CsvSource {
        inner: CsvReader::open(path)?,
        tally: Tally::new(path.display().to_string()),
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
        match self.inner.next()? {
            Ok(frame) => {
                self.tally.diag.frames += 1;
                Some(Record::from_frame(frame))
            }
            Err(e) => {
                // CsvReader ends after its first error.
                self.error = Some(e.into());
                None
            }
        }
    }

    fn diagnostics(&self) -> &Diagnostics {
        &self.tally.diag
    }

    fn take_error(&mut self) -> Option<IngestError> {
        self.error.take()
    }

    fn set_reporter(&mut self, reporter: Reporter) {
        self.tally.set_reporter(reporter);
    }
}

frames_from_records!(CsvSource);
