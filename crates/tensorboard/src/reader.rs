//! TFRecord framing and [`EventReader`].

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::TbError;
use crate::proto::Event;

/// Added after the rotation in [`masked_crc32c`] (TFRecord's constant).
const MASK_DELTA: u32 = 0xa282_ead8;

/// TFRecord's masked CRC32C: `((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping).
///
/// Masking keeps a CRC of data that itself contains CRCs from being trivially zero.
///
/// ```
/// // CRC32C("123456789") is the published check value 0xe3069283.
/// assert_eq!(gradtone_tensorboard::masked_crc32c(b"123456789"), 0xc78a_b0e5);
/// ```
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(MASK_DELTA)
}

/// Frames `data` as one TFRecord: u64 LE length, masked CRC32C of those 8 bytes (u32 LE),
/// the data, masked CRC32C of the data (u32 LE). Appends to `out`.
pub fn frame_record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.reserve(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// The largest record [`EventReader`] accepts, in bytes. TensorBoard's records are small (a
/// scalar is ~50 bytes, an audio clip a few MB); a length above this is damage, and the reader
/// resyncs instead of reading that far.
pub const MAX_RECORD_BYTES: u64 = 256 << 20;

/// Iterates the records of an event file, one `Result<Event, TbError>` each.
///
/// Damage is skipped, never fatal (every error names the file and the byte offset):
/// - **data checksum mismatch** ([`TbError::BadCrc`] with `what == "data"`) or a record whose
///   bytes are not an `Event` ([`TbError::Decode`]): the length header was verified, so the
///   reader reports the error and goes on with the next record;
/// - **length checksum mismatch**, a length above [`MAX_RECORD_BYTES`], or a length that runs
///   past the end of the file while a valid record follows: the reader reports it once
///   ([`TbError::Damaged`]) and *resyncs* on the next offset where a 12-byte header (length and
///   the masked CRC of the length) is valid;
/// - a last record cut short (a writer still writing it): [`TbError::Truncated`], then the end.
///
/// Only an I/O error ends the reading early. It never panics, and never allocates more than the
/// bytes it has actually read (at most one record, [`MAX_RECORD_BYTES`], plus a read buffer).
///
/// ```no_run
/// # fn main() -> Result<(), gradtone_tensorboard::TbError> {
/// for event in gradtone_tensorboard::EventReader::open("runs/a/events.out.tfevents.1")? {
///     let event = event?;
///     println!("step {}", event.step);
/// }
/// # Ok(()) }
/// ```
pub struct EventReader<R> {
    inner: R,
    path: PathBuf,
    /// Bytes read but not consumed; `window[0]` is at file offset `base`.
    window: Vec<u8>,
    /// Index in `window` of the next byte to parse.
    pos: usize,
    base: u64,
    eof: bool,
    done: bool,
}

impl EventReader<BufReader<File>> {
    /// Opens an event file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TbError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| TbError::Io {
            path: path.to_path_buf(),
            action: "open the event file",
            source,
        })?;
        Ok(Self::new(BufReader::new(file), path))
    }
}

/// Bytes asked of the input at a time.
const CHUNK: usize = 64 << 10;

/// What the reader found at the current offset.
enum Found {
    /// A record's data, verified.
    Record(Vec<u8>),
    /// A clean end of input.
    End,
}

impl<R: Read> EventReader<R> {
    /// Reads records from `inner`; `name` is the path used in error messages.
    pub fn new(inner: R, name: impl Into<PathBuf>) -> Self {
        EventReader {
            inner,
            path: name.into(),
            window: Vec::new(),
            pos: 0,
            base: 0,
            eof: false,
            done: false,
        }
    }

