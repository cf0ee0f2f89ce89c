//! The speed benchmark's cases, shared by the CLI (`plmscope bench-cases`) and the page's wasm
//! object, so that plmscope natively, plmscope in the browser and its peers
//! (`pkg-build/bench/peers.py`, onnxruntime-web) time the same work on the same inputs, on the
//! random weights of an ESM-2 size ([`config`]):
//!
//! - `forward`: logits of a batch (all hidden states kept, as every view needs them);
//! - `sae`: the same, plus the 10,240-feature SAE's features of the middle hidden state ([`layer`]:
//!   3 of esm2_t6_8M's 6) at every position;
//! - `intervene`: feature 17 ablated at that layer on every residue of one sequence, from the cached
//!   pass and encoding that the page already holds, so only the patch and the blocks after it run;
//! - `matmul`: `[1024, 1024] · [1024, 1024]`, the engine's matmul peak.
//!
//! Each run reads its results back to the host, as the page must.
//!
//! And the memory case: one protein's features at every layer, each layer's 10,240-feature SAE
//! loaded, as the page computes them ([`features_at_every_layer`]).

use burn::prelude::*;

use crate::device::{read_f32, DeviceError, Precision};
use crate::esm::{Activations, Batch, EsmConfig, EsmModel};
use crate::intervene::{self, Edit, Op};
use crate::sae::{Encoded, Sae, SaeSet};
use crate::weights::{self, random, LoadError, Vars};

pub const FEATURE: usize = 17;
/// The demo SAEs' width, as the page's.
pub const D_SAE: usize = crate::session::DEMO_D_SAE;
pub const MATMUL: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Forward,
    Sae,
    Intervene,
    Matmul,
}

impl std::str::FromStr for Case {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "forward" => Case::Forward,
            "sae" => Case::Sae,
            "intervene" => Case::Intervene,
            "matmul" => Case::Matmul,
            other => return Err(format!("benchmark case \"{other}\" is not forward, sae, intervene or matmul")),
        })
    }
}

/// The ESM-2 size of a run: "8M" (the offline demo's), "35M", "150M" or "650M".
pub fn config(size: &str) -> Result<EsmConfig, String> {
    EsmConfig::esm2(size).ok_or_else(|| format!("\"{size}\" is not an ESM-2 size (8M, 35M, 150M, 650M, 3B, 15B)"))
}

/// The layer of a model of `n_layers` whose features and interventions are timed: the middle one.
pub fn layer(n_layers: usize) -> usize {
    n_layers / 2
}

/// The random ESM-2 of `config` (for esm2_t6_8M, the offline demo's), its dense weights in `precision`.
pub fn model(device: &Device, config: &EsmConfig, precision: Precision) -> Result<EsmModel, LoadError> {
    EsmModel::load(&Vars::random(random::SEED, device).with_precision(precision), config)
}

/// The random model and the random InterPLM-shaped SAE of its [`layer`] (for esm2_t6_8M, the
/// offline demo's of layer 3).
pub fn model_and_sae(device: &Device, config: &EsmConfig, precision: Precision) -> Result<(EsmModel, Sae), LoadError> {
    let model = model(device, config, precision)?;
    let sae = weights::sae::random_interplm(model.d_model(), D_SAE, random::SEED ^ layer(model.n_layers()) as u64, device)?;
    Ok((model, sae))
}

/// The demo's random 10,240-feature SAE of every layer ([`layer`]'s is [`model_and_sae`]'s).
pub fn saes_at_every_layer(model: &EsmModel, device: &Device) -> Result<SaeSet, LoadError> {
    (1..=model.n_layers())
        .map(|layer| Ok((layer, weights::sae::random_interplm(model.d_model(), D_SAE, random::SEED ^ layer as u64, device)?)))
        .collect()
}

/// One layer of [`features_at_every_layer`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerFeatures {
    pub layer: usize,
    /// Mean number of features firing per residue.
    pub l0: f64,
    /// The `[residues, d_sae]` f32 matrix of one encoding of every residue at once (the page
    /// encodes by blocks of `features::ENCODE_ROWS` residues instead).
    pub dense_bytes: usize,
    /// The same as per-residue (feature, value) lists, as kept and sent to the page.
    pub sparse_bytes: usize,
}

