//! One training step of the seed network, and the loop that feeds it batches.

use std::ops::ControlFlow;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use gradtone_frame::Frame;
use gradtone_mnist::{Dataset, IMAGE_LEN};

use crate::model::{LAYERS, SeedNet};
use crate::optim::{FusedSgd, Stepper};
use crate::params::SeedParams;
use crate::rng::SplitMix64;

/// Which optimiser, with PyTorch's semantics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optim {
    /// `torch.optim.SGD(lr, momentum)`, dampening 0, no Nesterov, no weight decay.
    Sgd {
        /// Momentum factor (0 for plain SGD).
        momentum: f64,
    },
    /// `torch.optim.Adam(lr)`: betas (0.9, 0.999), eps 1e-8.
    Adam,
}

impl Optim {
    /// The optimiser configured as PyTorch's. Burn's own defaults differ: momentum dampening
    /// 0.1 (PyTorch 0) and Adam epsilon 1e-5 (PyTorch 1e-8).
    /// SGD is [`FusedSgd`], bit-identical to Burn's and in place.
    pub(crate) fn build(self) -> Stepper {
        match self {
            Optim::Sgd { momentum } => Stepper::Sgd(FusedSgd::new(momentum)),
            Optim::Adam => Stepper::Burn(
                AdamConfig::new()
                    .with_beta_1(0.9)
                    .with_beta_2(0.999)
                    .with_epsilon(1e-8)
                    .init(),
            ),
        }
    }
}

/// What one step measured: the loss and per-layer gradient L2 norms (before the update).
#[derive(Clone, Debug, PartialEq)]
pub struct StepStats {
    /// The loss of the batch: mean NLL, plus the weighted L2 term when there is one.
    pub loss: f64,
    /// L2 norm of each layer's weight gradient (of the whole loss), [`LAYERS`] order.
    pub weight_norms: [f64; 4],
    /// L2 norm of each layer's bias gradient, when asked for.
    pub bias_norms: Option<[f64; 4]>,
    /// L2 norm of each layer's weights before the update, [`LAYERS`] order: read back with the
    /// gradient norms in the same sync (NaN with [`Readback::LossOnly`]).
    pub param_norms: [f64; 4],
    /// Each loss term's own part, when the loss has several ([`Trainer::with_l2`]): `nll`, then
    /// `l2`. Empty for the plain NLL loss.
    pub terms: Vec<TermStats>,
}

/// One weighted loss term of a step: its value and the norms of its own gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct TermStats {
    /// The term's name: `nll` or `l2`.
    pub name: &'static str,
    /// The weighted term's value.
    pub loss: f64,
    /// L2 norm of each layer's weight gradient of this weighted term alone, [`LAYERS`] order.
    pub weight_norms: [f64; 4],
}

/// What [`Trainer::step_with`] reads back from the device after `backward`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readback {
    /// The loss only (no norms: a baseline for benchmarks; norms come back NaN).
    LossOnly,
    /// The loss, the four weight-gradient norms and the four weight norms (what a frame
    /// needs).
    Weights,
    /// Also the four bias-gradient norms (the reference check).
    WeightsAndBiases,
}

/// The seed network with its optimiser: `step` = forward, backward, norms, update.
pub struct Trainer {
    // `Option` because Burn's optimiser consumes the model and gives back the updated one.
    model: Option<SeedNet>,
    optim: Stepper,
    lr: f64,
    /// Weight λ of the L2 term `λ·Σ‖W‖²` (0: plain NLL).
    l2: f64,
    device: Device,
}

impl Trainer {
    /// A trainer on `device` (it gets autodiff) starting from `params`.
    pub fn new(params: &SeedParams, optim: Optim, lr: f64, device: &Device) -> Self {
        let device = device.clone().autodiff();
        Self {
            model: Some(SeedNet::from_params(params, &device)),
            optim: optim.build(),
            lr,
            l2: 0.0,
            device,
        }
    }

