//! Writing trajectory CSV files: one [`Frame`] per row ([`CsvWriter`]). The format is
//! described in the [crate docs](crate).
//!
//! Names are quoted by the `csv` crate when they need it (a comma, a quote, a line break), and
//! also when surrounding spaces or a leading byte-order mark would otherwise be trimmed by the
//! reader; empty cells are values a step did not have, `nan` a diverged one.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use csv::{QuoteStyle, Terminator, WriterBuilder};
use gradtone_frame::Frame;

use crate::{CsvError, LOSS_PREFIX, MAX_ROW_BYTES, VALUE_PREFIX, clip, column_kind};

/// The most columns [`CsvWriter`] writes (and at most [`MAX_HEADER_BYTES`] of names). A wide
/// CSV repeats every column on every row, so a stream whose names never repeat would grow the
/// file with the square of its length: names beyond this many are counted
/// ([`CsvWriter::overflow`]) and not written.
pub const MAX_COLUMNS: usize = 4096;

/// The most bytes of header [`CsvWriter`] writes (names beyond are counted in
/// [`CsvWriter::overflow`]): half of the reader's [`MAX_ROW_BYTES`], so its files always read
/// back.
pub const MAX_HEADER_BYTES: usize = MAX_ROW_BYTES / 2;

/// How cells are written: `\n` line ends, rows of any length (columns are added as names
/// arrive), quotes only where `style` asks.
fn builder(style: QuoteStyle) -> WriterBuilder {
    let mut b = WriterBuilder::new();
    b.quote_style(style)
        .terminator(Terminator::Any(b'\n'))
        .flexible(true);
    b
}

/// The `csv` crate's error as the I/O error it is (a writer with `flexible` has no other).
fn into_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// The header text of a column: the name, with a kind prefix when the legacy rule would read it
/// back as the other kind, and quoted when it holds a comma, a quote, a line break or
/// surrounding spaces.
fn header_name(name: &str, loss: bool) -> String {
    let plain = !name.is_empty() && name != "step" && column_kind(name) == (name, loss);
    let text = if plain {
        name.to_string()
    } else if loss {
        format!("{LOSS_PREFIX}{name}")
    } else {
        format!("{VALUE_PREFIX}{name}")
    };
    // The csv crate quotes what CSV needs (a comma, a quote, a line break). The reader trims
    // unquoted names, so surrounding spaces (and a leading byte-order mark, which spreadsheets
    // strip) are quoted too.
    let style = if text.trim() != text || text.starts_with('\u{feff}') {
        QuoteStyle::Always
    } else {
        QuoteStyle::Necessary
    };
    let mut w = builder(style)
        .buffer_capacity(2 * text.len() + 3)
        .from_writer(Vec::new());
    // A record of one cell: its closing quote is written with the line end (cut here).
    // Writing to memory does not fail; the text is UTF-8 quoted with ASCII quotes.
    if w.write_record([&text]).is_err() {
        return text;
    }
    match w.into_inner() {
        Ok(mut cell) => {
            cell.pop_if(|b| *b == b'\n');
            String::from_utf8(cell).unwrap_or(text)
        }
        Err(_) => text,
    }
}

/// Formats one number the way the reader and Python's `float()` both read back exactly.
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
/// Python and [`CsvReader`](crate::CsvReader) read back the exact same `f64`.
///
/// ```
/// use std::io::Cursor;
/// use gradtone_csv::CsvWriter;
/// use gradtone_frame::Frame;
/// let mut w = CsvWriter::new(Cursor::new(Vec::new()), &["loss"], &["conv1", "fc1"])?;
/// w.write(&Frame::new(0).with_loss("loss", 2.5).with_value("conv1", f64::INFINITY))?;
/// w.write(&Frame::new(1).with_value("conv1", f64::NAN).with_loss("r0/loss", 1.0))?;
/// let text = String::from_utf8(w.finish()?.into_inner()).unwrap();
/// // A new name is placed where its frame had it (first), the earlier row padded.
/// assert_eq!(text, "step,loss:r0/loss,loss,conv1,fc1\n0,,2.5,inf,\n1,1.0,,nan,\n");
/// # Ok::<(), gradtone_csv::CsvError>(())
/// ```
pub struct CsvWriter<W: Read + Write + Seek> {
    /// `None` only after an I/O error lost the writer (see [`Self::with_inner`]).
    out: Option<csv::Writer<W>>,
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
    /// One number's text, reused from cell to cell.
    cell: String,
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
    ) -> Result<Self, CsvError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|source| CsvError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Self::with_file(file, path, loss_names, value_names)
    }

    /// Writes the header into `file` (opened readable and writable, at its start), which
    /// errors call `path`: for a file made elsewhere (an output written beside its path).
    pub fn with_file(
        file: File,
        path: &Path,
        loss_names: &[&str],
        value_names: &[&str],
    ) -> Result<Self, CsvError> {
        let mut w = CsvWriter::with_path(file, path.to_path_buf());
        w.start(loss_names, value_names)?;
        Ok(w)
    }
}

impl<W: Read + Write + Seek> CsvWriter<W> {
    /// Wraps `w` (written from its current start) and writes the header with these first
    /// columns. Any name is accepted (see the module docs for how names are written).
    pub fn new(w: W, loss_names: &[&str], value_names: &[&str]) -> Result<Self, CsvError> {
        let mut writer = CsvWriter::with_path(w, PathBuf::from("<csv output>"));
        writer.start(loss_names, value_names)?;
        Ok(writer)
    }

