//! A small GAN on MNIST whose three loss terms are heard as three instruments: the
//! discriminator's loss on real digits, its loss on generated ones, and the generator's
//! adversarial loss.
//!
//! Both networks are multilayer perceptrons with LeakyReLU(0.2): the generator maps a 64-d
//! Gaussian code through 128 and 256 units to 784 pixels in `tanh` range; the discriminator
//! maps 784 pixels through 256 and 128 units to one logit. Real images are scaled to −1…1.
//!
//! A step trains the discriminator once, then the generator once (Adam, β₁ 0.5 by default):
//!
//! - `d_real = w_real · mean softplus(−D(x))` (−log D(x)), one backward;
//! - `d_fake = w_fake · mean softplus(D(G(z)))` (−log(1 − D(G(z))), `G(z)` detached), another
//!   backward; the two gradients are summed for the discriminator's update;
//! - `g_adv = w_adv · mean softplus(−D(G(z)))` (the non-saturating loss, −log D(G(z))), or with
//!   [`GanLoss::Saturating`] `−w_adv · mean softplus(D(G(z)))` (log(1 − D(G(z))), the original
//!   minimax form, whose gradient vanishes once the discriminator wins).
//!
//! Each term's gradient norms per layer are read after its own backward pass, before the
//! update, so `d_real` and `d_fake` can be told apart although they train the same weights:
//! [`GanStats::norms`]. Their sum's norms are [`GanStats::d_total`]. Two backward passes cost
//! the same as one over the concatenated batch, so the per-term norms come for free.
//!
//! [`GanWatch`] turns the statistics into alarms: the discriminator winning (its outputs pinned
//! near 1 on real and 0 on fake) and mode collapse (generated digits varying far less than
//! real ones).

use std::collections::VecDeque;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{leaky_relu, relu, sigmoid, tanh};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use gradtone_mnist::{Dataset, IMAGE_LEN};
use gradtone_sound::Frame;
use gradtone_sound::alarm::AlarmKind;

use crate::rng::SplitMix64;
use crate::trainer::read_f32;

/// Size of the generator's Gaussian code.
pub const Z_DIM: usize = 64;
/// The loss terms, in order: instrument names of the frames.
pub const TERMS: [&str; 3] = ["d_real", "d_fake", "g_adv"];
/// Layer names of each term's voices: the discriminator's for `d_real`/`d_fake`, the
/// generator's for `g_adv`.
pub const D_LAYERS: [&str; 3] = ["D.fc1", "D.fc2", "D.fc3"];
/// The generator's layer names.
pub const G_LAYERS: [&str; 3] = ["G.fc1", "G.fc2", "G.fc3"];

/// The generator: code `[n, 64]` → images `[n, 784]` in −1…1.
#[derive(Module, Debug)]
pub struct Generator {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

/// The discriminator: images `[n, 784]` → logits `[n, 1]` (real ↔ positive).
#[derive(Module, Debug)]
pub struct Discriminator {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

/// PyTorch's default `nn.Linear` init (`U(±1/√fan_in)` for weight and bias) from our own seeded
/// generator, so a seed means the same network on every version of Burn.
fn linear(fan_in: usize, fan_out: usize, rng: &mut SplitMix64, device: &Device) -> Linear {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let mut uniform = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect()
    };
    let mut l = LinearConfig::new(fan_in, fan_out).init(device);
    // Burn's Linear weight is [in, out].
    l.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(uniform(fan_in * fan_out), [fan_in, fan_out]),
        device,
    ));
    l.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(uniform(fan_out), [fan_out]),
        device,
    )));
    l
}

/// Squared L2 norms `[3]` of three weight gradients, still on the device.
fn sq_norms(layers: [&Linear; 3], grads: &Gradients) -> Tensor<1> {
    Tensor::cat(
        layers
            .iter()
            .map(|l| match l.weight.val().grad(grads) {
                Some(g) => g.square().sum(),
                None => Tensor::zeros([1], &l.weight.val().device().inner()),
            })
            .collect(),
        0,
    )
}

