//! [`follow`]: read a JSONL file like `tail -f`, including what is appended later.

use std::fs::{File, Metadata};
use std::io::{BufReader, ErrorKind, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::diag::{Diagnostics, Tally};
use crate::error::IngestError;
use crate::jsonl::{MAX_LINE_BYTES, Record, handle_line};
use crate::lines::{Got, LineBuf};
use crate::{FrameSource, frames_from_records};
use gradtone_frame::Report;

/// How [`follow`] waits for more data and when it stops.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// How often to look for appended data at the end of the file (default 50 ms).
    pub poll: Duration,
    /// End the stream when no new byte arrived for this long (default: never).
    pub idle_timeout: Option<Duration>,
    /// End the stream soon (within about `poll`) after this flag is set.
    pub stop: Option<Arc<AtomicBool>>,
    /// Start at the current end of the file instead of its beginning (like `tail -f -n0`).
    pub from_end: bool,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            poll: Duration::from_millis(50),
            idle_timeout: None,
            stop: None,
            from_end: false,
        }
    }
}

/// Opens `path` and follows it: the frames already in it, then those of lines appended later.
///
/// When the file does not exist yet it is waited for (a training script creates it at its first
/// step) and read from its start once it appears; [`FollowReader::waiting`] tells. Any other
/// error opening it (permissions, a folder) is returned at once.
///
/// A line is parsed once its `\n` arrives. When the file shrinks (truncated and rewritten) it is
/// read again from its start; when the path names a new file (log rotation), the old file is read
/// to its end and the new one from its start. Both are noted in [`Diagnostics::warnings`], and
/// line numbers restart at 1 so they match the file. The stream ends when `opts.stop` is set or
/// when no frame arrived for `opts.idle_timeout` (counted from the last frame, or from the
/// start while none has); an unterminated last line is then parsed like any other.
///
/// ```no_run
/// use std::sync::{Arc, atomic::AtomicBool};
/// use gradtone_ingest::{follow, FollowOptions};
/// let stop = Arc::new(AtomicBool::new(false));
/// let opts = FollowOptions { stop: Some(stop.clone()), ..FollowOptions::default() };
/// for frame in follow("run.jsonl", opts)? {
///     println!("step {}", frame.step);
/// }
/// # Ok::<(), gradtone_ingest::IngestError>(())
/// ```
pub fn follow(path: impl AsRef<Path>, opts: FollowOptions) -> Result<FollowReader, IngestError> {
    let path = path.as_ref().to_path_buf();
    let mut current = None;
    let mut pos = 0;
    match open(&path) {
        Ok((file, meta)) => {
            let mut reader = BufReader::with_capacity(64 * 1024, file);
            if opts.from_end {
                pos = reader
                    .seek(SeekFrom::End(0))
                    .map_err(|source| IngestError::Open {
                        path: path.clone(),
                        source,
                    })?;
            }
            current = Some((reader, FileId::of(&meta)));
        }
        // Not there yet: waited for in `next_record`.
        Err(IngestError::Open { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(FollowReader {
        tally: Tally::new(path.display().to_string()),
        path,
        current,
        lines: LineBuf::new(MAX_LINE_BYTES),
        start_consumed: 0,
        start_pos: pos,
        line_no: 0,
        last_frame: Instant::now(),
        draining: false,
        opts,
        error: None,
        done: false,
    })
}

fn open(path: &Path) -> Result<(File, Metadata), IngestError> {
    let err = |source| IngestError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if meta.is_dir() {
        return Err(err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "it is a folder; give the JSONL file inside it",
        )));
    }
    Ok((file, meta))
}

/// Which file a path names, to notice rotation (on Unix: device and inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of(m: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileId(m.dev(), m.ino())
    }
    // Elsewhere rotation is not detected (truncation still is).
    #[cfg(not(unix))]
    fn of(_: &Metadata) -> Self {
        FileId(0, 0)
    }
}

/// The source [`follow`] returns; see there.
pub struct FollowReader {
    path: PathBuf,
    /// The open file and which one it is; `None` while waiting for it to appear.
    current: Option<(BufReader<File>, FileId)>,
    lines: LineBuf,
    /// `lines.consumed` when the current file was opened, and the byte offset it was opened at.
    start_consumed: u64,
    start_pos: u64,
    line_no: u64,
    /// When the last frame arrived (or the reader started).
    last_frame: Instant,
    /// A new file took the path; the old one is read to its end before switching.
    draining: bool,
    opts: FollowOptions,
    tally: Tally,
    error: Option<IngestError>,
    done: bool,
}

impl FollowReader {
    /// Whether the file has not appeared yet.
    pub fn waiting(&self) -> bool {
        self.current.is_none()
    }

