//! Generates a 1,000,000-line JSONL stream (4 values and a loss per line) and parses it,
//! printing lines/s and the peak resident memory (VmHWM), which must stay flat.
//!
//! `cargo run --release -p gradtone-ingest --example parse_speed [LINES]`

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use gradtone_ingest::{FrameSource, JsonlReader};

/// Peak resident set size in KiB, from /proc/self/status (Linux); 0 elsewhere.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 1_000_000,
    };
    let path =
        std::env::temp_dir().join(format!("gradtone-parse-speed-{}.jsonl", std::process::id()));
    let t = Instant::now();
    {
        let mut w = BufWriter::new(File::create(&path)?);
        for step in 0..n {
            let x = step as f64 * 1e-6;
            writeln!(
                w,
                "{{\"v\":1,\"step\":{step},\"values\":{{\"conv1\":{},\"conv2\":{},\"fc1\":{},\"fc2\":{}}},\"losses\":{{\"loss\":{}}},\"rank\":0,\"world\":1,\"t\":{}}}",
                0.12 + x,
                0.8 - x,
                1.1 * (1.0 + x),
                0.86 / (1.0 + x),
                2.3 - x,
                1_795_775_400.25 + step as f64 * 0.01
            )?;
        }
        w.flush()?;
    }
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "generated {n} lines, {:.1} MB, in {:.2} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let hwm_before = vm_hwm_kib();

    let t = Instant::now();
    let mut src = JsonlReader::open(&path)?;
    let (mut frames, mut checksum) = (0u64, 0.0f64);
    for f in src.by_ref() {
        frames += 1;
        checksum += f.values.iter().map(|v| v.value).sum::<f64>();
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    if let Some(e) = src.take_error() {
        return Err(e.into());
    }
    assert_eq!(frames, n, "{:?}", src.diagnostics().summary());
    println!(
        "parsed {frames} frames in {secs:.2} s: {:.0} lines/s, {:.0} MB/s (checksum {checksum:.3})",
        n as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    println!(
        "peak RSS (VmHWM): {:.1} MiB before parsing, {:.1} MiB after",
        hwm_before as f64 / 1024.0,
        vm_hwm_kib() as f64 / 1024.0
    );
    Ok(())
}
