//! The GAN's per-term gradient norms against an independent f64 backprop written out by hand
//! on the host: every term and layer.

use burn::nn::Linear;
use burn::tensor::Tensor;
use gradtone_mnist::IMAGE_LEN;
use gradtone_train::gan::{D_LAYERS, G_LAYERS, GanConfig, GanLoss, GanTrainer};
use gradtone_train::rng::SplitMix64;

fn read_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec()
        .expect("a float tensor reads back as f32")
}

/// A linear layer on the host, in f64: `y = x·W + b`, `W` `[in, out]` as Burn stores it.
struct Host {
    w: Vec<f64>,
    b: Vec<f64>,
    i: usize,
    o: usize,
}

fn host(l: &Linear) -> Host {
    let [i, o] = l.weight.val().dims();
    let get = |t: Tensor<1>| -> Vec<f64> { read_f32(t).into_iter().map(f64::from).collect() };
    Host {
        w: get(l.weight.val().flatten(0, 1)),
        b: get(l.bias.as_ref().map(|b| b.val()).expect("bias")),
        i,
        o,
    }
}

impl Host {
    fn fwd(&self, x: &[f64]) -> Vec<f64> {
        let n = x.len() / self.i;
        let mut y = vec![0.0; n * self.o];
        for r in 0..n {
            for k in 0..self.i {
                let xv = x[r * self.i + k];
                for c in 0..self.o {
                    y[r * self.o + c] += xv * self.w[k * self.o + c];
                }
            }
            for c in 0..self.o {
                y[r * self.o + c] += self.b[c];
            }
        }
        y
    }

    /// `(dW, dx)` for input `x` and output gradient `dy`.
    fn bwd(&self, x: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let n = x.len() / self.i;
        let (mut dw, mut dx) = (vec![0.0; self.i * self.o], vec![0.0; n * self.i]);
        for r in 0..n {
            for k in 0..self.i {
                for c in 0..self.o {
                    let g = dy[r * self.o + c];
                    dw[k * self.o + c] += x[r * self.i + k] * g;
                    dx[r * self.i + k] += self.w[k * self.o + c] * g;
                }
            }
        }
        (dw, dx)
    }
}

fn leaky(a: &[f64]) -> Vec<f64> {
    a.iter()
        .map(|&v| if v > 0.0 { v } else { 0.2 * v })
        .collect()
}

fn leaky_back(a: &[f64], dh: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(dh)
        .map(|(&v, &g)| if v > 0.0 { g } else { 0.2 * g })
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Host backprop of an MLP of three layers with LeakyReLU between: weight gradients and
/// the input gradient, given the output gradient `dl` from `out_grad(outputs)`.
fn mlp_grads(
    layers: &[Host; 3],
    x: &[f64],
    out_grad: impl Fn(&[f64]) -> Vec<f64>,
) -> ([Vec<f64>; 3], Vec<f64>, Vec<f64>) {
    let a1 = layers[0].fwd(x);
    let h1 = leaky(&a1);
    let a2 = layers[1].fwd(&h1);
    let h2 = leaky(&a2);
    let out = layers[2].fwd(&h2);
    let dout = out_grad(&out);
    let (dw3, dh2) = layers[2].bwd(&h2, &dout);
    let (dw2, dh1) = layers[1].bwd(&h1, &leaky_back(&a2, &dh2));
    let (dw1, dx) = layers[0].bwd(x, &leaky_back(&a1, &dh1));
    ([dw1, dw2, dw3], dx, out)
}

/// Each term's per-layer gradient norms against an independent f64 backprop on the host.
#[test]
fn per_term_norms_match_host_backprop() {
    let device = gradtone_train::default_device();
    let cfg = GanConfig {
        batch: 8,
        steps: 1,
        // D frozen (lr 0), so the generator's term sees the same D as the host.
        d_lr: 0.0,
        g_lr: 1e-3,
        beta1: 0.5,
        loss: GanLoss::NonSaturating,
        weights: [0.7, 1.3, 2.0],
        seed: 9,
    };
    let mut t = GanTrainer::new(&cfg, &device);
    let n = 8;
    let mut r = SplitMix64::new(4);
    let x: Vec<f32> = (0..n * IMAGE_LEN)
        .map(|_| (r.next_f64() * 2.0 - 1.0) as f32)
        .collect();
    let z = t.codes(n);
    let d = t.discriminator().layers();
    let g = t.generator().layers();
    let dh = d.map(host);
    let gh = g.map(host);
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let z64: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    let [w_real, w_fake, w_adv] = cfg.weights;
    let nf = n as f64;
    // d_real = w·mean softplus(−l): ∂/∂l = −w·(1 − σ(l))/n.
    let (real, _, _) = mlp_grads(&dh, &x64, |l| {
        l.iter().map(|&v| -w_real * (1.0 - sig(v)) / nf).collect()
    });
    // G forward on the host (the fake images are D's input).
    let b1 = gh[0].fwd(&z64);
    let k1 = leaky(&b1);
    let b2 = gh[1].fwd(&k1);
    let k2 = leaky(&b2);
    let img: Vec<f64> = gh[2].fwd(&k2).iter().map(|v| v.tanh()).collect();
    // d_fake = w·mean softplus(l): ∂/∂l = w·σ(l)/n.
    let (fake, _, _) = mlp_grads(&dh, &img, |l| {
        l.iter().map(|&v| w_fake * sig(v) / nf).collect()
    });
    // g_adv = w·mean softplus(−l) through D into G.
    let (_, dimg, _) = mlp_grads(&dh, &img, |l| {
        l.iter().map(|&v| -w_adv * (1.0 - sig(v)) / nf).collect()
    });
    let db3: Vec<f64> = dimg
        .iter()
        .zip(&img)
        .map(|(g, y)| g * (1.0 - y * y))
        .collect();
    let (gw3, dk2) = gh[2].bwd(&k2, &db3);
    let (gw2, dk1) = gh[1].bwd(&k1, &leaky_back(&b2, &dk2));
    let (gw1, _) = gh[0].bwd(&z64, &leaky_back(&b1, &dk1));
    let generator = [gw1, gw2, gw3];

    let s = t.step(x, z);
    let check = |what: &str, got: f64, want: f64| {
        let e = (got - want).abs() / want.abs().max(1e-30);
        println!("{what}: burn {got:.8e} host {want:.8e} rel {e:.1e}");
        assert!(e < 1e-4, "{what}: rel err {e:e}");
    };
    for i in 0..3 {
        check(
            &format!("d_real/{}", D_LAYERS[i]),
            s.norms[0][i],
            norm(&real[i]),
        );
        check(
            &format!("d_fake/{}", D_LAYERS[i]),
            s.norms[1][i],
            norm(&fake[i]),
        );
        let sum: Vec<f64> = real[i].iter().zip(&fake[i]).map(|(a, b)| a + b).collect();
        check(
            &format!("d_total/{}", D_LAYERS[i]),
            s.d_total[i],
            norm(&sum),
        );
        check(
            &format!("g_adv/{}", G_LAYERS[i]),
            s.norms[2][i],
            norm(&generator[i]),
        );
    }
    // The terms differ: the check can tell them apart.
    assert!((s.norms[0][0] / s.norms[1][0] - 1.0).abs() > 1e-3);
    assert!(s.losses.iter().all(|l| l.is_finite() && *l > 0.0));
    assert!((0.0..=1.0).contains(&s.p_real) && (0.0..=1.0).contains(&s.p_fake));
}