impl Generator {
    /// A seeded generator on `device`.
    pub fn new(seed: u64, device: &Device) -> Self {
        let mut r = SplitMix64::derive(seed, 0x6E4);
        Generator {
            fc1: linear(Z_DIM, 128, &mut r, device),
            fc2: linear(128, 256, &mut r, device),
            fc3: linear(256, IMAGE_LEN, &mut r, device),
        }
    }

    /// Images `[n, 784]` in −1…1 from codes `[n, 64]`.
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        let x = leaky_relu(self.fc1.forward(z), 0.2);
        let x = leaky_relu(self.fc2.forward(x), 0.2);
        tanh(self.fc3.forward(x))
    }

    fn layers(&self) -> [&Linear; 3] {
        [&self.fc1, &self.fc2, &self.fc3]
    }
}

impl Discriminator {
    /// A seeded discriminator on `device`.
    pub fn new(seed: u64, device: &Device) -> Self {
        let mut r = SplitMix64::derive(seed, 0xD15);
        Discriminator {
            fc1: linear(IMAGE_LEN, 256, &mut r, device),
            fc2: linear(256, 128, &mut r, device),
            fc3: linear(128, 1, &mut r, device),
        }
    }

    /// Logits `[n, 1]` of images `[n, 784]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = leaky_relu(self.fc1.forward(x), 0.2);
        let x = leaky_relu(self.fc2.forward(x), 0.2);
        self.fc3.forward(x)
    }

    fn layers(&self) -> [&Linear; 3] {
        [&self.fc1, &self.fc2, &self.fc3]
    }
}

/// `mean softplus(x)` `[1]`, stable for large |x|: `relu(x) + log(1 + e^−|x|)`.
pub fn mean_softplus(x: Tensor<2>) -> Tensor<1> {
    (relu(x.clone()) + x.abs().neg().exp().log1p()).mean()
}

/// The generator's loss form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GanLoss {
    /// `−log D(G(z))`: strong gradients while the generator is losing (the usual choice).
    NonSaturating,
    /// `log(1 − D(G(z)))`, the original minimax loss: its gradient vanishes once the
    /// discriminator wins.
    Saturating,
}

/// Everything a GAN run is set by.
#[derive(Clone, Debug, PartialEq)]
pub struct GanConfig {
    /// Images (and codes) per step.
    pub batch: usize,
    /// Steps (one discriminator and one generator update each).
    pub steps: usize,
    /// Discriminator learning rate (Adam).
    pub d_lr: f64,
    /// Generator learning rate (Adam).
    pub g_lr: f64,
    /// Adam β₁ of both (0.5 is the GAN custom; PyTorch's default is 0.9).
    pub beta1: f64,
    /// The generator's loss form.
    pub loss: GanLoss,
    /// Weights of `d_real`, `d_fake`, `g_adv` ([`TERMS`] order).
    pub weights: [f64; 3],
    /// Seeds both networks, the codes and the batches.
    pub seed: u64,
}

/// Named starting points that show the healthy run and the classic failure modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GanPreset {
    /// Adam 2e-4 / 2e-4, β₁ 0.5, non-saturating: trains.
    Balanced,
    /// Saturating loss, discriminator 10× faster than the generator: the discriminator wins
    /// and the generator's gradient fades.
    DWins,
    /// Both learning rates 25× too high (5e-3): the losses swing, the norms jump.
    Unstable,
    /// Generator 10× faster than the discriminator: it chases the discriminator's current
    /// favourite and its samples lose diversity.
    Collapse,
}

impl GanPreset {
    /// Every preset.
    pub const ALL: [GanPreset; 4] = [
        GanPreset::Balanced,
        GanPreset::DWins,
        GanPreset::Unstable,
        GanPreset::Collapse,
    ];

