//! OSC output over UDP: one bundle per frame, for SuperCollider, Pure Data, Max, TouchDesigner…
//!
//! The address scheme (also in `docs/osc.md`, section "Output"), in this order in each bundle:
//!
//! | address | arguments | when |
//! |---|---|---|
//! | `/gradtone/step` | `i` step | first, once per frame |
//! | `/gradtone/value` | `s` name, `f` value, `i` index | each value, in model order (index 0, 1, …) |
//! | `/gradtone/loss` | `s` name, `f` value | each loss |
//! | `/gradtone/alarm` | `s` kind, `s` message | each non-finite value or loss (kind `nan`, `inf`, `-inf`), and [`OscSender::send_alarm`] |
//!
//! Values are sent as they are, NaN and ±∞ included (as IEEE float32): receivers must guard
//! before using one as a frequency. The step is an int32, saturating at 2³¹−1. The bundle's time
//! tag is "immediately". A frame whose bundle would exceed [`OscSender::max_datagram`] bytes is
//! split into several bundles; only the first carries `/gradtone/step`.
//!
//! Sending never blocks and never fails the caller: the socket is non-blocking and *connected*,
//! so the kernel reports an ICMP "port unreachable" (nothing listening) as `ECONNREFUSED` on a
//! later send; such errors, like a full socket buffer, are counted in [`OscStats`].

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

use gradtone_frame::Frame;
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};

use crate::ExportError;

/// Where SuperCollider's language (sclang) listens by default.
pub const DEFAULT_OSC_ADDR: &str = "127.0.0.1:57120";
/// Default largest datagram, bytes: one frame of ≈ 140 values. Larger frames are split.
pub const DEFAULT_MAX_DATAGRAM: usize = 8192;
/// Address of the step message.
pub const ADDR_STEP: &str = "/gradtone/step";
/// Address of a value message.
pub const ADDR_VALUE: &str = "/gradtone/value";
/// Address of a loss message.
pub const ADDR_LOSS: &str = "/gradtone/loss";
/// Address of an alarm message.
pub const ADDR_ALARM: &str = "/gradtone/alarm";

/// "Immediately" (OSC 1.0): the receiver acts on the bundle on arrival.
const IMMEDIATELY: OscTime = OscTime {
    seconds: 0,
    fractional: 1,
};

/// Counters of an [`OscSender`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OscStats {
    /// Frames handed to [`OscSender::send_frame`].
    pub frames: u64,
    /// Datagrams the kernel accepted.
    pub datagrams_sent: u64,
    /// Bytes in those datagrams.
    pub bytes_sent: u64,
    /// Datagrams not sent (refused by the peer, buffer full, unreachable network…).
    pub send_errors: u64,
    /// The most recent send error, for a log line such as
    /// `OSC 127.0.0.1:57120: 12 datagrams not sent (last: Connection refused)`.
    pub last_error: Option<String>,
}

/// Sends frames as OSC bundles over UDP (see the [module docs](self) for the scheme).
///
/// ```
/// use gradtone_export::OscSender;
/// use gradtone_frame::Frame;
/// let rx = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// let mut osc = OscSender::connect(&rx.local_addr()?.to_string())?;
/// assert!(osc.send_frame(&Frame::new(7).with_value("conv1", 0.25).with_loss("loss", 2.3)));
/// let mut buf = [0u8; 1500];
/// let n = rx.recv(&mut buf)?;
/// let (_, packet) = rosc::decoder::decode_udp(&buf[..n]).map_err(|e| format!("{e:?}"))?;
/// assert!(matches!(packet, rosc::OscPacket::Bundle(b) if b.content.len() == 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OscSender {
    socket: UdpSocket,
    peer: SocketAddr,
    max_datagram: usize,
    stats: OscStats,
}

