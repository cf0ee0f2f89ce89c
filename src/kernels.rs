//! CPU fast paths for the dense layers (and the SAE encoder), attention and the exact GELU.
//! Flex, burn's CPU backend, computes softmax and GELU with one scalar libm `exp` / `erf` per
//! element (in wasm a software libm), and attention as separate ops around a `[heads, seq, seq]`
//! score tensor with the heads transposed to and fro (BENCHMARKS.md, "Where the time goes").
//! Here exp and erf are branch-free polynomials the compiler vectorizes (AVX-512 or AVX2 chosen
//! at run time natively, simd128 in wasm), attention runs four query rows at a time with the
//! rotary embedding, bias, softmax and value sum fused (the scores never leave L1), and the dense
//! layers and the SAE encoder split their output into tiles over rayon's threads once per layer,
//! with the bias, the residual add, the GELU or the ReLU done on each tile while it is in cache.
//! Tensors on another backend (WebGPU) or under autodiff take burn's own ops, so the GPU and
//! training paths are unchanged.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::{activation, FloatDType};

/// What a dense layer does to its output before returning it.
pub enum Then<const D: usize> {
    Nothing,
    Gelu,
    Relu,
    /// Adds this residual, of the output's shape.
    Add(Tensor<D>),
}

/// `then(x·W + b)` for a burn `Linear` (`W: [d_in, d_out]`). Shapes: `[.., d_in]` → `[.., d_out]`.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>, then: Then<D>) -> Tensor<D> {
    affine(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()), then)
}

/// `then(x·weight + bias)`: [`linear`] for weights held outside a `Linear` (an SAE's encoder).
///
/// # Shapes
/// - x: `[.., d_in]`; weight: `[d_in, d_out]`; bias: `[d_out]`
/// - output: `[.., d_out]`
pub fn affine<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>, then: Then<D>) -> Tensor<D> {
    #[cfg(feature = "cpu")]
    if let Some([out]) = linears([(&weight, bias.as_ref())], &x, [&then]) {
        return out;
    }
    let y = match weight.dtype() {
        // f16 weights (crate::device::Precision): the product in f16, back in f32 before the
        // bias, so that the residual stream and everything after stay f32.
        burn::tensor::DType::F16 => {
            let y = burn::tensor::module::linear(x.cast(FloatDType::F16), weight, None).cast(FloatDType::F32);
            match bias {
                Some(b) => y + b.unsqueeze(),
                None => y,
            }
        }
        _ => burn::tensor::module::linear(x, weight, bias),
    };
    match then {
        Then::Nothing => y,
        Then::Gelu => gelu(y),
        Then::Relu => activation::relu(y),
        Then::Add(residual) => residual + y,
    }
}

/// `N` dense layers on the same input in one pass over its rows (attention's query, key and
/// value): see [`linear`]. Shapes: `[.., d_in]` → `N × [.., d_out]`.
pub fn linear_n<const D: usize, const N: usize>(layers: [&Linear; N], x: Tensor<D>) -> [Tensor<D>; N] {
    #[cfg(feature = "cpu")]
    {
        let weights = layers.map(|layer| (layer.weight.val(), layer.bias.as_ref().map(|b| b.val())));
        if let Some(out) = linears(weights.each_ref().map(|(w, b)| (w, b.as_ref())), &x, [&Then::Nothing; N]) {
            return out;
        }
    }
    layers.map(|layer| linear(layer, x.clone(), Then::Nothing))
}

