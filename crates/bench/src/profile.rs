//! Where a training step's time goes: each part of the seed network's step timed alone, forward
//! and forward + backward, on the same device and batch size as a real step.
//!
//! Parts are timed in isolation (their own small graph: the input of a middle layer is a
//! tracked leaf, so its input gradient is computed as in the whole network), each as the
//! median of `reps` runs after a warm-up. The parts add up to roughly a whole step; what they
//! do not cover (graph bookkeeping, the loss) shows as the difference.

use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Int, Tensor, TensorData};
use gradtone_mnist::{Dataset, IMAGE_LEN};
use gradtone_train::optim::FusedSgd;
use gradtone_train::rng::SplitMix64;
use gradtone_train::{Optim, SeedNet, SeedParams, Trainer};

/// One timed part of a step.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// What was timed, e.g. `conv2 (20→50, 5×5)`.
    pub name: &'static str,
    /// Median ms of the forward pass alone (0 for parts without one).
    pub forward_ms: f64,
    /// Median ms of the backward pass (forward + backward − forward).
    pub backward_ms: f64,
}

/// A profile of one batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Batch size.
    pub batch: usize,
    /// Median ms of a whole training step (`Trainer::step`, norms read back).
    pub step_ms: f64,
    /// The parts, in step order.
    pub parts: Vec<Part>,
}

impl Profile {
    /// The profile in words and a markdown table: the whole step, the parts' sum, and each
    /// part's forward and backward time and share of the sum. Starts with a blank line.
    pub fn report(&self) -> String {
        let sum: f64 = self
            .parts
            .iter()
            .map(|x| x.forward_ms + x.backward_ms)
            .sum();
        let mut out = format!(
            "\nbatch {}: whole step {:.2} ms; parts timed alone add up to {:.2} ms\n",
            self.batch, self.step_ms, sum
        );
        out.push_str(
            "| part | forward ms | backward ms | share of the parts |\n|---|---:|---:|---:|\n",
        );
        for part in &self.parts {
            let t = part.forward_ms + part.backward_ms;
            out.push_str(&format!(
                "| {} | {:.3} | {:.3} | {:.1} % |\n",
                part.name,
                part.forward_ms,
                part.backward_ms,
                100.0 * t / sum.max(1e-12)
            ));
        }
        out
    }
}

/// Reads `t` back to the host, as the trainer reads its norms: the sync that ends a timed pass.
fn read_back<const D: usize>(t: Tensor<D>) {
    // What is read is not looked at: only that the device finished the work.
    let _ = t.into_data().try_into_vec::<f32>();
}

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: first-touch allocations, thread pool start
    let mut v: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    gradtone_frame::stats::median(&mut v).unwrap_or(f64::NAN)
}

/// A tracked leaf of `shape` with seeded values (a middle layer's input).
fn leaf<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let mut r = SplitMix64::new(n as u64);
    let v: Vec<f32> = (0..n).map(|_| r.next_f64() as f32 - 0.5).collect();
    Tensor::<D>::from_data(TensorData::new(v, shape), device).require_grad()
}

/// Times the forward pass alone (`fwd`, on the inner backend: no graph is recorded, so no op
/// state is left behind unconsumed) and forward + backward (`f` on the autodiff backend; the
/// scalar it returns is what `backward` starts from), each on fresh tensors every run.
fn fwd_bwd(
    name: &'static str,
    reps: usize,
    mut fwd: impl FnMut() -> Tensor<1>,
    mut f: impl FnMut() -> Tensor<1>,
) -> Part {
    let forward_ms = median_ms(reps, || {
        read_back(fwd());
    });
    let total = median_ms(reps, || {
        let y = f();
        let g = y.backward();
        drop(g);
    });
    Part {
        name,
        forward_ms,
        backward_ms: (total - forward_ms).max(0.0),
    }
}

