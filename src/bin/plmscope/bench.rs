//! The benchmark verbs (pkg-build/bench.sh): plmscope's own costs, and its side of the speed
//! suite against its peers. Built with the `bench` feature only.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use plmscope::alphabet;
use plmscope::analysis::circuit::{CircuitOptions, CircuitRun};
use plmscope::analysis::generate::{self, GenerateOptions, Steer};
use plmscope::analysis::labels::Annotated;
use plmscope::esm::{Batch, EsmConfig, EsmModel};
use plmscope::features;
use plmscope::intervene::{self, Edit};
use plmscope::sae::{Sae, SaeSet};
use plmscope::train::{self, harvest::harvest, Recipe, Trainer};
use plmscope::weights::{self, random, safetensors, Vars};

use crate::io::{host, read, Error};

#[derive(clap::Args)]
pub struct InterventionArgs {
    #[arg(long, default_value_t = 300)]
    residues: usize,
    #[arg(long, default_value_t = 10_240)]
    d_sae: usize,
    #[arg(long, default_value_t = 9)]
    repeats: usize,
}

#[derive(clap::Args)]
pub struct CasesArgs {
    #[arg(long, value_delimiter = ',', default_value = "forward,sae,intervene,matmul")]
    cases: Vec<plmscope::bench::Case>,
    /// BATCHxRESIDUES, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1x100,1x300,1x1000,32x300")]
    shapes: Vec<String>,
    /// peers.py's logits of 1×100 (logits_1x100.safetensors): prints the largest difference.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// The ESM-2 size, with random weights: 8M, 35M, 150M or 650M.
    #[arg(long, default_value = "8M")]
    size: String,
    /// Times nothing by itself: answers one request per stdin line, so that peers.py can make
    /// plmscope and its peers take turns run by run. `{"case": "sae", "shape": "1x300"}`
    /// prepares (answer `{"gflop": …}`); `{"run": true}` runs it once (answer `{"ms": …}`).
    #[arg(long)]
    serve: bool,
}

#[derive(clap::Args)]
pub struct MemoryArgs {
    #[arg(long, default_value_t = 1000)]
    residues: usize,
}

#[derive(clap::Args)]
pub struct AtlasArgs {
    #[arg(long, default_value_t = 1000)]
    proteins: usize,
    /// Also build it as two shards and time their merge.
    #[arg(long)]
    merge: bool,
    /// Keep only the k largest features of each residue (a top-k SAE's sparsity; the demo's ReLU
    /// SAE fires on a few thousand features a residue).
    #[arg(long)]
    top_k: Option<usize>,
    /// Annotate the proteins (UniProt JSON): four random segments each, of CONCEPTS concepts.
    #[arg(long, default_value_t = 0)]
    concepts: usize,
}

#[derive(clap::Args)]
pub struct DesignArgs {
    #[arg(long, default_value_t = 100)]
    residues: usize,
    #[arg(long, default_value_t = 20)]
    steps: usize,
}

#[derive(clap::Args)]
pub struct CircuitArgs {
    #[arg(long, default_value_t = 20)]
    proteins: usize,
    #[arg(long, default_value_t = 300)]
    residues: usize,
    #[arg(long, default_value_t = 10)]
    top_n: usize,
}

pub fn intervention(a: InterventionArgs) -> Result<(), Error> {
    bench(a.residues, a.d_sae, a.repeats, &crate::io::device())
}

pub fn cases(a: CasesArgs) -> Result<(), Error> {
    bench_cases(&a.cases, &a.shapes, &plmscope::bench::config(&a.size)?, a.reference.as_deref(), a.serve, &crate::io::device())
}

pub fn memory(a: MemoryArgs) -> Result<(), Error> {
    bench_memory(a.residues, &crate::io::device())
}

pub fn design(a: DesignArgs) -> Result<(), Error> {
    bench_design(a.residues, a.steps, &crate::io::device())
}

