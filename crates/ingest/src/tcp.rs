//! [`TcpSource`]: JSONL lines over TCP connections, one connection per sender (the private
//! channel of `gradtone run`: a frame of any size, each `torchrun` rank on its own connection).

use std::io::{self, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::diag::{Diagnostics, Tally};
use crate::error::{IngestError, LineError};
use crate::jsonl::{MAX_LINE_BYTES, Record, parse_got, tally_line};
use crate::lines::{Got, LineBuf};
use crate::merge::MAX_WORLD;
use crate::{FrameSource, frames_from_records};
use gradtone_frame::Report;

/// Connections open at once, at most (one per rank: as many as a merged run can have ranks).
pub const MAX_CONNECTIONS: usize = MAX_WORLD as usize;

/// Lines parsed ahead of the consumer, over all connections. A sender that gets further ahead
/// waits in TCP's flow control (the hook then skips frames rather than slow the training).
const QUEUE: usize = 256;

/// How long a read or an accept waits before the stop flag is checked again.
const POLL: Duration = Duration::from_millis(50);

/// How long a connection's reader sleeps when nothing has arrived before it looks again. The
/// reader never waits *in* the socket: a sender's write that wakes a waiting reader costs the
/// training process about 0.1 ms on Linux (the wake-up, and the reader run on its CPU), one
/// that finds nobody waiting a few µs. A frame waits at most this long for us (at most
/// [`POLL`] after the connection has been quiet for [`QUIET_AFTER`]).
const PACE: Duration = Duration::from_millis(4);

/// A connection that sent nothing for this long is looked at every [`POLL`] instead of every
/// [`PACE`]: many idle connections cost no more than blocking reads with that timeout.
const QUIET_AFTER: Duration = Duration::from_secs(1);

/// After the stop flag: a connection that sends nothing for this many polls is done (what a
/// sender that just exited wrote is readable at once; a grandchild still holding the socket
/// open must not hold the stream open).
const DRAIN_QUIET_POLLS: u32 = 10;

/// After the stop flag: lines still read per connection, at most (a sender that goes on).
const DRAIN_MAX_LINES: u64 = 1 << 16;

/// After the stop flag: time a connection may keep its reader waiting in reads, in all. What a
/// sender that exited left is read at memory speed; one that goes on sending (an endless line,
/// a byte now and then) is cut off here instead of holding the stream open.
const DRAIN_READ_TIME: Duration = Duration::from_secs(2);

/// After the stop flag: bytes a connection may still be read, in all (more than the socket
/// buffers of a sender that exited can hold; a sender that goes on is cut off).
const DRAIN_MAX_BYTES: u64 = 64 << 20;

/// After the stop flag: connections still accepted, at most (a sender that keeps connecting
/// must not keep the accept loop going).
const DRAIN_MAX_ACCEPTS: usize = MAX_CONNECTIONS;

/// What a connection's reader hands to the source.
enum Event {
    /// A line: its record or why it was skipped. `last`: the connection's unterminated last
    /// line.
    Line {
        conn: u64,
        line: u64,
        result: Result<Record, LineError>,
        last: bool,
    },
    /// A notice (a connection refused or broken).
    Warn(String),
}

/// Receives JSONL lines over loopback TCP: any number of connections (up to
/// [`MAX_CONNECTIONS`] at once), each a stream of `\n`-terminated lines of any size up to
/// [`MAX_LINE_BYTES`] (longer lines are skipped unread and counted, as in files).
///
/// Each connection is read by its own thread, which parses its lines; the frames of all
/// connections come out in arrival order. At most a few hundred parsed lines wait for the
/// consumer, and each connection holds at most one line, so memory is bounded by the limits,
/// not by what senders send. The stream ends once the stop flag is set and every connection
/// has been read to its end (or has been quiet for half a second, or has kept sending for
/// two seconds of reads).
///
/// ```no_run
/// use std::sync::{Arc, atomic::AtomicBool};
/// use gradtone_ingest::TcpSource;
/// let src = TcpSource::loopback(Arc::new(AtomicBool::new(false)))?;
/// println!("send JSON lines to tcp://{}", src.local_addr());
/// for frame in src {
///     println!("step {}", frame.step);
/// }
/// # Ok::<(), gradtone_ingest::IngestError>(())
/// ```
pub struct TcpSource {
    rx: Receiver<Event>,
    addr: SocketAddr,
    tally: Tally,
    /// Raised when the source is dropped: the threads end without draining.
    closed: Arc<AtomicBool>,
    done: bool,
}

impl TcpSource {
    /// Listens on a free port of `127.0.0.1` (see [`local_addr`](Self::local_addr)); the
    /// stream ends after `stop` is set, once what was sent has been read.
    pub fn loopback(stop: Arc<AtomicBool>) -> Result<Self, IngestError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listen_err = |source| IngestError::Listen { addr, source };
        let listener = TcpListener::bind(addr).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        let (tx, rx) = sync_channel(QUEUE);
        let closed = Arc::new(AtomicBool::new(false));
        let ends = Ends {
            stop,
            closed: closed.clone(),
        };
        let accepting = Arc::new(AtomicBool::new(true));
        {
            let (ends, accepting) = (ends.clone(), accepting.clone());
            std::thread::Builder::new()
                .name("gradtone-tcp-wake".into())
                .spawn(move || wake_accept(addr, &ends, &accepting))
                .map_err(listen_err)?;
        }
        let accepted = accepting.clone();
        std::thread::Builder::new()
            .name("gradtone-tcp-accept".into())
            .spawn(move || {
                accept_loop(&listener, &tx, &ends);
                accepted.store(false, Ordering::SeqCst);
            })
            .map_err(|e| {
                accepting.store(false, Ordering::SeqCst); // the waker has nothing to wake
                listen_err(e)
            })?;
        Ok(TcpSource {
            rx,
            addr,
            tally: Tally::new(format!("tcp {addr}")),
            closed,
            done: false,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TcpSource {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

/// The two ways the threads are told to end.
#[derive(Clone)]
struct Ends {
    /// Drain what was sent, then end.
    stop: Arc<AtomicBool>,
    /// The source is gone: end now.
    closed: Arc<AtomicBool>,
}

impl Ends {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Accepts connections until the stop flag (after taking the ones already waiting).
///
/// The accept blocks, so a sender is read from its first frame on (a rank that connects a
/// moment after another must not lag behind it); [`wake_accept`] unblocks it once the stop
/// flag is raised or the source is dropped.
fn accept_loop(listener: &TcpListener, tx: &SyncSender<Event>, ends: &Ends) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut conn = 0u64;
    let mut after_stop = 0usize;
    loop {
        if ends.closed() {
            return;
        }
        if ends.stopping() {
            after_stop += 1;
            if after_stop > DRAIN_MAX_ACCEPTS || listener.set_nonblocking(true).is_err() {
                return;
            }
        }
        match listener.accept() {
            Ok((stream, _peer)) => {
                conn += 1;
                if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    let _ = tx.send(Event::Warn(format!(
                        "connection {conn} refused: {MAX_CONNECTIONS} connections are already \
                         open (one per rank is enough)"
                    )));
                    continue;
                }
                open.fetch_add(1, Ordering::SeqCst);
                let (tx2, ends2, open2) = (tx.clone(), ends.clone(), open.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("gradtone-tcp-{conn}"))
                    .spawn(move || {
                        read_connection(stream, conn, &tx2, &ends2);
                        open2.fetch_sub(1, Ordering::SeqCst);
                    });
                if let Err(e) = spawned {
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = tx.send(Event::Warn(format!(
                        "connection {conn} dropped: cannot start a thread to read it ({e})"
                    )));
                }
            }
            // Stopping, and every connection that was waiting has been taken.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of file descriptors and the like: the connections already open go on.
                if tx
                    .send(Event::Warn(format!("cannot accept a connection: {e}")))
                    .is_err()
                    || ends.stopping()
                {
                    return;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Waits for the stop flag (or the source's drop), then connects to the listener until the
/// accept loop has ended: the connection wakes its blocking accept (it sends nothing, so it
/// adds no line).
fn wake_accept(addr: SocketAddr, ends: &Ends, accepting: &AtomicBool) {
    while !ends.stopping() && !ends.closed() {
        std::thread::sleep(POLL);
    }
    while accepting.load(Ordering::SeqCst) {
        // Refused only when out of file descriptors: tried again until the accept has ended.
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        std::thread::sleep(POLL);
    }
}

/// Reads one connection's lines to its end; each line is parsed here and sent on.
fn read_connection(stream: TcpStream, conn: u64, tx: &SyncSender<Event>, ends: &Ends) {
    let warn = |what: &str, e: &io::Error| {
        let _ = tx.send(Event::Warn(format!(
            "connection {conn}: {what} ({e}); its frames so far were read"
        )));
    };
    // Non-blocking: [`Drain`] paces the reads (see [`PACE`]).
    if let Err(e) = stream.set_nonblocking(true) {
        warn("cannot set up the connection", &e);
        return;
    }
    let mut reader = BufReader::with_capacity(
        64 * 1024,
        Drain {
            stream,
            ends: ends.clone(),
            read_time: Duration::ZERO,
            read_bytes: 0,
            last_data: Instant::now(),
        },
    );
    let mut lines = LineBuf::new(MAX_LINE_BYTES);
    let mut line = 0u64;
    let mut quiet = 0u32;
    let mut after_stop = 0u64;
    loop {
        if ends.closed() {
            return;
        }
        let before = lines.consumed;
        let got = lines.read(&mut reader);
        let (got, last) = match got {
            Ok(Got::Eof) => (lines.take_partial(), true),
            Ok(got) => (got, false),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if lines.consumed != before {
                    quiet = 0;
                    continue;
                }
                if !ends.stopping() {
                    continue;
                }
                quiet += 1;
                if quiet < DRAIN_QUIET_POLLS {
                    continue;
                }
                // Given up: a line it began and never ended is reported, as at an end.
                (lines.take_partial(), true)
            }
            Err(e) => {
                warn("reading stopped", &e);
                return;
            }
        };
        quiet = 0;
        if got != Got::Eof {
            line += 1;
        }
        if let Some(result) = parse_got(got, lines.line()) {
            let event = Event::Line {
                conn,
                line,
                result,
                last,
            };
            if tx.send(event).is_err() {
                return; // the source is gone
            }
        }
        if last {
            return;
        }
        if ends.stopping() {
            after_stop += 1;
            if after_stop > DRAIN_MAX_LINES {
                return;
            }
        }
    }
}

/// A connection's stream that ends reading (an error) once the source is dropped, or once the
/// reads after the stop flag have taken [`DRAIN_READ_TIME`] or [`DRAIN_MAX_BYTES`]: a line reader inside an endless
/// line never returns between reads, so the limits must be checked here. The socket is
/// non-blocking: a read with nothing to take sleeps [`PACE`] and looks again, for up to
/// [`POLL`] (then `WouldBlock`, as a timeout).
struct Drain {
    stream: TcpStream,
    ends: Ends,
    /// Time spent in reads since the stop flag, and the bytes they read.
    read_time: Duration,
    read_bytes: u64,
    /// When the last bytes came (see [`QUIET_AFTER`]).
    last_data: Instant,
}

impl io::Read for Drain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = Instant::now();
        loop {
            if self.ends.closed() {
                return Err(io::Error::other("the source was closed"));
            }
            let stopping = self.ends.stopping();
            if stopping && (self.read_time >= DRAIN_READ_TIME || self.read_bytes >= DRAIN_MAX_BYTES)
            {
                return Err(io::Error::other(format!(
                    "still sending after the command ended ({} MiB or {} s of reads)",
                    DRAIN_MAX_BYTES >> 20,
                    DRAIN_READ_TIME.as_secs()
                )));
            }
            let t = Instant::now();
            let r = match self.stream.read(buf) {
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock && t.duration_since(start) < POLL =>
                {
                    // A connection quiet for a while (a training in its evaluation, a client
                    // that sends nothing) is looked at every POLL only, as a blocking read
                    // with that timeout would: idle connections cost what they did.
                    let quiet = self.last_data.elapsed() >= QUIET_AFTER;
                    std::thread::sleep(if quiet { POLL } else { PACE });
                    None
                }
                r => Some(r),
            };
            if let Some(Ok(n)) = &r {
                self.last_data = Instant::now();
                if stopping {
                    self.read_bytes += *n as u64;
                }
            }
            if stopping {
                self.read_time += t.elapsed();
            }
            if let Some(r) = r {
                return r;
            }
        }
    }
}

impl FrameSource for TcpSource {
    fn next_record(&mut self) -> Option<Record> {
        while !self.done {
            match self.rx.recv() {
                Ok(Event::Line {
                    conn,
                    line,
                    result,
                    last,
                }) => {
                    let at = format_args!("connection {conn} line {line}");
                    if let Some(rec) = tally_line(&mut self.tally, result, at, last) {
                        return Some(rec);
                    }
                }
                Ok(Event::Warn(msg)) => {
                    let msg = format!("{}: {msg}", self.tally.diag.source);
                    self.tally.warn(msg);
                }
                // Every thread has ended: the stop flag was raised and all was read.
                Err(_) => self.done = true,
            }
        }
        None
    }

    fn diagnostics(&self) -> &Diagnostics {
        &self.tally.diag
    }

    fn take_error(&mut self) -> Option<IngestError> {
        // A broken connection ends only that connection (a warning), never the stream.
        None
    }

    fn set_reporter(&mut self, reporter: Report) {
        self.tally.set_reporter(reporter);
    }
}

frames_from_records!(TcpSource);

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn source() -> (TcpSource, Arc<AtomicBool>) {
        let stop = Arc::new(AtomicBool::new(false));
        (TcpSource::loopback(stop.clone()).unwrap(), stop)
    }

    fn frame_line(step: usize, values: usize) -> String {
        let vals: Vec<String> = (0..values)
            .map(|i| format!("\"layer{i}.weight\":{}", 0.5 + i as f64 * 1e-3))
            .collect();
        format!("{{\"step\":{step},\"values\":{{{}}}}}\n", vals.join(","))
    }

    #[test]
    fn large_frames_from_several_connections_all_arrive() {
        let (mut src, stop) = source();
        let addr = src.local_addr();
        assert!(addr.ip().is_loopback());
        let line = frame_line(0, 5000); // ≈ 110 KB: more than a datagram can carry
        assert!(line.len() > 65_536, "{}", line.len());
        let senders: Vec<_> = (0..3u32)
            .map(|rank| {
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    for step in 0..4 {
                        let l = frame_line(step, 5000).replace(
                            "{\"step\"",
                            &format!("{{\"rank\":{rank},\"world\":3,\"step\""),
                        );
                        s.write_all(l.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        let frames: Vec<_> = src.by_ref().collect();
        assert_eq!(frames.len(), 12);
        for rank in 0..3 {
            let steps: Vec<u64> = frames
                .iter()
                .filter(|f| f.rank == Some(rank))
                .map(|f| f.step)
                .collect();
            assert_eq!(
                steps,
                [0, 1, 2, 3],
                "rank {rank}: one connection keeps its order"
            );
        }
        assert!(frames.iter().all(|f| f.values.len() == 5000));
        assert_eq!(src.diagnostics().malformed, 0);
        assert_eq!(src.diagnostics().summary(), None);
    }

    #[test]
    fn overlong_and_bad_lines_are_skipped_and_counted_by_connection() {
        let (mut src, stop) = source();
        let mut s = TcpStream::connect(src.local_addr()).unwrap();
        let mut data = b"{\"step\":0,\"values\":{\"a\":1}}\nnot json\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        data.extend_from_slice(b"\n{\"step\":1,\"values\":{\"a\":2}}\n{\"step\":2,\"val");
        s.write_all(&data).unwrap();
        drop(s);
        stop.store(true, Ordering::SeqCst);
        let steps: Vec<u64> = src.by_ref().map(|f| f.step).collect();
        assert_eq!(steps, [0, 1]);
        let d = src.diagnostics();
        assert_eq!(d.malformed, 3);
        let name = format!("tcp {}", src.local_addr());
        assert!(
            d.first_errors[0].starts_with(&format!("{name} connection 1 line 2: ")),
            "{:?}",
            d.first_errors
        );
        assert!(d.first_errors[1].contains("line 3: line of 1048586 bytes"));
        assert!(d.first_errors[2].contains("line 5: ") && d.first_errors[2].contains("truncated"));
    }

    #[test]
    fn a_sender_that_keeps_its_socket_open_does_not_hold_the_stream() {
        let (mut src, stop) = source();
        let mut s = TcpStream::connect(src.local_addr()).unwrap();
        s.write_all(b"{\"step\":7,\"values\":{\"a\":1}}\n{\"step\":8,\"val")
            .unwrap();
        stop.store(true, Ordering::SeqCst);
        let t = Instant::now();
        let steps: Vec<u64> = src.by_ref().map(|f| f.step).collect();
        assert_eq!(steps, [7]);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // The line it began and never ended is not lost silently.
        let d = src.diagnostics();
        assert_eq!(d.malformed, 1, "{:?}", d.first_errors);
        assert!(
            d.first_errors[0].contains("connection 1 line 2")
                && d.first_errors[0].contains("truncated"),
            "{:?}",
            d.first_errors
        );
        drop(s);
    }

    #[test]
    fn a_new_connection_is_read_at_once() {
        // A rank that connects a moment after another must not lag behind it (the rank merge
        // would call it silent): its first frame comes out without waiting for a poll of the
        // accept (which took up to 50 ms, 25 on average).
        let (mut src, stop) = source();
        let addr = src.local_addr();
        let mut waits = Vec::new();
        let mut keep = Vec::new();
        for step in 0..9 {
            let t = Instant::now();
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(frame_line(step, 1).as_bytes()).unwrap();
            let f = src.next().unwrap();
            waits.push(t.elapsed());
            assert_eq!(f.step, step as u64);
            keep.push(s);
            std::thread::sleep(Duration::from_millis(7)); // not in step with any poll
        }
        stop.store(true, Ordering::SeqCst);
        drop(keep);
        assert_eq!(src.count(), 0);
        waits.sort();
        assert!(waits[4] < Duration::from_millis(15), "median {:?}", waits);
    }

    /// Starts a sender that connects and calls `each` until it fails or 30 s pass, sets the
    /// stop flag once it has sent, and collects the stream on a thread: the frames and the
    /// warnings, or `None` when the stream did not end within 15 s.
    fn hostile_sender_after_stop(
        each: impl Fn(&mut TcpStream) -> io::Result<()> + Send + 'static,
    ) -> Option<(Vec<u64>, Vec<String>)> {
        let (mut src, stop) = source();
        let addr = src.local_addr();
        let sender = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(frame_line(3, 1).as_bytes()).unwrap();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(30) && each(&mut s).is_ok() {}
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let first = src.next().map(|f| f.step);
            stop.store(true, Ordering::SeqCst);
            let mut steps: Vec<u64> = first.into_iter().collect();
            steps.extend(src.by_ref().map(|f| f.step));
            let _ = tx.send((steps, src.diagnostics().warnings.clone()));
        });
        let out = rx.recv_timeout(Duration::from_secs(15)).ok();
        if out.is_some() {
            // Its connection was closed: its next write fails (at most 30 s otherwise).
            let _ = sender.join();
        }
        out
    }

    #[test]
    fn an_endless_line_after_the_stop_flag_does_not_hold_the_stream() {
        let chunk = vec![b'x'; 64 * 1024];
        let out = hostile_sender_after_stop(move |s| s.write_all(&chunk));
        let (steps, warnings) = out.expect("the stream did not end within 15 s");
        assert_eq!(steps, [3]);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("connection 1") && w.contains("after the command ended")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_sender_dribbling_bytes_after_the_stop_flag_does_not_hold_the_stream() {
        let out = hostile_sender_after_stop(|s| {
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(b"x")
        });
        let (steps, warnings) = out.expect("the stream did not end within 15 s");
        assert_eq!(steps, [3]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn no_connection_at_all_ends_at_the_stop_flag() {
        let (mut src, stop) = source();
        stop.store(true, Ordering::SeqCst);
        assert_eq!(src.by_ref().count(), 0);
        assert_eq!(src.diagnostics().frames, 0);
    }
}
