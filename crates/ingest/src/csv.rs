//! Trajectory CSV files: one [`Frame`] per row. [`CsvReader`] reads them (here);
//! `gradtone_sound::csv::CsvWriter` writes them; [`csv_source`] is the reader as a
//! [`FrameSource`].
//!
//! Format (what the PyTorch reference writes): a header `step,loss,<name1>,<name2>,...` and one row
//! per step, e.g. `0,2.3001,0.0123,...`. The first column must be `step` (a non-negative integer).
//!
//! **Which columns are losses.** A header name of the form `loss:NAME` is the loss `NAME`, and
//! `value:NAME` the value `NAME`; any other name is a loss when it starts with `loss` (the
//! reference files' rule), else a value. The writer writes a name plainly when that rule
//! already gives its kind (`loss`, `conv1`) and with the prefix otherwise (a per-rank loss
//! `r0/loss` is written `loss:r0/loss`, a value `loss_ce/conv1` is written
//! `value:loss_ce/conv1`), so every name the stream format allows reads back as itself.
//! Header names may be quoted as in RFC 4180 (`"a,b"`, `""` for a quote inside); unquoted names
//! are trimmed.
//!
//! **Cells.** Numbers are anything Rust's `f64` parser accepts plus Python's spellings `nan`,
//! `inf`, `-inf` (case-insensitive). An **empty cell is a value the step did not have** (it is
//! left out of that frame), which is not the same as `nan` (a diverged value). Row cells are
//! plain (no quoting); surrounding spaces and a trailing `\r` are ignored, blank lines are
//! skipped.
//!
//! **Damage.** A bad row (wrong number of cells, a cell that is not a number, not UTF-8, longer
//! than [`MAX_ROW_BYTES`](gradtone_frame::csv_format::MAX_ROW_BYTES)) is reported as an error for that row only: [`CsvReader`] goes on with
//! the next line, so a caller can skip and count it and keep the good rows.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use gradtone_frame::csv_format::{MAX_ROW_BYTES, column_kind};
use gradtone_frame::{Frame, Named};

use crate::diag::{Diagnostics, Reporter, Tally};
use crate::error::IngestError;
use crate::jsonl::Record;
use crate::{FrameSource, frames_from_records};

pub use crate::error::CsvError;

/// Cuts `s` to at most `max` characters for a message (names and cells can be megabytes long).
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

/// Parses one numeric cell: `Ok(None)` when empty (missing), `Err(())` when not a number.
fn parse_number(field: &str) -> Result<Option<f64>, ()> {
    if field.is_empty() {
        return Ok(None);
    }
    // Rust's parser already accepts "nan", "inf", "-inf", "infinity" in any case.
    field.parse::<f64>().map(Some).map_err(|_| ())
}

/// What [`read_line`] found.
enum Line {
    /// End of input.
    Eof,
    /// A line is in the buffer (without its line ending).
    Text,
    /// A line longer than the limit was skipped; its length in bytes.
    TooLong(usize),
}

/// Reads one line into `buf` (cleared first), holding at most `max` bytes of it. A `\r` before
/// the `\n` is removed when `strip_cr`.
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
    strip_cr: bool,
) -> std::io::Result<Line> {
    buf.clear();
    let mut len = 0usize;
    let mut any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, found, used) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], true, i + 1),
            None => (chunk, false, chunk.len()),
        };
        len += part.len();
        if len <= max {
            buf.extend_from_slice(part);
        }
        reader.consume(used);
        if found {
            break;
        }
    }
    if !any {
        return Ok(Line::Eof);
    }
    if len > max {
        buf.clear();
        return Ok(Line::TooLong(len));
    }
    if strip_cr && buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Line::Text)
}

/// Splits a header into names, honouring RFC 4180 quotes; each name with whether it was quoted.
/// `Err` holds the reason when a quote is malformed. Quotes left open at the end are reported
/// by `open` so the caller can append the next line.
fn split_header(text: &str) -> Result<Vec<(String, bool)>, String> {
    let mut names = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        // Skip spaces before a quoted name.
        let mut field = String::new();
        let mut lead = String::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == '\t' {
                lead.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted name is not closed".into()),
                }
            }
            while let Some(&c) = chars.peek() {
                if c == ' ' || c == '\t' {
                    chars.next();
                } else {
                    break;
                }
            }
            match chars.next() {
                None => {
                    names.push((field, true));
                    return Ok(names);
                }
                Some(',') => names.push((field, true)),
                Some(c) => {
                    return Err(format!(
                        "unexpected {c:?} after the quoted name {:?}",
                        clip(&field, 40)
                    ));
                }
            }
        } else {
            field.push_str(&lead);
            let mut ended = true;
            for c in chars.by_ref() {
                if c == ',' {
                    ended = false;
                    break;
                }
                field.push(c);
            }
            if field.contains('"') {
                return Err(format!(
                    "a quote inside the unquoted name {:?}",
                    clip(field.trim(), 40)
                ));
            }
            names.push((field.trim().to_string(), false));
            if ended {
                return Ok(names);
            }
        }
    }
}

