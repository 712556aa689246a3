//! Trajectory CSV files: one [`Frame`] per row.
//!
//! Format (what the PyTorch reference writes): a header `step,loss,<name1>,<name2>,...` and one row
//! per step, e.g. `0,2.3001,0.0123,...`. The first column must be `step` (a non-negative integer).
//! A column called `loss` or whose name starts with `loss` goes to [`Frame::losses`]; every other
//! column goes to [`Frame::values`], in header order.
//!
//! Numbers are anything Rust's `f64` parser accepts plus Python's spellings `nan`, `inf`, `-inf`
//! (case-insensitive); an empty field is NaN. Fields are plain: no quoting, surrounding spaces and
//! a trailing `\r` are ignored, blank lines are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::SoundError;
use gradtone_frame::{Frame, Named};

/// Whether a column is a loss (by name), see the module docs.
fn is_loss_name(name: &str) -> bool {
    name.starts_with("loss")
}

/// Parses one numeric field; `None` when it is not a number.
fn parse_number(field: &str) -> Option<f64> {
    if field.is_empty() {
        return Some(f64::NAN);
    }
    // Rust's parser already accepts "nan", "inf", "-inf", "infinity" in any case.
    field.parse::<f64>().ok()
}

/// Streams [`Frame`]s from a CSV source, one per row.
///
/// An `Iterator<Item = Result<Frame, SoundError>>`; after the first error it ends (returns `None`),
/// since the rows after a malformed one cannot be trusted to be aligned.
///
/// ```
/// use gradtone_sound::csv::CsvReader;
/// let text = "step,loss,conv1,fc1\n0,2.3,0.5,nan\n1,2.1,0.4,inf\n";
/// let mut r = CsvReader::new(text.as_bytes(), "inline.csv")?;
/// assert_eq!(r.names(), ["step", "loss", "conv1", "fc1"]);
/// let f = r.next().unwrap()?;
/// assert_eq!((f.step, f.loss(), f.value("conv1")), (0, Some(2.3), Some(0.5)));
/// # Ok::<(), gradtone_sound::SoundError>(())
/// ```
pub struct CsvReader<R: BufRead> {
    reader: R,
    source: String,
    names: Vec<String>,
    /// For each column after `step`: whether it is a loss.
    loss_col: Vec<bool>,
    line_no: u64,
    buf: String,
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
            loss_col: Vec::new(),
            line_no: 0,
            buf: String::new(),
            done: false,
        };
        if !r.next_line()? {
            return Err(r.format_error("empty file: expected a header `step,...`".into()));
        }
        // A UTF-8 byte-order mark (spreadsheet exports) is not part of the first name.
        let header = r.buf.trim_start_matches('\u{feff}');
        let names: Vec<String> = header.split(',').map(|s| s.trim().to_string()).collect();
        if names.first().map(String::as_str) != Some("step") {
            return Err(r.format_error(format!(
                "the first column must be `step`, found {:?}",
                names.first().map(String::as_str).unwrap_or("")
            )));
        }
        for (i, name) in names.iter().enumerate().skip(1) {
            if name.is_empty() {
                return Err(r.format_error(format!("column {} has an empty name", i + 1)));
            }
            if names[..i].contains(name) {
                return Err(r.format_error(format!("column name {name:?} appears twice")));
            }
        }
        r.loss_col = names[1..].iter().map(|n| is_loss_name(n)).collect();
        r.names = names;
        Ok(r)
    }

    /// The header's column names, `step` first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads the next non-blank line into `self.buf` (without line ending); `false` at the end.
    fn next_line(&mut self) -> Result<bool, SoundError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_line(&mut self.buf)
                .map_err(|source| SoundError::Io {
                    path: PathBuf::from(&self.source),
                    source,
                })?;
            if n == 0 {
                return Ok(false);
            }
            self.line_no += 1;
            let trimmed_len = self.buf.trim_end_matches(['\n', '\r']).len();
            self.buf.truncate(trimmed_len);
            if !self.buf.trim().is_empty() {
                return Ok(true);
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
            column: column.to_string(),
            message,
        }
    }

    /// Parses the row in `self.buf`.
    fn parse_row(&self) -> Result<Frame, SoundError> {
        let fields: Vec<&str> = self.buf.split(',').map(str::trim).collect();
        if fields.len() != self.names.len() {
            return Err(self.format_error(format!(
                "{} fields, but the header has {} columns",
                fields.len(),
                self.names.len()
            )));
        }
        let step = fields[0].parse::<u64>().map_err(|_| {
            self.field_error(
                "step",
                format!("'{}' is not a non-negative integer", fields[0]),
            )
        })?;
        let mut frame = Frame::new(step);
        for ((field, name), &is_loss) in
            fields[1..].iter().zip(&self.names[1..]).zip(&self.loss_col)
        {
            let value = parse_number(field)
                .ok_or_else(|| self.field_error(name, format!("'{field}' is not a number")))?;
            let named = Named {
                name: name.clone(),
                value,
            };
            if is_loss {
                frame.losses.push(named);
            } else {
                frame.values.push(named);
            }
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
        let result = match self.next_line() {
            Ok(false) => {
                self.done = true;
                return None;
            }
            Ok(true) => self.parse_row(),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

/// Reads a whole CSV trajectory file into frames (see the module docs for the format).
pub fn read_frames(path: &Path) -> Result<Vec<Frame>, SoundError> {
    CsvReader::open(path)?.collect()
}

/// Checks that a column name survives a write → read round trip unchanged.
fn check_name(name: &str, want_loss: bool) -> Result<(), SoundError> {
    let bad = |reason| {
        Err(SoundError::ColumnName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.trim() != name {
        return bad("names must be non-empty without surrounding spaces");
    }
    if name.contains([',', '\n', '\r', '"']) {
        return bad(
            "names cannot contain commas, quotes or line breaks (the format has no quoting)",
        );
    }
    if name == "step" {
        return bad("`step` is the first column already");
    }
    if want_loss && !is_loss_name(name) {
        return bad("loss column names must start with `loss` to be read back as losses");
    }
    if !want_loss && is_loss_name(name) {
        return bad(
            "value column names must not start with `loss` (they would read back as losses)",
        );
    }
    Ok(())
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

/// Writes [`Frame`]s as CSV rows: header `step,<loss names>,<value names>`.
///
/// Each row takes, for each column, the frame's loss/value of that name; one the frame lacks is
/// written as `nan`. Frame entries with names not in the header are not written. Numbers use
/// Rust's shortest round-trip formatting (exponent form for huge/tiny magnitudes); non-finite ones
/// are spelled `nan`, `inf`, `-inf` as Python does, so both Python and [`CsvReader`] read back the
/// exact same `f64`.
///
/// ```
/// use gradtone_sound::{Frame, csv::CsvWriter};
/// let mut w = CsvWriter::new(Vec::new(), &["loss"], &["conv1", "fc1"])?;
/// w.write(&Frame::new(0).with_loss("loss", 2.5).with_value("conv1", f64::INFINITY))?;
/// let text = String::from_utf8(w.finish()?).unwrap();
/// assert_eq!(text, "step,loss,conv1,fc1\n0,2.5,inf,nan\n");
/// # Ok::<(), gradtone_sound::SoundError>(())
/// ```
pub struct CsvWriter<W: Write> {
    out: W,
    path: PathBuf,
    loss_names: Vec<String>,
    value_names: Vec<String>,
    line: String,
}

impl CsvWriter<BufWriter<File>> {
    /// Creates (truncates) `path` and writes the header. Errors name the path.
    pub fn create(
        path: &Path,
        loss_names: &[&str],
        value_names: &[&str],
    ) -> Result<Self, SoundError> {
        // Check names before touching the file, so a bad call leaves nothing behind.
        check_names(loss_names, value_names)?;
        let file = File::create(path).map_err(|source| SoundError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = CsvWriter::new(BufWriter::new(file), loss_names, value_names)?;
        w.path = path.to_path_buf();
        Ok(w)
    }
}

fn check_names(loss_names: &[&str], value_names: &[&str]) -> Result<(), SoundError> {
    for n in loss_names {
        check_name(n, true)?;
    }
    for n in value_names {
        check_name(n, false)?;
    }
    for (i, n) in loss_names.iter().chain(value_names).enumerate() {
        if loss_names.iter().chain(value_names).take(i).any(|m| m == n) {
            return Err(SoundError::ColumnName {
                name: n.to_string(),
                reason: "appears twice",
            });
        }
    }
    Ok(())
}

impl<W: Write> CsvWriter<W> {
    /// Wraps `w` and writes the header. Column names must be unique, must not contain commas,
    /// quotes or line breaks, and loss names must start with `loss` (value names must not), so
    /// that the file reads back as the same frames.
    pub fn new(w: W, loss_names: &[&str], value_names: &[&str]) -> Result<Self, SoundError> {
        check_names(loss_names, value_names)?;
        let mut writer = CsvWriter {
            out: w,
            path: PathBuf::from("<csv output>"),
            loss_names: loss_names.iter().map(|s| s.to_string()).collect(),
            value_names: value_names.iter().map(|s| s.to_string()).collect(),
            line: String::new(),
        };
        writer.line.push_str("step");
        for n in loss_names.iter().chain(value_names) {
            writer.line.push(',');
            writer.line.push_str(n);
        }
        writer.line.push('\n');
        writer.emit_line()?;
        Ok(writer)
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
        let _ = write!(self.line, "{}", f.step);
        for (names, entries) in [
            (&self.loss_names, &f.losses),
            (&self.value_names, &f.values),
        ] {
            for (i, name) in names.iter().enumerate() {
                // Frames from one source usually list names in header order: try that slot first.
                let v = match entries.get(i) {
                    Some(n) if &n.name == name => n.value,
                    _ => entries
                        .iter()
                        .find(|n| &n.name == name)
                        .map_or(f64::NAN, |n| n.value),
                };
                self.line.push(',');
                write_number(&mut self.line, v);
            }
        }
        self.line.push('\n');
        self.emit_line()
    }

    /// Flushes buffered rows to the underlying writer (e.g. so a live file can be followed).
    pub fn flush(&mut self) -> Result<(), SoundError> {
        self.out.flush().map_err(|e| self.io_err(e))
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, SoundError> {
        self.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            frames[1].value("conv2").is_some_and(f64::is_nan),
            "empty is NaN"
        );
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
        let mut w = CsvWriter::new(Vec::new(), &["loss"], &["conv1", "fc2"])?;
        let mut sent = Vec::new();
        for (i, &v) in tricky.iter().enumerate() {
            let f = Frame::new(i as u64)
                .with_loss("loss", v)
                .with_value("conv1", -v)
                .with_value("fc2", v * 0.5);
            w.write(&f)?;
            sent.push(f);
        }
        let bytes = w.finish()?;
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

    #[test]
    fn writer_fills_missing_with_nan_and_follows_header_order() -> Result<(), SoundError> {
        let mut w = CsvWriter::new(Vec::new(), &["loss"], &["a", "b"])?;
        // Out of header order, one missing, one extra.
        w.write(&Frame::new(9).with_value("b", 0.5).with_value("zzz", 1.0))?;
        let text = String::from_utf8_lossy(&w.finish()?).into_owned();
        assert_eq!(text, "step,loss,a,b\n9,nan,nan,0.5\n");
        Ok(())
    }

    #[test]
    fn writer_refuses_names_that_would_not_read_back() {
        for (losses, values) in [
            (&["loss"][..], &["a,b"][..]),
            (&["loss"], &["loss2"]),
            (&["train"], &["a"]),
            (&["loss"], &["a", "a"]),
            (&[], &["step"]),
            (&[], &[" a"]),
        ] {
            let r = CsvWriter::new(Vec::new(), losses, values);
            assert!(
                matches!(r, Err(SoundError::ColumnName { .. })),
                "{losses:?} {values:?}"
            );
        }
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
    fn ragged_row_is_an_error_with_line_and_stops_iteration() {
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
        assert!(r.next().is_none(), "iteration ends after an error");
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
        w.finish()?;
        let frames = read_frames(&path)?;
        assert_eq!(
            frames,
            vec![
                Frame::new(0)
                    .with_loss("loss", 1.5)
                    .with_value("conv1", 0.25)
            ]
        );
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
