//! The statistics every part of gradtone shares, each with one meaning.

/// The median of `v`: the middle value, or the mean of the two middle values when `v` has an
/// even length; `None` when `v` is empty. NaN sorts last ([`f64::total_cmp`]), so a few NaNs
/// shift the median rather than poison it. Reorders `v` (no allocation).
///
/// ```
/// use gradtone_frame::stats::median;
/// assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
/// assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
/// assert_eq!(median(&mut []), None);
/// ```
pub fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let hi = *v.select_nth_unstable_by(n / 2, f64::total_cmp).1;
    if n % 2 == 1 {
        return Some(hi);
    }
    // The lower middle is the largest of the left part that the selection left behind.
    let lo = v[..n / 2]
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .unwrap_or(hi);
    // `(lo + hi) / 2`, rounded once: the detector's thresholds and the train summary were
    // tuned and recorded with exactly this rounding.
    Some((lo + hi) / 2.0)
}

/// The L2 norm `√Σ x²` of `values`, accumulated in f64.
///
/// ```
/// use gradtone_frame::stats::l2;
/// assert_eq!(l2([3.0, 4.0]), 5.0);
/// assert_eq!(l2(std::iter::empty::<f64>()), 0.0);
/// ```
pub fn l2(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_matches_sorting_on_many_inputs() {
        // A small LCG: many lengths and duplicate-heavy values, checked against a full sort.
        let mut s = 0x2545_f491_4f6c_dd1d_u64;
        for n in 1..60 {
            let mut v: Vec<f64> = (0..n)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) % 7) as f64
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let want = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            assert_eq!(median(&mut v), Some(want), "n = {n}");
        }
    }

    #[test]
    fn l2_of_non_finite_is_non_finite() {
        assert!(l2([1.0, f64::NAN]).is_nan());
        assert!(l2([1.0, f64::INFINITY]).is_infinite());
    }
}
