//! Alarms from a GAN's statistics: a winning discriminator, mode collapse, oscillation.

use std::collections::VecDeque;

use gradtone_frame::{AlarmEvent, AlarmKind, Frame, Latch, Watch};

use super::GanStats;

/// Watches GAN statistics for the failure modes a number can show, once per episode.
///
/// - **Discriminator wins** ([`AlarmKind::Imbalance`]): over the last `window` steps, mean
///   `D(real)` above `1 − margin` and mean `D(fake)` below `margin` (0.05).
/// - **Mode collapse** ([`AlarmKind::Collapse`]): after `warmup` steps, the mean
///   [`GanStats::diversity`] of the last `window` steps is below `min_diversity` (0.15: less
///   varied than an untrained generator, whose codes still give 0.2–0.27), or falls below
///   `collapse_fraction` (0.4) of the highest such mean so far (counted at most 1, the real
///   data's spread) once that peak had reached `min_peak` (0.3): diversity that was there is
///   lost. Measured minima after step 100 (2000 steps, seed 1): balanced 0.26, d-wins 0.20,
///   unstable 0.43, collapse 0.10.
/// - **Oscillation** ([`AlarmKind::Oscillation`]): after `warmup` steps, the generator's
///   gradient norm jumps by more than `max_jitter` decades (0.15, i.e. ×1.41) per step on
///   average over the last `2 × window` steps, where a settling game moves it by well under
///   0.1 (measured: balanced 0.03–0.07, learning rates 25× too high 0.23–0.29).
///
/// An alarm re-arms after `window` calm steps ([`Latch`]).
///
/// A [`Watch`]: the frame does not carry these statistics, so the training loop
/// [`note`](GanWatch::note)s each step's before the pipeline runs the watch on its frame
/// (shared through [`gradtone_frame::Shared`]); a frame with nothing noted fires nothing.
#[derive(Clone, Debug)]
pub struct GanWatch {
    /// Steps averaged (default 25).
    pub window: usize,
    /// Probability margin of a winning discriminator (default 0.05).
    pub margin: f64,
    /// Diversity below which the samples count as collapsed whatever came before (0.15).
    pub min_diversity: f64,
    /// Fraction of the peak diversity below which the samples count as collapsed (default 0.4).
    pub collapse_fraction: f64,
    /// Peak diversity needed before collapse is judged (default 0.3).
    pub min_peak: f64,
    /// Steps before collapse and oscillation are judged (default 100).
    pub warmup: u64,
    /// Mean step-to-step change of `log10 ‖∇g_adv‖` above which the game oscillates (0.15).
    pub max_jitter: f64,
    peak: f64,
    recent: VecDeque<(f64, f64, f64)>,
    /// `|Δ log10 ‖∇g_adv‖|` of the last `2 × window` steps, and the last log norm.
    jumps: VecDeque<f64>,
    last_log: Option<f64>,
    latches: [Latch; 3],
    /// The step (counted from the run's start) and statistics noted for the next frame.
    noted: Option<(u64, GanStats)>,
}

impl Default for GanWatch {
    fn default() -> Self {
        GanWatch {
            window: 25,
            margin: 0.05,
            min_diversity: 0.15,
            collapse_fraction: 0.4,
            min_peak: 0.3,
            warmup: 100,
            max_jitter: 0.15,
            peak: 0.0,
            recent: VecDeque::new(),
            jumps: VecDeque::new(),
            last_log: None,
            latches: Default::default(),
            noted: None,
        }
    }
}

impl GanWatch {
    /// Tells the watch what step `step` (counted from the run's start: the warmup and the
    /// messages count from there) measured; judged when the pipeline observes the next frame.
    pub fn note(&mut self, step: u64, stats: &GanStats) {
        self.noted = Some((step, stats.clone()));
    }

