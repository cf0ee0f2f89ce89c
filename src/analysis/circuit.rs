//! Circuits by ablation, in the seed explorer's JSON schema. For each chosen layer L, the top-N
//! features by mean activation over the proteins are ablated one at a time
//! (`x' = x − f_j ⊗ W_dec[j]`, only blocks after L re-run, the ablations of one protein batched):
//! - feature → feature: mean over proteins of the mean over residues of |Δ f_k| for each top
//!   feature k of each later chosen layer;
//! - feature → behavior: mean over proteins of the drop in the behavior score (the probe's mean
//!   probability over residues) when the probe's layer comes at or after L.
//!
//! The run is a list of steps (one protein, or one protein × layer × batch of features), so the
//! page can show progress and cancel between them; the CLI runs them in a loop. Cost: one
//! forward per protein, then per ablated feature the blocks from its layer to the last layer read
//! (the next circuit layers, the probe's): (features ablated) × (layers after L). Features of the
//! last layer are ablated only when a probe reads at or after it.

use std::collections::BTreeMap;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::probe::{self, Probe};
use super::{tokens, AnalysisError};
use crate::device::read_f32;
use crate::esm::{residue_rows, Activations, Batch, EsmModel};
use crate::features;
use crate::sae::{Encoded, SaeSet};

/// The seed explorer's circuit file: `{nodes, edges, meta}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub meta: serde_json::Value,
}

/// `{id: "L{layer}:F{feature}", kind: "feature", layer, feature, importance?}` or
/// `{id: "behavior:{name}", kind: "behavior"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<f64>,
}

/// `{src, dst, weight, kind: "feat->behavior" | "feat->feat"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub src: String,
    pub dst: String,
    pub weight: f64,
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitOptions {
    /// SAE layers, ascending; each needs an SAE.
    pub layers: Vec<usize>,
    /// Features ablated per layer: the most active by mean over all residues.
    pub top_n: usize,
    /// feat→feat edges kept per source feature (the largest).
    pub edges_per_feature: usize,
    /// Ablations run together in one batch.
    pub batch: usize,
    /// Written into `meta.model`.
    pub model_name: String,
}

/// Where a run is: `done` of `total` steps.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// One protein's pass, kept for its ablations.
struct Pass {
    batch: Batch,
    tokens: Vec<u32>,
    /// Set by the protein's selection step.
    acts: Option<Activations>,
}

/// A circuit computation in steps.
pub struct CircuitRun {
    options: CircuitOptions,
    passes: Vec<Pass>,
    /// Σ over residues of each feature, per layer (selection).
    sums: BTreeMap<usize, Vec<f64>>,
    residues: usize,
    /// Top features per layer, chosen after every protein has run.
    selected: BTreeMap<usize, Vec<usize>>,
    /// The ablation steps: (protein, layer, first index into `selected[layer]`).
    work: Vec<(usize, usize, usize)>,
    done: usize,
    /// Accumulated edge weights (already divided by the number of proteins).
    feat: BTreeMap<(usize, usize, usize, usize), f64>,
    behavior: BTreeMap<(usize, usize), f64>,
    /// The encoding at the layer being ablated, for the protein being ablated.
    current: Option<(usize, usize, Encoded)>,
    probe_layer: Option<usize>,
}

