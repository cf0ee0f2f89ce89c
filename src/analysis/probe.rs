//! Per-residue logistic-regression probes for a concept (transmembrane helix, signal peptide, …)
//! on the residual stream or on SAE features at one layer, with held-out precision, recall, F1
//! and AUROC. A probe is plain JSON: saved, reloaded, and read by circuits as the behavior score.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

use super::labels::Annotated;
use super::{tokens, AnalysisError};
use crate::device::read_f32;
use crate::esm::{residue_rows, Batch, EsmModel};
use crate::features;
use crate::sae::Sae;

/// What a probe reads at its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeInput {
    /// The hidden state (`d_model` values per residue).
    Residual,
    /// The SAE's features of the hidden state (`d_sae` values per residue, the SAE's units).
    Features,
}

/// Per-residue quality at the decision threshold p = 0.5; `None` where undefined (no positives).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub residues: usize,
    pub positives: usize,
    pub precision: Option<f32>,
    pub recall: Option<f32>,
    pub f1: Option<f32>,
    pub auroc: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// "plmscope-probe/1": what this JSON is, so that other files are refused by name.
    pub format: String,
    pub concept: String,
    pub layer: usize,
    pub input: ProbeInput,
    /// Standardisation learnt on the training residues: the probe reads (x − mean) / std.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// Accessions trained on and held out (every fifth protein, in the order given).
    pub trained_on: Vec<String>,
    pub held_out_proteins: Vec<String>,
    pub train: Metrics,
    pub held_out: Option<Metrics>,
}

pub const FORMAT: &str = "plmscope-probe/1";

#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    pub steps: usize,
    pub learning_rate: f64,
    pub l2: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { steps: 300, learning_rate: 0.05, l2: 1e-3 }
    }
}

/// The probe's input rows for the residues of hidden state `layer` (`[b, T, d]`): `[b·(T − 2), d]`.
pub fn inputs(hidden: &Tensor<3>, layer: usize, input: ProbeInput, sae: Option<&Sae>) -> Result<Tensor<2>, AnalysisError> {
    let x = residue_rows(hidden.clone());
    match input {
        ProbeInput::Residual => Ok(x),
        ProbeInput::Features => Ok(sae.ok_or(AnalysisError::NoSae { layer })?.encode(x).features),
    }
}

impl Probe {
    /// Reads a saved probe, refusing other JSON by what is wrong.
    pub fn from_json(text: &str) -> Result<Self, AnalysisError> {
        let p: Probe = serde_json::from_str(text).map_err(|e| AnalysisError::Probe(e.to_string()))?;
        if p.format != FORMAT {
            return Err(AnalysisError::Probe(format!("format is \"{}\", not \"{FORMAT}\"", p.format)));
        }
        let d = p.weights.len();
        if p.mean.len() != d || p.std.len() != d {
            return Err(AnalysisError::Probe(format!("{d} weights but {} means and {} stds", p.mean.len(), p.std.len())));
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !(finite(&p.weights) && finite(&p.mean) && finite(&p.std) && p.bias.is_finite()) || p.std.iter().any(|&s| s <= 0.0) {
            return Err(AnalysisError::Probe("its weights, bias, means and stds must be finite numbers, the stds > 0".into()));
        }
        Ok(p)
    }

    /// Logits of input rows `[R, d]` → `[R]`.
    pub fn logits(&self, x: Tensor<2>) -> Tensor<1> {
        let device = x.device();
        let [r, d] = x.dims();
        let row = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, d]), &device);
        let w = Tensor::<2>::from_data(TensorData::new(self.weights.clone(), [d, 1]), &device);
        ((x - row(&self.mean)) / row(&self.std)).matmul(w).reshape([r]).add_scalar(self.bias)
    }

    /// The behavior score of each batch row: mean probability over its residues. `[b]`.
    pub fn score(&self, x: Tensor<2>, batch_rows: usize) -> Tensor<1> {
        let [r, _] = x.dims();
        sigmoid(self.logits(x)).reshape([batch_rows, r / batch_rows]).mean_dim(1).reshape([batch_rows])
    }
}