/// The CPU path of [`affine`] and [`linear_n`], for `N` (weight `[d_in, d_out]`, bias `[d_out]`)
/// pairs; `None` unless every tensor is an f32 Flex tensor.
/// The output is split into [`Tiles`], each a whole GEMM of its own that adds to the bias (and the
/// residual) written into it first: one fork and join per layer, where Flex's matmul forks inside
/// the GEMM at every depth block and adds the bias in a pass of its own.
#[cfg(feature = "cpu")]
fn linears<const D: usize, const N: usize>(
    layers: [(&Tensor<2>, Option<&Tensor<1>>); N],
    x: &Tensor<D>,
    then: [&Then<D>; N],
) -> Option<[Tensor<D>; N]> {
    let x = row_major(flex_f32(x)?);
    let shape = x.layout().shape().clone();
    let d_in = shape[D - 1];
    let rows = shape.num_elements() / d_in.max(1);
    struct Layer {
        weight: burn_flex::FlexTensor, // [d_in, d_out]
        bias: Option<burn_flex::FlexTensor>,
        residual: Option<burn_flex::FlexTensor>,
        epilogue: Option<fn(&mut [f32])>,
    }
    let mut work = Vec::with_capacity(N);
    for ((weight, bias), then) in layers.into_iter().zip(then) {
        let weight = row_major(flex_f32(weight)?);
        let d_out = weight.layout().shape()[1];
        if weight.layout().shape()[0] != d_in {
            return None; // burn's op reports the mismatch
        }
        let bias = match bias {
            Some(bias) => Some(row_major(flex_f32(bias)?)),
            None => None,
        };
        let residual = match then {
            Then::Add(residual) => Some(row_major(flex_f32(residual)?)),
            _ => None,
        };
        if residual.as_ref().is_some_and(|r| r.layout().num_elements() != rows * d_out) {
            return None;
        }
        let epilogue: Option<fn(&mut [f32])> = match then {
            Then::Gelu => Some(simd::gelu),
            Then::Relu => Some(simd::relu),
            _ => None,
        };
        work.push(Layer { weight, bias, residual, epilogue });
    }
    // N × [rows, d_out], zeros where no residual is copied in
    let mut outs: Vec<Vec<f32>> = work.iter().map(|w| vec![0.0; rows * w.weight.layout().shape()[1]]).collect();
    let input = x.as_slice::<f32>()?;
    let d_out = work.iter().map(|w| w.weight.layout().shape()[1]).max().unwrap_or(0);
    let tiles = Tiles::new(rows, d_out, threads());
    let targets: Vec<SharedRows> = outs.iter_mut().map(|out| SharedRows(out.as_mut_ptr())).collect();
    par_for(tiles.count(), |tile| {
        for (w, out) in work.iter().zip(&targets) {
            let d_out = w.weight.layout().shape()[1];
            let ([r0, r1], [c0, c1]) = tiles.get(tile, d_out);
            if r0 == r1 || c0 == c1 {
                continue;
            }
            // Row `i` of the tile. SAFETY: tiles are disjoint and within `out` (`[rows, d_out]`),
            // which outlives `par_for`; each slice is dropped before the next is made.
            let tile_row = |i: usize| unsafe { std::slice::from_raw_parts_mut(out.0.add((r0 + i) * d_out + c0), c1 - c0) };
            let bias = w.bias.as_ref().map(|b| &b.as_slice::<f32>().expect("row-major")[c0..c1]);
            let residual = w.residual.as_ref().map(|r| r.as_slice::<f32>().expect("row-major"));
            for i in 0..r1 - r0 {
                let row = tile_row(i);
                if let Some(r) = residual {
                    row.copy_from_slice(&r[(r0 + i) * d_out..][c0..c1]);
                }
                if let Some(b) = bias {
                    row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
            }
            let weight = w.weight.as_slice::<f32>().expect("row-major");
            // SAFETY: the tile of `out` is `[r1 - r0, c1 - c0]` with row stride `d_out`, its input
            // rows `[r1 - r0, d_in]` and the weight's columns `[d_in, c1 - c0]` with row stride
            // `d_out`, all in bounds, and no other task touches the tile; `out = 1·out + 1·x·W`.
            unsafe {
                gemm::gemm(
                    r1 - r0, c1 - c0, d_in,
                    out.0.add(r0 * d_out + c0), 1, d_out as isize, true,
                    input[r0 * d_in..].as_ptr(), 1, d_in as isize,
                    weight[c0..].as_ptr(), 1, d_out as isize,
                    1.0, 1.0, false, false, false, gemm::Parallelism::None,
                );
            }
            if let Some(epilogue) = w.epilogue {
                (0..r1 - r0).for_each(|i| epilogue(tile_row(i)));
            }
        }
    });
    drop(targets);
    let mut outs = work.iter().zip(outs);
    Some(std::array::from_fn(|_| {
        let (w, out) = outs.next().expect("N layers");
        let mut dims = shape.clone();
        dims[D - 1] = w.weight.layout().shape()[1];
        Tensor::from_primitive::<burn_flex::Flex>(burn_flex::FlexTensor::from_data(TensorData::new(out, dims)))
    }))
}

/// How [`linears`] splits a `[rows, cols]` output among threads: a few tiles per thread (so that a
/// thread that starts late leaves its share to the others), by rows when there are many (each tile
/// then packs and reads the whole weight once, as one GEMM would) and else by columns (a GEMM of a
/// few rows packs each weight column once per tile, so tiles of whole rows would multiply that work).
/// The row tiles divide the tiles wanted, so that every thread gets the same number of tiles.
#[cfg(feature = "cpu")]
struct Tiles {
    row_tiles: usize,
    col_tiles: usize,
    rows: usize,
}

#[cfg(feature = "cpu")]
impl Tiles {
    /// Rows that make a tile worth its own packing of the weight.
    const MIN_ROWS: usize = 256;
    /// Column tiles are whole multiples of this: the widest GEMM register tile (3 vectors of 16
    /// lanes with AVX-512, 3 of 4 in wasm), so that no tile ends in a narrower one. In wasm the
    /// narrower unit also splits a 320-wide layer into 8 near-equal tiles, where 48 gave 7 (4 + 3
    /// on 2 threads).
    #[cfg(not(target_arch = "wasm32"))]
    const COLS: usize = 48;
    #[cfg(target_arch = "wasm32")]
    const COLS: usize = 12;

    fn new(rows: usize, cols: usize, threads: usize) -> Self {
        let wanted = if threads > 1 { 4 * threads } else { 1 };
        let most = (rows / Self::MIN_ROWS).clamp(1, wanted);
        let row_tiles = (1..=most).rev().find(|r| wanted % r == 0).unwrap_or(1);
        let col_tiles = (wanted / row_tiles).min(cols.div_ceil(Self::COLS).max(1));
        Self { row_tiles, col_tiles, rows }
    }

    fn count(&self) -> usize {
        self.row_tiles * self.col_tiles
    }

    /// Tile `i`'s rows and columns (`[start, end)`) of an output with `cols` columns (at most the
    /// `cols` it was made for; a narrower output leaves some tiles empty).
    fn get(&self, i: usize, cols: usize) -> ([usize; 2], [usize; 2]) {
        let (r, c) = (i / self.col_tiles, i % self.col_tiles);
        let units = cols.div_ceil(Self::COLS);
        let col = |k: usize| (units * k / self.col_tiles * Self::COLS).min(cols);
        let row = |k: usize| self.rows * k / self.row_tiles;
        ([row(r), row(r + 1)], [col(c), col(c + 1)])
    }
}

/// A pointer to an output whose disjoint tiles parallel tasks write.
#[cfg(feature = "cpu")]
struct SharedRows(*mut f32);
// SAFETY: only used by `linears`, whose tasks write disjoint tiles.
#[cfg(feature = "cpu")]
unsafe impl Sync for SharedRows {}
#[cfg(feature = "cpu")]
unsafe impl Send for SharedRows {}

/// `0.5·x·(1 + erf(x/√2))`, the exact GELU of `transformers`' `"gelu"`. Shapes: any → same.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cpu")]
    if let Some(flex) = flex_f32(&x) {
        drop(x); // so the storage is ours alone and GELU runs in place
        let mut flex = dense(flex);
        par_chunks(flex.storage_mut::<f32>(), 1 << 14, |_, values| simd::gelu(values));
        return Tensor::from_primitive::<burn_flex::Flex>(flex);
    }
    activation::gelu(x)
}

