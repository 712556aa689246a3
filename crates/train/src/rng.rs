//! A tiny, fully specified random generator, so a seed means the same run on every platform and
//! every version of gradtone (crates' `StdRng` reserves the right to change its stream).

/// SplitMix64 (Steele, Lea & Flood 2014): 64-bit state, passes BigCrush, trivially seedable.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Derives an independent stream for a purpose (`tag`) of a run's seed, e.g. one per epoch.
    pub fn derive(seed: u64, tag: u64) -> Self {
        let mut g = Self(seed ^ tag.wrapping_mul(0xA076_1D64_78BD_642F));
        g.next_u64();
        g
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift; the bias is < n/2^64, negligible here).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_permutation_is_a_permutation() {
        let a: Vec<u64> = (0..5).map(|_| SplitMix64::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut g = SplitMix64::new(7);
        let b: Vec<u64> = (0..5).map(|_| g.next_u64()).collect();
        assert_ne!(b[0], b[1]);
        let mut p = SplitMix64::derive(1, 2).permutation(1000);
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
        assert_ne!(
            SplitMix64::derive(1, 2).next_u64(),
            SplitMix64::derive(1, 3).next_u64()
        );
    }

    #[test]
    fn uniform_mean_is_a_half() {
        let mut g = SplitMix64::new(3);
        let m: f64 = (0..100_000).map(|_| g.next_f64()).sum::<f64>() / 100_000.0;
        assert!((m - 0.5).abs() < 0.01, "{m}");
    }
}
