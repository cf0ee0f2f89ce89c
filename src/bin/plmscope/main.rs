//! The plmscope command line: batch work on the same session core as the page. Each verb is a
//! module with its arguments and a `run` that maps them onto [`plmscope::session::Session`].

mod analysis;
mod atlas;
#[cfg(feature = "bench")]
mod bench;
mod design;
mod io;
mod sequences;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "plmscope", version, about = "ESM-2 and sparse autoencoders, natively")]
struct Cli {
    /// Where the model runs: the CPU, burn's wgpu runtime (Vulkan, Metal, DX12; a build with
    /// `--features wgpu`) or CUDA (`--features cuda`).
    #[arg(long, global = true, default_value = "cpu", value_parser = ["cpu", "wgpu", "cuda"])]
    backend: String,
    /// How the model's dense-layer weights are held on a GPU backend: f16 halves their memory
    /// (its bounds against f32 are in the README); auto takes f16 for models whose f32 weights
    /// pass 1 GiB (650M) where the GPU has 16-bit floats. The CPU keeps f32.
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "f32", "f16"])]
    precision: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hidden states and logits of every FASTA record.
    ///
    /// Writes, for the i-th record (0-based): `{i}.input_ids` (i64 [T]), `{i}.hidden_states`
    /// (f32 [n_layers+1, T, d_model]) and `{i}.logits` (f32 [T, vocab]), T = residues + 2.
    Embed(sequences::EmbedArgs),
    /// SAE features of every residue (cls and eos excluded) at hidden state LAYER.
    ///
    /// Writes `{i}.features` (f32 [residues, d_sae]) for the i-th record.
    Features(sequences::FeaturesArgs),
    /// Edits SAE features at LAYER and runs the rest of the model.
    ///
    /// Writes `{i}.logits` (f32 [T, vocab]) and `{i}.hidden_states` (f32 [n_layers+1, T,
    /// d_model]) after the intervention, as `embed` shapes them.
    Intervene(sequences::InterveneArgs),
    /// Trains a per-residue logistic-regression probe for a concept and writes it as JSON.
    ///
    /// Prints held-out precision, recall, F1 and AUROC (every fifth protein is held out).
    Probe(analysis::ProbeArgs),
    /// A circuit by ablation, written in the seed explorer's graph JSON.
    Circuit(analysis::CircuitArgs),
    /// Each SAE feature against each concept of annotated proteins (F1 per InterPLM, 1-D
    /// logistic regression per InterProt); writes the ranked table as JSON.
    Concepts(analysis::ConceptsArgs),
    /// The feature atlas: what each feature of an SAE does over a corpus of proteins (frequency,
    /// histograms, top and quantile examples, direct effect), built whole or in shards and merged.
    #[command(subcommand)]
    Atlas(atlas::AtlasCommand),
    /// Steered generation by iterative masked resampling; writes FASTA whose headers give each
    /// sequence's pseudo-log-likelihood and its steered features' mean activation (unsteered).
    Generate(design::GenerateArgs),
    /// Trains an SAE on hidden state LAYER of every residue of a FASTA and writes a SAELens
    /// folder (cfg.json + sae_weights.safetensors) that every other command reads.
    ///
    /// Prints loss, fraction of variance explained, L0 and the dead fraction as it goes, and
    /// writes them per step to OUT/metrics.jsonl.
    TrainSae(design::TrainSaeArgs),
    /// Writes hidden state LAYER of every residue of a FASTA (or of one shard of it) as
    /// safetensors, for `train-sae --activations`: the harvest of a large corpus, one job a shard.
    Harvest(design::HarvestArgs),
    /// Writes a hub-format model folder with deterministic random weights of a given
    /// architecture (the same bits as tests/reference/generate_esm.py): for offline demos and tests.
    RandomModel(sequences::RandomModelArgs),
    /// Times an intervention at each layer against a full forward (esm2_t6_8M shape, random
    /// weights, a random SAE) and prints a Markdown table for BENCHMARKS.md.
    #[cfg(feature = "bench")]
    Bench(bench::InterventionArgs),
    /// Times the speed benchmark's cases (src/bench.rs) on the random esm2_t6_8M and its
    /// 10,240-feature SAE at layer 3; prints one JSON line per case and shape (median ms), as
    /// pkg-build/bench/peers.py does for torch and onnxruntime. Threads: RAYON_NUM_THREADS.
    #[cfg(feature = "bench")]
    BenchCases(bench::CasesArgs),
    /// Peak memory of one protein's features at every layer with the demo's random 10,240-feature
    /// SAE at each (esm2_t6_8M shape, random weights), as the page computes them; prints one JSON
    /// line (resident set sizes from /proc/self/status, and per layer L0 and dense vs sparse bytes).
    #[cfg(feature = "bench")]
    BenchMemory(bench::MemoryArgs),
    /// Times steered generation (seconds per round) and SAE training (tokens per second) on the
    /// esm2_t6_8M shape with random weights, and prints Markdown tables for BENCHMARKS.md.
    #[cfg(feature = "bench")]
    BenchDesign(bench::DesignArgs),
    /// Times circuits over random proteins (esm2_t6_8M shape, random weights, the demo's random
    /// 10,240-feature SAEs, no probe) for the layer pairs 2→5 and 4→5, and prints a Markdown table
    /// for BENCHMARKS.md.
    #[cfg(feature = "bench")]
    BenchCircuit(bench::CircuitArgs),
    /// Builds the atlas of the demo's random 10,240-feature SAE at layer 3 over random proteins
    /// (esm2_t6_8M shape, random weights) and prints one JSON line: proteins per second, the
    /// atlas's bytes, the peak resident memory; with --merge, two shards' merge time.
    #[cfg(feature = "bench")]
    BenchAtlas(bench::AtlasArgs),
}

fn run(cli: Cli) -> Result<(), io::Error> {
    io::set_backend(&cli.backend, &cli.precision)?;
    match cli.command {
        Command::Embed(a) => sequences::embed(a),
        Command::Features(a) => sequences::features(a),
        Command::Intervene(a) => sequences::intervene(a),
        Command::RandomModel(a) => sequences::random_model(a),
        Command::Probe(a) => analysis::probe(a),
        Command::Circuit(a) => analysis::circuit(a),
        Command::Concepts(a) => analysis::concepts(a),
        Command::Atlas(c) => atlas::run(c),
        Command::Generate(a) => design::generate(a),
        Command::TrainSae(a) => design::train_sae(a),
        Command::Harvest(a) => design::harvest(a),
        #[cfg(feature = "bench")]
        Command::Bench(a) => bench::intervention(a),
        #[cfg(feature = "bench")]
        Command::BenchCases(a) => bench::cases(a),
        #[cfg(feature = "bench")]
        Command::BenchMemory(a) => bench::memory(a),
        #[cfg(feature = "bench")]
        Command::BenchDesign(a) => bench::design(a),
        #[cfg(feature = "bench")]
        Command::BenchCircuit(a) => bench::circuit(a),
        #[cfg(feature = "bench")]
        Command::BenchAtlas(a) => bench::atlas(a),
    }
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
