//! CPU fast paths for the two element-wise steps that cost most after the matmuls: the attention
//! softmax (with its key-padding bias) and the exact GELU. Flex, burn's CPU backend, computes both
//! with one scalar libm `exp` / `erf` per element (in wasm a software libm): ≈ 30 % of a native
//! forward before this module (BENCHMARKS.md, "Where the time goes"). Here both are branch-free
//! polynomials the compiler vectorizes (AVX-512 or AVX2 chosen at run time natively, simd128 in
//! wasm), the softmax adds the bias in its first pass instead of a separate full-size add, and
//! natively the rows are split over rayon's threads. Tensors on another backend (WebGPU) or under
//! autodiff take burn's own ops, so the GPU and training paths are unchanged.

use burn::prelude::*;
use burn::tensor::activation;

/// `0.5·x·(1 + erf(x/√2))`, the exact GELU of `transformers`' `"gelu"`. Shapes: any → same.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cpu")]
    if let Some(flex) = flex_f32(&x) {
        drop(x); // so the storage is ours alone and GELU runs in place
        let mut flex = dense(flex);
        par_chunks(flex.storage_mut::<f32>(), 1 << 14, simd::gelu);
        return Tensor::from_primitive::<burn_flex::Flex>(flex);
    }
    activation::gelu(x)
}

/// `softmax(scores + key_bias)` over the keys.
///
/// # Shapes
/// - scores: `[batch, heads, queries, keys]`; key_bias: `[batch, 1, 1, keys]`
/// - output: `[batch, heads, queries, keys]`
pub fn attention_softmax(scores: Tensor<4>, key_bias: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "cpu")]
    if let (Some(flex), Some(bias)) = (flex_f32(&scores), flex_f32(&key_bias)) {
        drop(scores);
        let [batch, _, _, keys] = key_bias.dims();
        let bias = dense(bias);
        let bias = bias.storage::<f32>(); // [batch, keys]
        let mut flex = dense(flex);
        let values = flex.storage_mut::<f32>();
        let per_batch = values.len() / batch; // heads · queries · keys
        for (scores, bias) in values.chunks_mut(per_batch).zip(bias.chunks(keys)) {
            par_chunks(scores, keys * 16, |rows| rows.chunks_mut(keys).for_each(|row| simd::softmax_row(row, bias)));
        }
        return Tensor::from_primitive::<burn_flex::Flex>(flex);
    }
    activation::softmax(scores + key_bias, 3)
}

/// The Flex primitive of an f32 tensor not under autodiff (a cheap handle: Flex shares storage).
#[cfg(feature = "cpu")]
fn flex_f32<const D: usize>(x: &Tensor<D>) -> Option<burn_flex::FlexTensor> {
    let flex = x.clone().try_into_primitive::<burn_flex::Flex>().ok()?;
    (flex.dtype() == burn::tensor::DType::F32).then_some(flex)
}

/// The tensor with storage of its own holding exactly its values in row-major order: itself when
/// it already is that, else a copy.
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

/// `f` on chunks of `chunk` elements: on rayon's threads natively, in order in wasm (no threads).
#[cfg(feature = "cpu")]
fn par_chunks(values: &mut [f32], chunk: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        values.par_chunks_mut(chunk.max(1)).for_each(f);
    }
    #[cfg(target_arch = "wasm32")]
    values.chunks_mut(chunk.max(1)).for_each(f);
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
    dispatch!(softmax_row(row: &mut [f32], bias: &[f32]));
}

/// The kernels as lane-wise loops over blocks of [`LANES`], so that the compiler keeps one vector
/// accumulator per block instead of a serial chain.
pub mod portable {
    const LANES: usize = 16;

    /// `e^x` to ≈ 2 ulp for x in [-87, 88] (Cephes' `expf`): `2^n · e^r` with `n = round(x·log₂e)`
    /// and `e^r` a degree-7 polynomial on |r| ≤ ln2/2. Inputs are clamped to that range: below it
    /// the result is ≈ 1.6e-38 instead of 0, which no softmax sum or GELU tail can see.
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        // 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
        const ROUND: f32 = 12_582_912.0;
        let x = x.max(-87.0).min(88.0);
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

    /// One attention row in place: `softmax(row + bias)`, in three passes (add and max, exp and
    /// sum, scale).
    #[inline(always)]
    pub fn softmax_row(row: &mut [f32], bias: &[f32]) {
        let bias = &bias[..row.len()];
        let mut max = [f32::NEG_INFINITY; LANES];
        let mut blocks = row.chunks_exact_mut(LANES);
        let mut bias_blocks = bias.chunks_exact(LANES);
        for (block, b) in (&mut blocks).zip(&mut bias_blocks) {
            for i in 0..LANES {
                block[i] += b[i];
                max[i] = max[i].max(block[i]);
            }
        }
        for (v, b) in blocks.into_remainder().iter_mut().zip(bias_blocks.remainder()) {
            *v += b;
            max[0] = max[0].max(*v);
        }
        let max = max.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));

        let mut sum = [0.0f32; LANES];
        let mut blocks = row.chunks_exact_mut(LANES);
        for block in &mut blocks {
            for i in 0..LANES {
                block[i] = exp(block[i] - max);
                sum[i] += block[i];
            }
        }
        for v in blocks.into_remainder() {
            *v = exp(*v - max);
            sum[0] += *v;
        }
        let scale = 1.0 / sum.iter().sum::<f32>();
        row.iter_mut().for_each(|v| *v *= scale);
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
    fn softmax_row_matches_f64_with_padding_bias() {
        // 37 keys: two full 16-lane blocks and a tail; the last 5 keys are padding.
        let scores: Vec<f32> = (0..37).map(|i| ((i * 7919) % 97) as f32 / 9.0 - 5.0).collect();
        let bias: Vec<f32> = (0..37).map(|i| if i < 32 { 0.0 } else { -1e30 }).collect();
        let mut row = scores.clone();
        simd::softmax_row(&mut row, &bias);
        let max = scores[..32].iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = scores[..32].iter().map(|&v| (v as f64 - max).exp()).sum();
        for (i, &got) in row.iter().enumerate() {
            let want = if i < 32 { (scores[i] as f64 - max).exp() / sum } else { 0.0 };
            assert!((got as f64 - want).abs() < 1e-7, "key {i}: {got} vs {want}");
        }
    }

    #[test]
    fn tensor_paths_equal_burns_ops() {
        let device = Device::default();
        let x = Tensor::<4>::random([2, 3, 5, 21], burn::tensor::Distribution::Normal(0.0, 3.0), &device);
        let mask = TensorData::new((0..42).map(|i| if i % 21 < 17 || i < 21 { 0.0f32 } else { -1e30 }).collect(), [2, 1, 1, 21]);
        let bias = Tensor::<4>::from_data(mask, &device);
        let want = activation::softmax(x.clone() + bias.clone(), 3);
        let got = attention_softmax(x.clone(), bias);
        got.into_data().assert_approx_eq::<f32>(&want.into_data(), burn::tensor::Tolerance::absolute(1e-6));
        // A strided view (the transpose is not copied) goes through the same path.
        let xt = x.swap_dims(2, 3);
        let want = activation::gelu(xt.clone());
        gelu(xt).into_data().assert_approx_eq::<f32>(&want.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }
}
