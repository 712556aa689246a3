//! Measuring audio: tone power at a frequency, the dominant frequency, RMS and peak, and a
//! windowed power [`Spectrum`] with its centroid (brightness) and flatness (noisiness).
//!
//! Everything accumulates in `f64`. The FFT is the one shared with the sinks ([`Fft`]).

use gradtone_dsp::Fft;

/// Goertzel recurrence over `samples` (optionally weighted): `|X(f)|²`, the squared magnitude of
/// the discrete-time Fourier transform at `freq` (any frequency, not just FFT bins).
fn goertzel_raw(samples: &[f32], weights: Option<&[f64]>, sample_rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut step = |x: f64| {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    };
    match weights {
        Some(wt) => samples
            .iter()
            .zip(wt)
            .for_each(|(&x, &g)| step(f64::from(x) * g)),
        None => samples.iter().for_each(|&x| step(f64::from(x))),
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

/// Power of `samples` at `freq` Hz (rectangular window), normalised by `N²`: a sine of amplitude
/// `A` at `freq` spanning the whole window gives about `A²/4` (0.25 for a full-scale sine), a
/// constant `c` at 0 Hz gives `c²`. Empty input gives 0.
///
/// ```
/// use gradtone_sound::analysis::goertzel_power;
/// let s: Vec<f32> = (0..4410).map(|i| (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 44100.0).sin() as f32).collect();
/// assert!((goertzel_power(&s, 44100, 440.0) - 0.25).abs() < 0.01);
/// assert!(goertzel_power(&s, 44100, 460.0) < 0.01);
/// ```
pub fn goertzel_power(samples: &[f32], sample_rate: u32, freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let n = samples.len() as f64;
    goertzel_raw(samples, None, sample_rate, freq) / (n * n)
}

/// The frequency in `[lo, hi]` Hz with the most power: a coarse scan of a Hann-windowed spectrum
/// followed by a golden-section refinement of the best peak. Accurate to well under 1 Hz for a
/// 100 ms sine (and to a few Hz even for a 10 ms one); `hi` is capped at Nyquist and `lo` at 0.
///
/// Returns NaN for empty or silent input, or an empty range.
///
/// Cost is about `N · min(4 · (hi − lo) / bin, 4096)` multiply-adds (bin = sample_rate / N), so
/// it suits analysis windows up to a few seconds.
pub fn dominant_frequency(samples: &[f32], sample_rate: u32, lo: f64, hi: f64) -> f64 {
    let lo = lo.max(0.0);
    let hi = hi.min(f64::from(sample_rate) / 2.0);
    let n = samples.len();
    if n == 0 || lo.is_nan() || hi.is_nan() || lo > hi {
        return f64::NAN;
    }
    // Hann window: sidelobes fall off fast, so a tone's negative-frequency image (and other
    // tones) barely pull the peak; the main lobe is ±2 bins wide.
    let hann: Vec<f64> = (0..n)
        .map(|i| {
            let x = std::f64::consts::PI * i as f64 / n as f64;
            x.sin().powi(2)
        })
        .collect();
    let power = |f: f64| goertzel_raw(samples, Some(&hann), sample_rate, f);
    let bin = f64::from(sample_rate) / n as f64;

    // Grid scan of [a, b] at most `step` apart: the best point and the spacing used.
    let scan = |a: f64, b: f64, step: f64| -> (f64, f64, f64) {
        let count = ((b - a) / step).ceil().max(1.0) as usize;
        let spacing = (b - a) / count as f64;
        (0..=count)
            .map(|k| {
                let f = a + spacing * k as f64;
                (f, power(f), spacing)
            })
            .fold((f64::NAN, -1.0, spacing), |best, (f, p, s)| {
                if p > best.1 { (f, p, s) } else { best }
            })
    };

    // Coarse: quarter-bin steps, but no more than ~4096 points for long inputs…
    let fine = bin / 4.0;
    let (mut best, mut best_p, mut spacing) = scan(lo, hi, fine.max((hi - lo) / 4096.0));
    // …in which case rescan around the winner at quarter-bin steps, to land inside its main lobe.
    if spacing > fine {
        let (f, p, s) = scan((best - spacing).max(lo), (best + spacing).min(hi), fine);
        if p >= best_p {
            (best, best_p, spacing) = (f, p, s);
        }
    }
    if best_p <= 0.0 {
        return f64::NAN;
    }
    // Golden-section search for the maximum: the main lobe is unimodal over ±1 grid step.
    let (mut a, mut b) = ((best - spacing).max(lo), (best + spacing).min(hi));
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut pc, mut pd) = (power(c), power(d));
    while b - a > 1e-4 {
        if pc > pd {
            b = d;
            (d, pd) = (c, pc);
            c = b - g * (b - a);
            pc = power(c);
        } else {
            a = c;
            (c, pc) = (d, pd);
            d = a + g * (b - a);
            pd = power(d);
        }
    }
    let refined = (a + b) / 2.0;
    // The grid point stays the answer if the refinement found nothing better (e.g. at an edge).
    if power(refined) >= best_p {
        refined
    } else {
        best
    }
}

/// Root mean square of `samples` (0 for empty input; NaN if any sample is NaN).
pub fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Largest absolute sample (0 for empty input). NaN if any sample is NaN, so that a check like
/// `peak(s) <= 0.1` fails on NaN samples instead of skipping them.
pub fn peak(samples: &[f32]) -> f32 {
    if samples.iter().any(|x| x.is_nan()) {
        return f32::NAN;
    }
    samples.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// A one-sided power spectrum of a Hann-windowed block: what [`Spectrum::of`] returns.
///
/// `power[k]` is the power at `k · bin_hz` Hz, for `k = 0 ..= n/2` where `n` is the block
/// length zero-padded to a power of two. The scale matches [`goertzel_power`]: a sine of
/// amplitude `A` centred on a bin gives `A²/4` there, and `A²/16` in each neighbour (the Hann
/// window's main lobe). Sums over bins grow with the zero-padding, so use them as ratios
/// (band fractions, [`Spectrum::centroid`], [`Spectrum::flatness`]) rather than as levels;
/// for a level, use [`rms`].
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrum {
    /// Spacing of the bins, Hz (`sample_rate / n`).
    pub bin_hz: f64,
    /// Power per bin, from 0 Hz to Nyquist inclusive.
    pub power: Vec<f64>,
}

impl Spectrum {
    /// The spectrum of `samples` (mono) at `sample_rate`: Hann window over exactly the samples,
    /// zero-padded to the next power of two (at least 2), one FFT. Empty input gives one bin of
    /// zero power.
    ///
    /// ```
    /// use gradtone_sound::analysis::Spectrum;
    /// let s: Vec<f32> = (0..4096).map(|i| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 44100.0).sin() as f32).collect();
    /// let spec = Spectrum::of(&s, 44100);
    /// assert!((spec.centroid() - 1000.0).abs() < 15.0); // a sine's centroid is its pitch
    /// assert!(spec.flatness() < 1e-3); // and it is as tonal as it gets
    /// ```
    pub fn of(samples: &[f32], sample_rate: u32) -> Spectrum {
        let n = samples.len().next_power_of_two().max(2);
        let mut buf = vec![(0.0f64, 0.0f64); n];
        let len = samples.len() as f64;
        let mut wsum = 0.0;
        for (i, &x) in samples.iter().enumerate() {
            let w = (std::f64::consts::PI * (i as f64 + 0.5) / len)
                .sin()
                .powi(2);
            wsum += w;
            buf[i].0 = f64::from(x) * w;
        }
        Fft::new(n).run(&mut buf);
        // Dividing by (Σw)² makes a sine of amplitude A read A²/4 at its bin, as `goertzel_power`.
        let scale = if wsum > 0.0 { 1.0 / (wsum * wsum) } else { 0.0 };
        let power = buf[..=n / 2]
            .iter()
            .map(|&(re, im)| (re * re + im * im) * scale)
            .collect();
        Spectrum {
            bin_hz: f64::from(sample_rate) / n as f64,
            power,
        }
    }

    /// Sum of the power over all bins.
    pub fn total(&self) -> f64 {
        self.power.iter().sum()
    }

    /// Sum of the power of the bins whose frequency lies in `[lo_hz, hi_hz)`.
    pub fn band_power(&self, lo_hz: f64, hi_hz: f64) -> f64 {
        self.power
            .iter()
            .enumerate()
            .filter(|&(k, _)| (lo_hz..hi_hz).contains(&(k as f64 * self.bin_hz)))
            .map(|(_, p)| p)
            .sum()
    }

    /// Spectral centroid, Hz: the power-weighted mean frequency, i.e. how *bright* the block
    /// sounds. For a single tone it is the tone's pitch; for a chord, a pitch between its notes.
    /// NaN for a silent block.
    pub fn centroid(&self) -> f64 {
        let total = self.total();
        if total <= 0.0 {
            return f64::NAN;
        }
        let weighted: f64 = self
            .power
            .iter()
            .enumerate()
            .map(|(k, p)| k as f64 * self.bin_hz * p)
            .sum();
        weighted / total
    }

    /// Spectral flatness (Wiener entropy): geometric over arithmetic mean of the power of the
    /// bins above DC, in `[0, 1]`. Near 0 for tones (power in a few bins), about 0.56 for white
    /// noise (the mean of `ln` of an exponential variable is `−γ`, so `e^{−γ}`): the measure of
    /// how *noisy* (non-tonal) a block sounds. NaN for a silent block.
    pub fn flatness(&self) -> f64 {
        let bins = self.power.get(1..).unwrap_or(&[]);
        let mean = bins.iter().sum::<f64>() / bins.len().max(1) as f64;
        if bins.is_empty() || mean <= 0.0 {
            return f64::NAN;
        }
        // Floor far below any audible level so an exactly-zero bin cannot give ln(0) = −∞ · 0.
        let floor = mean * 1e-30;
        let mean_ln = bins.iter().map(|&p| p.max(floor).ln()).sum::<f64>() / bins.len() as f64;
        (mean_ln.exp() / mean).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, amp: f64, n: usize, sr: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(sr) + 0.3).sin())
                    as f32
            })
            .collect()
    }

    #[test]
    fn goertzel_normalisation_and_selectivity() {
        let s = sine(440.0, 1.0, 4410, 44100);
        let p440 = goertzel_power(&s, 44100, 440.0);
        let p460 = goertzel_power(&s, 44100, 460.0);
        assert!((p440 - 0.25).abs() < 0.005, "p440 = {p440}");
        // 460 Hz is two bins away (a spectral null for a whole number of periods): tiny.
        assert!(p460 < 1e-3 * p440, "p460 = {p460}, p440 = {p440}");
        // And the reverse: a 460 Hz tone is heard at 460, not 440.
        let t = sine(460.0, 0.5, 4410, 44100);
        assert!(goertzel_power(&t, 44100, 460.0) > 100.0 * goertzel_power(&t, 44100, 440.0));
        assert!((goertzel_power(&t, 44100, 460.0) - 0.0625).abs() < 0.002);
        assert_eq!(goertzel_power(&[], 44100, 440.0), 0.0);
        let dc = vec![0.5f32; 100];
        assert!((goertzel_power(&dc, 44100, 0.0) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn dominant_frequency_within_a_hertz_on_100ms() {
        for f in [97.3, 250.0, 440.0, 1234.5, 9876.5, 19_999.0] {
            let s = sine(f, 0.3, 4410, 44100);
            let got = dominant_frequency(&s, 44100, 20.0, 22050.0);
            assert!((got - f).abs() < 1.0, "{f} Hz measured as {got}");
        }
        // A weaker second tone does not capture the estimate.
        let mut s = sine(700.0, 0.5, 4410, 44100);
        for (x, y) in s.iter_mut().zip(sine(3000.0, 0.2, 4410, 44100)) {
            *x += y;
        }
        let got = dominant_frequency(&s, 44100, 20.0, 22050.0);
        assert!((got - 700.0).abs() < 1.0, "{got}");
        // The range restricts the search.
        let got = dominant_frequency(&s, 44100, 2000.0, 5000.0);
        assert!((got - 3000.0).abs() < 1.0, "{got}");
    }

    #[test]
    fn dominant_frequency_long_input_uses_capped_scan() {
        // 2 s: the coarse grid is capped, the rescan must still find the peak precisely.
        let s = sine(5432.1, 0.1, 88_200, 44100);
        let got = dominant_frequency(&s, 44100, 0.0, 22050.0);
        assert!((got - 5432.1).abs() < 0.05, "{got}");
    }

    #[test]
    fn dominant_frequency_degenerate_inputs() {
        assert!(dominant_frequency(&[], 44100, 0.0, 1000.0).is_nan());
        assert!(dominant_frequency(&[0.0; 441], 44100, 0.0, 1000.0).is_nan());
        assert!(dominant_frequency(&[0.1; 441], 44100, 500.0, 100.0).is_nan());
    }

    #[test]
    fn rms_and_peak() {
        let s = sine(1000.0, 0.5, 44100, 44100);
        assert!((rms(&s) - 0.5 / 2f64.sqrt()).abs() < 1e-4);
        assert!((peak(&s) - 0.5).abs() < 1e-3);
        assert_eq!(peak(&[0.1, -0.7, 0.2]), 0.7);
        assert!(peak(&[0.1, f32::NAN]).is_nan());
        assert!(rms(&[0.1, f32::NAN]).is_nan());
        assert_eq!((rms(&[]), peak(&[])), (0.0, 0.0));
    }

    /// Deterministic white noise in [−amp, amp] (a 64-bit LCG; no dependency).
    fn noise(n: usize, amp: f32) -> Vec<f32> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                amp * (((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) as f32
            })
            .collect()
    }

    #[test]
    fn spectrum_scale_matches_goertzel_at_a_bin_centre() {
        // 4096 samples, no padding: bin 93 is 93 · 44100/4096 ≈ 1001.3 Hz.
        let f = 93.0 * 44100.0 / 4096.0;
        let s = sine(f, 0.5, 4096, 44100);
        let spec = Spectrum::of(&s, 44100);
        assert_eq!(spec.power.len(), 2049);
        assert!((spec.bin_hz - 44100.0 / 4096.0).abs() < 1e-12);
        assert!((spec.power[93] - 0.0625).abs() < 1e-4, "{}", spec.power[93]);
        assert!(
            (spec.power[92] - 0.0625 / 4.0).abs() < 1e-4,
            "{}",
            spec.power[92]
        );
        assert!(spec.power[100] < 1e-8, "{}", spec.power[100]);
        // Zero-padding (3000 → 4096 samples) keeps the peak's scale.
        let spec = Spectrum::of(&s[..3000], 44100);
        let top = spec.power.iter().cloned().fold(0.0, f64::max);
        assert!((top - 0.0625).abs() < 0.01, "{top}");
        // Nearly all of the power lies within ±50 Hz of the tone.
        let near = spec.band_power(f - 50.0, f + 50.0) / spec.total();
        assert!(near > 0.999, "{near}");
    }

    #[test]
    fn centroid_is_pitch_for_tones_and_between_for_chords() {
        for f in [220.0, 1000.0, 3520.0] {
            let c = Spectrum::of(&sine(f, 0.3, 3528, 44100), 44100).centroid();
            assert!((c - f).abs() < 0.01 * f, "{f} Hz: centroid {c}");
        }
        let mut s = sine(500.0, 0.3, 4096, 44100);
        for (x, y) in s.iter_mut().zip(sine(2000.0, 0.3, 4096, 44100)) {
            *x += y;
        }
        let c = Spectrum::of(&s, 44100).centroid();
        assert!((c - 1250.0).abs() < 15.0, "{c}");
        assert!(Spectrum::of(&[0.0; 512], 44100).centroid().is_nan());
        assert!(Spectrum::of(&[], 44100).centroid().is_nan());
    }

    #[test]
    fn flatness_separates_tones_from_noise() {
        let tone = Spectrum::of(&sine(700.0, 0.3, 4096, 44100), 44100).flatness();
        assert!(tone < 1e-3, "{tone}");
        let mut chord = sine(300.0, 0.2, 4096, 44100);
        for f in [450.0, 600.0, 900.0] {
            for (x, y) in chord.iter_mut().zip(sine(f, 0.2, 4096, 44100)) {
                *x += y;
            }
        }
        let chord = Spectrum::of(&chord, 44100).flatness();
        assert!(chord < 0.01, "{chord}");
        let white = Spectrum::of(&noise(4096, 0.1), 44100).flatness();
        assert!((0.45..0.65).contains(&white), "{white}");
        // Scale-free: the same noise 40 dB quieter is as flat.
        let quiet = Spectrum::of(&noise(4096, 0.001), 44100).flatness();
        assert!((quiet - white).abs() < 1e-6, "{quiet} vs {white}");
        assert!(Spectrum::of(&[0.0; 64], 44100).flatness().is_nan());
    }
}
