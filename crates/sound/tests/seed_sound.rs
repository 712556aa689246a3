//! What SeedMapping sounds like, measured: tone frequencies, the Nyquist clamp, and non-finite
//! norms as bounded hiss.

use gradtone_frame::Frame;
use gradtone_sound::SeedMapping;
use gradtone_sound::analysis::{dominant_frequency, goertzel_power, peak, rms};

const SR: u32 = SeedMapping::SAMPLE_RATE;
const TONE: usize = 441;

fn render(frame: &Frame) -> Vec<f32> {
    let mut out = Vec::new();
    SeedMapping::new().render(frame, &mut out);
    out
}

/// The i-th 10 ms tone slot of a rendered frame.
fn slot(samples: &[f32], i: usize) -> &[f32] {
    &samples[i * TONE..(i + 1) * TONE]
}

#[test]
fn tones_sit_at_200_plus_100_norm() {
    let norms = [0.5, 1.3, 7.0];
    let want = [250.0, 330.0, 900.0];
    let out = render(
        &Frame::new(0)
            .with_value("a", norms[0])
            .with_value("b", norms[1])
            .with_value("c", norms[2]),
    );
    for (i, &f) in want.iter().enumerate() {
        let s = slot(&out, i);
        // Directly on the 441-sample slot (bin = 100 Hz): Hann-windowed peak search.
        let got = dominant_frequency(s, SR, 50.0, 5000.0);
        println!("norm {}: want {f} Hz, measured {got:.3} Hz", norms[i]);
        assert!(
            (got - f).abs() <= 2.0,
            "slot {i}: want {f} Hz, measured {got}"
        );
        // Relative check: the tone's own frequency beats a neighbour 50 Hz away on either side,
        // and the other two tones' frequencies by far.
        let p = goertzel_power(s, SR, f);
        assert!(
            (p - 0.0025).abs() < 0.0005,
            "slot {i}: power {p} for amplitude 0.1"
        );
        for g in [f - 50.0, f + 50.0] {
            assert!(p > 1.5 * goertzel_power(s, SR, g), "slot {i}: {f} vs {g}");
        }
        for (j, &other) in want.iter().enumerate().filter(|&(j, _)| j != i) {
            assert!(
                p > 4.0 * goertzel_power(s, SR, other),
                "slot {i} ({f} Hz) vs slot {j}'s {other} Hz"
            );
        }
    }
    // The 20 ms after the tones is silence.
    assert_eq!(out.len(), 3 * TONE + 2 * TONE);
    assert_eq!(peak(&out[3 * TONE..]), 0.0);
}

#[test]
fn non_finite_norms_hiss_within_bounds() {
    let out = render(
        &Frame::new(6)
            .with_value("conv1", f64::NAN)
            .with_value("conv2", f64::INFINITY)
            .with_value("fc1", f64::NEG_INFINITY)
            .with_value("fc2", 0.5),
    );
    assert!(out.iter().all(|s| s.is_finite()), "no NaN/inf samples");
    for i in 0..3 {
        let s = slot(&out, i);
        let (p, r) = (peak(s), rms(s));
        assert!(p <= 0.1, "slot {i}: peak {p}");
        assert!(r > 0.01, "slot {i}: rms {r} (should be audible)");
        // Uniform noise of peak 0.1 has rms 0.1/√3 ≈ 0.058.
        assert!((r - 0.1 / 3f64.sqrt()).abs() < 0.01, "slot {i}: rms {r}");
        // Noise, not a tone: no single frequency holds much of the power. A sine of the same
        // rms would put ~ (0.058·√2)²/4 ≈ 1.7e-3 at its frequency.
        let f = dominant_frequency(s, SR, 20.0, 20_000.0);
        let tonal = goertzel_power(s, SR, f);
        assert!(
            tonal < 2e-4,
            "slot {i}: a tone-like peak at {f} Hz ({tonal})"
        );
    }
    // The finite norm after them is still its usual tone.
    let got = dominant_frequency(slot(&out, 3), SR, 50.0, 5000.0);
    assert!((got - 250.0).abs() <= 2.0, "{got}");
}

#[test]
fn huge_finite_norm_clamps_below_nyquist() {
    for norm in [1e6, 250.0, 1e300] {
        let out = render(&Frame::new(0).with_value("fc1", norm));
        let s = slot(&out, 0);
        assert!(peak(s) <= 0.1 && rms(s) > 0.05, "norm {norm}: a full tone");
        let got = dominant_frequency(s, SR, 20.0, 22_050.0);
        assert!(got < 22_050.0, "norm {norm}: {got}");
        assert!(
            (got - 20_000.0).abs() <= 2.0,
            "norm {norm}: measured {got} Hz"
        );
    }
    // Just under the clamp, the formula still rules: 197 → 19 900 Hz.
    let out = render(&Frame::new(0).with_value("fc1", 197.0));
    let got = dominant_frequency(slot(&out, 0), SR, 20.0, 22_050.0);
    assert!((got - 19_900.0).abs() <= 2.0, "measured {got} Hz");
}
