//! The generator and the discriminator: multilayer perceptrons with LeakyReLU(0.2).

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{leaky_relu, relu, tanh};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use gradtone_mnist::IMAGE_LEN;

use super::Z_DIM;
use crate::rng::SplitMix64;

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
pub(super) fn sq_norms(layers: [&Linear; 3], grads: &Gradients) -> Tensor<1> {
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

    /// The three layers, input first.
    pub fn layers(&self) -> [&Linear; 3] {
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

    /// The three layers, input first.
    pub fn layers(&self) -> [&Linear; 3] {
        [&self.fc1, &self.fc2, &self.fc3]
    }
}

/// `mean softplus(x)` `[1]`, stable for large |x|: `relu(x) + log(1 + e^−|x|)`.
pub fn mean_softplus(x: Tensor<2>) -> Tensor<1> {
    (relu(x.clone()) + x.abs().neg().exp().log1p()).mean()
}
