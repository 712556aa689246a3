//! One GAN step: each loss term its own backward pass, norms read before the updates.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use gradtone_frame::Frame;
use gradtone_mnist::{Dataset, IMAGE_LEN};

use super::model::{Discriminator, Generator, mean_softplus, sq_norms};
use super::{D_LAYERS, G_LAYERS, GanConfig, GanLoss, TERMS, Z_DIM};
use crate::rng::SplitMix64;
use crate::trainer::read_f32;

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

/// Where each number sits in a step's single readback (`GanTrainer::step`): the three losses,
/// then 3 squared layer norms per term and for D's summed gradient, then D's mean outputs and
/// the two batches' spreads.
mod slot {
    pub const D_REAL: usize = 0;
    pub const D_FAKE: usize = 1;
    /// Inserted after the generator's backward pass, before the discriminator's squares.
    pub const G_ADV: usize = 2;
    pub const D_REAL_SQ: usize = 3;
    pub const D_FAKE_SQ: usize = 6;
    pub const D_TOTAL_SQ: usize = 9;
    pub const P_REAL: usize = 12;
    pub const P_FAKE: usize = 13;
    pub const REAL_SPREAD: usize = 14;
    pub const FAKE_SPREAD: usize = 15;
    /// Appended last.
    pub const G_ADV_SQ: usize = 16;
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
        // One readback per step: every scalar and squared norm, in the order of `slot`.
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
        parts.insert(slot::G_ADV, g_adv.detach().inner());
        parts.push(sq_norms(g.layers(), &grads));
        let grads = GradientsParams::from_grads(grads, &g);
        self.g = Some(self.g_opt.step(self.cfg.g_lr, g, grads));
        self.d = Some(d);

        let r = read_f32(Tensor::cat(parts, 0));
        let v = |i: usize| r.get(i).map_or(f64::NAN, |&x| f64::from(x));
        let norms = |first: usize| [0, 1, 2].map(|l| v(first + l).sqrt());
        GanStats {
            losses: [v(slot::D_REAL), v(slot::D_FAKE), v(slot::G_ADV)],
            norms: [
                norms(slot::D_REAL_SQ),
                norms(slot::D_FAKE_SQ),
                norms(slot::G_ADV_SQ),
            ],
            d_total: norms(slot::D_TOTAL_SQ),
            p_real: v(slot::P_REAL),
            p_fake: v(slot::P_FAKE),
            diversity: v(slot::FAKE_SPREAD) / v(slot::REAL_SPREAD).max(1e-12),
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

    /// The generator as it is now.
    pub fn generator(&self) -> &Generator {
        self.g.as_ref().unwrap_or_else(|| unreachable!("G present"))
    }

    /// The discriminator as it is now.
    pub fn discriminator(&self) -> &Discriminator {
        self.d.as_ref().unwrap_or_else(|| unreachable!("D present"))
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