/// Trains a probe for `concept` on hidden state `layer` of each protein (or on `sae`'s features
/// of it): full-batch Adam on the balanced logistic loss with an L2 penalty, on the device.
pub async fn train(
    model: &EsmModel,
    sae: Option<&Sae>,
    proteins: &[Annotated],
    concept: &str,
    layer: usize,
    input: ProbeInput,
    options: TrainOptions,
) -> Result<Probe, AnalysisError> {
    features::check_layer(model, layer)?;
    if let Some(sae) = sae {
        features::check(model, sae, layer)?;
    }
    let device = model.device();
    let mut rows = Vec::with_capacity(proteins.len());
    for p in proteins {
        let acts = model.forward(&Batch::new(&[tokens(p)?], &device));
        rows.push((inputs(acts.hidden(layer), layer, input, sae)?, p.labels(concept)));
    }
    let held = |i: usize| proteins.len() >= 5 && i % 5 == 4;
    let (train_idx, test_idx): (Vec<usize>, Vec<usize>) = (0..proteins.len()).partition(|&i| !held(i));
    let n: usize = train_idx.iter().map(|&i| rows[i].1.len()).sum();
    let positives: usize = train_idx.iter().map(|&i| rows[i].1.iter().filter(|&&y| y).count()).sum();
    if positives == 0 || positives == n {
        return Err(AnalysisError::OneClass { concept: concept.into(), residues: n, positives });
    }
    let d = rows[0].0.dims()[1];

    // Standardisation from the training residues.
    let mut sum: Tensor<1> = Tensor::zeros([d], &device);
    let mut sq: Tensor<1> = Tensor::zeros([d], &device);
    for &i in &train_idx {
        sum = sum + rows[i].0.clone().sum_dim(0).reshape([d]);
        sq = sq + rows[i].0.clone().powf_scalar(2.0).sum_dim(0).reshape([d]);
    }
    let (sum, sq) = (read_f32(sum).await?, read_f32(sq).await?);
    let mean: Vec<f32> = sum.iter().map(|s| s / n as f32).collect();
    let std: Vec<f32> =
        sq.iter().zip(&mean).map(|(q, m)| (q / n as f32 - m * m).max(0.0).sqrt()).map(|s| if s > 1e-6 { s } else { 1.0 }).collect();
    let row = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, d]), &device);
    let (mean_t, std_t) = (row(&mean), row(&std));

    // Balanced classes: each class carries half the loss.
    let (w_pos, w_neg) = (n as f32 / (2.0 * positives as f32), n as f32 / (2.0 * (n - positives) as f32));
    let train_rows: Vec<(Tensor<2>, Tensor<2>, Tensor<2>)> = train_idx
        .iter()
        .map(|&i| {
            let (x, y) = &rows[i];
            let r = y.len();
            let yv: Vec<f32> = y.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
            let cv: Vec<f32> = y.iter().map(|&b| if b { w_pos } else { w_neg } / n as f32).collect();
            let xs = (x.clone() - mean_t.clone()) / std_t.clone(); // [r, d]
            (xs, Tensor::from_data(TensorData::new(yv, [r, 1]), &device), Tensor::from_data(TensorData::new(cv, [r, 1]), &device))
        })
        .collect();

    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut w: Tensor<2> = Tensor::zeros([d, 1], &device);
    let mut b: Tensor<2> = Tensor::zeros([1, 1], &device);
    let (mut mw, mut vw) = (w.zeros_like(), w.zeros_like());
    let (mut mb, mut vb) = (b.zeros_like(), b.zeros_like());
    for step in 1..=options.steps {
        let mut gw = w.clone().mul_scalar(options.l2);
        let mut gb = b.zeros_like();
        for (x, y, c) in &train_rows {
            let residual = (sigmoid(x.clone().matmul(w.clone()) + b.clone()) - y.clone()) * c.clone(); // [r, 1]
            gw = gw + x.clone().transpose().matmul(residual.clone()); // [d, 1]
            gb = gb + residual.sum_dim(0);
        }
        let (c1, c2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
        mw = mw.mul_scalar(beta1) + gw.clone().mul_scalar(1.0 - beta1);
        vw = vw.mul_scalar(beta2) + gw.powf_scalar(2.0).mul_scalar(1.0 - beta2);
        mb = mb.mul_scalar(beta1) + gb.clone().mul_scalar(1.0 - beta1);
        vb = vb.mul_scalar(beta2) + gb.powf_scalar(2.0).mul_scalar(1.0 - beta2);
        w = w - mw.clone().div_scalar(c1) / (vw.clone().div_scalar(c2).sqrt().add_scalar(eps)) * options.learning_rate;
        b = b - mb.clone().div_scalar(c1) / (vb.clone().div_scalar(c2).sqrt().add_scalar(eps)) * options.learning_rate;
    }
    let weights = read_f32(w).await?;
    let bias = read_f32(b).await?[0];
    let mut probe = Probe {
        format: FORMAT.into(),
        concept: concept.into(),
        layer,
        input,
        mean,
        std,
        weights,
        bias,
        trained_on: train_idx.iter().map(|&i| proteins[i].accession.clone()).collect(),
        held_out_proteins: test_idx.iter().map(|&i| proteins[i].accession.clone()).collect(),
        train: Metrics::of(&[], &[]),
        held_out: None,
    };
    let scored = |idx: &[usize]| {
        let (mut s, mut y) = (Vec::new(), Vec::new());
        for &i in idx {
            s.push(probe.logits(rows[i].0.clone()));
            y.extend_from_slice(&rows[i].1);
        }
        (s, y)
    };
    let (s, y) = scored(&train_idx);
    let train = Metrics::of(&read_f32(Tensor::cat(s, 0)).await?, &y);
    let held_out = if test_idx.is_empty() {
        None
    } else {
        let (s, y) = scored(&test_idx);
        Some(Metrics::of(&read_f32(Tensor::cat(s, 0)).await?, &y))
    };
    probe.train = train;
    probe.held_out = held_out;
    Ok(probe)
}

