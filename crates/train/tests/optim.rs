//! The fused in-place SGD against Burn's own `Sgd` (momentum 0 and 0.5, dampening 0): the same
//! bits over several steps, with NaN, infinities and signed zeros in the gradients, on
//! parameters of rank 1, 2 and 4, one of them without a gradient on some steps, and one big
//! enough (76,800) to be updated on two threads.

use burn::module::{Module, Param};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use gradtone_train::optim::FusedSgd;
use gradtone_train::rng::SplitMix64;

#[derive(Module, Debug)]
struct Net {
    w: Param<Tensor<2>>,
    b: Param<Tensor<1>>,
    k: Param<Tensor<4>>,
    big: Param<Tensor<2>>,
}

const BIG: [usize; 2] = [256, 300];

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| r.next_f64() as f32 - 0.5).collect()
}

fn param<const D: usize>(v: Vec<f32>, shape: [usize; D], d: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), d).require_grad())
}

fn net(d: &Device) -> Net {
    let mut w = seeded(12, 1);
    // Zeros of both signs, so the sign of a zero result is checked too.
    w[0] = 0.0;
    w[1] = -0.0;
    Net {
        w: param(w, [3, 4], d),
        b: param(seeded(5, 2), [5], d),
        k: param(seeded(2 * 3 * 2 * 2, 3), [2, 3, 2, 2], d),
        big: param(seeded(BIG[0] * BIG[1], 4), BIG, d),
    }
}

/// Step `s`'s gradients (on the inner device); `b` gets none on step 2.
fn grads(net: &Net, s: u64, d: &Device) -> GradientsParams {
    let inner = d.clone().inner();
    let mut g = GradientsParams::new();
    let mut w = seeded(12, 10 + s);
    w[0] = -0.0;
    w[1] = 0.0;
    if s == 3 {
        w[5] = f32::NAN;
        w[6] = f32::INFINITY;
        w[7] = f32::NEG_INFINITY;
    }
    g.register(
        net.w.id,
        Tensor::<2>::from_data(TensorData::new(w, [3, 4]), &inner),
    );
    if s != 2 {
        g.register(
            net.b.id,
            Tensor::<1>::from_data(TensorData::new(seeded(5, 20 + s), [5]), &inner),
        );
    }
    let k = Tensor::<4>::from_data(TensorData::new(seeded(24, 30 + s), [3, 2, 2, 2]), &inner);
    // A strided gradient (a transposed view), as a layer's backward can hand over.
    g.register(net.k.id, k.swap_dims(0, 1));
    let mut big = seeded(BIG[0] * BIG[1], 40 + s);
    big[BIG[0] * BIG[1] / 2] = f32::MIN_POSITIVE / 4.0; // subnormal, at the split
    g.register(
        net.big.id,
        Tensor::<2>::from_data(TensorData::new(big, BIG), &inner),
    );
    g
}

fn bits(net: &Net) -> Vec<u32> {
    let v = |t: Tensor<1>| {
        t.into_data()
            .try_to_vec::<f32>()
            .unwrap_or_else(|e| panic!("f32 data: {e:?}"))
    };
    [
        v(net.w.val().flatten(0, 1)),
        v(net.b.val()),
        v(net.k.val().flatten(0, 3)),
        v(net.big.val().flatten(0, 1)),
    ]
    .concat()
    .iter()
    .map(|x| x.to_bits())
    .collect()
}

#[test]
fn fused_sgd_equals_burns_bit_for_bit() {
    let d = Device::flex().autodiff();
    for momentum in [0.0, 0.5, 0.9] {
        let mut burn = match momentum {
            0.0 => SgdConfig::new().init(),
            m => SgdConfig::new()
                .with_momentum(Some(
                    MomentumConfig::new().with_momentum(m).with_dampening(0.0),
                ))
                .init(),
        };
        let mut fused = FusedSgd::new(momentum);
        let (mut a, mut b) = (net(&d), net(&d));
        for s in 0..6 {
            let lr = [0.01, 0.1, 1.0, 0.3, 0.07, 0.01][s as usize];
            let (ga, gb) = (grads(&a, s, &d), grads(&b, s, &d));
            a = burn.step(lr, a, ga);
            b = fused.step(lr, b, gb);
            assert_eq!(
                bits(&a),
                bits(&b),
                "momentum {momentum}, step {s}: parameters differ"
            );
            assert!(
                b.w.val().is_require_grad(),
                "the update keeps parameters tracked"
            );
        }
    }
}
