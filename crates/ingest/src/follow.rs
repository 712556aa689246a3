//! [`follow`]: read a JSONL file like `tail -f`, including what is appended later.

use std::fs::{File, Metadata};
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::diag::{Diagnostics, Reporter, Tally};
use crate::error::IngestError;
use crate::jsonl::{MAX_LINE_BYTES, Record, handle_line};
use crate::lines::{Got, LineBuf};
use crate::{FrameSource, frames_from_records};

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
/// A line is parsed once its `\n` arrives. When the file shrinks (truncated and rewritten) it is
/// read again from its start; when the path names a new file (log rotation), the old file is read
/// to its end and the new one from its start. Both are noted in [`Diagnostics::warnings`], and
/// line numbers restart at 1 so they match the file. The stream ends when `opts.stop` is set or
/// after `opts.idle_timeout`; an unterminated last line is then parsed like any other.
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
    let (file, meta) = open(&path)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut pos = 0;
    if opts.from_end {
        pos = reader
            .seek(SeekFrom::End(0))
            .map_err(|source| IngestError::Open {
                path: path.clone(),
                source,
            })?;
    }
    Ok(FollowReader {
        tally: Tally::new(path.display().to_string()),
        path,
        reader,
        id: FileId::of(&meta),
        lines: LineBuf::new(MAX_LINE_BYTES),
        start_consumed: 0,
        start_pos: pos,
        line_no: 0,
        last_consumed: 0,
        last_data: Instant::now(),
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
    reader: BufReader<File>,
    id: FileId,
    lines: LineBuf,
    /// `lines.consumed` when the current file was opened, and the byte offset it was opened at.
    start_consumed: u64,
    start_pos: u64,
    line_no: u64,
    last_consumed: u64,
    last_data: Instant,
    /// A new file took the path; the old one is read to its end before switching.
    draining: bool,
    opts: FollowOptions,
    tally: Tally,
    error: Option<IngestError>,
    done: bool,
}

impl FollowReader {
    /// The byte offset in the current file up to which lines were taken.
    fn pos(&self) -> u64 {
        self.start_pos + (self.lines.consumed - self.start_consumed)
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
        if FileId::of(&meta) != self.id {
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
            self.reader = BufReader::with_capacity(64 * 1024, file);
            self.id = FileId::of(&meta);
            self.restarted("the file was replaced (rotated)");
            return Ok((true, rec));
        }
        if meta.len() < self.pos() {
            // A partial line from before the truncation is gone from the file: drop it.
            self.lines.reset();
            self.reader.seek(SeekFrom::Start(0))?;
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
                return self.finish_partial();
            }
            match self.lines.read(&mut self.reader) {
                Ok(Got::Eof) => {
                    if self.lines.consumed != self.last_consumed {
                        self.last_consumed = self.lines.consumed;
                        self.last_data = Instant::now();
                    }
                    match self.check_file() {
                        Ok((_, Some(rec))) => return Some(rec),
                        Ok((true, None)) => continue,
                        Ok((false, None)) => {}
                        Err(e) => return self.fail(e),
                    }
                    if let Some(idle) = self.opts.idle_timeout
                        && self.last_data.elapsed() >= idle
                    {
                        self.done = true;
                        return self.finish_partial();
                    }
                    std::thread::sleep(self.opts.poll);
                }
                Ok(got) => {
                    self.line_no += 1;
                    self.last_data = Instant::now();
                    if let Some(rec) =
                        handle_line(&mut self.tally, got, self.lines.line(), self.line_no, false)
                    {
                        return Some(rec);
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

    fn set_reporter(&mut self, reporter: Reporter) {
        self.tally.set_reporter(reporter);
    }
}

frames_from_records!(FollowReader);
