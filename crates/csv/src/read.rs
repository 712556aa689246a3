//! Reading trajectory CSV files ([`CsvReader`]); the format is described in the
//! [crate docs](crate).
//!
//! The `csv` crate does the parsing: csv-core splits the header (it says how many bytes each
//! name took, so a quoted name keeps its spaces and an unquoted one is trimmed) and a
//! `csv::Reader` reads the rows. Kept by hand is only what bounds the input, which csv has no
//! setting for ([`Bounded`]): a record is held whole in memory, so a line is cut at
//! [`MAX_ROW_BYTES`] and the rest skipped unread; each row is checked on its own so a damaged
//! one is skipped and counted with its line number while the good ones are kept.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use csv::{ByteRecord, Terminator};
use csv_core::ReadFieldResult;
use gradtone_frame::{Frame, Named};

use crate::{CsvError, MAX_ROW_BYTES, clip, column_kind};

/// Reading the header: where [`Bounded`] ends its input.
#[derive(Default)]
struct HeaderState {
    /// Inside a quoted name (an odd number of quotes so far): a line break does not end it.
    open_quote: bool,
    /// Bytes of header passed so far.
    len: usize,
    /// The header's line break was passed: the input ends here for the header's reader.
    ended: bool,
    /// The header is longer than [`MAX_ROW_BYTES`]: the input ends here.
    too_long: bool,
}

/// The input as the `csv` crate reads it, bounded. csv holds a whole record in memory and has no
/// limit, so a line longer than [`MAX_ROW_BYTES`] is passed only up to the limit, the rest
/// skipped unread (its line number and length noted for the reader to report), so a file
/// without line breaks cannot fill the memory. Input that does not end with a line break gets
/// one, so every row ends with one (the reader counts lines by them). While reading the header
/// the input ends right after it (the first line break outside quotes), so the rows are read
/// from there by a reader of their own, without quoting.
struct Bounded<R> {
    inner: R,
    /// Line breaks passed so far.
    lines: u64,
    /// Bytes of the current line passed (and then skipped) so far.
    line_len: usize,
    /// Skipping the rest of a line that is too long.
    skipping: bool,
    /// The lines that were too long and not yet reported: (line number, length in bytes).
    too_long: VecDeque<(u64, usize)>,
    /// The inner reader ended (and the last line break was passed).
    eof: bool,
    header: Option<HeaderState>,
}

impl<R: BufRead> Bounded<R> {
    /// The line break at the end of the input, once, when the last line lacks it.
    fn end(&mut self) -> usize {
        if self.eof {
            return 0;
        }
        self.eof = true;
        if self.skipping {
            self.skipping = false;
            self.too_long.push_back((self.lines + 1, self.line_len));
        } else if self.line_len == 0 {
            return 0;
        }
        self.line_len = 0;
        self.lines += 1;
        1
    }
}

impl<R: BufRead> Read for Bounded<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.header.as_ref().is_some_and(|h| h.ended || h.too_long) {
                return Ok(0);
            }
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                let n = self.end();
                if n > 0 {
                    out[0] = b'\n';
                }
                return Ok(n);
            }
            let line_break = memchr::memchr(b'\n', chunk);
            if self.skipping {
                let n = line_break.unwrap_or(chunk.len());
                self.line_len += n;
                self.inner.consume(n);
                if line_break.is_some() {
                    // The line break itself is passed: the row reader sees the cut line end.
                    self.skipping = false;
                    self.too_long.push_back((self.lines + 1, self.line_len));
                }
                continue;
            }
            if let Some(h) = &mut self.header {
                // Up to and with the first line break outside quotes.
                let mut take = 0;
                for &b in chunk.iter().take(out.len()) {
                    take += 1;
                    if b == b'"' {
                        h.open_quote = !h.open_quote;
                    } else if b == b'\n' {
                        self.lines += 1;
                        self.line_len = 0;
                        if !h.open_quote {
                            h.ended = true;
                            break;
                        }
                        continue;
                    }
                    self.line_len += 1;
                }
                h.len += take;
                if h.len > MAX_ROW_BYTES + 1 {
                    h.too_long = true;
                    return Ok(0);
                }
                out[..take].copy_from_slice(&chunk[..take]);
                self.inner.consume(take);
                return Ok(take);
            }
            // Past the limit once a skipped line ends (its length is noted): no room.
            let room = MAX_ROW_BYTES.saturating_sub(self.line_len);
            let content = line_break.unwrap_or(chunk.len());
            if content > room && room == 0 {
                self.skipping = true;
                continue;
            }
            let take = if content > room {
                room
            } else {
                line_break.map_or(content, |i| i + 1)
            }
            .min(out.len());
            out[..take].copy_from_slice(&chunk[..take]);
            self.inner.consume(take);
            if line_break == Some(take - 1) {
                self.lines += 1;
                self.line_len = 0;
            } else {
                self.line_len += take;
            }
            return Ok(take);
        }
    }
}