    /// Trains on two weighted losses, `NLL + λ·Σ_layers ‖W‖²` (an L2 penalty on the four
    /// weights, not the biases), and reports each term's gradient norms per layer
    /// ([`StepStats::terms`]). Each term gets its own backward pass; their gradients are summed
    /// for the update, which equals the gradient of the sum. `λ = 0` is the plain NLL loss.
    #[must_use]
    pub fn with_l2(mut self, lambda: f64) -> Self {
        self.l2 = lambda;
        self
    }

    fn model(&self) -> &SeedNet {
        // Only `step` takes the model out, and it always puts one back.
        self.model
            .as_ref()
            .unwrap_or_else(|| unreachable!("model is always present between steps"))
    }

    /// One step on a normalised batch: `x` is n×784 floats, `y` n labels.
    /// Gradient norms are read after `backward` and before the optimiser step, with one readback.
    pub fn step(&mut self, x: Vec<f32>, y: Vec<i64>, with_bias: bool) -> StepStats {
        self.step_with(
            x,
            y,
            if with_bias {
                Readback::WeightsAndBiases
            } else {
                Readback::Weights
            },
        )
    }

    /// The model (taken out for the optimiser, which consumes it) and a batch on the device.
    fn take_batch(&mut self, x: &[f32], y: Vec<i64>) -> (SeedNet, Tensor<2>, Tensor<1, Int>) {
        let n = y.len();
        let x = SeedNet::input(x, &self.device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [n]), &self.device);
        let model = self
            .model
            .take()
            .unwrap_or_else(|| unreachable!("model present"));
        (model, x, y)
    }

    /// [`Trainer::step`] choosing what is read back (benchmarks measure the cost of the norms).
    pub fn step_with(&mut self, x: Vec<f32>, y: Vec<i64>, readback: Readback) -> StepStats {
        // The step runs on a worker of rayon's pool, so the kernels' 2-way splits (a dozen
        // `rayon::join`s a step) hand half the work to the other worker directly. Called from
        // outside the pool, each join would put the caller to sleep and wake it again.
        rayon::scope(|_| self.step_here(x, y, readback))
    }

    fn step_here(&mut self, x: Vec<f32>, y: Vec<i64>, readback: Readback) -> StepStats {
        if self.l2 != 0.0 {
            return self.step_two_terms(x, y, readback);
        }
        let (model, x, y) = self.take_batch(&x, y);
        let loss = SeedNet::nll_loss(model.forward(x), y);
        let grads = loss.backward();
        let mut parts = vec![loss.detach()];
        if readback != Readback::LossOnly {
            parts.push(model.grad_sq_sums(&grads, false));
            parts.push(model.weight_sq_sums());
        }
        if readback == Readback::WeightsAndBiases {
            parts.push(model.grad_sq_sums(&grads, true));
        }
        let read = read_f32(Tensor::cat(parts, 0));
        let grads = GradientsParams::from_grads(grads, &model);
        self.model = Some(self.optim.step(self.lr, model, grads));
        let norm = |i: usize| read.get(i).map_or(f64::NAN, |&v| (v as f64).sqrt());
        StepStats {
            loss: read[0] as f64,
            weight_norms: [norm(1), norm(2), norm(3), norm(4)],
            param_norms: [norm(5), norm(6), norm(7), norm(8)],
            bias_norms: (readback == Readback::WeightsAndBiases)
                .then(|| [norm(9), norm(10), norm(11), norm(12)]),
            terms: Vec::new(),
        }
    }

    /// The step with the L2 term: one backward per term, gradients summed for the update.
    fn step_two_terms(&mut self, x: Vec<f32>, y: Vec<i64>, readback: Readback) -> StepStats {
        let (model, x, y) = self.take_batch(&x, y);
        let nll = SeedNet::nll_loss(model.forward(x), y);
        let g_nll = nll.backward();
        // The penalty's graph holds only the weights, so its backward is cheap (no data pass).
        let pen = model.weight_sq_sum().mul_scalar(self.l2);
        let g_pen = pen.backward();
        let mut parts = vec![nll.detach(), pen.detach()];
        if readback != Readback::LossOnly {
            let (a, b) = (model.weight_grads(&g_nll), model.weight_grads(&g_pen));
            let sq = |t: Tensor<1>| t.square().sum();
            parts.extend(a.iter().cloned().map(sq));
            parts.extend(b.iter().cloned().map(sq));
            parts.extend(a.into_iter().zip(b).map(|(a, b)| sq(a + b)));
            parts.push(model.weight_sq_sums());
        }
        if readback == Readback::WeightsAndBiases {
            // The penalty leaves the biases alone: their gradient is the NLL's.
            parts.push(model.grad_sq_sums(&g_nll, true));
        }
        let read = read_f32(Tensor::cat(parts, 0));
        let mut acc = GradientsAccumulator::new();
        acc.accumulate(&model, GradientsParams::from_grads(g_nll, &model));
        acc.accumulate(&model, GradientsParams::from_grads(g_pen, &model));
        self.model = Some(self.optim.step(self.lr, model, acc.grads()));
        let norm = |i: usize| read.get(i).map_or(f64::NAN, |&v| (v as f64).sqrt());
        let four = |at: usize| [norm(at), norm(at + 1), norm(at + 2), norm(at + 3)];
        let (nll, pen) = (read[0] as f64, read[1] as f64);
        StepStats {
            loss: nll + pen,
            weight_norms: four(10),
            param_norms: four(14),
            bias_norms: (readback == Readback::WeightsAndBiases).then(|| four(18)),
            terms: vec![
                TermStats {
                    name: "nll",
                    loss: nll,
                    weight_norms: four(2),
                },
                TermStats {
                    name: "l2",
                    loss: pen,
                    weight_norms: four(6),
                },
            ],
        }
    }

    /// Log-probabilities `[n][10]` of a normalised batch, without recording a graph.
    pub fn log_probs(&self, x: Vec<f32>) -> Vec<[f32; 10]> {
        let model = self.model().valid();
        let device = self.device.clone().inner();
        read_f32(model.forward(SeedNet::input(&x, &device)))
            .chunks_exact(10)
            .map(|c| std::array::from_fn(|i| c[i]))
            .collect()
    }

    /// Fraction of `data` classified correctly (argmax of the log-probabilities), in chunks of 1000.
    pub fn accuracy(&self, data: &Dataset) -> f64 {
        if data.is_empty() {
            return 0.0;
        }
        let mut correct = 0usize;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(1000) {
            x.clear();
            y.clear();
            data.gather_normalised(chunk, &mut x, &mut y);
            for (lp, &label) in self.log_probs(std::mem::take(&mut x)).iter().zip(&y) {
                // NaN never wins: a diverged network scores as wrong.
                let best = (0..10).fold(0, |b, i| if lp[i] > lp[b] { i } else { b });
                if lp[best].is_finite() && best as i64 == label {
                    correct += 1;
                }
            }
        }
        correct as f64 / data.len() as f64
    }

    /// The current parameters' count (sanity for callers and docs).
    pub fn num_params(&self) -> usize {
        self.model().num_params()
    }
}

