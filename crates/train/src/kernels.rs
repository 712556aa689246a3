//! CPU kernels of the fused `relu(max_pool_2×2(conv(x, W) + b))` block ([`crate::fused`]): the
//! trainer crate's only `unsafe` code (the calls into the `gemm` crate, the vector widths'
//! dispatch, and [`filled_in_two`]'s one `set_len`) lives here.
//!
//! Layouts (all `f32`, row-major):
//! - images `x`: NCHW `[n, c, h, w]`; weights `W`: `[o, kk]` with `kk = c·k·k` (PyTorch's
//!   `[o, c, k, k]` flattened); bias `[o]`;
//! - im2col patches ("cols"), one row per conv output pixel: `[n·l, kk]` (`l = oh·ow`), or the
//!   host-built transposed form `[kk, n·l]` ([`Cols::Patches`], conv1);
//! - conv output before pooling `y`: `[n·l, o]` (pixel-major, channels innermost);
//! - pooled output: NCHW `[n, o, ph, pw]`; argmax: `[n, ph, pw, o]` as `u8` (0..4 = position in
//!   the 2×2 window, row-major; [`DEAD`] where relu cut the gradient).
//!
//! Threads: every parallel step is one fixed 2-way split (by images, or by weight rows) run
//! through `rayon::join`, and `gemm` runs with `Parallelism::None` inside, so each output
//! element is computed by the same code in the same order whatever the thread count: results
//! are identical run to run and on 1 or 2 threads. Sums across images (bias and weight
//! gradients) run in one fixed order.

use std::mem::MaybeUninit;
use std::sync::Mutex;

use gemm::Parallelism;

/// Recycled `f32` buffers. The big per-step buffers (patches, conv outputs and their
/// gradients, megabytes each) come back warm instead of as fresh pages that the kernel must
/// fault in and zero on every step (a third of a step at batch 64 without this, `perf`).
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// Buffers kept at most (the most one step holds at once, with room to spare).
const POOL_MAX: usize = 12;

/// A buffer of `len` floats, recycled when one is free; returns to the pool on drop.
///
/// The vector keeps its full length in the pool and `len` says how much of it this use
/// sees, so a buffer is zero-filled only when it first grows, not each time a smaller
/// request had it before.
#[derive(Debug, Default)]
pub struct Buf {
    v: Vec<f32>,
    len: usize,
}

impl Buf {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let mut b = Self::any(len);
        b.fill(0.0);
        b
    }

    /// `len` floats of any value (a recycled buffer's old contents): for buffers the caller
    /// overwrites whole, so no pass is spent zeroing them.
    pub fn any(len: usize) -> Self {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // Best fit: steps repeat the same sizes, so big buffers stay for big requests.
        let fit = (pool.iter().enumerate())
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let mut v = match fit {
            Some(i) => pool.swap_remove(i),
            None => Vec::new(),
        };
        drop(pool);
        if v.len() < len {
            v.resize(len, 0.0);
        }
        Buf { v, len }
    }
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.v[..self.len]
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.v[..self.len]
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.v);
        if v.is_empty() {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(v);
        }
    }
}

/// Argmax marker of a pooled element whose relu output is 0: no gradient flows back.
pub const DEAD: u8 = u8::MAX;

/// Shape of one fused conv–pool block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    /// Images in the batch.
    pub n: usize,
    /// Output channels.
    pub o: usize,
    /// Patch length `c·k·k`.
    pub kk: usize,
    /// Conv output height and width (before pooling).
    pub oh: usize,
    /// Conv output width.
    pub ow: usize,
    /// The input image shape `(c, h, w, k)` when the op builds its own patches.
    pub image: Option<(usize, usize, usize, usize)>,
}

impl Geom {
    /// Geometry for NCHW images `[n, c, h, w]` and a `[o, c, k, k]` kernel (valid, stride 1).
    pub fn image(n: usize, c: usize, h: usize, w: usize, o: usize, k: usize) -> Self {
        Self {
            n,
            o,
            kk: c * k * k,
            oh: h + 1 - k,
            ow: w + 1 - k,
            image: Some((c, h, w, k)),
        }
    }
    /// Geometry for host-built patches `[kk, n·side²]`.
    pub fn patches(n: usize, kk: usize, side: usize, o: usize) -> Self {
        Self {
            n,
            o,
            kk,
            oh: side,
            ow: side,
            image: None,
        }
    }
    /// Conv output pixels per image.
    pub fn l(&self) -> usize {
        self.oh * self.ow
    }
    /// Pooled height.
    pub fn ph(&self) -> usize {
        self.oh / 2
    }
    /// Pooled width.
    pub fn pw(&self) -> usize {
        self.ow / 2
    }
    /// Elements of the pooled output.
    pub fn out_len(&self) -> usize {
        self.n * self.o * self.ph() * self.pw()
    }
    /// Elements of the input images (0 for patches).
    fn image_len(&self) -> usize {
        self.image.map_or(0, |(c, h, w, _)| c * h * w)
    }
}