    /// Short name (`balanced`, `d-wins`, `unstable`, `collapse`).
    pub fn name(self) -> &'static str {
        match self {
            GanPreset::Balanced => "balanced",
            GanPreset::DWins => "d-wins",
            GanPreset::Unstable => "unstable",
            GanPreset::Collapse => "collapse",
        }
    }

    /// The configuration of this preset with `seed` (batch 64, 2000 steps).
    pub fn config(self, seed: u64) -> GanConfig {
        let base = GanConfig {
            batch: 64,
            steps: 2000,
            d_lr: 2e-4,
            g_lr: 2e-4,
            beta1: 0.5,
            loss: GanLoss::NonSaturating,
            weights: [1.0; 3],
            seed,
        };
        match self {
            GanPreset::Balanced => base,
            GanPreset::DWins => GanConfig {
                d_lr: 1e-3,
                g_lr: 1e-4,
                loss: GanLoss::Saturating,
                ..base
            },
            GanPreset::Unstable => GanConfig {
                d_lr: 5e-3,
                g_lr: 5e-3,
                ..base
            },
            GanPreset::Collapse => GanConfig {
                d_lr: 1e-4,
                g_lr: 1e-3,
                ..base
            },
        }
    }
}

/// What one GAN step measured (before the updates).
#[derive(Clone, Debug, PartialEq)]
pub struct GanStats {
    /// The weighted loss terms, [`TERMS`] order.
    pub losses: [f64; 3],
    /// Each weighted term's gradient L2 norm per layer: `d_real` and `d_fake` over
    /// [`D_LAYERS`], `g_adv` over [`G_LAYERS`].
    pub norms: [[f64; 3]; 3],
    /// Norms of the discriminator's summed gradient (`d_real + d_fake`), per layer.
    pub d_total: [f64; 3],
    /// Mean `D(x)` (probability "real") on the real batch.
    pub p_real: f64,
    /// Mean `D(G(z))` on the generated batch (before this step's updates).
    pub p_fake: f64,
    /// Spread of the generated batch relative to the real one: the mean per-pixel standard
    /// deviation across the batch, generated over real. Near 0: every sample alike.
    pub diversity: f64,
}

impl GanStats {
    /// This step as a frame: losses `loss_d_real`, `loss_d_fake`, `loss_g_adv`, and nine values
    /// named `term/layer` (three instruments).
    pub fn frame(&self, step: u64) -> Frame {
        let mut f = Frame::new(step);
        for (t, l) in TERMS.iter().zip(self.losses) {
            f = f.with_loss(format!("loss_{t}"), l);
        }
        for (i, t) in TERMS.iter().enumerate() {
            let layers = if i < 2 { D_LAYERS } else { G_LAYERS };
            for (layer, v) in layers.iter().zip(self.norms[i]) {
                f = f.with_value(format!("{t}/{layer}"), v);
            }
        }
        f
    }
}

/// The generator, the discriminator and their optimisers.
pub struct GanTrainer {
    // `Option`: Burn's optimiser consumes a module and returns the updated one.
    g: Option<Generator>,
    d: Option<Discriminator>,
    g_opt: ModuleOptimizer,
    d_opt: ModuleOptimizer,
    cfg: GanConfig,
    rng: SplitMix64,
    device: Device,
}

fn adam(beta1: f64) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(beta1 as f32)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .init()
}

impl GanTrainer {
    /// Seeded networks on `device` (it gets autodiff).
    pub fn new(cfg: &GanConfig, device: &Device) -> Self {
        let device = device.clone().autodiff();
        GanTrainer {
            g: Some(Generator::new(cfg.seed, &device)),
            d: Some(Discriminator::new(cfg.seed, &device)),
            g_opt: adam(cfg.beta1),
            d_opt: adam(cfg.beta1),
            cfg: cfg.clone(),
            rng: SplitMix64::derive(cfg.seed, 0xC0DE),
            device,
        }
    }

