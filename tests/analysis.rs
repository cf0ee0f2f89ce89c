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
    let table = pollster::block_on(concepts::associate(&p.model, p.saes.get(LAYER).unwrap(), LAYER, &p.proteins, &[CONCEPT.into()], 5)).unwrap();
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
    for (name, behavior) in [("tm_circuit_graph.json", "tm"), ("sp_circuit_graph.json", "sp")] {
        // The seed explorer's files where they are beside the repo (CI has them; they are never
        // committed), else a graph of the same schema made here.
        let text = match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => {
                say!("{name}: the seed explorer's file");
                text
            }
            Err(_) => {
                say!("{name}: not beside the repo; a graph of its schema made by the test");
                seed_like_graph(behavior)
            }
        };
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        let graph: Graph = serde_json::from_value(original.clone()).unwrap();
        assert!(graph.nodes.len() > 50 && graph.edges.len() > 100, "{name}");
        assert_eq!(serde_json::to_value(&graph).unwrap(), original, "{name}");
    }
}

/// A graph in the seed explorer's schema, as its files have it: a behavior node, feature nodes
/// of layers 2 and 5 (some with an importance), feat→behavior and feat→feat edges, and its meta.
fn seed_like_graph(behavior: &str) -> String {
    let mut nodes = vec![serde_json::json!({"id": format!("behavior:{behavior}"), "kind": "behavior"})];
    let mut edges = Vec::new();
    for (layer, features) in [(2usize, 0..30usize), (5, 30..60)] {
        for f in features {
            let mut node = serde_json::json!({"id": format!("L{layer}:F{}", f * 37), "kind": "feature", "layer": layer, "feature": f * 37});
            if f % 3 == 0 {
                node["importance"] = (0.0001 * (f + 1) as f64).into();
                edges.push(serde_json::json!({"src": node["id"], "dst": format!("behavior:{behavior}"), "weight": 0.0001 * (f + 1) as f64, "kind": "feat->behavior"}));
            }
            nodes.push(node);
        }
    }
    for a in 0..30usize {
        for b in [30 + a, 30 + (a * 7) % 30, 30 + (a * 11 + 3) % 30] {
            edges.push(serde_json::json!({"src": format!("L2:F{}", a * 37), "dst": format!("L5:F{}", b * 37), "weight": 0.01 * (a + b) as f64, "kind": "feat->feat"}));
        }
    }
    let meta = serde_json::json!({"model": "facebook/esm2_t6_8M_UR50D", "behavior": behavior, "sae_layers": [2, 5], "d_sae": 2048, "k": 32});
    serde_json::to_string(&serde_json::json!({"nodes": nodes, "edges": edges, "meta": meta})).unwrap()
}

