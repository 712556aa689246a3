//! `gradtone bench`'s measurements: time per training step of the seed network (forward,
//! backward, the four norms read back, optimiser step), the cost of the norms and of the
//! sound, and peak memory. Timings are medians over steps after a warm-up, as PyTorch's
//! `bench_torch.py` measures its `train` time, so the two can be compared side by side.

use std::time::Instant;

use burn::tensor::Device;
use gradtone_detect::AlarmDetector;
use gradtone_frame::stats::median;
use gradtone_frame::{Frame, Watch};
use gradtone_mnist::{Dataset, IMAGE_LEN};
use gradtone_sound::SoundError;
use gradtone_sound::config::SoundConfig;

use gradtone_train::{LAYERS, Optim, Readback, RunConfig, SeedParams, StepStats, Trainer};

/// The benchmark's run: SGD lr 0.01 momentum 0.5, seed 1, shuffled, at `batch` for `steps`
/// steps (or, without, 1000 epochs).
pub fn config(batch: usize, steps: Option<usize>) -> RunConfig {
    RunConfig {
        optim: Optim::Sgd { momentum: 0.5 },
        lr: 0.01,
        batch,
        steps,
        epochs: steps.is_none().then_some(1000),
        seed: 1,
        shuffle: true,
        drop_last: true,
        l2: 0.0,
    }
}

/// Peak resident memory of this process, MiB (Linux; `None` elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    peak_rss_in(&s)
}

/// `VmHWM` of a `/proc/<pid>/status` text, MiB.
fn peak_rss_in(status: &str) -> Option<f64> {
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// One training step on the images `idx` of `train`, with its loss and layer norms as the
/// frame of `step`.
pub fn step_frame(
    trainer: &mut Trainer,
    train: &Dataset,
    idx: &[usize],
    step: u64,
    readback: Readback,
) -> Frame {
    let (mut x, mut y) = (Vec::with_capacity(idx.len() * IMAGE_LEN), Vec::new());
    train.gather_normalised(idx, &mut x, &mut y);
    frame_of(step, &trainer.step_with(x, y, readback))
}

fn frame_of(step: u64, s: &StepStats) -> Frame {
    let mut f = Frame::new(step).with_loss("loss", s.loss);
    for (name, v) in LAYERS.iter().zip(s.weight_norms) {
        f = f.with_value(*name, v);
    }
    for (name, p) in LAYERS.iter().zip(s.param_norms) {
        f = f.with_param(*name, p);
    }
    f
}

/// One batch size's timings.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchTimes {
    /// Batch size.
    pub batch: usize,
    /// Median ms of a step with the norms read back.
    pub ms: f64,
    /// The same without the norms (the loss only).
    pub ms_no_norms: f64,
    /// Median ms to gather and normalise a batch.
    pub data_ms: f64,
    /// Median µs of a frame's sound with the `seed` mapping.
    pub seed_us: f64,
    /// The same with the default mapping (`cents`).
    pub cents_us: f64,
}

impl BatchTimes {
    /// What the norms and the default mapping's sound add to a step, percent.
    pub fn overhead_pct(&self) -> f64 {
        ((self.ms - self.ms_no_norms).max(0.0) + self.cents_us / 1e3) / self.ms * 100.0
    }
}

/// Times `steps` training steps at `batch` (medians after `warmup` steps), with and without
/// the norms, and the sound of their frames.
pub fn time_batch(
    batch: usize,
    steps: usize,
    warmup: usize,
    train: &Dataset,
    device: &Device,
) -> Result<BatchTimes, SoundError> {
    let cfg = config(batch, Some(steps));
    let params = SeedParams::init(1);
    let timed = |readback: Readback| {
        let mut trainer = Trainer::new(&params, cfg.optim, cfg.lr, device);
        let (mut train_ms, mut data_ms, mut frames) = (Vec::new(), Vec::new(), Vec::new());
        for (step, idx) in gradtone_train::batches(&cfg, train.len()).enumerate() {
            let t0 = Instant::now();
            let (mut x, mut y) = (Vec::with_capacity(idx.len() * IMAGE_LEN), Vec::new());
            train.gather_normalised(&idx, &mut x, &mut y);
            let t1 = Instant::now();
            let s = trainer.step_with(x, y, readback);
            let t2 = Instant::now();
            if step >= warmup {
                data_ms.push((t1 - t0).as_secs_f64() * 1e3);
                train_ms.push((t2 - t1).as_secs_f64() * 1e3);
            }
            frames.push(frame_of(step as u64, &s));
        }
        let median = |v: &mut [f64]| median(v).unwrap_or(f64::NAN);
        (median(&mut train_ms), median(&mut data_ms), frames)
    };
    let (ms, data_ms, frames) = timed(Readback::Weights);
    let (ms_no_norms, _, _) = timed(Readback::LossOnly);
    Ok(BatchTimes {
        batch,
        ms,
        ms_no_norms,
        data_ms,
        seed_us: sound_us(&frames, gradtone_sound::mapping::MappingKind::Seed)?,
        cents_us: sound_us(&frames, gradtone_sound::mapping::DEFAULT_MAPPING)?,
    })
}

/// Median µs to render one frame's sound with `mapping` (alarms included, as `train` does).
pub fn sound_us(
    frames: &[Frame],
    mapping: gradtone_sound::mapping::MappingKind,
) -> Result<f64, SoundError> {
    let config = SoundConfig {
        mapping,
        ..SoundConfig::default()
    };
    let mut m = gradtone_sound::mapping::with_alarms(&config);
    let mut detector = AlarmDetector::new(&config.alarms);
    let mut buf = Vec::new();
    let mut us: Vec<f64> = frames
        .iter()
        .map(|f| {
            buf.clear();
            let t = Instant::now();
            let alarms = detector.observe(f);
            m.play(f, &alarms, &mut buf);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    Ok(median(&mut us).unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_memory_is_read_from_vmhwm() {
        let status = "Name:\tx\nVmPeak:\t 9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(peak_rss_in(status), Some(2.0));
        assert_eq!(peak_rss_in("Name:\tx\n"), None);
    }

    #[test]
    fn overhead_counts_the_norms_and_the_sound() {
        let t = BatchTimes {
            batch: 10,
            ms: 2.0,
            ms_no_norms: 1.5,
            data_ms: 0.1,
            seed_us: 1.0,
            cents_us: 500.0,
        };
        // (0.5 ms norms + 0.5 ms sound) / 2 ms.
        assert_eq!(t.overhead_pct(), 50.0);
    }

    #[test]
    fn sound_cost_is_measured_per_frame() {
        let frames: Vec<Frame> = (0..5)
            .map(|i| {
                Frame::new(i)
                    .with_loss("loss", 1.0)
                    .with_value("conv1", 0.5)
            })
            .collect();
        let us = sound_us(&frames, gradtone_sound::mapping::MappingKind::Seed).unwrap();
        assert!(us.is_finite() && us >= 0.0);
    }
}
