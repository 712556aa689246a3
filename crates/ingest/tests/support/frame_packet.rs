//! Test support (not part of the library): [`frame_packet`] encodes a frame the way a sender
//! following `docs/osc.md` would, for the OSC tests, the fuzz smoke test and `examples/soak.rs`
//! (each includes this file with `#[path]`).

use gradtone_ingest::{ADDR_FRAME, ADDR_LOSS, ADDR_RANK, Frame};
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};

/// Encodes `frame` as one OSC packet in the `docs/osc.md` scheme: a bundle of its
/// `/gradtone/loss` messages followed by its `/gradtone/frame` (or, with a rank,
/// `/gradtone/rank`, with `world` or else `rank + 1` ranks). Values are sent as 32-bit floats
/// (OSC's standard type), integers as `i` when they fit, else `h`.
pub fn frame_packet(frame: &Frame, world: Option<u32>) -> OscPacket {
    let int = |x: u64| match i32::try_from(x) {
        Ok(i) => OscType::Int(i),
        Err(_) => OscType::Long(i64::try_from(x).unwrap_or(i64::MAX)),
    };
    let mut content = Vec::with_capacity(frame.losses.len() + 1);
    for loss in &frame.losses {
        let mut args = vec![
            int(frame.step),
            OscType::String(loss.name.clone()),
            OscType::Float(loss.value as f32),
        ];
        if let Some(rank) = frame.rank {
            args.push(int(rank.into()));
        }
        content.push(OscPacket::Message(OscMessage {
            addr: ADDR_LOSS.into(),
            args,
        }));
    }
    let mut args = Vec::with_capacity(3 + 2 * frame.values.len());
    let addr = match frame.rank {
        Some(rank) => {
            args.push(int(rank.into()));
            args.push(int(world.unwrap_or(rank.saturating_add(1)).into()));
            ADDR_RANK
        }
        None => ADDR_FRAME,
    };
    args.push(int(frame.step));
    for v in &frame.values {
        args.push(OscType::String(v.name.clone()));
        args.push(OscType::Float(v.value as f32));
    }
    content.push(OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    }));
    OscPacket::Bundle(OscBundle {
        timetag: OscTime::from((0, 1)), // "immediately"
        content,
    })
}
