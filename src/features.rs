//! SAE features of a sequence at a layer: per residue (cls and eos excluded, as InterPLM gives
//! them), their summaries, the reconstruction and its quality.

use burn::prelude::*;

use crate::device::{read_f32, DeviceError};
use crate::esm::{residue_rows, Activations, EsmModel};
use crate::sae::{Encoded, Sae, TokenNorm};

/// Why a layer, feature or position cannot be used with this model and SAE.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UseError {
    #[error("layer {layer} is out of range: this model has hidden states 1..={n_layers} for an SAE (0 is the embeddings)")]
    Layer { layer: usize, n_layers: usize },
    #[error("the SAE reads vectors of d_in = {d_in}, but this model's residual stream has d_model = {d_model}")]
    DIn { d_in: usize, d_model: usize },
    #[error("feature {feature} does not exist: the SAE has features 0..{d_sae}")]
    Feature { feature: usize, d_sae: usize },
    #[error("residue {position} is out of range: the sequence has residues 1..={residues}")]
    Position { position: usize, residues: usize },
}

/// Checks that `layer` is a hidden state of `model` after the embeddings (1..=n_layers).
pub fn check_layer(model: &EsmModel, layer: usize) -> Result<(), UseError> {
    let n_layers = model.n_layers();
    if layer == 0 || layer > n_layers {
        return Err(UseError::Layer { layer, n_layers });
    }
    Ok(())
}

/// Checks that `sae` can read hidden state `layer` of `model`.
pub fn check(model: &EsmModel, sae: &Sae, layer: usize) -> Result<(), UseError> {
    check_layer(model, layer)?;
    if sae.d_in != model.d_model() {
        return Err(UseError::DIn { d_in: sae.d_in, d_model: model.d_model() });
    }
    Ok(())
}

/// The residue rows of hidden state `layer` of a one-sequence pass. `[1, T, d]` → `[T − 2, d]`.
pub fn residues(acts: &Activations, layer: usize) -> Tensor<2> {
    residue_rows(acts.hidden(layer).clone())
}

/// Encodes the residues of a one-sequence pass at `layer`.
pub fn encode(acts: &Activations, sae: &Sae, layer: usize) -> Encoded {
    sae.encode(residues(acts, layer))
}

/// How well the SAE reconstructs `x` (`[n, d_in]`).
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconstruction {
    /// Mean over tokens of ‖x − x̂‖².
    pub mse: f32,
    /// 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the mean token.
    pub fraction_of_variance_explained: f32,
}

/// Rows [`encode_sparse`] encodes at a time: 256 × 10,240 features is 10 MB dense.
pub const ENCODE_ROWS: usize = 256;

/// The SAE features of `x` (`[n, d_in]`) as sparse lists, and how well they reconstruct it.
/// Encoded by blocks of [`ENCODE_ROWS`] rows, so that the dense `[n, d_sae]` matrix (39 MB for
/// 1,000 residues and 10,240 features, twice over while the activation runs) never exists
/// whole. The blocks equal the rows of one whole encoding: every token norm and activation
/// (ReLU, JumpReLU, top-k) works row by row.
pub async fn encode_sparse(sae: &Sae, x: Tensor<2>) -> Result<(SparseEncoded, Reconstruction), DeviceError> {
    let [n, _] = x.dims();
    let (mut rows, mut norms, mut err) = (Vec::with_capacity(n), Vec::new(), 0.0);
    for start in (0..n).step_by(ENCODE_ROWS) {
        let block = x.clone().slice(s![start..(start + ENCODE_ROWS).min(n), ..]); // [≤ ENCODE_ROWS, d_in]
        let Encoded { features, norm } = sae.encode(block.clone());
        let x_hat = sae.decode(features.clone(), &norm);
        err += read_f32((block - x_hat).powf_scalar(2.0).sum()).await?[0];
        rows.extend(SparseFeatures::from_dense(&read_f32(features).await?, sae.d_sae).rows);
        norms.push(norm);
    }
    let var = read_f32((x.clone() - x.mean_dim(0)).powf_scalar(2.0).sum()).await?[0];
    let encoded = SparseEncoded { features: SparseFeatures { d_sae: sae.d_sae, rows }, norm: TokenNorm::cat(norms) };
    Ok((encoded, Reconstruction::from_sums(&[err, var], n)))
}

impl Reconstruction {
    pub fn from_sums(sums: &[f32], n_tokens: usize) -> Self {
        Self { mse: sums[0] / n_tokens as f32, fraction_of_variance_explained: 1.0 - sums[0] / sums[1] }
    }
}

