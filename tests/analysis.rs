//! Probes, circuits and concept association on the planted case (tests/common/planted.rs), and
//! the circuit file format against the seed explorer's graphs.

#[macro_use]
mod common;

use burn::prelude::*;
use common::planted::{self, CONCEPT, LAYER, PLANTED};
use plmscope::analysis::circuit::{CircuitOptions, CircuitRun, Graph};
use plmscope::analysis::probe::{self, Probe, ProbeInput, TrainOptions};
use plmscope::analysis::{concepts, AnalysisError};

fn device() -> Device {
    Device::flex()
}

fn options(layers: Vec<usize>) -> CircuitOptions {
    CircuitOptions { layers, top_n: planted::D_SAE, edges_per_feature: 5, batch: 8, model_name: "tiny random ESM-2".into() }
}

#[test]
fn planted_probe_circuit_and_concepts() {
    let device = device();
    let p = pollster::block_on(planted::planted(40, 48, &device));

    // The probe on the last hidden state finds the concept on proteins it never saw.
    let probe = pollster::block_on(probe::train(&p.model, None, &p.proteins, CONCEPT, 2, ProbeInput::Residual, TrainOptions::default())).unwrap();
    let held = probe.held_out.expect("8 proteins held out");
    say!("probe: train {:?}; held out {:?}", probe.train, held);
    assert!(held.f1.unwrap() > 0.8 && held.auroc.unwrap() > 0.95, "{held:?}");
    assert_eq!(probe.held_out_proteins.len(), 8);
    // Saved and reloaded, it scores the same.
    let reloaded = Probe::from_json(&serde_json::to_string(&probe).unwrap()).unwrap();
    assert_eq!(reloaded, probe);

    // The circuit ranks the planted feature first among feature → behavior edges.
    let mut run = CircuitRun::new(&p.model, &p.saes, Some(&probe), &p.proteins, options(vec![LAYER, 2])).unwrap();
    let total = run.progress().total;
    assert_eq!(total, 40 + 40 * 2 * 4, "one selection step per protein, then ⌈32 / 8⌉ batches per protein and layer");
    while !run.finished() {
        pollster::block_on(run.step(&p.model, &p.saes, Some(&probe))).unwrap();
    }
    let graph = run.graph(&p.saes, Some(&probe));
    let mut behavior: Vec<_> = graph.edges.iter().filter(|e| e.kind == "feat->behavior").collect();
    behavior.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    say!("feat->behavior: {:?}", behavior.iter().take(4).map(|e| (&e.src, e.weight)).collect::<Vec<_>>());
    assert_eq!(behavior[0].src, format!("L{LAYER}:F{PLANTED}"));
    assert!(behavior[0].weight > 2.0 * behavior[1].weight.abs(), "{} vs {}", behavior[0].weight, behavior[1].weight);
    assert!(graph.edges.iter().any(|e| e.kind == "feat->feat" && e.src == format!("L{LAYER}:F{PLANTED}") && e.weight > 0.0));
    assert_eq!(graph.meta["behavior"], CONCEPT);
    // The file round-trips.
    let text = serde_json::to_string(&graph).unwrap();
    assert!(serde_json::from_str::<Graph>(&text).unwrap() == graph, "the graph changed through its file");

    // The concept table puts the planted feature on top, F1 ≈ 1 at threshold 0 (a residue exactly
    // at the threshold may fire by rounding).
    let table = pollster::block_on(concepts::associate(&p.model, &p.saes[0].1, LAYER, &p.proteins, &[CONCEPT.into()], 5)).unwrap();
    let top = &table.concepts[0].top;
    say!("concepts: {:?}", top.iter().map(|a| (a.feature, a.f1, a.logistic_r2)).collect::<Vec<_>>());
    assert_eq!(top[0].feature, PLANTED);
    assert!(top[0].f1 > 0.99 && top[0].logistic_r2 > 0.9, "{:?}", top[0]);
    assert!(top.iter().skip(1).all(|a| a.f1 < 0.9 * top[0].f1));
    assert_eq!(table.best_for(PLANTED)[0].0, CONCEPT);
}

#[test]
fn seed_graphs_round_trip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/explorer");
    for name in ["tm_circuit_graph.json", "sp_circuit_graph.json"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name} beside the repo: {e}"));
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        let graph: Graph = serde_json::from_value(original.clone()).unwrap();
        assert!(graph.nodes.len() > 50 && graph.edges.len() > 100, "{name}");
        assert_eq!(serde_json::to_value(&graph).unwrap(), original, "{name}");
    }
}

#[test]
fn bad_circuit_requests_say_what_is_wrong() {
    let device = device();
    let p = pollster::block_on(planted::planted(3, 12, &device));
    let err = |layers, saes: &[(usize, plmscope::sae::Sae)]| CircuitRun::new(&p.model, saes, None, &p.proteins, options(layers)).err().unwrap().to_string();
    assert_eq!(err(vec![2, 1], &p.saes), "circuit: layers [2, 1] must be one or more, ascending");
    assert_eq!(err(vec![1, 2], &p.saes[..1]), "no SAE is loaded for layer 2");
    assert_eq!(err(vec![1, 3], &p.saes), "layer 3 is out of range: this model has hidden states 1..=2 for an SAE (0 is the embeddings)");
    assert_eq!(err(vec![1], &p.saes), "circuit: with one layer, a probe is needed for feature → behavior edges");
    let mut bad = p.proteins.clone();
    bad[1].sequence = "MKJT".into();
    let e = CircuitRun::new(&p.model, &p.saes, None, &bad, options(vec![1, 2])).err().unwrap();
    assert!(matches!(e, AnalysisError::Sequence { .. }) && e.to_string().starts_with("protein P001: record 1: 'J' at residue 3"), "{e}");
    let one_class = pollster::block_on(probe::train(&p.model, None, &p.proteins, "Nothing", 1, ProbeInput::Residual, TrainOptions::default()));
    assert_eq!(
        one_class.unwrap_err().to_string(),
        "concept \"Nothing\" needs residues inside and outside it to train on: 0 of 36 training residues are inside"
    );
}
