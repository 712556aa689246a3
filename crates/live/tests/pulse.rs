//! The real live path into a real PulseAudio server, checked from a recording of the sink's
//! monitor (`parec`): frequencies, order, continuity, and push-to-sound latency.
//!
//! Needs `PULSE_SERVER` and `parec` (see `.ci/pulse-start.sh`). Without them it prints a loud
//! SKIPPED line, unless `GRADTONE_REQUIRE_PULSE=1`, where it fails.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gradtone_live::{LiveConfig, LiveError, LivePlayer, Pace};

/// Recording format (what `parec` is asked for).
const REC_RATE: u32 = 48_000;
const TONES_HZ: [f64; 5] = [440.0, 660.0, 550.0, 880.0, 330.0];
const TONE_S: f64 = 0.3;

/// The tests share the one default sink, so they take turns.
static SINK: Mutex<()> = Mutex::new(());

/// Returns false (after printing why) when the test cannot run here; panics instead when the
/// environment demands a server.
fn available_or_skip(why: &str) -> bool {
    let hint = format!("{why} (source .ci/pulse-start.sh to run it)");
    gradtone_testkit::require("pulse test", "PULSE", false, &hint)
}

/// Opens the player, or says why the test is skipped.
fn open_or_skip(cfg: LiveConfig) -> Option<LivePlayer> {
    if std::env::var_os("PULSE_SERVER").is_none() {
        available_or_skip("PULSE_SERVER is not set");
        return None;
    }
    if Command::new("parec").arg("--version").output().is_err() {
        available_or_skip("`parec` (pulseaudio-utils) is not installed");
        return None;
    }
    match LivePlayer::open(cfg) {
        Ok(p) => Some(p),
        Err(LiveError::NoDevice { reason }) => {
            available_or_skip(&format!("no PulseAudio server: {reason}"));
            None
        }
        Err(e) => panic!("open failed: {e}"),
    }
}

/// (arrival time, samples received so far) for each read from `parec`.
type Arrivals = Vec<(Instant, usize)>;

/// `parec` on the default sink's monitor, read as it arrives, with arrival times.
struct Recorder {
    child: Child,
    reader: JoinHandle<(Vec<u8>, Arrivals)>,
}

impl Recorder {
    fn start() -> Recorder {
        let mut child = Command::new("parec")
            .args([
                "--latency-msec=20",
                "-d",
                "@DEFAULT_MONITOR@",
                "--format=s16le",
                &format!("--rate={REC_RATE}"),
                "--channels=1",
                "--raw",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn parec");
        let mut out = child.stdout.take().expect("parec stdout");
        let reader = std::thread::spawn(move || {
            let mut data = Vec::new();
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                arrivals.push((Instant::now(), data.len() / 2));
            }
            (data, arrivals)
        });
        Recorder { child, reader }
    }

    /// Stops `parec`; returns the recording (mono, -1..1) and (arrival time, samples so far).
    fn stop(mut self) -> (Vec<f32>, Arrivals) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (data, arrivals) = self.reader.join().expect("reader thread");
        let samples = data
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect();
        (samples, arrivals)
    }
}

/// Goertzel power of `x` (already windowed) at frequency `f`.
fn goertzel(x: &[f32], fs: f64, f: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f / fs;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// Dominant frequency of `x` in [lo, hi]: Hann window, 2 Hz scan, then golden-section refinement
/// of the peak to 0.01 Hz.
fn dominant_hz(x: &[f32], fs: f64, lo: f64, hi: f64) -> f64 {
    let n = x.len() as f64;
    let w: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v * (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n).cos()) as f32)
        .collect();
    let p = |f: f64| goertzel(&w, fs, f);
    let mut best = lo;
    let mut f = lo;
    while f <= hi {
        if p(f) > p(best) {
            best = f;
        }
        f += 2.0;
    }
    let (mut a, mut b) = (best - 2.0, best + 2.0);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    while b - a > 0.01 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if p(c) > p(d) {
            b = d;
        } else {
            a = c;
        }
    }
    (a + b) / 2.0
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Seconds from `from` to `to`, negative if `to` is earlier.
fn secs(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_secs_f64(),
        None => -from.duration_since(to).as_secs_f64(),
    }
}

/// Waits until `parec` has delivered audio for a while, so the recording is steady.
fn settle() {
    std::thread::sleep(Duration::from_millis(400));
}

