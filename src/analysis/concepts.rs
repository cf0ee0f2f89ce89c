//! What features mean: each feature against each concept of annotated proteins.
//! - InterPLM's F1: features divided by their maximum over the proteins, a residue "fires" above
//!   a threshold; precision per residue (firing residues inside the concept), recall per domain
//!   (segments of the concept with at least one firing residue); the best threshold is kept.
//! - InterProt's 1-D logistic regression: the concept fitted on the feature alone, scored by
//!   McFadden's R² (1 − log-likelihood ÷ the base rate's), for the best features by F1.

use burn::prelude::*;
use serde::Serialize;

use super::labels::Annotated;
use super::{tokens, AnalysisError};
use crate::device::read_f32;
use crate::esm::{Batch, EsmModel};
use crate::features;
use crate::sae::Sae;

/// InterPLM's thresholds on max-normalised activations.
pub const THRESHOLDS: [f32; 5] = [0.0, 0.15, 0.5, 0.6, 0.8];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    pub feature: usize,
    /// The threshold (on max-normalised activation) that gave the best F1.
    pub threshold: f32,
    pub precision: f32,
    pub recall: f32,
    pub f1: f32,
    /// McFadden's R² of the 1-D logistic regression.
    pub logistic_r2: f32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConceptRow {
    pub concept: String,
    pub residues: usize,
    pub domains: usize,
    /// Best features, by F1.
    pub top: Vec<Association>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConceptTable {
    pub layer: usize,
    pub d_sae: usize,
    pub proteins: usize,
    pub thresholds: Vec<f32>,
    pub concepts: Vec<ConceptRow>,
}

impl ConceptTable {
    /// The concepts whose table lists `feature`, best F1 first: the feature panel's list.
    pub fn best_for(&self, feature: usize) -> Vec<(&str, &Association)> {
        let mut out: Vec<(&str, &Association)> = self
            .concepts
            .iter()
            .filter_map(|c| c.top.iter().find(|a| a.feature == feature).map(|a| (c.concept.as_str(), a)))
            .collect();
        out.sort_by(|a, b| b.1.f1.total_cmp(&a.1.f1));
        out
    }
}

/// Associates every feature of `sae` at `layer` with each of `concepts`, listing `top` per concept.
pub async fn associate(
    model: &EsmModel,
    sae: &Sae,
    layer: usize,
    proteins: &[Annotated],
    concepts: &[String],
    top: usize,
) -> Result<ConceptTable, AnalysisError> {
    features::check(model, sae, layer)?;
    let device = model.device();
    let d = sae.d_sae;
    let t_n = THRESHOLDS.len();
    // The residues' hidden states are kept; features are encoded again on each pass over them.
    let mut hidden = Vec::with_capacity(proteins.len());
    for p in proteins {
        let acts = model.forward(&Batch::new(&[tokens(p)?], &device));
        hidden.push(features::residues(&acts, layer));
    }
    // Pass 1: each feature's maximum.
    let mut max = vec![0f32; d];
    for x in &hidden {
        let m = read_f32(sae.encode(x.clone()).features.max_dim(0).reshape([d])).await?;
        max.iter_mut().zip(m).for_each(|(a, b)| *a = a.max(b));
    }
    let scale: Vec<f32> = max.iter().map(|&m| if m > 0.0 { 1.0 / m } else { 0.0 }).collect();

    // Pass 2: firing residues, true positives and domains hit, per threshold.
    let c_n = concepts.len();
    let mut fires = vec![0u32; d * t_n];
    let mut tp = vec![0u32; c_n * d * t_n];
    let mut hits = vec![0u32; c_n * d * t_n];
    let (mut residues, mut domains) = (vec![0usize; c_n], vec![0usize; c_n]);
    for (p, x) in proteins.iter().zip(&hidden) {
        let f = read_f32(sae.encode(x.clone()).features).await?; // [R, d] row-major
        let labels: Vec<Vec<bool>> = concepts.iter().map(|c| p.labels(c)).collect();
        for (r, row) in f.chunks_exact(d).enumerate() {
            for (j, &v) in row.iter().enumerate().filter(|(_, v)| **v > 0.0) {
                let above = THRESHOLDS.iter().take_while(|&&t| v * scale[j] > t).count();
                for t in 0..above {
                    fires[j * t_n + t] += 1;
                    for c in (0..c_n).filter(|&c| labels[c][r]) {
                        tp[(c * d + j) * t_n + t] += 1;
                    }
                }
            }
        }
        for (c, concept) in concepts.iter().enumerate() {
            residues[c] += labels[c].iter().filter(|&&y| y).count();
            for s in p.segments.iter().filter(|s| &s.concept == concept) {
                domains[c] += 1;
                for j in 0..d {
                    let peak = (s.start - 1..s.end).map(|r| f[r * d + j]).fold(0f32, f32::max) * scale[j];
                    for t in 0..THRESHOLDS.iter().take_while(|&&t| peak > t).count() {
                        hits[(c * d + j) * t_n + t] += 1;
                    }
                }
            }
        }
    }

    let mut rows = Vec::with_capacity(c_n);
    for (c, concept) in concepts.iter().enumerate() {
        let mut best: Vec<Association> = (0..d)
            .filter_map(|j| {
                (0..t_n)
                    .filter(|&t| fires[j * t_n + t] > 0 && domains[c] > 0)
                    .map(|t| {
                        let precision = tp[(c * d + j) * t_n + t] as f32 / fires[j * t_n + t] as f32;
                        let recall = hits[(c * d + j) * t_n + t] as f32 / domains[c] as f32;
                        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                        Association { feature: j, threshold: THRESHOLDS[t], precision, recall, f1, logistic_r2: 0.0 }
                    })
                    .max_by(|a, b| a.f1.total_cmp(&b.f1))
            })
            .filter(|a| a.f1 > 0.0)
            .collect();
        best.sort_by(|a, b| b.f1.total_cmp(&a.f1).then(a.feature.cmp(&b.feature)));
        best.truncate(top);
        rows.push(ConceptRow { concept: concept.clone(), residues: residues[c], domains: domains[c], top: best });
    }

    // Pass 3: the 1-D regressions of the listed features, on their max-normalised values.
    let mut listed: Vec<usize> = rows.iter().flat_map(|r| r.top.iter().map(|a| a.feature)).collect();
    listed.sort_unstable();
    listed.dedup();
    if !listed.is_empty() {
        let cols = Tensor::<1, Int>::from_data(TensorData::new(listed.iter().map(|&j| j as i64).collect(), [listed.len()]), &device);
        let mut values = vec![Vec::new(); listed.len()];
        let mut labels = vec![Vec::new(); c_n];
        for (p, x) in proteins.iter().zip(&hidden) {
            let f = read_f32(sae.encode_columns(x.clone(), cols.clone())).await?; // [R, listed]
            for row in f.chunks_exact(listed.len()) {
                row.iter().enumerate().for_each(|(i, &v)| values[i].push(v * scale[listed[i]]));
            }
            concepts.iter().enumerate().for_each(|(c, concept)| labels[c].extend(p.labels(concept)));
        }
        for (c, row) in rows.iter_mut().enumerate() {
            for a in &mut row.top {
                let i = listed.binary_search(&a.feature).expect("listed");
                a.logistic_r2 = logistic_r2(&values[i], &labels[c]);
            }
        }
    }
    Ok(ConceptTable { layer, d_sae: d, proteins: proteins.len(), thresholds: THRESHOLDS.to_vec(), concepts: rows })
}

/// McFadden's R² of `y ~ σ(a·x + b)`, fitted by Newton's method.
pub fn logistic_r2(x: &[f32], y: &[bool]) -> f32 {
    let points: Vec<(f64, f64, f64)> = x.iter().zip(y).map(|(&xi, &yi)| (f64::from(xi), f64::from(u8::from(yi)), f64::from(u8::from(!yi)))).collect();
    logistic_r2_weighted(&points)
}

/// [`logistic_r2`] over weighted points `(x, positives, negatives)`: the same fit as listing each
/// point's residues one by one, so that a histogram's bins can stand for its residues.
pub fn logistic_r2_weighted(points: &[(f64, f64, f64)]) -> f32 {
    let pos: f64 = points.iter().map(|p| p.1).sum();
    let n = pos + points.iter().map(|p| p.2).sum::<f64>();
    if pos == 0.0 || pos == n {
        return 0.0;
    }
    // log σ(z) = −softplus(−z), log(1 − σ(z)) = −softplus(z), stable for large |z|.
    let softplus = |u: f64| u.max(0.0) + (-u.abs()).exp().ln_1p();
    let ll = |a: f64, b: f64| -> f64 {
        points.iter().map(|&(x, p, q)| {
            let z = a * x + b;
            -p * softplus(-z) - q * softplus(z)
        }).sum()
    };
    let null = pos * (pos / n).ln() + (n - pos) * (1.0 - pos / n).ln();
    let (mut a, mut b) = (0.0f64, (pos / (n - pos)).ln());
    for _ in 0..30 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(x, p_w, q_w) in points {
            let p = 1.0 / (1.0 + (-(a * x + b)).exp());
            let (w, r) = (p_w + q_w, p * (p_w + q_w) - p_w); // Σ (p − y) over the point's residues
            let c = w * (p * (1.0 - p)).max(1e-12);
            ga += r * x;
            gb += r;
            haa += c * x * x;
            hab += c * x;
            hbb += c;
        }
        // A ridge keeps separable data from running off to infinity.
        haa += 1e-3;
        hbb += 1e-3;
        let det = haa * hbb - hab * hab;
        if det <= 0.0 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        // Step halving: a Newton step may overshoot where the curvature is small.
        let here = ll(a, b);
        let mut step = 1.0;
        while step > 1e-6 && ll(a - step * da, b - step * db) < here {
            step /= 2.0;
        }
        a -= step * da;
        b -= step * db;
        if (step * da).abs() + (step * db).abs() < 1e-9 {
            break;
        }
    }
    (1.0 - ll(a, b) / null) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_r2_is_high_for_a_separating_feature_and_near_zero_for_noise() {
        let y: Vec<bool> = (0..200).map(|i| i % 4 == 0).collect();
        let good: Vec<f32> = y.iter().map(|&v| if v { 0.9 } else { 0.05 }).collect();
        let noise: Vec<f32> = (0..200).map(|i| ((i * 37 % 101) as f32) / 101.0).collect();
        assert!(logistic_r2(&good, &y) > 0.9, "{}", logistic_r2(&good, &y));
        assert!(logistic_r2(&noise, &y).abs() < 0.05, "{}", logistic_r2(&noise, &y));
        // Rare, large values on a few negatives: a plain Newton step overshoots here.
        let rare: Vec<f32> = (0..200).map(|i| if i % 50 == 1 { 1.0 } else { 0.0 }).collect();
        let r2 = logistic_r2(&rare, &y);
        assert!((0.0..0.1).contains(&r2), "{r2}");
        // Weighted points are their residues listed one by one.
        let weighted = [(0.9, 50.0, 0.0), (0.05, 0.0, 150.0)];
        assert!((logistic_r2_weighted(&weighted) - logistic_r2(&good, &y)).abs() < 1e-6);
    }
}