/// Whether `text` ends inside an open quote (an odd number of quotes: `""` escapes come in
/// pairs), so the header goes on on the next line.
fn quote_open(text: &str) -> bool {
    text.bytes().filter(|&b| b == b'"').count() % 2 == 1
}

/// Streams [`Frame`]s from a CSV source, one per row.
///
/// An `Iterator<Item = Result<Frame, CsvError>>`. A bad row yields an error for that row
/// ([`CsvError::Csv`] or [`CsvError::Format`], naming the line) and the reader goes on
/// with the next line; only an I/O error ends it.
///
/// ```
/// use gradtone_ingest::csv::CsvReader;
/// let text = "step,loss,conv1,fc1\n0,2.3,0.5,nan\n1,2.1,0.4,\n";
/// let mut r = CsvReader::new(text.as_bytes(), "inline.csv")?;
/// assert_eq!(r.names(), ["step", "loss", "conv1", "fc1"]);
/// let f = r.next().unwrap()?;
/// assert_eq!((f.step, f.loss(), f.value("conv1")), (0, Some(2.3), Some(0.5)));
/// let f = r.next().unwrap()?;
/// assert_eq!(f.value("fc1"), None, "an empty cell is a missing value");
/// # Ok::<(), gradtone_ingest::csv::CsvError>(())
/// ```
pub struct CsvReader<R: BufRead> {
    reader: R,
    source: String,
    /// The header as written, `step` first.
    names: Vec<String>,
    /// For each column after `step`: the frame name and whether it is a loss.
    columns: Vec<(String, bool)>,
    line_no: u64,
    buf: Vec<u8>,
    done: bool,
}

impl CsvReader<BufReader<File>> {
    /// Opens a CSV file and reads its header. Errors name the path.
    pub fn open(path: &Path) -> Result<Self, CsvError> {
        let file = File::open(path).map_err(|source| CsvError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        CsvReader::new(BufReader::new(file), &path.display().to_string())
    }
}

impl<R: BufRead> CsvReader<R> {
    /// Reads the header from `reader`; `source_name` is used in error messages.
    pub fn new(reader: R, source_name: &str) -> Result<Self, CsvError> {
        let mut r = CsvReader {
            reader,
            source: source_name.to_string(),
            names: Vec::new(),
            columns: Vec::new(),
            line_no: 0,
            buf: Vec::new(),
            done: false,
        };
        let mut header = String::new();
        loop {
            let first = header.is_empty();
            // A `\r` that ends a header line inside an open quote belongs to the name.
            let line = match r.next_line(false)? {
                None if first => {
                    return Err(r.format_error("empty file: expected a header `step,...`".into()));
                }
                None => return Err(r.format_error("the header ends inside a quoted name".into())),
                Some(Err(e)) => return Err(e),
                Some(Ok(text)) => text,
            };
            if !first {
                header.push('\n');
            }
            header.push_str(&line);
            if header.len() > MAX_ROW_BYTES {
                return Err(
                    r.format_error(format!("the header is longer than {MAX_ROW_BYTES} bytes"))
                );
            }
            if !quote_open(&header) {
                break;
            }
        }
        if header.ends_with('\r') {
            header.pop();
        }
        // A UTF-8 byte-order mark (spreadsheet exports) is not part of the first name.
        let header = header.trim_start_matches('\u{feff}');
        let fields = split_header(header).map_err(|m| r.format_error(m))?;
        if fields.first().map(|(n, _)| n.as_str()) != Some("step") {
            return Err(r.format_error(format!(
                "the first column must be `step`, found {:?}",
                clip(fields.first().map_or("", |(n, _)| n.as_str()), 40)
            )));
        }
        let mut seen: HashMap<(&str, bool), usize> = HashMap::with_capacity(fields.len());
        let mut columns = Vec::with_capacity(fields.len());
        for (i, (name, quoted)) in fields.iter().enumerate().skip(1) {
            if name.is_empty() && !quoted {
                return Err(r.format_error(format!("column {} has an empty name", i + 1)));
            }
            let (name, loss) = column_kind(name);
            if seen.insert((name, loss), i).is_some() {
                return Err(
                    r.format_error(format!("column name {:?} appears twice", clip(name, 40)))
                );
            }
            columns.push((name.to_string(), loss));
        }
        drop(seen);
        r.columns = columns;
        r.names = fields.into_iter().map(|(n, _)| n).collect();
        Ok(r)
    }

