//! Float samples to 16-bit PCM, one rounding for every writer of 16-bit audio.

/// Converts one sample in [−1, 1] to 16-bit PCM as the reference does:
/// `clip(rint(s·32767), −32768, 32767)`, rounding half to even, NaN → 0.
///
/// Every 16-bit writer (the WAV file, TensorBoard's audio clips) uses this, so the same
/// samples give the same codes everywhere.
///
/// ```
/// use gradtone_dsp::to_pcm16;
/// assert_eq!((to_pcm16(1.0), to_pcm16(-2.0), to_pcm16(f32::NAN)), (32767, -32768, 0));
/// ```
pub fn to_pcm16(s: f32) -> i16 {
    if s.is_nan() {
        return 0;
    }
    // In f64 like NumPy (`float64(s) * 32767.0`), so the product is exact before rounding.
    // `as` saturates for ±inf, and the clamp makes that explicit.
    (f64::from(s) * 32767.0)
        .round_ties_even()
        .clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_matches_reference_rounding() {
        assert_eq!(to_pcm16(0.0), 0);
        assert_eq!(to_pcm16(-0.0), 0);
        assert_eq!(to_pcm16(1.0), 32767);
        assert_eq!(to_pcm16(-1.0), -32767);
        assert_eq!(to_pcm16(1.5), 32767);
        assert_eq!(to_pcm16(-1.5), -32768);
        assert_eq!(to_pcm16(f32::INFINITY), 32767);
        assert_eq!(to_pcm16(f32::NEG_INFINITY), -32768);
        assert_eq!(to_pcm16(f32::NAN), 0);
        // The only exact ties in range are ±0.5 (32767 is odd): 16383.5 → 16384 (even).
        assert_eq!(to_pcm16(0.5), 16384);
        assert_eq!(to_pcm16(-0.5), -16384);
        assert_eq!(to_pcm16(0.1), 3277); // 3276.7 → 3277
    }
}
