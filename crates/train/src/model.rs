//! The 2019 seed network in Burn: conv 1→20 5×5, max-pool 2, conv 20→50 5×5, max-pool 2,
//! fc 800→500, fc 500→10, ReLU, log-softmax.
//!
//! conv1 is computed as one matrix product over the images' 5×5 patches, which the host lays out
//! while it builds the batch ([`SeedNet::input`]): the images need no gradient, so this is
//! exactly conv1, and its forward and weight gradient become two plain GEMMs instead of Burn
//! `flex`'s convolution and its batch-for-channel weight-gradient convolution (11.5 of 45.5 ms
//! per step at batch 64, `gradtone bench --profile`).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use gradtone_mnist::IMAGE_LEN;

use crate::params::{ParamTensor, SeedParams};

/// Layer names in order, as they appear in frames and CSV columns.
pub const LAYERS: [&str; 4] = ["conv1", "conv2", "fc1", "fc2"];

/// Side of an MNIST image, of conv1's kernel and of its output.
const SIDE: usize = 28;
const K: usize = 5;
const OUT: usize = SIDE - K + 1;

/// conv1 (1→20, 5×5, valid) as `W · patches + b` over patch columns ([`SeedNet::input`]).
#[derive(Module, Debug)]
pub struct PatchConv {
    /// `[20, 25]`: PyTorch's `[20, 1, 5, 5]` weight, rows flattened in the same order.
    pub(crate) weight: Param<Tensor<2>>,
    /// `[20]`.
    pub(crate) bias: Param<Tensor<1>>,
}

impl PatchConv {
    /// Patches `[25, n·576]` → feature maps `[20, n, 24, 24]` (channel-major).
    pub fn forward(&self, patches: Tensor<2>) -> Tensor<4> {
        let [_, cols] = patches.dims();
        let [out, _] = self.weight.dims();
        let y = self.weight.val().matmul(patches) + self.bias.val().reshape([out, 1]);
        y.reshape([out, cols / (OUT * OUT), OUT, OUT])
    }
}

/// The 5×5 patches of normalised 28×28 images (`n × 784`, row-major), as conv1's input:
/// `[25, n·576]`, row `5·ki + kj`, column `576·image + 24·y + x` holding pixel
/// `(y + ki, x + kj)` of that image.
pub fn patches(images: &[f32]) -> Vec<f32> {
    let n = images.len() / IMAGE_LEN;
    let cols = n * OUT * OUT;
    let mut out = vec![0.0f32; K * K * cols];
    for (r, row) in out.chunks_exact_mut(cols).enumerate() {
        let (ki, kj) = (r / K, r % K);
        for (img, dst) in images
            .chunks_exact(IMAGE_LEN)
            .zip(row.chunks_exact_mut(OUT * OUT))
        {
            for (y, line) in dst.chunks_exact_mut(OUT).enumerate() {
                let start = (y + ki) * SIDE + kj;
                line.copy_from_slice(&img[start..start + OUT]);
            }
        }
    }
    out
}

/// The seed CNN.
#[derive(Module, Debug)]
pub struct SeedNet {
    pub(crate) conv1: PatchConv,
    pub(crate) conv2: Conv2d,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
    pub(crate) pool: MaxPool2d,
}

impl SeedNet {
    /// Builds the network on `device` from PyTorch-layout parameters.
    pub fn from_params(p: &SeedParams, device: &Device) -> Self {
        let mut conv2 = Conv2dConfig::new([20, 50], [5, 5]).init(device);
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
        conv2.weight = Param::from_tensor(tensor::<4>(t("conv2.weight"), device));
        conv2.bias = Some(Param::from_tensor(tensor::<1>(t("conv2.bias"), device)));
        // Burn stores Linear weights [in, out]; PyTorch [out, in].
        fc1.weight = Param::from_tensor(tensor::<2>(t("fc1.weight"), device).transpose());
        fc1.bias = Some(Param::from_tensor(tensor::<1>(t("fc1.bias"), device)));
        fc2.weight = Param::from_tensor(tensor::<2>(t("fc2.weight"), device).transpose());
        fc2.bias = Some(Param::from_tensor(tensor::<1>(t("fc2.bias"), device)));
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        Self {
            conv1,
            conv2,
            fc1,
            fc2,
            pool,
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
        // relu(pool(x)) = pool(relu(x)) (relu is monotonic), with the same gradient, on a
        // quarter of the elements. conv1's maps are channel-major [20, N, 24, 24]; pooling
        // treats N as channels, and one transpose brings them to conv2's [N, 20, 12, 12].
        let x = relu(self.pool.forward(self.conv1.forward(input)));
        let x = relu(self.pool.forward(self.conv2.forward(x.swap_dims(0, 1))));
        let [n, _, _, _] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([n, 800])));
        log_softmax(self.fc2.forward(x), 1)
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
                optional(&self.conv2.bias),
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
