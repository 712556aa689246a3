//! The 2019 seed network in Burn: conv 1→20 5×5, max-pool 2, conv 20→50 5×5, max-pool 2,
//! fc 800→500, fc 500→10, ReLU, log-softmax.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};

use crate::params::{ParamTensor, SeedParams};

/// Layer names in order, as they appear in frames and CSV columns.
pub const LAYERS: [&str; 4] = ["conv1", "conv2", "fc1", "fc2"];

/// The seed CNN.
#[derive(Module, Debug)]
pub struct SeedNet {
    pub(crate) conv1: Conv2d,
    pub(crate) conv2: Conv2d,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
    pub(crate) pool: MaxPool2d,
}

impl SeedNet {
    /// Builds the network on `device` from PyTorch-layout parameters.
    pub fn from_params(p: &SeedParams, device: &Device) -> Self {
        let mut conv1 = Conv2dConfig::new([1, 20], [5, 5]).init(device);
        let mut conv2 = Conv2dConfig::new([20, 50], [5, 5]).init(device);
        let mut fc1 = LinearConfig::new(800, 500).init(device);
        let mut fc2 = LinearConfig::new(500, 10).init(device);
        let t = |name: &str| -> &ParamTensor {
            // SeedParams is built from SEED_SHAPES, which names all eight tensors.
            p.get(name)
                .unwrap_or_else(|| unreachable!("seed params lack {name}"))
        };
        conv1.weight = Param::from_tensor(tensor::<4>(t("conv1.weight"), device));
        conv1.bias = Some(Param::from_tensor(tensor::<1>(t("conv1.bias"), device)));
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

    /// Log-probabilities `[n, 10]` of a normalised batch `[n, 1, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        // relu(pool(x)) = pool(relu(x)) (relu is monotonic), with the same gradient, on a
        // quarter of the elements.
        let x = relu(self.pool.forward(self.conv1.forward(x)));
        let x = relu(self.pool.forward(self.conv2.forward(x)));
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
            [
                &self.conv1.bias,
                &self.conv2.bias,
                &self.fc1.bias,
                &self.fc2.bias,
            ]
            .into_iter()
            .map(|b| match b {
                Some(b) => sq(b, grads),
                None => Tensor::zeros([1], &self.fc2.weight.val().device()),
            })
            .collect()
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
