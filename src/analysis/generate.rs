//! Steered generation by iterative masked resampling (InterProt's steering by clamping). Each
//! round masks a fraction of the positions (and every position still `<mask>`), runs the model
//! with the chosen features clamped or scaled at their layers, and samples the masked residues
//! from the intervened logits with a temperature and top-p, among the 20 standard amino acids.
//! Starting from all `<mask>`, the first round fills every position at once.
//! A seed reproduces a run. Each result carries the unsteered model's pseudo-log-likelihood and
//! the steered features' mean activation on it.

use burn::prelude::*;
use serde::Serialize;

use super::AnalysisError;
use crate::alphabet::{self, MASK, VOCAB};
use crate::device::read_f32;
use crate::esm::{residue_rows, Batch, EsmModel};
use crate::features;
use crate::intervene::{self, Edit};
use crate::sae::SaeSet;
use crate::weights::random::splitmix64;

/// Edits of features at one layer, applied during generation.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Steer {
    pub layer: usize,
    pub edits: Vec<Edit>,
}

/// `LAYER:EDIT`, e.g. `3:clamp:17=8`: one edit of a steer.
pub fn parse_steer(s: &str) -> Result<(usize, Edit), intervene::ParseError> {
    let (layer, edit) = s.split_once(':').ok_or_else(|| intervene::ParseError::Steer(s.to_string()))?;
    Ok((layer.trim().parse().map_err(|_| intervene::ParseError::Layer(layer.to_string()))?, edit.parse()?))
}

/// Steers with one entry per layer, ascending, each layer's edits in the order given.
pub fn by_layer(steers: &[Steer]) -> Vec<Steer> {
    let mut out: Vec<Steer> = Vec::new();
    for s in steers {
        match out.iter_mut().find(|o| o.layer == s.layer) {
            Some(o) => o.edits.extend(s.edits.iter().cloned()),
            None => out.push(s.clone()),
        }
    }
    out.sort_by_key(|s| s.layer);
    out
}

#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    pub rounds: usize,
    /// Share of the positions masked and resampled each round.
    pub mask_fraction: f32,
    pub temperature: f32,
    /// Sample from the smallest set of amino acids whose probability reaches `top_p`.
    pub top_p: f32,
    pub seed: u64,
}

/// The most rounds one sequence may take: each is a forward pass, and a request must end.
pub const MAX_ROUNDS: usize = 1000;