/// `softmax(rot(q)·scale · rot(k)ᵀ + key_bias) · v` for every head, with `rot` the rotary
/// embedding `x·cos + rotate_half(x)·sin`; `None` unless every input is an f32 Flex tensor.
///
/// # Shapes
/// - q, k, v: `[batch, seq, heads, head_dim]` (the projections, heads not transposed)
/// - key_bias: `[batch, 1, 1, seq]`; cos, sin: `[seq, head_dim]`
/// - output: `[batch, heads, seq, head_dim]`
#[cfg(feature = "cpu")]
pub fn rotary_attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    key_bias: &Tensor<4>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    scale: f32,
) -> Option<Tensor<4>> {
    let [batch, seq, heads, head_dim] = q.dims();
    if !HEAD_DIMS.contains(&head_dim) {
        return None;
    }
    let [q, k, v, bias, cos, sin] = [
        flex_f32(q)?,
        flex_f32(k)?,
        flex_f32(v)?,
        flex_f32(key_bias)?,
        flex_f32(cos)?,
        flex_f32(sin)?,
    ]
    .map(row_major);
    let [q, k, v, bias, cos, sin] = [&q, &k, &v, &bias, &cos, &sin].map(|t| t.as_slice::<f32>());
    let ([q, k, v, bias, cos, sin], shape) = ([q?, k?, v?, bias?, cos?, sin?], Shape { seq, heads, head_dim });
    let mut out = vec![0.0f32; batch * heads * seq * head_dim];
    par_chunks(&mut out, seq * head_dim, |index, out| {
        let (b, h) = (index / heads, index % heads);
        let per_batch = seq * heads * head_dim;
        let inputs = Head {
            q: &q[b * per_batch..][..per_batch],
            k: &k[b * per_batch..][..per_batch],
            v: &v[b * per_batch..][..per_batch],
            bias: &bias[b * seq..][..seq],
            cos,
            sin,
        };
        simd::attention_head(&inputs, shape, h, scale, out)
    });
    let out = burn_flex::FlexTensor::from_data(TensorData::new(out, [batch, heads, seq, head_dim]));
    Some(Tensor::from_primitive::<burn_flex::Flex>(out))
}

