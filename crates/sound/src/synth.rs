//! An additive oscillator bank: phase-continuous, band-limited, click-free, never clipping.
//!
//! [`Synth`] holds a set of [`Voice`] slots. Each voice is a phase accumulator (in cycles, `f64`)
//! whose waveform is a sum of harmonics of one [`Timbre`]; a mapping sets a voice's target
//! frequency, amplitude and pan ([`Synth::set`]) and then asks for samples ([`Synth::render`]).
//! Everything that changes is ramped so nothing clicks:
//!
//! - **amplitude** moves linearly, a full 0→1 swing taking `ramp_ms` (attack and release);
//! - **frequency** glides geometrically over `ramp_ms` while a voice sounds (a voice that starts
//!   from silence jumps straight to its pitch), the phase never jumps;
//! - **pan** (equal-power: `L = cos θ`, `R = sin θ`, `θ = (pan + 1)·π/4`) and the mix gain move
//!   linearly within each 64-sample block.
//!
//! **Band limit**: harmonic `k` of a voice at `f` Hz is synthesised only while `k·f < 0.45·fs`
//! (fading out over the last `0.05·fs` below that), and the fundamental itself is clamped to
//! `0.45·fs`, so nothing reaches Nyquist and nothing aliases.
//!
//! **Level**: a voice's waveform is scaled by the sum of its harmonic weights, so one voice at
//! amplitude `a` never exceeds `a`. The mix is multiplied by `volume / √(sounding voices)` and
//! then passes a soft limiter (linear below 0.8, a `tanh` knee above), so the output's peak is
//! ≤ 1.0 whatever the voices do.
//!
//! ```
//! use gradtone_sound::synth::{Synth, Timbre, VoiceSettings};
//! let mut synth = Synth::new(44_100, 8.0);
//! synth.set(0, VoiceSettings { freq_hz: 440.0, amp: 1.0, pan: -0.5, timbre: Timbre::Reed });
//! let mut out = Vec::new();
//! synth.render(4410, &mut out); // 100 ms, stereo interleaved
//! assert_eq!(out.len(), 2 * 4410);
//! assert!(out.iter().all(|s| s.abs() <= 1.0));
//! ```

use serde::Deserialize;

/// The sample rate every non-seed mapping renders at, Hz.
pub const SAMPLE_RATE: u32 = 44_100;
/// Samples per internal block: frequency, pan and mix gain are updated once per block.
const BLOCK: usize = 64;
/// Harmonics are synthesised only below this fraction of the sample rate.
pub const BAND_LIMIT: f32 = 0.45;
/// Harmonics fade out over this fraction of the sample rate just below [`BAND_LIMIT`].
const BAND_FADE: f32 = 0.05;
/// The limiter is linear up to this level.
const LIMIT_KNEE: f32 = 0.8;
/// Most harmonic weights a timbre uses (odd harmonics 1, 3, …, 15).
const MAX_PARTIALS: usize = 8;
/// `[0.0, 1.0, 2.0, …]`: sample offsets within a block as floats. Reading them from a table
/// instead of converting the loop counter keeps the inner loops vectorised (SSE2 has no packed
/// 64-bit integer → float conversion).
const RAMP: [f32; BLOCK + 1] = {
    let mut r = [0.0f32; BLOCK + 1];
    let mut i = 0;
    while i <= BLOCK {
        r[i] = i as f32;
        i += 1;
    }
    r
};

/// A voice's waveform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timbre {
    /// A pure sine: the clearest pitch, the least tiring.
    Sine,
    /// Triangle-like: odd harmonics 1–9 falling as `1/k²`; soft and round (the default).
    #[default]
    Soft,
    /// Odd harmonics 1–15 falling as `1/k` (a band-limited square): a bright, clarinet-like reed.
    Reed,
}

impl Timbre {
    /// Weights of the odd harmonics 1, 3, 5, … (signed, before the band-limit taper).
    fn partials(self) -> &'static [f32] {
        match self {
            Timbre::Sine => &[1.0],
            // Triangle series: (−1)^((k−1)/2) / k².
            Timbre::Soft => &[1.0, -1.0 / 9.0, 1.0 / 25.0, -1.0 / 49.0, 1.0 / 81.0],
            Timbre::Reed => &[
                1.0,
                1.0 / 3.0,
                1.0 / 5.0,
                1.0 / 7.0,
                1.0 / 9.0,
                1.0 / 11.0,
                1.0 / 13.0,
                1.0 / 15.0,
            ],
        }
    }
}

