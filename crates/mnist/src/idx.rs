//! The IDX file format (u8 data only), raw or gzip-compressed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::MnistError;

/// One IDX file: its dimensions and its bytes (row-major, `dims.iter().product()` of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// Size of each dimension, outermost first (e.g. `[n, 28, 28]` for images).
    pub dims: Vec<usize>,
    /// The data, exactly as many bytes as `dims` say.
    pub data: Vec<u8>,
}

impl Idx {
    /// The file's magic number: `0x0000_08NN`, u8 data with `NN` dimensions.
    pub fn magic(&self) -> u32 {
        // read_idx only accepts u8 (0x08) data, so the magic follows from the dimensions.
        0x0800 | self.dims.len() as u32
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const U8_TYPE: u8 = 0x08;

/// Reads one IDX file holding u8 data (type code `0x08`).
///
/// Gzip is recognised by its magic bytes `1f 8b`, not by the file name. The data must be exactly
/// as long as the header says: shorter gives [`MnistError::Truncated`], longer
/// [`MnistError::TrailingData`]; a broken gzip stream gives [`MnistError::CorruptGzip`].
pub fn read_idx(path: &Path) -> Result<Idx, MnistError> {
    let io_err = |source| MnistError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut buffered = BufReader::with_capacity(1 << 16, file);
    let is_gzip = buffered
        .fill_buf()
        .map_err(io_err)?
        .starts_with(&GZIP_MAGIC);
    if is_gzip {
        read_from(path, MultiGzDecoder::new(buffered), true)
    } else {
        read_from(path, buffered, false)
    }
}

/// Parses the IDX stream; `gzip` says whether read errors mean a corrupt stream or an I/O failure.
fn read_from(path: &Path, mut reader: impl Read, gzip: bool) -> Result<Idx, MnistError> {
    let read_err = |source: std::io::Error| {
        if gzip {
            MnistError::CorruptGzip {
                path: path.to_path_buf(),
                cause: source,
            }
        } else {
            MnistError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let truncated = |expected: u64, got: u64| MnistError::Truncated {
        path: path.to_path_buf(),
        expected,
        got,
    };

    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic).map_err(read_err)?;
    if got < magic.len() {
        return Err(truncated(4, got as u64));
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(MnistError::NotIdx {
            path: path.to_path_buf(),
            magic: u32::from_be_bytes(magic),
        });
    }
    if magic[2] != U8_TYPE {
        return Err(MnistError::UnsupportedType {
            path: path.to_path_buf(),
            code: magic[2],
        });
    }
    let ndims = usize::from(magic[3]);
    let header_len = 4 + 4 * ndims as u64;

    let mut dim_bytes = vec![0u8; 4 * ndims];
    let got = read_up_to(&mut reader, &mut dim_bytes).map_err(read_err)?;
    if got < dim_bytes.len() {
        return Err(truncated(header_len, 4 + got as u64));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| MnistError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("dimensions {dims:?} overflow"),
        })?;

    // Grow with the data rather than trusting the header's size up front: a corrupt header must
    // not allocate gigabytes. Asking for one byte more tells trailing data apart, and makes a
    // well-sized gzip stream be read to its end, where the decoder checks its CRC trailer.
    let mut data = Vec::new();
    (&mut reader)
        .take(expected.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(read_err)?;
    let got = data.len() as u64;
    if got < expected {
        return Err(truncated(header_len + expected, header_len + got));
    }
    if got > expected {
        return Err(MnistError::TrailingData {
            path: path.to_path_buf(),
            expected: header_len + expected,
        });
    }
    Ok(Idx { dims, data })
}

/// Fills `buf` as far as the stream allows; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