/// The head sizes [`rotary_attention`] is compiled for: those of ESM-2 8M (16), 35M (24),
/// 150M (32), 650M and 3B (64), 15B (128). A fixed size keeps a query's accumulators in registers.
pub const HEAD_DIMS: [usize; 5] = [16, 24, 32, 64, 128];

/// One batch item's inputs to [`rotary_attention`] (`[seq, heads, head_dim]` each, bias `[seq]`).
pub struct Head<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub bias: &'a [f32],
    pub cos: &'a [f32],
    pub sin: &'a [f32],
}

#[derive(Clone, Copy)]
pub struct Shape {
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// The Flex primitive of an f32 tensor not under autodiff (a cheap handle: Flex shares storage).
#[cfg(feature = "cpu")]
fn flex_f32<const D: usize>(x: &Tensor<D>) -> Option<burn_flex::FlexTensor> {
    let flex = x.clone().try_into_primitive::<burn_flex::Flex>().ok()?;
    (flex.dtype() == burn::tensor::DType::F32).then_some(flex)
}

/// The tensor laid out row-major (read it with `as_slice`): itself when it already is, else a copy.
#[cfg(feature = "cpu")]
fn row_major(flex: burn_flex::FlexTensor) -> burn_flex::FlexTensor {
    if flex.is_contiguous() { flex } else { flex.to_contiguous() }
}

/// The tensor with storage of its own holding exactly its values in row-major order, to write in
/// place: itself when it already is that, else a copy.
#[cfg(feature = "cpu")]
fn dense(flex: burn_flex::FlexTensor) -> burn_flex::FlexTensor {
    let n = flex.layout().num_elements();
    if flex.layout().contiguous_offsets() == Some((0, n)) && flex.bytes().len() == 4 * n && flex.is_unique() {
        return flex;
    }
    match flex.as_slice::<f32>() {
        Some(values) => burn_flex::FlexTensor::from_data(TensorData::new(values.to_vec(), flex.layout().shape().clone())),
        None => flex.to_contiguous(),
    }
}

/// `f(i, chunk i)` on chunks of `chunk` elements: on rayon's threads natively and in the wasm
/// threads build, in order in the other wasm builds.
#[cfg(feature = "cpu")]
fn par_chunks(values: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        use rayon::prelude::*;
        values.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    values.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
}

/// `f(i)` for `i` in `0..n`, on rayon's threads where [`par_chunks`] uses them.
#[cfg(feature = "cpu")]
fn par_for(n: usize, f: impl Fn(usize) + Sync + Send) {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        use rayon::prelude::*;
        (0..n).into_par_iter().for_each(f);
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    (0..n).for_each(f);
}

/// The threads [`par_for`] runs on.
#[cfg(feature = "cpu")]
fn threads() -> usize {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    return rayon::current_num_threads();
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    1
}

/// Each kernel is written once as plain lane-wise Rust ([`portable`]) and compiled again inside a
/// function with AVX-512 or AVX2 + FMA enabled, picked at run time (LLVM then vectorizes it to 16
/// or 8 lanes); wasm builds with simd128 on (.cargo/config.toml) vectorize the plain version.
pub mod simd {
    use super::portable;