/// What a voice should sound like; [`Synth::set`] ramps the voice towards it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiceSettings {
    /// Frequency, Hz (clamped to `[1, 0.45·fs]`; non-finite or ≤ 0 silences the voice).
    pub freq_hz: f32,
    /// Amplitude, 0–1 (clamped; non-finite silences the voice).
    pub amp: f32,
    /// Stereo position, −1 (left) … +1 (right) (clamped; non-finite means centre).
    pub pan: f32,
    /// Waveform.
    pub timbre: Timbre,
}

/// One oscillator slot of a [`Synth`].
#[derive(Clone, Debug)]
pub struct Voice {
    /// Phase in cycles, in `[0, 1)`.
    phase: f64,
    /// Current frequency, Hz.
    freq: f32,
    /// Target frequency, Hz.
    freq_target: f32,
    /// Per-block frequency factor of an ongoing glide, and blocks it has left.
    glide_factor: f32,
    glide_blocks: u32,
    /// Current and target amplitude (the envelope).
    amp: f32,
    amp_target: f32,
    /// Current and target equal-power channel gains.
    gain_l: f32,
    gain_r: f32,
    target_l: f32,
    target_r: f32,
    timbre: Timbre,
}

impl Default for Voice {
    fn default() -> Self {
        let (l, r) = pan_gains(0.0);
        Voice {
            phase: 0.0,
            freq: 440.0,
            freq_target: 440.0,
            glide_factor: 1.0,
            glide_blocks: 0,
            amp: 0.0,
            amp_target: 0.0,
            gain_l: l,
            gain_r: r,
            target_l: l,
            target_r: r,
            timbre: Timbre::default(),
        }
    }
}

impl Voice {
    /// Whether the voice is audible now or is going to be.
    pub fn is_sounding(&self) -> bool {
        self.amp > 0.0 || self.amp_target > 0.0
    }

    /// The current frequency (mid-glide, if gliding), Hz.
    pub fn freq_hz(&self) -> f32 {
        self.freq
    }
}

/// Equal-power pan law: `(cos θ, sin θ)` with `θ = (pan + 1)·π/4`, so `L² + R² = 1`.
///
/// ```
/// let (l, r) = gradtone_sound::synth::pan_gains(0.0);
/// assert!((l - r).abs() < 1e-6 && (l * l + r * r - 1.0).abs() < 1e-6);
/// ```
pub fn pan_gains(pan: f32) -> (f32, f32) {
    let pan = if pan.is_finite() {
        pan.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let theta = (pan + 1.0) * std::f32::consts::FRAC_PI_4;
    (theta.cos(), theta.sin())
}

/// The oscillator bank. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Synth {
    sample_rate: u32,
    /// Amplitude change per sample (1 / ramp length in samples).
    amp_step: f32,
    /// Blocks a frequency glide or pan move takes.
    ramp_blocks: u32,
    voices: Vec<Voice>,
    volume: f32,
    /// Current mix gain (volume / √sounding).
    mix_gain: f32,
    left: Vec<f32>,
    right: Vec<f32>,
    wave: Vec<f32>,
}

impl Synth {
    /// A silent bank at `sample_rate` Hz whose ramps take `ramp_ms` milliseconds (at least one
    /// sample; 5–10 ms is click-free and still crisp). Volume 1.0.
    pub fn new(sample_rate: u32, ramp_ms: f32) -> Self {
        let sr = sample_rate.max(1) as f32;
        let ramp_samples = (ramp_ms.max(0.0) * 1e-3 * sr).max(1.0);
        Synth {
            sample_rate: sample_rate.max(1),
            amp_step: 1.0 / ramp_samples,
            ramp_blocks: (ramp_samples / BLOCK as f32).ceil().max(1.0) as u32,
            voices: Vec::new(),
            volume: 1.0,
            mix_gain: 1.0,
            left: vec![0.0; BLOCK],
            right: vec![0.0; BLOCK],
            wave: vec![0.0; BLOCK],
        }
    }