/// Where the patch matrix of a batch comes from.
#[derive(Clone, Copy, Debug)]
pub enum Cols<'a> {
    /// The NCHW images: the op builds the im2col rows `[m, kk]` itself, a chunk of images at a
    /// time, in the forward and again in the backward. Rebuilding them costs less than keeping
    /// them: at batch 256 the whole batch's rows are 33 MB, written once and read once through
    /// main memory, while a chunk's stay in L2.
    Images(&'a [f32]),
    /// `[kk, n·l]`: built on the host (conv1's [`crate::model::patches`]).
    Patches(&'a [f32]),
}

/// The im2col rows `[m, kk]` of a chunk, as a matrix view.
fn rows_view<'a>(g: &Geom, rows: &'a [f32], m: usize) -> View<'a> {
    View {
        data: rows,
        rows: m,
        cols: g.kk,
        rs: g.kk,
        cs: 1,
    }
}

/// The host patches of images `i0..i1` as a matrix view `[(i1 − i0)·l, kk]`.
fn patches_view<'a>(g: &Geom, patches: &'a [f32], i0: usize, i1: usize) -> View<'a> {
    let (l, nl) = (g.l(), g.n * g.l());
    View {
        data: &patches[i0 * l..],
        rows: (i1 - i0) * l,
        cols: g.kk,
        rs: 1,
        cs: nl,
    }
}

