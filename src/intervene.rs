//! Interventions on SAE features at a layer: ablate (set to 0), clamp (set to a value), scale
//! (multiply), on all residues or chosen ones. The residual stream is patched as
//! `x' = decode(f') + (x − decode(f))`, which keeps the SAE's reconstruction error, so an empty
//! intervention changes nothing; then only the blocks after the layer run again.

use std::str::FromStr;

use burn::prelude::*;

use crate::esm::{Activations, Batch, EsmModel};
use crate::features::{self, SparseEncoded, UseError};
use crate::sae::{Encoded, Sae, TokenNorm};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", content = "value", rename_all = "lowercase")]
pub enum Op {
    Ablate,
    Clamp(f32),
    Scale(f32),
}

/// One edit of one feature.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Edit {
    pub feature: usize,
    #[serde(flatten)]
    pub op: Op,
    /// 1-based residue numbers; `None` means every residue.
    pub positions: Option<Vec<usize>>,
}

/// Text forms of edits and positions that could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("edit \"{0}\" is not one of ablate:F, clamp:F=VALUE, scale:F=FACTOR (optionally @RESIDUES, e.g. @3-10)")]
    Edit(String),
    #[error("positions \"{0}\" are not residue numbers or ranges such as 3-10,15")]
    Positions(String),
    #[error("\"{0}\" is not LAYER:EDIT, e.g. 3:clamp:17=8, 3:scale:5=2 or 3:ablate:9")]
    Steer(String),
    #[error("\"{0}\" is not a layer number")]
    Layer(String),
}

impl FromStr for Edit {
    type Err = ParseError;

    /// `ablate:17`, `clamp:42=0.8`, `scale:7=2.0`, each optionally with `@3-10,15` (residues).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::Edit(s.to_string());
        let (body, positions) = match s.split_once('@') {
            Some((body, p)) => (body, Some(parse_positions(p)?)),
            None => (s, None),
        };
        let (op, rest) = body.split_once(':').ok_or_else(bad)?;
        let (feature, value) = match rest.split_once('=') {
            Some((f, v)) => (f, Some(v.trim().parse::<f32>().map_err(|_| bad())?)),
            None => (rest, None),
        };
        let feature = feature.trim().parse().map_err(|_| bad())?;
        let op = match (op.trim(), value) {
            ("ablate", None) => Op::Ablate,
            ("clamp", Some(v)) if v.is_finite() => Op::Clamp(v),
            ("scale", Some(v)) if v.is_finite() => Op::Scale(v),
            _ => return Err(bad()),
        };
        Ok(Edit { feature, op, positions })
    }
}