impl Metrics {
    /// From logits (positive = predicted in the concept) and labels.
    pub fn of(logits: &[f32], labels: &[bool]) -> Self {
        let tp = logits.iter().zip(labels).filter(|(s, y)| **s > 0.0 && **y).count() as f32;
        let predicted = logits.iter().filter(|s| **s > 0.0).count() as f32;
        let positives = labels.iter().filter(|y| **y).count();
        let ratio = |a: f32, b: f32| (b > 0.0).then(|| a / b);
        let precision = ratio(tp, predicted);
        let recall = ratio(tp, positives as f32);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        Self { residues: labels.len(), positives, precision, recall, f1, auroc: auroc(logits, labels) }
    }
}

/// Area under the ROC curve: the chance that a random positive scores above a random negative,
/// ties counting half. `None` without both classes.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f32> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Ranks, averaged over ties (1-based).
    let mut rank = vec![0f64; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        order[i..=j].iter().for_each(|&k| rank[k] = r);
        i = j + 1;
    }
    let pos = labels.iter().filter(|y| **y).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let sum: f64 = rank.iter().zip(labels).filter(|(_, y)| **y).map(|(r, _)| r).sum();
    Some(((sum - pos * (pos + 1.0) / 2.0) / (pos * neg)) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_auroc() {
        let m = Metrics::of(&[2.0, 1.0, -1.0, 0.5, -3.0], &[true, false, true, true, false]);
        assert_eq!((m.precision, m.recall), (Some(2.0 / 3.0), Some(2.0 / 3.0)));
        assert!((m.f1.unwrap() - 2.0 / 3.0).abs() < 1e-6);
        // Positive scores 2, -1, 0.5; negatives 1, -3: 4 of 6 pairs ordered right.
        assert!((m.auroc.unwrap() - 4.0 / 6.0).abs() < 1e-6);
        assert_eq!(auroc(&[1.0, 1.0], &[true, false]), Some(0.5));
        assert_eq!(Metrics::of(&[1.0], &[false]).recall, None);
    }

    #[test]
    fn saved_probes_are_checked() {
        let e = Probe::from_json("{\"format\": \"x\"}").unwrap_err().to_string();
        assert!(e.starts_with("not a probe: missing field"), "{e}");
    }
}