/// The atlas of the demo's random 10,240-feature SAE at layer 3 (random esm2_t6_8M weights) over
/// random proteins of 50–500 residues, through the session as `atlas build` runs it: proteins per
/// second, the atlas's bytes, the peak resident memory and, with `merge`, two shards' merge.
pub fn atlas(a: AtlasArgs) -> Result<(), Error> {
    use plmscope::analysis::atlas::AtlasOptions;
    use plmscope::session::{AtlasRequest, Session};
    let mut session = Session::new(crate::io::device());
    session.load_random_model()?;
    let info = session.load_random_sae(3)?;
    if let Some(k) = a.top_k {
        let mut sae = session.sae(3)?.clone();
        sae.activation = plmscope::sae::Activation::TopK(k);
        session.install_sae(3, sae, &format!("random demo SAE, top-{k}"), true, info.sha256)?;
    }
    let mut state = 0xA7_1A5_u64;
    let proteins: Vec<String> = (0..a.proteins)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let length = 50 + (state >> 33) as usize % 451;
            random_residues(length, &mut state)
        })
        .collect();
    let mut next = |n: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let fasta: String = if a.concepts == 0 {
        proteins.iter().enumerate().map(|(i, p)| format!(">R{i}\n{p}\n")).collect()
    } else {
        let entries: Vec<serde_json::Value> = proteins
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let features: Vec<serde_json::Value> = (0..4)
                    .map(|_| {
                        let start = 1 + next(p.len() - 20);
                        let end = start + next(20);
                        serde_json::json!({"type": format!("Concept {}", next(a.concepts)), "location": {"start": {"value": start}, "end": {"value": end}}})
                    })
                    .collect();
                serde_json::json!({"primaryAccession": format!("R{i}"), "sequence": {"value": p}, "features": features})
            })
            .collect();
        serde_json::json!({ "results": entries }).to_string()
    };
    let request = |shard| AtlasRequest { layer: 3, description: "random proteins".into(), options: AtlasOptions::default(), shard };
    let build = |session: &mut Session, shard| -> Result<f64, Error> {
        let total = session.atlas_start(&fasta, request(shard))?.total;
        let t = std::time::Instant::now();
        while pollster::block_on(session.atlas_step(100))?.done < total {}
        Ok(t.elapsed().as_secs_f64())
    };
    let seconds = build(&mut session, (0, 1))?;
    let atlas = pollster::block_on(session.atlas_finish())?;
    let peak = memory_status("VmHWM")?;
    let files = atlas.files();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let largest = files.iter().skip(1).map(|(_, b)| b.len()).max().unwrap_or(0);
    let residues = atlas.manifest.residues;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "{}",
        serde_json::json!({ "proteins": a.proteins, "residues": residues, "threads": threads, "topK": a.top_k, "concepts": atlas.manifest.concepts.len(), "seconds": seconds,
            "proteinsPerSecond": a.proteins as f64 / seconds, "atlasBytes": bytes, "bytesPerFeature": bytes / atlas.manifest.subject.d_sae,
            "largestBlockBytes": largest, "zipBytes": atlas.zip()?.len(), "dead": atlas.manifest.dead.len(), "peakRssMb": peak as f64 / 1024.0 })
    );
    if a.merge {
        let mut partials = Vec::new();
        for i in 0..2 {
            build(&mut session, (i, 2))?;
            let json = serde_json::to_string(&session.atlas_partial()?)?;
            partials.push(json);
        }
        let t = std::time::Instant::now();
        let parsed = partials.iter().map(|j| plmscope::analysis::atlas::Partial::from_json(j)).collect::<Result<Vec<_>, _>>()?;
        let merged = pollster::block_on(session.atlas_merge(parsed))?;
        let merge_seconds = t.elapsed().as_secs_f64();
        println!("{}", serde_json::json!({ "mergeSeconds": merge_seconds, "partialBytes": partials.iter().map(String::len).collect::<Vec<_>>(), "equal": merged == atlas }));
    }
    Ok(())
}

pub fn circuit(a: CircuitArgs) -> Result<(), Error> {
    bench_circuit(a.proteins, a.residues, a.top_n, &crate::io::device())
}

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

fn bench_cases(cases: &[plmscope::bench::Case], shapes: &[String], config: &EsmConfig, reference: Option<&Path>, serve: bool, device: &Device) -> Result<(), Error> {
    use plmscope::bench::{self, Case};
    let (model, sae) = bench::model_and_sae(device, config, crate::io::precision_for(config))?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    if let Some(path) = reference {
        let want = safetensors::read(&read(path)?, &path.display().to_string())?.remove("logits").ok_or("no `logits` in the reference")?;
        let got = pollster::block_on(bench::run(&model, &sae, &bench::prepare(&model, &sae, Case::Forward, 1, 100)?))?;
        let worst = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("{}", serde_json::json!({ "check": "logits 1x100 against transformers", "max_abs_diff": worst, "n": want.data.len() }));
    }
    if serve {
        return serve_cases(&model, &sae, config);
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
            println!("{}", serde_json::json!({ "engine": "plmscope", "threads": threads, "case": name, "shape": format!("{b}x{r}"), "ms": (ms * 100.0).round() / 100.0, "gflop": bench::flop(config, case, b, r) / 1e9 }));
        }
    }
    Ok(())
}

/// `bench-cases --serve`: one case prepared at a time, run once per request, timed here (the pipe
/// is outside the clock).
fn serve_cases(model: &EsmModel, sae: &Sae, config: &EsmConfig) -> Result<(), Error> {
    use plmscope::bench::{self, Case};
    let mut prepared = None;
    for (n, line) in std::io::stdin().lines().enumerate() {
        let line = line?;
        let request: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("request {}: {e}: {line}", n + 1))?;
        let answer = if let Some(case) = request["case"].as_str() {
            let case: Case = case.parse()?;
            let (b, r) = parse_shape(request["shape"].as_str().ok_or_else(|| format!("request {}: a case without a shape: {line}", n + 1))?)?;
            prepared = Some(bench::prepare(model, sae, case, b, r)?);
            serde_json::json!({ "gflop": bench::flop(config, case, b, r) / 1e9 })
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
    let model = bench::model(device, &EsmConfig::esm2_t6_8m(), plmscope::device::Precision::F32)?;
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
    let saes: SaeSet = [(3, weights::sae::random_interplm(config.hidden_size, 10_240, random::SEED ^ 3, device)?)].into_iter().collect();
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
        let saes: SaeSet = [
            (a, weights::sae::random_interplm(config.hidden_size, 10_240, random::SEED ^ a as u64, device)?),
            (b, weights::sae::random_interplm(config.hidden_size, 10_240, random::SEED ^ b as u64, device)?),
        ]
        .into_iter()
        .collect();
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