    macro_rules! dispatch {
        ($name:ident($($arg:ident: $ty:ty),*)) => {
            pub fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    fn avx512($($arg: $ty),*) { portable::$name($($arg),*) }
                    #[target_feature(enable = "avx2,fma")]
                    fn avx2($($arg: $ty),*) { portable::$name($($arg),*) }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has the features the function was compiled for.
                        return unsafe { avx512($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                        // SAFETY: as above.
                        return unsafe { avx2($($arg),*) };
                    }
                }
                portable::$name($($arg),*)
            }
        };
    }

    dispatch!(gelu(values: &mut [f32]));
    dispatch!(relu(values: &mut [f32]));
    dispatch!(attention_head(inputs: &super::Head, shape: super::Shape, head: usize, scale: f32, out: &mut [f32]));
}

/// The kernels as lane-wise loops over blocks of [`LANES`], so that the compiler keeps one vector
/// accumulator per block instead of a serial chain.
pub mod portable {
    use super::{Head, Shape};

    const LANES: usize = 16;
    /// Queries computed together in attention.
    const QUERIES: usize = 4;

    /// `max` as a plain select: `f32::max` promises IEEE maxNum's NaN rule, which wasm's vector
    /// max does not have, so LLVM would take the lanes one at a time there.
    #[inline(always)]
    fn larger(a: f32, b: f32) -> f32 {
        if a > b { a } else { b }
    }

