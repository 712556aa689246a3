//! PulseAudio backend: the native protocol over the server's Unix socket, spoken directly with
//! the pure-Rust `pulseaudio` crate's message codecs (no libpulse, no async runtime).
//!
//! The audio thread owns the socket. The server clocks the stream: it sends `Request`s for
//! bytes, and we answer each with 10 ms blocks taken from the queue (silence when it is empty),
//! never writing more than asked, so the device-side latency stays at the `latency_ms` target.

use std::io::{self, Cursor, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use pulseaudio::protocol::stream::{BufferAttr, StreamFlags};
use pulseaudio::protocol::{
    self, AuthParams, AuthReply, ChannelMap, ChannelPosition, ChannelVolume, Command,
    CreatePlaybackStreamReply, Descriptor, DescriptorFlags, GetSinkInfo, LatencyParams,
    PlaybackLatency, PlaybackStreamParams, Prop, Props, SampleFormat, SampleSpec,
    SetClientNameReply, SinkInfo, TagStructRead, TagStructReader,
};

use crate::queue::{QueueReader, Shared};
use crate::resample::Resampler;
use crate::{BackendReport, LiveConfig, LiveError, Running};

/// What [`crate::LivePlayer::backend_name`] says for this backend.
pub(crate) const NAME: &str = "pulseaudio";

/// Bound on connecting and setting up the stream (all round trips together).
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on finishing a message once its first byte arrived, and on any socket write.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the audio thread waits for a server message before checking its own flags.
const POLL: Duration = Duration::from_millis(5);
/// Audio is written in blocks of at most this much.
const BLOCK: Duration = Duration::from_millis(10);
/// How often the device latency is asked for.
const TIMING_EVERY: Duration = Duration::from_millis(500);
/// Largest message we accept (the protocol's own memblock-queue limit).
const MAX_FRAME: usize = protocol::MAX_MEMBLOCKQ_LENGTH;
/// PulseAudio's auth cookie length (the server rejects any other).
const COOKIE_LEN: usize = 256;

// Sequence numbers (tags) of our requests; replies carry them back.
const SEQ_AUTH: u32 = 0;
const SEQ_NAME: u32 = 1;
const SEQ_CREATE: u32 = 2;
const SEQ_SINK: u32 = 3;
const SEQ_TIMING: u32 = 10;
const SEQ_FIRST_TIMING: u32 = 11;
const SEQ_DRAIN: u32 = 12;
const SEQ_DELETE: u32 = 13;

/// Where to look for the server, or why there is nowhere to look.
pub(crate) type Servers = Result<Vec<PathBuf>, String>;

/// The server sockets to try, in libpulse's order (only `unix:` servers are supported).
///
/// Not `pulseaudio::socket_path_from_env`: it joins `pulse/native` to `PULSE_RUNTIME_PATH`
/// (which already is the `pulse` directory) and stops at the first missing candidate.
pub(crate) fn server_from_env() -> Servers {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(list) = var("PULSE_SERVER") {
        return parse_server_list(&list.to_string_lossy());
    }
    let mut paths = Vec::new();
    if let Some(d) = var("PULSE_RUNTIME_PATH") {
        paths.push(PathBuf::from(d).join("native"));
    }
    if let Some(d) = var("XDG_RUNTIME_DIR") {
        paths.push(PathBuf::from(d).join("pulse/native"));
    }
    paths.push(PathBuf::from("/run/pulse/native"));
    Ok(paths)
}

/// The `unix:` sockets in a `PULSE_SERVER` value (whitespace-separated entries, each maybe
/// prefixed with `{machine-id}`; bare absolute paths count as `unix:`).
fn parse_server_list(list: &str) -> Servers {
    let mut paths = Vec::new();
    for entry in list.split_whitespace() {
        let entry = match entry.strip_prefix('{').and_then(|e| e.split_once('}')) {
            Some((_, rest)) => rest,
            None => entry,
        };
        if let Some(p) = entry.strip_prefix("unix:") {
            paths.push(PathBuf::from(p));
        } else if entry.starts_with('/') {
            paths.push(PathBuf::from(entry));
        }
    }
    if paths.is_empty() {
        return Err(format!(
            "PULSE_SERVER={list:?} names no unix: socket (TCP servers are not supported)"
        ));
    }
    Ok(paths)
}

/// The auth cookie, as libpulse finds it; zeros when there is none (a local server then
/// authenticates us by our Unix credentials).
fn cookie() -> Vec<u8> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let candidates = [
        var("PULSE_COOKIE"),
        var("XDG_CONFIG_HOME").map(|d| d.join("pulse/cookie")),
        var("HOME").map(|d| d.join(".config/pulse/cookie")),
        var("HOME").map(|d| d.join(".pulse-cookie")),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|p| std::fs::read(p).ok())
        .find(|c| c.len() == COOKIE_LEN)
        .unwrap_or_else(|| vec![0; COOKIE_LEN])
}

