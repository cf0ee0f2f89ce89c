use burn::nn::LayerNorm;
use burn::prelude::*;

use super::attention::Rotary;
use super::{EsmConfig, EsmEmbeddings, EsmLMHead, EsmLayer};
use crate::alphabet::PAD;
use crate::weights::{LoadError, Vars};

/// A padded batch of token sequences.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[batch, seq]`, padded with `<pad>`.
    pub input_ids: Tensor<2, Int>,
    /// `[batch, seq]`: 1.0 for tokens, 0.0 for padding.
    pub attention_mask: Tensor<2>,
    /// Unpadded length of each sequence (cls and eos included).
    pub lengths: Vec<usize>,
}

impl Batch {
    /// Pads `sequences` (each `<cls>` … `<eos>`) to the longest.
    pub fn new(sequences: &[Vec<u32>], device: &Device) -> Self {
        let t = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(sequences.len() * t);
        let mut mask = Vec::with_capacity(sequences.len() * t);
        for s in sequences {
            ids.extend(s.iter().map(|&x| x as i64).chain(std::iter::repeat_n(PAD as i64, t - s.len())));
            mask.extend((0..t).map(|i| if i < s.len() { 1.0f32 } else { 0.0 }));
        }
        let shape = [sequences.len(), t];
        Self {
            input_ids: Tensor::from_data(TensorData::new(ids, shape), device),
            attention_mask: Tensor::from_data(TensorData::new(mask, shape), device),
            lengths: sequences.iter().map(Vec::len).collect(),
        }
    }

    /// `[batch, 1, 1, seq]`: 0 for tokens, a large negative for pads. Finite, so that GPU
    /// softmax kernels never meet `inf - inf`.
    fn key_bias(&self) -> Tensor<4> {
        (self.attention_mask.clone() - 1.0).mul_scalar(1e30).unsqueeze_dims(&[1, 2])
    }
}

/// What a forward pass computed from hidden state `start` on (0 for a full forward).
#[derive(Debug, Clone)]
pub struct Activations {
    /// The layer number of `hidden_states[0]`.
    pub start: usize,
    /// Hidden states `start..=n_layers`, each `[batch, seq, d_model]`, numbered as transformers
    /// numbers `hidden_states`: 0 = embeddings, i = output of block i, the last taken after
    /// `emb_layer_norm_after`.
    pub hidden_states: Vec<Tensor<3>>,
    /// `[batch, seq, d_model]`: the last block's output before `emb_layer_norm_after`; `None` when
    /// the pass started after it (`start == n_layers`).
    pub residual_pre_ln: Option<Tensor<3>>,
    /// `[batch, seq, vocab]`.
    pub logits: Tensor<3>,
}

impl Activations {
    /// Hidden state `layer` (transformers numbering).
    pub fn hidden(&self, layer: usize) -> &Tensor<3> {
        &self.hidden_states[layer - self.start]
    }
}

/// The residue rows of every sequence of hidden states, `<cls>` and `<eos>` dropped, flattened:
/// `[batch, T, d]` → `[batch · (T − 2), d]`.
pub fn residue_rows(h: Tensor<3>) -> Tensor<2> {
    let [b, t, d] = h.dims();
    h.slice(s![.., 1..t - 1, ..]).reshape([b * (t - 2), d])
}

/// `EsmForMaskedLM`: embeddings, the blocks, `emb_layer_norm_after`, the tied LM head.
#[derive(Module, Debug)]
pub struct EsmModel {
    pub embeddings: EsmEmbeddings,
    pub layer: Vec<EsmLayer>,
    pub emb_layer_norm_after: LayerNorm,
    pub lm_head: EsmLMHead,
    head_dim: usize,
    rope_theta: f64,
}

impl EsmModel {
    /// Builds the model from weights in hub naming (`esm.*`, `lm_head.*`).
    pub fn load(vars: &Vars, config: &EsmConfig) -> Result<Self, LoadError> {
        let esm = vars.pp("esm");
        let embeddings = EsmEmbeddings::load(&esm.pp("embeddings"), config)?;
        let layer = (0..config.num_hidden_layers)
            .map(|i| EsmLayer::load(&esm.pp("encoder.layer").pp(i.to_string()), config))
            .collect::<Result<Vec<_>, _>>()?;
        let emb_layer_norm_after =
            esm.pp("encoder").layer_norm("emb_layer_norm_after", config.hidden_size, config.layer_norm_eps)?;
        let lm_head = EsmLMHead::load(&vars.pp("lm_head"), config, embeddings.word_embeddings.weight.val())?;
        Ok(Self { embeddings, layer, emb_layer_norm_after, lm_head, head_dim: config.head_dim(), rope_theta: config.rope_theta })
    }

    pub fn n_layers(&self) -> usize {
        self.layer.len()
    }

    pub fn d_model(&self) -> usize {
        self.embeddings.word_embeddings.weight.dims()[1]
    }

    /// How the dense layers' weights are held.
    pub fn precision(&self) -> crate::device::Precision {
        match self.lm_head.dense.weight.dtype() {
            burn::tensor::DType::F16 => crate::device::Precision::F16,
            _ => crate::device::Precision::F32,
        }
    }

    /// The device the weights live on, where every input of this model must be made.
    pub fn device(&self) -> Device {
        self.embeddings.word_embeddings.weight.device()
    }

    /// The full forward pass, keeping every hidden state.
    pub fn forward(&self, batch: &Batch) -> Activations {
        let x = self.embeddings.forward(batch.input_ids.clone(), batch.attention_mask.clone()); // [b, t, d]
        self.forward_from(0, x, batch)
    }

    /// Runs from `x` = hidden state `start` (`[batch, seq, d_model]`): blocks `start+1..=n`, the
    /// final LN and the LM head. With `start == n_layers`, `x` is already after the final LN and
    /// only the LM head runs.
    pub fn forward_from(&self, start: usize, x: Tensor<3>, batch: &Batch) -> Activations {
        let n = self.n_layers();
        let (hidden_states, residual_pre_ln) = self.hidden_between(start, n, x, batch);
        let logits = self.lm_head.forward(hidden_states[n - start].clone());
        Activations { start, hidden_states, residual_pre_ln, logits }
    }

    /// Hidden states `start..=stop` from `x` = hidden state `start`: only blocks
    /// `start+1..=stop` run, and the final LN when `stop` is the last layer (whose output before
    /// that LN is returned too). No LM head: for analyses that read a middle layer.
    pub fn hidden_between(&self, start: usize, stop: usize, x: Tensor<3>, batch: &Batch) -> (Vec<Tensor<3>>, Option<Tensor<3>>) {
        let n = self.n_layers();
        assert!(start <= stop && stop <= n, "layers {start}..={stop} are not within the model's {n}");
        let mut hidden_states = vec![x.clone()];
        if start == stop {
            return (hidden_states, None);
        }
        let [_, t, _] = x.dims();
        let key_bias = batch.key_bias();
        let rotary = Rotary::new(t, self.head_dim, self.rope_theta, &x.device());
        let mut x = x;
        for block in &self.layer[start..stop] {
            x = block.forward(x, key_bias.clone(), &rotary);
            hidden_states.push(x.clone());
        }
        if stop < n {
            return (hidden_states, None);
        }
        // Hidden state n is taken after the final LN, as transformers reports it.
        let last = hidden_states.pop().expect("at least one block ran");
        hidden_states.push(self.emb_layer_norm_after.forward(last.clone()));
        (hidden_states, Some(last))
    }
}