    /// Judges one step's statistics; returns the alarms that fire at it, with a message.
    fn judge(&mut self, step: u64, s: &GanStats) -> Vec<(AlarmKind, String)> {
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back((s.p_real, s.p_fake, s.diversity));
        let g = s.norms[2].iter().map(|v| v * v).sum::<f64>().sqrt();
        let log = (g.is_finite() && g > 0.0).then(|| g.log10());
        if let (Some(a), Some(b)) = (self.last_log, log) {
            if self.jumps.len() == 2 * self.window {
                self.jumps.pop_front();
            }
            self.jumps.push_back((b - a).abs());
        }
        self.last_log = log;
        if self.recent.len() < self.window {
            return Vec::new();
        }
        let jitter = (self.jumps.len() == 2 * self.window)
            .then(|| self.jumps.iter().sum::<f64>() / self.jumps.len() as f64);
        let n = self.recent.len() as f64;
        let mean = |f: fn(&(f64, f64, f64)) -> f64| self.recent.iter().map(f).sum::<f64>() / n;
        let (p_real, p_fake, div) = (mean(|r| r.0), mean(|r| r.1), mean(|r| r.2));
        // More spread than the real data is noise, not a standard to fall from.
        self.peak = self.peak.max(div.min(1.0));
        let peak = self.peak;
        let conditions = [
            (p_real > 1.0 - self.margin && p_fake < self.margin).then(|| {
                (
                    AlarmKind::Imbalance,
                    format!(
                        "step {step}: ALARM imbalance: the discriminator wins: D(real) {p_real:.3}, D(fake) {p_fake:.3} over the last {} steps; the generator's gradient fades (g_adv {:.2e})",
                        self.window,
                        s.norms[2].iter().map(|v| v * v).sum::<f64>().sqrt()
                    ),
                )
            }),
            (step >= self.warmup
                && (div < self.min_diversity
                    || (peak >= self.min_peak && div < self.collapse_fraction * peak)))
                .then(|| {
                    (
                        AlarmKind::Collapse,
                        format!(
                            "step {step}: ALARM collapse: generated digits vary {div:.2}× as much as real ones over the last {} steps (peak {peak:.2}×): mode collapse",
                            self.window
                        ),
                    )
                }),
            jitter
                .filter(|&j| step >= self.warmup && j > self.max_jitter)
                .map(|j| {
                    (
                        AlarmKind::Oscillation,
                        format!(
                            "step {step}: ALARM oscillation: the generator's gradient norm jumps ×{:.2} per step on average over the last {} steps; the game is not settling (lower the learning rates)",
                            10f64.powf(j),
                            2 * self.window
                        ),
                    )
                }),
        ];
        let rearm = u32::try_from(self.window).unwrap_or(u32::MAX);
        let mut out = Vec::new();
        for (i, c) in conditions.into_iter().enumerate() {
            if self.latches[i].update(c.is_some(), rearm)
                && let Some(alarm) = c
            {
                out.push(alarm);
            }
        }
        out
    }
}

impl Watch for GanWatch {
    /// The alarms the statistics [`note`](GanWatch::note)d for this frame fire, at the frame's
    /// step.
    fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        let Some((step, stats)) = self.noted.take() else {
            return Vec::new();
        };
        self.judge(step, &stats)
            .into_iter()
            .map(|(kind, message)| AlarmEvent {
                step: frame.step,
                kind,
                message,
                layers: Vec::new(),
                numbers: Vec::new(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(p_real: f64, p_fake: f64, diversity: f64) -> GanStats {
        GanStats {
            losses: [0.0; 3],
            norms: [[1.0; 3]; 3],
            d_total: [1.0; 3],
            p_real,
            p_fake,
            diversity,
        }
    }

    #[test]
    fn watch_fires_once_per_episode_and_rearms() {
        let mut w = GanWatch {
            warmup: 0,
            ..GanWatch::default()
        };
        let mut quiet = GanWatch {
            warmup: 0,
            ..GanWatch::default()
        };
        let mut fired = Vec::new();
        for step in 0..200u64 {
            let s = match step {
                30..=80 => stats(0.99, 0.01, 1.0),
                120..=170 => stats(0.6, 0.4, 0.1),
                _ => stats(0.6, 0.4, 1.0),
            };
            // An untrained generator's modest diversity is no collapse: a second watcher that
            // sees 0.2 throughout stays quiet.
            assert!(quiet.judge(step, &stats(0.6, 0.4, 0.2)).is_empty());
            fired.extend(w.judge(step, &s).into_iter().map(|(k, _)| (step, k)));
        }
        // Then 100 steps whose generator norm alternates 2 and 0.5 (0.6 decades a step).
        for step in 200..300u64 {
            let mut s = stats(0.6, 0.4, 1.0);
            s.norms[2] = [if step % 2 == 0 { 2.0 } else { 0.5 }; 3];
            fired.extend(w.judge(step, &s).into_iter().map(|(k, _)| (step, k)));
        }
        // The 25-step mean crosses the thresholds a few steps into each episode.
        assert_eq!(fired.len(), 3, "{fired:?}");
        assert_eq!(fired[2].1, AlarmKind::Oscillation);
        // 0.6-decade jumps lift the 50-step mean past 0.15 about 13 steps in.
        assert!((205..240).contains(&fired[2].0), "{fired:?}");
        assert_eq!(fired[0].1, AlarmKind::Imbalance);
        assert!((30..60).contains(&fired[0].0), "{fired:?}");
        assert_eq!(fired[1].1, AlarmKind::Collapse);
        assert!((120..150).contains(&fired[1].0), "{fired:?}");
    }

    #[test]
    fn as_a_watch_it_judges_what_was_noted_at_the_frames_step() {
        let mut w = GanWatch {
            warmup: 0,
            window: 2,
            ..GanWatch::default()
        };
        let frame = |step| Frame::new(step).with_value("g_adv/G.fc1", 1.0);
        // Nothing noted: nothing judged, whatever the frame says.
        assert!(w.observe(&frame(1000)).is_empty());
        let mut fired = Vec::new();
        for step in 0..4u64 {
            w.note(step, &stats(0.99, 0.01, 1.0));
            // A sweep's part: frames numbered on from 1000, the watch's own steps from 0.
            fired.extend(w.observe(&frame(1000 + step)));
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!((fired[0].step, fired[0].kind), (1001, AlarmKind::Imbalance));
        assert!(
            fired[0]
                .message
                .starts_with("step 1: ALARM imbalance: the discriminator wins"),
            "{}",
            fired[0].message
        );
    }
}
