//! Verbs over annotated proteins: probe, circuit, concepts.

use std::path::PathBuf;

use plmscope::analysis::circuit::CircuitOptions;
use plmscope::analysis::probe::{Metrics, ProbeInput};

use crate::io::{self, Error};

#[derive(clap::Args)]
pub struct LabelArgs {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    model: PathBuf,
    /// UniProt REST JSON (an entry or a search's results) or the explorer's features JSON.
    #[arg(long)]
    labels: PathBuf,
}

#[derive(clap::Args)]
pub struct ProbeArgs {
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
}

pub fn probe(a: ProbeArgs) -> Result<(), Error> {
    let mut session = io::open(&a.data.model)?;
    io::load_labels(&mut session, &a.data.labels)?;
    let input = match &a.sae {
        Some(path) => {
            io::add_sae(&mut session, a.layer, path, a.k)?;
            ProbeInput::Features
        }
        None => ProbeInput::Residual,
    };
    let probe = pollster::block_on(session.train_probe(&a.concept, a.layer, input))?;
    let show = |m: &Metrics| {
        let f = |v: Option<f32>| v.map_or("–".into(), |v| format!("{v:.3}"));
        format!("{} residues ({} in {}): precision {}, recall {}, F1 {}, AUROC {}", m.residues, m.positives, a.concept, f(m.precision), f(m.recall), f(m.f1), f(m.auroc))
    };
    eprintln!("train: {}", show(&probe.train));
    match &probe.held_out {
        Some(m) => eprintln!("held out: {}", show(m)),
        None => eprintln!("held out: none (fewer than 5 proteins)"),
    }
    io::write_json(&a.out, &probe)
}

#[derive(clap::Args)]
pub struct CircuitArgs {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    model: PathBuf,
    /// FASTA, UniProt JSON or the explorer's features JSON.
    #[arg(long)]
    proteins: PathBuf,
    /// LAYER=PATH, one per circuit layer.
    #[arg(long = "sae", required = true, value_parser = io::parse_layer_path)]
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
}

pub fn circuit(a: CircuitArgs) -> Result<(), Error> {
    let mut session = io::open(&a.model)?;
    io::load_labels(&mut session, &a.proteins)?;
    for (layer, path) in &a.saes {
        io::add_sae(&mut session, *layer, path, None)?;
    }
    if let Some(p) = &a.probe {
        session.load_probe(&String::from_utf8_lossy(&io::read(p)?)).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut layers: Vec<usize> = a.saes.iter().map(|(l, _)| *l).collect();
    layers.sort_unstable();
    let options = CircuitOptions { layers, top_n: a.top_n, edges_per_feature: a.edges_per_feature, batch: a.batch, model_name: a.model.display().to_string() };
    let mut p = session.circuit_start(options, a.probe.is_some())?;
    let start = std::time::Instant::now();
    while p.done < p.total {
        p = pollster::block_on(session.circuit_step())?;
        if p.done % (p.total / 20).max(1) == 0 {
            eprintln!("step {}/{}", p.done, p.total);
        }
    }
    eprintln!("circuit in {:.1} s", start.elapsed().as_secs_f64());
    io::write_json(&a.out, &session.circuit_graph()?)
}

#[derive(clap::Args)]
pub struct ConceptsArgs {
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
}

pub fn concepts(a: ConceptsArgs) -> Result<(), Error> {
    let mut session = io::open(&a.data.model)?;
    io::load_labels(&mut session, &a.data.labels)?;
    io::add_sae(&mut session, a.layer, &a.sae, a.k)?;
    let table = pollster::block_on(session.concepts(a.layer, &a.concepts, a.top))?;
    for row in &table.concepts {
        let best = row.top.first().map_or("no feature fires in it".into(), |b| format!("best feature {} (F1 {:.3} at {}, R² {:.3})", b.feature, b.f1, b.threshold, b.logistic_r2));
        eprintln!("{}: {} domains, {} residues; {best}", row.concept, row.domains, row.residues);
    }
    io::write_json(&a.out, &table)
}
