//! [`UdpSource`]: JSONL lines in UDP datagrams.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::diag::{Diagnostics, Tally};
use crate::error::IngestError;
use crate::jsonl::{Record, is_blank, parse_bytes};
use crate::{FrameSource, frames_from_records};
use gradtone_frame::Report;

/// How a UDP (or OSC) source waits and when it stops.
#[derive(Clone, Debug)]
pub struct UdpOptions {
    /// How long one receive waits before the stop flag and idle timeout are checked again
    /// (default 50 ms).
    pub poll: Duration,
    /// End the stream after waiting this long for a frame (default: never), counted from the
    /// last frame, or from the start while none has. Datagrams that carry no frame do not
    /// reset it; time the consumer spends on a frame does not count.
    pub idle_timeout: Option<Duration>,
    /// End the stream soon (within about `poll`) after this flag is set.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            poll: Duration::from_millis(50),
            idle_timeout: None,
            stop: None,
        }
    }
}

/// A bound UDP socket that receives with a timeout, so that a stop flag is honoured.
pub(crate) struct Receiver {
    socket: UdpSocket,
    pub(crate) addr: SocketAddr,
    buf: Vec<u8>,
    pub(crate) opts: UdpOptions,
    /// Time spent waiting in `recv` since the last frame arrived (or the socket was bound), for
    /// the idle timeout: time the consumer spends on a frame does not count (a datagram waiting
    /// in the socket after a slow sink is not idleness), time spent receiving garbage does.
    waited: Duration,
    /// Set when `recv` ended because of the idle timeout.
    pub(crate) idle_ended: bool,
    /// Datagrams read since the stop flag was raised.
    drained: usize,
}

/// Datagrams still read after the stop flag, at most.
const DRAIN_MAX: usize = 1 << 16;

/// The hint for a source that timed out without receiving anything.
pub(crate) fn nothing_received(name: &str, idle: Option<Duration>) -> String {
    let idle = idle.map_or(0.0, |d| d.as_secs_f64());
    format!(
        "{name}: no frame arrived in {idle:.1} s; is the sender pointed at this address and \
         port (and this protocol)?"
    )
}

impl Receiver {
    pub(crate) fn bind(addr: SocketAddr, opts: UdpOptions) -> Result<Self, IngestError> {
        let bind_err = |source| IngestError::Bind { addr, source };
        let socket = UdpSocket::bind(addr).map_err(bind_err)?;
        // A zero timeout would mean "block forever" to the OS call.
        let poll = opts.poll.max(Duration::from_millis(1));
        socket.set_read_timeout(Some(poll)).map_err(bind_err)?;
        let addr = socket.local_addr().map_err(bind_err)?;
        Ok(Receiver {
            socket,
            addr,
            // The largest possible UDP payload (65,507 bytes over IPv4) fits.
            buf: vec![0; 65_536],
            opts,
            waited: Duration::ZERO,
            idle_ended: false,
            drained: 0,
        })
    }

    /// Datagrams the OS dropped for this socket because its receive queue was full (the
    /// listener fell behind the sender): Linux reports it per socket in /proc/net/udp; 0
    /// elsewhere or when it cannot be read.
    pub(crate) fn os_drops(&self) -> u64 {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let link = std::fs::read_link(format!("/proc/self/fd/{}", self.socket.as_raw_fd()));
            let inode = link.ok().and_then(|l| {
                let l = l.to_str()?;
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
            });
            let Some(inode) = inode else {
                return 0;
            };
            for table in ["/proc/net/udp", "/proc/net/udp6"] {
                let Ok(text) = std::fs::read_to_string(table) else {
                    continue;
                };
                for line in text.lines().skip(1) {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    if cols.get(9) == Some(&inode.as_str()) {
                        return cols.last().and_then(|d| d.parse().ok()).unwrap_or(0);
                    }
                }
            }
            0
        }
        #[cfg(not(target_os = "linux"))]
        0
    }

    /// A frame arrived: the idle timeout counts from now.
    pub(crate) fn frame_arrived(&mut self) {
        self.waited = Duration::ZERO;
    }

    fn idle(&self) -> bool {
        self.opts
            .idle_timeout
            .is_some_and(|idle| self.waited >= idle)
    }

    /// The next datagram; `Ok(None)` when stopped or idle for too long.
    pub(crate) fn recv(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            if self
                .opts
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                // Stopped: what already arrived is still read (a sender that just exited has
                // its last steps queued here), up to a bound in case the sender goes on.
                self.drained += 1;
                if self.drained > DRAIN_MAX || self.socket.set_nonblocking(true).is_err() {
                    return Ok(None);
                }
                return match self.socket.recv_from(&mut self.buf) {
                    Ok((n, _from)) => Ok(Some(&self.buf[..n])),
                    Err(_) => Ok(None),
                };
            }
            // Checked before receiving, so that a flood of garbage cannot hold the stream open
            // past the timeout, and a datagram once received is always handed on (counted).
            if self.idle() {
                self.idle_ended = true;
                return Ok(None);
            }
            let t = Instant::now();
            let got = self.socket.recv_from(&mut self.buf);
            self.waited += t.elapsed();
            match got {
                Ok((n, _from)) => return Ok(Some(&self.buf[..n])),
                Err(e) => match e.kind() {
                    // Timeouts; and ICMP "port unreachable" echoes of our own earlier sends,
                    // which some systems report on the receiving socket: not fatal.
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted
                    | io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset => {}
                    _ => return Err(e),
                },
            }
        }
    }
}

