//! Verbs that make things: steered generation and SAE training.

use std::path::PathBuf;

use plmscope::analysis::generate::{self, Steer};
use plmscope::intervene::Edit;
use plmscope::session::GenerateRequest;
use plmscope::train::{Recipe, TrainOptions};
use plmscope::weights::safetensors::{self, OutTensor};

use crate::atlas::parse_shard;

use crate::io::{self, Error};

fn parse_steer(s: &str) -> Result<(usize, Edit), String> {
    generate::parse_steer(s).map_err(|e| e.to_string())
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    model: PathBuf,
    /// LAYER=PATH for each steered layer's SAE.
    #[arg(long = "sae", value_parser = io::parse_layer_path)]
    saes: Vec<(usize, PathBuf)>,
    /// LAYER:EDIT, e.g. 3:clamp:17=8 or 3:scale:5=2 (repeat); scale:F=1 only watches F.
    #[arg(long = "steer", value_parser = parse_steer)]
    steers: Vec<(usize, Edit)>,
    /// A seed sequence (`<mask>` allowed); else --length residues, all masked.
    #[arg(long)]
    start: Option<String>,
    #[arg(long, default_value_t = 100)]
    length: usize,
    #[arg(long, default_value_t = 4)]
    samples: usize,
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    #[arg(long, default_value_t = 0.15)]
    mask_fraction: f32,
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// Sample i uses seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

pub fn generate(a: GenerateArgs) -> Result<(), Error> {
    let mut session = io::open(&a.model)?;
    for (layer, path) in &a.saes {
        io::add_sae(&mut session, *layer, path, None)?;
    }
    let steers: Vec<Steer> = a.steers.into_iter().map(|(layer, edit)| Steer { layer, edits: vec![edit] }).collect();
    let mut request = GenerateRequest {
        steers,
        start: a.start,
        length: a.length,
        rounds: a.rounds,
        mask_fraction: a.mask_fraction,
        temperature: a.temperature,
        top_p: a.top_p,
        seed: a.seed,
    };
    let mut fasta = String::new();
    for i in 0..a.samples {
        request.seed = a.seed + i as u64;
        let g = pollster::block_on(session.generate(&request)).map_err(|e| match e {
            plmscope::session::SessionError::Request { detail, .. } => format!("--start: {detail}"),
            other => other.to_string(),
        })?;
        let acts: Vec<String> = g.steered_activation.iter().map(|(l, f, v)| format!("L{l}:F{f}={v:.4}")).collect();
        let header = format!("sample{i} seed={} pll={:.3} {}", request.seed, g.pseudo_log_likelihood, acts.join(" "));
        eprintln!("{header}");
        fasta.push_str(&format!(">{}\n{}\n", header.trim_end(), g.sequence));
    }
    io::write(&a.out, fasta.as_bytes())
}

#[derive(clap::Args)]
pub struct TrainSaeArgs {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    model: PathBuf,
    #[arg(long, required_unless_present = "activations", conflicts_with = "activations")]
    fasta: Option<PathBuf>,
    /// Hidden states harvested before (`plmscope harvest`, e.g. one file per shard of a corpus),
    /// instead of --fasta: read in corpus order, so that the shards train as the whole FASTA does.
    #[arg(long, num_args = 1..)]
    activations: Vec<PathBuf>,
    /// The hidden state to read (1..=n_layers, transformers numbering).
    #[arg(long)]
    layer: usize,
    /// topk or relu-l1.
    #[arg(long, default_value = "topk")]
    recipe: String,
    #[arg(long, default_value_t = 2048)]
    d_sae: usize,
    /// Features kept per token (topk).
    #[arg(long, default_value_t = 32)]
    k: usize,
    /// L1 coefficient (relu-l1).
    #[arg(long, default_value_t = 0.4)]
    l1: f32,
    /// Layer-norm each token first (SAELens normalize_activations = layer_norm).
    #[arg(long)]
    layer_norm: bool,
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Tokens per step.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Harvest at most this many tokens.
    #[arg(long, default_value_t = 1_000_000)]
    max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The SAELens folder to write (created if missing).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct HarvestArgs {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    fasta: PathBuf,
    /// The hidden state to read (1..=n_layers, transformers numbering).
    #[arg(long)]
    layer: usize,
    /// i/n: harvest every n-th sequence from the i-th (as `atlas build --shard`).
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// A safetensors file: one f32 tensor `layer{LAYER}.{N}` of shape [residues, d_model] per
    /// sequence, N its 0-based number in the FASTA.
    #[arg(long)]
    out: PathBuf,
}

pub fn harvest(a: HarvestArgs) -> Result<(), Error> {
    let session = io::open(&a.model)?;
    let (index, count) = a.shard.unwrap_or((0, 1));
    let picked: Vec<(usize, plmscope::alphabet::Record)> =
        io::read_fasta(&a.fasta)?.into_iter().enumerate().filter(|(i, _)| plmscope::analysis::atlas::in_shard(*i as u64, (index, count))).collect();
    let records: Vec<_> = picked.iter().map(|p| p.1.clone()).collect();
    let hidden = pollster::block_on(session.harvest(&records, a.layer))?;
    let rows: usize = hidden.iter().map(|h| h.1[0]).sum();
    let tensors = picked.iter().zip(hidden).map(|((i, _), (data, [r, d]))| (format!("layer{}.{i}", a.layer), OutTensor::F32 { shape: vec![r, d], data })).collect();
    io::write_tensors(&a.out, tensors)?;
    eprintln!("{rows} residues of hidden state {} from {} sequences (shard {index}/{count}) → {}", a.layer, records.len(), a.out.display());
    Ok(())
}

/// The hidden states of `layer` in `files`, in corpus order, up to `max_tokens` rows: the rows
/// (row-major, of shape `[rows, d_model]`), their shape, and the sequences they came from.
fn read_harvests(files: &[PathBuf], layer: usize, max_tokens: usize) -> Result<(Vec<f32>, [usize; 2], usize), Error> {
    let mut all: std::collections::BTreeMap<u64, plmscope::weights::RawTensor> = std::collections::BTreeMap::new();
    let prefix = format!("layer{layer}.");
    for f in files {
        let name = f.display().to_string();
        for (key, t) in safetensors::read(&io::read(f)?, &name)? {
            let n = key.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| format!("{name}: tensor {key} is not a harvest of hidden state {layer} (layer{layer}.N)"))?;
            if t.shape.len() != 2 || !t.is_float() {
                return Err(format!("{name}: {key} is not a float [residues, d_model] tensor").into());
            }
            if all.insert(n, t).is_some() {
                return Err(format!("{name}: sequence {n} is in two harvests").into());
            }
        }
    }
    let d = all.values().next().map(|t| t.shape[1]).ok_or("the harvests hold no sequences")?;
    let mut rows = Vec::new();
    let mut used = 0;
    for t in all.values() {
        if t.shape[1] != d {
            return Err(format!("the harvests mix widths {d} and {}", t.shape[1]).into());
        }
        let n = rows.len() / d;
        if n >= max_tokens {
            break;
        }
        rows.extend_from_slice(&t.data[..t.shape[0].min(max_tokens - n) * d]);
        used += 1;
    }
    let shape = [rows.len() / d, d];
    Ok((rows, shape, used))
}

pub fn train_sae(a: TrainSaeArgs) -> Result<(), Error> {
    let recipe = match a.recipe.as_str() {
        "topk" => Recipe::TopK { k: a.k },
        "relu-l1" => Recipe::ReluL1 { l1: a.l1 },
        other => return Err(format!("--recipe {other}: expected topk or relu-l1").into()),
    };
    let options = TrainOptions { recipe, d_sae: a.d_sae, layer_norm: a.layer_norm, steps: a.steps, batch: a.batch, lr: a.lr, seed: a.seed, ..TrainOptions::default() };
    let mut session = io::open(&a.model)?;
    let info = match &a.fasta {
        Some(fasta) => {
            let records = io::read_fasta(fasta)?;
            pollster::block_on(session.train_start(&records, &fasta.display().to_string(), a.layer, a.max_tokens, options, |_, _| {}))?
        }
        None => {
            let (rows, shape, sequences) = read_harvests(&a.activations, a.layer, a.max_tokens)?;
            let data = burn::prelude::Tensor::<2>::from_data(burn::prelude::TensorData::new(rows, shape), &session.model()?.device());
            let names: Vec<String> = a.activations.iter().map(|p| p.display().to_string()).collect();
            pollster::block_on(session.train_on(data, &names.join(" "), a.layer, sequences, options))?
        }
    };
    eprintln!("{} tokens of hidden state {} from {} sequences", info.tokens, a.layer, info.sequences);
    let mut log = String::new();
    let start = std::time::Instant::now();
    loop {
        let Some(m) = pollster::block_on(session.train_steps(1))?.pop() else { break };
        log.push_str(&serde_json::to_string(&m)?);
        log.push('\n');
        if m.step % (a.steps / 20).max(1) == 0 || m.step == a.steps {
            eprintln!("step {}/{}: loss {:.4}, variance explained {:.3}, L0 {:.1}, dead {:.1}%", m.step, a.steps, m.loss, m.fraction_variance_explained, m.l0, 100.0 * m.dead_fraction);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!("{} steps in {seconds:.1} s ({:.0} tokens/s)", a.steps, (a.steps * a.batch) as f64 / seconds);
    let files = pollster::block_on(session.trained_saelens())?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("cannot create {}: {e}", a.out.display()))?;
    for (name, bytes) in [("cfg.json", files.cfg.as_bytes()), ("sae_weights.safetensors", &files.weights[..]), ("metrics.jsonl", log.as_bytes())] {
        io::write(&a.out.join(name), bytes)?;
    }
    eprintln!("→ {}", a.out.display());
    Ok(())
}