impl GenerateOptions {
    fn check(&self) -> Result<(), AnalysisError> {
        let bad = |m: String| Err(AnalysisError::Generate(m));
        if self.rounds > MAX_ROUNDS {
            return bad(format!("{} rounds: at most {MAX_ROUNDS}", self.rounds));
        }
        if !(self.mask_fraction > 0.0 && self.mask_fraction <= 1.0) {
            return bad(format!("the share masked per round ({}) must be within (0, 1]", self.mask_fraction));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(format!("the temperature ({}) must be > 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top-p ({}) must be within (0, 1]", self.top_p));
        }
        Ok(())
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { rounds: 10, mask_fraction: 0.15, temperature: 1.0, top_p: 0.9, seed: 0 }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    pub sequence: String,
    /// Σ over residues of log p(residue | the rest, it masked), unsteered model.
    pub pseudo_log_likelihood: f32,
    /// (layer, feature, mean activation over residues) of every steered feature, unsteered pass.
    pub steered_activation: Vec<(usize, usize, f32)>,
}

/// The 20 standard amino acids' token ids: what generation samples from.
fn amino_acids() -> Vec<u32> {
    "LAGVSERTIDPKQNFYMHWC".chars().map(|c| VOCAB.iter().position(|v| *v == c.to_string()).expect("in the alphabet") as u32).collect()
}

/// splitmix64 (the random-weights generator's finaliser): seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Checks the steers against the model and the SAEs.
pub fn check(model: &EsmModel, saes: &SaeSet, steers: &[Steer], residues: usize) -> Result<(), AnalysisError> {
    if residues == 0 || residues > alphabet::MAX_RESIDUES {
        return Err(AnalysisError::Generate(format!("a sequence of {residues} residues: ESM-2 reads 1..={}", alphabet::MAX_RESIDUES)));
    }
    for s in steers {
        let sae = saes.get(s.layer).ok_or(AnalysisError::NoSae { layer: s.layer })?;
        features::check(model, sae, s.layer)?;
        intervene::check_edits(&s.edits, sae.d_sae, residues)?;
    }
    Ok(())
}

/// Logits `[T, vocab]` of one sequence (`<cls>` … `<eos>`) with `steers` (ascending layers)
/// applied one layer after the other.
pub fn steered_logits(model: &EsmModel, saes: &SaeSet, steers: &[Steer], tokens: &[u32], device: &Device) -> Result<Tensor<2>, AnalysisError> {
    let batch = Batch::new(&[tokens.to_vec()], device);
    let mut x = model.embeddings.forward(batch.input_ids.clone(), batch.attention_mask.clone()); // [1, T, d]
    let mut at = 0;
    for s in steers {
        let sae = saes.get(s.layer).ok_or(AnalysisError::NoSae { layer: s.layer })?;
        let (mut hidden, _) = model.hidden_between(at, s.layer, x, &batch);
        let h = hidden.pop().expect("hidden state at the steered layer");
        let encoded = sae.encode(residue_rows(h.clone()));
        x = intervene::patch(sae, h, &encoded, &s.edits)?;
        at = s.layer;
    }
    let logits = model.forward_from(at, x, &batch).logits; // [1, T, V]
    let [_, t, v] = logits.dims();
    Ok(logits.reshape([t, v]))
}

/// Generates one sequence from `start` (residue tokens, `<mask>` allowed) with `steers`.
pub async fn generate(
    model: &EsmModel,
    saes: &SaeSet,
    steers: &[Steer],
    start: &[u32],
    options: GenerateOptions,
) -> Result<Generated, AnalysisError> {
    let device = model.device();
    check(model, saes, steers, start.len())?;
    options.check()?;
    let mut steers = steers.to_vec();
    steers.sort_by_key(|s| s.layer);
    let aa = amino_acids();
    let mut rng = Rng(options.seed);
    let mut residues = start.to_vec();
    let n = residues.len();
    let per_round = ((options.mask_fraction * n as f32).round() as usize).clamp(1, n);
    for _ in 0..options.rounds {
        // Positions still masked, then random others up to `per_round`.
        let mut chosen: Vec<usize> = (0..n).filter(|&i| residues[i] == MASK).collect();
        let mut order: Vec<usize> = (0..n).filter(|&i| residues[i] != MASK).collect();
        for i in 0..order.len() {
            let j = i + (rng.next() % (order.len() - i) as u64) as usize; // in u64, so that wasm (32-bit usize) draws the same
            order.swap(i, j);
        }
        chosen.extend(order.into_iter().take(per_round.saturating_sub(chosen.len())));
        chosen.iter().for_each(|&i| residues[i] = MASK);
        let tokens = alphabet::with_ends(residues.iter().copied());
        let logits = read_f32(steered_logits(model, saes, &steers, &tokens, &device)?).await?;
        let v = logits.len() / tokens.len();
        for &i in &chosen {
            let row = &logits[(i + 1) * v..(i + 2) * v];
            residues[i] = sample(&aa, row, options, &mut rng);
        }
    }
    let sequence: String = residues.iter().map(|&t| VOCAB[t as usize]).collect();
    let tokens = alphabet::with_ends(residues.iter().copied());
    let pseudo_log_likelihood = pll(model, &tokens, &device).await?;
    let mut steered_activation = Vec::new();
    let acts = model.forward(&Batch::new(&[tokens], &device));
    for s in &steers {
        let sae = saes.get(s.layer).expect("checked");
        let f = features::encode(&acts, sae, s.layer).features;
        let [_, d] = f.dims();
        let mean = read_f32(f.mean_dim(0).reshape([d])).await?;
        for e in &s.edits {
            steered_activation.push((s.layer, e.feature, mean[e.feature]));
        }
    }
    Ok(Generated { sequence, pseudo_log_likelihood, steered_activation })
}

/// Samples an amino acid from one row of logits.
fn sample(aa: &[u32], row: &[f32], options: GenerateOptions, rng: &mut Rng) -> u32 {
    let t = options.temperature.max(1e-4);
    let max = aa.iter().map(|&a| row[a as usize]).fold(f32::NEG_INFINITY, f32::max);
    let mut p: Vec<(u32, f32)> = aa.iter().map(|&a| (a, ((row[a as usize] - max) / t).exp())).collect();
    let total: f32 = p.iter().map(|x| x.1).sum();
    p.iter_mut().for_each(|x| x.1 /= total);
    p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    while kept < p.len() && (kept == 0 || mass < options.top_p) {
        mass += p[kept].1;
        kept += 1;
    }
    let mut u = rng.uniform() * mass;
    for &(a, q) in &p[..kept] {
        if u < q {
            return a;
        }
        u -= q;
    }
    p[kept - 1].0
}

/// Σ_i log p(x_i | x with position i masked), unsteered, masking 16 positions at a time in a
/// batch (one sequence per masked position).
pub async fn pll(model: &EsmModel, tokens: &[u32], device: &Device) -> Result<f32, AnalysisError> {
    let positions: Vec<usize> = alphabet::residue_positions(tokens.len()).collect();
    let mut total = 0.0;
    for chunk in positions.chunks(16) {
        let masked: Vec<Vec<u32>> = chunk.iter().map(|&p| { let mut t = tokens.to_vec(); t[p] = MASK; t }).collect();
        let logits = read_f32(model.forward(&Batch::new(&masked, device)).logits).await?; // [b, T, V]
        let (t, v) = (tokens.len(), logits.len() / (chunk.len() * tokens.len()));
        for (b, &p) in chunk.iter().enumerate() {
            let row = &logits[(b * t + p) * v..(b * t + p + 1) * v];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
            total += row[tokens[p] as usize] - lse;
        }
    }
    Ok(total)
}