#[test]
fn tones_play_live_in_order_without_gaps_and_with_low_latency() {
    let _turn = SINK.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = LiveConfig::default();
    let Some(mut player) = open_or_skip(cfg) else {
        return;
    };
    let test_start = Instant::now();
    assert_eq!(player.backend_name(), "pulseaudio");
    let rec = Recorder::start();
    settle();

    // Five tones, phase-continuous (no clicks at the joins), pushed in 30 ms steps as fast as
    // Realtime pace lets them in: like a training loop faster than its sound.
    let fs = f64::from(cfg.sample_rate);
    let per_tone = (TONE_S * fs).round() as usize;
    let mut phase = 0.0f64;
    let mut audio = Vec::with_capacity(per_tone * TONES_HZ.len());
    for &f in &TONES_HZ {
        for _ in 0..per_tone {
            audio.push((0.5 * phase.sin()) as f32);
            phase = (phase + 2.0 * std::f64::consts::PI * f / fs) % (2.0 * std::f64::consts::PI);
        }
    }
    let fade = (0.005 * fs) as usize;
    let len = audio.len();
    for (i, s) in audio[len - fade..].iter_mut().enumerate() {
        *s *= 1.0 - (i + 1) as f32 / fade as f32;
    }
    let step = (0.03 * fs) as usize;
    let pushed_at = Instant::now();
    for chunk in audio.chunks(step) {
        let s = player.push(chunk).expect("push");
        assert_eq!(s.dropped_samples, 0, "Realtime never drops");
    }
    let push_took = pushed_at.elapsed();
    let stats = player.finish().expect("finish");
    std::thread::sleep(Duration::from_millis(300));
    let (rec, arrivals) = rec.stop();
    println!("player stats: {stats:?}; pushing 1.5 s took {push_took:?}");

    // Onset: the recording is digital silence until our tone; the first sample above 10% of the
    // peak is within ~2 samples of the tone's start (it starts at phase 0 with a steep rise).
    let peak = rec.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    assert!(peak > 0.05, "nothing recorded (peak {peak})");
    let thr = 0.1 * peak;
    let onset = rec.iter().position(|v| v.abs() > thr).expect("onset");
    let end = rec.iter().rposition(|v| v.abs() > thr).expect("end");
    let rfs = f64::from(REC_RATE);
    let heard = (end - onset) as f64 / rfs;
    println!(
        "recorded {:.2} s, tone audio {heard:.4} s from sample {onset}",
        rec.len() as f64 / rfs
    );

    // Latency. The monitor delivers samples at the sink's steady rate, and no chunk can reach
    // us before its last sample was rendered: arrival_k >= T0 + N_k / fs for every chunk k
    // (N_k = samples received so far). The tightest bound, T0 = min_k(arrival_k - N_k / fs),
    // dates the recording's first sample; the onset was rendered at T0 + onset / fs. This is
    // robust to when `parec` started and to bursty delivery, and errs on the late side (by the
    // least delivery delay seen, ~1 ms) so the number is conservative.
    let t0 = arrivals
        .iter()
        .map(|&(t, n)| secs(pushed_at, t) - n as f64 / rfs)
        .fold(f64::INFINITY, f64::min);
    let latency_ms = (t0 + onset as f64 / rfs) * 1000.0;
    let upper_ms = arrivals
        .iter()
        .find(|&&(_, n)| n > onset)
        .map(|&(t, _)| secs(pushed_at, t) * 1000.0)
        .unwrap_or(f64::NAN);
    println!("LATENCY_MS={}", latency_ms.round());
    println!(
        "latency detail: push -> sink monitor {latency_ms:.1} ms (strict upper bound, arrival of \
         the chunk holding the onset: {upper_ms:.1} ms); player's own estimate {:?}, device \
         latency reported by the server {:?}",
        stats.first_sample_latency, stats.device_latency
    );

    // Frequencies and order: each tone's middle 240 ms.
    let seg = (TONE_S * rfs) as usize;
    let margin = (0.03 * rfs) as usize;
    let found: Vec<f64> = (0..TONES_HZ.len())
        .map(|i| {
            let a = onset + i * seg + margin;
            let b = onset + (i + 1) * seg - margin;
            dominant_hz(&rec[a..b], rfs, 100.0, 2000.0)
        })
        .collect();
    println!("FREQUENCIES_HZ={found:.2?} (expected {TONES_HZ:?})");

    // No gaps: RMS of every 10 ms window inside the tones stays near the tone's level.
    let win = (0.01 * rfs) as usize;
    let body = &rec[onset..onset + 5 * seg - 2 * win];
    let levels: Vec<f64> = body.chunks_exact(win).map(rms).collect();
    let mut sorted = levels.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let (worst_i, worst) = levels
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("windows");
    println!(
        "continuity: {} windows of 10 ms, lowest RMS {:.3} of the median (window {worst_i})",
        levels.len(),
        worst / median
    );
    println!("pulse test took {:?}", test_start.elapsed());

    for (i, (&f, &want)) in found.iter().zip(&TONES_HZ).enumerate() {
        assert!(
            (f - want).abs() <= 2.0,
            "tone {i}: {f:.2} Hz, want {want} Hz ± 2"
        );
    }
    assert!(
        worst >= 0.5 * median,
        "gap: a 10 ms window at {:.3} s into the tones has RMS {worst:.4}, median {median:.4}",
        worst_i as f64 * 0.01
    );
    // Nothing lost or inserted: the sound lasts as long as what was pushed (the final 5 ms fade
    // dips under the threshold a little early).
    assert!(
        (heard - 1.5).abs() < 0.015,
        "tones lasted {heard:.4} s, pushed 1.5 s"
    );
    assert_eq!(stats.samples_played, audio.len() as u64);
    assert_eq!(stats.samples_dropped, 0);
    assert_eq!(stats.underruns, 0, "dropouts: {stats:?}");
    assert!(latency_ms > 0.0, "sound before the push? {latency_ms} ms");
    assert!(
        latency_ms <= 100.0,
        "push-to-sound latency {latency_ms:.1} ms (target 50)"
    );
}

