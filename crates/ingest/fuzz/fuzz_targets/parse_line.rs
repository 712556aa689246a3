//! Fuzzes the JSONL line parser and the tolerant reader: no input may panic, and a line the
//! parser accepts must be read the same by the reader.
#![no_main]

use gradtone_ingest::{FrameSource, JsonlReader, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = std::str::from_utf8(data).ok().map(parse_line);
    let mut reader = JsonlReader::new(data, "fuzz");
    let frames: Vec<_> = reader.by_ref().collect();
    let d = reader.diagnostics();
    assert!(d.frames == frames.len() as u64);
    // One line without a newline: the reader must agree with the parser.
    if let Some(result) = parsed
        && !data.contains(&b'\n')
        && !data.iter().all(u8::is_ascii_whitespace)
        && !data.starts_with("\u{feff}".as_bytes())
    {
        match result {
            Ok(f) => {
                assert!(frames.len() == 1 && d.malformed == 0);
                assert!(frames[0].step == f.step && frames[0].values.len() == f.values.len());
            }
            Err(_) => assert!(frames.is_empty() && d.malformed == 1),
        }
    }
});
