use burn::nn::Embedding;
use burn::prelude::*;

use super::EsmConfig;
use crate::weights::{LoadError, Vars};

/// `EsmEmbeddings`: token embeddings with ESM's inference-time token dropout; no position
/// embeddings (rotary is applied in attention) and no scale.
#[derive(Module, Debug)]
pub struct EsmEmbeddings {
    pub word_embeddings: Embedding,
    token_dropout: bool,
    mask_token_id: u32,
}

/// ESM-2 was trained masking 15% of tokens, 80% of those with `<mask>`.
const MASK_RATIO_TRAIN: f32 = 0.15 * 0.8;

impl EsmEmbeddings {
    pub fn load(vars: &Vars, config: &EsmConfig) -> Result<Self, LoadError> {
        Ok(Self {
            word_embeddings: vars.embedding("word_embeddings", config.vocab_size, config.hidden_size)?,
            token_dropout: config.token_dropout,
            mask_token_id: config.mask_token_id,
        })
    }

    /// # Shapes
    /// - input_ids: `[batch, seq]`, attention_mask: `[batch, seq]` (1 for tokens, 0 for padding)
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2>) -> Tensor<3> {
        let mut x = self.word_embeddings.forward(input_ids.clone()); // [batch, seq, d_model]
        if self.token_dropout {
            // Zero the <mask> rows, then rescale by the share of tokens that were not masked, at
            // inference too: the checkpoint's scale assumes it.
            let is_mask = input_ids.equal_elem(self.mask_token_id as i64); // [batch, seq]
            x = x.mask_fill(is_mask.clone().unsqueeze_dim::<3>(2), 0.0);
            let n_real = attention_mask.clone().sum_dim(1); // [batch, 1]
            let n_mask = is_mask.float().sum_dim(1); // [batch, 1]
            let observed = n_mask / n_real;
            let scale = (observed.neg() + 1.0).recip().mul_scalar(1.0 - MASK_RATIO_TRAIN); // [batch, 1]
            x = x * scale.unsqueeze_dim::<3>(2);
        }
        x * attention_mask.unsqueeze_dim::<3>(2)
    }
}
