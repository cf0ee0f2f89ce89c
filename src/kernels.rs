//! CPU fast paths for what costs most after the dense layers: attention and the exact GELU.
//! Flex, burn's CPU backend, computes softmax and GELU with one scalar libm `exp` / `erf` per
//! element (in wasm a software libm), and attention as separate ops around a `[heads, seq, seq]`
//! score tensor with the heads transposed to and fro (BENCHMARKS.md, "Where the time goes").
//! Here exp and erf are branch-free polynomials the compiler vectorizes (AVX-512 or AVX2 chosen
//! at run time natively, simd128 in wasm), attention runs four query rows at a time with the
//! rotary embedding, bias, softmax and value sum fused (the scores never leave L1), and natively the
//! work is split over rayon's threads. Tensors on another backend (WebGPU) or under autodiff take
//! burn's own ops, so the GPU and training paths are unchanged.

use burn::prelude::*;
use burn::tensor::activation;

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
}