    /// The next `n` codes (n×64 standard normals) of this run.
    pub fn codes(&mut self, n: usize) -> Vec<f32> {
        gaussian(&mut self.rng, n * Z_DIM)
    }

    /// One step on real images `x` (n×784, scaled to −1…1) and codes `z` (n×64): a
    /// discriminator update, then a generator update on the same codes.
    pub fn step(&mut self, x: Vec<f32>, z: Vec<f32>) -> GanStats {
        let n = x.len() / IMAGE_LEN;
        let [w_real, w_fake, w_adv] = self.cfg.weights;
        let x = Tensor::<2>::from_data(TensorData::new(x, [n, IMAGE_LEN]), &self.device);
        let z = Tensor::<2>::from_data(TensorData::new(z, [n, Z_DIM]), &self.device);
        let d = self.d.take().unwrap_or_else(|| unreachable!("D present"));
        let g = self.g.take().unwrap_or_else(|| unreachable!("G present"));

        // Discriminator: each term its own backward, gradients summed for the update.
        let real_logits = d.forward(x.clone());
        let d_real = mean_softplus(real_logits.clone().neg()).mul_scalar(w_real);
        let g_real = d_real.backward();
        let fake = g.forward(z.clone()).detach();
        let fake_logits = d.forward(fake.clone());
        let d_fake = mean_softplus(fake_logits.clone()).mul_scalar(w_fake);
        let g_fake = d_fake.backward();
        let layer_grads = |grads: &Gradients| -> Vec<Tensor<1>> {
            d.layers()
                .iter()
                .map(|l| match l.weight.val().grad(grads) {
                    Some(t) => t.flatten(0, 1),
                    None => l.weight.val().inner().zeros_like().flatten(0, 1),
                })
                .collect()
        };
        let (a, b) = (layer_grads(&g_real), layer_grads(&g_fake));
        let sq = |t: Tensor<1>| t.square().sum();
        let squares = |v: &[Tensor<1>]| Tensor::cat(v.iter().cloned().map(sq).collect(), 0);
        let total = Tensor::cat(
            a.iter()
                .zip(&b)
                .map(|(a, b)| sq(a.clone() + b.clone()))
                .collect(),
            0,
        );
        let mut parts = vec![
            d_real.detach().inner(),
            d_fake.detach().inner(),
            squares(&a),
            squares(&b),
            total,
            sigmoid(real_logits.detach().inner()).mean(),
            sigmoid(fake_logits.detach().inner()).mean(),
            spread(x.inner()),
            spread(fake.inner()),
        ];
        let mut acc = GradientsAccumulator::new();
        acc.accumulate(&d, GradientsParams::from_grads(g_real, &d));
        acc.accumulate(&d, GradientsParams::from_grads(g_fake, &d));
        let d = self.d_opt.step(self.cfg.d_lr, d, acc.grads());

        // Generator: through the updated discriminator; only G's gradients are kept.
        let logits = d.forward(g.forward(z));
        let g_adv = match self.cfg.loss {
            GanLoss::NonSaturating => mean_softplus(logits.neg()).mul_scalar(w_adv),
            GanLoss::Saturating => mean_softplus(logits).mul_scalar(-w_adv),
        };
        let grads = g_adv.backward();
        parts.insert(2, g_adv.detach().inner());
        parts.push(sq_norms(g.layers(), &grads));
        let grads = GradientsParams::from_grads(grads, &g);
        self.g = Some(self.g_opt.step(self.cfg.g_lr, g, grads));
        self.d = Some(d);

        let r = read_f32(Tensor::cat(parts, 0));
        let v = |i: usize| r.get(i).map_or(f64::NAN, |&x| f64::from(x));
        let norm = |i: usize| v(i).sqrt();
        // Layout: 3 losses, d_real norms 3..6, d_fake 6..9, total 9..12, p_real 12,
        // p_fake 13, real spread 14, fake spread 15, g_adv norms 16..19.
        GanStats {
            losses: [v(0), v(1), v(2)],
            norms: [
                [norm(3), norm(4), norm(5)],
                [norm(6), norm(7), norm(8)],
                [norm(16), norm(17), norm(18)],
            ],
            d_total: [norm(9), norm(10), norm(11)],
            p_real: v(12),
            p_fake: v(13),
            diversity: v(15) / v(14).max(1e-12),
        }
    }