#[test]
fn live_pace_never_blocks_and_plays_only_the_newest_audio() {
    let _turn = SINK.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = LiveConfig {
        sample_rate: 48_000,
        pace: Pace::Live,
        max_lead_ms: 200,
        // Asked to play out the queue: the newest tone must be heard to the end.
        drain_on_finish: Some(true),
        ..LiveConfig::default()
    };
    let Some(mut player) = open_or_skip(cfg) else {
        return;
    };
    let rec = Recorder::start();
    settle();

    // 2 s of 440 Hz then 0.1 s of 880 Hz pushed at once: far more than the 200 ms bound.
    let fs = 48_000.0;
    let tone = |f: f64, secs: f64, from: usize| -> Vec<f32> {
        (from..from + (secs * fs) as usize)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / fs).sin()) as f32)
            .collect()
    };
    let mut steps: Vec<Vec<f32>> = (0..20).map(|k| tone(440.0, 0.1, k * 4800)).collect();
    steps.push(tone(880.0, 0.1, 0));
    let mut worst = Duration::ZERO;
    let mut dropped = 0;
    for s in &steps {
        let t = Instant::now();
        dropped += player.push(s).expect("push").dropped_samples;
        worst = worst.max(t.elapsed());
    }
    let stats = player.finish().expect("finish");
    std::thread::sleep(Duration::from_millis(300));
    let (rec, _) = rec.stop();

    let peak = rec.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    assert!(peak > 0.05, "nothing recorded");
    let thr = 0.1 * peak;
    let onset = rec.iter().position(|v| v.abs() > thr).expect("onset");
    let end = rec.iter().rposition(|v| v.abs() > thr).expect("end");
    let heard = (end - onset) as f64 / f64::from(REC_RATE);
    let last = dominant_hz(
        &rec[end - 3_600..end - 600],
        f64::from(REC_RATE),
        100.0,
        2000.0,
    );
    println!(
        "live: worst push {worst:?}, heard {heard:.3} s of 2.1 s pushed, last tone {last:.1} Hz, \
         dropped {} samples, stats {stats:?}",
        stats.samples_dropped
    );
    assert!(
        worst < Duration::from_millis(5),
        "a Live push took {worst:?}"
    );
    // What is heard is bounded by the lead, not by what was pushed.
    assert!(
        heard < 0.4,
        "heard {heard:.3} s: the oldest audio was not dropped"
    );
    assert!(stats.samples_dropped > 80_000, "{stats:?}");
    assert_eq!(stats.samples_played + stats.samples_dropped, 21 * 4_800);
    assert!(dropped <= stats.samples_dropped);
    // The newest audio is what ends the sound.
    assert!(
        (last - 880.0).abs() <= 2.0,
        "last tone {last:.1} Hz, want the newest (880)"
    );
}

#[test]
fn live_pace_finish_does_not_wait_for_the_queue_unless_asked() {
    let _turn = SINK.lock().unwrap_or_else(|e| e.into_inner());
    // The default for Pace::Live: no play-out at the end, so a run is not held by its sound.
    let cfg = LiveConfig {
        sample_rate: 48_000,
        pace: Pace::Live,
        ..LiveConfig::default()
    };
    assert_eq!(cfg.drain_on_finish, None);
    let Some(mut player) = open_or_skip(cfg) else {
        return;
    };
    // 0.45 s queued (under the 500 ms lead: nothing skipped while pushing), then finish.
    let audio = vec![0.1f32; 21_600];
    let pushed = player.push(&audio).expect("push");
    assert_eq!(pushed.dropped_samples, 0);
    let stats = player.finish().expect("finish");
    println!("finish without play-out: {stats:?}");
    // Most of the queue was still waiting when finish returned: it was dropped, not played.
    assert_eq!(stats.samples_played + stats.samples_dropped, 21_600);
    assert!(
        stats.samples_dropped > 10_800,
        "finish played out the queue: {stats:?}"
    );
}