/// Reads a float tensor back to the host (one sync).
pub(crate) fn read_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec()
        .unwrap_or_else(|e| unreachable!("float tensor reads back as f32: {e:?}"))
}

/// How to iterate over the training set.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Optimiser.
    pub optim: Optim,
    /// Learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch: usize,
    /// Stop after this many steps (the original: 201, batch_idx 0..=200).
    pub steps: Option<usize>,
    /// Stop after this many epochs (when `steps` is not reached first). `None` with `steps`:
    /// as many epochs as the steps need, re-shuffling each epoch.
    pub epochs: Option<usize>,
    /// Seeds the initial weights and every epoch's shuffle.
    pub seed: u64,
    /// Shuffle each epoch (seeded per epoch) or go in file order.
    pub shuffle: bool,
    /// Weight λ of an L2 penalty term `λ·Σ‖W‖²` trained beside the NLL ([`Trainer::with_l2`]);
    /// 0 for the plain NLL loss of the original.
    pub l2: f64,
    /// Drop the last incomplete batch of an epoch (PyTorch's `drop_last`).
    pub drop_last: bool,
}

impl RunConfig {
    /// Total number of steps this config runs on `n` training images.
    pub fn total_steps(&self, n: usize) -> usize {
        BatchPlan::from(self).total_steps(n)
    }

