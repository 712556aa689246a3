//! The fused conv → max-pool 2×2 → relu op against Burn's own `Conv2d` + `MaxPool2d` + `relu`:
//! forward and all three gradients, on random data, on exact ties (blank input, as MNIST's
//! background gives) and with NaN.

use burn::module::Param;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use gradtone_train::fused::{conv_pool_relu, patch_conv_pool_relu};
use gradtone_train::rng::SplitMix64;

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| r.next_f64() as f32 - 0.5).collect()
}

fn t<const D: usize>(v: &[f32], shape: [usize; D], d: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), d)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap_or_else(|e| panic!("f32 data: {e:?}"))
}

/// Element-wise equal within 1e-4 (relative to the magnitude), NaN where the reference is NaN.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: {g}, want NaN");
        } else {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g}, want {w}"
            );
        }
    }
}

struct Case {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    xs: [usize; 4],
    o: usize,
    k: usize,
}

/// (output, dx, dw, db) of Burn's three ops, or of the fused op, for `sum(out · gy)`.
fn run(c: &Case, fused: bool) -> [Vec<f32>; 4] {
    let d = Device::flex().autodiff();
    let [n, ch, h, w] = c.xs;
    let x = t(&c.x, c.xs, &d).require_grad();
    let wt = t(&c.w, [c.o, ch, c.k, c.k], &d).require_grad();
    let bt = t(&c.b, [c.o], &d).require_grad();
    let y = if fused {
        conv_pool_relu(x.clone(), wt.clone(), bt.clone())
    } else {
        let mut conv = Conv2dConfig::new([ch, c.o], [c.k, c.k]).init(&d);
        conv.weight = Param::from_tensor(wt.clone());
        conv.bias = Some(Param::from_tensor(bt.clone()));
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        relu(pool.forward(conv.forward(x.clone())))
    };
    let (ph, pw) = ((h + 1 - c.k) / 2, (w + 1 - c.k) / 2);
    assert_eq!(y.dims(), [n, c.o, ph, pw]);
    let gy = t(&seeded(n * c.o * ph * pw, 99), [n, c.o, ph, pw], &d);
    let grads = (y.clone() * gy).sum().backward();
    let g = |p: &Tensor<1>| p.grad(&grads).map(values).unwrap_or_default();
    let gx = x.grad(&grads).map(values).unwrap_or_default();
    let gw = wt.grad(&grads).map(values).unwrap_or_default();
    [values(y), gx, gw, g(&bt)]
}

fn check(c: &Case) {
    let want = run(c, false);
    let got = run(c, true);
    for (i, what) in ["output", "dx", "dweight", "dbias"].iter().enumerate() {
        assert!(!want[i].is_empty(), "{what}: reference has no gradient");
        assert_close(&got[i], &want[i], what);
    }
}

fn random(n: usize, ch: usize, side: usize, o: usize, k: usize, seed: u64) -> Case {
    Case {
        x: seeded(n * ch * side * side, seed),
        w: seeded(o * ch * k * k, seed + 1),
        b: seeded(o, seed + 2),
        xs: [n, ch, side, side],
        o,
        k,
    }
}

#[test]
fn matches_burn_on_random_data() {
    // Odd batch (uneven split), odd conv output (7: the last row and column are dropped).
    check(&random(3, 2, 9, 4, 3, 1));
    // conv2's shape.
    check(&random(4, 20, 12, 50, 5, 2));
    // One image: one half of the split is empty.
    check(&random(1, 3, 8, 5, 3, 3));
    // Several cache chunks per half (19 + 18 images), the last ones partial.
    check(&random(37, 20, 12, 50, 5, 4));
}

#[test]
fn ties_break_on_the_first_maximum() {
    // A blank image with a few pixels: most windows see the bias four times, an exact tie;
    // the gradient must go to the first of them, as Burn's and PyTorch's pools send it.
    let mut c = random(2, 1, 12, 6, 5, 4);
    c.x.iter_mut().enumerate().for_each(|(i, v)| {
        if i % 37 != 0 {
            *v = 0.0;
        }
    });
    c.b.iter_mut().for_each(|b| *b = b.abs() + 0.1); // positive: the ties pass relu
    check(&c);
}

#[test]
fn nan_wins_the_pool() {
    // Channel 0 is NaN everywhere (the last NaN of each window wins); one input pixel is NaN
    // too, which spreads NaN over the windows that see it.
    let mut c = random(2, 2, 10, 3, 3, 5);
    c.b[0] = f32::NAN;
    let want = run(&c, false);
    let got = run(&c, true);
    assert!(want[0].iter().any(|v| v.is_nan()));
    for (i, what) in ["output", "dx", "dweight", "dbias"].iter().enumerate() {
        assert_close(&got[i], &want[i], what);
    }
    c.x[7] = f32::NAN;
    check_nan_patterns(&c);
}

/// With NaN inputs only the NaN pattern and the finite values can be compared.
fn check_nan_patterns(c: &Case) {
    let want = run(c, false);
    let got = run(c, true);
    assert_close(&got[0], &want[0], "output with a NaN pixel");
    assert_close(&got[3], &want[3], "dbias with a NaN pixel");
}

#[test]
fn host_patches_match_conv1() {
    // conv1 from host-built patches (as the trainer feeds it) equals Burn's conv2d on images.
    let d = Device::flex().autodiff();
    let n = 19; // several cache chunks per half
    let images = seeded(n * 784, 6);
    let c = Case {
        x: images.clone(),
        w: seeded(20 * 25, 7),
        b: seeded(20, 8),
        xs: [n, 1, 28, 28],
        o: 20,
        k: 5,
    };
    let want = run(&c, false);
    let patches = t(&gradtone_train::model::patches(&images), [25, n * 576], &d);
    let wt = t(&c.w, [20, 25], &d).require_grad();
    let bt = t(&c.b, [20], &d).require_grad();
    let y = patch_conv_pool_relu(patches, wt.clone(), bt.clone(), 24);
    assert_eq!(y.dims(), [n, 20, 12, 12]);
    let gy = t(&seeded(n * 20 * 144, 99), [n, 20, 12, 12], &d);
    let grads = (y.clone() * gy).sum().backward();
    assert_close(&values(y), &want[0], "output");
    let gw = wt.grad(&grads).map(values).unwrap_or_default();
    let gb = bt.grad(&grads).map(values).unwrap_or_default();
    assert_close(&gw, &want[2], "dweight");
    assert_close(&gb, &want[3], "dbias");
}

#[test]
fn plain_flex_forward_matches_autodiff() {
    // Without autodiff (inference), the op runs on `Flex` directly.
    let c = random(2, 3, 10, 4, 3, 9);
    let d = Device::flex();
    let y = conv_pool_relu(
        t(&c.x, c.xs, &d),
        t(&c.w, [c.o, 3, 3, 3], &d),
        t(&c.b, [c.o], &d),
    );
    assert_close(&values(y), &run(&c, false)[0], "output");
}