/// Profiles one step of the seed network at `batch` on `device`, `reps` runs per part.
pub fn profile(batch: usize, reps: usize, data: &Dataset, device: &Device) -> Profile {
    let ad = device.clone().autodiff();
    let params = SeedParams::init(1);
    let net = SeedNet::from_params(&params, &ad);
    let n = batch;
    let idx: Vec<usize> = (0..n).map(|i| i % data.len().max(1)).collect();
    let (mut xv, mut yv) = (Vec::with_capacity(n * IMAGE_LEN), Vec::new());
    data.gather_normalised(&idx, &mut xv, &mut yv);
    let x = SeedNet::input(&xv, &ad);
    let y = Tensor::<1, Int>::from_data(TensorData::new(yv.clone(), [n]), &ad);

    let mut parts = Vec::new();
    parts.push(Part {
        name: "data: gather, normalise, conv1 patches",
        forward_ms: median_ms(reps, || {
            let (mut a, mut b) = (Vec::with_capacity(n * IMAGE_LEN), Vec::new());
            data.gather_normalised(&idx, &mut a, &mut b);
            drop(SeedNet::input(&a, &ad));
        }),
        backward_ms: 0.0,
    });
    // The same weights on the inner backend, for the forward passes alone.
    let plain = net.valid();
    let (xi, yi) = (x.clone().inner(), y.clone().inner());
    parts.push(fwd_bwd(
        "conv1 1→20 5×5 → max-pool 2 → relu (fused, host patches)",
        reps,
        || plain.conv1().forward(xi.clone()).sum(),
        || net.conv1().forward(x.clone()).sum(),
    ));
    let a2 = leaf([n, 20, 12, 12], &ad);
    let a2i = a2.clone().inner();
    parts.push(fwd_bwd(
        "conv2 20→50 5×5 → max-pool 2 → relu (fused)",
        reps,
        || plain.conv2().forward(a2i.clone()).sum(),
        || net.conv2().forward(a2.clone()).sum(),
    ));
    let a4 = leaf([n, 800], &ad);
    let a4i = a4.clone().inner();
    parts.push(fwd_bwd(
        "fc1 800→500 + relu",
        reps,
        || relu(plain.fc1().forward(a4i.clone())).sum(),
        || relu(net.fc1().forward(a4.clone())).sum(),
    ));
    let a5 = leaf([n, 500], &ad);
    let a5i = a5.clone().inner();
    parts.push(fwd_bwd(
        "fc2 500→10 + log-softmax + NLL",
        reps,
        || SeedNet::nll_loss(log_softmax(plain.fc2().forward(a5i.clone()), 1), yi.clone()),
        || SeedNet::nll_loss(log_softmax(net.fc2().forward(a5.clone()), 1), y.clone()),
    ));

    // Norms and the optimiser need a whole step's gradients.
    let grads = SeedNet::nll_loss(net.forward(x.clone()), y.clone()).backward();
    parts.push(Part {
        name: "4 gradient norms, read back",
        forward_ms: median_ms(reps, || {
            read_back(net.grad_sq_sums(&grads, false));
        }),
        backward_ms: 0.0,
    });
    let grads = GradientsParams::from_grads(grads, &net);
    let mut optim = FusedSgd::new(0.5); // what `Optim::Sgd` steps with: fused, in place
    let mut model = Some(net.clone());
    parts.push(Part {
        name: "optimiser step (fused SGD, momentum 0.5)",
        forward_ms: median_ms(reps, || {
            let m = model
                .take()
                .unwrap_or_else(|| unreachable!("model present"));
            // The same gradients each time: the update's cost does not depend on their values.
            let g = grads_clone(&grads, &m);
            model = Some(optim.step(0.01, m, g));
        }),
        backward_ms: 0.0,
    });

    let mut trainer = Trainer::new(&params, Optim::Sgd { momentum: 0.5 }, 0.01, device);
    let step_ms = median_ms(reps, || {
        trainer.step(xv.clone(), yv.clone(), false);
    });
    Profile {
        batch,
        step_ms,
        parts,
    }
}

/// A copy of `grads` for `module`'s parameters (the optimiser consumes its input).
fn grads_clone(grads: &GradientsParams, module: &SeedNet) -> GradientsParams {
    struct Copy<'a> {
        from: &'a GradientsParams,
        to: GradientsParams,
    }
    impl burn::module::ModuleVisitor for Copy<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if let Some(g) = self.from.get::<D>(param.id) {
                self.to.register(param.id, g);
            }
        }
    }
    let mut v = Copy {
        from: grads,
        to: GradientsParams::new(),
    };
    module.visit(&mut v);
    v.to
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_gives_each_part_its_share() {
        let p = Profile {
            batch: 10,
            step_ms: 4.0,
            parts: vec![
                Part {
                    name: "conv1",
                    forward_ms: 1.0,
                    backward_ms: 2.0,
                },
                Part {
                    name: "optimiser",
                    forward_ms: 0.0,
                    backward_ms: 1.0,
                },
            ],
        };
        assert_eq!(
            p.report(),
            "\nbatch 10: whole step 4.00 ms; parts timed alone add up to 4.00 ms\n\
             | part | forward ms | backward ms | share of the parts |\n|---|---:|---:|---:|\n\
             | conv1 | 1.000 | 2.000 | 75.0 % |\n\
             | optimiser | 0.000 | 1.000 | 25.0 % |\n"
        );
    }
}
