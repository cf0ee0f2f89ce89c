//! Verbs over the records of a FASTA: embed, features, intervene; and random-model.

use std::path::PathBuf;

use burn::prelude::*;
use plmscope::esm::{EsmConfig, EsmModel};
use plmscope::intervene::{self, Edit};
use plmscope::weights::safetensors::{self, OutTensor};
use plmscope::weights::{random, Vars};

use crate::io::{self, Error};

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    fasta: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

pub fn embed(a: EmbedArgs) -> Result<(), Error> {
    let records = io::read_fasta(&a.fasta)?;
    let session = io::open(&a.model)?;
    let mut tensors = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let o = pollster::block_on(session.embed(record))?;
        let t = o.len();
        let v = o.vocab();
        tensors.push((format!("{i}.input_ids"), OutTensor::I64 { shape: vec![t], data: o.input_ids }));
        tensors.push((format!("{i}.hidden_states"), OutTensor::F32 { shape: vec![o.n_layers + 1, t, o.d_model], data: o.hidden_states }));
        tensors.push((format!("{i}.logits"), OutTensor::F32 { shape: vec![t, v], data: o.logits }));
    }
    io::write_tensors(&a.out, tensors)?;
    eprintln!("{} records → {}", records.len(), a.out.display());
    Ok(())
}

/// A model, an SAE at a layer and the records to run.
#[derive(clap::Args)]
pub struct SaeArgs {
    #[command(flatten)]
    weights: io::Weights,
    #[arg(long)]
    fasta: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

impl SaeArgs {
    /// The records, then the session with the SAE at its layer, all checked before any work.
    fn open(&self) -> Result<(plmscope::session::Session, Vec<plmscope::alphabet::Record>), Error> {
        let records = io::read_fasta(&self.fasta)?;
        Ok((self.weights.open()?, records))
    }
}

#[derive(clap::Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    sae: SaeArgs,
    /// Divide by InterPLM's activation_rescale_factor (features on a 0–1 scale).
    #[arg(long)]
    normalized: bool,
}

pub fn features(a: FeaturesArgs) -> Result<(), Error> {
    let (session, records) = a.sae.open()?;
    let mut tensors = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let (shape, data) = pollster::block_on(session.dense_features(record, a.sae.weights.layer, a.normalized))?;
        tensors.push((format!("{i}.features"), OutTensor::F32 { shape, data }));
    }
    io::write_tensors(&a.sae.out, tensors)?;
    eprintln!("{} records, {} features at layer {} → {}", records.len(), session.sae(a.sae.weights.layer)?.d_sae, a.sae.weights.layer, a.sae.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct InterveneArgs {
    #[command(flatten)]
    sae: SaeArgs,
    /// ablate:F, clamp:F=VALUE or scale:F=FACTOR, optionally @RESIDUES (e.g. @3-10); repeat
    /// for several.
    #[arg(long = "edit", required = true)]
    edits: Vec<Edit>,
    /// 1-based residues, inclusive ranges (3-10,15), for edits without their own @RESIDUES;
    /// every residue when absent.
    #[arg(long)]
    positions: Option<String>,
}

pub fn intervene(mut a: InterveneArgs) -> Result<(), Error> {
    let (session, records) = a.sae.open()?;
    let positions = a.positions.as_deref().map(intervene::parse_positions).transpose()?;
    a.edits.iter_mut().filter(|e| e.positions.is_none()).for_each(|e| e.positions = positions.clone());
    let mut tensors = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let after = pollster::block_on(session.intervene_record(record, a.sae.weights.layer, &a.edits)).map_err(|e| format!("record {} ({}): {e}", i + 1, record.header))?;
        let ((hs, hd), (ls, ld)) = (after.hidden_states, after.logits);
        tensors.push((format!("{i}.hidden_states"), OutTensor::F32 { shape: hs, data: hd }));
        tensors.push((format!("{i}.logits"), OutTensor::F32 { shape: ls, data: ld }));
    }
    io::write_tensors(&a.sae.out, tensors)?;
    eprintln!("{} records, {} edits at layer {} → {}", records.len(), a.edits.len(), a.sae.weights.layer, a.sae.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct RandomModelArgs {
    /// A hub config.json; esm2_t6_8M_UR50D's when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value_t = random::SEED)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

pub fn random_model(a: RandomModelArgs) -> Result<(), Error> {
    let config = match a.config {
        Some(p) => EsmConfig::from_json(&io::read_text(&p)?)?,
        None => EsmConfig::esm2_t6_8m(),
    };
    let vars = Vars::random(a.seed, &Device::flex());
    EsmModel::load(&vars, &config)?;
    let tensors = vars.drawn().into_iter().map(|(name, t)| (name, OutTensor::F32 { shape: t.shape, data: t.data })).collect();
    std::fs::create_dir_all(&a.out).map_err(|e| format!("cannot create {}: {e}", a.out.display()))?;
    let mut json = serde_json::to_value(&config)?;
    json["model_type"] = "esm".into();
    json["architectures"] = serde_json::json!(["EsmForMaskedLM"]);
    json["plmscope_random_weights_seed"] = a.seed.into();
    io::write(&a.out.join("config.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    io::write(&a.out.join("model.safetensors"), &safetensors::write(tensors)?)?;
    eprintln!("random {}-layer ESM-2 (seed {}) → {}", config.num_hidden_layers, a.seed, a.out.display());
    Ok(())
}