    /// Sets the master volume (0–1, applied before the limiter).
    #[must_use]
    pub fn with_volume(mut self, volume: f32) -> Self {
        self.volume = if volume.is_finite() {
            volume.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.mix_gain = self.volume;
        self
    }

    /// The sample rate, Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The voice slots (read-only).
    pub fn voices(&self) -> &[Voice] {
        &self.voices
    }

    /// Voices audible now or about to be.
    pub fn sounding(&self) -> usize {
        self.voices.iter().filter(|v| v.is_sounding()).count()
    }

    /// Ramps voice `index` (created, silent, if it does not exist yet) towards `s`.
    pub fn set(&mut self, index: usize, s: VoiceSettings) {
        if index >= self.voices.len() {
            self.voices.resize_with(index + 1, Voice::default);
        }
        let nyquist_guard = BAND_LIMIT * self.sample_rate as f32;
        let ramp_blocks = self.ramp_blocks;
        let v = &mut self.voices[index];
        let valid = s.freq_hz.is_finite() && s.freq_hz > 0.0 && s.amp.is_finite();
        if !valid {
            v.amp_target = 0.0;
            return;
        }
        let freq = s.freq_hz.clamp(1.0, nyquist_guard);
        v.amp_target = s.amp.clamp(0.0, 1.0);
        (v.target_l, v.target_r) = pan_gains(s.pan);
        v.timbre = s.timbre;
        if v.amp == 0.0 {
            // Starting from silence: no glide, and the pan starts where it should be.
            v.freq = freq;
            v.glide_blocks = 0;
            (v.gain_l, v.gain_r) = (v.target_l, v.target_r);
        } else if freq != v.freq {
            v.glide_factor = (freq / v.freq).powf(1.0 / ramp_blocks as f32);
            v.glide_blocks = ramp_blocks;
        }
        v.freq_target = freq;
    }

    /// Releases voice `index` (ramps it to silence); no-op if it does not exist.
    pub fn release(&mut self, index: usize) {
        if let Some(v) = self.voices.get_mut(index) {
            v.amp_target = 0.0;
        }
    }

    /// Releases every voice.
    pub fn release_all(&mut self) {
        self.voices.iter_mut().for_each(|v| v.amp_target = 0.0);
    }

    /// Appends `frames` stereo sample frames (interleaved L, R) to `out`.
    pub fn render(&mut self, frames: usize, out: &mut Vec<f32>) {
        out.reserve(2 * frames);
        let mut left_to_do = frames;
        while left_to_do > 0 {
            let n = left_to_do.min(BLOCK);
            self.render_block(n, out);
            left_to_do -= n;
        }
    }

    /// One block, with the widest vector unit the CPU has. Both paths run the same code (no FMA
    /// contraction: Rust never fuses `a * b + c`), so the samples are identical either way.
    fn render_block(&mut self, n: usize, out: &mut Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above (the result is cached by std).
            unsafe { self.render_block_avx2(n, out) };
            return;
        }
        self.render_block_impl(n, out);
    }