/// `3-10,15` → `[3, 4, …, 10, 15]` (1-based, inclusive). No residue lies past the longest
/// sequence ESM-2 reads, so that a range written in a link cannot ask for billions of positions.
pub fn parse_positions(s: &str) -> Result<Vec<usize>, ParseError> {
    let bad = || ParseError::Positions(s.to_string());
    let residue = |t: &str| t.parse::<usize>().ok().filter(|&p| (1..=crate::alphabet::MAX_RESIDUES).contains(&p)).ok_or_else(bad);
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (residue(a.trim())?, residue(b.trim())?),
            None => (residue(part)?, residue(part)?),
        };
        if b < a || out.len() + (b - a) >= crate::alphabet::MAX_RESIDUES {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// Checks edits against the SAE and the sequence before any work is done.
pub fn check_edits(edits: &[Edit], d_sae: usize, residues: usize) -> Result<(), UseError> {
    for e in edits {
        if e.feature >= d_sae {
            return Err(UseError::Feature { feature: e.feature, d_sae });
        }
        if let Some(&position) = e.positions.iter().flatten().find(|&&p| p == 0 || p > residues) {
            return Err(UseError::Position { position, residues });
        }
    }
    Ok(())
}

/// What an edit reads of the encoding at its layer: the edited features at every residue and how
/// the tokens were normalised. The dense [`Encoded`] has that, and so does the page's
/// [`SparseEncoded`].
pub trait Encoding {
    fn residues(&self) -> usize;
    /// Feature `j` at every residue: `[R, 1]`.
    fn column(&self, j: usize, device: &Device) -> Tensor<2>;
    fn norm(&self) -> &TokenNorm;
}

impl Encoding for Encoded {
    fn residues(&self) -> usize {
        self.features.dims()[0]
    }
    fn column(&self, j: usize, _: &Device) -> Tensor<2> {
        self.features.clone().slice(s![.., j..j + 1])
    }
    fn norm(&self) -> &TokenNorm {
        &self.norm
    }
}

impl Encoding for SparseEncoded {
    fn residues(&self) -> usize {
        self.features.rows.len()
    }
    fn column(&self, j: usize, device: &Device) -> Tensor<2> {
        let column = self.features.column(j);
        let r = column.len();
        Tensor::from_data(TensorData::new(column, [r, 1]), device)
    }
    fn norm(&self) -> &TokenNorm {
        &self.norm
    }
}

/// `decode(f') − decode(f)` for every residue, `[R, d_in]`. Each edited feature j contributes
/// `Δf_j ⊗ W_dec[j]`, so the cost is O(edited features × R × d_in), not a full decode.
fn patch_delta(sae: &Sae, encoded: &(impl Encoding + ?Sized), edits: &[Edit]) -> Tensor<2> {
    let r = encoded.residues();
    let device = sae.w_dec.device();
    let mut edited: Vec<usize> = edits.iter().map(|e| e.feature).collect();
    edited.sort_unstable();
    edited.dedup();
    if edited.is_empty() {
        return Tensor::zeros([r, sae.d_in], &device);
    }
    // Edits of one feature apply in the order given.
    let columns = edited
        .iter()
        .map(|&j| {
            let original = encoded.column(j, &device); // [R, 1]
            let column = edits.iter().filter(|e| e.feature == j).fold(original.clone(), |column, e| {
                let changed = match e.op {
                    Op::Ablate => column.zeros_like(),
                    Op::Clamp(v) => column.ones_like().mul_scalar(v),
                    Op::Scale(m) => column.clone().mul_scalar(m),
                };
                match &e.positions {
                    None => changed,
                    Some(p) => {
                        let mut keep = vec![true; r];
                        p.iter().for_each(|&i| keep[i - 1] = false);
                        let keep = Tensor::<2, Bool>::from_data(TensorData::new(keep, [r, 1]), &device);
                        changed.mask_where(keep, column)
                    }
                }
            });
            column - original
        })
        .collect();
    let n = edited.len();
    let index: Vec<i64> = edited.iter().map(|&j| j as i64).collect();
    let df = Tensor::cat(columns, 1); // [R, n]
    let rows = sae.w_dec.clone().select(0, Tensor::from_data(TensorData::new(index, [n]), &device)); // [n, d_in]
    sae.decode_delta(df, rows, encoded.norm())
}

/// Patches hidden state `layer` of a one-sequence pass `cache` (from [`EsmModel::forward`]) and
/// runs the rest of the model: the pass from the patched hidden state on (`start` = `layer`). `encoded` is the SAE's encoding of that hidden state's residues
/// ([`features::encode`], or the sparse [`SparseEncoded`]): callers that showed the features
/// already have it, so an edit costs
/// only the patch and the blocks after `layer`.
pub fn intervene(
    model: &EsmModel,
    sae: &Sae,
    layer: usize,
    cache: &Activations,
    batch: &Batch,
    encoded: &(impl Encoding + ?Sized),
    edits: &[Edit],
) -> Result<Activations, UseError> {
    features::check(model, sae, layer)?;
    let x = patch(sae, cache.hidden(layer).clone(), encoded, edits)?;
    Ok(model.forward_from(layer, x, batch))
}

/// `x + decode(f') − decode(f)` for a one-sequence hidden state `x` (`[1, T, d]`) whose residues
/// `encoded` encodes; cls and eos are left as they are.
pub fn patch(sae: &Sae, x: Tensor<3>, encoded: &(impl Encoding + ?Sized), edits: &[Edit]) -> Result<Tensor<3>, UseError> {
    let [_, t, d] = x.dims();
    check_edits(edits, sae.d_sae, t - 2)?;
    let delta = patch_delta(sae, encoded, edits); // [R, d]
    let zero: Tensor<2> = Tensor::zeros([1, d], &x.device());
    let delta = Tensor::cat(vec![zero.clone(), delta, zero], 0).reshape([1, t, d]); // cls and eos untouched
    Ok(x + delta)
}

/// Δ log-probability of the actual token at each residue (cls and eos excluded), `[T − 2]`,
/// from logits `[T, vocab]` before and after, as host vectors.
pub fn delta_logprob(before: &[f32], after: &[f32], tokens: &[u32]) -> Vec<f32> {
    let v = before.len() / tokens.len();
    let logp = |logits: &[f32], pos: usize| {
        let row = &logits[pos * v..(pos + 1) * v];
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
        row[tokens[pos] as usize] - lse
    };
    crate::alphabet::residue_positions(tokens.len()).map(|p| logp(after, p) - logp(before, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_and_positions_parse() {
        assert_eq!("ablate:17".parse(), Ok(Edit { feature: 17, op: Op::Ablate, positions: None }));
        assert_eq!("clamp:42=0.8".parse(), Ok(Edit { feature: 42, op: Op::Clamp(0.8), positions: None }));
        assert_eq!("scale:7=2.0".parse(), Ok(Edit { feature: 7, op: Op::Scale(2.0), positions: None }));
        assert_eq!("clamp:1=-1@2-3,5".parse(), Ok(Edit { feature: 1, op: Op::Clamp(-1.0), positions: Some(vec![2, 3, 5]) }));
        for bad in ["ablate:x", "clamp:3", "scale:3=inf", "nudge:3=1", "ablate:3=1", "17"] {
            assert_eq!(bad.parse::<Edit>(), Err(ParseError::Edit(bad.into())), "{bad}");
        }
        assert_eq!(parse_positions("3-5, 9"), Ok(vec![3, 4, 5, 9]));
        assert!(parse_positions("0-3").is_err());
        assert!(parse_positions("5-3").is_err());
        assert_eq!(
            parse_positions("a").unwrap_err().to_string(),
            "positions \"a\" are not residue numbers or ranges such as 3-10,15"
        );
    }

    #[test]
    fn edits_out_of_range_are_refused() {
        let e = |feature, positions| Edit { feature, op: Op::Ablate, positions };
        assert_eq!(check_edits(&[e(128, None)], 128, 10), Err(UseError::Feature { feature: 128, d_sae: 128 }));
        assert_eq!(
            check_edits(&[e(1, Some(vec![3, 11]))], 128, 10).unwrap_err().to_string(),
            "residue 11 is out of range: the sequence has residues 1..=10"
        );
        assert!(check_edits(&[e(127, Some(vec![1, 10]))], 128, 10).is_ok());
    }
}