/// Connects, creates the playback stream, and starts the audio thread.
pub(crate) fn start(
    cfg: &LiveConfig,
    reader: QueueReader,
    servers: Servers,
) -> Result<Running, LiveError> {
    let deadline = Instant::now() + OPEN_TIMEOUT;
    let servers = servers.map_err(|reason| LiveError::NoDevice { reason })?;
    let mut failures = Vec::new();
    let mut opened = None;
    for path in &servers {
        match open_stream(path, cfg, deadline) {
            Ok(s) => {
                opened = Some(s);
                break;
            }
            Err(e) => failures.push(format!("unix:{}: {e}", path.display())),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let Some((conn, created, rate)) = opened else {
        return Err(LiveError::NoDevice {
            reason: format!("no PulseAudio server reachable ({})", failures.join("; ")),
        });
    };
    let frame_bytes = usize::from(cfg.channels) * 4;
    let mut stream = Stream {
        conn,
        channel: created.channel,
        credit: created.requested_bytes as usize,
        channels: usize::from(cfg.channels),
        frame_bytes,
        block_frames: frames_in(rate, BLOCK),
        byte_rate: f64::from(rate) * frame_bytes as f64,
        resampler: (rate != cfg.sample_rate)
            .then(|| Resampler::new(cfg.sample_rate, rate, usize::from(cfg.channels))),
        latency: Duration::from_millis(u64::from(cfg.latency_ms)),
        shared: Arc::clone(reader.shared()),
    };
    let (tx, done) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("gradtone-audio".into())
        .spawn(move || {
            let result = stream.run(reader).map_err(|e| {
                let reason = e.to_string();
                stream.shared.fail(reason.clone());
                LiveError::Stream { reason }
            });
            // The receiver is gone if the player was dropped: nobody left to tell.
            let _ = tx.send(result);
        })
        .map_err(|e| LiveError::Stream {
            reason: format!("cannot start the audio thread: {e}"),
        })?;
    Ok(Running { done, handle })
}

fn frames_in(rate: u32, d: Duration) -> usize {
    ((f64::from(rate) * d.as_secs_f64()).round() as usize).max(1)
}

/// Connects to one server and sets up a playback stream at the default sink's rate, all
/// before `deadline`; returns the stream's rate too.
fn open_stream(
    path: &std::path::Path,
    cfg: &LiveConfig,
    deadline: Instant,
) -> io::Result<(Conn, CreatePlaybackStreamReply, u32)> {
    let mut conn = Conn::connect(path)?;
    let auth = AuthParams {
        version: protocol::MAX_VERSION,
        supports_shm: false,
        supports_memfd: false,
        cookie: cookie(),
    };
    let reply: AuthReply = conn.roundtrip(SEQ_AUTH, &Command::Auth(auth), deadline)?;
    conn.version = protocol::MAX_VERSION.min(reply.version);
    if conn.version < protocol::MIN_VERSION {
        return Err(io::Error::other(format!(
            "server speaks protocol {}, need at least {}",
            conn.version,
            protocol::MIN_VERSION
        )));
    }

    let mut props = Props::new();
    props.set(Prop::ApplicationName, c"gradtone");
    let _: SetClientNameReply =
        conn.roundtrip(SEQ_NAME, &Command::SetClientName(props), deadline)?;

    // Play at the sink's own rate (we convert in the audio thread), so the server does not
    // resample in its process; keep ours if the sink cannot be asked or its rate is odd.
    let sink = GetSinkInfo {
        index: None,
        name: Some(protocol::DEFAULT_SINK.to_owned()),
    };
    let rate = conn
        .roundtrip::<SinkInfo>(SEQ_SINK, &Command::GetSinkInfo(sink), deadline)
        .map(|info| info.sample_spec.sample_rate)
        .ok()
        .filter(|r| (8_000..=384_000).contains(r))
        .unwrap_or(cfg.sample_rate);
    let channels = u8::try_from(cfg.channels).unwrap_or(u8::MAX);
    let frame_bytes = u32::from(cfg.channels) * 4;
    let bytes_for = |d: Duration| frames_in(rate, d) as u32 * frame_bytes;
    let target = bytes_for(Duration::from_millis(u64::from(cfg.latency_ms)));
    let mut props = Props::new();
    props.set(Prop::MediaName, c"training");
    let params = PlaybackStreamParams {
        sample_spec: SampleSpec {
            // The queue holds f32, so the server gets it as is; it converts for the device.
            format: SampleFormat::Float32Le,
            channels,
            sample_rate: rate,
        },
        channel_map: channel_map(channels),
        sink_name: Some(protocol::DEFAULT_SINK.to_owned()),
        buffer_attr: BufferAttr {
            // The server's default target is ~2 s; ask for ours, requested in 10 ms pieces.
            target_length: target,
            minimum_request_length: bytes_for(BLOCK).min(target / 2).max(frame_bytes),
            ..BufferAttr::default()
        },
        cvolume: Some(ChannelVolume::norm(channels)),
        props,
        flags: StreamFlags {
            // Make the target cover stream buffer *and* sink latency, i.e. what one hears.
            adjust_latency: true,
            ..StreamFlags::default()
        },
        ..PlaybackStreamParams::default()
    };
    let created: CreatePlaybackStreamReply =
        conn.roundtrip(SEQ_CREATE, &Command::CreatePlaybackStream(params), deadline)?;
    Ok((conn, created, rate))
}

/// PulseAudio channel positions for `n` interleaved channels (WAVE order beyond stereo).
fn channel_map(n: u8) -> ChannelMap {
    use ChannelPosition as P;
    match n {
        1 => ChannelMap::mono(),
        2 => ChannelMap::stereo(),
        4 => ChannelMap::new([P::FrontLeft, P::FrontRight, P::RearLeft, P::RearRight]),
        _ => ChannelMap::new(
            [
                P::FrontLeft,
                P::FrontRight,
                P::FrontCenter,
                P::Lfe,
                P::RearLeft,
                P::RearRight,
                P::SideLeft,
                P::SideRight,
            ]
            .into_iter()
            .take(usize::from(n)),
        ),
    }
}

fn protocol_err(e: protocol::ProtocolError) -> io::Error {
    match e {
        protocol::ProtocolError::Io(e) => e,
        e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// A socket speaking the native protocol, with reusable message buffers.
struct Conn {
    sock: UnixStream,
    version: u16,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl Conn {
    fn connect(path: &std::path::Path) -> io::Result<Conn> {
        let sock = UnixStream::connect(path)?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn {
            sock,
            version: protocol::MAX_VERSION,
            rx: Vec::new(),
            tx: Vec::new(),
        })
    }

    fn send(&mut self, seq: u32, cmd: &Command) -> io::Result<()> {
        self.tx.clear();
        protocol::write_command_message(&mut self.tx, seq, cmd, self.version)
            .map_err(protocol_err)?;
        self.sock.write_all(&self.tx)
    }

    /// Sends samples as one memblock message (one write: header and data together).
    fn send_audio(&mut self, channel: u32, samples: &[f32]) -> io::Result<usize> {
        let bytes = samples.len() * 4;
        let mut head = [0u8; protocol::DESCRIPTOR_SIZE];
        protocol::encode_descriptor(
            &mut head,
            &Descriptor {
                length: bytes as u32,
                channel,
                offset: 0,
                flags: DescriptorFlags::empty(),
            },
        );
        self.tx.clear();
        self.tx.extend_from_slice(&head);
        for s in samples {
            self.tx.extend_from_slice(&s.to_le_bytes());
        }
        self.sock.write_all(&self.tx)?;
        Ok(bytes)
    }

    /// Reads one message into `rx`; returns its channel (`u32::MAX` for commands), or `None`
    /// if no message started within `wait`.
    fn recv(&mut self, wait: Duration) -> io::Result<Option<u32>> {
        let mut head = [0u8; protocol::DESCRIPTOR_SIZE];
        if !read_full(&mut self.sock, &mut head, wait, true)? {
            return Ok(None);
        }
        let desc = protocol::read_descriptor(&mut &head[..]).map_err(protocol_err)?;
        let len = desc.length as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("server sent a {len}-byte message"),
            ));
        }
        self.rx.resize(len, 0);
        read_full(&mut self.sock, &mut self.rx, IO_TIMEOUT, false)?;
        Ok(Some(desc.channel))
    }

    /// The command in `rx`: (sequence number, command, where a reply's payload starts).
    fn parse(&self) -> Option<(u32, Command, usize)> {
        let mut cur = Cursor::new(&self.rx[..]);
        // Commands this crate cannot decode are of no interest here: skip them.
        let (seq, cmd) = Command::read_tag_prefixed(&mut cur, self.version).ok()?;
        Some((seq, cmd, cur.position() as usize))
    }

    /// Decodes a reply payload that starts at `pos` in `rx`.
    fn reply<T: TagStructRead>(&self, pos: usize) -> io::Result<T> {
        let mut cur = Cursor::new(self.rx.get(pos..).unwrap_or_default());
        TagStructReader::new(&mut cur, self.version)
            .read::<T>()
            .map_err(protocol_err)
    }

    /// Sends a command and waits (until `deadline`) for its reply, skipping other messages.
    fn roundtrip<T: TagStructRead>(
        &mut self,
        seq: u32,
        cmd: &Command,
        deadline: Instant,
    ) -> io::Result<T> {
        self.send(seq, cmd)?;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {} s", OPEN_TIMEOUT.as_secs()),
                ));
            }
            if self.recv(wait)? != Some(u32::MAX) {
                continue;
            }
            match self.parse() {
                Some((s, Command::Reply, pos)) if s == seq => return self.reply(pos),
                Some((s, Command::Error(e), _)) if s == seq => {
                    return Err(io::Error::other(format!("server refused: {e:?}")));
                }
                _ => {}
            }
        }
    }
}

