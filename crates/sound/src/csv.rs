//! Trajectory CSV files: one [`Frame`] per row.
//!
//! Format (what the PyTorch reference writes): a header `step,loss,<name1>,<name2>,...` and one row
//! per step, e.g. `0,2.3001,0.0123,...`. The first column must be `step` (a non-negative integer).
//!
//! **Which columns are losses.** A header name of the form `loss:NAME` is the loss `NAME`, and
//! `value:NAME` the value `NAME`; any other name is a loss when it starts with `loss` (the
//! reference files' rule), else a value. [`CsvWriter`] writes a name plainly when that rule
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
//! than [`MAX_ROW_BYTES`]) is reported as an error for that row only: [`CsvReader`] goes on with
//! the next line, so a caller can skip and count it and keep the good rows.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::SoundError;
use gradtone_frame::{Frame, Named};

/// The longest row (or header) [`CsvReader`] reads, in bytes: a longer line is skipped unread
/// (as a bad row), so a file without line breaks cannot make the reader hold it all in memory.
pub const MAX_ROW_BYTES: usize = 16 << 20;

/// The most columns [`CsvWriter`] writes (and at most [`MAX_HEADER_BYTES`] of names). A wide CSV repeats every column on every row, so a
/// stream whose names never repeat would grow the file with the square of its length: names
/// beyond this many are counted ([`CsvWriter::overflow`]) and not written.
pub const MAX_COLUMNS: usize = 4096;

/// Header prefix of a loss column whose name alone would read back as a value.
const LOSS_PREFIX: &str = "loss:";
/// Header prefix of a value column whose name alone would read back as a loss.
const VALUE_PREFIX: &str = "value:";

/// The reference files' rule: a column is a loss when its name starts with `loss`.
fn is_legacy_loss_name(name: &str) -> bool {
    name.starts_with("loss")
}

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

/// The most bytes of header [`CsvWriter`] writes (names beyond are counted in
/// [`CsvWriter::overflow`]): half of [`MAX_ROW_BYTES`], so its files always read back.
pub const MAX_HEADER_BYTES: usize = MAX_ROW_BYTES / 2;

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
/// An `Iterator<Item = Result<Frame, SoundError>>`. A bad row yields an error for that row
/// ([`SoundError::Csv`] or [`SoundError::CsvFormat`], naming the line) and the reader goes on
/// with the next line; only an I/O error ends it.
///
/// ```
/// use gradtone_sound::csv::CsvReader;
/// let text = "step,loss,conv1,fc1\n0,2.3,0.5,nan\n1,2.1,0.4,\n";
/// let mut r = CsvReader::new(text.as_bytes(), "inline.csv")?;
/// assert_eq!(r.names(), ["step", "loss", "conv1", "fc1"]);
/// let f = r.next().unwrap()?;
/// assert_eq!((f.step, f.loss(), f.value("conv1")), (0, Some(2.3), Some(0.5)));
/// let f = r.next().unwrap()?;
/// assert_eq!(f.value("fc1"), None, "an empty cell is a missing value");
/// # Ok::<(), gradtone_sound::SoundError>(())
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
    pub fn open(path: &Path) -> Result<Self, SoundError> {
        let file = File::open(path).map_err(|source| SoundError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        CsvReader::new(BufReader::new(file), &path.display().to_string())
    }
}

