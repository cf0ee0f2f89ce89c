//! The plmscope command line: batch work on the same core as the page.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::prelude::*;
use clap::{Parser, Subcommand};
use plmscope::analysis::circuit::{CircuitOptions, CircuitRun};
use plmscope::analysis::labels::{self, Annotated};
use plmscope::analysis::probe::{self, Probe, ProbeInput, TrainOptions};
use plmscope::analysis::concepts;
use plmscope::analysis::generate::{self, GenerateOptions, Steer};
use plmscope::esm::{Batch, EsmConfig, EsmModel};
use plmscope::intervene::{self, Edit};
use plmscope::sae::Sae;
use plmscope::train::{self, harvest::harvest, Recipe, Trainer};
use plmscope::weights::sae::{SaeLensOrigin, SaeSource};
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
    /// Times the speed benchmark's cases (src/bench.rs) on the random esm2_t6_8M and its
    /// 10,240-feature SAE at layer 3; prints one JSON line per case and shape (median ms), as
    /// pkg-build/bench/peers.py does for torch and onnxruntime. Threads: RAYON_NUM_THREADS.
    BenchCases {
        #[arg(long, value_delimiter = ',', default_value = "forward,sae,intervene,matmul")]
        cases: Vec<plmscope::bench::Case>,
        /// BATCHxRESIDUES, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1x100,1x300,1x1000,32x300")]
        shapes: Vec<String>,
        /// peers.py's logits of 1×100 (logits_1x100.safetensors): prints the largest difference.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Times nothing by itself: answers one request per stdin line, so that peers.py can make
        /// plmscope and its peers take turns run by run. `{"case": "sae", "shape": "1x300"}`
        /// prepares (answer `{"gflop": …}`); `{"run": true}` runs it once (answer `{"ms": …}`).
        #[arg(long)]
        serve: bool,
    },
    /// Peak memory of one protein's features at every layer with the demo's random 10,240-feature
    /// SAE at each (esm2_t6_8M shape, random weights), as the page computes them; prints one JSON
    /// line (resident set sizes from /proc/self/status, and per layer L0 and dense vs sparse bytes).
    BenchMemory {
        #[arg(long, default_value_t = 1000)]
        residues: usize,
    },
    /// Times steered generation (seconds per round) and SAE training (tokens per second) on the
    /// esm2_t6_8M shape with random weights, and prints Markdown tables for BENCHMARKS.md.
    BenchDesign {
        #[arg(long, default_value_t = 100)]
        residues: usize,
        #[arg(long, default_value_t = 20)]
        steps: usize,
    },
    /// Times circuits over random proteins (esm2_t6_8M shape, random weights, the demo's random
    /// 10,240-feature SAEs, no probe) for the layer pairs 2→5 and 4→5, and prints a Markdown table
    /// for BENCHMARKS.md.
    BenchCircuit {
        #[arg(long, default_value_t = 20)]
        proteins: usize,
        #[arg(long, default_value_t = 300)]
        residues: usize,
        #[arg(long, default_value_t = 10)]
        top_n: usize,
    },
    /// Steered generation by iterative masked resampling; writes FASTA whose headers give each
    /// sequence's pseudo-log-likelihood and its steered features' mean activation (unsteered).
    Generate {
        /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
        #[arg(long)]
        model: PathBuf,
        /// LAYER=PATH for each steered layer's SAE.
        #[arg(long = "sae", value_parser = parse_layer_path)]
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
    },
    /// Trains a per-residue logistic-regression probe for a concept and writes it as JSON.
    ///
    /// Prints held-out precision, recall, F1 and AUROC (every fifth protein is held out).
    Probe {
        #[command(flatten)]
        data: LabelArgs,
        /// The concept: a UniProt feature type ("Transmembrane", "Signal", "Binding site", …).
        #[arg(long)]
        concept: String,
        #[arg(long)]
        layer: usize,
        /// Read SAE features at LAYER (this SAE's) instead of the residual stream.
        #[arg(long)]
        sae: Option<PathBuf>,
        #[arg(long)]
        k: Option<usize>,
        #[arg(long)]
        out: PathBuf,
    },
    /// A circuit by ablation, written in the seed explorer's graph JSON.
    Circuit {
        /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
        #[arg(long)]
        model: PathBuf,
        /// FASTA, UniProt JSON or the explorer's features JSON.
        #[arg(long)]
        proteins: PathBuf,
        /// LAYER=PATH, one per circuit layer.
        #[arg(long = "sae", required = true, value_parser = parse_layer_path)]
        saes: Vec<(usize, PathBuf)>,
        /// A probe from `plmscope probe`: adds feature → behavior edges.
        #[arg(long)]
        probe: Option<PathBuf>,
        #[arg(long, default_value_t = 20)]
        top_n: usize,
        #[arg(long, default_value_t = 10)]
        edges_per_feature: usize,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Each SAE feature against each concept of annotated proteins (F1 per InterPLM, 1-D
    /// logistic regression per InterProt); writes the ranked table as JSON.
    Concepts {
        #[command(flatten)]
        data: LabelArgs,
        #[arg(long)]
        sae: PathBuf,
        #[arg(long)]
        k: Option<usize>,
        #[arg(long)]
        layer: usize,
        /// Concepts to test (repeat); every concept of the file when absent.
        #[arg(long = "concept")]
        concepts: Vec<String>,
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Trains an SAE on hidden state LAYER of every residue of a FASTA and writes a SAELens
    /// folder (cfg.json + sae_weights.safetensors) that every other command reads.
    ///
    /// Prints loss, fraction of variance explained, L0 and the dead fraction as it goes, and
    /// writes them per step to OUT/metrics.jsonl.
    TrainSae {
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

#[derive(clap::Args)]
struct LabelArgs {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    model: PathBuf,
    /// UniProt REST JSON (an entry or a search's results) or the explorer's features JSON.
    #[arg(long)]
    labels: PathBuf,
}

fn parse_layer_path(s: &str) -> Result<(usize, PathBuf), String> {
    let (l, p) = s.split_once('=').ok_or_else(|| format!("\"{s}\" is not LAYER=PATH"))?;
    Ok((l.parse().map_err(|_| format!("\"{l}\" is not a layer number"))?, PathBuf::from(p)))
}

fn parse_steer(s: &str) -> Result<(usize, Edit), String> {
    let (l, e) = s.split_once(':').ok_or_else(|| format!("\"{s}\" is not LAYER:EDIT (e.g. 3:clamp:17=8)"))?;
    Ok((l.parse().map_err(|_| format!("\"{l}\" is not a layer number"))?, e.parse().map_err(|e: intervene::ParseError| e.to_string())?))
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

fn read_labels(path: &Path) -> Result<Vec<Annotated>, Error> {
    let text = String::from_utf8(read(path)?).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let labelled = labels::read(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for s in &labelled.skipped {
        eprintln!("skipped {s}");
    }
    Ok(labelled.proteins)
}

/// Proteins from FASTA (no annotations) or from an annotation file.
fn read_proteins(path: &Path) -> Result<Vec<Annotated>, Error> {
    let text = String::from_utf8(read(path)?).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    if text.trim_start().starts_with('{') {
        return read_labels(path);
    }
    let records = alphabet::parse_fasta(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(records.into_iter().enumerate().map(|(i, r)| Annotated { accession: if r.header.is_empty() { format!("record {}", i + 1) } else { r.header.clone() }, sequence: r.sequence(), segments: vec![] }).collect())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), Error> {
    std::fs::write(path, serde_json::to_string_pretty(value)?).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
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
        Command::Generate { model, saes, steers, start, length, samples, rounds, mask_fraction, temperature, top_p, seed, out } => {
            let model = load_model(&model, &device)?;
            let mut loaded = Vec::new();
            for (l, p) in &saes {
                loaded.push((*l, load_sae(p, None, model.d_model(), &device)?));
            }
            let mut by_layer: Vec<Steer> = Vec::new();
            for (layer, edit) in steers {
                match by_layer.iter_mut().find(|s| s.layer == layer) {
                    Some(s) => s.edits.push(edit),
                    None => by_layer.push(Steer { layer, edits: vec![edit] }),
                }
            }
            let start = match start {
                Some(text) => alphabet::parse_fasta(&text).map_err(|e| format!("--start: {e}"))?.remove(0).residues,
                None => vec![alphabet::MASK; length],
            };
            let mut fasta = String::new();
            for i in 0..samples {
                let options = GenerateOptions { rounds, mask_fraction, temperature, top_p, seed: seed + i as u64 };
                let g = pollster::block_on(generate::generate(&model, &loaded, &by_layer, &start, options))?;
                let acts: Vec<String> = g.steered_activation.iter().map(|(l, f, a)| format!("L{l}:F{f}={a:.4}")).collect();
                let header = format!("sample{i} seed={} pll={:.3} {}", seed + i as u64, g.pseudo_log_likelihood, acts.join(" "));
                eprintln!("{header}");
                fasta.push_str(&format!(">{}\n{}\n", header.trim_end(), g.sequence));
            }
            std::fs::write(&out, fasta).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        }
        Command::TrainSae { model, fasta, layer, recipe, d_sae, k, l1, layer_norm, steps, batch, lr, max_tokens, seed, out } => {
            let recipe = match recipe.as_str() {
                "topk" => Recipe::TopK { k },
                "relu-l1" => Recipe::ReluL1 { l1 },
                other => return Err(format!("--recipe {other}: expected topk or relu-l1").into()),
            };
            let options = train::TrainOptions { recipe, d_sae, layer_norm, steps, batch, lr, seed, ..train::TrainOptions::default() };
            let model_name = model.display().to_string();
            let model = load_model(&model, &device)?;
            let records = read_fasta(&fasta)?;
            let data = harvest(&model, &records, layer, max_tokens, |_, _| {})?;
            eprintln!("{} tokens of hidden state {layer} from {} sequences", data.dims()[0], records.len());
            let mut trainer = pollster::block_on(Trainer::new(data, options))?;
            let mut log = String::new();
            let start = std::time::Instant::now();
            let mut last = None;
            while trainer.steps_done() < steps {
                let m = pollster::block_on(trainer.step())?;
                log.push_str(&serde_json::to_string(&m)?);
                log.push('\n');
                if m.step % (steps / 20).max(1) == 0 || m.step == steps {
                    eprintln!(
                        "step {}/{steps}: loss {:.4}, variance explained {:.3}, L0 {:.1}, dead {:.1}%",
                        m.step, m.loss, m.fraction_variance_explained, m.l0, 100.0 * m.dead_fraction
                    );
                }
                last = Some(m);
            }
            let seconds = start.elapsed().as_secs_f64();
            eprintln!("{steps} steps in {seconds:.1} s ({:.0} tokens/s)", (steps * batch) as f64 / seconds);
            let origin = SaeLensOrigin {
                model_name,
                hook_layer: layer,
                plmscope: serde_json::json!({ "trained_on": fasta.display().to_string(), "options": options, "last_step": last }),
            };
            let (cfg, weights) = pollster::block_on(weights::sae::to_saelens(&trainer.sae(), &origin))?;
            std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            for (name, bytes) in [("cfg.json", cfg.as_bytes()), ("sae_weights.safetensors", &weights[..]), ("metrics.jsonl", log.as_bytes())] {
                std::fs::write(out.join(name), bytes).map_err(|e| format!("cannot write {}: {e}", out.join(name).display()))?;
            }
            eprintln!("→ {}", out.display());
        }
        Command::BenchCases { cases, shapes, reference, serve } => bench_cases(&cases, &shapes, reference.as_deref(), serve, &device)?,
        Command::BenchMemory { residues } => bench_memory(residues, &device)?,
        Command::BenchDesign { residues, steps } => bench_design(residues, steps, &device)?,
        Command::BenchCircuit { proteins, residues, top_n } => bench_circuit(proteins, residues, top_n, &device)?,
        Command::Probe { data, concept, layer, sae, k, out } => {
            let proteins = read_labels(&data.labels)?;
            let model = load_model(&data.model, &device)?;
            let sae = sae.map(|p| load_sae(&p, k, model.d_model(), &device)).transpose()?;
            let input = if sae.is_some() { ProbeInput::Features } else { ProbeInput::Residual };
            let probe = pollster::block_on(probe::train(&model, sae.as_ref(), &proteins, &concept, layer, input, TrainOptions::default()))?;
            let show = |m: &probe::Metrics| {
                let f = |v: Option<f32>| v.map_or("–".into(), |v| format!("{v:.3}"));
                format!("{} residues ({} in {concept}): precision {}, recall {}, F1 {}, AUROC {}", m.residues, m.positives, f(m.precision), f(m.recall), f(m.f1), f(m.auroc))
            };
            eprintln!("train: {}", show(&probe.train));
            match &probe.held_out {
                Some(m) => eprintln!("held out: {}", show(m)),
                None => eprintln!("held out: none (fewer than 5 proteins)"),
            }
            write_json(&out, &probe)?;
        }
        Command::Circuit { model, proteins, saes, probe, top_n, edges_per_feature, batch, out } => {
            let proteins = read_proteins(&proteins)?;
            let name = model.display().to_string();
            let model = load_model(&model, &device)?;
            let mut loaded = Vec::new();
            for (l, p) in &saes {
                loaded.push((*l, load_sae(p, None, model.d_model(), &device)?));
            }
            let probe = match probe {
                Some(p) => Some(Probe::from_json(&String::from_utf8_lossy(&read(&p)?)).map_err(|e| format!("{}: {e}", p.display()))?),
                None => None,
            };
            let mut layers: Vec<usize> = saes.iter().map(|(l, _)| *l).collect();
            layers.sort_unstable();
            let options = CircuitOptions { layers, top_n, edges_per_feature, batch, model_name: name };
            let mut run = CircuitRun::new(&model, &loaded, probe.as_ref(), &proteins, options)?;
            let start = std::time::Instant::now();
            while !run.finished() {
                let p = pollster::block_on(run.step(&model, &loaded, probe.as_ref()))?;
                if p.done % (p.total / 20).max(1) == 0 {
                    eprintln!("step {}/{}", p.done, p.total);
                }
            }
            eprintln!("circuit in {:.1} s", start.elapsed().as_secs_f64());
            write_json(&out, &run.graph(&loaded, probe.as_ref()))?;
        }
        Command::Concepts { data, sae, k, layer, concepts, top, out } => {
            let proteins = read_labels(&data.labels)?;
            let model = load_model(&data.model, &device)?;
            let sae = load_sae(&sae, k, model.d_model(), &device)?;
            let concepts = if concepts.is_empty() { labels::concepts(&proteins).into_iter().map(|(c, _)| c).collect() } else { concepts };
            let table = pollster::block_on(concepts::associate(&model, &sae, layer, &proteins, &concepts, top))?;
            for row in &table.concepts {
                let best = row.top.first().map_or("no feature fires in it".into(), |a| format!("best feature {} (F1 {:.3} at {}, R² {:.3})", a.feature, a.f1, a.threshold, a.logistic_r2));
                eprintln!("{}: {} domains, {} residues; {best}", row.concept, row.domains, row.residues);
            }
            write_json(&out, &table)?;
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

/// Median wall time of `f` over `repeats` runs, after one warm-up, in ms.
fn median_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    median((0..repeats).map(|_| clocked_ms(&mut f)).collect())
}

/// Medians (ms) of two runs timed in turns, after a warm-up run each, the order reversed every
/// other round: both see the same spells of a noisy machine, so their ratio means something.
fn medians_in_turns(repeats: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    a();
    b();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for round in 0..repeats {
        if round % 2 == 0 {
            ta.push(clocked_ms(&mut a));
            tb.push(clocked_ms(&mut b));
        } else {
            tb.push(clocked_ms(&mut b));
            ta.push(clocked_ms(&mut a));
        }
    }
    (median(ta), median(tb))
}

fn clocked_ms(f: &mut impl FnMut()) -> f64 {
    let start = std::time::Instant::now();
    f();
    start.elapsed().as_secs_f64() * 1e3
}

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
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
    let cache = model.forward(&batch);
    println!("| layer L | encode at L (ms) | intervention at L (ms) | full forward, in turns with it (ms) | ÷ full forward | blocks after L ÷ all blocks |");
    println!("|---|---|---|---|---|---|");
    for layer in 1..config.num_hidden_layers {
        let encode = median_ms(repeats, || {
            host(features::encode(&cache, &sae, layer).features).expect("the CPU backend reads back");
        });
        let encoded = features::encode(&cache, &sae, layer);
        let edits = [Edit { feature: 0, op: intervene::Op::Ablate, positions: None }];
        let (t, forward) = medians_in_turns(
            repeats,
            || {
                let after = intervene::intervene(&model, &sae, layer, &cache, &batch, &encoded, &edits).expect("valid edit");
                host(after.logits).expect("the CPU backend reads back");
            },
            || {
                host(model.forward(&batch).logits).expect("the CPU backend reads back");
            },
        );
        let share = (config.num_hidden_layers - layer) as f64 / config.num_hidden_layers as f64;
        println!("| {layer} | {encode:.1} | {t:.1} | {forward:.1} | {:.2} | {share:.2} |", t / forward);
    }
    println!();
    println!("Full forward: embeddings, 6 blocks, LM head, logits read back. 1×{residues} residues, d_sae {d_sae}, medians of {repeats}.");
    Ok(())
}

fn bench_cases(cases: &[plmscope::bench::Case], shapes: &[String], reference: Option<&Path>, serve: bool, device: &Device) -> Result<(), Error> {
    use plmscope::bench::{self, Case};
    let (model, sae) = bench::model_and_sae(device)?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    if let Some(path) = reference {
        let want = safetensors::read(&read(path)?, &path.display().to_string())?.remove("logits").ok_or("no `logits` in the reference")?;
        let got = pollster::block_on(bench::run(&model, &sae, &bench::prepare(&model, &sae, Case::Forward, 1, 100)?))?;
        let worst = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("{}", serde_json::json!({ "check": "logits 1x100 against transformers", "max_abs_diff": worst, "n": want.data.len() }));
    }
    if serve {
        return serve_cases(&model, &sae);
    }
    for &case in cases {
        let shapes: Vec<(usize, usize)> = if case == Case::Matmul {
            vec![(bench::MATMUL, bench::MATMUL)]
        } else {
            shapes.iter().map(|s| parse_shape(s)).collect::<Result<_, _>>()?
        };
        for (b, r) in shapes {
            if case == Case::Intervene && b != 1 {
                continue;
            }
            let prepared = bench::prepare(&model, &sae, case, b, r)?;
            let repeats = if b * r >= 1000 { 3 } else { 7 };
            let ms = median_ms(repeats, || {
                pollster::block_on(bench::run(&model, &sae, &prepared)).expect("the CPU backend reads back");
            });
            let name = format!("{case:?}").to_lowercase();
            println!("{}", serde_json::json!({ "engine": "plmscope", "threads": threads, "case": name, "shape": format!("{b}x{r}"), "ms": (ms * 100.0).round() / 100.0, "gflop": bench::flop(case, b, r) / 1e9 }));
        }
    }
    Ok(())
}

/// `bench-cases --serve`: one case prepared at a time, run once per request, timed here (the pipe
/// is outside the clock).
fn serve_cases(model: &EsmModel, sae: &Sae) -> Result<(), Error> {
    use plmscope::bench::{self, Case};
    let mut prepared = None;
    for (n, line) in std::io::stdin().lines().enumerate() {
        let line = line?;
        let request: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("request {}: {e}: {line}", n + 1))?;
        let answer = if let Some(case) = request["case"].as_str() {
            let case: Case = case.parse()?;
            let (b, r) = parse_shape(request["shape"].as_str().ok_or_else(|| format!("request {}: a case without a shape: {line}", n + 1))?)?;
            prepared = Some(bench::prepare(model, sae, case, b, r)?);
            serde_json::json!({ "gflop": bench::flop(case, b, r) / 1e9 })
        } else if request["run"] == true {
            let case = prepared.as_ref().ok_or_else(|| format!("request {}: a run before any case was prepared", n + 1))?;
            let start = std::time::Instant::now();
            pollster::block_on(bench::run(model, sae, case))?;
            serde_json::json!({ "ms": start.elapsed().as_secs_f64() * 1e3 })
        } else {
            return Err(format!("request {} is neither {{\"case\", \"shape\"}} nor {{\"run\": true}}: {line}", n + 1).into());
        };
        println!("{answer}");
    }
    Ok(())
}

fn bench_memory(residues: usize, device: &Device) -> Result<(), Error> {
    use plmscope::bench;
    let model = bench::model(device)?;
    let saes = bench::saes_at_every_layer(&model, device)?;
    // The loaders' buffers are freed by now, but this binary keeps freed memory (keep_freed_memory):
    // hand it back so that the figure is what the weights hold.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let loaded = memory_status("VmRSS")?;
    let layers = pollster::block_on(bench::features_at_every_layer(&model, &saes, residues))?;
    let mb = |kb: u64| (kb as f64 / 1024.0 * 10.0).round() / 10.0;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "{}",
        serde_json::json!({ "engine": "plmscope", "threads": threads, "case": "memory", "shape": format!("1x{residues}"),
            "loadedMb": mb(loaded), "peakMb": mb(memory_status("VmHWM")?), "layers": layers })
    );
    Ok(())
}

/// A `kB` field of /proc/self/status (VmRSS: resident now; VmHWM: the peak).
fn memory_status(field: &str) -> Result<u64, Error> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with(field)).ok_or_else(|| format!("no {field} in /proc/self/status"))?;
    Ok(line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or_else(|| format!("unreadable {field} line: {line}"))?)
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (b, r) = s.split_once('x').ok_or_else(|| format!("shape \"{s}\" is not BATCHxRESIDUES"))?;
    Ok((b.parse().map_err(|_| format!("shape \"{s}\": bad batch"))?, r.parse().map_err(|_| format!("shape \"{s}\": bad residues"))?))
}

fn random_residues(n: usize, state: &mut u64) -> String {
    let aa = b"ACDEFGHIKLMNPQRSTVWY";
    (0..n)
        .map(|_| {
            *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            aa[(*state >> 33) as usize % 20] as char
        })
        .collect()
}

fn bench_design(residues: usize, steps: usize, device: &Device) -> Result<(), Error> {
    let config = EsmConfig::esm2_t6_8m();
    let model = EsmModel::load(&Vars::random(random::SEED, device), &config)?;
    let saes = vec![(3, weights::sae::random_interplm(config.hidden_size, 10_240, random::SEED ^ 3, device)?)];
    let steers = [Steer { layer: 3, edits: vec!["clamp:17=8".parse()?] }];
    let start = vec![alphabet::MASK; residues];
    // One round is one steered forward; the rest of a run (the PLL, the final encode) is the
    // same for 1 round and for 10, so their difference is 9 rounds.
    let time = |rounds| -> Result<f64, Error> {
        let t = std::time::Instant::now();
        let options = GenerateOptions { rounds, ..GenerateOptions::default() };
        pollster::block_on(generate::generate(&model, &saes, &steers, &start, options))?;
        Ok(t.elapsed().as_secs_f64())
    };
    let (one, ten) = (time(1)?, time(10)?);
    let per_round = (ten - one) / 9.0;
    let fixed = one - per_round;
    println!("| generation, {residues} residues, clamp at layer 3 | per round (ms) | rounds / s | PLL + final encode (s) |");
    println!("|---|---|---|---|");
    println!("| native | {:.0} | {:.1} | {fixed:.2} |", per_round * 1e3, 1.0 / per_round);
    println!();
    let mut state = 0x7EA1_u64;
    let fasta: String = (0..40).map(|i| format!(">r{i}\n{}\n", random_residues(300, &mut state))).collect();
    let records = alphabet::parse_fasta(&fasta)?;
    let data = harvest(&model, &records, 3, usize::MAX, |_, _| {})?;
    println!("| SAE training at layer 3, batch 1024 tokens | step (ms) | tokens / s |");
    println!("|---|---|---|");
    for (name, recipe) in [("top-k 2048 / k 32", Recipe::TopK { k: 32 }), ("ReLU + L1, 2048", Recipe::ReluL1 { l1: 0.4 })] {
        let options = train::TrainOptions { recipe, d_sae: 2048, steps, batch: 1024, ..train::TrainOptions::default() };
        let mut trainer = pollster::block_on(Trainer::new(data.clone(), options))?;
        pollster::block_on(trainer.step())?; // the first step allocates
        let t = std::time::Instant::now();
        for _ in 1..steps {
            pollster::block_on(trainer.step())?;
        }
        let step = t.elapsed().as_secs_f64() / (steps - 1) as f64;
        println!("| {name} | {:.0} | {:.0} |", step * 1e3, 1024.0 / step);
    }
    println!();
    println!("Native, burn Flex, esm2_t6_8M shape with random weights, {} tokens harvested from 40 random 300-residue proteins.", data.dims()[0]);
    Ok(())
}

fn bench_circuit(n_proteins: usize, residues: usize, top_n: usize, device: &Device) -> Result<(), Error> {
    let config = EsmConfig::esm2_t6_8m();
    let model = EsmModel::load(&Vars::random(random::SEED, device), &config)?;
    let mut state = 0x5EED_u64;
    let proteins: Vec<Annotated> =
        (0..n_proteins).map(|i| Annotated { accession: format!("R{i}"), sequence: random_residues(residues, &mut state), segments: vec![] }).collect();
    println!("| layers | blocks run per ablation | selection: {n_proteins} forwards + encodes (s) | ablations (s) | per ablated feature (ms) | total (s) |");
    println!("|---|---|---|---|---|---|");
    for (a, b) in [(2, 5), (4, 5)] {
        let saes = vec![
            (a, weights::sae::random_interplm(config.hidden_size, 10_240, random::SEED ^ a as u64, device)?),
            (b, weights::sae::random_interplm(config.hidden_size, 10_240, random::SEED ^ b as u64, device)?),
        ];
        let options = CircuitOptions { layers: vec![a, b], top_n, edges_per_feature: 10, batch: 8, model_name: "random esm2_t6_8M".into() };
        let mut run = CircuitRun::new(&model, &saes, None, &proteins, options)?;
        let start = std::time::Instant::now();
        let mut selected_at = None;
        while !run.finished() {
            let p = pollster::block_on(run.step(&model, &saes, None))?;
            if p.done == n_proteins {
                selected_at = Some(start.elapsed().as_secs_f64());
            }
        }
        let total = start.elapsed().as_secs_f64();
        let selection = selected_at.unwrap_or(total);
        let ablated = n_proteins * top_n;
        println!(
            "| {a} → {b} | {} | {selection:.1} | {:.1} | {:.0} | {total:.1} |",
            b - a,
            total - selection,
            (total - selection) * 1e3 / ablated as f64
        );
    }
    println!();
    println!("{n_proteins} proteins × {residues} residues, top {top_n} features of layer L ablated in each (batches of 8); native, burn Flex.");
    Ok(())
}

fn main() -> ExitCode {
    keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plmscope: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc serves blocks over 32 MiB (an attention score tensor of a batch is hundreds) with a
/// fresh `mmap` and unmaps them on free, so each forward pays a page fault per 4 KiB of every
/// large tensor (≈ 15 % of a 32×300 forward, BENCHMARKS.md). Served from the heap and kept
/// after free, the next tensor of that size reuses the same pages.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