    /// [`BatchPlan::check_plan`] of this config's plan.
    pub fn check_plan(&self, n: usize) -> Result<(), crate::ConfigError> {
        BatchPlan::from(self).check_plan(n)
    }
}

/// How a run draws its batches from the training set: what [`batches`] needs of a run's
/// settings (a [`RunConfig`] gives its own; the GAN fills one in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// Batch size.
    pub batch: usize,
    /// Stop after this many steps.
    pub steps: Option<usize>,
    /// Stop after this many epochs (when `steps` is not reached first); `None` with `steps`: as
    /// many epochs as the steps need.
    pub epochs: Option<usize>,
    /// Seeds every epoch's shuffle.
    pub seed: u64,
    /// Shuffle each epoch (seeded per epoch) or go in file order.
    pub shuffle: bool,
    /// Drop the last incomplete batch of an epoch (PyTorch's `drop_last`).
    pub drop_last: bool,
}

impl From<&RunConfig> for BatchPlan {
    fn from(cfg: &RunConfig) -> Self {
        BatchPlan {
            batch: cfg.batch,
            steps: cfg.steps,
            epochs: cfg.epochs,
            seed: cfg.seed,
            shuffle: cfg.shuffle,
            drop_last: cfg.drop_last,
        }
    }
}

impl BatchPlan {
    /// Total number of steps this plan runs on `n` training images.
    pub fn total_steps(&self, n: usize) -> usize {
        let per_epoch = if self.drop_last {
            n / self.batch
        } else {
            n.div_ceil(self.batch)
        };
        let by_epochs = self.epochs.map(|e| e * per_epoch);
        match (self.steps, by_epochs) {
            (Some(s), Some(e)) => s.min(e),
            (Some(s), None) => s,
            (None, Some(e)) => e,
            (None, None) => per_epoch,
        }
    }

    /// Fails, with what to change, when this plan makes no training step on a set of `n`
    /// images (batch 0, or a batch larger than the set with the last partial batch dropped):
    /// for callers to check before creating any output, so that a degenerate plan never
    /// leaves an empty WAV.
    pub fn check_plan(&self, n: usize) -> Result<(), crate::ConfigError> {
        if self.batch == 0 {
            return Err(crate::ConfigError::ZeroBatch);
        }
        if n == 0 {
            return Err(crate::ConfigError::NoImages);
        }
        if self.total_steps(n) == 0 {
            return Err(crate::ConfigError::NoSteps {
                batch: self.batch,
                images: n,
            });
        }
        Ok(())
    }
}

/// Batch index lists for a run over `n` images: a fresh seeded permutation per epoch.
pub fn batches(plan: impl Into<BatchPlan>, n: usize) -> impl Iterator<Item = Vec<usize>> {
    let cfg = plan.into();
    // An epoch without a batch (no images, batch 0, or drop_last with batch > n) would make the
    // endless epoch iterator below search forever for the steps it was asked for.
    let per_epoch = match (cfg.batch, cfg.drop_last) {
        (0, _) => 0,
        (b, true) => n / b,
        (b, false) => n.div_ceil(b),
    };
    let total = if per_epoch == 0 {
        0
    } else {
        cfg.total_steps(n)
    };
    let (batch, shuffle, drop_last, seed) = (cfg.batch, cfg.shuffle, cfg.drop_last, cfg.seed);
    (0u64..)
        .flat_map(move |epoch| {
            let order = if shuffle {
                SplitMix64::derive(seed, 0xE90C + epoch).permutation(n)
            } else {
                (0..n).collect()
            };
            let chunks: Vec<Vec<usize>> = order
                .chunks(batch)
                .filter(|c| !drop_last || c.len() == batch)
                .map(<[usize]>::to_vec)
                .collect();
            chunks
        })
        .take(total)
}