    /// `e^x` to ≈ 2 ulp for x in [-87, 88] (Cephes' `expf`): `2^n · e^r` with `n = round(x·log₂e)`
    /// and `e^r` a degree-7 polynomial on |r| ≤ ln2/2. Inputs are clamped to that range: below it
    /// the result is ≈ 1.6e-38 instead of 0, which no softmax sum or GELU tail can see.
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        // 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
        const ROUND: f32 = 12_582_912.0;
        let x = if x > 88.0 { 88.0 } else { x }; // (written so that NaN stays NaN)
        let x = if x < -87.0 { -87.0 } else { x };
        let t = x * std::f32::consts::LOG2_E + ROUND;
        let n = t - ROUND;
        let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4; // ln2 in two parts, exact product first
        let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 0.166_666_65)
            * r
            + 0.5;
        let e_r = p * r * r + r + 1.0;
        let n = t.to_bits() as i32 - ROUND.to_bits() as i32;
        e_r * f32::from_bits(((n + 127) as u32) << 23)
    }

    /// `0.5·x·(1 + erf(x/√2))` with erf from Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7): with
    /// f32 rounding the GELU is within 2e-7·|x| of the exact one (libm's erf gives ≈ 0.6e-7·|x|).
    #[inline(always)]
    pub fn gelu_one(x: f32) -> f32 {
        let z = x * std::f32::consts::FRAC_1_SQRT_2;
        let a = z.abs();
        let t = 1.0 / (1.0 + 0.327_591_1 * a);
        let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6) * t;
        let erf_abs = 1.0 - poly * exp(-a * a);
        0.5 * x * (1.0 + erf_abs.copysign(z))
    }

    #[inline(always)]
    pub fn gelu(values: &mut [f32]) {
        values.iter_mut().for_each(|v| *v = gelu_one(*v));
    }

    /// Negatives to 0, NaN kept (as burn's and torch's ReLU).
    #[inline(always)]
    pub fn relu(values: &mut [f32]) {
        values.iter_mut().for_each(|v| *v = if *v < 0.0 { 0.0 } else { *v });
    }

    /// Rotary embedding of one head vector, `(x·cos + rotate_half(x)·sin)·scale`, with
    /// `rotate_half([a, b]) = [-b, a]` on the two halves.
    #[inline(always)]
    fn rotate<const HD: usize>(x: &[f32], cos: &[f32], sin: &[f32], scale: f32) -> [f32; HD] {
        let (x, cos, sin) = (&x[..HD], &cos[..HD], &sin[..HD]);
        let mut out = [0.0; HD];
        for c in 0..HD {
            let partner = if c < HD / 2 { -x[c + HD / 2] } else { x[c - HD / 2] };
            out[c] = (x[c] * cos[c] + partner * sin[c]) * scale;
        }
        out
    }

    /// Attention for head `head` of one batch item. `out`: `[seq, head_dim]`.
    #[inline(always)]
    pub fn attention_head(inputs: &Head, shape: Shape, head: usize, scale: f32, out: &mut [f32]) {
        match shape.head_dim {
            16 => head_n::<16>(inputs, shape, head, scale, out),
            24 => head_n::<24>(inputs, shape, head, scale, out),
            32 => head_n::<32>(inputs, shape, head, scale, out),
            64 => head_n::<64>(inputs, shape, head, scale, out),
            128 => head_n::<128>(inputs, shape, head, scale, out),
            other => unreachable!("rotary_attention takes only head sizes in HEAD_DIMS, not {other}"),
        }
    }

    /// Queries by blocks of [`QUERIES`] (each key and value loaded once serves them all): their
    /// scores against blocks of [`LANES`] keys (bias plus `Σ_c q_c·k_c`, one vector per block and
    /// query), then `Σ_j e^{s_j − max}·v_j / Σ_j e^{s_j − max}`. Keys are padded to whole blocks
    /// with zero keys and values and a bias of −1e30, whose weight (≈ 1e-38) no sum can see; a
    /// short last block of queries computes zero queries it does not write.
    #[inline(always)]
    fn head_n<const HD: usize>(inputs: &Head, shape: Shape, head: usize, scale: f32, out: &mut [f32]) {
        let Shape { seq, heads, .. } = shape;
        let blocks = seq.div_ceil(LANES);
        let at = |t: usize| (t * heads + head) * HD;
        // Keys after the rotary, `[blocks][HD][LANES]`; values `[blocks·LANES][HD]`.
        let mut keys = vec![[[0.0f32; LANES]; HD]; blocks];
        let mut values = vec![[0.0f32; HD]; blocks * LANES];
        let mut bias = vec![[-1e30f32; LANES]; blocks];
        for t in 0..seq {
            let k = rotate::<HD>(&inputs.k[at(t)..], &inputs.cos[t * HD..], &inputs.sin[t * HD..], 1.0);
            for c in 0..HD {
                keys[t / LANES][c][t % LANES] = k[c];
            }
            values[t].copy_from_slice(&inputs.v[at(t)..][..HD]);
            bias[t / LANES][t % LANES] = inputs.bias[t];
        }
        let mut scores = vec![[[0.0f32; LANES]; QUERIES]; blocks];
        for (first, out) in (0..seq).step_by(QUERIES).zip(out.chunks_mut(QUERIES * HD)) {
            // (Plain loops here, not `array::from_fn`: its closure is not inlined into the
            // AVX-512 copy of this function and would run without those features.)
            let mut q = [[0.0f32; HD]; QUERIES];
            for (r, q) in q.iter_mut().enumerate().take(seq - first) {
                let i = first + r;
                *q = rotate::<HD>(&inputs.q[at(i)..], &inputs.cos[i * HD..], &inputs.sin[i * HD..], scale);
            }
            let mut max = [[f32::NEG_INFINITY; LANES]; QUERIES];
            for ((s, k), b) in scores.iter_mut().zip(&keys).zip(&bias) {
                let mut acc = [*b; QUERIES];
                for c in 0..HD {
                    for r in 0..QUERIES {
                        for l in 0..LANES {
                            acc[r][l] += q[r][c] * k[c][l];
                        }
                    }
                }
                for r in 0..QUERIES {
                    for l in 0..LANES {
                        max[r][l] = larger(max[r][l], acc[r][l]);
                    }
                }
                *s = acc;
            }
            let mut row_max = [f32::NEG_INFINITY; QUERIES];
            for r in 0..QUERIES {
                for l in 0..LANES {
                    row_max[r] = larger(row_max[r], max[r][l]);
                }
            }
            let mut sum = [[0.0f32; LANES]; QUERIES];
            let mut acc = [[0.0f32; HD]; QUERIES];
            for (s, v) in scores.iter().zip(values.chunks_exact(LANES)) {
                let mut p = [[0.0f32; LANES]; QUERIES];
                for r in 0..QUERIES {
                    for l in 0..LANES {
                        p[r][l] = exp(s[r][l] - row_max[r]);
                        sum[r][l] += p[r][l];
                    }
                }
                for l in 0..LANES {
                    for r in 0..QUERIES {
                        for c in 0..HD {
                            acc[r][c] += p[r][l] * v[l][c];
                        }
                    }
                }
            }
            for (r, out) in out.chunks_exact_mut(HD).enumerate() {
                let inv = 1.0 / sum[r].iter().sum::<f32>();
                for c in 0..HD {
                    out[c] = acc[r][c] * inv;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64, independent of the code under test: its Taylor series below 2.5 (terms stay
    /// under ≈ 500, so f64 keeps 13 digits) and above it erfc's continued fraction
    /// `e^{-z²}/√π · 1/(z + ½/(z + 1/(z + 3⁄2/(z + …))))`, evaluated from its 200th term back.
    fn erf64(z: f64) -> f64 {
        let a = z.abs();
        if a >= 2.5 {
            let fraction = (1..=200).rev().fold(a, |f, n| a + n as f64 / 2.0 / f);
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / fraction;
            return (1.0 - erfc).copysign(z);
        }
        let (mut term, mut sum, mut n) = (z, z, 0.0);
        while term.abs() > 1e-18 {
            n += 1.0;
            term *= -z * z / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }

    #[test]
    fn exp_is_within_3_ulp_of_f64() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f64 / 200_000.0;
            let got = portable::exp(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 3.0 * f32::EPSILON as f64, "largest relative error {worst:e}");
        assert!(portable::exp(-1e30) < 2e-38 && portable::exp(f32::NEG_INFINITY) < 2e-38);
        assert!(portable::exp(f32::NAN).is_nan(), "a NaN must not turn into a number");
    }

    #[test]
    fn gelu_matches_the_exact_gelu() {
        let mut xs: Vec<f32> = (0..=40_000).map(|i| -10.0 + 20.0 * i as f32 / 40_000.0).collect();
        let want: Vec<f64> = xs.iter().map(|&x| 0.5 * x as f64 * (1.0 + erf64(x as f64 / 2f64.sqrt()))).collect();
        simd::gelu(&mut xs);
        for (i, (&got, &want)) in xs.iter().zip(&want).enumerate() {
            let x = -10.0 + 20.0 * i as f64 / 40_000.0;
            let tolerance = 2e-7 * x.abs() + 1e-7 * want.abs() + 1e-30;
            assert!((got as f64 - want).abs() <= tolerance, "gelu({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn gelu_of_a_strided_tensor_equals_burns() {
        let device = Device::default();
        let x = Tensor::<4>::random([2, 3, 5, 21], burn::tensor::Distribution::Normal(0.0, 3.0), &device);
        let xt = x.swap_dims(2, 3); // a view: the kernel copies it out first
        let want = activation::gelu(xt.clone());
        gelu(xt).into_data().assert_approx_eq::<f32>(&want.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }

    /// Every output element in exactly one tile, for row counts below and above a row tile and
    /// column counts that are and are not whole multiples of `Tiles::COLS`.
    #[test]
    fn tiles_cover_the_output_once() {
        for threads in [1, 2, 3, 8] {
            for rows in [1, 7, 255, 256, 302, 1002, 9664] {
                for cols in [1, 33, 320, 1280, 1000] {
                    let tiles = Tiles::new(rows, cols, threads);
                    let mut seen = vec![0u8; rows * cols];
                    for i in 0..tiles.count() {
                        let ([r0, r1], [c0, c1]) = tiles.get(i, cols);
                        (r0..r1).for_each(|r| (c0..c1).for_each(|c| seen[r * cols + c] += 1));
                    }
                    assert!(seen.iter().all(|&n| n == 1), "{rows}×{cols} on {threads} threads");
                    let capped = tiles.col_tiles == cols.div_ceil(Tiles::COLS);
                    assert!(tiles.count() % threads == 0 || capped, "{} tiles of {rows}×{cols} for {threads} threads", tiles.count());
                }
            }
        }
    }

    /// The fused dense layers against burn's `Linear` and ops, with enough rows for several row
    /// tiles and widths that leave a partial column tile (the tests run on several threads).
    #[test]
    fn dense_layers_equal_burns_ops() {
        use burn::nn::LinearConfig;
        use burn::tensor::{Distribution, Tolerance};
        let device = Device::default();
        for (batch, seq, d_in, d_out) in [(1, 7, 20, 33), (2, 301, 64, 200), (1, 600, 48, 1000)] {
            let x = Tensor::<3>::random([batch, seq, d_in], Distribution::Normal(0.0, 1.0), &device);
            let layer = LinearConfig::new(d_in, d_out).init(&device);
            let other = LinearConfig::new(d_in, d_out).with_bias(false).init(&device);
            let residual = Tensor::<3>::random([batch, seq, d_out], Distribution::Normal(0.0, 1.0), &device);
            let close = |got: Tensor<3>, want: Tensor<3>| got.into_data().assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-5));
            close(linear(&layer, x.clone(), Then::Nothing), layer.forward(x.clone()));
            close(linear(&layer, x.clone(), Then::Gelu), activation::gelu(layer.forward(x.clone())));
            close(linear(&layer, x.clone(), Then::Relu), activation::relu(layer.forward(x.clone())));
            close(linear(&layer, x.clone(), Then::Add(residual.clone())), residual + layer.forward(x.clone()));
            let [a, b] = linear_n([&layer, &other], x.clone());
            close(a, layer.forward(x.clone()));
            close(b, other.forward(x.clone()));
            // A strided input (a view) is copied out first.
            let xt = Tensor::<3>::random([seq, batch, d_in], Distribution::Normal(0.0, 1.0), &device).swap_dims(0, 1);
            close(linear(&layer, xt.clone(), Then::Nothing), layer.forward(xt));
        }
    }
}
