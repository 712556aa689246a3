//! The JSON Lines stream format, version 1 (`docs/stream-format.md`).

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use gradtone_frame::{Frame, Named};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::diag::{Diagnostics, Tally};
use crate::error::{IngestError, LineError};
use crate::lines::{Got, LineBuf};
use crate::merge::MAX_WORLD;
use crate::{FrameSource, frames_from_records};
use gradtone_frame::Report;

/// Lines longer than this many bytes (1 MiB, without the newline) are skipped unread.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One parsed line: the frame plus what the line says about the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The step's values and losses, in the line's key order, and its rank.
    pub frame: Frame,
    /// The format version the line declares (`"v"`, 1 when absent).
    pub version: u64,
    /// The number of ranks of the run (`"world"`), if given.
    pub world: Option<u32>,
    /// Wall-clock time of the step, Unix seconds (`"t"`), if given.
    pub time: Option<f64>,
}

impl Record {
    /// A version-1 record of `frame` with no world or time.
    pub fn from_frame(frame: Frame) -> Self {
        Record {
            frame,
            version: 1,
            world: None,
            time: None,
        }
    }
}

/// Parses one line of the v1 format into a [`Record`].
///
/// A trailing `\n` or `\r\n` is allowed. Key order of `"values"` and `"losses"` is kept; a
/// number may be written as a JSON number, as `"nan"`, `"inf"`, `"-inf"` (any case) or `null`
/// (NaN). Unknown fields are ignored; a line with `"v"` above 1 is read as far as v1 goes.
///
/// ```
/// let r = gradtone_ingest::parse_record(
///     r#"{"v":1,"step":12,"values":{"b":1,"a":"-Inf"},"losses":{"loss":null},"rank":3,"world":4}"#,
/// )?;
/// assert_eq!(r.frame.step, 12);
/// assert_eq!(r.frame.values[0].name, "b");
/// assert_eq!(r.frame.value("a"), Some(f64::NEG_INFINITY));
/// assert!(r.frame.loss().is_some_and(f64::is_nan));
/// assert_eq!((r.frame.rank, r.world), (Some(3), Some(4)));
/// # Ok::<(), gradtone_ingest::LineError>(())
/// ```
pub fn parse_record(line: &str) -> Result<Record, LineError> {
    let mut de = serde_json::Deserializer::from_str(line);
    let rec = de
        .deserialize_map(RecordVisitor)
        .and_then(|r| de.end().map(|()| r))
        .map_err(|e| LineError::from_json(&e))?;
    if rec.version == 0 {
        return Err(LineError::Version { version: 0 });
    }
    Ok(rec)
}

/// Parses one line of the v1 format into a [`Frame`] (see [`parse_record`]).
///
/// ```
/// let f = gradtone_ingest::parse_line(r#"{"step":3,"values":{"conv1":0.5,"fc1":"nan"}}"#)?;
/// assert_eq!(f.step, 3);
/// assert!(f.value("fc1").is_some_and(f64::is_nan));
/// # Ok::<(), gradtone_ingest::LineError>(())
/// ```
pub fn parse_line(line: &str) -> Result<Frame, LineError> {
    parse_record(line).map(|r| r.frame)
}