    /// `n` generated images (n×784, 0…1 for display) from fresh codes of `seed`, without a
    /// graph: the same `seed` gives the same codes at every step, so grids can be compared.
    pub fn samples(&self, n: usize, seed: u64) -> Vec<f32> {
        let z = gaussian(&mut SplitMix64::derive(seed, 0x5A3), n * Z_DIM);
        let device = self.device.clone().inner();
        let g = self
            .g
            .as_ref()
            .unwrap_or_else(|| unreachable!("G present"))
            .valid();
        let z = Tensor::<2>::from_data(TensorData::new(z, [n, Z_DIM]), &device);
        read_f32(g.forward(z).add_scalar(1.0).mul_scalar(0.5))
    }

    /// The configuration.
    pub fn config(&self) -> &GanConfig {
        &self.cfg
    }
}

/// `n` standard normals (Box–Muller on our own generator: reproducible across versions).
fn gaussian(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
        let u2 = rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// Mean over pixels of the standard deviation across the batch, `[1]`.
fn spread(x: Tensor<2>) -> Tensor<1> {
    let mean = x.clone().mean_dim(0);
    (x - mean).square().mean_dim(0).sqrt().mean()
}

/// Real images of `idx` scaled to −1…1, n×784.
pub fn real_batch(data: &Dataset, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * IMAGE_LEN);
    for &i in idx {
        out.extend(data.image(i).iter().map(|&p| f32::from(p) / 127.5 - 1.0));
    }
    out
}

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
/// An alarm re-arms after `window` calm steps.
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
    fired: [bool; 3],
    calm: [usize; 3],
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
            fired: [false; 3],
            calm: [0; 3],
        }
    }
}

impl GanWatch {
    /// Feeds one step; returns the alarms that fire at it, with a message.
    pub fn observe(&mut self, step: u64, s: &GanStats) -> Vec<(AlarmKind, String)> {
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
        let mut out = Vec::new();
        for (i, c) in conditions.into_iter().enumerate() {
            match c {
                Some(alarm) => {
                    self.calm[i] = 0;
                    if !self.fired[i] {
                        self.fired[i] = true;
                        out.push(alarm);
                    }
                }
                None if self.fired[i] => {
                    self.calm[i] += 1;
                    if self.calm[i] >= self.window {
                        self.fired[i] = false;
                    }
                }
                None => {}
            }
        }
        out
    }
}

/// One GAN step as the loop sees it.
pub struct GanStep {
    /// The step index.
    pub step: u64,
    /// What it measured.
    pub stats: GanStats,
    /// Alarms [`GanWatch`] raised at this step.
    pub alarms: Vec<(AlarmKind, String)>,
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
    let mut watch = GanWatch::default();
    let run = crate::RunConfig {
        optim: crate::Optim::Adam,
        lr: cfg.g_lr,
        batch: cfg.batch,
        steps: Some(cfg.steps),
        epochs: None,
        seed: cfg.seed,
        shuffle: true,
        drop_last: true,
        l2: 0.0,
    };
    for (step, idx) in crate::batches(&run, train.len()).enumerate() {
        let x = real_batch(train, &idx);
        let z = t.codes(idx.len());
        let stats = t.step(x, z);
        let alarms = watch.observe(step as u64, &stats);
        let s = GanStep {
            step: step as u64,
            stats,
            alarms,
        };
        if on_step(&t, s).is_break() {
            break;
        }
    }
    t
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

    /// A linear layer on the host, in f64: `y = x·W + b`, `W` `[in, out]` as Burn stores it.
    struct Host {
        w: Vec<f64>,
        b: Vec<f64>,
        i: usize,
        o: usize,
    }