    /// The header's column names as written, `step` first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The next non-blank line (without line ending); `None` at the end; `Some(Err)` for a line
    /// that is too long or not UTF-8 (already skipped).
    fn next_line(&mut self, strip_cr: bool) -> Result<Option<Result<String, CsvError>>, CsvError> {
        loop {
            let got = read_line(&mut self.reader, &mut self.buf, MAX_ROW_BYTES, strip_cr).map_err(
                |source| CsvError::Io {
                    path: PathBuf::from(&self.source),
                    source,
                },
            )?;
            match got {
                Line::Eof => return Ok(None),
                Line::TooLong(len) => {
                    self.line_no += 1;
                    return Ok(Some(Err(self.format_error(format!(
                        "line of {len} bytes is longer than the {} MiB limit; skipped unread",
                        MAX_ROW_BYTES >> 20
                    )))));
                }
                Line::Text => {
                    self.line_no += 1;
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Ok(Some(match std::str::from_utf8(&self.buf) {
                        Ok(s) => Ok(s.to_string()),
                        Err(e) => Err(self.format_error(format!(
                            "not valid UTF-8 (bad byte at offset {})",
                            e.valid_up_to()
                        ))),
                    }));
                }
            }
        }
    }

    fn format_error(&self, message: String) -> CsvError {
        CsvError::Format {
            file: self.source.clone(),
            line: self.line_no,
            message,
        }
    }

    fn field_error(&self, column: &str, message: String) -> CsvError {
        CsvError::Field {
            file: self.source.clone(),
            line: self.line_no,
            column: clip(column, 40),
            message,
        }
    }

