//! Each feature's direct effect on the predictions: its decoder direction, scaled to the
//! feature's max, added to the corpus's mean final residual and read through the final layer
//! norm and the LM head, with no block in between. The direct path only: what the blocks after
//! the SAE's layer make of the direction is left out. For SAEs that normalise each token
//! (InterProt), the direction is in the normalised units.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::amino_acids;
use crate::device::{read_f32, DeviceError};
use crate::esm::EsmModel;
use crate::sae::Sae;

/// Amino acids listed each way.
pub const LISTED: usize = 3;
/// Features sent through the head at a time.
const CHUNK: usize = 1024;

/// Δ log p of the amino acids a feature moves most, each way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectEffect {
    pub promotes: Vec<(String, f32)>,
    pub suppresses: Vec<(String, f32)>,
}

/// log-softmax of the logits rows `[k, vocab]` (row-major).
fn log_softmax_rows(logits: &[f32], vocab: usize) -> Vec<f32> {
    logits
        .chunks_exact(vocab)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
            row.iter().map(move |x| x - lse)
        })
        .collect()
}

/// The final LN and the LM head on `x` `[k, d]` → log-probabilities `[k, vocab]`.
async fn head(model: &EsmModel, x: Tensor<2>) -> Result<Vec<f32>, DeviceError> {
    let [k, d] = x.dims();
    let logits = model.lm_head.forward(model.emb_layer_norm_after.forward(x.reshape([1, k, d]))); // [1, k, vocab]
    let vocab = logits.dims()[2];
    Ok(log_softmax_rows(&read_f32(logits).await?, vocab))
}

/// The direct effect of every feature with `maxima[f] > 0` (`None` for the others), from
/// `mean_residual` (`[d_model]`).
pub async fn direct_effects(model: &EsmModel, sae: &Sae, mean_residual: &[f32], maxima: &[f32]) -> Result<Vec<Option<DirectEffect>>, DeviceError> {
    let device = model.device();
    let d = mean_residual.len();
    let base = Tensor::<2>::from_data(TensorData::new(mean_residual.to_vec(), [1, d]), &device); // [1, d]
    let before = head(model, base.clone()).await?;
    let vocab = before.len();
    let acids = amino_acids();
    let live: Vec<usize> = (0..maxima.len()).filter(|&f| maxima[f] > 0.0).collect();
    let mut out = vec![None; maxima.len()];
    for chunk in live.chunks(CHUNK) {
        let k = chunk.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(chunk.iter().map(|&f| f as i64).collect::<Vec<_>>(), [k]), &device);
        let scale = Tensor::<2>::from_data(TensorData::new(chunk.iter().map(|&f| maxima[f]).collect::<Vec<_>>(), [k, 1]), &device);
        let x = base.clone() + sae.w_dec.clone().select(0, index) * scale; // [k, d]
        let after = head(model, x).await?; // [k, vocab]
        for (i, &f) in chunk.iter().enumerate() {
            let mut moved: Vec<(String, f32)> = acids.iter().map(|&(t, aa)| (aa.to_string(), after[i * vocab + t as usize] - before[t as usize])).collect();
            moved.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let promotes = moved.iter().take(LISTED).filter(|m| m.1 > 0.0).cloned().collect();
            let suppresses = moved.iter().rev().take(LISTED).filter(|m| m.1 < 0.0).cloned().collect();
            out[f] = Some(DirectEffect { promotes, suppresses });
        }
    }
    Ok(out)
}