/// What the page does for a protein when its features are viewed at every layer in turn: one
/// forward pass kept, then per layer `features::encode_sparse` (by blocks of residues, read back
/// to sparse lists).
pub async fn features_at_every_layer(model: &EsmModel, saes: &SaeSet, residues: usize) -> Result<Vec<LayerFeatures>, DeviceError> {
    let device = model.device();
    let acts = model.forward(&Batch::new(&tokens(1, residues), &device));
    let mut out = Vec::new();
    for (layer, sae) in saes.iter() {
        let (encoded, _) = crate::features::encode_sparse(sae, crate::features::residues(&acts, layer)).await?;
        let nonzero: usize = encoded.features.rows.iter().map(Vec::len).sum();
        out.push(LayerFeatures {
            layer,
            l0: nonzero as f64 / residues as f64,
            dense_bytes: residues * sae.d_sae * 4,
            sparse_bytes: nonzero * std::mem::size_of::<(u32, f32)>() + residues * std::mem::size_of::<Vec<(u32, f32)>>(),
        });
    }
    Ok(out)
}

/// `<cls>` residues `<eos>`; residue i of sequence b is amino acid `(7i + 13b + i / 3) mod 20`
/// (tokens 4..=23), as in peers.py.
pub fn tokens(batch: usize, residues: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|b| crate::alphabet::with_ends((0..residues).map(|i| 4 + ((7 * i + 13 * b + i / 3) % 20) as u32)))
        .collect()
}

/// What a case needs before the clock starts.
pub enum Prepared {
    Model { case: Case, batch: Batch },
    /// One sequence's pass and its encoding at [`layer`].
    Intervene { batch: Batch, cache: Box<Activations>, encoded: Box<Encoded> },
    Matmul { a: Tensor<2>, b: Tensor<2> },
}

pub fn prepare(model: &EsmModel, sae: &Sae, case: Case, batch: usize, residues: usize) -> Result<Prepared, String> {
    let device = model.device();
    if case == Case::Matmul {
        let a = Tensor::<2>::random([MATMUL, MATMUL], burn::tensor::Distribution::Default, &device);
        return Ok(Prepared::Matmul { b: a.clone().transpose(), a });
    }
    let batch_ = Batch::new(&tokens(batch, residues), &device);
    if case != Case::Intervene {
        return Ok(Prepared::Model { case, batch: batch_ });
    }
    if batch != 1 {
        return Err(format!("an intervention runs on one sequence, not {batch}"));
    }
    let cache = model.forward(&batch_);
    let encoded = crate::features::encode(&cache, sae, layer(model.n_layers()));
    Ok(Prepared::Intervene { batch: batch_, cache: Box::new(cache), encoded: Box::new(encoded) })
}

/// Runs a prepared case once; returns the logits (`[b, T, vocab]`, flat), or `C` for matmul.
pub async fn run(model: &EsmModel, sae: &Sae, prepared: &Prepared) -> Result<Vec<f32>, DeviceError> {
    let at = layer(model.n_layers());
    match prepared {
        Prepared::Model { case, batch } => {
            let acts = model.forward(batch);
            if *case == Case::Sae {
                let h = acts.hidden(at).clone();
                let [b, t, d] = h.dims();
                read_f32(sae.encode(h.reshape([b * t, d])).features).await?; // [b·T, d_sae]
            }
            read_f32(acts.logits).await
        }
        Prepared::Intervene { batch, cache, encoded } => {
            let edits = [Edit { feature: FEATURE, op: Op::Ablate, positions: None }];
            let after = intervene::intervene(model, sae, at, cache, batch, &**encoded, &edits).expect("feature 17 of 10,240, at a layer of the model");
            read_f32(after.logits).await
        }
        Prepared::Matmul { a, b } => read_f32(a.clone().matmul(b.clone())).await,
    }
}

/// Multiply-adds × 2 of a case: the dense layers, attention's two products, the LM head, and the
/// SAE encode or the intervention's share (blocks after [`layer`], the patch) where they apply.
pub fn flop(config: &EsmConfig, case: Case, batch: usize, residues: usize) -> f64 {
    let (d, f, v, layers) = (config.hidden_size as f64, config.intermediate_size as f64, config.vocab_size as f64, config.num_hidden_layers as f64);
    let t = (residues + 2) as f64;
    let tokens = batch as f64 * t;
    let per_layer = tokens * 2.0 * (4.0 * d * d + 2.0 * d * f) + batch as f64 * 2.0 * 2.0 * t * t * d;
    let head = tokens * 2.0 * (d * d + d * v);
    match case {
        Case::Forward => layers * per_layer + head,
        Case::Sae => layers * per_layer + head + tokens * 2.0 * d * D_SAE as f64,
        Case::Intervene => (layers - layer(config.num_hidden_layers) as f64) * per_layer + head + tokens * 2.0 * d,
        Case::Matmul => 2.0 * (MATMUL as f64).powi(3),
    }
}