/// Fills `buf` from `sock`. With `may_idle`, returns `Ok(false)` if nothing at all arrived
/// within `wait`; once a message has started, it must complete within [`IO_TIMEOUT`].
fn read_full(
    sock: &mut UnixStream,
    buf: &mut [u8],
    wait: Duration,
    may_idle: bool,
) -> io::Result<bool> {
    let start = Instant::now();
    let mut limit = wait;
    let mut got = 0;
    while got < buf.len() {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            if got == 0 && may_idle {
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "server stopped in the middle of a message",
            ));
        }
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match sock.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
            Ok(n) => {
                if got == 0 && may_idle {
                    // A message has begun: give the rest the full I/O bound.
                    limit = start.elapsed() + IO_TIMEOUT;
                }
                got += n;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A playback stream and its audio thread's state.
struct Stream {
    conn: Conn,
    channel: u32,
    /// Bytes the server asked for and has not got yet.
    credit: usize,
    channels: usize,
    frame_bytes: usize,
    block_frames: usize,
    byte_rate: f64,
    latency: Duration,
    shared: Arc<Shared>,
    /// Converts the pushed rate to the stream's when they differ.
    resampler: Option<Resampler>,
}

impl Stream {
    /// The audio thread: answers the server's requests from the queue until the producer has
    /// finished and the server has played everything (or a stop is requested).
    fn run(&mut self, mut reader: QueueReader) -> io::Result<BackendReport> {
        let mut report = BackendReport::default();
        let mut block = vec![0.0f32; self.block_frames * self.channels];
        // Stream byte offset of the first pushed sample, once it has been sent.
        let mut first_audio_at: Option<u64> = None;
        let mut first_query: Option<Instant> = None;
        let mut periodic_query = Instant::now();
        let mut next_timing = Instant::now() + TIMING_EVERY;
        let mut written: u64 = 0;
        let mut started = false;
        let mut drain_deadline: Option<Instant> = None;

        loop {
            if self.shared.stop_requested() {
                // Best effort: the server also drops the stream when the socket closes.
                let _ = self
                    .conn
                    .send(SEQ_DELETE, &Command::DeletePlaybackStream(self.channel));
                return Ok(report);
            }
            if drain_deadline.is_none() {
                while self.credit >= self.frame_bytes {
                    let frames = (self.credit / self.frame_bytes).min(self.block_frames);
                    let out = &mut block[..frames * self.channels];
                    let fill = match &mut self.resampler {
                        Some(r) => r.fill(&mut reader, out),
                        None => reader.fill(out),
                    };
                    let sent = self.conn.send_audio(self.channel, out)?;
                    if fill.audio > 0 && first_audio_at.is_none() {
                        first_audio_at = Some(written);
                        first_query = Some(Instant::now());
                        self.query_timing(SEQ_FIRST_TIMING)?;
                    }
                    written += sent as u64;
                    self.credit -= sent;
                }
                if self.shared.producer_closed() && reader.is_empty() {
                    self.conn
                        .send(SEQ_DRAIN, &Command::DrainPlaybackStream(self.channel))?;
                    // What the server holds is about `latency`; allow that plus the I/O bound.
                    drain_deadline = Some(Instant::now() + self.latency + IO_TIMEOUT);
                }
            }
            let now = Instant::now();
            if now >= next_timing {
                periodic_query = now;
                self.query_timing(SEQ_TIMING)?;
                next_timing = now + TIMING_EVERY;
            }
            if drain_deadline.is_some_and(|d| now >= d) {
                return Ok(report);
            }

            if self.conn.recv(POLL)? != Some(u32::MAX) {
                // Nothing arrived, or a memblock (never sent to a playback client): carry on.
                continue;
            }
            let Some((seq, cmd, pos)) = self.conn.parse() else {
                continue;
            };
            match cmd {
                Command::Request(r) if r.channel == self.channel => {
                    self.credit += r.length as usize;
                }
                Command::Started(c) if c == self.channel => started = true,
                // Before the start and while draining, an empty buffer is expected.
                Command::Underflow(u)
                    if u.channel == self.channel && started && drain_deadline.is_none() =>
                {
                    self.shared.add_underrun();
                }
                Command::PlaybackStreamKilled(c) if c == self.channel => {
                    return Err(io::Error::other(
                        "the server ended the stream (its sink went away?)",
                    ));
                }
                Command::Reply if seq == SEQ_DRAIN => {
                    let _ = self
                        .conn
                        .send(SEQ_DELETE, &Command::DeletePlaybackStream(self.channel));
                    return Ok(report);
                }
                Command::Reply if seq == SEQ_TIMING || seq == SEQ_FIRST_TIMING => {
                    let Ok(t) = self.conn.reply::<PlaybackLatency>(pos) else {
                        continue;
                    };
                    let sink = Duration::from_micros(t.sink_usec);
                    let buffered = (t.write_offset - t.read_offset).max(0) as f64;
                    report.device_latency =
                        Some(Duration::from_secs_f64(buffered / self.byte_rate) + sink);
                    let asked = if seq == SEQ_FIRST_TIMING {
                        first_query
                    } else {
                        Some(periodic_query)
                    };
                    if seq == SEQ_FIRST_TIMING
                        && let (Some(at), Some(offset), Some(pushed)) =
                            (asked, first_audio_at, self.shared.first_push())
                    {
                        // When the server answered, the first sample was `ahead` bytes from
                        // being read by the sink, which then adds its own latency.
                        let ahead = (offset as i64 - t.read_offset).max(0) as f64;
                        report.first_sample_latency = Some(
                            at.saturating_duration_since(pushed)
                                + Duration::from_secs_f64(ahead / self.byte_rate)
                                + sink,
                        );
                    }
                }
                Command::Error(e) if seq == SEQ_DRAIN => {
                    return Err(io::Error::other(format!("drain refused: {e:?}")));
                }
                _ => {}
            }
        }
    }

    fn query_timing(&mut self, seq: u32) -> io::Result<()> {
        let params = LatencyParams {
            channel: self.channel,
            now: SystemTime::now(),
        };
        self.conn.send(seq, &Command::GetPlaybackLatency(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pace;
    use crate::queue::{QueueParams, queue};

    fn reader() -> QueueReader {
        queue(QueueParams {
            channels: 1,
            sample_rate: 48_000,
            pace: Pace::Live,
            max_lead_ms: 100,
        })
        .1
    }

    #[test]
    fn a_server_that_never_answers_is_given_up_on_in_about_two_seconds() {
        let dir = std::env::temp_dir().join(format!("gradtone-live-mute-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("native");
        let _ = std::fs::remove_file(&path);
        // Accepts connections (the kernel does, from the backlog) but never replies.
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let t = Instant::now();
        let r = start(
            &crate::LiveConfig::default(),
            reader(),
            Ok(vec![path.clone()]),
        );
        let took = t.elapsed();
        let _ = std::fs::remove_file(&path);
        println!("silent server: gave up after {took:?}");
        match r {
            Err(LiveError::NoDevice { reason }) => {
                assert!(reason.contains("no answer"), "{reason}")
            }
            other => panic!("expected NoDevice, got {other:?}"),
        }
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[test]
    fn pulse_server_lists_are_parsed_like_libpulse() {
        // Only the pure parser is tested here; the env-reading wrapper is one line around it.
        let s = parse_server_list("{abc}unix:/a/native tcp:host /b/native");
        assert_eq!(
            s,
            Ok(vec![PathBuf::from("/a/native"), PathBuf::from("/b/native")])
        );
        assert!(parse_server_list("tcp:localhost:4713").is_err());
    }
}