    fn host(l: &Linear) -> Host {
        let [i, o] = l.weight.val().dims();
        let get = |t: Tensor<1>| -> Vec<f64> { read_f32(t).into_iter().map(f64::from).collect() };
        Host {
            w: get(l.weight.val().flatten(0, 1)),
            b: get(l.bias.as_ref().map(|b| b.val()).expect("bias")),
            i,
            o,
        }
    }

    impl Host {
        fn fwd(&self, x: &[f64]) -> Vec<f64> {
            let n = x.len() / self.i;
            let mut y = vec![0.0; n * self.o];
            for r in 0..n {
                for k in 0..self.i {
                    let xv = x[r * self.i + k];
                    for c in 0..self.o {
                        y[r * self.o + c] += xv * self.w[k * self.o + c];
                    }
                }
                for c in 0..self.o {
                    y[r * self.o + c] += self.b[c];
                }
            }
            y
        }

        /// `(dW, dx)` for input `x` and output gradient `dy`.
        fn bwd(&self, x: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
            let n = x.len() / self.i;
            let (mut dw, mut dx) = (vec![0.0; self.i * self.o], vec![0.0; n * self.i]);
            for r in 0..n {
                for k in 0..self.i {
                    for c in 0..self.o {
                        let g = dy[r * self.o + c];
                        dw[k * self.o + c] += x[r * self.i + k] * g;
                        dx[r * self.i + k] += self.w[k * self.o + c] * g;
                    }
                }
            }
            (dw, dx)
        }
    }

    fn leaky(a: &[f64]) -> Vec<f64> {
        a.iter()
            .map(|&v| if v > 0.0 { v } else { 0.2 * v })
            .collect()
    }

    fn leaky_back(a: &[f64], dh: &[f64]) -> Vec<f64> {
        a.iter()
            .zip(dh)
            .map(|(&v, &g)| if v > 0.0 { g } else { 0.2 * g })
            .collect()
    }

