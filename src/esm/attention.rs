use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

use super::EsmConfig;
use crate::kernels::attention_softmax;
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
        let heads = |y: Tensor<3>| y.reshape([b, t, self.n_heads, self.head_dim]).swap_dims(1, 2); // [b, h, t, hd]
        // q is scaled before the rotary, so the attention itself has scale 1.
        let q = heads(self.query.forward(x.clone())).mul_scalar((self.head_dim as f64).powf(-0.5));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let (q, k) = (rotary.apply(q), rotary.apply(k));
        let scores = q.matmul(k.swap_dims(2, 3)); // [b, h, t, t]
        let context = attention_softmax(scores, key_bias).matmul(v); // [b, h, t, hd]
        context.swap_dims(1, 2).reshape([b, t, d]) // [b, t, d_model]
    }
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
        x + self.output.dense.forward(h)
    }
}
