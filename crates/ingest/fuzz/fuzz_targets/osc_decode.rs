//! Fuzzes the OSC decoder with arbitrary datagrams: no input may panic or overflow the stack,
//! every datagram is counted, and what is held stays bounded.
#![no_main]

use gradtone_ingest::OscDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut dec = OscDecoder::new("fuzz");
    // The input as one datagram, then split in up to 4 datagrams at 0xC0 bytes (so that one
    // run exercises steps assembled across datagrams).
    dec.push(data);
    for part in data.split(|&b| b == 0xC0).take(4) {
        dec.push(part);
    }
    let mut frames = 0u64;
    while dec.pop().is_some() {
        frames += 1;
    }
    dec.finish();
    while let Some(r) = dec.pop() {
        frames += 1;
        if let Some(rank) = r.frame.rank {
            assert!(rank < gradtone_ingest::MAX_WORLD);
            if let Some(w) = r.world {
                assert!(rank < w && w <= gradtone_ingest::MAX_WORLD);
            }
        }
    }
    let d = dec.diagnostics();
    assert_eq!(d.frames, frames);
    assert!(d.first_errors.len() <= gradtone_ingest::MAX_REPORTED);
    assert!(d.first_errors.iter().all(|m| m.len() < 2000));
});
