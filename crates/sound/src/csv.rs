//! Writing trajectory CSV files: one [`Frame`] per row ([`CsvWriter`]). The format, and its
//! reader, are in `gradtone_ingest::csv`: a header `step,<name1>,<name2>,...` and one row per
//! step, e.g. `0,2.3001,0.0123,...`.
//!
//! **Which columns are losses** is the shared rule of [`column_kind`]: a header name
//! `loss:NAME` is the loss `NAME`, `value:NAME` the value `NAME`, any other name a loss when it
//! starts with `loss` (the reference files' rule), else a value. [`CsvWriter`] writes a name
//! plainly when that rule already gives its kind (`loss`, `conv1`) and with the prefix
//! otherwise (a per-rank loss `r0/loss` is written `loss:r0/loss`, a value `loss_ce/conv1` is
//! written `value:loss_ce/conv1`), so every name the stream format allows reads back as itself.
//! Names are quoted as in RFC 4180 when they need it; empty cells are values a step did not
//! have, `nan` a diverged one.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::SoundError;
use gradtone_frame::Frame;
use gradtone_frame::csv_format::{LOSS_PREFIX, MAX_ROW_BYTES, VALUE_PREFIX, column_kind};

/// The most columns [`CsvWriter`] writes (and at most [`MAX_HEADER_BYTES`] of names). A wide
/// CSV repeats every column on every row, so a stream whose names never repeat would grow the
/// file with the square of its length: names beyond this many are counted
/// ([`CsvWriter::overflow`]) and not written.
pub const MAX_COLUMNS: usize = 4096;

/// The most bytes of header [`CsvWriter`] writes (names beyond are counted in
/// [`CsvWriter::overflow`]): half of the reader's [`MAX_ROW_BYTES`], so its files always read
/// back.
pub const MAX_HEADER_BYTES: usize = MAX_ROW_BYTES / 2;

/// Cuts `s` to at most `max` characters for a message (names and cells can be megabytes long).
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
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
    let needs_quotes = text.contains([',', '"', '\n', '\r'])
        || text.trim() != text
        || text.starts_with('\u{feff}');
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
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
/// Python and `gradtone_ingest::csv::CsvReader` read back the exact same `f64`.
///
/// ```
/// use std::io::Cursor;
/// use gradtone_frame::Frame;
/// use gradtone_sound::csv::CsvWriter;
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
        Self::with_file(file, path, loss_names, value_names)
    }

    /// Writes the header into `file` (opened readable and writable, at its start), which
    /// errors call `path`: for a file made elsewhere (an output written beside its path).
    pub fn with_file(
        file: File,
        path: &Path,
        loss_names: &[&str],
        value_names: &[&str],
    ) -> Result<Self, SoundError> {
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
