//! How fast the oscillator bank renders, as a multiple of real time.
//!
//! `cargo run --release -p gradtone-sound --example synth_speed`
//!
//! Each case renders 60 s of stereo 44.1 kHz audio in 80 ms steps; every step gives every voice
//! a new pitch (so glides, envelopes and harmonic tapers are all exercised), like a mapping does.
//! Besides wall-clock time it reports the thread's CPU time (Linux `/proc/thread-self/schedstat`),
//! which stays honest on a busy machine.

use std::time::Instant;

use gradtone_sound::synth::{SAMPLE_RATE, Synth, Timbre, VoiceSettings};

fn main() {
    let seconds = 60.0;
    let step = (0.080 * f64::from(SAMPLE_RATE)) as usize;
    let steps = (seconds * f64::from(SAMPLE_RATE)) as usize / step;
    println!(
        "synth speed: {seconds} s of stereo audio at {SAMPLE_RATE} Hz, {steps} steps of 80 ms"
    );
    for timbre in [Timbre::Sine, Timbre::Soft, Timbre::Reed] {
        for voices in [4usize, 12] {
            let mut synth = Synth::new(SAMPLE_RATE, 8.0).with_volume(0.8);
            let mut out = Vec::with_capacity(2 * step);
            let mut checksum = 0.0f64;
            let start = Instant::now();
            let cpu0 = cpu_ns();
            for s in 0..steps {
                for v in 0..voices {
                    // A pseudo-random walk over 150–2500 Hz.
                    let x = ((s * 7 + v * 13) % 97) as f32 / 97.0;
                    synth.set(
                        v,
                        VoiceSettings {
                            freq_hz: 150.0 * (2500.0f32 / 150.0).powf(x),
                            amp: 1.0,
                            pan: v as f32 / voices as f32 * 2.0 - 1.0,
                            timbre,
                        },
                    );
                }
                out.clear();
                synth.render(step, &mut out);
                checksum += f64::from(out[out.len() / 2]);
            }
            let elapsed = start.elapsed().as_secs_f64();
            let cpu = cpu_ns().zip(cpu0).map(|(b, a)| (b - a) as f64 * 1e-9);
            let audio = (steps * step) as f64 / f64::from(SAMPLE_RATE);
            let cpu_text = cpu.map_or("CPU time n/a".to_owned(), |c| {
                format!("{:>6.0}× real time by CPU time", audio / c)
            });
            println!(
                "{:>5} {voices:>2} voices: {:>6.0}× real time by wall clock, {cpu_text} ({:.1} ms wall for {audio:.1} s; checksum {checksum:.3})",
                format!("{timbre:?}").to_lowercase(),
                audio / elapsed,
                elapsed * 1e3,
            );
        }
    }
}

/// Nanoseconds this thread has run on a CPU, where Linux says (`None` elsewhere).
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
