//! The 2019 seed network in Burn: conv 1→20 5×5, max-pool 2, conv 20→50 5×5, max-pool 2,
//! fc 800→500, fc 500→10, ReLU, log-softmax.
//!
//! Each conv → max-pool 2×2 → relu block is one fused op with its own backward
//! ([`crate::fused`]): im2col + one GEMM per batch half, a branch-free pool with a `u8` argmax,
//! and GEMMs + col2im back, instead of Burn `flex`'s per-image convolution, generic pool and
//! convolution-shaped gradients (65–80 % of a step before). conv1's patches are laid out by the
//! host while it builds the batch ([`SeedNet::input`]): the images need no gradient, so the op
//! skips its input gradient there.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use gradtone_mnist::IMAGE_LEN;

use crate::fused::{conv_pool_relu, patch_conv_pool_relu};
use crate::kernels::{Filler, filled_in_two};
use crate::params::{ParamTensor, SeedParams};

/// Layer names in order, as they appear in frames and CSV columns.
pub const LAYERS: [&str; 4] = ["conv1", "conv2", "fc1", "fc2"];

/// Side of an MNIST image, of conv1's kernel and of its output.
const SIDE: usize = 28;
const K: usize = 5;
const OUT: usize = SIDE - K + 1;

/// conv1 (1→20, 5×5, valid) → max-pool 2 → relu, over host-built patch columns
/// ([`SeedNet::input`]).
#[derive(Module, Debug)]
pub struct PatchConv {
    /// `[20, 25]`: PyTorch's `[20, 1, 5, 5]` weight, rows flattened in the same order.
    pub(crate) weight: Param<Tensor<2>>,
    /// `[20]`.
    pub(crate) bias: Param<Tensor<1>>,
}

impl PatchConv {
    /// Patches `[25, n·576]` → pooled, relu'd maps `[n, 20, 12, 12]`.
    pub fn forward(&self, patches: Tensor<2>) -> Tensor<4> {
        patch_conv_pool_relu(patches, self.weight.val(), self.bias.val(), OUT)
    }
}

/// conv2 (20→50, 5×5, valid) → max-pool 2 → relu.
#[derive(Module, Debug)]
pub struct ConvPool {
    /// `[50, 20, 5, 5]`, PyTorch's layout.
    pub(crate) weight: Param<Tensor<4>>,
    /// `[50]`.
    pub(crate) bias: Param<Tensor<1>>,
}

impl ConvPool {
    /// Maps `[n, 20, 12, 12]` → `[n, 50, 4, 4]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_pool_relu(x, self.weight.val(), self.bias.val())
    }
}

/// The 5×5 patches of normalised 28×28 images (`n × 784`, row-major), as conv1's input:
/// `[25, n·576]`, row `5·ki + kj`, column `576·image + 24·y + x` holding pixel
/// `(y + ki, x + kj)` of that image.
pub fn patches(images: &[f32]) -> Vec<f32> {
    let n = images.len() / IMAGE_LEN;
    let cols = n * OUT * OUT;
    // Appended in order rather than zeroed and then overwritten (15 MB at batch 256), the 25
    // rows split between two threads.
    let split = (K * K).div_ceil(2);
    let rows = |part: usize, out: &mut Filler| {
        let range = if part == 0 { 0..split } else { split..K * K };
        for r in range {
            let (ki, kj) = (r / K, r % K);
            for img in images.chunks_exact(IMAGE_LEN) {
                for y in 0..OUT {
                    let start = (y + ki) * SIDE + kj;
                    out.extend(&img[start..start + OUT]);
                }
            }
        }
    };
    filled_in_two(K * K * cols, split * cols, rows)
}

/// The seed CNN.
#[derive(Module, Debug)]
pub struct SeedNet {
    pub(crate) conv1: PatchConv,
    pub(crate) conv2: ConvPool,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
}

impl SeedNet {
    /// Builds the network on `device` from PyTorch-layout parameters.
    pub fn from_params(p: &SeedParams, device: &Device) -> Self {
        let mut fc1 = LinearConfig::new(800, 500).init(device);
        let mut fc2 = LinearConfig::new(500, 10).init(device);
        let t = |name: &str| -> &ParamTensor {
            // SeedParams is built from SEED_SHAPES, which names all eight tensors.
            p.get(name)
                .unwrap_or_else(|| unreachable!("seed params lack {name}"))
        };
        let conv1 = PatchConv {
            weight: Param::from_tensor(tensor::<4>(t("conv1.weight"), device).reshape([20, K * K])),
            bias: Param::from_tensor(tensor::<1>(t("conv1.bias"), device)),
        };
        let conv2 = ConvPool {
            weight: Param::from_tensor(tensor::<4>(t("conv2.weight"), device)),
            bias: Param::from_tensor(tensor::<1>(t("conv2.bias"), device)),
        };
        // Burn stores Linear weights [in, out]; PyTorch [out, in].
        fc1.weight = Param::from_tensor(tensor::<2>(t("fc1.weight"), device).transpose());
        fc1.bias = Some(Param::from_tensor(tensor::<1>(t("fc1.bias"), device)));
        fc2.weight = Param::from_tensor(tensor::<2>(t("fc2.weight"), device).transpose());
        fc2.bias = Some(Param::from_tensor(tensor::<1>(t("fc2.bias"), device)));
        Self {
            conv1,
            conv2,
            fc1,
            fc2,
        }
    }

