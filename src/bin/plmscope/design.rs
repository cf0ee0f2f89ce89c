//! Verbs that make things: steered generation and SAE training.

use std::path::PathBuf;

use plmscope::analysis::generate::{self, Steer};
use plmscope::intervene::Edit;
use plmscope::session::GenerateRequest;
use plmscope::train::{Recipe, TrainOptions};

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
    #[arg(long)]
    fasta: PathBuf,
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

pub fn train_sae(a: TrainSaeArgs) -> Result<(), Error> {
    let recipe = match a.recipe.as_str() {
        "topk" => Recipe::TopK { k: a.k },
        "relu-l1" => Recipe::ReluL1 { l1: a.l1 },
        other => return Err(format!("--recipe {other}: expected topk or relu-l1").into()),
    };
    let options = TrainOptions { recipe, d_sae: a.d_sae, layer_norm: a.layer_norm, steps: a.steps, batch: a.batch, lr: a.lr, seed: a.seed, ..TrainOptions::default() };
    let mut session = io::open(&a.model)?;
    let records = io::read_fasta(&a.fasta)?;
    let info = pollster::block_on(session.train_start(&records, &a.fasta.display().to_string(), a.layer, a.max_tokens, options, |_, _| {}))?;
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