#[test]
fn bad_circuit_requests_say_what_is_wrong() {
    let device = device();
    let p = pollster::block_on(planted::planted(3, 12, &device));
    let err = |layers, saes: &plmscope::sae::SaeSet| CircuitRun::new(&p.model, saes, None, &p.proteins, options(layers)).err().unwrap().to_string();
    assert_eq!(err(vec![2, 1], &p.saes), "circuit: layers [2, 1] must be one or more, ascending");
    assert_eq!(err(vec![1, 2], &p.saes.iter().take(1).map(|(l, s)| (l, s.clone())).collect()), "no SAE is loaded for layer 2");
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

/// A feature at the last layer that reads "W-ness" (the direction of hidden state 2 at W
/// residues) and writes the direction that most raises W's logit (finite differences through
/// the LM head): clamping it must make generated sequences richer in W, so its activation on them
/// rises over unsteered generation. With no steering, a seed reproduces a run.
#[test]
fn generation_is_reproducible_and_clamping_raises_the_feature() {
    use plmscope::alphabet::{parse_fasta, MASK};
    use plmscope::analysis::generate::{generate, GenerateOptions, Steer};
    use plmscope::esm::Batch;
    use plmscope::intervene::{Edit, Op};
    use plmscope::sae::{Activation, InputNorm, Sae, SaeFormat};

    let device = device();
    let p = pollster::block_on(planted::planted(24, 40, &device));
    let (model, n) = (&p.model, 2);
    let d = model.d_model();
    let w_token = plmscope::alphabet::VOCAB.iter().position(|v| *v == "W").unwrap();

    // Mean hidden state 2 overall and at W residues.
    let (mut all, mut at_w, mut count_w) = (vec![0f32; d], vec![0f32; d], 0usize);
    let mut count = 0;
    for protein in &p.proteins {
        let tokens = parse_fasta(&protein.sequence).unwrap()[0].tokens();
        let h = pollster::block_on(plmscope::device::read_f32(model.forward(&Batch::new(std::slice::from_ref(&tokens), &device)).hidden(n).clone())).unwrap();
        for (i, &t) in tokens.iter().enumerate().skip(1).take(tokens.len() - 2) {
            let row = &h[i * d..(i + 1) * d];
            all.iter_mut().zip(row).for_each(|(a, x)| *a += x);
            count += 1;
            if t as usize == w_token {
                at_w.iter_mut().zip(row).for_each(|(a, x)| *a += x);
                count_w += 1;
            }
        }
    }
    assert!(count_w > 5, "the planted proteins hold {count_w} W residues");
    let mean: Vec<f32> = all.iter().map(|a| a / count as f32).collect();
    let mut read: Vec<f32> = at_w.iter().zip(&mean).map(|(a, m)| a / count_w as f32 - m).collect();
    let norm = read.iter().map(|x| x * x).sum::<f32>().sqrt();
    read.iter_mut().for_each(|x| *x /= norm);

    // ∂(logit W − mean logit)/∂h at the mean hidden state, by finite differences.
    let eps = 1e-2;
    let mut xs = vec![mean.clone()];
    xs.extend((0..d).map(|k| { let mut x = mean.clone(); x[k] += eps; x }));
    let x = Tensor::<3>::from_data(TensorData::new(xs.concat(), [d + 1, 1, d]), &device);
    let logits = pollster::block_on(plmscope::device::read_f32(model.forward_from(n, x, &Batch::new(&vec![vec![0u32]; d + 1], &device)).logits)).unwrap();
    let v = logits.len() / (d + 1);
    let margin = |r: usize| logits[r * v + w_token] - logits[r * v..(r + 1) * v].iter().sum::<f32>() / v as f32;
    let mut write: Vec<f32> = (0..d).map(|k| (margin(k + 1) - margin(0)) / eps).collect();
    let norm = write.iter().map(|x| x * x).sum::<f32>().sqrt();
    write.iter_mut().for_each(|x| *x /= norm);

    let tensor = |data: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(data, shape), &device);
    let sae = Sae {
        w_enc: tensor(read, [d, 1]),
        b_enc: Tensor::zeros([1], &device),
        w_dec: tensor(write, [1, d]),
        b_dec: Tensor::from_data(TensorData::new(mean, [d]), &device),
        apply_b_dec_to_input: true,
        activation: Activation::Relu,
        norm: InputNorm::None,
        rescale: None,
        format: SaeFormat::InterPlm,
        d_in: d,
        d_sae: 1,
    };
    let saes: plmscope::sae::SaeSet = [(n, sae)].into_iter().collect();
    let start = vec![MASK; 30];
    let options = |seed| GenerateOptions { rounds: 4, mask_fraction: 0.2, temperature: 1.0, top_p: 0.95, seed };
    let steer = [Steer { layer: n, edits: vec![Edit { feature: 0, op: Op::Clamp(8.0), positions: None }] }];
    let watch = [Steer { layer: n, edits: vec![Edit { feature: 0, op: Op::Scale(1.0), positions: None }] }];

    let run = |steers: &[Steer], seed| pollster::block_on(generate(model, &saes, steers, &start, options(seed))).unwrap();
    assert_eq!(run(&watch, 7), run(&watch, 7), "the same seed gives the same run");
    assert_ne!(run(&watch, 7).sequence, run(&watch, 8).sequence);
    let (mut plain, mut steered, mut w_plain, mut w_steered) = (0.0, 0.0, 0, 0);
    for seed in 0..6 {
        let a = run(&watch, seed);
        let b = run(&steer, seed);
        assert!(a.pseudo_log_likelihood.is_finite() && a.pseudo_log_likelihood < 0.0);
        plain += a.steered_activation[0].2;
        steered += b.steered_activation[0].2;
        w_plain += a.sequence.matches('W').count();
        w_steered += b.sequence.matches('W').count();
    }
    say!("mean activation of the steered feature: unsteered {:.4}, clamped {:.4}; W residues {w_plain} vs {w_steered}", plain / 6.0, steered / 6.0);
    assert!(w_steered > w_plain && steered > 1.5 * plain, "W {w_plain} → {w_steered}; activation {plain} → {steered}");
}

/// The edit grammar's shared cases (tests/e2e/grammar.test.mjs feeds the page's mirror the same).
#[test]
fn the_edit_grammar_reads_the_shared_cases() {
    use plmscope::analysis::generate::parse_steer;
    use plmscope::intervene::Edit;
    let cases: serde_json::Value = serde_json::from_str(include_str!("reference/edit_grammar.json")).unwrap();
    // Through text, so that an f32 compares as the shortest decimal that reads back as it.
    let json = |e: &Edit| serde_json::from_str::<serde_json::Value>(&serde_json::to_string(e).unwrap()).unwrap();
    for case in cases["edits"].as_array().unwrap() {
        let (text, want) = (case[0].as_str().unwrap(), &case[1]);
        let got = text.parse::<Edit>().ok().map(|e| json(&e)).unwrap_or(serde_json::Value::Null);
        assert_eq!(&got, want, "{text:?}");
    }
    for case in cases["steers"].as_array().unwrap() {
        let (text, want) = (case[0].as_str().unwrap(), &case[1]);
        let got = parse_steer(text).ok().map(|(l, e)| serde_json::json!([l, json(&e)])).unwrap_or(serde_json::Value::Null);
        assert_eq!(&got, want, "{text:?}");
    }
}