/// Splits a header into names (each with whether it was quoted) with csv-core, which says how
/// many bytes each name took: RFC 4180 quotes, `""` for a quote inside. `Err` holds the reason
/// when a quote is misplaced.
fn split_header(text: &str) -> Result<Vec<(String, bool)>, String> {
    let bytes = text.as_bytes();
    let mut reader = csv_core::ReaderBuilder::new()
        .terminator(csv_core::Terminator::Any(b'\n'))
        .build();
    // A name is never longer than its text.
    let mut out = vec![0u8; bytes.len() + 1];
    let (mut input, mut start, mut used, mut out_len) = (bytes, 0, 0, 0);
    let mut names = Vec::new();
    loop {
        let (result, n_in, n_out) = reader.read_field(input, &mut out[out_len..]);
        input = &input[n_in..];
        used += n_in;
        out_len += n_out;
        let record_end = match result {
            // All the text is given at once: the next call (with none) ends the last name.
            ReadFieldResult::InputEmpty => continue,
            ReadFieldResult::OutputFull => return Err("a name is longer than the header".into()),
            ReadFieldResult::End => break,
            ReadFieldResult::Field { record_end } => record_end,
        };
        let mut raw = &text[start..used];
        if !record_end {
            raw = raw.strip_suffix(',').unwrap_or(raw);
        }
        let name = String::from_utf8_lossy(&out[..out_len]).into_owned();
        (start, out_len) = (used, 0);
        if let Some(quoted) = raw.strip_prefix('"') {
            let spaces = after_closing_quote(quoted)?;
            names.push((name[..name.len() - spaces].to_string(), true));
        } else if raw.contains('"') {
            // csv-core reads a quote after spaces as text, as RFC 4180 does.
            let hint = if raw.trim_start_matches([' ', '\t']).starts_with('"') {
                " (a quoted name starts right after the comma)"
            } else {
                ""
            };
            return Err(format!(
                "a quote inside the unquoted name {:?}{hint}",
                clip(raw.trim(), 40)
            ));
        } else {
            names.push((name.trim().to_string(), false));
        }
        // A line break ends csv-core's record only outside quotes, after a misplaced quote
        // (reported above): the header's one line ends only with its text.
        if record_end && input.is_empty() {
            break;
        }
    }
    Ok(names)
}

/// Checks a quoted name as written (`quoted`: after its opening quote): csv-core is lenient and
/// keeps text after the closing quote as part of the name, where only spaces may follow (a
/// damaged header is an error, not a name). Returns the number of those spaces.
fn after_closing_quote(quoted: &str) -> Result<usize, String> {
    let mut name = String::new();
    let mut chars = quoted.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            name.push(c);
        } else if chars.next_if(|&(_, c)| c == '"').is_some() {
            name.push('"');
        } else {
            let rest = &quoted[i + 1..];
            return match rest.trim_start_matches([' ', '\t']).chars().next() {
                Some(c) => Err(format!(
                    "unexpected {c:?} after the quoted name {:?}",
                    clip(&name, 40)
                )),
                None => Ok(rest.len()),
            };
        }
    }
    Err("a quoted name is not closed".into())
}

