//! [`OscSource`]: frames as Open Sound Control messages over UDP (scheme in `docs/osc.md`).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};

use gradtone_frame::{Frame, Named};
use rosc::{OscMessage, OscPacket, OscType};

use crate::diag::{Diagnostics, Tally};
use crate::diag::{MAX_MESSAGE_CHARS, shorten};
use crate::error::IngestError;
use crate::jsonl::{Record, non_finite};
use crate::merge::MAX_WORLD;
use crate::udp::{Receiver, UdpOptions, nothing_received};
use crate::{FrameSource, frames_from_records};
use gradtone_frame::Report;

/// `/gradtone/frame i:step (s:name f:value)*`: one step's values.
pub const ADDR_FRAME: &str = "/gradtone/frame";
/// `/gradtone/rank i:rank i:world i:step (s:name f:value)*`: one step's values from one rank
/// of a distributed run.
pub const ADDR_RANK: &str = "/gradtone/rank";
/// `/gradtone/loss i:step s:name f:value [i:rank]`: one loss term of a step.
pub const ADDR_LOSS: &str = "/gradtone/loss";

/// Bundles nested deeper than this are skipped (counted as malformed).
const MAX_DEPTH: usize = 8;
/// Arrays (`[` … `]` type tags) nested deeper than this are skipped (counted as malformed):
/// gradtone reads no arrays, and a deep nesting would cost stack to take apart.
const MAX_ARRAY_DEPTH: usize = 2;
/// Steps kept open waiting for their `/gradtone/frame` before the oldest is delivered anyway
/// (a sender that only sends losses must not grow memory).
const MAX_OPEN: usize = 256;
/// Values plus losses one open step may gather from separate messages; more are dropped and
/// counted (a sender repeating `/gradtone/loss` for one step must not grow memory).
const MAX_STEP_ITEMS: usize = 1 << 16;

