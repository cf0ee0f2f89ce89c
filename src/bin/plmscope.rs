//! The plmscope command line: batch work on the same core as the page.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::prelude::*;
use clap::{Parser, Subcommand};
use plmscope::esm::{EsmConfig, EsmModel};
use plmscope::weights::safetensors::{self, OutTensor};
use plmscope::weights::{self, random, Vars};
use plmscope::{alphabet, embed};

#[derive(Parser)]
#[command(name = "plmscope", version, about = "ESM-2 and sparse autoencoders, natively")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hidden states and logits of every FASTA record.
    ///
    /// Writes, for the i-th record (0-based): `{i}.input_ids` (i64 [T]), `{i}.hidden_states`
    /// (f32 [n_layers+1, T, d_model]) and `{i}.logits` (f32 [T, vocab]), T = residues + 2.
    Embed {
        /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        fasta: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes a hub-format model folder with deterministic random weights of a given
    /// architecture (the same bits as tests/reference/generate_esm.py): for offline demos and tests.
    RandomModel {
        /// A hub config.json; esm2_t6_8M_UR50D's when absent.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = random::SEED)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

type Error = Box<dyn std::error::Error>;

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

fn load_model(path: &Path, device: &Device) -> Result<EsmModel, Error> {
    let model = if path.is_dir() {
        let config = String::from_utf8(read(&path.join("config.json"))?)?;
        weights::esm::from_hub(&config, &read(&path.join("model.safetensors"))?, device)?.1
    } else {
        weights::esm::from_fair_esm(&read(path)?, &path.display().to_string(), device)?.1
    };
    Ok(model)
}

fn run(cli: Cli) -> Result<(), Error> {
    let device = Device::flex();
    match cli.command {
        Command::Embed { model, fasta, out } => {
            let text = String::from_utf8(read(&fasta)?).map_err(|_| format!("{} is not UTF-8 text", fasta.display()))?;
            let records = alphabet::parse_fasta(&text).map_err(|e| format!("{}: {e}", fasta.display()))?;
            let model = load_model(&model, &device)?;
            let mut tensors = Vec::new();
            for (i, record) in records.iter().enumerate() {
                let o = pollster::block_on(embed::run_record(&model, &record.tokens(), &device));
                let t = o.len();
                tensors.push((format!("{i}.input_ids"), OutTensor::I64 { shape: vec![t], data: o.input_ids.clone() }));
                tensors.push((
                    format!("{i}.hidden_states"),
                    OutTensor::F32 { shape: vec![o.n_layers + 1, t, o.d_model], data: o.hidden_states.clone() },
                ));
                let v = o.vocab();
                tensors.push((format!("{i}.logits"), OutTensor::F32 { shape: vec![t, v], data: o.logits }));
            }
            std::fs::write(&out, safetensors::write(tensors)?).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            eprintln!("{} records → {}", records.len(), out.display());
        }
        Command::RandomModel { config, seed, out } => {
            let config = match config {
                Some(p) => EsmConfig::from_json(&String::from_utf8(read(&p)?)?)?,
                None => EsmConfig::esm2_t6_8m(),
            };
            let vars = Vars::random(seed, &device);
            EsmModel::load(&vars, &config)?;
            let tensors = vars
                .drawn()
                .into_iter()
                .map(|(name, t)| (name, OutTensor::F32 { shape: t.shape, data: t.data }))
                .collect();
            std::fs::create_dir_all(&out)?;
            let mut json = serde_json::to_value(&config)?;
            json["model_type"] = "esm".into();
            json["architectures"] = serde_json::json!(["EsmForMaskedLM"]);
            json["plmscope_random_weights_seed"] = seed.into();
            std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&json)?)?;
            std::fs::write(out.join("model.safetensors"), safetensors::write(tensors)?)?;
            eprintln!("random {}-layer ESM-2 (seed {seed}) → {}", config.num_hidden_layers, out.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plmscope: {e}");
            ExitCode::FAILURE
        }
    }
}
