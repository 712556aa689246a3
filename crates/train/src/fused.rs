//! The seed network's conv → max-pool 2×2 → relu block as one Burn op with its own backward,
//! registered through Burn's backend extension for `flex` and its autodiff.
//!
//! Why: Burn `flex` runs the three ops separately (one small GEMM per image, a generic pool
//! with i64 indices, a convolution-shaped weight gradient, a mostly single-threaded
//! `conv_transpose2d` for the input gradient). Fused, each half of the batch runs on its own
//! thread, a few images at a time: the forward is im2col + GEMM + a branch-free pool with a
//! `u8` argmax kept for the backward; the backward is unpool (with the bias gradient) → the
//! patches rebuilt → GEMMs for the weight and input gradients → col2im (the private `kernels` module, the
//! crate's only `unsafe` code).
//!
//! The op equals `relu(max_pool2d(conv2d(x, W) + b, 2, 2))` of Burn (and PyTorch): ties keep
//! the first maximum, NaN wins, relu keeps NaN. Its tests check the output and all three
//! gradients against Burn's own ops.
#![forbid(unsafe_code)]

use std::sync::Arc;

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};

use crate::kernels::{self, Cols, Geom, Needs};

/// The fused block as a backend extension: implemented for `Flex` and `Autodiff<Flex>`;
/// [`conv_pool_relu`] and [`patch_conv_pool_relu`] are the tensor-level entry points.
#[backend_extension(Flex, Autodiff)]
pub trait ConvPoolBackend: Backend {
    /// `relu(max_pool_2×2(conv2d(x, weight) + bias))`: `x` `[n, c, h, w]`, `weight`
    /// `[o, c, k, k]`, `bias` `[o]` → `[n, o, (h−k+1)/2, (w−k+1)/2]` (valid, stride 1).
    fn conv_pool_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The same block from host-built patches `[kk, n·side²]` (see
    /// [`crate::model::patches`]), `weight` `[o, kk]`: → `[n, o, side/2, side/2]`.
    fn patch_conv_pool_relu(
        patches: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        side: usize,
    ) -> FloatTensor<Self>;
}

/// `relu(max_pool2d(conv2d(x, weight) + bias, 2, 2))` as one op (see the module docs).
///
/// # Panics
/// If the shapes do not fit together (`x` `[n, c, h, w]`, `weight` `[o, c, k, k]` with
/// `k ≤ h, w`, `bias` `[o]`) or the tensors are not `f32` on the `flex` device.
pub fn conv_pool_relu(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvPoolBackend>::conv_pool_relu(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// The fused block from host-built patches `[kk, n·side²]` and a `[o, kk]` weight.
///
/// # Panics
/// As [`conv_pool_relu`], for patches whose column count is not a multiple of `side²`.
pub fn patch_conv_pool_relu(
    patches: Tensor<2>,
    weight: Tensor<2>,
    bias: Tensor<1>,
    side: usize,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvPoolBackend>::patch_conv_pool_relu(
        patches.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        side,
    ))
}

/// The geometry of a call, checked.
fn image_geom(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> Geom {
    let (xs, ws) = (x.shape(), w.shape());
    assert!(
        xs.num_dims() == 4 && ws.num_dims() == 4 && b.shape().num_dims() == 1,
        "conv_pool_relu: x must be [n, c, h, w], weight [o, c, k, k], bias [o]"
    );
    let ([n, c, h, wd], [o, wc, k, k2]) =
        ([xs[0], xs[1], xs[2], xs[3]], [ws[0], ws[1], ws[2], ws[3]]);
    assert!(
        wc == c && k == k2 && k >= 1 && k <= h && k <= wd && b.shape()[0] == o,
        "conv_pool_relu: shapes x {xs:?}, weight {ws:?}, bias {:?} do not fit",
        b.shape()
    );
    Geom::image(n, c, h, wd, o, k)
}

fn patch_geom(p: &FlexTensor, w: &FlexTensor, b: &FlexTensor, side: usize) -> Geom {
    let (ps, ws) = (p.shape(), w.shape());
    assert!(
        ps.num_dims() == 2 && ws.num_dims() == 2 && b.shape().num_dims() == 1,
        "patch_conv_pool_relu: patches must be [kk, n·side²], weight [o, kk], bias [o]"
    );
    let l = side * side;
    assert!(
        l > 0 && ps[1] % l == 0 && ws[1] == ps[0] && b.shape()[0] == ws[0],
        "patch_conv_pool_relu: shapes patches {ps:?}, weight {ws:?}, bias {:?}, side {side} do not fit",
        b.shape()
    );
    Geom::patches(ps[1] / l, ps[0], side, ws[0])
}

/// A contiguous `f32` copy-free view where possible.
/// `t` as a contiguous `f32` tensor: itself when it already is, else a copy. The fused ops
/// (this one and [`crate::optim`]'s SGD) are `f32` only.
pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "gradtone's fused ops are f32 only");
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The elements of a tensor made contiguous by [`contiguous`].
pub(crate) fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .unwrap_or_else(|| unreachable!("made contiguous f32 by `contiguous`"))
}

fn flex(v: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

/// What the backward needs: the input (images, whose patches the backward rebuilds a chunk at
/// a time, or the host patches), the weight, the argmax and the geometry.
#[derive(Clone)]
struct State {
    geom: Geom,
    input: FlexTensor,
    weight: FlexTensor,
    argmax: Arc<Vec<u8>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvPoolState")
            .field("geom", &self.geom)
            .finish_non_exhaustive()
    }
}

/// Forward on flex primitives; the state is built only when a backward will need it.
fn forward(
    geom: Geom,
    input: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
    keep: bool,
) -> (FlexTensor, Option<State>) {
    let (input, weight, bias) = (contiguous(input), contiguous(weight), contiguous(bias));
    let f = kernels::forward(&geom, f32s(&input), f32s(&weight), f32s(&bias));
    let out = flex(f.out, [geom.n, geom.o, geom.ph(), geom.pw()]);
    let state = keep.then(|| State {
        geom,
        input,
        weight,
        argmax: Arc::new(f.argmax),
    });
    (out, state)
}

impl ConvPoolBackend for Flex {
    fn conv_pool_relu(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let geom = image_geom(&x, &weight, &bias);
        forward(geom, x, weight, bias, false).0
    }

