//! Per-loss gradient norms of the two-loss classifier (`NLL + λ·Σ‖W‖²`), checked against
//! independent computations: the NLL term against a plain single-loss trainer (its own model and
//! backward), the L2 term against `2λ‖W‖` computed on the host from the parameters, and the total
//! against one backward of the summed loss through the public model API.

use burn::tensor::{Int, Tensor, TensorData};
use gradtone_train::model::LAYERS;
use gradtone_train::rng::SplitMix64;
use gradtone_train::{Optim, SeedNet, SeedParams, Trainer, default_device};

fn batch(seed: u64, n: usize) -> (Vec<f32>, Vec<i64>) {
    let mut r = SplitMix64::new(seed);
    let x = (0..n * 784)
        .map(|_| (r.next_f64() * 3.0 - 0.5) as f32)
        .collect();
    let y = (0..n).map(|_| r.below(10) as i64).collect();
    (x, y)
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

#[test]
fn per_term_norms_match_independent_computations() {
    let device = default_device();
    let params = SeedParams::init(7);
    let lambda = 0.05;
    let (x, y) = batch(3, 8);

    let mut two =
        Trainer::new(&params, Optim::Sgd { momentum: 0.5 }, 0.01, &device).with_l2(lambda);
    let s = two.step(x.clone(), y.clone(), false);
    assert_eq!(s.terms.len(), 2);
    let (nll, l2) = (&s.terms[0], &s.terms[1]);
    assert_eq!((nll.name, l2.name), ("nll", "l2"));

    // 1. The NLL term alone: a plain trainer with its own model and backward.
    let mut plain = Trainer::new(&params, Optim::Sgd { momentum: 0.5 }, 0.01, &device);
    let p = plain.step(x.clone(), y.clone(), false);
    assert!(p.terms.is_empty());
    assert!(rel(nll.loss, p.loss) < 1e-6, "{} vs {}", nll.loss, p.loss);
    for (i, layer) in LAYERS.iter().enumerate() {
        let e = rel(nll.weight_norms[i], p.weight_norms[i]);
        assert!(e < 1e-4, "{layer} nll norm rel err {e:e}");
    }

    // 2. The L2 term: ∇(λ‖W‖²) = 2λW, so its norm is 2λ‖W‖, and its value λΣ‖W‖², in f64
    // from the parameters (PyTorch layout; a norm does not care about Burn's transpose).
    let mut pen = 0.0;
    for (i, layer) in LAYERS.iter().enumerate() {
        let w = params.get(&format!("{layer}.weight")).expect("weight");
        let sq: f64 = w.values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        pen += lambda * sq;
        let e = rel(l2.weight_norms[i], 2.0 * lambda * sq.sqrt());
        assert!(e < 1e-4, "{layer} l2 norm rel err {e:e}");
    }
    assert!(rel(l2.loss, pen) < 1e-4, "{} vs {pen}", l2.loss);
    assert!(rel(s.loss, p.loss + pen) < 1e-5);

    // 3. The total: one backward of NLL + λ·penalty, through the public model API.
    let ad = device.clone().autodiff();
    let model = SeedNet::from_params(&params, &ad);
    let xt = SeedNet::input(&x, &ad);
    let yt = Tensor::<1, Int>::from_data(TensorData::new(y, [8]), &ad);
    let loss = SeedNet::nll_loss(model.forward(xt), yt) + model.weight_sq_sum().mul_scalar(lambda);
    let grads = loss.backward();
    let sq: Vec<f32> = model
        .grad_sq_sums(&grads, false)
        .into_data()
        .try_into_vec()
        .expect("f32");
    for (i, layer) in LAYERS.iter().enumerate() {
        let want = f64::from(sq[i]).sqrt();
        let e = rel(s.weight_norms[i], want);
        assert!(e < 1e-4, "{layer} total norm rel err {e:e}");
        // The triangle bound: the total is at most the sum of the terms' norms.
        assert!(want < nll.weight_norms[i] + l2.weight_norms[i] + 1e-9);
    }

    // The regulariser matters at this λ (the check can fail): fc1's penalty gradient is a
    // sizeable fraction of the NLL's.
    assert!(l2.weight_norms[2] > 0.01 * nll.weight_norms[2]);
}

/// The update uses the summed gradient: two steps of the two-loss trainer end where a
/// single-backward computation says (checked via the second step's NLL, which depends on the
/// first update), and λ visibly changes the trajectory.
#[test]
fn the_update_follows_the_total_gradient() {
    let device = default_device();
    let params = SeedParams::init(11);
    let (x1, y1) = batch(5, 8);
    let (x2, y2) = batch(6, 8);
    let run = |lambda: f64| {
        let mut t =
            Trainer::new(&params, Optim::Sgd { momentum: 0.0 }, 0.1, &device).with_l2(lambda);
        t.step(x1.clone(), y1.clone(), false);
        t.step(x2.clone(), y2.clone(), false)
    };
    let a = run(1e-9);
    let b = run(0.5);
    let nll = |s: &gradtone_train::StepStats| s.terms[0].loss;
    assert!(
        rel(nll(&a), nll(&b)) > 1e-4,
        "λ changes the second step's NLL"
    );
    // With momentum 0 and lr 0.1, a huge λ shrinks the weights by (1 − 2·0.1·λ) per step
    // beside the NLL's push: the second step's penalty is well below the first's.
    let mut t = Trainer::new(&params, Optim::Sgd { momentum: 0.0 }, 0.1, &device).with_l2(2.0);
    let p1 = t.step(x1.clone(), y1.clone(), false).terms[1].loss;
    let p2 = t.step(x2.clone(), y2.clone(), false).terms[1].loss;
    assert!(p2 < 0.5 * p1, "penalty {p1} → {p2}");
}
