//! Measuring audio: tone power at a frequency, the dominant frequency, RMS and peak.
//!
//! Everything accumulates in `f64`.

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
}