impl OscSender {
    /// Opens a UDP socket towards `addr` (`host:port`; [`DEFAULT_OSC_ADDR`] for SuperCollider).
    /// Any address works, loopback or not; nothing is sent until the first frame.
    ///
    /// # Errors
    /// [`ExportError::Osc`] when `addr` does not resolve or no local socket can be opened.
    pub fn connect(addr: &str) -> Result<Self, ExportError> {
        let osc_err = |what, source| ExportError::Osc {
            addr: addr.to_owned(),
            what,
            cause: source,
        };
        let peer = addr
            .to_socket_addrs()
            .map_err(|e| osc_err("cannot resolve", e))?
            .next()
            .ok_or_else(|| {
                osc_err(
                    "resolves to no address",
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })?;
        let local: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).map_err(|e| osc_err("cannot open a UDP socket", e))?;
        // Connected, so that ICMP errors come back as send errors we can count.
        socket
            .connect(peer)
            .map_err(|e| osc_err("cannot connect the UDP socket", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| osc_err("cannot make the socket non-blocking", e))?;
        Ok(OscSender {
            socket,
            peer,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            stats: OscStats::default(),
        })
    }

    /// Sets the largest datagram (bytes, at least 512) before a frame is split over several
    /// bundles. Default [`DEFAULT_MAX_DATAGRAM`]; up to 65 507 works on loopback.
    #[must_use]
    pub fn with_max_datagram(mut self, bytes: usize) -> Self {
        self.max_datagram = bytes.clamp(512, 65_507);
        self
    }

    /// The largest datagram this sender writes, bytes.
    pub fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// The destination.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The counters so far.
    pub fn stats(&self) -> &OscStats {
        &self.stats
    }

    /// Sends `frame` as one bundle (more if it exceeds [`max_datagram`](Self::max_datagram)).
    /// Returns `false` when a datagram could not be sent; the error is counted, never raised.
    pub fn send_frame(&mut self, frame: &Frame) -> bool {
        self.stats.frames += 1;
        let messages = frame_messages(frame);
        let mut ok = true;
        for datagram in pack(messages, self.max_datagram) {
            ok &= self.send_datagram(&datagram);
        }
        ok
    }

    /// Sends `/gradtone/alarm kind message` on its own, e.g. `("spike", "fc1 grew 40× in one step")`.
    /// Returns `false` when it could not be sent (counted in [`stats`](Self::stats)).
    pub fn send_alarm(&mut self, kind: &str, message: &str) -> bool {
        let packet = OscPacket::Message(alarm_message(kind, message));
        match rosc::encoder::encode(&packet) {
            Ok(bytes) => self.send_datagram(&bytes),
            Err(e) => self.count_error(format!("cannot encode the alarm: {e}")),
        }
    }

    fn send_datagram(&mut self, bytes: &[u8]) -> bool {
        match self.socket.send(bytes) {
            Ok(n) => {
                self.stats.datagrams_sent += 1;
                self.stats.bytes_sent += n as u64;
                true
            }
            Err(e) => self.count_error(e.to_string()),
        }
    }

    fn count_error(&mut self, message: String) -> bool {
        self.stats.send_errors += 1;
        self.stats.last_error = Some(message);
        false
    }
}

/// The messages of `frame` in scheme order: step, values, losses, then an alarm per
/// non-finite value or loss. Useful to send them over another transport.
pub fn frame_messages(frame: &Frame) -> Vec<OscMessage> {
    let mut out = Vec::with_capacity(1 + frame.values.len() + frame.losses.len());
    out.push(OscMessage {
        addr: ADDR_STEP.to_owned(),
        args: vec![OscType::Int(i32::try_from(frame.step).unwrap_or(i32::MAX))],
    });
    for (i, n) in frame.values.iter().enumerate() {
        out.push(OscMessage {
            addr: ADDR_VALUE.to_owned(),
            args: vec![
                osc_string(&n.name),
                OscType::Float(to_f32(n.value)),
                OscType::Int(i32::try_from(i).unwrap_or(i32::MAX)),
            ],
        });
    }
    for n in &frame.losses {
        out.push(OscMessage {
            addr: ADDR_LOSS.to_owned(),
            args: vec![osc_string(&n.name), OscType::Float(to_f32(n.value))],
        });
    }
    let non_finite = frame
        .values
        .iter()
        .map(|n| ("value", n))
        .chain(frame.losses.iter().map(|n| ("loss", n)));
    for (what, n) in non_finite.filter(|(_, n)| !n.value.is_finite()) {
        let kind = if n.value.is_nan() {
            "nan"
        } else if n.value > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        let text = format!("step {}: {what} {} = {}", frame.step, n.name, n.value);
        out.push(alarm_message(kind, &text));
    }
    out
}

fn alarm_message(kind: &str, message: &str) -> OscMessage {
    OscMessage {
        addr: ADDR_ALARM.to_owned(),
        args: vec![osc_string(kind), osc_string(message)],
    }
}

/// An OSC string: NUL terminates OSC strings, so an embedded one would corrupt the packet.
fn osc_string(s: &str) -> OscType {
    OscType::String(s.replace('\0', "?"))
}

/// Float32 of a value; finite values beyond f32's range saturate instead of becoming ∞
/// (which would read as an alarm).
fn to_f32(v: f64) -> f32 {
    if v.is_finite() {
        v.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32
    } else {
        v as f32
    }
}

/// Encodes `messages` into bundles of at most `max` bytes (a single message larger than that
/// still goes alone: the name is what makes it large, and dropping it would hide data).
fn pack(messages: Vec<OscMessage>, max: usize) -> Vec<Vec<u8>> {
    // "#bundle\0" + time tag.
    const BUNDLE_HEADER: usize = 16;
    let mut out = Vec::new();
    let mut content = Vec::new();
    let mut size = BUNDLE_HEADER;
    for m in messages {
        let packet = OscPacket::Message(m);
        // Size prefix + message; rosc only fails on addresses/arguments we never produce.
        let len = 4 + rosc::encoder::encode(&packet).map_or(0, |b| b.len());
        if !content.is_empty() && size + len > max {
            out.extend(encode_bundle(std::mem::take(&mut content)));
            size = BUNDLE_HEADER;
        }
        size += len;
        content.push(packet);
    }
    if !content.is_empty() {
        out.extend(encode_bundle(content));
    }
    out
}

fn encode_bundle(content: Vec<OscPacket>) -> Option<Vec<u8>> {
    rosc::encoder::encode(&OscPacket::Bundle(OscBundle {
        timetag: IMMEDIATELY,
        content,
    }))
    .ok()
}