    fn norm(v: &[f64]) -> f64 {
        v.iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Host backprop of an MLP of three layers with LeakyReLU between: weight gradients and
    /// the input gradient, given the output gradient `dl` from `out_grad(outputs)`.
    fn mlp_grads(
        layers: &[Host; 3],
        x: &[f64],
        out_grad: impl Fn(&[f64]) -> Vec<f64>,
    ) -> ([Vec<f64>; 3], Vec<f64>, Vec<f64>) {
        let a1 = layers[0].fwd(x);
        let h1 = leaky(&a1);
        let a2 = layers[1].fwd(&h1);
        let h2 = leaky(&a2);
        let out = layers[2].fwd(&h2);
        let dout = out_grad(&out);
        let (dw3, dh2) = layers[2].bwd(&h2, &dout);
        let (dw2, dh1) = layers[1].bwd(&h1, &leaky_back(&a2, &dh2));
        let (dw1, dx) = layers[0].bwd(x, &leaky_back(&a1, &dh1));
        ([dw1, dw2, dw3], dx, out)
    }

    /// Each term's per-layer gradient norms against an independent f64 backprop on the host.
    #[test]
    fn per_term_norms_match_host_backprop() {
        let device = crate::default_device();
        let cfg = GanConfig {
            batch: 8,
            steps: 1,
            // D frozen (lr 0), so the generator's term sees the same D as the host.
            d_lr: 0.0,
            g_lr: 1e-3,
            beta1: 0.5,
            loss: GanLoss::NonSaturating,
            weights: [0.7, 1.3, 2.0],
            seed: 9,
        };
        let mut t = GanTrainer::new(&cfg, &device);
        let n = 8;
        let mut r = SplitMix64::new(4);
        let x: Vec<f32> = (0..n * IMAGE_LEN)
            .map(|_| (r.next_f64() * 2.0 - 1.0) as f32)
            .collect();
        let z = t.codes(n);
        let d = t.d.as_ref().expect("D");
        let g = t.g.as_ref().expect("G");
        let dh = [host(&d.fc1), host(&d.fc2), host(&d.fc3)];
        let gh = [host(&g.fc1), host(&g.fc2), host(&g.fc3)];
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let z64: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        let [w_real, w_fake, w_adv] = cfg.weights;
        let nf = n as f64;
        // d_real = w·mean softplus(−l): ∂/∂l = −w·(1 − σ(l))/n.
        let (real, _, _) = mlp_grads(&dh, &x64, |l| {
            l.iter().map(|&v| -w_real * (1.0 - sig(v)) / nf).collect()
        });
        // G forward on the host (the fake images are D's input).
        let b1 = gh[0].fwd(&z64);
        let k1 = leaky(&b1);
        let b2 = gh[1].fwd(&k1);
        let k2 = leaky(&b2);
        let img: Vec<f64> = gh[2].fwd(&k2).iter().map(|v| v.tanh()).collect();
        // d_fake = w·mean softplus(l): ∂/∂l = w·σ(l)/n.
        let (fake, _, _) = mlp_grads(&dh, &img, |l| {
            l.iter().map(|&v| w_fake * sig(v) / nf).collect()
        });
        // g_adv = w·mean softplus(−l) through D into G.
        let (_, dimg, _) = mlp_grads(&dh, &img, |l| {
            l.iter().map(|&v| -w_adv * (1.0 - sig(v)) / nf).collect()
        });
        let db3: Vec<f64> = dimg
            .iter()
            .zip(&img)
            .map(|(g, y)| g * (1.0 - y * y))
            .collect();
        let (gw3, dk2) = gh[2].bwd(&k2, &db3);
        let (gw2, dk1) = gh[1].bwd(&k1, &leaky_back(&b2, &dk2));
        let (gw1, _) = gh[0].bwd(&z64, &leaky_back(&b1, &dk1));
        let generator = [gw1, gw2, gw3];

        let s = t.step(x, z);
        let check = |what: &str, got: f64, want: f64| {
            let e = (got - want).abs() / want.abs().max(1e-30);
            println!("{what}: burn {got:.8e} host {want:.8e} rel {e:.1e}");
            assert!(e < 1e-4, "{what}: rel err {e:e}");
        };
        for i in 0..3 {
            check(
                &format!("d_real/{}", D_LAYERS[i]),
                s.norms[0][i],
                norm(&real[i]),
            );
            check(
                &format!("d_fake/{}", D_LAYERS[i]),
                s.norms[1][i],
                norm(&fake[i]),
            );
            let sum: Vec<f64> = real[i].iter().zip(&fake[i]).map(|(a, b)| a + b).collect();
            check(
                &format!("d_total/{}", D_LAYERS[i]),
                s.d_total[i],
                norm(&sum),
            );
            check(
                &format!("g_adv/{}", G_LAYERS[i]),
                s.norms[2][i],
                norm(&generator[i]),
            );
        }
        // The terms differ: the check can tell them apart.
        assert!((s.norms[0][0] / s.norms[1][0] - 1.0).abs() > 1e-3);
        assert!(s.losses.iter().all(|l| l.is_finite() && *l > 0.0));
        assert!((0.0..=1.0).contains(&s.p_real) && (0.0..=1.0).contains(&s.p_fake));
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
            assert!(quiet.observe(step, &stats(0.6, 0.4, 0.2)).is_empty());
            fired.extend(w.observe(step, &s).into_iter().map(|(k, _)| (step, k)));
        }
        // Then 100 steps whose generator norm alternates 2 and 0.5 (0.6 decades a step).
        for step in 200..300u64 {
            let mut s = stats(0.6, 0.4, 1.0);
            s.norms[2] = [if step % 2 == 0 { 2.0 } else { 0.5 }; 3];
            fired.extend(w.observe(step, &s).into_iter().map(|(k, _)| (step, k)));
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
}