    /// Whether the idle timeout has passed since the last frame.
    fn idle(&self) -> bool {
        self.opts
            .idle_timeout
            .is_some_and(|idle| self.last_frame.elapsed() >= idle)
    }

    /// A frame was read: the idle timeout counts from now.
    fn delivered(&mut self, rec: Option<Record>) -> Option<Record> {
        if rec.is_some() {
            self.last_frame = Instant::now();
        }
        rec
    }

    /// While waiting for the file: opens it if it appeared. `Ok(false)`: not yet.
    fn try_open(&mut self) -> Result<bool, IngestError> {
        match open(&self.path) {
            Ok((file, meta)) => {
                // A file that appears later is new: read all of it, even with `from_end`.
                self.current = Some((BufReader::with_capacity(64 * 1024, file), FileId::of(&meta)));
                self.start_consumed = self.lines.consumed;
                self.start_pos = 0;
                Ok(true)
            }
            Err(IngestError::Open { source, .. }) if source.kind() == ErrorKind::NotFound => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn stopped(&self) -> bool {
        self.opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// The pending unterminated line, parsed as the last line of its file.
    fn finish_partial(&mut self) -> Option<Record> {
        let got = self.lines.take_partial();
        if got == Got::Eof {
            return None;
        }
        self.line_no += 1;
        handle_line(&mut self.tally, got, self.lines.line(), self.line_no, true)
    }

    /// At the end of the data: checks for truncation or rotation. Returns whether it switched
    /// to the start of a file, and the unterminated last line of a rotated-away file, if any.
    fn check_file(&mut self) -> std::io::Result<(bool, Option<Record>)> {
        // The path may be missing for a moment during rotation: keep the old file then.
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return Ok((false, None));
        };
        let Some((reader, id)) = &mut self.current else {
            return Ok((false, None));
        };
        if FileId::of(&meta) != *id {
            // Read the old file to its end once more first: lines appended just before the
            // rename must not be lost.
            if !self.draining {
                self.draining = true;
                return Ok((true, None));
            }
            self.draining = false;
            let Ok((file, meta)) = open(&self.path) else {
                return Ok((false, None));
            };
            // The old file was read to its end: a line there without newline is complete now.
            let rec = self.finish_partial();
            self.lines.reset();
            self.current = Some((BufReader::with_capacity(64 * 1024, file), FileId::of(&meta)));
            self.restarted("the file was replaced (rotated)");
            return Ok((true, rec));
        }
        if meta.len() < self.start_pos + (self.lines.consumed - self.start_consumed) {
            // A partial line from before the truncation is gone from the file: drop it.
            self.lines.reset();
            reader.seek(SeekFrom::Start(0))?;
            self.restarted("the file was truncated");
            return Ok((true, None));
        }
        Ok((false, None))
    }

    /// Bookkeeping after switching to the start of a (new or truncated) file.
    fn restarted(&mut self, why: &str) {
        self.start_consumed = self.lines.consumed;
        self.start_pos = 0;
        self.line_no = 0;
        let msg = format!("{}: {why}; reading it from its start", self.path.display());
        self.tally.warn(msg);
    }

    fn fail(&mut self, source: std::io::Error) -> Option<Record> {
        self.done = true;
        self.error = Some(IngestError::Read {
            name: self.tally.diag.source.clone(),
            source,
        });
        None
    }
}

impl FrameSource for FollowReader {
    fn next_record(&mut self) -> Option<Record> {
        while !self.done {
            if self.stopped() {
                self.done = true;
                let rec = self.finish_partial();
                return self.delivered(rec);
            }
            let Some((reader, _)) = &mut self.current else {
                match self.try_open() {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        self.done = true;
                        self.error = Some(e);
                        return None;
                    }
                }
                if self.idle() {
                    self.done = true;
                    let msg = format!(
                        "{}: the file never appeared (waited {:.1} s)",
                        self.path.display(),
                        self.last_frame.elapsed().as_secs_f64()
                    );
                    self.tally.warn(msg);
                    return None;
                }
                std::thread::sleep(self.opts.poll);
                continue;
            };
            match self.lines.read(reader) {
                Ok(Got::Eof) => {
                    match self.check_file() {
                        Ok((_, Some(rec))) => return self.delivered(Some(rec)),
                        Ok((true, None)) => continue,
                        Ok((false, None)) => {}
                        Err(e) => return self.fail(e),
                    }
                    if self.idle() {
                        self.done = true;
                        let rec = self.finish_partial();
                        return self.delivered(rec);
                    }
                    std::thread::sleep(self.opts.poll);
                }
                Ok(got) => {
                    self.line_no += 1;
                    let rec =
                        handle_line(&mut self.tally, got, self.lines.line(), self.line_no, false);
                    if rec.is_some() {
                        return self.delivered(rec);
                    }
                }
                Err(e) => return self.fail(e),
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

frames_from_records!(FollowReader);