    /// [`Self::render_block_impl`] compiled for AVX2 (8-lane vectors instead of SSE2's 4).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn render_block_avx2(&mut self, n: usize, out: &mut Vec<f32>) {
        self.render_block_impl(n, out);
    }

    #[inline(always)]
    fn render_block_impl(&mut self, n: usize, out: &mut Vec<f32>) {
        let sr = self.sample_rate as f32;
        let (left, right, wave) = (
            &mut self.left[..n],
            &mut self.right[..n],
            &mut self.wave[..n],
        );
        left.fill(0.0);
        right.fill(0.0);
        let mut sounding = 0usize;
        let pan_frac = 1.0 / self.ramp_blocks as f32;
        for v in &mut self.voices {
            let inc = v.freq / sr;
            if v.is_sounding() {
                sounding += 1;
                fill_wave(v, inc, sr, wave);
                // Closed-form linear envelope, branch-free so it vectorises: the amplitude
                // moves `amp_step` per sample towards its target and stops there.
                let (a0, delta) = (v.amp, v.amp_target - v.amp);
                let frac_step = if delta != 0.0 {
                    self.amp_step / delta.abs()
                } else {
                    0.0
                };
                // Pan gains move a fraction of the way per block, linearly within it.
                let l1 = v.gain_l + (v.target_l - v.gain_l) * pan_frac.min(1.0);
                let r1 = v.gain_r + (v.target_r - v.gain_r) * pan_frac.min(1.0);
                let (dl, dr) = ((l1 - v.gain_l) / n as f32, (r1 - v.gain_r) / n as f32);
                let (l0, r0) = (v.gain_l, v.gain_r);
                for (((w, l), r), &k) in wave
                    .iter()
                    .zip(left.iter_mut())
                    .zip(right.iter_mut())
                    .zip(&RAMP[1..])
                {
                    let x = w * (a0 + delta * (k * frac_step).min(1.0));
                    *l += x * (l0 + k * dl);
                    *r += x * (r0 + k * dr);
                }
                v.amp = a0 + delta * (n as f32 * frac_step).min(1.0);
                (v.gain_l, v.gain_r) = (l1, r1);
            }
            // The phase runs on while silent too, so a voice is one continuous oscillator.
            v.phase = (v.phase + n as f64 * f64::from(inc)).fract();
            if v.glide_blocks > 0 {
                v.glide_blocks -= 1;
                v.freq = if v.glide_blocks == 0 {
                    v.freq_target
                } else {
                    v.freq * v.glide_factor
                };
            }
        }
        let target = self.volume / (sounding.max(1) as f32).sqrt();
        let (g0, dg) = (
            self.mix_gain,
            (target - self.mix_gain) * pan_frac.min(1.0) / n as f32,
        );
        let base = out.len();
        out.resize(base + 2 * n, 0.0);
        for (((o, l), r), &k) in out[base..]
            .chunks_exact_mut(2)
            .zip(left.iter())
            .zip(right.iter())
            .zip(&RAMP[1..])
        {
            let g = g0 + k * dg;
            o[0] = soft_limit(l * g);
            o[1] = soft_limit(r * g);
        }
        self.mix_gain = g0 + n as f32 * dg;
    }
}

/// Fills `wave` with `n` samples of voice `v`'s normalised waveform from its current phase.
#[inline(always)]
fn fill_wave(v: &Voice, inc: f32, sr: f32, wave: &mut [f32]) {
    let p0 = v.phase as f32;
    match v.timbre {
        Timbre::Sine => {
            for (w, &k) in wave.iter_mut().zip(&RAMP) {
                *w = sin_cycles(p0 + k * inc);
            }
        }
        timbre => {
            // Harmonic weights with the band-limit taper, normalised so the peak is ≤ 1.
            let mut weights = [0.0f32; MAX_PARTIALS];
            let (limit, fade) = (BAND_LIMIT * sr, BAND_FADE * sr);
            for (j, (&p, w)) in timbre.partials().iter().zip(weights.iter_mut()).enumerate() {
                let k = (2 * j + 1) as f32;
                let taper = if j == 0 {
                    1.0
                } else {
                    ((limit - k * v.freq) / fade).clamp(0.0, 1.0)
                };
                *w = p * taper;
            }
            let sum: f32 = weights.iter().map(|w| w.abs()).sum();
            weights.iter_mut().for_each(|w| *w /= sum);
            let used = weights.iter().rposition(|&w| w != 0.0).map_or(1, |i| i + 1);
            // Fixed-size inner loops so the compiler unrolls and vectorises over samples.
            if used <= 1 {
                for (w, &k) in wave.iter_mut().zip(&RAMP) {
                    *w = weights[0] * sin_cycles(p0 + k * inc);
                }
            } else if used <= 5 {
                odd_partials::<5>(p0, inc, &weights, wave);
            } else {
                odd_partials::<MAX_PARTIALS>(p0, inc, &weights, wave);
            }
        }
    }
}

/// Sum of `weights[j]·sin(2π(2j+1)·phase)` for `N` odd harmonics, by the Chebyshev recurrence
/// `s(k+2) = 2cos(2θ)·s(k) − s(k−2)` from one sine per sample.
#[inline(always)]
fn odd_partials<const N: usize>(
    p0: f32,
    inc: f32,
    weights: &[f32; MAX_PARTIALS],
    wave: &mut [f32],
) {
    for (w, &k) in wave.iter_mut().zip(&RAMP) {
        let p = p0 + k * inc;
        let s1 = sin_cycles(p);
        // 2·cos 2θ = 2 − 4·sin²θ: no cosine needed.
        let c2 = 2.0 - 4.0 * s1 * s1;
        let (mut prev, mut cur) = (-s1, s1);
        let mut acc = weights[0] * s1;
        for &wt in &weights[1..N] {
            let next = c2 * cur - prev;
            prev = cur;
            cur = next;
            acc += wt * cur;
        }
        *w = acc;
    }
}