    /// Parses one row.
    fn parse_row(&self, row: &str) -> Result<Frame, CsvError> {
        let mut fields = row.split(',').map(str::trim);
        let step_field = fields.next().unwrap_or("");
        let step = step_field.parse::<u64>().map_err(|_| {
            self.field_error(
                "step",
                format!("'{}' is not a non-negative integer", clip(step_field, 40)),
            )
        })?;
        let mut frame = Frame::new(step);
        let mut count = 1usize;
        // Columns first: `zip` must not take a field past the last column (it is counted below).
        for ((name, is_loss), field) in self.columns.iter().zip(fields.by_ref()) {
            count += 1;
            let value = parse_number(field).map_err(|()| {
                self.field_error(name, format!("'{}' is not a number", clip(field, 40)))
            })?;
            let Some(value) = value else { continue };
            let named = Named {
                name: name.clone(),
                value,
            };
            if *is_loss {
                frame.losses.push(named);
            } else {
                frame.values.push(named);
            }
        }
        let count = count + fields.count();
        if count != self.columns.len() + 1 {
            return Err(self.format_error(format!(
                "{count} fields, but the header has {} columns",
                self.columns.len() + 1
            )));
        }
        Ok(frame)
    }
}

impl<R: BufRead> Iterator for CsvReader<R> {
    type Item = Result<Frame, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_line(true) {
            Ok(None) => {
                self.done = true;
                None
            }
            Ok(Some(Ok(row))) => Some(self.parse_row(&row)),
            Ok(Some(Err(e))) => Some(Err(e)),
            Err(e) => {
                // An I/O error: nothing more can be read.
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads a whole CSV trajectory file into frames (see the module docs for the format). Strict:
/// the first bad row is an error (use [`CsvReader`] to skip bad rows instead).
pub fn read_frames(path: &Path) -> Result<Vec<Frame>, CsvError> {
    CsvReader::open(path)?.collect()
}

/// Opens a trajectory CSV file (`step,loss,<name>,...`, see the [module docs](self)).
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

    fn set_reporter(&mut self, reporter: Reporter) {
        self.tally.set_reporter(reporter);
    }
}

frames_from_records!(CsvSource);

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(text: &str) -> Result<Vec<Frame>, CsvError> {
        CsvReader::new(text.as_bytes(), "traj.csv")?.collect()
    }

    #[test]
    fn reads_reference_style_rows() -> Result<(), CsvError> {
        let frames = read_str(
            "step,loss,conv1,conv2\r\n0,2.3410418033599854,0.24540574848651886,1e-3\r\n\n1,NaN,-INF,\n",
        )?;
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].step, 0);
        assert_eq!(frames[0].loss(), Some(2.3410418033599854));
        assert_eq!(frames[0].value("conv1"), Some(0.24540574848651886));
        assert_eq!(frames[0].value("conv2"), Some(1e-3));
        let names: Vec<_> = frames[0].values.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["conv1", "conv2"]);
        assert!(frames[1].loss().is_some_and(f64::is_nan));
        assert_eq!(frames[1].value("conv1"), Some(f64::NEG_INFINITY));
        assert_eq!(frames[1].value("conv2"), None, "empty is missing, not NaN");
        assert_eq!(frames[1].values.len(), 1);
        Ok(())
    }

    #[test]
    fn loss_prefixed_columns_are_losses_in_order() -> Result<(), CsvError> {
        let f = &read_str("step,a,loss_val,loss,b\n4,1,2,3,4\n")?[0];
        let losses: Vec<_> = f
            .losses
            .iter()
            .map(|n| (n.name.as_str(), n.value))
            .collect();
        let values: Vec<_> = f
            .values
            .iter()
            .map(|n| (n.name.as_str(), n.value))
            .collect();
        assert_eq!(losses, [("loss_val", 2.0), ("loss", 3.0)]);
        assert_eq!(values, [("a", 1.0), ("b", 4.0)]);
        Ok(())
    }

    #[test]
    fn bad_rows_are_errors_one_by_one_and_reading_goes_on() -> Result<(), CsvError> {
        let mut text = String::from("step,loss,a\n0,1,2\n1,x,2\n2,1\n");
        text.push_str(&"9".repeat(MAX_ROW_BYTES + 10));
        text.push_str("\n3,1,\u{0}\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"4,\xff,1\n5,0.5,0.25\n");
        let results: Vec<_> = CsvReader::new(bytes.as_slice(), "t.csv")?.collect();
        let lines: Vec<Option<u64>> = results
            .iter()
            .map(|r| match r {
                Err(CsvError::Field { line, .. } | CsvError::Format { line, .. }) => Some(*line),
                _ => None,
            })
            .collect();
        assert_eq!(
            lines,
            [None, Some(3), Some(4), Some(5), Some(6), Some(7), None]
        );
        let last = results.last().and_then(|r| r.as_ref().ok()).map(|f| f.step);
        assert_eq!(last, Some(5));
        for r in &results {
            if let Err(e) = r {
                assert!(e.to_string().len() < 300, "bounded message: {e}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_huge_header_is_read_in_linear_time() -> Result<(), CsvError> {
        let n = 100_000;
        let mut text = String::from("step");
        for i in 0..n {
            text.push_str(&format!(",v{i}"));
        }
        text.push_str("\n0");
        for _ in 0..n {
            text.push_str(",1");
        }
        text.push('\n');
        let frames = read_str(&text)?;
        assert_eq!(frames[0].values.len(), n);
        Ok(())
    }

    #[test]
    fn bad_number_names_file_line_and_column() {
        let err = read_str("step,loss,conv1,fc1\n0,1,2,3\n\n1,1,2,abc\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("traj.csv line 4, column fc1: 'abc' is not a number")
        );
        let err = read_str("step,loss\n-1,2\n").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("traj.csv line 2, column step: '-1' is not a non-negative integer")
        );
    }

    #[test]
    fn missing_step_column_is_an_error() {
        for text in ["loss,conv1\n1,2\n", "conv1,step\n1,2\n", "", "\n\n"] {
            let r = CsvReader::new(text.as_bytes(), "traj.csv");
            match r {
                Err(CsvError::Format { line, message, .. }) => {
                    assert!(line <= 2, "{text:?}: line {line}");
                    assert!(message.contains("step"), "{text:?}: {message}");
                }
                Err(e) => panic!("{text:?}: wrong error {e}"),
                Ok(_) => panic!("{text:?}: accepted a header without `step` first"),
            }
        }
    }

    #[test]
    fn ragged_row_is_an_error_with_line_and_the_next_row_is_read() {
        let mut r = match CsvReader::new("step,loss,a\n0,1,2\n1,1\n2,1,2\n".as_bytes(), "t.csv") {
            Ok(r) => r,
            Err(e) => panic!("header rejected: {e}"),
        };
        assert!(matches!(r.next(), Some(Ok(_))));
        match r.next() {
            Some(Err(CsvError::Format { line, message, .. })) => {
                assert_eq!(line, 3);
                assert!(message.contains("2 fields"), "{message}");
            }
            other => panic!("expected a format error, got {other:?}"),
        }
        assert!(
            matches!(r.next(), Some(Ok(f)) if f.step == 2),
            "reading goes on"
        );
        assert!(r.next().is_none());
        // Too many fields is just as wrong.
        assert!(read_str("step,loss\n0,1,2\n").is_err());
    }

    #[test]
    fn duplicate_header_is_an_error() {
        assert!(read_str("step,a,a\n0,1,2\n").is_err());
        assert!(read_str("step,a,\n0,1,2\n").is_err());
    }
}