/// Parses raw line bytes: checks UTF-8, drops a `\r` and a UTF-8 byte-order mark.
pub(crate) fn parse_bytes(line: &[u8]) -> Result<Record, LineError> {
    let text = std::str::from_utf8(line).map_err(|e| LineError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    parse_record(text)
}

/// Whether a line has nothing but whitespace (skipped silently, not malformed).
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The top-level object's known keys.
enum Key {
    V,
    Step,
    Values,
    Losses,
    Rank,
    World,
    T,
    Clip,
    Params,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "v" => Key::V,
                    "step" => Key::Step,
                    "values" => Key::Values,
                    "losses" => Key::Losses,
                    "rank" => Key::Rank,
                    "world" => Key::World,
                    "t" => Key::T,
                    "clip" => Key::Clip,
                    "params" => Key::Params,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object like {\"step\":0,\"values\":{...}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut v = None;
        let mut step = None;
        let mut values = None;
        let mut losses = None;
        let mut rank = None;
        let mut world = None;
        let mut t = None;
        let mut clip = None;
        let mut params = None;
        fn once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, x: T) -> Result<(), E> {
            if slot.is_some() {
                return Err(E::duplicate_field(name));
            }
            *slot = Some(x);
            Ok(())
        }
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::V => once(
                    &mut v,
                    "v",
                    map.next_value_seed(Int::new("v", 0, u64::MAX))?,
                )?,
                Key::Step => once(
                    &mut step,
                    "step",
                    map.next_value_seed(Int::new("step", 0, u64::MAX))?,
                )?,
                Key::Values => once(
                    &mut values,
                    "values",
                    map.next_value_seed(NamedList("values"))?,
                )?,
                Key::Losses => once(
                    &mut losses,
                    "losses",
                    map.next_value_seed(NamedList("losses"))?,
                )?,
                Key::Rank => once(
                    &mut rank,
                    "rank",
                    map.next_value_seed(Int::new("rank", 0, u64::from(MAX_WORLD) - 1))?,
                )?,
                Key::World => once(
                    &mut world,
                    "world",
                    map.next_value_seed(Int::new("world", 1, MAX_WORLD.into()))?,
                )?,
                Key::T => once(&mut t, "t", map.next_value::<f64>()?)?,
                Key::Clip => {
                    let v = map.next_value::<serde_json::Value>()?;
                    let c = v.as_f64().filter(|c| c.is_finite() && *c > 0.0);
                    let Some(c) = c else {
                        // Name the kind, not the value: it may be arbitrarily long.
                        let found = match &v {
                            serde_json::Value::Number(n) => n.to_string(),
                            serde_json::Value::String(_) => "a string".into(),
                            serde_json::Value::Null => "null".into(),
                            serde_json::Value::Bool(b) => b.to_string(),
                            serde_json::Value::Array(_) => "an array".into(),
                            serde_json::Value::Object(_) => "an object".into(),
                        };
                        return Err(de::Error::custom(format_args!(
                            "field `clip` must be a positive number (the max_norm given to clip_grad_norm_), found {found}"
                        )));
                    };
                    once(&mut clip, "clip", c)?;
                }
                Key::Params => once(
                    &mut params,
                    "params",
                    map.next_value_seed(NamedList("params"))?,
                )?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let step = step.ok_or_else(|| de::Error::missing_field("step"))?;
        let values = values.ok_or_else(|| de::Error::missing_field("values"))?;
        if let (Some(r), Some(w)) = (rank, world)
            && r >= w
        {
            return Err(de::Error::custom(format_args!(
                "`rank` {r} must be below `world` {w} (ranks are 0..world)"
            )));
        }
        // Both fit u32: checked by `Int`.
        let narrow = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
        Ok(Record {
            frame: Frame {
                step,
                values,
                losses: losses.unwrap_or_default(),
                rank: rank.map(narrow),
                clip,
                params: params.unwrap_or_default(),
            },
            version: v.unwrap_or(1),
            world: world.map(narrow),
            time: t,
        })
    }
}

/// An integer field with an allowed range, with messages that name the field.
struct Int {
    field: &'static str,
    min: u64,
    max: u64,
}

impl Int {
    fn new(field: &'static str, min: u64, max: u64) -> Self {
        Int { field, min, max }
    }
}

impl<'de> DeserializeSeed<'de> for Int {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Int {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an integer ≥ {} for `{}`", self.min, self.field)
    }

    fn visit_u64<E: de::Error>(self, x: u64) -> Result<u64, E> {
        if x < self.min || x > self.max {
            return Err(E::custom(format_args!(
                "`{}` must be an integer from {} to {}, found {x}",
                self.field, self.min, self.max
            )));
        }
        Ok(x)
    }

