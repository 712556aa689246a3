//! Trains the 2019 seed CNN (Perone, "Listening to the neural network gradient norms during
//! training") on MNIST with [Burn](https://burn.dev), and emits one [`gradtone_frame::Frame`] per
//! step: the loss and the L2 norm of each layer's weight gradient, read after `backward` and
//! before the optimiser step, exactly as PyTorch's `layer.weight.grad.norm()`.
//!
//! The trainer is one source of frames among several; the sound side never depends on it.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

#[cfg(feature = "clap")]
pub mod args;
mod error;
pub mod experiments;
pub mod fused;
pub mod gan;
mod kernels;
pub mod model;
pub mod optim;
pub mod params;
pub mod preset;
pub mod reference;
pub mod rng;
pub mod summary;
pub mod sweep;
pub mod trainer;

pub use error::{ConfigError, TrainError};
pub use model::{LAYERS, SeedNet};
pub use params::SeedParams;
pub use preset::{OptimKind, Preset, RunOverrides};
pub use trainer::{
    BatchPlan, Optim, Readback, RunConfig, StepStats, TermStats, Trainer, batches, run,
};

/// A Burn compute device (re-exported so callers need not depend on Burn).
pub use burn::tensor::Device;

/// The default compute device: Burn's pure-Rust `flex` CPU backend.
pub fn default_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

// Compiles the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
