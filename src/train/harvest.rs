//! Activations to train on: hidden state `layer` of every residue of a set of sequences
//! (`<cls>` and `<eos>` left out, as the SAEs read them), up to a number of tokens.

use burn::prelude::*;

use crate::alphabet::Record;
use crate::esm::{Batch, EsmModel};
use crate::features;

use super::TrainError;

/// Runs the blocks up to `layer` only, one sequence at a time; stops once `max_tokens` rows
/// are in. `progress(done, total)` is called after each sequence.
///
/// # Shapes
/// - output: `[min(Σ residues, max_tokens), d_model]`
pub fn harvest(
    model: &EsmModel,
    records: &[Record],
    layer: usize,
    max_tokens: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Tensor<2>, TrainError> {
    features::check_layer(model, layer).map_err(crate::analysis::AnalysisError::from)?;
    if records.is_empty() {
        return Err(TrainError::Data("no sequences to harvest activations from".into()));
    }
    let device = model.device();
    let mut parts = Vec::new();
    let mut rows = 0;
    for (i, record) in records.iter().enumerate() {
        if rows >= max_tokens {
            break;
        }
        let batch = Batch::new(&[record.tokens()], &device);
        let x = model.embeddings.forward(batch.input_ids.clone(), batch.attention_mask.clone()); // [1, T, d]
        let (mut hidden, _) = model.hidden_between(0, layer, x, &batch);
        let h = hidden.pop().expect("hidden state at the layer"); // [1, T, d]
        let [_, t, d] = h.dims();
        let take = (t - 2).min(max_tokens - rows);
        parts.push(h.slice(s![0..1, 1..1 + take, ..]).reshape([take, d])); // [take, d]
        rows += take;
        progress(i + 1, records.len());
    }
    Ok(Tensor::cat(parts, 0))
}