    fn visit_i64<E: de::Error>(self, x: i64) -> Result<u64, E> {
        match u64::try_from(x) {
            Ok(x) => self.visit_u64(x),
            Err(_) => Err(E::custom(format_args!(
                "`{}` must be an integer ≥ {}, found {x}",
                self.field, self.min
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<u64, E> {
        Err(E::custom(format_args!(
            "`{}` must be an integer, found {x}",
            self.field
        )))
    }
}

/// A JSON object name → number, kept in key order.
struct NamedList(&'static str);

impl<'de> DeserializeSeed<'de> for NamedList {
    type Value = Vec<Named>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Named>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NamedList {
    type Value = Vec<Named>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object name → number for `{}`", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Named>, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(Num {
                field: self.0,
                name: &name,
            })?;
            out.push(Named { name, value });
        }
        Ok(out)
    }
}

/// A number, or its non-finite spellings `"nan"`, `"inf"`, `"-inf"` (any case) and `null`.
struct Num<'a> {
    field: &'static str,
    name: &'a str,
}

/// The non-finite value a string spells, if it is one of the format's spellings.
pub(crate) fn non_finite(s: &str) -> Option<f64> {
    if s.eq_ignore_ascii_case("nan") {
        Some(f64::NAN)
    } else if s.eq_ignore_ascii_case("inf") {
        Some(f64::INFINITY)
    } else if s.eq_ignore_ascii_case("-inf") {
        Some(f64::NEG_INFINITY)
    } else {
        None
    }
}

impl<'de> DeserializeSeed<'de> for Num<'_> {
    type Value = f64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Num<'_> {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a number, \"nan\", \"inf\", \"-inf\" or null for `{}`.{:?}",
            self.field, self.name
        )
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<f64, E> {
        Ok(x)
    }

    fn visit_u64<E: de::Error>(self, x: u64) -> Result<f64, E> {
        Ok(x as f64)
    }

    fn visit_i64<E: de::Error>(self, x: i64) -> Result<f64, E> {
        Ok(x as f64)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<f64, E> {
        non_finite(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }

    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
}

/// Reads the JSONL stream format from any `BufRead`, skipping and counting malformed lines.
///
/// Iterates [`Frame`]s; see [`FrameSource`] for the diagnostics and the I/O error that may end
/// the stream. Blank lines are skipped silently; an unterminated last line is parsed like any
/// other (a truncated write is then counted as malformed).
///
/// ```no_run
/// use gradtone_ingest::{FrameSource, JsonlReader};
/// let mut src = JsonlReader::open("run.jsonl")?;
/// src.set_reporter(std::sync::Arc::new(|msg| eprintln!("warning: {msg}")));
/// for frame in src.by_ref() {
///     println!("step {} has {} values", frame.step, frame.values.len());
/// }
/// if let Some(e) = src.take_error() {
///     return Err(e);
/// }
/// if let Some(s) = src.diagnostics().summary() {
///     eprintln!("{s}");
/// }
/// # Ok::<(), gradtone_ingest::IngestError>(())
/// ```
pub struct JsonlReader<R: BufRead> {
    reader: R,
    /// Where lines that are not frames go (see [`JsonlReader::pass_through`]).
    echo: Option<Box<dyn std::io::Write + Send>>,
    lines: LineBuf,
    line_no: u64,
    tally: Tally,
    error: Option<IngestError>,
    done: bool,
}

impl JsonlReader<BufReader<File>> {
    /// Opens a JSONL file; messages name it by its path.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IngestError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| IngestError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JsonlReader::new(
            BufReader::with_capacity(64 * 1024, file),
            &path.display().to_string(),
        ))
    }
}

impl<R: BufRead> JsonlReader<R> {
    /// Reads from `reader`; `name` (a path, `stdin`) is used in messages.
    pub fn new(reader: R, name: &str) -> Self {
        JsonlReader {
            reader,
            echo: None,
            lines: LineBuf::new(MAX_LINE_BYTES),
            line_no: 0,
            tally: Tally::new(name.to_string()),
            error: None,
            done: false,
        }
    }
}

impl<R: BufRead> JsonlReader<R> {
    /// Writes every line that is not a frame to `out`, unchanged (a training script's own
    /// prints, when its stdout is piped in), instead of counting it as malformed. Only a line
    /// that looks like a damaged frame (`{"…` with a `"step"`) is still reported. Overlong
    /// lines are skipped unread, as always.
    ///
    /// ```
    /// use gradtone_ingest::{FrameSource, JsonlReader};
    /// let text = "epoch 1 | loss 0.5\n{\"step\":0,\"values\":{\"fc1\":0.5}}\n";
    /// let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// struct W(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    /// impl std::io::Write for W {
    ///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
    ///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// }
    /// let mut src = JsonlReader::new(text.as_bytes(), "stdin").pass_through(Box::new(W(out.clone())));
    /// assert_eq!(src.by_ref().count(), 1);
    /// assert_eq!(src.diagnostics().malformed, 0);
    /// assert_eq!(&*out.lock().unwrap(), b"epoch 1 | loss 0.5\n");
    /// ```
    pub fn pass_through(mut self, out: Box<dyn std::io::Write + Send>) -> Self {
        self.echo = Some(out);
        self
    }