impl<R: BufRead> CsvReader<R> {
    /// Reads the header from `reader`; `source_name` is used in error messages.
    pub fn new(reader: R, source_name: &str) -> Result<Self, SoundError> {
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
            let (name, loss) = if let Some(n) = name.strip_prefix(LOSS_PREFIX) {
                (n, true)
            } else if let Some(n) = name.strip_prefix(VALUE_PREFIX) {
                (n, false)
            } else {
                (name.as_str(), is_legacy_loss_name(name))
            };
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
    fn next_line(
        &mut self,
        strip_cr: bool,
    ) -> Result<Option<Result<String, SoundError>>, SoundError> {
        loop {
            let got = read_line(&mut self.reader, &mut self.buf, MAX_ROW_BYTES, strip_cr).map_err(
                |source| SoundError::Io {
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

    fn format_error(&self, message: String) -> SoundError {
        SoundError::CsvFormat {
            file: self.source.clone(),
            line: self.line_no,
            message,
        }
    }

    fn field_error(&self, column: &str, message: String) -> SoundError {
        SoundError::Csv {
            file: self.source.clone(),
            line: self.line_no,
            column: clip(column, 40),
            message,
        }
    }

    /// Parses one row.
    fn parse_row(&self, row: &str) -> Result<Frame, SoundError> {
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
    type Item = Result<Frame, SoundError>;

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
pub fn read_frames(path: &Path) -> Result<Vec<Frame>, SoundError> {
    CsvReader::open(path)?.collect()
}

/// The header text of a column: the name, with a kind prefix when the legacy rule would read it
/// back as the other kind, and quoted when it holds a comma, a quote, a line break or
/// surrounding spaces.
fn header_name(name: &str, loss: bool) -> String {
    let plain = !name.is_empty()
        && name != "step"
        && is_legacy_loss_name(name) == loss
        && !name.starts_with(LOSS_PREFIX)
        && !name.starts_with(VALUE_PREFIX);
    let text = if plain {
        name.to_string()
    } else if loss {
        format!("{LOSS_PREFIX}{name}")
    } else {
        format!("{VALUE_PREFIX}{name}")
    };
    let needs_quotes = text.contains([',', '"', '\n', '\r'])
        || text.trim() != text
        || text.starts_with('\u{feff}');
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Formats one number the way [`CsvReader`] and Python's `float()` both read back exactly.
fn write_number(out: &mut String, v: f64) {
    use std::fmt::Write as _;
    if v.is_nan() {
        out.push_str("nan");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
    } else {
        // `{:?}` is the shortest round-trip form like `{}`, but switches to exponent notation for
        // very large or small magnitudes (a diverged norm of 1e38 stays 7 characters, not 39).
        // Writing to a String cannot fail.
        let _ = write!(out, "{v:?}");
    }
}

/// Writes [`Frame`]s as CSV rows: header `step,<loss names>,<value names>`, then one row per
/// frame.
///
/// Each row holds, for each column, the frame's loss/value of that name, and an **empty cell**
/// where the frame lacks it (missing is not NaN). A name first seen in a later frame becomes a
/// new column, placed after the name that precedes it in that frame, so that reading the file
/// back lists each frame's names in the order the frame had them (mappings sound values in
/// frame order) whenever the frames agree on one order. Rows are written at once (a follower
/// sees them, new columns at the end of the row), and [`finish`](Self::finish) rewrites the
/// file with every column in place and the earlier rows padded (one linear pass, only when
/// columns were added). Names beyond [`MAX_COLUMNS`] are counted in
/// [`overflow`](Self::overflow), never dropped without a word. Numbers use Rust's shortest
/// round-trip formatting; non-finite ones are spelled `nan`, `inf`, `-inf` as Python does, so
/// Python and [`CsvReader`] read back the exact same `f64`.
///
/// ```
/// use std::io::Cursor;
/// use gradtone_sound::{Frame, csv::CsvWriter};
/// let mut w = CsvWriter::new(Cursor::new(Vec::new()), &["loss"], &["conv1", "fc1"])?;
/// w.write(&Frame::new(0).with_loss("loss", 2.5).with_value("conv1", f64::INFINITY))?;
/// w.write(&Frame::new(1).with_value("conv1", f64::NAN).with_loss("r0/loss", 1.0))?;
/// let text = String::from_utf8(w.finish()?.into_inner()).unwrap();
/// // A new name is placed where its frame had it (first), the earlier row padded.
/// assert_eq!(text, "step,loss:r0/loss,loss,conv1,fc1\n0,,2.5,inf,\n1,1.0,,nan,\n");
/// # Ok::<(), gradtone_sound::SoundError>(())
/// ```
pub struct CsvWriter<W: Read + Write + Seek> {
    out: BufWriter<W>,
    path: PathBuf,
    /// Every column after `step`, in the order they were added (as rows are written): (name,
    /// is a loss).
    columns: Vec<(String, bool)>,
    /// The final order of the columns (indices into `columns`).
    order: Vec<usize>,
    loss_index: HashMap<String, usize>,
    value_index: HashMap<String, usize>,
    /// Columns in the header written at the start.
    header_columns: usize,
    /// Bytes of that header.
    header_bytes: u64,
    row: Vec<Option<f64>>,
    line: String,
    overflow: u64,
    first_overflow: Option<String>,
    /// Bytes of header the columns take so far.
    header_len: usize,
}

impl CsvWriter<File> {
    /// Creates (truncates) `path` and writes the header. Errors name the path.
    pub fn create(
        path: &Path,
        loss_names: &[&str],
        value_names: &[&str],
    ) -> Result<Self, SoundError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|source| SoundError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let mut w = CsvWriter::with_path(file, path.to_path_buf());
        w.start(loss_names, value_names)?;
        Ok(w)
    }
}

impl<W: Read + Write + Seek> CsvWriter<W> {
    /// Wraps `w` (written from its current start) and writes the header with these first
    /// columns. Any name is accepted (see the module docs for how names are written).
    pub fn new(w: W, loss_names: &[&str], value_names: &[&str]) -> Result<Self, SoundError> {
        let mut writer = CsvWriter::with_path(w, PathBuf::from("<csv output>"));
        writer.start(loss_names, value_names)?;
        Ok(writer)
    }

    fn with_path(w: W, path: PathBuf) -> Self {
        CsvWriter {
            out: BufWriter::new(w),
            path,
            columns: Vec::new(),
            order: Vec::new(),
            loss_index: HashMap::new(),
            value_index: HashMap::new(),
            header_columns: 0,
            header_bytes: 0,
            row: Vec::new(),
            line: String::new(),
            overflow: 0,
            first_overflow: None,
            header_len: "step\n".len(),
        }
    }

    fn start(&mut self, loss_names: &[&str], value_names: &[&str]) -> Result<(), SoundError> {
        for (names, loss) in [(loss_names, true), (value_names, false)] {
            let mut prev = None;
            for n in names {
                prev = self.column(n, loss, prev).or(prev);
            }
        }
        self.header_columns = self.columns.len();
        // The header is written in final order: the physical order is now that order.
        let order = std::mem::take(&mut self.order);
        let columns = std::mem::take(&mut self.columns);
        self.columns = order.iter().map(|&i| columns[i].clone()).collect();
        self.order = (0..self.columns.len()).collect();
        for (i, (name, loss)) in self.columns.iter().enumerate() {
            let index = if *loss {
                &mut self.loss_index
            } else {
                &mut self.value_index
            };
            index.insert(name.clone(), i);
        }
        self.line = self.header(false);
        self.header_bytes = self.line.len() as u64;
        self.emit_line()
    }

    /// The header line for the current columns (in `order` when `final_order`).
    fn header(&self, final_order: bool) -> String {
        let mut h = String::from("step");
        let mut add = |i: usize| {
            let (name, loss) = &self.columns[i];
            h.push(',');
            h.push_str(&header_name(name, *loss));
        };
        if final_order {
            self.order.iter().for_each(|&i| add(i));
        } else {
            (0..self.columns.len()).for_each(add);
        }
        h.push('\n');
        h
    }

    /// The column of `name`, added if new (placed after column `after`, the name before it in
    /// its frame; first when `None`); `None` past [`MAX_COLUMNS`].
    fn column(&mut self, name: &str, loss: bool, after: Option<usize>) -> Option<usize> {
        let index = if loss {
            &mut self.loss_index
        } else {
            &mut self.value_index
        };
        if let Some(&i) = index.get(name) {
            return Some(i);
        }
        let len = header_name(name, loss).len() + 1;
        if self.columns.len() >= MAX_COLUMNS || self.header_len + len > MAX_HEADER_BYTES {
            self.overflow += 1;
            if self.first_overflow.is_none() {
                self.first_overflow = Some(clip(name, 60));
            }
            return None;
        }
        self.header_len += len;
        let i = self.columns.len();
        index.insert(name.to_string(), i);
        self.columns.push((name.to_string(), loss));
        // New names arrive rarely (at most MAX_COLUMNS times): a linear search is fine.
        let at = after
            .and_then(|a| self.order.iter().position(|&c| c == a))
            .map_or(0, |p| p + 1);
        // The first value goes after the last loss rather than before every loss, so that a
        // file without reordering keeps the plain `step,losses...,values...` layout.
        let at = if after.is_none() && !loss {
            self.order
                .iter()
                .rposition(|&c| self.columns[c].1)
                .map_or(0, |p| p + 1)
        } else {
            at
        };
        self.order.insert(at, i);
        Some(i)
    }

    /// Values not written because the file already had [`MAX_COLUMNS`] columns: how many, and
    /// the first one's name.
    pub fn overflow(&self) -> (u64, Option<&str>) {
        (self.overflow, self.first_overflow.as_deref())
    }

    /// The number of columns after `step` so far.
    pub fn columns(&self) -> usize {
        self.columns.len()
    }

    fn io_err(&self, source: std::io::Error) -> SoundError {
        SoundError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn emit_line(&mut self) -> Result<(), SoundError> {
        let result = self.out.write_all(self.line.as_bytes());
        self.line.clear();
        result.map_err(|e| self.io_err(e))
    }

    /// Writes one row for `f`.
    pub fn write(&mut self, f: &Frame) -> Result<(), SoundError> {
        use std::fmt::Write as _;
        self.row.clear();
        for (entries, loss) in [(&f.losses, true), (&f.values, false)] {
            let mut prev = None;
            for n in entries {
                if let Some(i) = self.column(&n.name, loss, prev) {
                    if self.row.len() <= i {
                        self.row.resize(i + 1, None);
                    }
                    self.row[i] = Some(n.value);
                    prev = Some(i);
                }
            }
        }
        self.row.resize(self.columns.len(), None);
        let _ = write!(self.line, "{}", f.step);
        for v in &self.row {
            self.line.push(',');
            if let Some(v) = v {
                write_number(&mut self.line, *v);
            }
        }
        self.line.push('\n');
        self.emit_line()
    }

    /// Flushes buffered rows to the underlying writer (e.g. so a live file can be followed).
    pub fn flush(&mut self) -> Result<(), SoundError> {
        self.out.flush().map_err(|e| self.io_err(e))
    }

    /// Rewrites the header with every column and pads the rows written before columns were
    /// added. The old rows are copied to a spill file first (the new text is longer, so it
    /// cannot be written over the old in place while reading it).
    fn rewrite(&mut self) -> Result<(), SoundError> {
        self.flush()?;
        let spill_path = spill_path(&self.path);
        let spill_err = |source| SoundError::Io {
            path: spill_path.clone(),
            source,
        };
        let mut spill = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&spill_path)
            .map_err(spill_err)?;
        let result = (|| -> Result<(), SoundError> {
            let header = self.header(true);
            let order = &self.order;
            let w = self.out.get_mut();
            w.seek(SeekFrom::Start(self.header_bytes))
                .and_then(|_| std::io::copy(w, &mut spill))
                .and_then(|_| spill.seek(SeekFrom::Start(0)))
                .and_then(|_| w.seek(SeekFrom::Start(0)))
                .map_err(|e| self.io_err(e))?;
            let mut out = BufWriter::new(self.out.get_mut());
            let mut rows = BufReader::new(&mut spill);
            let mut buf = Vec::new();
            let copy = (|| -> std::io::Result<()> {
                out.write_all(header.as_bytes())?;
                loop {
                    buf.clear();
                    if rows.read_until(b'\n', &mut buf)? == 0 {
                        break;
                    }
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    // Row cells are numbers: no comma but the separators. Cells the row does
                    // not have (columns added after it) are empty.
                    let cells: Vec<&[u8]> = buf.split(|&b| b == b',').collect();
                    out.write_all(cells[0])?;
                    for &c in order {
                        out.write_all(b",")?;
                        out.write_all(cells.get(c + 1).copied().unwrap_or_default())?;
                    }
                    out.write_all(b"\n")?;
                }
                out.flush()
            })();
            copy.map_err(|source| SoundError::Io {
                path: self.path.clone(),
                source,
            })
        })();
        drop(spill);
        let _ = std::fs::remove_file(&spill_path);
        result?;
        self.header_columns = self.columns.len();
        Ok(())
    }

    /// Completes the file (rewriting the header if columns were added), flushes it and returns
    /// the underlying writer.
    pub fn finish(mut self) -> Result<W, SoundError> {
        let reordered = self.order.iter().enumerate().any(|(k, &c)| k != c);
        if self.columns.len() > self.header_columns || reordered {
            self.rewrite()?;
        }
        self.flush()?;
        let path = self.path.clone();
        self.out.into_inner().map_err(|e| SoundError::Io {
            path,
            source: e.into_error(),
        })
    }
}

/// A temporary file for [`CsvWriter::rewrite`]: beside the CSV (same disk) when it is a file,
/// else in the system's temporary folder.
fn spill_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let unique = format!(
        ".gradtone-csv-{}-{}.tmp",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    match path
        .parent()
        .filter(|p| path.is_file() && !p.as_os_str().is_empty())
    {
        Some(dir) => dir.join(unique),
        None if path.is_file() => PathBuf::from(unique),
        None => std::env::temp_dir().join(unique),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read_str(text: &str) -> Result<Vec<Frame>, SoundError> {
        CsvReader::new(text.as_bytes(), "traj.csv")?.collect()
    }

    #[test]
    fn reads_reference_style_rows() -> Result<(), SoundError> {
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
    fn loss_prefixed_columns_are_losses_in_order() -> Result<(), SoundError> {
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
    fn round_trip_preserves_every_bit() -> Result<(), SoundError> {
        let tricky = [
            0.1 + 0.2,
            1.2871722962892867e25,
            f32::MAX as f64,
            5e-324,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            2.0,
        ];
        let mut w = CsvWriter::new(Cursor::new(Vec::new()), &["loss"], &["conv1", "fc2"])?;
        let mut sent = Vec::new();
        for (i, &v) in tricky.iter().enumerate() {
            let f = Frame::new(i as u64)
                .with_loss("loss", v)
                .with_value("conv1", -v)
                .with_value("fc2", v * 0.5);
            w.write(&f)?;
            sent.push(f);
        }
        let bytes = w.finish()?.into_inner();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("\n1,1.2871722962892867e25,"), "{text}");
        let back = read_str(&text)?;
        assert_eq!(back.len(), sent.len());
        for (a, b) in sent.iter().zip(&back) {
            assert_eq!(a.step, b.step);
            for (x, y) in a
                .losses
                .iter()
                .chain(&a.values)
                .zip(b.losses.iter().chain(&b.values))
            {
                assert_eq!(x.name, y.name);
                // Bit equality covers NaN and the sign of -0.0 (NaN's sign is not kept: Python
                // spells every NaN "nan" too).
                if x.value.is_nan() {
                    assert!(y.value.is_nan());
                } else {
                    assert_eq!(
                        x.value.to_bits(),
                        y.value.to_bits(),
                        "{} vs {}",
                        x.value,
                        y.value
                    );
                }
            }
        }
        Ok(())
    }

    fn write_all(frames: &[Frame]) -> Result<String, SoundError> {
        let mut w = CsvWriter::new(Cursor::new(Vec::new()), &[], &[])?;
        for f in frames {
            w.write(f)?;
        }
        Ok(String::from_utf8_lossy(&w.finish()?.into_inner()).into_owned())
    }

    #[test]
    fn writer_leaves_missing_cells_empty_and_follows_header_order() -> Result<(), SoundError> {
        let mut w = CsvWriter::new(Cursor::new(Vec::new()), &["loss"], &["a", "b"])?;
        // Out of header order, one missing, one NaN.
        w.write(&Frame::new(9).with_value("b", 0.5).with_value("a", f64::NAN))?;
        let text = String::from_utf8_lossy(&w.finish()?.into_inner()).into_owned();
        assert_eq!(text, "step,loss,a,b\n9,,nan,0.5\n");
        let back = read_str(&text)?;
        assert_eq!(back[0].loss(), None, "missing stays missing");
        assert!(back[0].value("a").is_some_and(f64::is_nan), "NaN stays NaN");
        Ok(())
    }

    /// The frames as (step, losses, values) with NaN made comparable.
    /// (name, value bits) of a frame's losses or values.
    type Entries = Vec<(String, u64)>;

    fn key(frames: &[Frame]) -> Vec<(u64, Entries, Entries)> {
        let bits = |v: &[Named]| {
            v.iter()
                .map(|n| {
                    (
                        n.name.clone(),
                        if n.value.is_nan() {
                            1
                        } else {
                            n.value.to_bits()
                        },
                    )
                })
                .collect::<Vec<_>>()
        };
        frames
            .iter()
            .map(|f| (f.step, bits(&f.losses), bits(&f.values)))
            .collect()
    }

    #[test]
    fn changing_columns_are_all_written() -> Result<(), SoundError> {
        // A first frame with no values, layers appearing later, alternating sets.
        let frames = vec![
            Frame::new(0).with_loss("loss", 2.0),
            Frame::new(1)
                .with_loss("loss", 1.9)
                .with_value("conv1", 0.5),
            Frame::new(2)
                .with_value("conv1", 0.4)
                .with_value("fc1", 0.3),
            Frame::new(3).with_loss("loss", 1.7).with_value("a", 1.0),
            Frame::new(4).with_loss("loss", 1.6).with_value("b", 2.0),
            Frame::new(5).with_loss("loss", 1.5).with_value("a", 1.5),
        ];
        let text = write_all(&frames)?;
        assert!(text.starts_with("step,loss,b,a,conv1,fc1\n"), "{text}");
        let back = read_str(&text)?;
        assert_eq!(key(&back), key(&frames), "{text}");
        Ok(())
    }

    #[test]
    fn a_layer_appearing_later_takes_its_place_in_frame_order() -> Result<(), SoundError> {
        // fc1 is frozen at first (absent), then appears between conv1 and fc2: read back, every
        // frame lists its values in its own order (mappings sound them in that order).
        let mut frames = Vec::new();
        for step in 0..6u64 {
            let mut f = Frame::new(step)
                .with_loss("loss", 1.0)
                .with_value("conv1", 0.5);
            if step >= 3 {
                f = f.with_value("fc1", 0.25);
            }
            frames.push(f.with_value("fc2", 0.125));
        }
        frames.push(
            Frame::new(6)
                .with_loss("loss_l2", 0.5)
                .with_loss("loss", 1.0),
        );
        let text = write_all(&frames)?;
        assert!(
            text.starts_with("step,loss_l2,loss,conv1,fc1,fc2\n"),
            "{text}"
        );
        assert_eq!(key(&read_str(&text)?), key(&frames), "{text}");
        Ok(())
    }

    #[test]
    fn every_name_the_stream_allows_round_trips() -> Result<(), SoundError> {
        let names = [
            "r0/loss",
            "loss_ce/conv1",
            "step",
            "loss:x",
            "value:y",
            "a,b",
            "say \"hi\"",
            " padded ",
            "line\nbreak",
            "",
            "\u{feff}bom",
            "ünï",
            "cr\r",
            "cr\r\nlf",
            "\r",
        ];
        let mut frames = Vec::new();
        for (i, n) in names.iter().enumerate() {
            frames.push(
                Frame::new(i as u64)
                    .with_loss(*n, i as f64)
                    .with_value(*n, -(i as f64))
                    .with_loss("loss_l2", 0.5)
                    .with_value("loss_ce/fc1", 0.25),
            );
        }
        let text = write_all(&frames)?;
        let back = read_str(&text)?;
        // Frames list losses/values in column order; compare as sets per frame.
        let sorted = |fs: &[Frame]| {
            let mut k = key(fs);
            for (_, l, v) in &mut k {
                l.sort();
                v.sort();
            }
            k
        };
        assert_eq!(sorted(&back), sorted(&frames), "{text}");
        Ok(())
    }

    #[test]
    fn too_many_columns_are_counted_not_dropped_silently() -> Result<(), SoundError> {
        let mut w = CsvWriter::new(Cursor::new(Vec::new()), &[], &[])?;
        for i in 0..MAX_COLUMNS + 10 {
            w.write(&Frame::new(i as u64).with_value(format!("n{i}"), 1.0))?;
        }
        assert_eq!(w.columns(), MAX_COLUMNS);
        assert_eq!(w.overflow(), (10, Some(format!("n{MAX_COLUMNS}").as_str())));
        let text = String::from_utf8_lossy(&w.finish()?.into_inner()).into_owned();
        let back = read_str(&text)?;
        assert_eq!(back.len(), MAX_COLUMNS + 10);
        assert_eq!(back[5].values.len(), 1);
        Ok(())
    }

    #[test]
    fn bad_rows_are_errors_one_by_one_and_reading_goes_on() -> Result<(), SoundError> {
        let mut text = String::from("step,loss,a\n0,1,2\n1,x,2\n2,1\n");
        text.push_str(&"9".repeat(MAX_ROW_BYTES + 10));
        text.push_str("\n3,1,\u{0}\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"4,\xff,1\n5,0.5,0.25\n");
        let results: Vec<_> = CsvReader::new(bytes.as_slice(), "t.csv")?.collect();
        let lines: Vec<Option<u64>> = results
            .iter()
            .map(|r| match r {
                Err(SoundError::Csv { line, .. } | SoundError::CsvFormat { line, .. }) => {
                    Some(*line)
                }
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
    fn a_huge_header_is_read_in_linear_time() -> Result<(), SoundError> {
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
                Err(SoundError::CsvFormat { line, message, .. }) => {
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
            Some(Err(SoundError::CsvFormat { line, message, .. })) => {
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

    #[test]
    fn file_round_trip_and_missing_file_names_path() -> Result<(), SoundError> {
        let dir = std::env::temp_dir().join(format!("gradtone-sound-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| SoundError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("t.csv");
        let mut w = CsvWriter::create(&path, &["loss"], &["conv1"])?;
        w.write(
            &Frame::new(0)
                .with_loss("loss", 1.5)
                .with_value("conv1", 0.25),
        )?;
        // A name that appears later: the file's header is rewritten at the end.
        w.write(&Frame::new(1).with_value("fc1", 0.5))?;
        w.finish()?;
        let frames = read_frames(&path)?;
        assert_eq!(
            frames,
            vec![
                Frame::new(0)
                    .with_loss("loss", 1.5)
                    .with_value("conv1", 0.25),
                Frame::new(1).with_value("fc1", 0.5)
            ]
        );
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|source| SoundError::Io {
                path: dir.clone(),
                source,
            })?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "no spill file left behind: {left:?}");
        let missing = dir.join("nope.csv");
        let msg = read_frames(&missing)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains(&missing.display().to_string()), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
