//! [`SeedMapping`]: the original 2019 sonification, sample-exact.

use crate::Mapping;
use gradtone_frame::Frame;

/// Samples in one tone slot: 10 ms at 44.1 kHz.
const TONE_LEN: usize = 441;
/// Silence after each frame's tones: 20 ms.
const GAP_LEN: usize = 2 * TONE_LEN;
/// Tone and noise amplitude.
const AMP: f32 = 0.1;
/// Highest frequency a tone may have; below Nyquist (22 050 Hz) with margin, so nothing aliases.
pub const MAX_FREQ_HZ: f32 = 20_000.0;

/// The original 2019 mapping (Perone, "Listening to the neural network gradient norms during
/// training"), sample-exact with the PyTorch/NumPy reference.
///
/// Per frame, for each entry of [`Frame::values`] in order: 441 samples (10 ms) of a sine at
/// `f = 200 + 100·value` Hz, amplitude 0.1, phase restarting at 0 for each tone; then 882 samples
/// (20 ms) of silence. Mono, 44.1 kHz. Losses are not sounded.
///
/// The arithmetic is NumPy's: `f` in `f32`, the sine in `f64` as
/// `sin(2π·i·f / 44100)` (evaluated left to right), cast to `f32`, times `0.1f32`.
///
/// Two decisions the 2019 script did not make (it produced aliasing and NaN samples):
/// - **Nyquist clamp**: a frequency above 20 000 Hz (value > 198) is clamped to 20 000 Hz, so a
///   huge finite norm sounds as the highest whistle and never aliases down to a low tone.
///   (A negative value gives a negative frequency, which NumPy renders as a phase-inverted tone
///   at `|f|`; it is kept, and clamped at −20 000 Hz likewise.)
/// - **Non-finite values** (NaN, ±∞): the slot is white noise of peak ≤ 0.1, a hiss unlike any
///   tone, never NaN samples and never a full-scale blast. The noise is deterministic: seeded from
///   the frame's step and the value's index, so renders are reproducible and consecutive noise
///   slots differ (identical 10 ms bursts back to back would buzz at 100 Hz).
///
/// ```
/// use gradtone_frame::Frame;
/// use gradtone_sound::SeedMapping;
/// let mut m = SeedMapping::new();
/// let mut out = Vec::new();
/// m.render(&Frame::new(0).with_value("conv1", 0.5).with_value("fc1", f64::NAN), &mut out);
/// assert_eq!(out.len(), m.samples_per_frame(2));
/// assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 0.1));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SeedMapping {
    _private: (),
}

impl SeedMapping {
    /// The sample rate of the output, Hz.
    pub const SAMPLE_RATE: u32 = 44_100;

    /// The mapping (it has no settings: it is the original).
    pub fn new() -> Self {
        SeedMapping { _private: () }
    }

    /// Appends the mono `f32` samples of one frame to `out` (see the type docs).
    pub fn render(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        out.reserve(self.samples_per_frame(frame.values.len()));
        for (index, named) in frame.values.iter().enumerate() {
            match tone_frequency(named.value) {
                Some(freq) => push_tone(freq, out),
                None => push_noise(slot_seed(frame.step, index), out),
            }
        }
        out.resize(out.len() + GAP_LEN, 0.0);
    }

    /// Samples one frame with `n_values` values renders to: `441·n + 882`.
    pub fn samples_per_frame(&self, n_values: usize) -> usize {
        TONE_LEN * n_values + GAP_LEN
    }
}

impl Mapping for SeedMapping {
    fn sample_rate(&self) -> u32 {
        Self::SAMPLE_RATE
    }

    fn channels(&self) -> u16 {
        1
    }

    fn render(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        SeedMapping::render(self, frame, out);
    }
}

/// The tone frequency for a value, in `f32` as the reference computes it, clamped to
/// ±[`MAX_FREQ_HZ`]; `None` for a non-finite value.
pub(crate) fn tone_frequency(value: f64) -> Option<f32> {
    if !value.is_finite() {
        return None;
    }
    // `value as f32` can overflow to ±inf for a finite f64 beyond f32::MAX; the clamp catches it.
    let freq = 200.0f32 + (value as f32) * 100.0f32;
    Some(freq.clamp(-MAX_FREQ_HZ, MAX_FREQ_HZ))
}