/// Checks a datagram's structure before it is decoded: bundle elements that fit in what was
/// received, bundles nested at most [`MAX_DEPTH`] levels, arrays at most [`MAX_ARRAY_DEPTH`].
/// Iterative and linear in the datagram, so no packet can exhaust the stack (the decoder and
/// the drop of its result would otherwise recurse once per level).
fn check_structure(data: &[u8]) -> Result<(), String> {
    // (start, end, depth) of packets to check; offsets into `data`, because the decoder pads
    // strings to 4 bytes counted from the datagram's start, not the element's.
    let mut todo = vec![(0usize, data.len(), 0usize)];
    while let Some((start, end, depth)) = todo.pop() {
        let p = &data[start..end];
        if p.starts_with(b"#bundle\0") {
            if depth >= MAX_DEPTH {
                return Err(format!(
                    "bundles nested deeper than {MAX_DEPTH} levels; skipped"
                ));
            }
            // "#bundle\0", an 8-byte time tag, then (u32 size, element)*.
            let mut at = start + 16;
            while let Some(size) = data.get(at..(at + 4).min(end)).filter(|s| s.len() == 4) {
                let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
                let left = end - (at + 4);
                if size > left {
                    return Err(format!(
                        "a bundle element claims {size} bytes but only {left} were received"
                    ));
                }
                todo.push((at + 4, at + 4 + size, depth + 1));
                at += 4 + size;
            }
        } else if p.first() == Some(&b'/') {
            // The address, NUL-padded to 4 bytes, then the type tags ",..." (if any).
            let Some(nul) = memchr::memchr(0, p) else {
                continue; // the decoder reports it
            };
            let tags_at = (start + nul + 4) & !3;
            let tags = data.get(tags_at..end).unwrap_or_default();
            let tags = &tags[..memchr::memchr(0, tags).unwrap_or(tags.len())];
            let mut level = 0usize;
            for &t in tags {
                match t {
                    b'[' => {
                        level += 1;
                        if level > MAX_ARRAY_DEPTH {
                            return Err(format!(
                                "arrays nested deeper than {MAX_ARRAY_DEPTH} levels; skipped"
                            ));
                        }
                    }
                    b']' => level = level.saturating_sub(1),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// A short description of an argument for messages: its type and, cut short, its value (never
/// the `Debug` form of an array, which could be huge or deeply nested).
fn describe(a: &OscType) -> String {
    match a {
        OscType::Int(x) => format!("integer {x}"),
        OscType::Long(x) => format!("integer {x}"),
        OscType::Float(x) => format!("float {x}"),
        OscType::Double(x) => format!("double {x}"),
        OscType::String(s) => format!("string {:?}", shorten(s, 40)),
        OscType::Blob(b) => format!("a blob of {} bytes", b.len()),
        OscType::Array(a) => format!("an array of {} items", a.content.len()),
        OscType::Time(_) => "a time tag".into(),
        OscType::Char(c) => format!("char {c:?}"),
        OscType::Bool(b) => format!("bool {b}"),
        OscType::Midi(_) => "a MIDI message".into(),
        OscType::Color(_) => "a color".into(),
        OscType::Nil => "nil".into(),
        OscType::Inf => "infinity".into(),
    }
}

/// An integer argument `≥ min` (`i` or `h`).
fn int_arg(args: &[OscType], i: usize, what: &str, min: i64) -> Result<u64, String> {
    let x = match args.get(i) {
        Some(OscType::Int(x)) => i64::from(*x),
        Some(OscType::Long(x)) => *x,
        Some(other) => {
            return Err(format!(
                "argument {} ({what}) must be an integer (i or h), found {}",
                i + 1,
                describe(other)
            ));
        }
        None => return Err(format!("argument {} ({what}) is missing", i + 1)),
    };
    if x < min {
        return Err(format!(
            "argument {} ({what}) must be ≥ {min}, found {x}",
            i + 1
        ));
    }
    u64::try_from(x).map_err(|_| format!("argument {} ({what}) is negative", i + 1))
}

/// A numeric argument: `f`, `d`, `i`, `h`, `I` (infinity), `N` (nil: NaN), or a string
/// `"nan"`/`"inf"`/`"-inf"` for senders that cannot send non-finite floats.
fn num_arg(a: &OscType) -> Option<f64> {
    match a {
        OscType::Float(x) => Some(f64::from(*x)),
        OscType::Double(x) => Some(*x),
        OscType::Int(x) => Some(f64::from(*x)),
        OscType::Long(x) => Some(*x as f64),
        OscType::Inf => Some(f64::INFINITY),
        OscType::Nil => Some(f64::NAN),
        OscType::String(s) => non_finite(s),
        _ => None,
    }
}

/// `(s name, f value)*` from argument `from` on.
fn pairs(args: &[OscType], from: usize) -> Result<Vec<Named>, String> {
    let rest = args.get(from..).unwrap_or_default();
    if rest.len() % 2 != 0 {
        return Err(format!(
            "after the first {from} arguments, expected (name, value) pairs; found {} arguments",
            rest.len()
        ));
    }
    rest.chunks_exact(2)
        .enumerate()
        .map(|(k, pair)| {
            let arg = from + 2 * k + 1;
            let OscType::String(name) = &pair[0] else {
                return Err(format!(
                    "argument {arg} must be a name (s), found {}",
                    describe(&pair[0])
                ));
            };
            let value = num_arg(&pair[1]).ok_or_else(|| {
                format!(
                    "argument {} (value of {:?}) must be a number, found {}",
                    arg + 1,
                    shorten(name, 40),
                    describe(&pair[1])
                )
            })?;
            Ok(Named {
                name: name.clone(),
                value,
            })
        })
        .collect()
}

/// Steps being assembled from messages, delivered in the order they complete.
#[derive(Default)]
struct Assembler {
    open: Vec<Record>,
    out: VecDeque<Record>,
    /// Messages taken so far (for the idle timeout).
    taken: u64,
}

impl Assembler {
    fn entry(&mut self, rank: Option<u32>, world: Option<u32>, step: u64) -> &mut Record {
        let pos = self
            .open
            .iter()
            .position(|r| r.frame.rank == rank && r.frame.step == step);
        let i = match pos {
            Some(i) => i,
            None => {
                if self.open.len() >= MAX_OPEN {
                    let oldest = self.open.remove(0);
                    self.out.push_back(oldest);
                }
                let mut frame = Frame::new(step);
                frame.rank = rank;
                self.open.push(Record::from_frame(frame));
                self.open.len() - 1
            }
        };
        let rec = &mut self.open[i];
        if world.is_some() {
            rec.world = world;
        }
        rec
    }

    /// Delivers the step `(rank, step)`, after any earlier open steps of the same rank (loss-only
    /// steps), so that each rank's steps come out in order.
    fn commit(&mut self, rank: Option<u32>, step: u64) {
        let mut i = 0;
        while i < self.open.len() {
            let f = &self.open[i].frame;
            if f.rank == rank && f.step < step {
                let r = self.open.remove(i);
                self.out.push_back(r);
            } else {
                i += 1;
            }
        }
        if let Some(i) = self
            .open
            .iter()
            .position(|r| r.frame.rank == rank && r.frame.step == step)
        {
            let r = self.open.remove(i);
            self.out.push_back(r);
        }
    }

    fn flush(&mut self) {
        self.out.extend(self.open.drain(..));
    }
}

/// Receives frames as OSC messages over UDP; the scheme is in `docs/osc.md` (and
/// [`ADDR_FRAME`], [`ADDR_RANK`], [`ADDR_LOSS`]).
///
/// Losses sent before their step's `/gradtone/frame` (or in the same bundle) arrive in the same
/// [`Frame`]. Messages with other addresses are ignored and counted in
/// [`Diagnostics::ignored`]; messages with wrong arguments are counted as malformed.
///
/// ```no_run
/// use gradtone_ingest::{OscSource, UdpOptions};
/// for frame in OscSource::loopback(9001, UdpOptions::default())? {
///     println!("step {}: {:?}", frame.step, frame.values);
/// }
/// # Ok::<(), gradtone_ingest::IngestError>(())
/// ```
pub struct OscSource {
    rx: Receiver,
    dec: OscDecoder,
    error: Option<IngestError>,
    done: bool,
}

/// The decoding half of [`OscSource`], without a socket: datagrams in, [`Record`]s out (for
/// other transports, tests and fuzzing). Bounded whatever it is fed: see `docs/osc.md`.
///
/// ```
/// use gradtone_ingest::{ADDR_FRAME, OscDecoder};
/// use rosc::{OscMessage, OscPacket, OscType};
/// let mut dec = OscDecoder::new("test");
/// let packet = OscPacket::Message(OscMessage {
///     addr: ADDR_FRAME.into(),
///     args: vec![OscType::Int(5), OscType::String("fc1".into()), OscType::Float(0.5)],
/// });
/// assert!(dec.push(&rosc::encoder::encode(&packet).unwrap()));
/// assert!(!dec.push(b"garbage"));
/// assert_eq!(dec.pop().map(|r| r.frame.step), Some(5));
/// assert_eq!(dec.diagnostics().malformed, 1);
/// ```
pub struct OscDecoder {
    asm: Assembler,
    tally: Tally,
}

impl OscDecoder {
    /// A decoder; `name` is used in messages.
    pub fn new(name: &str) -> Self {
        OscDecoder {
            asm: Assembler::default(),
            tally: Tally::new(name.to_string()).unit("message"),
        }
    }

    /// Decodes one datagram; returns whether any of its messages was taken (bad ones are
    /// skipped and counted in [`diagnostics`](Self::diagnostics)).
    pub fn push(&mut self, datagram: &[u8]) -> bool {
        self.tally.diag.datagrams += 1;
        let d = self.tally.diag.datagrams;
        let decoded = check_structure(datagram).and_then(|()| {
            rosc::decoder::decode_udp(datagram).map_err(|e| format!("not an OSC packet: {e}"))
        });
        match decoded {
            Ok((_rest, packet)) => {
                let before = self.asm.taken;
                let mut keys = Vec::new();
                on_packet(&mut self.asm, &mut self.tally, &packet, d, 0, &mut keys);
                // A bundle is delivered whole: its steps complete at its end.
                for (rank, step) in keys {
                    self.asm.commit(rank, step);
                }
                self.asm.taken != before
            }
            Err(why) => {
                self.tally.malformed(format_args!("packet {d}"), &why);
                false
            }
        }
    }

    /// The next completed step, if any.
    pub fn pop(&mut self) -> Option<Record> {
        let r = self.asm.out.pop_front()?;
        self.tally.diag.frames += 1;
        Some(r)
    }

    /// Completes every open step (the input ended): they can then be taken with
    /// [`pop`](Self::pop).
    pub fn finish(&mut self) {
        self.asm.flush();
    }

    /// Messages taken so far (not skipped).
    pub fn messages(&self) -> u64 {
        self.asm.taken
    }

    /// Counts and first messages about what was skipped.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.tally.diag
    }

    /// Calls `reporter` with each diagnostic message as it is recorded.
    pub fn set_reporter(&mut self, reporter: Report) {
        self.tally.set_reporter(reporter);
    }
}

impl OscSource {
    /// Listens on `127.0.0.1:port` (port 0 picks a free port, see
    /// [`local_addr`](Self::local_addr)).
    pub fn loopback(port: u16, opts: UdpOptions) -> Result<Self, IngestError> {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), opts)
    }

    /// Listens on `addr` (e.g. `0.0.0.0:9001` for senders on other machines).
    pub fn bind(addr: SocketAddr, opts: UdpOptions) -> Result<Self, IngestError> {
        let rx = Receiver::bind(addr, opts)?;
        Ok(OscSource {
            dec: OscDecoder::new(&format!("osc {}", rx.addr)),
            rx,
            error: None,
            done: false,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.rx.addr
    }
}

/// Handles one decoded packet (messages and nested bundles).
fn on_packet(
    asm: &mut Assembler,
    tally: &mut Tally,
    packet: &OscPacket,
    d: u64,
    depth: usize,
    in_bundle: &mut Vec<(Option<u32>, u64)>,
) {
    match packet {
        OscPacket::Bundle(b) => {
            if depth >= MAX_DEPTH {
                tally.malformed(
                    format_args!("packet {d}"),
                    &format_args!("bundles nested deeper than {MAX_DEPTH} levels; skipped"),
                );
                return;
            }
            for p in &b.content {
                on_packet(asm, tally, p, d, depth + 1, in_bundle);
            }
        }
        OscPacket::Message(m) => {
            if let Err(why) = on_message(asm, m, depth > 0, in_bundle) {
                match why {
                    Why::Unknown => tally.ignored(
                        format_args!("packet {d}"),
                        &format_args!(
                            "unknown address {:?} ignored (gradtone reads {ADDR_FRAME}, \
                             {ADDR_RANK}, {ADDR_LOSS})",
                            shorten(&m.addr, MAX_MESSAGE_CHARS / 2)
                        ),
                    ),
                    Why::Bad(why) => {
                        tally.malformed(
                            format_args!("packet {d}"),
                            &format_args!("{}: {why}", shorten(&m.addr, 60)),
                        );
                    }
                }
            }
        }
    }
}

enum Why {
    Unknown,
    Bad(String),
}

fn on_message(
    asm: &mut Assembler,
    m: &OscMessage,
    in_bundle: bool,
    bundle_keys: &mut Vec<(Option<u32>, u64)>,
) -> Result<(), Why> {
    on_message_inner(asm, m, in_bundle, bundle_keys)?;
    asm.taken += 1;
    Ok(())
}

fn on_message_inner(
    asm: &mut Assembler,
    m: &OscMessage,
    in_bundle: bool,
    bundle_keys: &mut Vec<(Option<u32>, u64)>,
) -> Result<(), Why> {
    let a = &m.args;
    let narrow = |x: u64, what: &str| {
        u32::try_from(x).map_err(|_| Why::Bad(format!("{what} {x} does not fit 32 bits")))
    };
    let (rank, world, step, first_pair) = match m.addr.as_str() {
        ADDR_FRAME => (None, None, int_arg(a, 0, "step", 0).map_err(Why::Bad)?, 1),
        ADDR_RANK => {
            let rank = narrow(int_arg(a, 0, "rank", 0).map_err(Why::Bad)?, "rank")?;
            let world = narrow(int_arg(a, 1, "world", 1).map_err(Why::Bad)?, "world")?;
            if world > MAX_WORLD {
                return Err(Why::Bad(format!(
                    "world {world} is above the limit of {MAX_WORLD} ranks"
                )));
            }
            if rank >= world {
                return Err(Why::Bad(format!(
                    "rank {rank} must be below world {world} (ranks are 0..world)"
                )));
            }
            let step = int_arg(a, 2, "step", 0).map_err(Why::Bad)?;
            (Some(rank), Some(world), step, 3)
        }
        ADDR_LOSS => {
            let step = int_arg(a, 0, "step", 0).map_err(Why::Bad)?;
            if !(3..=4).contains(&a.len()) {
                return Err(Why::Bad(format!(
                    "expected step, name, value [, rank]; found {} arguments",
                    a.len()
                )));
            }
            let loss = pairs(&a[..3], 1).map_err(Why::Bad)?;
            let rank = match a.len() {
                4 => Some(narrow(int_arg(a, 3, "rank", 0).map_err(Why::Bad)?, "rank")?),
                _ => None,
            };
            if let Some(r) = rank
                && r >= MAX_WORLD
            {
                return Err(Why::Bad(format!(
                    "rank {r} is beyond the limit of {MAX_WORLD} ranks"
                )));
            }
            let rec = asm.entry(rank, None, step);
            if rec.frame.values.len() + rec.frame.losses.len() >= MAX_STEP_ITEMS {
                return Err(Why::Bad(format!(
                    "step {step} already has {MAX_STEP_ITEMS} values and losses; loss dropped"
                )));
            }
            rec.frame.losses.extend(loss);
            return Ok(());
        }
        _ => return Err(Why::Unknown),
    };
    let values = pairs(a, first_pair).map_err(Why::Bad)?;
    let rec = asm.entry(rank, world, step);
    let held = rec.frame.values.len() + rec.frame.losses.len();
    if held + values.len() > MAX_STEP_ITEMS {
        return Err(Why::Bad(format!(
            "step {step} would have more than {MAX_STEP_ITEMS} values and losses; message dropped"
        )));
    }
    rec.frame.values.extend(values);
    if in_bundle {
        if !bundle_keys.contains(&(rank, step)) {
            bundle_keys.push((rank, step));
        }
    } else {
        asm.commit(rank, step);
    }
    Ok(())
}

impl FrameSource for OscSource {
    fn next_record(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.dec.pop() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            match self.rx.recv() {
                Ok(Some(datagram)) => {
                    if self.dec.push(datagram) {
                        self.rx.frame_arrived();
                    }
                }
                Ok(None) => {
                    self.done = true;
                    self.dec.finish();
                    self.dec.tally.diag.os_dropped = self.rx.os_drops();
                    if self.rx.idle_ended && self.dec.messages() == 0 {
                        let msg = nothing_received(
                            &self.dec.tally.diag.source,
                            self.rx.opts.idle_timeout,
                        );
                        self.dec.tally.warn(msg);
                    }
                }
                Err(source) => {
                    self.done = true;
                    self.dec.finish();
                    self.dec.tally.diag.os_dropped = self.rx.os_drops();
                    self.error = Some(IngestError::Read {
                        name: self.dec.tally.diag.source.clone(),
                        source,
                    });
                }
            }
        }
    }

    fn diagnostics(&self) -> &Diagnostics {
        self.dec.diagnostics()
    }

    fn take_error(&mut self) -> Option<IngestError> {
        self.error.take()
    }

    fn set_reporter(&mut self, reporter: Report) {
        self.dec.set_reporter(reporter);
    }
}

frames_from_records!(OscSource);