    /// The network's input for a normalised batch (`n × 784`): its conv1 patches on `device`.
    pub fn input(images: &[f32], device: &Device) -> Tensor<2> {
        let n = images.len() / IMAGE_LEN;
        Tensor::from_data(
            TensorData::new(patches(images), [K * K, n * OUT * OUT]),
            device,
        )
    }

    /// Log-probabilities `[n, 10]` of a batch given as [`SeedNet::input`].
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let x = self.conv1.forward(input);
        let x = self.conv2.forward(x);
        let [n, _, _, _] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([n, 800])));
        log_softmax(self.fc2.forward(x), 1)
    }

    /// The conv1 block (patches → pooled, relu'd maps), read-only: to run one layer of the
    /// network alone (`gradtone-bench` times each layer's forward and backward this way).
    pub fn conv1(&self) -> &PatchConv {
        &self.conv1
    }

    /// The conv2 block, read-only (see [`SeedNet::conv1`]).
    pub fn conv2(&self) -> &ConvPool {
        &self.conv2
    }

    /// fc1 (800 → 500, before its relu), read-only (see [`SeedNet::conv1`]).
    pub fn fc1(&self) -> &Linear {
        &self.fc1
    }

    /// fc2 (500 → 10, before the log-softmax), read-only (see [`SeedNet::conv1`]).
    pub fn fc2(&self) -> &Linear {
        &self.fc2
    }

    /// Mean negative log-likelihood of `log_probs` for integer `targets` `[n]`.
    pub fn nll_loss(log_probs: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        let [n, _] = log_probs.dims();
        log_probs.gather(1, targets.reshape([n, 1])).mean().neg()
    }

    /// Squared L2 norms `[4]` of the four layers' weight gradients (or bias gradients when
    /// `bias`), in [`LAYERS`] order, still on the device: the caller reads them back once.
    /// A parameter without a gradient (not in the graph) counts as 0.
    pub fn grad_sq_sums(&self, grads: &Gradients, bias: bool) -> Tensor<1> {
        fn sq<const D: usize>(p: &Param<Tensor<D>>, g: &Gradients) -> Tensor<1> {
            match p.val().grad(g) {
                Some(t) => {
                    // A dot product of the flattened gradient with itself: one pass, no
                    // squared copy of a 400k-element tensor.
                    let n = t.shape().num_elements();
                    let flat: Tensor<2> = t.reshape([1, n]);
                    flat.clone().matmul(flat.transpose()).reshape([1])
                }
                None => Tensor::zeros([1], &p.val().device()),
            }
        }
        let parts = if bias {
            let optional = |b: &Option<Param<Tensor<1>>>| match b {
                Some(b) => sq(b, grads),
                None => Tensor::zeros([1], &self.fc2.weight.val().device()),
            };
            vec![
                sq(&self.conv1.bias, grads),
                sq(&self.conv2.bias, grads),
                optional(&self.fc1.bias),
                optional(&self.fc2.bias),
            ]
        } else {
            vec![
                sq(&self.conv1.weight, grads),
                sq(&self.conv2.weight, grads),
                sq(&self.fc1.weight, grads),
                sq(&self.fc2.weight, grads),
            ]
        };
        Tensor::cat(parts, 0)
    }

    /// Squared L2 norms `[4]` of the four layers' weights themselves, [`LAYERS`] order, still
    /// on the device (detached: no graph), for the frame's `params`; read back with the
    /// gradient norms in the same sync.
    pub fn weight_sq_sums(&self) -> Tensor<1> {
        fn sq<const D: usize>(p: &Param<Tensor<D>>) -> Tensor<1> {
            let t = p.val().detach();
            let n = t.shape().num_elements();
            let flat: Tensor<2> = t.reshape([1, n]);
            flat.clone().matmul(flat.transpose()).reshape([1])
        }
        Tensor::cat(
            vec![
                sq(&self.conv1.weight),
                sq(&self.conv2.weight),
                sq(&self.fc1.weight),
                sq(&self.fc2.weight),
            ],
            0,
        )
    }
}

impl SeedNet {
    /// The four layers' weight gradients, flattened, [`LAYERS`] order (zeros for a weight
    /// outside the graph), still on the device.
    pub fn weight_grads(&self, grads: &Gradients) -> [Tensor<1>; 4] {
        fn flat<const D: usize>(p: &Param<Tensor<D>>, g: &Gradients) -> Tensor<1> {
            let v = p.val();
            match v.grad(g) {
                Some(t) => t.flatten(0, D - 1),
                None => v.inner().zeros_like().flatten(0, D - 1),
            }
        }
        [
            flat(&self.conv1.weight, grads),
            flat(&self.conv2.weight, grads),
            flat(&self.fc1.weight, grads),
            flat(&self.fc2.weight, grads),
        ]
    }

    /// The L2 penalty `Σ_layers ‖W‖²` over the four weights (not the biases), `[1]`: the
    /// regularisation term of the two-loss classifier.
    pub fn weight_sq_sum(&self) -> Tensor<1> {
        Tensor::cat(
            vec![
                self.conv1.weight.val().square().sum(),
                self.conv2.weight.val().square().sum(),
                self.fc1.weight.val().square().sum(),
                self.fc2.weight.val().square().sum(),
            ],
            0,
        )
        .sum()
    }
}

fn tensor<const D: usize>(p: &ParamTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(p.values.clone(), p.shape.clone()), device)
}