/// Streams [`Frame`]s from a CSV source, one per row.
///
/// An `Iterator<Item = Result<Frame, CsvError>>`. A bad row yields an error for that row
/// ([`CsvError::Field`] or [`CsvError::Format`], naming the line) and the reader goes on
/// with the next line; only an I/O error ends it.
///
/// ```
/// use gradtone_csv::CsvReader;
/// let text = "step,loss,conv1,fc1\n0,2.3,0.5,nan\n1,2.1,0.4,\n";
/// let mut r = CsvReader::new(text.as_bytes(), "inline.csv")?;
/// assert_eq!(r.names(), ["step", "loss", "conv1", "fc1"]);
/// let f = r.next().unwrap()?;
/// assert_eq!((f.step, f.loss(), f.value("conv1")), (0, Some(2.3), Some(0.5)));
/// let f = r.next().unwrap()?;
/// assert_eq!(f.value("fc1"), None, "an empty cell is a missing value");
/// # Ok::<(), gradtone_csv::CsvError>(())
/// ```
pub struct CsvReader<R: BufRead> {
    rows: csv::Reader<Bounded<R>>,
    row: ByteRecord,
    source: String,
    /// The header as written, `step` first.
    names: Vec<String>,
    /// For each column after `step`: the frame name and whether it is a loss.
    columns: Vec<(String, bool)>,
    /// Lines before the first row: the header's and the blank ones before it.
    header_lines: u64,
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

/// The header's text; an error message (and its line) when there is none, or it cannot be read
/// as one.
fn read_header<R: BufRead>(
    input: &mut Bounded<R>,
) -> Result<Result<String, (u64, String)>, CsvError> {
    loop {
        let first_line = input.lines + 1;
        input.header = Some(HeaderState::default());
        let mut bytes = Vec::new();
        let read = input.read_to_end(&mut bytes);
        let header = input.header.take().unwrap_or_default();
        read.map_err(|source| CsvError::Io {
            path: PathBuf::new(),
            source,
        })?;
        // The first problem in the file wins: a bad byte comes before the end of the header (a
        // character cut by the length limit is not one).
        if let Err(e) = std::str::from_utf8(&bytes)
            && !(header.too_long && e.error_len().is_none())
        {
            let at = e.valid_up_to();
            let line_start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
            let line = first_line + memchr::memchr_iter(b'\n', &bytes[..at]).count() as u64;
            let message = format!("not valid UTF-8 (bad byte at offset {})", at - line_start);
            return Ok(Err((line, message)));
        }
        let line = input.lines + u64::from(input.line_len > 0);
        let message = if header.too_long {
            format!("the header is longer than {MAX_ROW_BYTES} bytes")
        } else if bytes.is_empty() {
            "empty file: expected a header `step,...`".into()
        } else if header.open_quote {
            "the header ends inside a quoted name".into()
        } else if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            bytes.pop_if(|b| *b == b'\n');
            bytes.pop_if(|b| *b == b'\r');
            // Checked above.
            return Ok(Ok(String::from_utf8(bytes).unwrap_or_default()));
        };
        return Ok(Err((line, message)));
    }
}

impl<R: BufRead> CsvReader<R> {
    /// Reads the header from `reader`; `source_name` is used in error messages.
    pub fn new(reader: R, source_name: &str) -> Result<Self, CsvError> {
        let mut input = Bounded {
            inner: reader,
            lines: 0,
            line_len: 0,
            skipping: false,
            too_long: VecDeque::new(),
            eof: false,
            header: None,
        };
        let header = read_header(&mut input).map_err(|e| match e {
            CsvError::Io { source, .. } => CsvError::Io {
                path: PathBuf::from(source_name),
                source,
            },
            e => e,
        })?;
        let line = input.lines;
        let format_error = |message| CsvError::Format {
            file: source_name.to_string(),
            line,
            message,
        };
        let header = header.map_err(|(line, message)| CsvError::Format {
            file: source_name.to_string(),
            line,
            message,
        })?;
        // A UTF-8 byte-order mark (spreadsheet exports) is not part of the first name.
        let fields = split_header(header.trim_start_matches('\u{feff}')).map_err(format_error)?;
        if fields.first().map(|(n, _)| n.as_str()) != Some("step") {
            return Err(format_error(format!(
                "the first column must be `step`, found {:?}",
                clip(fields.first().map_or("", |(n, _)| n.as_str()), 40)
            )));
        }
        let mut seen: HashMap<(&str, bool), usize> = HashMap::with_capacity(fields.len());
        let mut columns = Vec::with_capacity(fields.len());
        for (i, (name, quoted)) in fields.iter().enumerate().skip(1) {
            if name.is_empty() && !quoted {
                return Err(format_error(format!("column {} has an empty name", i + 1)));
            }
            let (name, loss) = column_kind(name);
            if seen.insert((name, loss), i).is_some() {
                return Err(format_error(format!(
                    "column name {:?} appears twice",
                    clip(name, 40)
                )));
            }
            columns.push((name.to_string(), loss));
        }
        drop(seen);
        // Row cells are plain numbers: without quoting, a stray quote damages one row only
        // (with it, one would swallow the lines after it).
        let rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .quoting(false)
            .terminator(Terminator::Any(b'\n'))
            .from_reader(input);
        Ok(CsvReader {
            rows,
            row: ByteRecord::new(),
            source: source_name.to_string(),
            names: fields.into_iter().map(|(n, _)| n).collect(),
            columns,
            header_lines: line,
            done: false,
        })
    }

