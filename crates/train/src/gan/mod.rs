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
//! near 1 on real and 0 on fake), mode collapse (generated digits varying far less than real
//! ones) and an oscillating game. It is a pipeline watch the training loop tells each step's
//! statistics.
//!
//! The parts: [`model`] (the two networks), [`config`] (weights, learning rates, presets),
//! [`trainer`] (one step and its statistics), [`watch`] (alarms from the statistics),
//! [`run`] (the loop over the data) and [`report`] (diagnostics CSV, phases table).

pub mod config;
pub mod model;
pub mod report;
pub mod run;
pub mod trainer;
pub mod watch;

pub use config::{GanConfig, GanLoss, GanOverrides, GanPreset};
pub use model::{Discriminator, Generator, mean_softplus};
pub use run::{GanStep, run_gan};
pub use trainer::{GanStats, GanTrainer, real_batch};
pub use watch::GanWatch;

/// Size of the generator's Gaussian code.
pub const Z_DIM: usize = 64;
/// The loss terms, in order: instrument names of the frames.
pub const TERMS: [&str; 3] = ["d_real", "d_fake", "g_adv"];
/// Layer names of each term's voices: the discriminator's for `d_real`/`d_fake`, the
/// generator's for `g_adv`.
pub const D_LAYERS: [&str; 3] = ["D.fc1", "D.fc2", "D.fc3"];
/// The generator's layer names.
pub const G_LAYERS: [&str; 3] = ["G.fc1", "G.fc2", "G.fc3"];
