use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

use super::EsmConfig;
use crate::kernels::{linear, Then};
use crate::weights::{LoadError, Vars};

/// `EsmLMHead`: `LN(gelu(dense(x))) · Eᵀ + bias`, with E the (tied) token embeddings.
#[derive(Module, Debug)]
pub struct EsmLMHead {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    /// `[d_model, vocab]`: the word embeddings, transposed once at load.
    pub decoder: Tensor<2>,
    pub bias: Param<Tensor<1>>,
}

impl EsmLMHead {
    /// `embeddings` is `[vocab, d_model]`, shared with [`super::EsmEmbeddings`].
    pub fn load(vars: &Vars, config: &EsmConfig, embeddings: Tensor<2>) -> Result<Self, LoadError> {
        let d = config.hidden_size;
        Ok(Self {
            dense: vars.linear("dense", d, d)?,
            layer_norm: vars.layer_norm("layer_norm", d, config.layer_norm_eps)?,
            decoder: embeddings.transpose(),
            bias: Param::from_tensor(vars.tensor("bias", [config.vocab_size])?),
        })
    }

    /// # Shapes
    /// - x: `[batch, seq, d_model]` → logits `[batch, seq, vocab]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.layer_norm.forward(linear(&self.dense, x, Then::Gelu));
        h.matmul(self.decoder.clone().unsqueeze()) + self.bias.val().unsqueeze()
    }
}
