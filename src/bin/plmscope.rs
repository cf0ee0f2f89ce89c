//! The plmscope command line: batch work on the same core as the page.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::prelude::*;
use clap::{Parser, Subcommand};
use plmscope::esm::{Batch, EsmConfig, EsmModel};
use plmscope::intervene::{self, Edit};
use plmscope::sae::Sae;
use plmscope::weights::sae::SaeSource;
use plmscope::weights::safetensors::{self, OutTensor};
use plmscope::weights::{self, random, Vars};
use plmscope::{alphabet, embed, features};

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
    /// SAE features of every residue (cls and eos excluded) at hidden state LAYER.
    ///
    /// Writes `{i}.features` (f32 [residues, d_sae]) for the i-th record.
    Features {
        #[command(flatten)]
        sae: SaeArgs,
        /// Divide by InterPLM's activation_rescale_factor (features on a 0–1 scale).
        #[arg(long)]
        normalized: bool,
    },
    /// Edits SAE features at LAYER and runs the rest of the model.
    ///
    /// Writes `{i}.logits` (f32 [T, vocab]) and `{i}.hidden_states` (f32 [n_layers+1, T,
    /// d_model]) after the intervention, as `embed` shapes them.
    Intervene {
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
    },
    /// Times an intervention at each layer against a full forward (esm2_t6_8M shape, random
    /// weights, a random SAE) and prints a Markdown table for BENCHMARKS.md.
    Bench {
        #[arg(long, default_value_t = 300)]
        residues: usize,
        #[arg(long, default_value_t = 10_240)]
        d_sae: usize,
        #[arg(long, default_value_t = 9)]
        repeats: usize,
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

#[derive(clap::Args)]
struct SaeArgs {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    model: PathBuf,
    /// An InterPLM or InterProt .pt, an InterProt .safetensors, or a SAELens folder.
    #[arg(long)]
    sae: PathBuf,
    /// The hidden state the SAE reads (1..=n_layers, transformers numbering).
    #[arg(long)]
    layer: usize,
    #[arg(long)]
    fasta: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// k of a top-k SAE whose file does not say it.
    #[arg(long)]
    k: Option<usize>,
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

fn load_sae(path: &Path, k: Option<usize>, d_model: usize, device: &Device) -> Result<Sae, Error> {
    let name = path.display().to_string();
    let sae = if path.is_dir() {
        let cfg = String::from_utf8(read(&path.join("cfg.json"))?)?;
        weights::sae::load(SaeSource::SaeLens { cfg_json: &cfg, weights: &read(&path.join("sae_weights.safetensors"))? }, d_model, device)?
    } else if name.ends_with(".safetensors") {
        weights::sae::load(SaeSource::Safetensors { bytes: &read(path)?, name: &name, k }, d_model, device)?
    } else {
        weights::sae::load(SaeSource::Pt { bytes: &read(path)?, name: &name, k }, d_model, device)?
    };
    Ok(sae)
}

fn host<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, embed::DeviceError> {
    pollster::block_on(embed::read_f32(t))
}

fn read_fasta(path: &Path) -> Result<Vec<alphabet::Record>, Error> {
    let text = String::from_utf8(read(path)?).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    Ok(alphabet::parse_fasta(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn write_out(path: &Path, tensors: Vec<(String, OutTensor)>) -> Result<(), Error> {
    std::fs::write(path, safetensors::write(tensors)?).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// Model, SAE and records of a `features` or `intervene` run, checked before any work.
fn open_sae_run(args: &SaeArgs, device: &Device) -> Result<(EsmModel, Sae, Vec<alphabet::Record>), Error> {
    let records = read_fasta(&args.fasta)?;
    let model = load_model(&args.model, device)?;
    let sae = load_sae(&args.sae, args.k, model.d_model(), device)?;
    features::check(&model, &sae, args.layer)?;
    Ok((model, sae, records))
}

fn run(cli: Cli) -> Result<(), Error> {
    let device = Device::flex();
    match cli.command {
        Command::Embed { model, fasta, out } => {
            let records = read_fasta(&fasta)?;
            let model = load_model(&model, &device)?;
            let mut tensors = Vec::new();
            for (i, record) in records.iter().enumerate() {
                let o = pollster::block_on(embed::run_record(&model, &record.tokens(), &device))?;
                let t = o.len();
                tensors.push((format!("{i}.input_ids"), OutTensor::I64 { shape: vec![t], data: o.input_ids.clone() }));
                tensors.push((
                    format!("{i}.hidden_states"),
                    OutTensor::F32 { shape: vec![o.n_layers + 1, t, o.d_model], data: o.hidden_states.clone() },
                ));
                let v = o.vocab();
                tensors.push((format!("{i}.logits"), OutTensor::F32 { shape: vec![t, v], data: o.logits }));
            }
            write_out(&out, tensors)?;
            eprintln!("{} records → {}", records.len(), out.display());
        }
        Command::Features { sae: args, normalized } => {
            let (model, sae, records) = open_sae_run(&args, &device)?;
            let mut tensors = Vec::new();
            for (i, record) in records.iter().enumerate() {
                let acts = model.forward(&Batch::new(&[record.tokens()], &device));
                let mut f = features::encode(&acts, &sae, args.layer).features;
                if normalized {
                    f = sae.normalised_features(f);
                }
                let shape = f.dims().to_vec();
                tensors.push((format!("{i}.features"), OutTensor::F32 { shape, data: host(f)? }));
            }
            write_out(&args.out, tensors)?;
            eprintln!("{} records, {} features at layer {} → {}", records.len(), sae.d_sae, args.layer, args.out.display());
        }
        Command::Intervene { sae: args, mut edits, positions } => {
            let (model, sae, records) = open_sae_run(&args, &device)?;
            let positions = positions.as_deref().map(intervene::parse_positions).transpose()?;
            edits.iter_mut().filter(|e| e.positions.is_none()).for_each(|e| e.positions = positions.clone());
            let mut tensors = Vec::new();
            for (i, record) in records.iter().enumerate() {
                let batch = Batch::new(&[record.tokens()], &device);
                let cache = model.forward(&batch);
                let encoded = features::encode(&cache, &sae, args.layer);
                let after = intervene::intervene(&model, &sae, args.layer, &cache, &batch, &encoded, &edits)
                    .map_err(|e| format!("record {} ({}): {e}", i + 1, record.header))?;
                let hidden: Vec<_> = (0..=model.n_layers())
                    .map(|l| if l < args.layer { cache.hidden(l).clone() } else { after.hidden(l).clone() })
                    .collect();
                let hidden = Tensor::cat(hidden, 0); // [n_layers + 1, T, d]
                let [_, t, v] = after.logits.dims();
                let logits = after.logits.reshape([t, v]);
                tensors.push((format!("{i}.hidden_states"), OutTensor::F32 { shape: hidden.dims().to_vec(), data: host(hidden)? }));
                tensors.push((format!("{i}.logits"), OutTensor::F32 { shape: vec![t, v], data: host(logits)? }));
            }
            write_out(&args.out, tensors)?;
            eprintln!("{} records, {} edits at layer {} → {}", records.len(), edits.len(), args.layer, args.out.display());
        }
        Command::Bench { residues, d_sae, repeats } => bench(residues, d_sae, repeats, &device)?,
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

/// Median wall time of `f` over `repeats` runs, after one warm-up, in ms.
fn median_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[repeats / 2]
}

fn bench(residues: usize, d_sae: usize, repeats: usize, device: &Device) -> Result<(), Error> {
    use burn::tensor::Distribution;
    let config = EsmConfig::esm2_t6_8m();
    let model = EsmModel::load(&Vars::random(random::SEED, device), &config)?;
    let d = config.hidden_size;
    let uniform = |shape: [usize; 2], a: f64| Tensor::<2>::random(shape, Distribution::Uniform(-a, a), device);
    let sae = Sae {
        w_enc: uniform([d, d_sae], 0.1),
        b_enc: Tensor::<1>::random([d_sae], Distribution::Uniform(-0.3, 0.0), device),
        w_dec: uniform([d_sae, d], 0.1),
        b_dec: Tensor::zeros([d], device),
        apply_b_dec_to_input: true,
        activation: plmscope::sae::Activation::Relu,
        norm: plmscope::sae::InputNorm::None,
        rescale: None,
        format: plmscope::sae::SaeFormat::InterPlm,
        d_in: d,
        d_sae,
    };
    let aa = b"ACDEFGHIKLMNPQRSTVWY";
    let seq: String = (0..residues).map(|i| aa[(i * 7 + i / 3) % 20] as char).collect();
    let tokens = alphabet::parse_fasta(&seq)?[0].tokens();
    let batch = Batch::new(&[tokens], device);
    let forward = median_ms(repeats, || {
        host(model.forward(&batch).logits).expect("the CPU backend reads back");
    });
    let cache = model.forward(&batch);
    println!("| layer L | encode at L (ms) | intervention at L (ms) | ÷ full forward | blocks after L ÷ all blocks |");
    println!("|---|---|---|---|---|");
    for layer in 1..config.num_hidden_layers {
        let encode = median_ms(repeats, || {
            host(features::encode(&cache, &sae, layer).features).expect("the CPU backend reads back");
        });
        let encoded = features::encode(&cache, &sae, layer);
        let edits = [Edit { feature: 0, op: intervene::Op::Ablate, positions: None }];
        let t = median_ms(repeats, || {
            let after = intervene::intervene(&model, &sae, layer, &cache, &batch, &encoded, &edits).expect("valid edit");
            host(after.logits).expect("the CPU backend reads back");
        });
        let share = (config.num_hidden_layers - layer) as f64 / config.num_hidden_layers as f64;
        println!("| {layer} | {encode:.1} | {t:.1} | {:.2} | {share:.2} |", t / forward);
    }
    println!();
    println!("Full forward (embeddings, 6 blocks, LM head, logits read back): {forward:.1} ms; 1×{residues} residues, d_sae {d_sae}, median of {repeats}.");
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