    fn with_path(w: W, path: PathBuf) -> Self {
        CsvWriter {
            out: Some(builder(QuoteStyle::Necessary).from_writer(w)),
            path,
            columns: Vec::new(),
            order: Vec::new(),
            loss_index: HashMap::new(),
            value_index: HashMap::new(),
            header_columns: 0,
            header_bytes: 0,
            row: Vec::new(),
            cell: String::new(),
            overflow: 0,
            first_overflow: None,
            header_len: "step\n".len(),
        }
    }

    fn start(&mut self, loss_names: &[&str], value_names: &[&str]) -> Result<(), CsvError> {
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
        let header = self.header(false);
        self.header_bytes = header.len() as u64;
        // Each name is already a CSV cell (see `header_name`): the line goes out as it is.
        self.with_inner(|w| w.write_all(header.as_bytes()))
    }

    /// Runs `f` on the underlying writer, the rows buffered so far written first (the csv
    /// writer lends it only through `into_inner`).
    fn with_inner<T>(
        &mut self,
        f: impl FnOnce(&mut W) -> std::io::Result<T>,
    ) -> Result<T, CsvError> {
        let out = self.out.take().ok_or_else(|| self.lost())?;
        let mut w = match out.into_inner() {
            Ok(w) => w,
            Err(e) => {
                let source = std::io::Error::new(e.error().kind(), e.error().to_string());
                self.out = Some(e.into_inner());
                return Err(self.io_err(source));
            }
        };
        let result = f(&mut w);
        self.out = Some(builder(QuoteStyle::Necessary).from_writer(w));
        result.map_err(|e| self.io_err(e))
    }

    /// The error of a writer lost to an earlier I/O error.
    fn lost(&self) -> CsvError {
        self.io_err(std::io::Error::other(
            "an earlier write to this file failed",
        ))
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
        let full = self.columns.len() >= MAX_COLUMNS;
        let len = if full {
            0
        } else {
            header_name(name, loss).len() + 1
        };
        if full || self.header_len + len > MAX_HEADER_BYTES {
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

    fn io_err(&self, source: std::io::Error) -> CsvError {
        CsvError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes one row for `f`.
    pub fn write(&mut self, f: &Frame) -> Result<(), CsvError> {
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
        let Some(out) = &mut self.out else {
            return Err(self.lost());
        };
        let result = (|| {
            self.cell.clear();
            // Writing to a String cannot fail.
            let _ = write!(self.cell, "{}", f.step);
            out.write_field(&self.cell)?;
            for v in &self.row {
                self.cell.clear();
                if let Some(v) = v {
                    write_number(&mut self.cell, *v);
                }
                out.write_field(&self.cell)?;
            }
            out.write_record(None::<&[u8]>)
        })();
        result.map_err(|e| self.io_err(into_io(e)))
    }

    /// Flushes buffered rows to the underlying writer (e.g. so a live file can be followed).
    pub fn flush(&mut self) -> Result<(), CsvError> {
        let Some(out) = &mut self.out else {
            return Err(self.lost());
        };
        out.flush().map_err(|e| self.io_err(e))
    }

    /// Rewrites the header with every column and pads the rows written before columns were
    /// added. The old rows are copied to a spill file first (the new text is longer, so it
    /// cannot be written over the old in place while reading it).
    fn rewrite(&mut self) -> Result<(), CsvError> {
        self.flush()?;
        let spill_path = spill_path(&self.path);
        let spill_err = |source| CsvError::Io {
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
        let header = self.header(true);
        let (header_bytes, order) = (self.header_bytes, std::mem::take(&mut self.order));
        let result = self.with_inner(|w| {
            w.seek(SeekFrom::Start(header_bytes))?;
            std::io::copy(w, &mut spill)?;
            spill.seek(SeekFrom::Start(0))?;
            w.seek(SeekFrom::Start(0))?;
            w.write_all(header.as_bytes())?;
            let mut out = builder(QuoteStyle::Necessary).from_writer(w);
            let mut rows = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .quoting(false)
                .terminator(Terminator::Any(b'\n'))
                .from_reader(&mut spill);
            let mut row = csv::ByteRecord::new();
            let copy = (|| -> csv::Result<()> {
                while rows.read_byte_record(&mut row)? {
                    // Cells the row does not have (columns added after it) are empty.
                    out.write_field(row.get(0).unwrap_or_default())?;
                    for &c in &order {
                        out.write_field(row.get(c + 1).unwrap_or_default())?;
                    }
                    out.write_record(None::<&[u8]>)?;
                }
                Ok(out.flush()?)
            })();
            copy.map_err(into_io)
        });
        self.order = order;
        drop(spill);
        let _ = std::fs::remove_file(&spill_path);
        result?;
        self.header_columns = self.columns.len();
        Ok(())
    }

    /// Completes the file (rewriting the header if columns were added), flushes it and returns
    /// the underlying writer.
    pub fn finish(mut self) -> Result<W, CsvError> {
        let reordered = self.order.iter().enumerate().any(|(k, &c)| k != c);
        if self.columns.len() > self.header_columns || reordered {
            self.rewrite()?;
        }
        let lost = self.lost();
        let out = self.out.take().ok_or(lost)?;
        out.into_inner().map_err(|e| CsvError::Io {
            path: self.path.clone(),
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