/// Trains on `train` as `cfg` says, calling `on_step` with each step's [`Frame`] (step index,
/// `loss`, the four weight-gradient norms named [`LAYERS`] and, as the frame's `params`, the
/// four weight norms; with an L2 term, the losses
/// `loss`, `loss_nll`, `loss_l2` and each term's norms as instruments `nll/conv1` … `l2/fc2`). `on_step` may stop the run early
/// (Ctrl-C) by returning `Break`. Returns the trainer, for evaluation.
pub fn run(
    cfg: &RunConfig,
    params: &SeedParams,
    train: &Dataset,
    device: &Device,
    mut on_step: impl FnMut(Frame) -> ControlFlow<()>,
) -> Trainer {
    let mut trainer = Trainer::new(params, cfg.optim, cfg.lr, device).with_l2(cfg.l2);
    for (step, idx) in batches(BatchPlan::from(cfg), train.len()).enumerate() {
        let (mut x, mut y) = (Vec::with_capacity(idx.len() * IMAGE_LEN), Vec::new());
        train.gather_normalised(&idx, &mut x, &mut y);
        let s = trainer.step(x, y, false);
        let mut frame = Frame::new(step as u64).with_loss("loss", s.loss);
        if s.terms.is_empty() {
            for (name, v) in LAYERS.iter().zip(s.weight_norms) {
                frame = frame.with_value(*name, v);
            }
        }
        for t in &s.terms {
            frame = frame.with_loss(format!("loss_{}", t.name), t.loss);
        }
        for t in &s.terms {
            for (layer, v) in LAYERS.iter().zip(t.weight_norms) {
                frame = frame.with_value(format!("{}/{layer}", t.name), v);
            }
        }
        // Each value's weights, under the value's name (the terms share the layers' weights).
        let params: Vec<_> = frame
            .values
            .iter()
            .filter_map(|v| {
                // `term/layer` or a bare layer name.
                let layer = gradtone_frame::naming::layer_of(&v.name);
                let i = LAYERS.iter().position(|l| *l == layer)?;
                Some(gradtone_frame::Named {
                    name: v.name.clone(),
                    value: s.param_norms[i],
                })
            })
            .collect();
        frame.params = params;
        if on_step(frame).is_break() {
            break;
        }
    }
    trainer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        batch: usize,
        steps: Option<usize>,
        epochs: Option<usize>,
        drop_last: bool,
    ) -> RunConfig {
        RunConfig {
            optim: Optim::Adam,
            lr: 0.1,
            batch,
            steps,
            epochs,
            seed: 3,
            shuffle: true,
            drop_last,
            l2: 0.0,
        }
    }

    #[test]
    fn batches_reshuffle_each_epoch_and_respect_drop_last() {
        // 20 000 images / 256 = 78 full batches: 201 steps need three epochs (as the reference).
        let c = cfg(256, Some(201), None, true);
        let b: Vec<Vec<usize>> = batches(&c, 20_000).collect();
        assert_eq!(b.len(), 201);
        assert!(b.iter().all(|x| x.len() == 256));
        let mut epoch0: Vec<usize> = b[..78].concat();
        epoch0.sort_unstable();
        epoch0.dedup();
        assert_eq!(epoch0.len(), 78 * 256, "no image twice within an epoch");
        assert_ne!(b[0], b[78], "epoch 2 is shuffled anew");

        let keep = cfg(3, None, Some(1), false);
        let b: Vec<Vec<usize>> = batches(&keep, 10).collect();
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
        let drop = cfg(3, None, Some(2), true);
        assert_eq!(batches(&drop, 10).count(), 6);
        assert_eq!(cfg(3, Some(4), Some(2), true).total_steps(10), 4);
    }

    #[test]
    fn batches_end_on_degenerate_sets() {
        // No images, a batch larger than the set with drop_last, batch 0: no step, no hang.
        assert_eq!(batches(&cfg(3, Some(5), None, true), 0).count(), 0);
        assert_eq!(batches(&cfg(10, Some(5), None, true), 4).count(), 0);
        assert_eq!(batches(&cfg(0, Some(5), None, false), 4).count(), 0);
        assert_eq!(batches(&cfg(10, Some(5), None, false), 4).count(), 5);
    }
}
