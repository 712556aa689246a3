//! Bounded line splitting over `BufRead`: a line longer than the limit is skipped without ever
//! being held in memory whole.

use std::io::{self, BufRead};

/// What [`LineBuf::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Got {
    /// A whole line is in [`LineBuf::line`] (without its `\n`).
    Line,
    /// A line of this many bytes (without `\n`) was longer than the limit and was skipped.
    Overlong(u64),
    /// The reader has no more bytes for now. An unterminated partial line may be kept; reading
    /// again later (a followed file) continues it.
    Eof,
}

/// Splits a byte stream into `\n`-terminated lines of at most `max` bytes.
pub(crate) struct LineBuf {
    buf: Vec<u8>,
    /// `Some(n)`: inside an overlong line, `n` bytes of it seen so far (none kept).
    overlong: Option<u64>,
    max: usize,
    /// Whether `buf` holds a line already returned (cleared on the next read).
    line_complete: bool,
    /// Total bytes consumed from readers, for position tracking by followers.
    pub(crate) consumed: u64,
}

impl LineBuf {
    pub(crate) fn new(max: usize) -> Self {
        LineBuf {
            buf: Vec::new(),
            overlong: None,
            max,
            line_complete: false,
            consumed: 0,
        }
    }

    /// The line found by the last [`Got::Line`].
    pub(crate) fn line(&self) -> &[u8] {
        &self.buf
    }

    /// The pending partial line as a final line (the stream ended without a newline): `Line`
    /// (in [`line`](Self::line)), `Overlong`, or `Eof` when there is none. Resets the state.
    pub(crate) fn take_partial(&mut self) -> Got {
        if self.line_complete {
            // The buffer holds a line already returned, not a partial one.
            self.buf.clear();
            self.line_complete = false;
        }
        if let Some(n) = self.overlong.take() {
            self.buf.clear();
            Got::Overlong(n)
        } else if self.buf.is_empty() {
            Got::Eof
        } else {
            self.line_complete = true;
            Got::Line
        }
    }

    /// Drops any partial line (a followed file was truncated or replaced).
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.overlong = None;
        self.line_complete = false;
    }

    /// Bytes currently allocated for the line buffer (bounded by about `max`).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends to the line, growing the buffer no further than `max` (the default doubling
    /// could allocate twice the limit).
    fn append(&mut self, bytes: &[u8]) {
        let need = self.buf.len() + bytes.len();
        if need > self.buf.capacity() {
            let target = (self.buf.capacity() * 2).max(need).min(self.max).max(need);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Reads the next line. A previous `Line` is cleared first.
    pub(crate) fn read<R: BufRead + ?Sized>(&mut self, r: &mut R) -> io::Result<Got> {
        if self.line_complete {
            self.buf.clear();
            self.line_complete = false;
        }
        loop {
            let avail = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(Got::Eof);
            }
            let (take, found) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if let Some(n) = &mut self.overlong {
                *n += take as u64;
            } else if self.buf.len() + take > self.max {
                self.overlong = Some((self.buf.len() + take) as u64);
                self.buf.clear();
            } else {
                self.append(&avail[..take]);
            }
            let used = take + usize::from(found);
            r.consume(used);
            self.consumed += used as u64;
            if found {
                if let Some(n) = self.overlong.take() {
                    return Ok(Got::Overlong(n));
                }
                self.line_complete = true;
                return Ok(Got::Line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    /// Reads every line of `data` through a `BufReader` of `cap` bytes.
    fn split(data: &[u8], cap: usize, max: usize) -> (Vec<Result<Vec<u8>, u64>>, usize) {
        let mut r = BufReader::with_capacity(cap, data);
        let mut lb = LineBuf::new(max);
        let mut out = Vec::new();
        let mut peak = 0;
        loop {
            let got = lb.read(&mut r).map_err(|e| e.to_string());
            peak = peak.max(lb.capacity());
            match got {
                Ok(Got::Line) => out.push(Ok(lb.line().to_vec())),
                Ok(Got::Overlong(n)) => out.push(Err(n)),
                Ok(Got::Eof) => {
                    match lb.take_partial() {
                        Got::Line => out.push(Ok(lb.line().to_vec())),
                        Got::Overlong(n) => out.push(Err(n)),
                        Got::Eof => {}
                    }
                    return (out, peak);
                }
                Err(e) => panic!("in-memory read failed: {e}"),
            }
        }
    }

    #[test]
    fn lines_split_across_buffer_refills() {
        let data = b"abc\n\nhello world\nlast";
        for cap in [1, 2, 3, 5, 64] {
            let (lines, _) = split(data, cap, 100);
            let want: Vec<Result<Vec<u8>, u64>> = vec![
                Ok(b"abc".to_vec()),
                Ok(Vec::new()),
                Ok(b"hello world".to_vec()),
                Ok(b"last".to_vec()),
            ];
            assert_eq!(lines, want, "buffer capacity {cap}");
        }
    }

    #[test]
    fn overlong_line_is_skipped_without_buffering_it() {
        let max = 1 << 20;
        let mut data = b"short\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 2 << 20));
        data.extend_from_slice(b"\nafter\n");
        data.extend(std::iter::repeat_n(b'y', max + 1)); // unterminated, too long
        let (lines, peak) = split(&data, 8192, max);
        assert_eq!(
            lines,
            vec![
                Ok(b"short".to_vec()),
                Err(2 << 20),
                Ok(b"after".to_vec()),
                Err(max as u64 + 1)
            ]
        );
        assert!(peak <= max, "line buffer grew to {peak} bytes, limit {max}");
        // A line of exactly the limit is still read.
        let mut exact = vec![b'z'; max];
        exact.push(b'\n');
        let (lines, peak) = split(&exact, 8192, max);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].as_ref().map(Vec::len), Ok(max));
        assert!(peak <= max, "{peak}");
    }

    #[test]
    fn take_partial_after_a_whole_line_is_empty() -> io::Result<()> {
        let mut lb = LineBuf::new(100);
        let mut r: &[u8] = b"one\ntw";
        assert_eq!(lb.read(&mut r)?, Got::Line);
        assert_eq!(
            lb.take_partial(),
            Got::Eof,
            "a returned line is not a partial one"
        );
        assert_eq!(lb.read(&mut r)?, Got::Eof);
        assert_eq!(lb.take_partial(), Got::Line);
        assert_eq!(lb.line(), b"tw");
        Ok(())
    }
}
