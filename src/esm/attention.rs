use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::EsmConfig;
use crate::kernels;
use crate::weights::{LoadError, Vars};

/// `EsmSelfAttention`: multi-head attention with rotary position embeddings.
#[derive(Module, Debug)]
pub struct EsmSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    n_heads: usize,
    head_dim: usize,
}

/// `EsmSelfOutput`: the projection after attention (its dropout is inactive at inference).
#[derive(Module, Debug)]
pub struct EsmSelfOutput {
    pub dense: Linear,
}

/// `EsmAttention`: pre-LN, attention, projection, residual.
#[derive(Module, Debug)]
pub struct EsmAttention {
    pub layer_norm: LayerNorm,
    pub self_attn: EsmSelfAttention,
    pub output: EsmSelfOutput,
}

/// cos and sin of the rotary angles, each `[seq, head_dim]`: positions `0..seq` whatever the
/// padding, frequencies `1 / θ^(2i/head_dim)` repeated twice (the rotate-half layout).
pub struct Rotary {
    cos: Tensor<2>,
    sin: Tensor<2>,
}

impl Rotary {
    pub fn new(seq: usize, head_dim: usize, theta: f64, device: &Device) -> Self {
        let half = head_dim / 2;
        // f32 throughout, as transformers computes them.
        let inv_freq: Vec<f32> =
            (0..half).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos = Vec::with_capacity(seq * head_dim);
        let mut sin = Vec::with_capacity(seq * head_dim);
        for t in 0..seq {
            for j in 0..head_dim {
                let angle = t as f32 * inv_freq[j % half];
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [seq, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [seq, head_dim]), device),
        }
    }

    /// `x·cos + rotate_half(x)·sin`, with `rotate_half([a, b]) = [-b, a]` on the two halves.
    ///
    /// # Shapes
    /// - x: `[batch, heads, seq, head_dim]` → same
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, t, d] = x.dims();
        let first = x.clone().slice(s![.., .., .., 0..d / 2]);
        let second = x.clone().slice(s![.., .., .., d / 2..]);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        let cos = self.cos.clone().unsqueeze::<4>().expand([b, h, t, d]);
        let sin = self.sin.clone().unsqueeze::<4>().expand([b, h, t, d]);
        x * cos + rotated * sin
    }
}

impl EsmSelfAttention {
    pub fn load(vars: &Vars, config: &EsmConfig) -> Result<Self, LoadError> {
        let d = config.hidden_size;
        Ok(Self {
            query: vars.linear("query", d, d)?,
            key: vars.linear("key", d, d)?,
            value: vars.linear("value", d, d)?,
            n_heads: config.num_attention_heads,
            head_dim: config.head_dim(),
        })
    }

    /// # Shapes
    /// - x: `[batch, seq, d_model]`; key_bias: `[batch, 1, 1, seq]` (0 for tokens, a large negative for pads)
    /// - output: `[batch, seq, d_model]`, heads concatenated head-major
    pub fn forward(&self, x: Tensor<3>, key_bias: Tensor<4>, rotary: &Rotary) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let heads = |y: Tensor<3>| y.reshape([b, t, self.n_heads, self.head_dim]); // [b, t, h, hd]
        let [q, k, v] = kernels::linear_n([&self.query, &self.key, &self.value], x).map(heads);
        // q is scaled (before the rotary, which is linear), so the attention itself has scale 1.
        let scale = (self.head_dim as f64).powf(-0.5);
        #[cfg(feature = "cpu")]
        let fused = kernels::rotary_attention(&q, &k, &v, &key_bias, &rotary.cos, &rotary.sin, scale as f32);
        #[cfg(not(feature = "cpu"))]
        let fused = None;
        let context = fused.unwrap_or_else(|| attention(q, k, v, key_bias, rotary, scale)); // [b, h, t, hd]
        context.swap_dims(1, 2).reshape([b, t, d]) // [b, t, d_model]
    }
}

/// `softmax(rot(q)·scale · rot(k)ᵀ + key_bias) · v` with burn's ops: the path of the WebGPU
/// backend and of autodiff (the CPU takes `kernels::rotary_attention`, one fused pass).
///
/// # Shapes
/// - q, k, v: `[batch, seq, heads, head_dim]`; key_bias: `[batch, 1, 1, seq]`
/// - output: `[batch, heads, seq, head_dim]`
fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, key_bias: Tensor<4>, rotary: &Rotary, scale: f64) -> Tensor<4> {
    let [q, k, v] = [q, k, v].map(|y| y.swap_dims(1, 2)); // [b, h, t, hd]
    let (q, k) = (rotary.apply(q.mul_scalar(scale)), rotary.apply(k));
    let scores = q.matmul(k.swap_dims(2, 3)) + key_bias; // [b, h, t, t]
    softmax(scores, 3).matmul(v) // [b, h, t, hd]
}

impl EsmAttention {
    pub fn load(vars: &Vars, config: &EsmConfig) -> Result<Self, LoadError> {
        Ok(Self {
            layer_norm: vars.layer_norm("LayerNorm", config.hidden_size, config.layer_norm_eps)?,
            self_attn: EsmSelfAttention::load(&vars.pp("self"), config)?,
            output: EsmSelfOutput { dense: vars.pp("output").linear("dense", config.hidden_size, config.hidden_size)? },
        })
    }

    /// `x + dense(attention(LN(x)))`. Shapes: `[batch, seq, d_model]` → same.
    pub fn forward(&self, x: Tensor<3>, key_bias: Tensor<4>, rotary: &Rotary) -> Tensor<3> {
        let h = self.self_attn.forward(self.layer_norm.forward(x.clone()), key_bias, rotary);
        kernels::linear(&self.output.dense, h, kernels::Then::Add(x))
    }
}

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// The fused CPU kernel against the same attention in burn's ops, for every head size it is
    /// compiled for, with a padded second sequence and a length that is not a whole block.
    #[test]
    fn fused_attention_equals_burns_ops() {
        let device = Device::default();
        for head_dim in kernels::HEAD_DIMS {
            let (b, t, h) = (2, 37, 3);
            let x = || Tensor::<4>::random([b, t, h, head_dim], Distribution::Normal(0.0, 1.0), &device);
            let (q, k, v) = (x(), x(), x());
            let mask: Vec<f32> = (0..b * t).map(|i| if i < t || i % t < 30 { 0.0 } else { -1e30 }).collect();
            let key_bias = Tensor::<4>::from_data(TensorData::new(mask, [b, 1, 1, t]), &device);
            let rotary = Rotary::new(t, head_dim, 10_000.0, &device);
            let scale = (head_dim as f64).powf(-0.5);
            let fused = kernels::rotary_attention(&q, &k, &v, &key_bias, &rotary.cos, &rotary.sin, scale as f32)
                .expect("f32 tensors on the CPU backend take the fused kernel");
            let reference = attention(q, k, v, key_bias, &rotary, scale);
            fused.into_data().assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(2e-6));
        }
    }
}
