//! The feature atlas: `atlas build` over a corpus (whole, or one shard as a partial) and
//! `atlas merge` of every shard's partial.

use std::path::{Path, PathBuf};

use plmscope::analysis::atlas::{format::Atlas, AtlasOptions, Partial};
use plmscope::session::AtlasRequest;

use crate::io::{self, Error, Weights};

#[derive(clap::Subcommand)]
pub enum AtlasCommand {
    /// Builds the atlas of the SAE at LAYER over a corpus of proteins (FASTA, UniProt JSON or the
    /// explorer's features JSON). With --shard i/n, builds shard i of n (every n-th protein from
    /// the i-th) and writes it as a partial (JSON) for `atlas merge`.
    Build(BuildArgs),
    /// Joins the partials of every shard of one corpus into its atlas: equal to one build over
    /// the whole corpus.
    Merge(MergeArgs),
}

pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("\"{s}\" is not a shard i/n with i < n, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if i < n { Ok((i, n)) } else { Err(bad()) }
}

#[derive(clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    weights: Weights,
    #[arg(long)]
    corpus: PathBuf,
    /// What the corpus is, for the atlas's manifest (default: the corpus file's name); the shards
    /// of one atlas must say the same.
    #[arg(long)]
    description: Option<String>,
    /// i/n: build shard i of n as a partial.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Proteins kept per feature by max activation.
    #[arg(long, default_value_t = AtlasOptions::default().top)]
    top: usize,
    /// The uniform sample of each feature's active proteins that quantile examples come from.
    #[arg(long, default_value_t = AtlasOptions::default().sample)]
    sample: usize,
    #[arg(long, default_value_t = AtlasOptions::default().quantiles)]
    quantiles: usize,
    #[arg(long, default_value_t = AtlasOptions::default().per_quantile)]
    per_quantile: usize,
    /// With an annotated corpus (UniProt JSON): its most annotated concepts that features are scored against.
    #[arg(long, default_value_t = AtlasOptions::default().concepts)]
    concepts: usize,
    /// The atlas: a folder (manifest.json, blocks/), or a .zip; with --shard, the partial's JSON.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    #[command(flatten)]
    weights: Weights,
    /// The atlas: a folder (manifest.json, blocks/), or a .zip.
    #[arg(long)]
    out: PathBuf,
    /// Every shard's partial.
    #[arg(required = true)]
    partials: Vec<PathBuf>,
}

pub fn run(command: AtlasCommand) -> Result<(), Error> {
    match command {
        AtlasCommand::Build(a) => build(a),
        AtlasCommand::Merge(a) => merge(a),
    }
}

fn build(a: BuildArgs) -> Result<(), Error> {
    let mut session = a.weights.open()?;
    let description = a.description.unwrap_or_else(|| a.corpus.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned()));
    let options = AtlasOptions { top: a.top, sample: a.sample, quantiles: a.quantiles, per_quantile: a.per_quantile, concepts: a.concepts };
    let request = AtlasRequest { layer: a.weights.layer, description, options, shard: a.shard.unwrap_or((0, 1)) };
    let corpus = io::read_text(&a.corpus)?;
    let started = session.atlas_start(&corpus, request).map_err(|e| format!("{}: {e}", a.corpus.display()))?;
    for s in &started.skipped {
        eprintln!("skipped {s}");
    }
    let clock = std::time::Instant::now();
    let mut done = 0;
    while done < started.total {
        done = pollster::block_on(session.atlas_step(100))?.done;
        eprintln!("{done}/{} proteins ({:.1} proteins/s)", started.total, done as f64 / clock.elapsed().as_secs_f64());
    }
    if a.shard.is_some() {
        return io::write(&a.out, serde_json::to_string(&session.atlas_partial()?)?.as_bytes());
    }
    write_atlas(&pollster::block_on(session.atlas_finish())?, &a.out)
}

fn merge(a: MergeArgs) -> Result<(), Error> {
    let session = a.weights.open()?;
    let partials = a
        .partials
        .iter()
        .map(|p| Partial::from_json(&io::read_text(p)?).map_err(|e| format!("{}: {e}", p.display()).into()))
        .collect::<Result<Vec<_>, Error>>()?;
    write_atlas(&pollster::block_on(session.atlas_merge(partials))?, &a.out)
}

/// `atlas` as a zip when `out` ends in .zip, else as a folder of its files.
fn write_atlas(atlas: &Atlas, out: &Path) -> Result<(), Error> {
    if out.extension().is_some_and(|e| e == "zip") {
        io::write(out, &atlas.zip()?)?;
    } else {
        for (path, bytes) in atlas.files() {
            let path = out.join(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            io::write(&path, &bytes)?;
        }
    }
    let m = &atlas.manifest;
    eprintln!("{} features ({} dead) over {} proteins → {}", m.subject.d_sae, m.dead.len(), m.proteins, out.display());
    Ok(())
}