/// One 10 ms tone, NumPy's `0.1 * np.sin(2*np.pi*np.arange(441)*freq/fs).astype(np.float32)`.
fn push_tone(freq: f32, out: &mut Vec<f32>) {
    let two_pi = 2.0 * std::f64::consts::PI;
    let fs = SeedMapping::SAMPLE_RATE as f64;
    out.extend((0..TONE_LEN).map(|i| {
        // Same operation order as NumPy so every f64 rounding matches: ((2π·i)·f)/fs.
        let x = ((two_pi * i as f64 * freq as f64) / fs).sin();
        (x as f32) * AMP
    }));
}

/// Seed of the noise in slot `index` of frame `step` (SplitMix64 of both, never zero).
fn slot_seed(step: u64, index: usize) -> u64 {
    let mut z = step
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index as u64)
        .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // xorshift's state must be non-zero.
    if z == 0 { 0x2545_F491_4F6C_DD1D } else { z }
}

/// One 10 ms slot of uniform white noise in [−0.1, 0.1] (xorshift64).
fn push_noise(mut state: u64, out: &mut Vec<f32>) {
    out.extend((0..TONE_LEN).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Top 24 bits → exactly representable u in [0, 1), so 2u−1 ∈ [−1, 1) and |sample| ≤ 0.1.
        let u = (state >> 40) as f32 / (1u32 << 24) as f32;
        (2.0 * u - 1.0) * AMP
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_formula_and_clamp() {
        assert_eq!(tone_frequency(0.5), Some(250.0));
        assert_eq!(tone_frequency(0.0), Some(200.0));
        assert_eq!(tone_frequency(198.0), Some(20_000.0));
        assert_eq!(tone_frequency(198.5), Some(20_000.0));
        assert_eq!(
            tone_frequency(1e300),
            Some(20_000.0),
            "f32 overflow still clamps"
        );
        assert_eq!(tone_frequency(-1e6), Some(-20_000.0));
        assert_eq!(tone_frequency(f64::NAN), None);
        assert_eq!(tone_frequency(f64::INFINITY), None);
        assert_eq!(tone_frequency(f64::NEG_INFINITY), None);
        // f32 arithmetic, as the reference: 0.1 is not exact in f32.
        assert_eq!(tone_frequency(0.1), Some(200.0f32 + 0.1f32 * 100.0f32));
    }

    #[test]
    fn layout_and_phase() {
        let mut m = SeedMapping::new();
        let mut out = vec![9.0];
        m.render(
            &Frame::new(0).with_value("a", 0.5).with_value("b", 1.0),
            &mut out,
        );
        assert_eq!(out.len(), 1 + m.samples_per_frame(2));
        assert_eq!(m.samples_per_frame(4), 441 * 4 + 882);
        assert_eq!(out[0], 9.0, "render appends");
        // Each tone restarts at phase 0.
        assert_eq!(out[1], 0.0);
        assert_eq!(out[1 + 441], 0.0);
        // Second sample of the 250 Hz tone.
        let want = ((2.0 * std::f64::consts::PI * 250.0) / 44100.0).sin() as f32 * 0.1;
        assert_eq!(out[2], want);
        assert!(
            out[1 + 882..].iter().all(|&s| s == 0.0),
            "20 ms gap is silent"
        );
        // Empty frame: just the gap.
        let mut out = Vec::new();
        m.render(&Frame::new(0), &mut out);
        assert_eq!(out.len(), 882);
    }

    #[test]
    fn noise_is_deterministic_and_varies_per_slot() {
        let mut m = SeedMapping::new();
        let f = Frame::new(5)
            .with_value("a", f64::NAN)
            .with_value("b", f64::NAN);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        m.render(&f, &mut x);
        m.render(&f, &mut y);
        assert_eq!(x, y, "same frame, same samples");
        assert_ne!(x[..441], x[441..882], "adjacent noise slots differ");
        let mut z = Vec::new();
        m.render(&Frame { step: 6, ..f }, &mut z);
        assert_ne!(x[..441], z[..441], "the next step's noise differs");
    }
}
