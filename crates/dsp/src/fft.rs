//! The one FFT: radix-2, in place, twiddles computed once per size.
//!
//! Transforms of a few thousand points, at most one per pixel column of a picture or per
//! analysis block, are a few dozen lines by hand, so this stays hand-written rather than
//! pulling in an FFT crate.

/// Iterative radix-2 decimation-in-time FFT of one size, with precomputed twiddles.
///
/// ```
/// use gradtone_dsp::Fft;
/// // A unit impulse has a flat spectrum.
/// let mut buf = vec![(0.0, 0.0); 8];
/// buf[0] = (1.0, 0.0);
/// Fft::new(8).run(&mut buf);
/// assert!(buf.iter().all(|&(re, im)| re == 1.0 && im == 0.0));
/// ```
#[derive(Clone, Debug)]
pub struct Fft {
    n: usize,
    /// `e^{-2πik/n}` for `k < n/2`, from sin/cos directly (not by recurrence): no drift.
    twiddles: Vec<(f64, f64)>,
}

impl Fft {
    /// A transform of `n` points. `n` must be a power of two (at least 1).
    ///
    /// # Panics
    ///
    /// If `n` is not a power of two: a caller's bug, not bad input.
    pub fn new(n: usize) -> Self {
        assert!(n.is_power_of_two(), "FFT size {n} is not a power of two");
        let twiddles = (0..n / 2)
            .map(|k| {
                let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                (a.cos(), a.sin())
            })
            .collect();
        Fft { n, twiddles }
    }

    /// In-place forward transform of `buf`, complex as `(re, im)`: afterwards
    /// `buf[k] = Σ_j x_j · e^{−2πijk/n}` (no scaling).
    ///
    /// # Panics
    ///
    /// If `buf.len()` is not the size the transform was made for.
    pub fn run(&self, buf: &mut [(f64, f64)]) {
        let n = self.n;
        assert_eq!(buf.len(), n, "FFT of {n} points given {} values", buf.len());
        if n < 2 {
            return; // One point is its own transform (and has no bits to reverse).
        }
        let bits = n.trailing_zeros();
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if j > i {
                buf.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let half = len / 2;
            let stride = n / len;
            for chunk in buf.chunks_exact_mut(len) {
                let (lo, hi) = chunk.split_at_mut(half);
                for (k, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                    let (wr, wi) = self.twiddles[k * stride];
                    let t = (b.0 * wr - b.1 * wi, b.0 * wi + b.1 * wr);
                    *b = (a.0 - t.0, a.1 - t.1);
                    *a = (a.0 + t.0, a.1 + t.1);
                }
            }
            len *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_naive_dft() {
        for n in [1, 2, 8, 64] {
            let x: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    (
                        (i as f64 * 0.37).sin() + 0.2 * i as f64,
                        (i as f64 * 1.3).cos(),
                    )
                })
                .collect();
            let mut fast = x.clone();
            Fft::new(n).run(&mut fast);
            let mut worst = 0.0f64;
            for (k, f) in fast.iter().enumerate() {
                let (mut re, mut im) = (0.0, 0.0);
                for (j, &(xr, xi)) in x.iter().enumerate() {
                    let a = -2.0 * std::f64::consts::PI * (k * j) as f64 / n as f64;
                    re += xr * a.cos() - xi * a.sin();
                    im += xr * a.sin() + xi * a.cos();
                }
                worst = worst.max((f.0 - re).abs()).max((f.1 - im).abs());
            }
            assert!(worst < 1e-9, "n = {n}: max |FFT − DFT| = {worst}");
        }
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn refuses_sizes_that_are_not_powers_of_two() {
        let _ = Fft::new(12);
    }
}
