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

/// Iterates the records of an event file, one `Result<Event, TbError>` each.
///
/// What happens after an error (every error names the file and the record's byte offset):
/// - **data checksum mismatch** ([`TbError::BadCrc`] with `what == "data"`) or a record whose
///   bytes are not an `Event` ([`TbError::Decode`]): the length header was verified, so the
///   reader *resyncs*: it reports the error and goes on with the next record;
/// - **length checksum mismatch, truncation, or an I/O error**: the framing is lost, so the
///   reader reports the error once and then ends.
///
/// It never panics and never allocates more than the bytes it has actually read, whatever the
/// input.
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
    offset: u64,
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

impl<R: Read> EventReader<R> {
    /// Reads records from `inner`; `name` is the path used in error messages.
    pub fn new(inner: R, name: impl Into<PathBuf>) -> Self {
        EventReader {
            inner,
            path: name.into(),
            offset: 0,
            done: false,
        }
    }

    /// Byte offset of the next record to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Fills `buf` as far as the input goes; returns how many bytes it got.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, TbError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => return Err(self.io_error(source)),
            }
        }
        Ok(got)
    }

    fn io_error(&self, source: std::io::Error) -> TbError {
        TbError::Io {
            path: self.path.clone(),
            action: "read the event file",
            source,
        }
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

    /// The next record's data. `Ok(None)` at a clean end of input. Sets `done` on errors that
    /// lose the framing.
    fn next_record(&mut self) -> Result<Option<Vec<u8>>, TbError> {
        let start = self.offset;
        let mut header = [0u8; 12];
        let got = self.read_full(&mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < header.len() {
            return Err(self.truncated(start, "length header", 12, got as u64));
        }
        let (len_bytes, crc_bytes) = header.split_at(8);
        let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        let computed = masked_crc32c(len_bytes);
        if stored != computed {
            return Err(TbError::BadCrc {
                path: self.path.clone(),
                offset: start,
                what: "length",
                stored,
                computed,
            });
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(len_bytes);
        let len = u64::from_le_bytes(len);

        // `take` + `read_to_end` grows the buffer as bytes arrive, so a huge (but checksummed)
        // length in a short file cannot make us allocate it up front.
        let mut data = Vec::new();
        (&mut self.inner)
            .take(len)
            .read_to_end(&mut data)
            .map_err(|e| self.io_error(e))?;
        if (data.len() as u64) < len {
            return Err(self.truncated(start, "data", len, data.len() as u64));
        }
        let mut footer = [0u8; 4];
        let got = self.read_full(&mut footer)?;
        if got < footer.len() {
            return Err(self.truncated(start, "data checksum", 4, got as u64));
        }
        // The framing is intact from here on: later errors resync at the next record.
        self.offset = start + 12 + len + 4;
        self.done = false;
        let stored = u32::from_le_bytes(footer);
        let computed = masked_crc32c(&data);
        if stored != computed {
            return Err(TbError::BadCrc {
                path: self.path.clone(),
                offset: start,
                what: "data",
                stored,
                computed,
            });
        }
        Ok(Some(data))
    }
}

impl<R: Read> Iterator for EventReader<R> {
    type Item = Result<Event, TbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.offset;
        // Pessimistic: only a record whose framing checked out clears `done` again.
        self.done = true;
        match self.next_record() {
            Ok(None) => None,
            Ok(Some(data)) => {
                Some(
                    Event::decode(data.as_slice()).map_err(|source| TbError::Decode {
                        path: self.path.clone(),
                        offset: start,
                        source,
                    }),
                )
            }
            Err(e) => Some(Err(e)),
        }
    }
}