/// Receives JSONL lines in UDP datagrams (each datagram carries one or more whole lines).
///
/// Binds loopback by default ([`UdpSource::loopback`]), so metrics are not exposed to the
/// network unless asked. A malformed line is counted with its datagram and line number
/// (`udp 127.0.0.1:9000 datagram 3 line 2: ...`).
///
/// ```no_run
/// use gradtone_ingest::{UdpOptions, UdpSource};
/// let src = UdpSource::loopback(9000, UdpOptions::default())?;
/// for frame in src {
///     println!("step {}", frame.step);
/// }
/// # Ok::<(), gradtone_ingest::IngestError>(())
/// ```
pub struct UdpSource {
    rx: Receiver,
    queue: VecDeque<Record>,
    tally: Tally,
    error: Option<IngestError>,
    done: bool,
}

impl UdpSource {
    /// Listens on `127.0.0.1:port` (port 0 picks a free port, see
    /// [`local_addr`](Self::local_addr)).
    pub fn loopback(port: u16, opts: UdpOptions) -> Result<Self, IngestError> {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), opts)
    }

    /// Listens on `addr` (e.g. `0.0.0.0:9000` to accept metrics from other machines).
    pub fn bind(addr: SocketAddr, opts: UdpOptions) -> Result<Self, IngestError> {
        let rx = Receiver::bind(addr, opts)?;
        Ok(UdpSource {
            tally: Tally::new(format!("udp {}", rx.addr)),
            rx,
            queue: VecDeque::new(),
            error: None,
            done: false,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.rx.addr
    }
}

impl FrameSource for UdpSource {
    fn next_record(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.queue.pop_front() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            match self.rx.recv() {
                Ok(Some(datagram)) => {
                    self.tally.diag.datagrams += 1;
                    let d = self.tally.diag.datagrams;
                    let queued = self.queue.len();
                    for (i, line) in datagram.split(|&b| b == b'\n').enumerate() {
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        if is_blank(line) {
                            continue;
                        }
                        let n = i + 1;
                        match parse_bytes(line) {
                            Ok(rec) => {
                                self.tally
                                    .version(rec.version, format_args!("datagram {d} line {n}"));
                                self.tally.diag.frames += 1;
                                self.queue.push_back(rec);
                            }
                            Err(e) => self
                                .tally
                                .malformed(format_args!("datagram {d} line {n}"), &e),
                        }
                    }
                    if self.queue.len() != queued {
                        self.rx.frame_arrived();
                    }
                }
                Ok(None) => {
                    self.done = true;
                    self.tally.diag.os_dropped = self.rx.os_drops();
                    if self.rx.idle_ended && self.tally.diag.frames == 0 {
                        let msg =
                            nothing_received(&self.tally.diag.source, self.rx.opts.idle_timeout);
                        self.tally.warn(msg);
                    }
                }
                Err(source) => {
                    self.done = true;
                    self.tally.diag.os_dropped = self.rx.os_drops();
                    self.error = Some(IngestError::Read {
                        name: self.tally.diag.source.clone(),
                        source,
                    });
                }
            }
        }
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

frames_from_records!(UdpSource);