    /// Byte offset of the next record to read.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes at least `n` bytes available from `pos` if the input has them; returns how many
    /// are available (fewer only at the end of input). Grows by what is actually read.
    fn fill(&mut self, n: usize) -> Result<usize, TbError> {
        if self.pos > CHUNK && self.pos * 2 > self.window.len() {
            self.window.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        while self.window.len() - self.pos < n && !self.eof {
            let old = self.window.len();
            let want = CHUNK.max(n - (old - self.pos));
            self.window.resize(old + want.min(CHUNK * 16), 0);
            let got = loop {
                match self.inner.read(&mut self.window[old..]) {
                    Ok(g) => break g,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(source) => {
                        self.window.truncate(old);
                        return Err(self.io_error(source));
                    }
                }
            };
            self.window.truncate(old + got);
            if got == 0 {
                self.eof = true;
            }
        }
        Ok((self.window.len() - self.pos).min(n))
    }

    fn io_error(&self, source: std::io::Error) -> TbError {
        TbError::Io {
            path: self.path.clone(),
            action: "read the event file",
            source,
        }
    }

    /// The record length if a valid header (length and its masked CRC) starts at window index
    /// `at` (12 bytes must be there).
    fn header_at(&self, at: usize) -> Option<u64> {
        let h = &self.window[at..at + 12];
        let stored = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        (stored == masked_crc32c(&h[..8])).then(|| {
            let mut len = [0u8; 8];
            len.copy_from_slice(&h[..8]);
            u64::from_le_bytes(len)
        })
    }

    /// Moves `pos` to the next offset after the current one where a valid header with a
    /// plausible length starts; `false` when the input ends first (then `pos` is at the end).
    fn resync(&mut self) -> Result<bool, TbError> {
        self.pos += 1;
        loop {
            if self.fill(12)? < 12 {
                self.pos = self.window.len();
                return Ok(false);
            }
            if self
                .header_at(self.pos)
                .is_some_and(|len| len <= MAX_RECORD_BYTES)
            {
                return Ok(true);
            }
            self.pos += 1;
        }
    }

    /// Reports damage at `start` after resyncing: the bytes skipped up to the next header.
    fn damaged(&mut self, start: u64, why: String) -> Result<TbError, TbError> {
        let found = self.resync()?;
        Ok(TbError::Damaged {
            path: self.path.clone(),
            offset: start,
            skipped: self.offset() - start,
            why,
            resynced: found,
        })
    }

    /// The next record. `Err` items are reported by the iterator; the reader is positioned
    /// after the damage (or `done` is set).
    fn next_record(&mut self) -> Result<Found, TbError> {
        let start = self.offset();
        let got = self.fill(12)?;
        if got == 0 {
            return Ok(Found::End);
        }
        if got < 12 {
            self.done = true;
            return Err(self.truncated(start, "length header", 12, got as u64));
        }
        let Some(len) = self.header_at(self.pos) else {
            let h = &self.window[self.pos..self.pos + 12];
            let stored = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
            let computed = masked_crc32c(&h[..8]);
            return Err(self.damaged(
                start,
                format!(
                    "length checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            )?);
        };
        if len > MAX_RECORD_BYTES {
            return Err(self.damaged(
                start,
                format!("its length field claims {len} bytes, more than the {MAX_RECORD_BYTES}-byte limit"),
            )?);
        }
        // `len` is at most MAX_RECORD_BYTES: fits in usize on every platform gradtone runs on.
        let need = 12 + len as usize + 4;
        let got = self.fill(need)?;
        if got < need {
            // Either the file ends inside its last record (a writer still writing), or the
            // length is damage and valid records follow: look for one.
            let here = self.pos;
            if self.resync()? {
                let skipped = self.offset() - start;
                return Err(TbError::Damaged {
                    path: self.path.clone(),
                    offset: start,
                    skipped,
                    why: format!(
                        "its length field claims {len} bytes but only {} follow",
                        got.saturating_sub(12)
                    ),
                    resynced: true,
                });
            }
            self.pos = here;
            self.done = true;
            let (what, needed, have) = if got < 12 + len as usize {
                ("data", len, got.saturating_sub(12) as u64)
            } else {
                ("data checksum", 4, (got - 12 - len as usize) as u64)
            };
            return Err(self.truncated(start, what, needed, have));
        }
        let data_at = self.pos + 12;
        let data = &self.window[data_at..data_at + len as usize];
        let f = &self.window[data_at + len as usize..data_at + len as usize + 4];
        let stored = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
        let computed = masked_crc32c(data);
        if stored != computed {
            // Most likely a damaged data byte under a good length, but the length could be
            // wrong too: look for the next header from the next byte, not `len` bytes on.
            self.resync()?;
            return Err(TbError::BadCrc {
                path: self.path.clone(),
                offset: start,
                what: "data",
                stored,
                computed,
            });
        }
        let data = data.to_vec();
        self.pos += need;
        Ok(Found::Record(data))
    }

    fn truncated(&self, offset: u64, what: &'static str, needed: u64, got: u64) -> TbError {
        TbError::Truncated {
            path: self.path.clone(),
            offset,
            what,
            needed,
            got,
        }
    }
}

impl<R: Read> Iterator for EventReader<R> {
    type Item = Result<Event, TbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.offset();
        match self.next_record() {
            Ok(Found::End) => {
                self.done = true;
                None
            }
            Ok(Found::Record(data)) => {
                Some(
                    Event::decode(data.as_slice()).map_err(|source| TbError::Decode {
                        path: self.path.clone(),
                        offset: start,
                        source,
                    }),
                )
            }
            Err(e) => {
                if matches!(e, TbError::Io { .. }) {
                    self.done = true;
                }
                if let TbError::Damaged {
                    resynced: false, ..
                } = e
                {
                    self.done = true;
                }
                Some(Err(e))
            }
        }
    }
}
