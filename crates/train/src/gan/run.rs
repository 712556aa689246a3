//! The GAN's training loop over MNIST.

use gradtone_mnist::Dataset;

use super::{GanConfig, GanStats, GanTrainer, real_batch};
use burn::tensor::Device;

/// One GAN step as the loop sees it.
pub struct GanStep {
    /// The step index.
    pub step: u64,
    /// What it measured (what a [`GanWatch`](super::GanWatch) is told).
    pub stats: GanStats,
}

/// Trains a GAN on `train` for `cfg.steps` steps (batches drawn by a seeded shuffle, a new one
/// each epoch), calling `on_step` after each; `on_step` may stop early by returning `Break`.
/// Returns the trainer, for samples.
pub fn run_gan(
    cfg: &GanConfig,
    train: &Dataset,
    device: &Device,
    mut on_step: impl FnMut(&GanTrainer, GanStep) -> std::ops::ControlFlow<()>,
) -> GanTrainer {
    let mut t = GanTrainer::new(cfg, device);
    let plan = crate::BatchPlan {
        batch: cfg.batch,
        steps: Some(cfg.steps),
        epochs: None,
        seed: cfg.seed,
        shuffle: true,
        drop_last: true,
    };
    for (step, idx) in crate::batches(plan, train.len()).enumerate() {
        let x = real_batch(train, &idx);
        let z = t.codes(idx.len());
        let s = GanStep {
            step: step as u64,
            stats: t.step(x, z),
        };
        if on_step(&t, s).is_break() {
            break;
        }
    }
    t
}