    fn patch_conv_pool_relu(
        patches: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        side: usize,
    ) -> FlexTensor {
        let geom = patch_geom(&patches, &weight, &bias, side);
        forward(geom, patches, weight, bias, false).0
    }
}

/// The backward step: unpool → dW, db, dX (see [`kernels::backward`]).
#[derive(Debug)]
struct ConvPoolBackward;

impl Backward<Flex, 3> for ConvPoolBackward {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let g = s.geom;
        let cols = match g.image {
            Some(_) => Cols::Images(f32s(&s.input)),
            None => Cols::Patches(f32s(&s.input)),
        };
        let needs = Needs {
            x: node_x.is_some(),
            w: node_w.is_some(),
            b: node_b.is_some(),
        };
        let r = kernels::backward(&g, cols, f32s(&s.weight), &s.argmax, f32s(&grad), needs);
        let reshape = |v: Vec<f32>, like: &FlexTensor| {
            FlexTensor::from_data(TensorData::new(v, like.shape()))
        };
        if let (Some(node), Some(dx)) = (node_x, r.x) {
            let shape = s.input.shape().to_vec();
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dx, shape)));
        }
        if let (Some(node), Some(dw)) = (node_w, r.w) {
            grads.register::<Flex>(node.id, reshape(dw, &s.weight));
        }
        if let (Some(node), Some(db)) = (node_b, r.b) {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(db, [g.o])));
        }
    }
}

/// Records the op on the autodiff graph (or not, when no input is tracked).
fn tracked<C: CheckpointStrategy>(
    input: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    bias: FloatTensor<Autodiff<Flex, C>>,
    geom: impl FnOnce(&FlexTensor, &FlexTensor, &FlexTensor) -> Geom,
) -> FloatTensor<Autodiff<Flex, C>> {
    let ((xp, xg), (wp, wg), (bp, bg)) =
        (input.into_parts(), weight.into_parts(), bias.into_parts());
    let geom = geom(&xp, &wp, &bp);
    match ConvPoolBackward
        .prepare::<C>([xg, wg, bg])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (out, state) = forward(geom, xp, wp, bp, true);
            let state = state.unwrap_or_else(|| unreachable!("kept for the backward"));
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(geom, xp, wp, bp, false).0),
    }
}

impl<C: CheckpointStrategy> ConvPoolBackend for Autodiff<Flex, C> {
    fn conv_pool_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        tracked::<C>(x, weight, bias, image_geom)
    }

    fn patch_conv_pool_relu(
        patches: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        side: usize,
    ) -> FloatTensor<Self> {
        tracked::<C>(patches, weight, bias, |p, w, b| patch_geom(p, w, b, side))
    }
}
