//! The seed network's parameters as plain float32 arrays in PyTorch's layout: what PyTorch's
//! default initialisation draws, and what `../shared/reference/pytorch/exact/params/*.f32` holds.

use std::path::Path;

use crate::TrainError;
use crate::rng::SplitMix64;

/// One parameter tensor: its PyTorch name (`conv1.weight`), shape (PyTorch layout) and values.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamTensor {
    /// PyTorch name, e.g. `fc1.weight`.
    pub name: &'static str,
    /// Shape in PyTorch layout: conv `[out, in, kh, kw]`, linear `[out, in]`, bias `[out]`.
    pub shape: Vec<usize>,
    /// Values, C order.
    pub values: Vec<f32>,
}

/// Names and PyTorch shapes of the seed network's eight tensors, in `model.parameters()` order.
pub const SEED_SHAPES: [(&str, &[usize]); 8] = [
    ("conv1.weight", &[20, 1, 5, 5]),
    ("conv1.bias", &[20]),
    ("conv2.weight", &[50, 20, 5, 5]),
    ("conv2.bias", &[50]),
    ("fc1.weight", &[500, 800]),
    ("fc1.bias", &[500]),
    ("fc2.weight", &[10, 500]),
    ("fc2.bias", &[10]),
];

/// All parameters of the seed network, in [`SEED_SHAPES`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedParams {
    /// The eight tensors.
    pub tensors: Vec<ParamTensor>,
}

impl SeedParams {
    /// PyTorch's default initialisation (`Conv2d`/`Linear.reset_parameters`): weights
    /// Kaiming-uniform with `a = √5`, i.e. U(±1/√fan_in), biases U(±1/√fan_in), drawn from a
    /// generator seeded with `seed`. Same distribution as PyTorch, not the same numbers: those
    /// come from torch's own generator (load them with [`SeedParams::load_dir`] to compare).
    pub fn init(seed: u64) -> Self {
        let mut rng = SplitMix64::derive(seed, 0x1417);
        let tensors = SEED_SHAPES
            .iter()
            .map(|&(name, shape)| {
                // fan_in of a layer: in-channels × kernel area (conv) or in-features (linear).
                let fan_in: usize = match name {
                    "conv1.weight" | "conv1.bias" => 25,
                    "conv2.weight" | "conv2.bias" => 20 * 25,
                    "fc1.weight" | "fc1.bias" => 800,
                    _ => 500,
                };
                let bound = 1.0 / (fan_in as f64).sqrt();
                let n = shape.iter().product();
                let values = (0..n)
                    .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                    .collect();
                ParamTensor {
                    name,
                    shape: shape.to_vec(),
                    values,
                }
            })
            .collect();
        Self { tensors }
    }

    /// Reads `<dir>/<name>.f32` for every tensor (raw little-endian float32, PyTorch layout),
    /// the layout of `../shared/reference/pytorch/exact/params/`.
    pub fn load_dir(dir: &Path) -> Result<Self, TrainError> {
        let tensors = SEED_SHAPES
            .iter()
            .map(|&(name, shape)| {
                let path = dir.join(format!("{name}.f32"));
                let n: usize = shape.iter().product();
                let values = read_f32_file(&path, n)?;
                Ok(ParamTensor {
                    name,
                    shape: shape.to_vec(),
                    values,
                })
            })
            .collect::<Result<_, TrainError>>()?;
        Ok(Self { tensors })
    }

    /// The tensor named `name`, if any.
    pub fn get(&self, name: &str) -> Option<&ParamTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Reads a raw little-endian float32 file that must hold exactly `expected` values.
pub fn read_f32_file(path: &Path, expected: usize) -> Result<Vec<f32>, TrainError> {
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() != expected * 4 {
        return Err(TrainError::BadFile {
            path: path.to_path_buf(),
            message: format!(
                "holds {} bytes, expected {} float32 values ({} bytes)",
                bytes.len(),
                expected,
                expected * 4
            ),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_seeded_and_bounded_like_pytorch() {
        let a = SeedParams::init(1);
        assert_eq!(a, SeedParams::init(1));
        assert_ne!(a, SeedParams::init(2));
        for t in &a.tensors {
            assert_eq!(t.values.len(), t.shape.iter().product::<usize>());
        }
        let fc1 = a
            .get("fc1.weight")
            .map(|t| &t.values)
            .cloned()
            .unwrap_or_default();
        let bound = 1.0 / 800f32.sqrt();
        let max = fc1.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            max <= bound && max > 0.99 * bound,
            "max {max} bound {bound}"
        );
        // U(-b, b) has variance b²/3.
        let var = fc1.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / fc1.len() as f64;
        let want = (bound as f64).powi(2) / 3.0;
        assert!((var / want - 1.0).abs() < 0.02, "var {var} want {want}");
    }
}
