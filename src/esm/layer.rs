use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

use super::attention::{EsmAttention, Rotary};
use super::EsmConfig;
use crate::kernels::{linear, Then};
use crate::weights::{LoadError, Vars};

/// `EsmIntermediate`: `gelu(fc1(x))` with the exact (erf) GELU.
#[derive(Module, Debug)]
pub struct EsmIntermediate {
    pub dense: Linear,
}

/// `EsmOutput`: `fc2`, added back to the residual.
#[derive(Module, Debug)]
pub struct EsmOutput {
    pub dense: Linear,
}

/// `EsmLayer`: a pre-LN transformer block.
#[derive(Module, Debug)]
pub struct EsmLayer {
    pub attention: EsmAttention,
    pub layer_norm: LayerNorm,
    pub intermediate: EsmIntermediate,
    pub output: EsmOutput,
}

impl EsmLayer {
    pub fn load(vars: &Vars, config: &EsmConfig) -> Result<Self, LoadError> {
        let (d, f) = (config.hidden_size, config.intermediate_size);
        Ok(Self {
            attention: EsmAttention::load(&vars.pp("attention"), config)?,
            layer_norm: vars.layer_norm("LayerNorm", d, config.layer_norm_eps)?,
            intermediate: EsmIntermediate { dense: vars.pp("intermediate").linear("dense", d, f)? },
            output: EsmOutput { dense: vars.pp("output").linear("dense", f, d)? },
        })
    }

    /// `x += attn(LN₁ x); x += fc2(gelu(fc1(LN₂ x)))`.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`, key_bias: `[batch, 1, 1, seq]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, key_bias: Tensor<4>, rotary: &Rotary) -> Tensor<3> {
        let x = self.attention.forward(x, key_bias, rotary);
        let h = linear(&self.intermediate.dense, self.layer_norm.forward(x.clone()), Then::Gelu); // [batch, seq, d_ffn]
        linear(&self.output.dense, h, Then::Add(x))
    }
}
