//! [`CsvFile`]: the run's frames as a CSV file, a [`Sink`], opened from its options
//! ([`CsvArgs`], an [`Output`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gradtone_frame::{
    AlarmEvent, Frame, Opening, Output, OutputError, OutputFile, Report, Sink, SinkError,
    check_file,
};

use crate::CsvError;
use crate::write::{CsvWriter, MAX_COLUMNS};

/// The run's frames as a CSV file (`step,loss…,value…`), readable by `render`: written beside
/// its path and put there at the first frame (an [`OutputFile`]), so a run without frames
/// leaves an existing file as it was.
pub struct CsvFile {
    output: OutputFile,
    path: PathBuf,
    // Until the first frame: the header needs the frame's names.
    file: Option<File>,
    writer: Option<CsvWriter<File>>,
    overflow_told: bool,
    /// Where the names that do not fit are reported.
    report: Option<Report>,
    /// When the rows were last flushed to the file.
    flushed: Instant,
}

/// How often a CSV's rows reach the file: a process killed mid-run (`kill -9`) loses at most
/// the rows of this last moment, as the WAV keeps its header current.
const CSV_FLUSH_EVERY: Duration = Duration::from_millis(500);

impl CsvFile {
    /// Creates the file beside `path` now, so a bad path fails before any work.
    pub fn create(path: &Path) -> Result<Self, CsvError> {
        let (output, file) = OutputFile::create(path).map_err(|source| CsvError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(CsvFile {
            output,
            path: path.to_path_buf(),
            file: Some(file),
            writer: None,
            overflow_told: false,
            report: None,
            flushed: Instant::now(),
        })
    }

    /// Says through `report` (once) that a run had more names than the file's columns.
    pub fn reporting_to(mut self, report: Report) -> Self {
        self.report = Some(report);
        self
    }

    fn io_err(&self, source: std::io::Error) -> CsvError {
        CsvError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl Sink for CsvFile {
    fn describe(&self) -> String {
        format!("CSV file {}", self.path.display())
    }

    fn frame(&mut self, frame: &Frame, _alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        if let Some(file) = self.file.take() {
            let losses: Vec<&str> = frame.losses.iter().map(|v| v.name.as_str()).collect();
            let values: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
            let mut w = CsvWriter::with_file(file, &self.path, &losses, &values)?;
            w.write(frame)?;
            w.flush()?;
            self.writer = Some(w);
            // The first row is on disk: now the file may replace what was at the path.
            self.output.place().map_err(|e| self.io_err(e))?;
        } else if let Some(w) = &mut self.writer {
            w.write(frame)?;
            if self.flushed.elapsed() >= CSV_FLUSH_EVERY {
                w.flush()?;
                self.flushed = Instant::now();
            }
        }
        if let Some(w) = &mut self.writer
            && !self.overflow_told
            && let (n, Some(first)) = w.overflow()
            && n > 0
        {
            // Never silent: said once here, counted in the summary line.
            self.overflow_told = true;
            if let Some(report) = &self.report {
                report(&format!(
                    "warning: {}: more than {MAX_COLUMNS} distinct names; later ones (first: \
                     {first:?}) are counted, not written (--tensorboard or the JSONL stream \
                     keep them)",
                    self.path.display(),
                ));
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        let overflow = match self.writer {
            Some(w) => {
                let (n, _) = w.overflow();
                w.finish()?;
                n
            }
            // Nothing to write: an existing file stays as it was.
            None => return Ok(format!("{} (no frames: not written)", self.path.display())),
        };
        Ok(if overflow == 0 {
            self.path.display().to_string()
        } else {
            format!(
                "{} ({overflow} values past {MAX_COLUMNS} columns not written)",
                self.path.display()
            )
        })
    }

    fn discard(self: Box<Self>) {
        let CsvFile { output, writer, .. } = *self;
        drop(writer);
        output.discard();
    }
}

/// The CSV output's options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CsvArgs {
    // The doc is the flag's --help text: `<values>` there is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    /// Write one row per step (step,loss,<values>...) to this CSV file.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub csv: Option<PathBuf>,
}

impl<C: ?Sized> Output<C> for CsvArgs {
    fn precheck(&self) -> Result<(), OutputError> {
        check_file(self.csv.as_deref(), "CSV file")
    }

    fn open(&self, at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(p) = &self.csv else { return Ok(None) };
        let csv = CsvFile::create(p).map_err(|e| OutputError::open("CSV file", e))?;
        Ok(Some(Box::new(csv.reporting_to(at.report.clone()))))
    }

    fn keeps(&self) -> bool {
        self.csv.is_some()
    }
}
