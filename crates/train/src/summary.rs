//! Per-run statistics of a trajectory of frames, for `summary.md` tables.

use gradtone_frame::Frame;
use gradtone_frame::stats::median;

/// Statistics of one value (a layer's gradient norm) over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueStats {
    /// The value's name (`conv1`).
    pub name: String,
    /// Median over the finite steps (NaN if none).
    pub median: f64,
    /// Maximum over the finite steps (NaN if none).
    pub max: f64,
    /// First step whose value is NaN or infinite.
    pub first_non_finite: Option<u64>,
}

/// Statistics of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStats {
    /// Steps seen.
    pub steps: usize,
    /// Per value, in frame order.
    pub values: Vec<ValueStats>,
    /// First step whose loss or any value is non-finite.
    pub first_non_finite: Option<u64>,
    /// Steps at which every value is exactly 0 (dead gradients).
    pub all_zero_steps: usize,
    /// Loss of the last step.
    pub final_loss: Option<f64>,
}

impl RunStats {
    /// Computes the statistics of `frames` (value names taken from the first frame).
    pub fn of(frames: &[Frame]) -> Self {
        let names: Vec<String> = frames
            .first()
            .map(|f| f.values.iter().map(|v| v.name.clone()).collect())
            .unwrap_or_default();
        let values = names
            .iter()
            .map(|name| {
                let series: Vec<(u64, f64)> = frames
                    .iter()
                    .filter_map(|f| f.value(name).map(|v| (f.step, v)))
                    .collect();
                let mut finite: Vec<f64> = series
                    .iter()
                    .map(|&(_, v)| v)
                    .filter(|v| v.is_finite())
                    .collect();
                let max = finite.iter().copied().max_by(f64::total_cmp);
                ValueStats {
                    name: name.clone(),
                    median: median(&mut finite).unwrap_or(f64::NAN),
                    max: max.unwrap_or(f64::NAN),
                    first_non_finite: series.iter().find(|(_, v)| !v.is_finite()).map(|&(s, _)| s),
                }
            })
            .collect();
        let first_non_finite = frames
            .iter()
            .find(|f| {
                f.values.iter().any(|v| !v.value.is_finite())
                    || f.losses.iter().any(|v| !v.value.is_finite())
            })
            .map(|f| f.step);
        let all_zero_steps = frames
            .iter()
            .filter(|f| !f.values.is_empty() && f.values.iter().all(|v| v.value == 0.0))
            .count();
        RunStats {
            steps: frames.len(),
            values,
            first_non_finite,
            all_zero_steps,
            final_loss: frames.last().and_then(Frame::loss),
        }
    }
}

impl RunStats {
    /// Indented lines for the console: each value's median and maximum, the first non-finite
    /// step and the dead steps when there are any.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for v in &self.values {
            out.push_str(&format!(
                "  {:6} median {:.4}  max {:.4}\n",
                v.name, v.median, v.max
            ));
        }
        if let Some(s) = self.first_non_finite {
            out.push_str(&format!("  first non-finite value at step {s}\n"));
        }
        if self.all_zero_steps > 0 {
            out.push_str(&format!(
                "  {} steps with every weight gradient exactly 0 (dead)\n",
                self.all_zero_steps
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_diverging_then_dead_run() {
        let frames: Vec<Frame> = [(1.0, 2.0), (3.0, f64::NAN), (0.0, 0.0), (0.0, 0.0)]
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| {
                Frame::new(i as u64)
                    .with_loss("loss", 1.0 / (i + 1) as f64)
                    .with_value("a", a)
                    .with_value("b", b)
            })
            .collect();
        let s = RunStats::of(&frames);
        assert_eq!(s.steps, 4);
        assert_eq!(s.first_non_finite, Some(1));
        assert_eq!(s.all_zero_steps, 2);
        assert_eq!(s.values[0].median, 0.5);
        assert_eq!(s.values[0].max, 3.0);
        assert_eq!(s.values[1].first_non_finite, Some(1));
        assert_eq!(s.values[1].median, 0.0);
        assert_eq!(s.final_loss, Some(0.25));
        assert_eq!(
            s.report(),
            "  a      median 0.5000  max 3.0000\n  b      median 0.0000  max 2.0000\n  \
             first non-finite value at step 1\n  2 steps with every weight gradient exactly 0 (dead)\n"
        );
    }
}