/// Features as (index, value) pairs per residue: far smaller than the dense `[R, d_sae]` matrix
/// when few features fire (10,240 features × 300 residues is 12 MB dense).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SparseFeatures {
    pub d_sae: usize,
    /// For each residue, its nonzero features as `(feature, value)`, feature ascending.
    pub rows: Vec<Vec<(u32, f32)>>,
}

impl SparseFeatures {
    /// From a dense row-major `[rows, d_sae]` matrix.
    pub fn from_dense(dense: &[f32], d_sae: usize) -> Self {
        let rows = dense
            .chunks_exact(d_sae)
            .map(|row| row.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(j, v)| (j as u32, *v)).collect())
            .collect();
        Self { d_sae, rows }
    }

    /// Feature `feature` at every residue, 0 where it does not fire: `[rows]`.
    pub fn column(&self, feature: usize) -> Vec<f32> {
        let j = feature as u32;
        self.rows.iter().map(|row| row.binary_search_by_key(&j, |&(f, _)| f).map_or(0.0, |i| row[i].1)).collect()
    }

    /// Per-feature max and mean over residues, equal to those of the dense matrix.
    pub fn summary(&self) -> Summary {
        let (mut max, mut sum, mut fired) = (vec![f32::NEG_INFINITY; self.d_sae], vec![0.0f32; self.d_sae], vec![0usize; self.d_sae]);
        for &(j, v) in self.rows.iter().flatten() {
            let j = j as usize;
            max[j] = max[j].max(v);
            sum[j] += v;
            fired[j] += 1;
        }
        let n = self.rows.len();
        for (m, &f) in max.iter_mut().zip(&fired) {
            if f < n {
                *m = m.max(0.0); // a residue where it did not fire holds a 0
            }
        }
        Summary { max, mean: sum.into_iter().map(|s| s / n as f32).collect() }
    }

    /// Each feature's values divided by its factor (InterPLM's `activation_rescale_factor`).
    pub fn divided_by(&self, factors: &[f32]) -> Self {
        let rows = self.rows.iter().map(|row| row.iter().map(|&(j, v)| (j, v / factors[j as usize])).collect()).collect();
        Self { d_sae: self.d_sae, rows }
    }

    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows.len() * self.d_sae];
        for (r, row) in self.rows.iter().enumerate() {
            for &(j, v) in row {
                out[r * self.d_sae + j as usize] = v;
            }
        }
        out
    }
}

/// Per-feature summaries over residues: `[d_sae]` each.
pub struct Summary {
    pub max: Vec<f32>,
    pub mean: Vec<f32>,
}

/// An encoding kept as its sparse features instead of the dense `[R, d_sae]` matrix (39 MB for
/// 1,000 residues and 10,240 features): what the page keeps of the shown layer for its edits.
#[derive(Debug, Clone)]
pub struct SparseEncoded {
    /// In the SAE's own units, as [`Encoded::features`].
    pub features: SparseFeatures,
    pub norm: TokenNorm,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_features_round_trip() {
        let dense = [0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 2.0, 0.25];
        let s = SparseFeatures::from_dense(&dense, 4);
        assert_eq!(s.rows, vec![vec![(1, 1.5)], vec![(2, 2.0), (3, 0.25)]]);
        assert_eq!(s.to_dense(), dense);
    }

    #[test]
    fn sparse_columns_and_summaries_equal_the_dense_ones() {
        // 3 residues × 4 features: feature 0 never fires, 1 fires everywhere (one value
        // negative), 2 once, 3 twice.
        let dense = [0.0, 1.5, 0.0, 0.0, 0.0, -0.5, 2.0, 0.25, 0.0, 3.0, 0.0, 1.0];
        let s = SparseFeatures::from_dense(&dense, 4);
        for j in 0..4 {
            let want: Vec<f32> = (0..3).map(|r| dense[r * 4 + j]).collect();
            assert_eq!(s.column(j), want, "feature {j}");
        }
        let summary = s.summary();
        assert_eq!(summary.max, vec![0.0, 3.0, 2.0, 1.0]);
        assert_eq!(summary.mean, vec![0.0, 4.0 / 3.0, 2.0 / 3.0, 1.25 / 3.0]);
        let all_negative = SparseFeatures::from_dense(&[-1.0, -2.0], 1);
        assert_eq!(all_negative.summary().max, vec![-1.0], "no residue holds a 0");
        assert_eq!(s.divided_by(&[1.0, 2.0, 4.0, 0.5]).to_dense(), [0.0, 0.75, 0.0, 0.0, 0.0, -0.25, 0.5, 0.5, 0.0, 1.5, 0.0, 2.0]);
    }
}
