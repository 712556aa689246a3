//! Robust running statistics over a window of recent steps: what the detector judges by, and
//! what the sound crate's mappings scale their ranges with.

use std::collections::VecDeque;

use gradtone_frame::stats::median;

/// Percentiles of all values pushed during the last `window` steps.
#[derive(Clone, Debug)]
pub struct RunningPercentiles {
    window: usize,
    steps: VecDeque<Vec<f64>>,
    scratch: Vec<f64>,
}

impl RunningPercentiles {
    /// Empty, keeping at most `window` steps (at least 1).
    pub fn new(window: usize) -> Self {
        RunningPercentiles {
            window: window.max(1),
            steps: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// Records one step's (finite) values; the oldest step leaves once the window is full.
    pub fn push(&mut self, values: impl IntoIterator<Item = f64>) {
        if self.steps.len() == self.window {
            self.steps.pop_front();
        }
        self.steps
            .push_back(values.into_iter().filter(|v| v.is_finite()).collect());
    }

    /// The `lo` and `hi` percentiles (0–100, nearest rank) of the window; `None` when empty.
    pub fn range(&mut self, lo: f64, hi: f64) -> Option<(f64, f64)> {
        self.scratch.clear();
        self.scratch.extend(self.steps.iter().flatten());
        let n = self.scratch.len();
        if n == 0 {
            return None;
        }
        let rank = |p: f64| (((p / 100.0) * (n - 1) as f64).round() as usize).min(n - 1);
        let (rl, rh) = (rank(lo), rank(hi));
        let a = *self.scratch.select_nth_unstable_by(rl, f64::total_cmp).1;
        let b = *self.scratch.select_nth_unstable_by(rh, f64::total_cmp).1;
        Some((a, b))
    }
}

/// Median of a window of the last `window` finite values.
#[derive(Clone, Debug)]
pub(crate) struct RunningMedian {
    window: usize,
    values: VecDeque<f64>,
    scratch: Vec<f64>,
}

impl RunningMedian {
    /// Empty, keeping at most `window` values (at least 1).
    pub(crate) fn new(window: usize) -> Self {
        RunningMedian {
            window: window.max(1),
            values: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// How many values the window holds.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Records `v` if finite; the oldest value leaves once the window is full.
    pub(crate) fn push(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.values.len() == self.window {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }

    /// The median (mean of the middle two for an even count); `None` when empty.
    pub(crate) fn median(&mut self) -> Option<f64> {
        median_of(&mut self.scratch, self.values.iter().copied())
    }

    /// The median of the newest `k` values (all of them when fewer); `None` when empty.
    pub(crate) fn median_of_last(&mut self, k: usize) -> Option<f64> {
        let skip = self.values.len().saturating_sub(k);
        median_of(&mut self.scratch, self.values.iter().skip(skip).copied())
    }
}

/// The median of `values` ([`gradtone_frame::stats::median`]), using `scratch` as working
/// space so that a detector judging every step does not allocate.
pub(crate) fn median_of(scratch: &mut Vec<f64>, values: impl Iterator<Item = f64>) -> Option<f64> {
    scratch.clear();
    scratch.extend(values);
    median(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_over_window() {
        let mut p = RunningPercentiles::new(2);
        assert_eq!(p.range(5.0, 95.0), None);
        p.push([100.0, f64::NAN]);
        p.push((0..=100).map(f64::from));
        p.push((0..=100).map(f64::from)); // the 100.0 step has left the window
        let (lo, hi) = p.range(5.0, 95.0).expect("values");
        assert_eq!((lo, hi), (5.0, 95.0));
        let mut m = RunningMedian::new(3);
        for v in [1.0, 9.0, f64::INFINITY, 2.0, 3.0] {
            m.push(v);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.median(), Some(3.0));
    }
}