    /// The header's column names as written, `step` first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn format_error(&self, line: u64, message: String) -> CsvError {
        CsvError::Format {
            file: self.source.clone(),
            line,
            message,
        }
    }

    fn field_error(&self, line: u64, column: &str, message: String) -> CsvError {
        CsvError::Field {
            file: self.source.clone(),
            line,
            column: clip(column, 40),
            message,
        }
    }

    /// Parses the row just read, on line `line`.
    fn parse_row(&self, line: u64) -> Result<Frame, CsvError> {
        let mut offset = 0;
        for cell in &self.row {
            if let Err(e) = std::str::from_utf8(cell) {
                return Err(self.format_error(
                    line,
                    format!(
                        "not valid UTF-8 (bad byte at offset {})",
                        offset + e.valid_up_to()
                    ),
                ));
            }
            offset += cell.len() + 1;
        }
        // Checked above.
        let mut fields = self
            .row
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap_or_default().trim());
        let step_field = fields.next().unwrap_or("");
        let step = step_field.parse::<u64>().map_err(|_| {
            self.field_error(
                line,
                "step",
                format!("'{}' is not a non-negative integer", clip(step_field, 40)),
            )
        })?;
        let mut frame = Frame::new(step);
        let mut count = 1usize;
        // Columns first: `zip` must not take a field past the last column (it is counted below).
        for ((name, is_loss), field) in self.columns.iter().zip(fields.by_ref()) {
            count += 1;
            if field.is_empty() {
                // A value the step did not have.
                continue;
            }
            // Rust's parser already accepts "nan", "inf", "-inf", "infinity" in any case.
            let value = field.parse::<f64>().map_err(|_| {
                self.field_error(line, name, format!("'{}' is not a number", clip(field, 40)))
            })?;
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
            return Err(self.format_error(
                line,
                format!(
                    "{count} fields, but the header has {} columns",
                    self.columns.len() + 1
                ),
            ));
        }
        Ok(frame)
    }
}

impl<R: BufRead> Iterator for CsvReader<R> {
    type Item = Result<Frame, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.rows.read_byte_record(&mut self.row) {
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(e) => {
                    // An I/O error: nothing more can be read.
                    self.done = true;
                    let source = match e.into_kind() {
                        csv::ErrorKind::Io(e) => e,
                        other => std::io::Error::other(format!("{other:?}")),
                    };
                    return Some(Err(CsvError::Io {
                        path: PathBuf::from(&self.source),
                        source,
                    }));
                }
            }
            if self.done {
                break;
            }
            // Every row ends with a line break (see `Bounded`), which csv has counted.
            let line = self.header_lines + self.rows.position().line() - 1;
            let input = self.rows.get_mut();
            if input.too_long.front().is_some_and(|&(l, _)| l == line) {
                let len = input.too_long.pop_front().map_or(0, |(_, len)| len);
                return Some(Err(self.format_error(
                    line,
                    format!(
                        "line of {len} bytes is longer than the {} MiB limit; skipped unread",
                        MAX_ROW_BYTES >> 20
                    ),
                )));
            }
            if self.row.len() == 1 && self.row[0].iter().all(u8::is_ascii_whitespace) {
                // A blank line.
                continue;
            }
            return Some(self.parse_row(line));
        }
        None
    }
}