/// `sin(2π·x)` for `x` in cycles (|x| < 2²²), error < 4e-6 (−108 dB): fold to a quarter
/// period, then an odd Taylor polynomial to z⁹. Branch-free so loops over it vectorise.
#[inline(always)]
pub(crate) fn sin_cycles(x: f32) -> f32 {
    // Round to nearest by the 1.5·2²³ trick (Rust does not reassociate floats, so this holds).
    const MAGIC: f32 = 12_582_912.0;
    let r = x - ((x + MAGIC) - MAGIC);
    // r ∈ [−0.5, 0.5]; reflect into [−0.25, 0.25] (sin(π − z) = sin z).
    let t = r.min(0.5 - r).max(-0.5 - r);
    let z = t * std::f32::consts::TAU;
    let z2 = z * z;
    z * (1.0
        + z2 * (-1.0 / 6.0 + z2 * (1.0 / 120.0 + z2 * (-1.0 / 5040.0 + z2 * (1.0 / 362_880.0)))))
}

/// Soft limiter: identity up to ±0.8, then a rational knee `0.8 + 0.2·u/(1+u)` (slope 1 at the
/// knee, `u` the excess over it in units of 0.2) that approaches but never passes ±1. Cheaper
/// than `tanh` in the inner loop. NaN becomes 0 (a defect upstream must not reach the speakers).
#[inline(always)]
pub fn soft_limit(x: f32) -> f32 {
    let a = x.abs();
    let room = 1.0 - LIMIT_KNEE;
    // Branch-free so the output loop vectorises; the `min` caps u so ∞ cannot make ∞/∞.
    let u = ((a - LIMIT_KNEE).max(0.0) / room).min(1e30);
    let y = (a.min(LIMIT_KNEE) + room * (u / (1.0 + u))).min(1.0);
    if x.is_nan() { 0.0 } else { y.copysign(x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_cycles_is_accurate() {
        let mut worst = 0.0f64;
        for i in -20_000..20_000 {
            let x = i as f32 * 0.000_37;
            let want = (std::f64::consts::TAU * f64::from(x)).sin();
            worst = worst.max((f64::from(sin_cycles(x)) - want).abs());
        }
        assert!(worst < 4e-6, "worst error {worst}");
    }

    #[test]
    fn limiter_bounds_and_identity() {
        assert_eq!(soft_limit(0.5), 0.5);
        assert_eq!(soft_limit(-0.8), -0.8);
        for x in [0.81f32, 1.0, 2.0, 10.0, 1e30, f32::INFINITY] {
            let y = soft_limit(x);
            assert!(y > 0.8 && y <= 1.0, "{x} → {y}");
            assert_eq!(soft_limit(-x), -y);
        }
        assert_eq!(soft_limit(f32::NAN), 0.0);
        // Monotonic through the knee.
        assert!(soft_limit(0.9) < soft_limit(0.95));
    }

    #[test]
    fn harmonic_timbres_match_their_series() {
        // Reed at 100 Hz: the 3rd harmonic is a third of the fundamental's amplitude.
        let mut s = Synth::new(SAMPLE_RATE, 5.0);
        s.set(
            0,
            VoiceSettings {
                freq_hz: 100.0,
                amp: 1.0,
                pan: 0.0,
                timbre: Timbre::Reed,
            },
        );
        let mut out = Vec::new();
        s.render(44_100, &mut out);
        let left: Vec<f32> = out[4410..].iter().step_by(2).copied().collect();
        let p1 = crate::analysis::goertzel_power(&left, SAMPLE_RATE, 100.0);
        let p3 = crate::analysis::goertzel_power(&left, SAMPLE_RATE, 300.0);
        let p2 = crate::analysis::goertzel_power(&left, SAMPLE_RATE, 200.0);
        assert!(
            ((p1 / p3).sqrt() - 3.0).abs() < 0.05,
            "ratio {}",
            (p1 / p3).sqrt()
        );
        assert!(p2 < 1e-6 * p1, "no even harmonics: {p2} vs {p1}");
    }
}