    /// With pass-through on: the line's record, or `None` after echoing it.
    fn echo_or_parse(&mut self, last: bool) -> Option<Record> {
        let raw = self.lines.line();
        let body = raw.strip_suffix(b"\r").unwrap_or(raw);
        let parsed = if is_blank(body) {
            None
        } else {
            let r = parse_bytes(body);
            let damaged_frame = r.is_err() && {
                let t = body.trim_ascii_start();
                let t = t.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(t);
                t.starts_with(b"{\"") && body.windows(6).any(|w| w == b"\"step\"")
            };
            match r {
                Ok(rec) => Some(Ok(rec)),
                Err(e) if damaged_frame => Some(Err(e)),
                Err(_) => None,
            }
        };
        match parsed {
            Some(Ok(rec)) => {
                let line_no = self.line_no;
                self.tally
                    .version(rec.version, format_args!("line {line_no}"));
                self.tally.diag.frames += 1;
                return Some(rec);
            }
            Some(Err(e)) => {
                let line_no = self.line_no;
                self.tally.malformed(format_args!("line {line_no}"), &e);
            }
            None => {}
        }
        if let Some(out) = &mut self.echo {
            let ok = out
                .write_all(raw)
                .and_then(|()| if last { Ok(()) } else { out.write_all(b"\n") })
                .and_then(|()| out.flush());
            if ok.is_err() {
                // Our stdout is gone (a closed pipe): the frames still matter, the echo stops.
                self.echo = None;
            }
        }
        None
    }
}

/// Handles one complete line: parses it or counts it. Shared by the file readers.
pub(crate) fn handle_line(
    tally: &mut Tally,
    got: Got,
    line: &[u8],
    line_no: u64,
    last: bool,
) -> Option<Record> {
    let result = parse_got(got, line)?;
    tally_line(tally, result, format_args!("line {line_no}"), last)
}

/// What one [`LineBuf::read`] result holds: `None` for nothing (end of input, a blank line),
/// else the record or why the line was rejected.
pub(crate) fn parse_got(got: Got, line: &[u8]) -> Option<Result<Record, LineError>> {
    match got {
        Got::Eof => None,
        Got::Overlong(len) => Some(Err(LineError::TooLong { len })),
        Got::Line => {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if is_blank(line) {
                return None;
            }
            Some(parse_bytes(line))
        }
    }
}

/// Counts a parsed line at `location` ("line 7"): a frame, or a malformed line (`last`: the
/// stream's unterminated last line, likely a truncated write). The record, if it is one.
pub(crate) fn tally_line(
    tally: &mut Tally,
    result: Result<Record, LineError>,
    location: fmt::Arguments<'_>,
    last: bool,
) -> Option<Record> {
    match result {
        Ok(rec) => {
            tally.version(rec.version, location);
            tally.diag.frames += 1;
            Some(rec)
        }
        Err(e) if last => {
            tally.malformed(
                location,
                &format_args!("{e} (the last line has no newline: a truncated write?)"),
            );
            None
        }
        Err(e) => {
            tally.malformed(location, &e);
            None
        }
    }
}

impl<R: BufRead> FrameSource for JsonlReader<R> {
    fn next_record(&mut self) -> Option<Record> {
        while !self.done {
            let (got, last) = match self.lines.read(&mut self.reader) {
                Ok(Got::Eof) => {
                    self.done = true;
                    (self.lines.take_partial(), true)
                }
                Ok(got) => (got, false),
                Err(source) => {
                    self.done = true;
                    self.error = Some(IngestError::Read {
                        name: self.tally.diag.source.clone(),
                        source,
                    });
                    return None;
                }
            };
            if got == Got::Eof {
                return None;
            }
            self.line_no += 1;
            if self.echo.is_some() && got == Got::Line {
                match self.echo_or_parse(last) {
                    Some(rec) => return Some(rec),
                    None => continue,
                }
            }
            let rec = handle_line(&mut self.tally, got, self.lines.line(), self.line_no, last);
            if rec.is_some() {
                return rec;
            }
        }
        None
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

frames_from_records!(JsonlReader<R>, R: BufRead);