/// Reads a whole CSV trajectory file into frames (see the [crate docs](crate) for the format).
/// Strict: the first bad row is an error (use [`CsvReader`] to skip bad rows instead).
pub fn read_frames(path: &Path) -> Result<Vec<Frame>, CsvError> {
    CsvReader::open(path)?.collect()
}

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

    fn header_error(text: &[u8]) -> String {
        match CsvReader::new(text, "h.csv") {
            Ok(r) => format!("accepted: {:?}", r.names()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn malformed_quotes_in_the_header_are_errors_that_say_where() {
        let cases: [(&[u8], &str); 7] = [
            (
                b"step,\"a\"b\n",
                "h.csv line 1: unexpected 'b' after the quoted name \"a\"",
            ),
            (
                b"step,a\"b\"\n",
                "h.csv line 1: a quote inside the unquoted name \"a\\\"b\\\"\"",
            ),
            (
                b"step,\"a\n",
                "h.csv line 1: the header ends inside a quoted name",
            ),
            (
                b"step,\"a\"\"b\n0\n",
                "h.csv line 2: the header ends inside a quoted name",
            ),
            (
                b"step, \"a\",b\n",
                "h.csv line 1: a quote inside the unquoted name \"\\\"a\\\"\" (a quoted name \
                 starts right after the comma)",
            ),
            (
                b"step,\"a\n\xff\"\n",
                "h.csv line 2: not valid UTF-8 (bad byte at offset 0)",
            ),
            (b"step,,a\n", "h.csv line 1: column 2 has an empty name"),
        ];
        for (text, want) in cases {
            assert_eq!(
                header_error(text),
                want,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn quoted_names_keep_what_they_hold_and_unquoted_ones_are_trimmed() -> Result<(), CsvError> {
        // A blank line inside a quoted name is part of it, not a blank line to skip.
        let text = "\u{feff}step , loss ,\" a\"\"b \" ,\"x\r\n\r\ny\",\"\"\r\n0,1,2,3,4\r\n";
        let r = CsvReader::new(text.as_bytes(), "q.csv")?;
        assert_eq!(r.names(), ["step", "loss", " a\"b ", "x\r\n\r\ny", ""]);
        let frames: Vec<Frame> = r.collect::<Result<_, _>>()?;
        assert_eq!(frames[0].loss(), Some(1.0));
        assert_eq!(frames[0].value("x\r\n\r\ny"), Some(3.0));
        Ok(())
    }

    #[test]
    fn a_header_without_end_is_an_error_after_the_limit() {
        let mut text = b"step,\"".to_vec();
        text.resize(MAX_ROW_BYTES + 100, b'a');
        let e = header_error(&text);
        assert!(e.contains("the header is longer than"), "{e}");
    }

    #[test]
    fn a_row_over_the_limit_is_skipped_and_the_next_one_read() -> Result<(), CsvError> {
        // The last line has no line break and is too long.
        let mut text = b"step,a\n0,1\n".to_vec();
        text.extend(std::iter::repeat_n(b' ', MAX_ROW_BYTES + 1));
        text.extend(b"\n1,2\n");
        text.extend(std::iter::repeat_n(b'9', MAX_ROW_BYTES + 7));
        let got: Vec<String> = CsvReader::new(text.as_slice(), "big.csv")?
            .map(|r| r.map_or_else(|e| e.to_string(), |f| format!("step {}", f.step)))
            .collect();
        let limit = MAX_ROW_BYTES >> 20;
        assert_eq!(
            got,
            [
                "step 0".to_string(),
                format!(
                    "big.csv line 3: line of {} bytes is longer than the {limit} MiB limit; \
                     skipped unread",
                    MAX_ROW_BYTES + 1
                ),
                "step 1".to_string(),
                format!(
                    "big.csv line 5: line of {} bytes is longer than the {limit} MiB limit; \
                     skipped unread",
                    MAX_ROW_BYTES + 7
                ),
            ]
        );
        Ok(())
    }
}