impl CircuitRun {
    /// Checks the options against the model, the SAEs and the probe.
    pub fn new(
        model: &EsmModel,
        saes: &SaeSet,
        probe: Option<&Probe>,
        proteins: &[super::labels::Annotated],
        options: CircuitOptions,
    ) -> Result<Self, AnalysisError> {
        let bad = |m: String| Err(AnalysisError::Circuit(m));
        if options.layers.is_empty() || options.layers.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!("layers {:?} must be one or more, ascending", options.layers));
        }
        if options.top_n == 0 || options.batch == 0 {
            return bad("top N and the batch size must be at least 1".into());
        }
        if proteins.is_empty() {
            return bad("no proteins to run".into());
        }
        for &l in &options.layers {
            features::check_layer(model, l)?; // a layer out of range says so before "no SAE"
            let s = saes.get(l).ok_or(AnalysisError::NoSae { layer: l })?;
            features::check(model, s, l)?;
            if options.top_n > s.d_sae {
                return bad(format!("top N {} is more than the {} features of the SAE at layer {l}", options.top_n, s.d_sae));
            }
        }
        if let Some(p) = probe {
            features::check_layer(model, p.layer)?;
            let width = match p.input {
                probe::ProbeInput::Features => saes.get(p.layer).ok_or(AnalysisError::NoSae { layer: p.layer })?.d_sae,
                probe::ProbeInput::Residual => model.d_model(),
            };
            if p.weights.len() != width {
                return Err(AnalysisError::Probe(format!(
                    "the probe for {} reads {} values per residue, but its input at layer {} has {width}: it was trained on another model or SAE",
                    p.concept,
                    p.weights.len(),
                    p.layer
                )));
            }
        }
        if probe.is_none() && options.layers.len() < 2 {
            return bad("with one layer, a probe is needed for feature → behavior edges".into());
        }
        let device = model.device();
        let mut passes = Vec::with_capacity(proteins.len());
        for p in proteins {
            let tokens = tokens(p)?;
            let batch = Batch::new(std::slice::from_ref(&tokens), &device);
            passes.push(Pass { batch, tokens, acts: None });
        }
        let sums = options.layers.iter().map(|&l| (l, vec![0.0; saes.get(l).map_or(0, |s| s.d_sae)])).collect();
        let probe_layer = probe.map(|p| p.layer);
        Ok(Self { options, passes, sums, residues: 0, selected: BTreeMap::new(), work: vec![], done: 0, feat: BTreeMap::new(), behavior: BTreeMap::new(), current: None, probe_layer })
    }

    pub fn progress(&self) -> Progress {
        let n = self.passes.len();
        let ablations = if self.selected.is_empty() {
            let per_protein = self.options.layers.iter().filter(|&&l| self.stop(l).is_some()).count() * self.options.top_n.div_ceil(self.options.batch);
            n * per_protein
        } else {
            self.work.len()
        };
        Progress { done: self.done, total: n + ablations }
    }

    /// The last hidden state an ablation at `layer` must reach: the last later circuit layer, or
    /// the probe's; `None` when nothing after `layer` is read (its features are not ablated).
    fn stop(&self, layer: usize) -> Option<usize> {
        let later = self.options.layers.iter().copied().filter(|&m| m > layer).max();
        let probe = self.probe_layer.filter(|&p| p >= layer);
        later.max(probe)
    }

    pub fn finished(&self) -> bool {
        self.done >= self.passes.len() && self.done - self.passes.len() >= self.work.len() && !self.selected.is_empty()
    }

    /// Runs the next step.
    pub async fn step(&mut self, model: &EsmModel, saes: &SaeSet, probe: Option<&Probe>) -> Result<Progress, AnalysisError> {
        let n = self.passes.len();
        if self.done < n {
            // Selection: one forward per protein, features summed at each layer.
            let pass = &mut self.passes[self.done];
            let acts = pass.acts.insert(model.forward(&pass.batch));
            for &l in &self.options.layers {
                let s = saes.get(l).ok_or(AnalysisError::NoSae { layer: l })?;
                let f = features::encode(acts, s, l).features; // [R, d_sae]
                let [_, d] = f.dims();
                let col = read_f32(f.sum_dim(0).reshape([d])).await?;
                self.sums.get_mut(&l).expect("a layer of the run").iter_mut().zip(col).for_each(|(a, b)| *a += b as f64);
            }
            self.residues += pass.tokens.len() - 2;
            self.done += 1;
            if self.done == n {
                self.select();
            }
            return Ok(self.progress());
        }
        let Some(&(i, layer, first)) = self.work.get(self.done - n) else { return Ok(self.progress()) };
        self.ablate(model, saes, probe, i, layer, first).await?;
        self.done += 1;
        Ok(self.progress())
    }

    fn select(&mut self) {
        for (&l, sums) in &self.sums {
            let mut order: Vec<usize> = (0..sums.len()).filter(|&j| sums[j] > 0.0).collect();
            order.sort_by(|&a, &b| sums[b].total_cmp(&sums[a]).then(a.cmp(&b)));
            order.truncate(self.options.top_n);
            self.selected.insert(l, order);
        }
        let ablated: Vec<(usize, usize)> =
            self.selected.iter().filter(|(l, _)| self.stop(**l).is_some()).map(|(&l, chosen)| (l, chosen.len())).collect();
        for i in 0..self.passes.len() {
            for &(l, count) in &ablated {
                self.work.extend((0..count).step_by(self.options.batch).map(|first| (i, l, first)));
            }
        }
    }

    /// Ablates `selected[layer][first..first + batch]` in protein `i`, one batch row each.
    async fn ablate(
        &mut self,
        model: &EsmModel,
        saes: &SaeSet,
        probe: Option<&Probe>,
        i: usize,
        layer: usize,
        first: usize,
    ) -> Result<(), AnalysisError> {
        let n_proteins = self.passes.len() as f64;
        let pass = &self.passes[i];
        let acts = pass.acts.as_ref().expect("ablation steps come after selection");
        let s = saes.get(layer).ok_or(AnalysisError::NoSae { layer })?;
        if !matches!(&self.current, Some((ci, cl, _)) if *ci == i && *cl == layer) {
            self.current = Some((i, layer, features::encode(acts, s, layer)));
        }
        let encoded = &self.current.as_ref().expect("just set").2;
        let chosen = &self.selected[&layer][first..(first + self.options.batch).min(self.selected[&layer].len())];
        let b = chosen.len();
        let x = acts.hidden(layer).clone(); // [1, T, d]
        let [_, t, d] = x.dims();
        let device = x.device();
        let zero: Tensor<2> = Tensor::zeros([1, d], &device);
        let patched: Vec<Tensor<3>> = chosen
            .iter()
            .map(|&j| {
                let f = encoded.features.clone().slice(s![.., j..j + 1]); // [R, 1]
                let row = s.w_dec.clone().slice(s![j..j + 1, ..]); // [1, d]
                let delta = s.decode_delta(-f, row, &encoded.norm); // [R, d]
                x.clone() + Tensor::cat(vec![zero.clone(), delta, zero.clone()], 0).reshape([1, t, d])
            })
            .collect();
        let batch = Batch::new(&vec![pass.tokens.clone(); b], &device);
        let stop = self.stop(layer).expect("only layers with something downstream are ablated");
        let (after, _) = model.hidden_between(layer, stop, Tensor::cat(patched, 0), &batch); // [b, T, d] each
        let after_at = |m: usize| &after[m - layer];

        for (&m, targets) in self.selected.range(layer + 1..) {
            let down = saes.get(m).ok_or(AnalysisError::NoSae { layer: m })?;
            let cols = Tensor::<1, Int>::from_data(TensorData::new(targets.iter().map(|&k| k as i64).collect(), [targets.len()]), &device);
            let k = targets.len();
            let base = down.encode_columns(residue_rows(acts.hidden(m).clone()), cols.clone()).reshape([1, t - 2, k]);
            let changed = down.encode_columns(residue_rows(after_at(m).clone()), cols).reshape([b, t - 2, k]);
            let mean_abs = (changed - base).abs().mean_dim(1).reshape([b * k]); // [b, k]
            let values = read_f32(mean_abs).await?;
            for (r, &j) in chosen.iter().enumerate() {
                for (c, &kk) in targets.iter().enumerate() {
                    *self.feat.entry((layer, j, m, kk)).or_default() += values[r * k + c] as f64 / n_proteins;
                }
            }
        }
        if let Some(p) = probe.filter(|p| p.layer >= layer) {
            let probe_sae = saes.get(p.layer);
            let before = p.score(probe::inputs(acts.hidden(p.layer), p.layer, p.input, probe_sae)?, 1);
            let changed = p.score(probe::inputs(after_at(p.layer), p.layer, p.input, probe_sae)?, b);
            let drop = read_f32(before.expand([b]) - changed).await?;
            for (r, &j) in chosen.iter().enumerate() {
                *self.behavior.entry((layer, j)).or_default() += drop[r] as f64 / n_proteins;
            }
        }
        Ok(())
    }

    /// The circuit so far (complete once [`Self::finished`]).
    pub fn graph(&self, saes: &SaeSet, probe: Option<&Probe>) -> Graph {
        let id = |l: usize, f: usize| format!("L{l}:F{f}");
        let behavior = probe.map(|p| behavior_name(&p.concept));
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        if let Some(b) = &behavior {
            nodes.push(Node { id: format!("behavior:{b}"), kind: "behavior".into(), layer: None, feature: None, importance: None });
        }
        for (&l, chosen) in &self.selected {
            for &j in chosen {
                let importance = self.behavior.get(&(l, j)).copied();
                nodes.push(Node { id: id(l, j), kind: "feature".into(), layer: Some(l), feature: Some(j), importance });
                if let (Some(w), Some(b)) = (importance, &behavior) {
                    edges.push(Edge { src: id(l, j), dst: format!("behavior:{b}"), weight: w, kind: "feat->behavior".into() });
                }
                let mut out: Vec<_> = self.feat.range((l, j, 0, 0)..=(l, j, usize::MAX, usize::MAX)).collect();
                out.sort_by(|a, b| b.1.total_cmp(a.1));
                out.truncate(self.options.edges_per_feature);
                edges.extend(out.into_iter().map(|(&(_, _, m, k), &w)| Edge { src: id(l, j), dst: id(m, k), weight: w, kind: "feat->feat".into() }));
            }
        }
        let first = saes.get(self.options.layers[0]);
        let meta = serde_json::json!({
            "model": self.options.model_name,
            "behavior": behavior,
            "sae_layers": self.options.layers,
            "d_sae": first.map(|s| s.d_sae),
            "k": first.and_then(|s| match s.activation { crate::sae::Activation::TopK(k) => Some(k), _ => None }),
            "proteins": self.passes.len(),
            "top_n": self.options.top_n,
            "probe": probe.map(|p| serde_json::json!({"concept": p.concept, "layer": p.layer, "input": p.input})),
            "method": "plmscope ablation: x' = x − f_j·W_dec[j] at layer L, blocks after L re-run; feat->feat = mean |Δ activation| over residues and proteins; feat->behavior = drop of the probe's mean probability",
        });
        Graph { nodes, edges, meta }
    }
}

/// The explorer's short names for its two behaviors.
pub fn behavior_name(concept: &str) -> String {
    match concept {
        "Transmembrane" => "tm".into(),
        "Signal" => "sp".into(),
        other => other.into(),
    }
}