/// A read-only strided matrix over a slice.
#[derive(Clone, Copy, Debug)]
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl View<'_> {
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]`, `dst` strided by `(rs, cs)`, single-threaded.
fn matmul(dst: &mut [f32], rs: usize, cs: usize, lhs: View, rhs: View, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    assert!(lhs.fits() && rhs.fits(), "matmul: operand out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * rs + (n - 1) * cs < dst.len(),
        "matmul: destination out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * rs + j * cs] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: the three bounds checks above keep every element gemm touches inside its slice
    // (for m, n, k > 0: max offset (rows−1)·rs + (cols−1)·cs); `dst` is borrowed mutably, so it
    // aliases neither operand. `Parallelism::None`: callers split work across threads themselves.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            cs as isize,
            rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Appends floats, in order, into memory not yet initialised (a fresh vector's spare
/// capacity), so a buffer that is overwritten whole is never zeroed first.
pub struct Filler<'a> {
    buf: &'a mut [MaybeUninit<f32>],
    at: usize,
}

impl Filler<'_> {
    /// Appends `values`.
    ///
    /// # Panics
    /// If they do not fit in what is left.
    pub fn extend(&mut self, values: &[f32]) {
        let dst = &mut self.buf[self.at..self.at + values.len()];
        for (d, &v) in dst.iter_mut().zip(values) {
            d.write(v);
        }
        self.at += values.len();
    }
}

/// A vector of `len` floats, its first `split` written by `fill(0, …)` and the rest by
/// `fill(1, …)` on two threads, each appending in order.
///
/// # Panics
/// If a part does not write exactly its share (so nothing uninitialised is ever read).
pub fn filled_in_two(
    len: usize,
    split: usize,
    fill: impl Fn(usize, &mut Filler) + Sync,
) -> Vec<f32> {
    assert!(split <= len, "filled_in_two: split {split} beyond {len}");
    let mut v = Vec::<f32>::with_capacity(len);
    let (a, b) = v.spare_capacity_mut()[..len].split_at_mut(split);
    let part = |i: usize, buf: &mut [MaybeUninit<f32>]| {
        let mut f = Filler { buf, at: 0 };
        fill(i, &mut f);
        assert_eq!(f.at, f.buf.len(), "filled_in_two: part {i} left a gap");
    };
    rayon::join(|| part(0, a), || part(1, b));
    // SAFETY: both parts wrote every element of their share (a `Filler` writes in order, from
    // the start, and each was checked to have reached its end), so all `len` are initialised.
    unsafe { v.set_len(len) };
    v
}

/// Images per cache-sized chunk inside a thread's half of the batch (conv2 at 8 images: 1 MB
/// of patches and of their gradient; L2 holds 1–2 MB per core on the machines measured).
const CHUNK: usize = 8;

/// Where the batch is split in two for the 2-way parallel steps (by images).
fn half(n: usize) -> usize {
    n.div_ceil(2)
}

/// Defines `$name`, which runs `$body` (an `#[inline(always)]` fn) compiled for the widest
/// vector unit the CPU has (AVX-512, AVX2, else the SSE2 baseline), so the pool, unpool,
/// im2col and col2im loops vectorise 16 or 8 wide. They only compare, copy and add element
/// by element, so every width gives the same bits.
macro_rules! widest {
    ($(#[$doc:meta])* fn $name:ident = $body:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

widest!(
    /// [`im2col_any`] at the widest vector width.
    fn im2col = im2col_any(g: &Geom, imgs: &[f32], cols: &mut [f32])
);
widest!(
    /// [`pool_relu_any`] at the widest vector width.
    fn pool_relu = pool_relu_any(g: &Geom, imgs: usize, y: &[f32], out: &mut [f32], arg: &mut [u8])
);
widest!(
    /// [`unpool_any`] at the widest vector width.
    fn unpool = unpool_any(
        g: &Geom,
        i0: usize,
        i1: usize,
        argmax: &[u8],
        grad: &[f32],
        dy: &mut [f32],
        db: &mut [f32],
    )
);
widest!(
    /// [`col2im_any`] at the widest vector width.
    fn col2im = col2im_any(g: &Geom, imgs: usize, dcols: &[f32], dx: &mut [f32])
);

widest!(
    /// [`sgd_momentum_any`] at the widest vector width.
    fn sgd_momentum_wide = sgd_momentum_any(p: &mut [f32], v: &mut [f32], g: &[f32], lr: f32, mu: f32)
);
widest!(
    /// [`sgd_any`] at the widest vector width.
    fn sgd_wide = sgd_any(p: &mut [f32], g: &[f32], lr: f32)
);

/// `v ← g·1 + v·μ; p ← p − v·lr`, element by element in `f32` (the order of Burn's and
/// PyTorch's momentum SGD), at the widest vector width: the same bits at every width.
///
/// # Panics
/// If the three slices differ in length.
pub fn sgd_momentum(p: &mut [f32], v: &mut [f32], g: &[f32], lr: f32, mu: f32) {
    assert!(
        p.len() == v.len() && p.len() == g.len(),
        "sgd_momentum: parameter, velocity and gradient lengths differ"
    );
    // Big tensors (fc1's 400k weights) in two halves on two threads: the pass is bound by
    // memory, and each core brings its own bandwidth. Element-wise, so the bits do not change.
    if p.len() < PARALLEL_MIN {
        return sgd_momentum_wide(p, v, g, lr, mu);
    }
    let at = p.len() / 2;
    let ((p0, p1), (v0, v1), (g0, g1)) = (p.split_at_mut(at), v.split_at_mut(at), g.split_at(at));
    rayon::join(
        || sgd_momentum_wide(p0, v0, g0, lr, mu),
        || sgd_momentum_wide(p1, v1, g1, lr, mu),
    );
}

/// Below this many parameters, an update runs on one thread.
const PARALLEL_MIN: usize = 1 << 16;

/// `p ← p − g·lr`, element by element in `f32`, at the widest vector width.
///
/// # Panics
/// If the slices differ in length.
pub fn sgd(p: &mut [f32], g: &[f32], lr: f32) {
    assert_eq!(
        p.len(),
        g.len(),
        "sgd: parameter and gradient lengths differ"
    );
    if p.len() < PARALLEL_MIN {
        return sgd_wide(p, g, lr);
    }
    let at = p.len() / 2;
    let ((p0, p1), (g0, g1)) = (p.split_at_mut(at), g.split_at(at));
    rayon::join(|| sgd_wide(p0, g0, lr), || sgd_wide(p1, g1, lr));
}

#[inline(always)]
fn sgd_momentum_any(p: &mut [f32], v: &mut [f32], g: &[f32], lr: f32, mu: f32) {
    for ((p, v), &g) in p.iter_mut().zip(v.iter_mut()).zip(g) {
        // `g·1` is `g` exactly; kept to mirror Burn's order of operations.
        *v = g * 1.0 + *v * mu;
        *p -= *v * lr;
    }
}

#[inline(always)]
fn sgd_any(p: &mut [f32], g: &[f32], lr: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= g * lr;
    }
}

/// What the forward pass returns.
#[derive(Debug)]
pub struct Forward {
    /// Pooled, relu'd output `[n, o, ph, pw]`.
    pub out: Vec<f32>,
    /// Argmax `[n, ph, pw, o]` ([`DEAD`] where relu gave 0).
    pub argmax: Vec<u8>,
}

/// Forward pass: `relu(max_pool_2×2(conv(x, W) + b))`. `input` is NCHW images when
/// `g.image` is set, else host patches `[kk, n·l]`.
pub fn forward(g: &Geom, input: &[f32], weight: &[f32], bias: &[f32]) -> Forward {
    assert_eq!(weight.len(), g.o * g.kk, "fused conv: weight shape");
    assert_eq!(bias.len(), g.o, "fused conv: bias shape");
    let (l, kk, o) = (g.l(), g.kk, g.o);
    let pooled = g.ph() * g.pw();
    let mut out = vec![0.0f32; g.out_len()];
    let mut argmax = vec![0u8; g.n * pooled * o];
    match g.image {
        Some(_) => assert_eq!(input.len(), g.n * g.image_len(), "fused conv: input shape"),
        None => assert_eq!(input.len(), g.n * l * kk, "fused conv: patches shape"),
    }
    let split = half(g.n);
    let (out_a, out_b) = out.split_at_mut(split * o * pooled);
    let (arg_a, arg_b) = argmax.split_at_mut(split * pooled * o);
    let wt = View {
        data: weight,
        rows: kk,
        cols: o,
        rs: 1,
        cs: kk,
    };
    let pooled_len = o * pooled;
    let task = |i0: usize, i1: usize, out: &mut [f32], arg: &mut [u8]| {
        // A few images at a time, so their patches and conv outputs are still in cache when
        // the GEMM and the pool read them (chunking by rows leaves each sum's order as is).
        let mut y = Buf::any(CHUNK.min(i1 - i0) * l * o);
        let mut rows = Buf::any(if g.image.is_some() {
            CHUNK.min(i1 - i0) * l * kk
        } else {
            0
        });
        for c0 in (i0..i1).step_by(CHUNK) {
            let c1 = (c0 + CHUNK).min(i1);
            let (a, b) = (c0 - i0, c1 - i0);
            let src = match g.image {
                Some(_) => {
                    let rows = &mut rows[..(c1 - c0) * l * kk];
                    im2col(g, &input[c0 * g.image_len()..c1 * g.image_len()], rows);
                    rows_view(g, rows, (c1 - c0) * l)
                }
                None => patches_view(g, input, c0, c1),
            };
            // y = cols · Wᵀ + b, bias first so the product accumulates onto it.
            let y = &mut y[..(c1 - c0) * l * o];
            for row in y.chunks_exact_mut(o) {
                row.copy_from_slice(bias);
            }
            matmul(y, o, 1, src, wt, true);
            pool_relu(
                g,
                c1 - c0,
                y,
                &mut out[a * pooled_len..b * pooled_len],
                &mut arg[a * pooled_len..b * pooled_len],
            );
        }
    };
    rayon::join(
        || task(0, split, out_a, arg_a),
        || task(split, g.n, out_b, arg_b),
    );
    Forward { out, argmax }
}

/// im2col of `imgs` (NCHW, whole images) into `cols` rows `[imgs·l, kk]`.
#[inline(always)]
fn im2col_any(g: &Geom, imgs: &[f32], cols: &mut [f32]) {
    let Some((c, h, w, k)) = g.image else { return };
    // The seed network's 5×5 kernel gets a copy of constant length (a few moves, not a
    // `memcpy` call per five floats).
    if k == 5 {
        im2col_k(g, imgs, cols, (c, h, w), 5);
    } else {
        im2col_k(g, imgs, cols, (c, h, w), k);
    }
}

#[inline(always)]
fn im2col_k(g: &Geom, imgs: &[f32], cols: &mut [f32], (c, h, w): (usize, usize, usize), k: usize) {
    let (ow, kk) = (g.ow, g.kk);
    for (img, dst) in imgs
        .chunks_exact(c * h * w)
        .zip(cols.chunks_exact_mut(g.l() * kk))
    {
        for (p, row) in dst.chunks_exact_mut(kk).enumerate() {
            let (y, x) = (p / ow, p % ow);
            let mut parts = row.chunks_exact_mut(k);
            for plane in img.chunks_exact(h * w) {
                for line in plane[y * w + x..].chunks(w).take(k) {
                    if let Some(part) = parts.next() {
                        part.copy_from_slice(&line[..k]);
                    }
                }
            }
        }
    }
}

/// 2×2 max-pool (stride 2, floor) + relu of `y` `[imgs·l, o]` into NCHW `out` and `arg`.
/// Ties keep the first maximum in row-major order and NaN wins (the last NaN), as PyTorch's
/// and Burn's pools do; relu keeps NaN (both frameworks do) and marks zeros [`DEAD`].
///
/// The max and its position are kept in `f32` lanes (the position as a float index), which the
/// compiler vectorises; a `u8`/`f32` mix in one loop stays scalar.
#[inline(always)]
fn pool_relu_any(g: &Geom, imgs: usize, y: &[f32], out: &mut [f32], arg: &mut [u8]) {
    let (o, ow, l, ph, pw) = (g.o, g.ow, g.l(), g.ph(), g.pw());
    let pooled = ph * pw;
    // One image's pooled values, pixel-major `[pooled, o]`, before the NCHW transpose.
    let mut best = vec![0.0f32; pooled * o];
    let mut idx = vec![0.0f32; o];
    for img in 0..imgs {
        for py in 0..ph {
            for px in 0..pw {
                let r = img * l + 2 * py * ow + 2 * px;
                let rows = [r, r + 1, r + ow, r + ow + 1].map(|r| &y[r * o..(r + 1) * o]);
                let p = py * pw + px;
                let m = &mut best[p * o..(p + 1) * o];
                m.copy_from_slice(rows[0]);
                idx.fill(0.0);
                for (i, row) in rows.iter().enumerate().skip(1) {
                    for ((m, d), &v) in m.iter_mut().zip(idx.iter_mut()).zip(row.iter()) {
                        let take = v > *m || v.is_nan();
                        *m = if take { v } else { *m };
                        *d = if take { i as f32 } else { *d };
                    }
                }
                let a = &mut arg[((img * ph + py) * pw + px) * o..][..o];
                for ((ai, &d), m) in a.iter_mut().zip(idx.iter()).zip(m.iter_mut()) {
                    let live = *m > 0.0 || m.is_nan();
                    *ai = if live { d as i32 as u8 } else { DEAD };
                    *m = if live { *m } else { 0.0 };
                }
            }
        }
        let dst = &mut out[img * o * pooled..(img + 1) * o * pooled];
        for (oc, plane) in dst.chunks_exact_mut(pooled).enumerate() {
            for (p, v) in plane.iter_mut().enumerate() {
                *v = best[p * o + oc];
            }
        }
    }
}

/// Which gradients to compute.
#[derive(Clone, Copy, Debug)]
pub struct Needs {
    /// Input (images or patches).
    pub x: bool,
    /// Weight.
    pub w: bool,
    /// Bias.
    pub b: bool,
}

/// Gradients of the fused block (each present when asked for).
#[derive(Debug, Default)]
pub struct Grads {
    /// Input gradient: NCHW images, or `[kk, n·l]` for host patches.
    pub x: Option<Vec<f32>>,
    /// Weight gradient `[o, kk]`.
    pub w: Option<Vec<f32>>,
    /// Bias gradient `[o]`.
    pub b: Option<Vec<f32>>,
}

/// Backward pass from the output gradient `grad` `[n, o, ph, pw]`.
///
/// Each half of the batch runs on its own thread, a few images at a time so everything stays
/// in cache: unpool (u8 argmax) into `dy` `[m, o]`, then `db += Σ dy`, `dW += dyᵀ · cols` and
/// `dcols = dy · W` → col2im. The halves' bias and weight gradients are then added, first
/// half first: the same fixed order of sums on one thread or two.
pub fn backward(
    g: &Geom,
    cols: Cols,
    weight: &[f32],
    argmax: &[u8],
    grad: &[f32],
    needs: Needs,
) -> Grads {
    let (kk, o) = (g.kk, g.o);
    assert_eq!(
        grad.len(),
        g.out_len(),
        "fused conv backward: gradient shape"
    );
    assert_eq!(
        argmax.len(),
        g.out_len(),
        "fused conv backward: argmax shape"
    );
    let split = half(g.n);
    let len = g.image_len();
    let mut dx = (needs.x).then(|| match g.image {
        Some(_) => vec![0.0f32; g.n * len],
        None => vec![0.0f32; kk * g.n * g.l()],
    });
    let (a, b) = {
        let (dx_a, dx_b) = match dx.as_mut() {
            Some(dx) if g.image.is_some() => {
                let (a, b) = dx.split_at_mut(split * len);
                (Some(a), Some(b))
            }
            _ => (None, None),
        };
        let task = |i0, i1, dx| backward_half(g, cols, weight, argmax, grad, needs, i0, i1, dx);
        rayon::join(|| task(0, split, dx_a), || task(split, g.n, dx_b))
    };
    let add =
        |x: Vec<f32>, y: Vec<f32>| -> Vec<f32> { x.iter().zip(&y).map(|(p, q)| p + q).collect() };
    let dw = needs.w.then(|| {
        let sum = add(a.dw, b.dw);
        match cols {
            // Summed as dWᵀ `[kk, o]` (see `backward_half`): back to `[o, kk]`.
            Cols::Images(_) => {
                let mut dw = vec![0.0f32; o * kk];
                for (j, row) in sum.chunks_exact(o).enumerate() {
                    for (oc, &v) in row.iter().enumerate() {
                        dw[oc * kk + j] = v;
                    }
                }
                dw
            }
            Cols::Patches(_) => sum,
        }
    });
    if let (Some(dp), None) = (dx.as_mut(), g.image) {
        // Host patches: dpatches = (dy · W)ᵀ `[kk, n·l]`, from the whole unpooled gradient
        // (not needed by the seed network, whose conv1 input needs no gradient).
        let nl = g.n * g.l();
        let mut dy = Buf::any(nl * o);
        let (dy_a, dy_b) = dy.split_at_mut(split * g.l() * o);
        rayon::join(
            || unpool(g, 0, split, argmax, grad, dy_a, &mut []),
            || unpool(g, split, g.n, argmax, grad, dy_b, &mut []),
        );
        let dy = View {
            data: &dy,
            rows: nl,
            cols: o,
            rs: o,
            cs: 1,
        };
        let w = View {
            data: weight,
            rows: o,
            cols: kk,
            rs: kk,
            cs: 1,
        };
        matmul(dp, 1, nl, dy, w, false);
    }
    Grads {
        x: dx,
        w: dw,
        b: needs.b.then(|| add(a.db, b.db)),
    }
}

/// One half's share of [`backward`]: its bias and weight gradient sums.
struct HalfGrads {
    db: Vec<f32>,
    /// `dWᵀ` `[kk, o]` for patch rows, `dW` `[o, kk]` for host patches.
    dw: Vec<f32>,
}

/// Images `i0..i1` of [`backward`], `CHUNK` at a time, in order; `dx` is their NCHW input
/// gradient (images only).
#[allow(clippy::too_many_arguments)]
fn backward_half(
    g: &Geom,
    cols: Cols,
    weight: &[f32],
    argmax: &[u8],
    grad: &[f32],
    needs: Needs,
    i0: usize,
    i1: usize,
    mut dx: Option<&mut [f32]>,
) -> HalfGrads {
    let (l, kk, o) = (g.l(), g.kk, g.o);
    let len = g.image_len();
    let mut db = vec![0.0f32; o];
    let mut dw = vec![0.0f32; if needs.w { o * kk } else { 0 }];
    let want_dx = dx.is_some();
    if !needs.w && !want_dx {
        if needs.b {
            bias_sum(g, i0, i1, argmax, grad, &mut db);
        }
        return HalfGrads { db, dw };
    }
    // Unpooling writes every pixel of every 2×2 window; only odd edges need zeros first.
    let even = g.oh.is_multiple_of(2) && g.ow.is_multiple_of(2);
    let rows = CHUNK.min(i1 - i0) * l;
    let mut dy = if even {
        Buf::any(rows * o)
    } else {
        Buf::zeros(rows * o)
    };
    let mut dcols = Buf::any(if want_dx { kk * rows } else { 0 });
    // The chunk's im2col rows, rebuilt from the images (see [`Cols::Images`]).
    let mut patch_rows = Buf::any(match (cols, needs.w) {
        (Cols::Images(_), true) => rows * kk,
        _ => 0,
    });
    let w = View {
        data: weight,
        rows: o,
        cols: kk,
        rs: kk,
        cs: 1,
    };
    for c0 in (i0..i1).step_by(CHUNK) {
        let c1 = (c0 + CHUNK).min(i1);
        let m = (c1 - c0) * l;
        let dy = &mut dy[..m * o];
        let db = if needs.b { &mut db[..] } else { &mut [] };
        unpool(g, c0, c1, argmax, grad, dy, db);
        let dy_rows = View {
            data: dy,
            rows: m,
            cols: o,
            rs: o,
            cs: 1,
        };
        if needs.w {
            match cols {
                Cols::Images(x) => {
                    let c = &mut patch_rows[..m * kk];
                    im2col(g, &x[c0 * len..c1 * len], c);
                    // dWᵀ += colsᵀ · dy: colsᵀ is column-major, so gemm reads it in place.
                    let colst = View {
                        data: c,
                        rows: kk,
                        cols: m,
                        rs: 1,
                        cs: kk,
                    };
                    matmul(&mut dw, o, 1, colst, dy_rows, c0 > i0);
                }
                Cols::Patches(p) => {
                    // dW += dyᵀ · patchesᵀ (host patches `[kk, n·l]`).
                    let dyt = View {
                        data: dy,
                        rows: o,
                        cols: m,
                        rs: 1,
                        cs: o,
                    };
                    matmul(&mut dw, kk, 1, dyt, patches_view(g, p, c0, c1), c0 > i0);
                }
            }
        }
        if let (Some(dx), Some(_)) = (dx.as_deref_mut(), g.image) {
            // dcolsᵀ `[kk, m]`, laid out so col2im adds whole output rows.
            let dcols = &mut dcols[..kk * m];
            matmul(dcols, 1, m, dy_rows, w, false);
            col2im(g, c1 - c0, dcols, &mut dx[(c0 - i0) * len..(c1 - i0) * len]);
        }
    }
    HalfGrads { db, dw }
}

/// Adds the pooled gradient of images `i0..i1` that reaches a conv output (argmax not
/// [`DEAD`]) onto `db`, per channel, images then positions in order.
fn bias_sum(g: &Geom, i0: usize, i1: usize, argmax: &[u8], grad: &[f32], db: &mut [f32]) {
    let (o, pooled) = (g.o, g.ph() * g.pw());
    for img in i0..i1 {
        let gi = &grad[img * o * pooled..][..o * pooled];
        for p in 0..pooled {
            let a = &argmax[(img * pooled + p) * o..][..o];
            for (oc, (acc, &ai)) in db.iter_mut().zip(a).enumerate() {
                // + 0.0 for a dead position leaves the sum's bits as skipping it would (the
                // sum starts at +0.0, so it is never −0.0).
                *acc += if ai != DEAD { gi[oc * pooled + p] } else { 0.0 };
            }
        }
    }
}

/// Scatters the pooled gradient of images `i0..i1` into `dy`: each 2×2 window's pixels get
/// the gradient at their argmax and 0 elsewhere (pixels outside every window are untouched).
/// Unless `db` is empty, also adds the gradient that reaches a conv output onto the bias
/// gradient `db` `[o]`, per channel images then positions in order, as [`bias_sum`] does.
#[inline(always)]
fn unpool_any(
    g: &Geom,
    i0: usize,
    i1: usize,
    argmax: &[u8],
    grad: &[f32],
    dy: &mut [f32],
    db: &mut [f32],
) {
    let (o, ow, l, ph, pw) = (g.o, g.ow, g.l(), g.ph(), g.pw());
    let pooled = ph * pw;
    let mut gw = vec![0.0f32; o];
    for img in i0..i1 {
        let base = (img - i0) * l;
        let gi = &grad[img * o * pooled..][..o * pooled];
        for py in 0..ph {
            for px in 0..pw {
                let p = py * pw + px;
                for (oc, v) in gw.iter_mut().enumerate() {
                    *v = gi[oc * pooled + p];
                }
                let a = &argmax[(img * pooled + p) * o..][..o];
                if db.len() == o {
                    for ((acc, &ai), &v) in db.iter_mut().zip(a).zip(&gw) {
                        *acc += if ai != DEAD { v } else { 0.0 };
                    }
                }
                let r = base + 2 * py * ow + 2 * px;
                for (i, r) in [r, r + 1, r + ow, r + ow + 1].into_iter().enumerate() {
                    let row = &mut dy[r * o..(r + 1) * o];
                    for ((d, &ai), &v) in row.iter_mut().zip(a).zip(&gw) {
                        *d = if ai as usize == i { v } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// Adds `dcols` `[kk, imgs·l]` back onto the NCHW image gradient `dx` of `imgs` images.
#[inline(always)]
fn col2im_any(g: &Geom, imgs: usize, dcols: &[f32], dx: &mut [f32]) {
    let Some((c, h, w, k)) = g.image else { return };
    // The seed network's conv2 (5×5 kernel, 8 output columns) with constant loop bounds: the
    // row adds become single vector adds.
    if (k, g.ow) == (5, 8) {
        col2im_k(g, imgs, dcols, dx, (c, h, w), 5, 8);
    } else {
        col2im_k(g, imgs, dcols, dx, (c, h, w), k, g.ow);
    }
}

#[inline(always)]
fn col2im_k(
    g: &Geom,
    imgs: usize,
    dcols: &[f32],
    dx: &mut [f32],
    (c, h, w): (usize, usize, usize),
    k: usize,
    ow: usize,
) {
    let (oh, l) = (g.oh, g.l());
    let m = imgs * l;
    for (j, img) in dx.chunks_exact_mut(c * h * w).enumerate().take(imgs) {
        for ci in 0..c {
            for ki in 0..k {
                for kj in 0..k {
                    let src = &dcols[((ci * k + ki) * k + kj) * m + j * l..][..l];
                    for y in 0..oh {
                        let dst = &mut img[ci * h * w + (y + ki) * w + kj..][..ow];
                        for (d, &s) in dst.iter_mut().zip(&src[y * ow..(y + 1) * ow]) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One 2×2 window through the pool: (output, argmax).
    fn pool1(v: [f32; 4]) -> (f32, u8) {
        let g = Geom::patches(1, 1, 2, 1);
        let y: Vec<f32> = v.to_vec(); // [l = 4, o = 1]
        let (mut out, mut arg) = (vec![0.0], vec![0u8]);
        pool_relu(&g, 1, &y, &mut out, &mut arg);
        (out[0], arg[0])
    }

    #[test]
    fn pool_ties_take_the_first_maximum_and_nan_wins() {
        assert_eq!(pool1([2.0, 2.0, 1.0, 2.0]), (2.0, 0));
        assert_eq!(pool1([1.0, 3.0, 3.0, 0.5]), (3.0, 1));
        assert_eq!(pool1([0.5, 0.5, 0.5, 0.7]), (0.7, 3));
        let (v, a) = pool1([1.0, f32::NAN, 3.0, f32::NAN]);
        assert!(v.is_nan());
        assert_eq!(a, 3, "the last NaN wins");
        let (v, a) = pool1([f32::NAN, 1.0, 2.0, 0.0]);
        assert!(v.is_nan());
        assert_eq!(a, 0);
        // relu: zero and negative maxima pass no gradient.
        assert_eq!(pool1([-1.0, -2.0, -1.0, -3.0]), (0.0, DEAD));
        assert_eq!(pool1([0.0, -0.0, 0.0, -1.0]), (0.0, DEAD));
    }

    #[test]
    fn filled_in_two_keeps_both_parts_in_order() {
        let v = filled_in_two(7, 3, |part, f| {
            if part == 0 {
                f.extend(&[1.0, 2.0]);
                f.extend(&[3.0]);
            } else {
                f.extend(&[4.0, 5.0, 6.0, 7.0]);
            }
        });
        assert_eq!(v, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert!(filled_in_two(0, 0, |_, _| {}).is_empty());
    }

    #[test]
    #[should_panic(expected = "left a gap")]
    fn filled_in_two_refuses_a_gap() {
        filled_in_two(4, 2, |_, f| f.extend(&[1.0]));
    }

    #[test]
    #[should_panic]
    fn filled_in_two_refuses_an_overflow() {
        filled_in_two(4, 2, |_, f| f.extend(&[1.0, 2.0, 3.0]));
    }

    fn seeded(n: usize, seed: u64) -> Vec<f32> {
        let mut r = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| r.next_f64() as f32 - 0.5).collect()
    }

    #[test]
    fn one_or_two_threads_give_identical_bits() {
        let g = Geom::image(21, 3, 10, 10, 4, 3); // several chunks per half
        let x = seeded(21 * 3 * 100, 1);
        let w = seeded(4 * 27, 2);
        let b = seeded(4, 3);
        let gy = seeded(g.out_len(), 4);
        let run = || {
            let f = forward(&g, &x, &w, &b);
            let all = Needs {
                x: true,
                w: true,
                b: true,
            };
            let gr = backward(&g, Cols::Images(&x), &w, &f.argmax, &gy, all);
            (f.out, gr.x, gr.w, gr.b)
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map(|p| p.install(run));
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .map(|p| p.install(run));
        let (one, two) = (one.ok(), two.ok());
        assert!(one.is_some());
        assert_eq!(one, two);
        assert_eq!(one, Some(run()), "run to run");
    }
}
