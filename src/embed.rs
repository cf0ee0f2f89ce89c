//! Per-record results shared by the CLI and the page: the model run on one record, read back
//! to plain vectors, and per-residue predictions.

use burn::prelude::*;
use serde::Serialize;

use crate::alphabet::VOCAB;
use crate::device::{read_f32, DeviceError};
use crate::esm::{Activations, Batch, EsmModel};

/// One record's forward pass, as plain data.
#[derive(Debug, Clone)]
pub struct RecordOutput {
    /// `[T]` with T = residues + 2 (cls and eos kept).
    pub input_ids: Vec<i64>,
    /// `[n_layers + 1, T, d_model]`, transformers numbering.
    pub hidden_states: Vec<f32>,
    /// `[T, vocab]`.
    pub logits: Vec<f32>,
    pub n_layers: usize,
    pub d_model: usize,
}

impl RecordOutput {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    pub fn vocab(&self) -> usize {
        self.logits.len() / self.len()
    }
}

/// Runs one record (`<cls>` … `<eos>` tokens) and reads every hidden state and the logits.
pub async fn run_record(model: &EsmModel, tokens: &[u32], device: &Device) -> Result<RecordOutput, DeviceError> {
    let batch = Batch::new(&[tokens.to_vec()], device);
    let Activations { hidden_states, logits, .. } = model.forward(&batch);
    let [_, _, d_model] = hidden_states[0].dims();
    let stacked = Tensor::cat(hidden_states, 0); // [n_layers + 1, T, d_model]
    Ok(RecordOutput {
        input_ids: tokens.iter().map(|&t| t as i64).collect(),
        hidden_states: read_f32(stacked).await?,
        logits: read_f32(logits).await?,
        n_layers: model.n_layers(),
        d_model,
    })
}

/// What the model predicts at one residue.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResiduePrediction {
    /// The residue as given (a letter, or `<mask>`).
    pub residue: String,
    /// Probability of the given residue (0 for `<mask>`).
    pub p_actual: f32,
    /// The most probable tokens, best first, with their probabilities.
    pub top: Vec<(String, f32)>,
}

/// Softmax of each residue's `[T, vocab]` logits (cls and eos dropped) for the T tokens they were
/// computed for, with the `k` best tokens.
pub fn predictions(logits: &[f32], tokens: &[u32], k: usize) -> Vec<ResiduePrediction> {
    let v = logits.len() / tokens.len();
    crate::alphabet::residue_positions(tokens.len())
        .map(|pos| {
            let row = &logits[pos * v..(pos + 1) * v];
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let exp: Vec<f32> = row.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = exp.iter().sum();
            let p: Vec<f32> = exp.iter().map(|e| e / sum).collect();
            let actual = tokens[pos] as usize;
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            ResiduePrediction {
                residue: VOCAB[actual].to_string(),
                p_actual: if actual == crate::alphabet::MASK as usize { 0.0 } else { p[actual] },
                top: order.into_iter().take(k).map(|i| (VOCAB[i].to_string(), p[i])).collect(),
            }
        })
        .collect()
}
