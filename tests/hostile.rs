//! Hostile and malformed inputs get typed errors that say what was wrong and where, never a
//! panic: SAEs without features, weights holding NaN or infinity, probes of another width,
//! generation of nothing, and files the format detector cannot place.

#[macro_use]
mod common;

use burn::prelude::*;
use common::planted::{self, LAYER};
use common::*;
use plmscope::analysis::circuit::{CircuitOptions, CircuitRun};
use plmscope::analysis::generate::{self, GenerateOptions, Steer};
use plmscope::analysis::probe::Probe;
use plmscope::session::Session;
use plmscope::weights::detect::NamedFile;
use plmscope::weights::safetensors::{self, OutTensor};
use plmscope::weights::sae::{self as sae_files, SaeSource};

fn device() -> Device {
    Device::flex()
}

/// An InterProt-shaped state dict (`w_enc [d_in, d_sae]`, `w_dec`, `b_enc`, `b_pre`) for a 64-wide model.
fn interprot(d_sae: usize, poison: Option<f32>) -> Vec<u8> {
    let f = |shape: Vec<usize>| {
        let n = shape.iter().product();
        let mut data: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.01).collect();
        if let (Some(p), Some(first)) = (poison, data.first_mut()) {
            *first = p;
        }
        OutTensor::F32 { shape, data }
    };
    safetensors::write(vec![
        ("w_enc".into(), f(vec![64, d_sae])),
        ("w_dec".into(), f(vec![d_sae, 64])),
        ("b_enc".into(), f(vec![d_sae])),
        ("b_pre".into(), f(vec![64])),
    ])
    .unwrap()
}

#[test]
fn an_sae_without_features_is_refused_at_load() {
    let bytes = interprot(0, None);
    let err = sae_files::load(SaeSource::Safetensors { bytes: &bytes, name: "empty_k8.safetensors", k: None }, 64, &device()).unwrap_err();
    assert_eq!(err.to_string(), "empty_k8.safetensors: the SAE has no features (d_sae = 0)");
}

#[test]
fn weights_with_nan_or_infinity_are_refused_by_name() {
    for (poison, counts) in [(f32::NAN, "1 NaN and 0 infinite"), (f32::INFINITY, "0 NaN and 1 infinite")] {
        let bytes = interprot(16, Some(poison));
        let err = sae_files::load(SaeSource::Safetensors { bytes: &bytes, name: "bad_k8.safetensors", k: None }, 64, &device()).unwrap_err();
        assert_eq!(err.to_string(), format!("tensor `w_enc` holds {counts} values of 1024: refused, as they would poison every result"));
    }
}

#[test]
fn a_probe_of_another_width_is_refused_before_a_circuit_runs() {
    let device = device();
    let p = pollster::block_on(planted::planted(3, 12, &device));
    let json = serde_json::json!({
        "format": "plmscope-probe/1", "concept": "Planted", "layer": LAYER, "input": "residual",
        "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "weights": [0.1, 0.2, 0.3], "bias": 0.0,
        "trainedOn": [], "heldOutProteins": [],
        "train": {"residues": 0, "positives": 0, "precision": null, "recall": null, "f1": null, "auroc": null}, "heldOut": null
    });
    let probe = Probe::from_json(&json.to_string()).unwrap();
    let options = CircuitOptions { layers: vec![1, 2], top_n: 2, edges_per_feature: 2, batch: 2, model_name: "tiny".into() };
    let err = CircuitRun::new(&p.model, &p.saes, Some(&probe), &p.proteins, options).err().unwrap().to_string();
    assert_eq!(err, "not a probe: the probe for Planted reads 3 values per residue, but its input at layer 1 has 64: it was trained on another model or SAE");
    // A std of 0 parses as JSON; only the probe's own check refuses it (JSON has no NaN to test).
    let mut zero_std = json.clone();
    zero_std["std"] = serde_json::json!([1.0, 1.0, 0.0]);
    let err = Probe::from_json(&zero_std.to_string()).unwrap_err().to_string();
    assert_eq!(err, "not a probe: its weights, bias, means and stds must be finite numbers, the stds > 0");
}

#[test]
fn generation_of_nothing_or_with_bad_options_says_so() {
    let device = device();
    let p = pollster::block_on(planted::planted(3, 12, &device));
    let steers = [Steer { layer: LAYER, edits: vec!["clamp:5=2".parse().unwrap()] }];
    let run = |start: &[u32], options| pollster::block_on(generate::generate(&p.model, &p.saes, &steers, start, options)).unwrap_err().to_string();
    assert_eq!(run(&[], GenerateOptions::default()), "generation: a sequence of 0 residues: ESM-2 reads 1..=1022");
    let start = vec![plmscope::alphabet::MASK; 8];
    assert_eq!(run(&start, GenerateOptions { top_p: 0.0, ..Default::default() }), "generation: top-p (0) must be within (0, 1]");
    assert_eq!(run(&start, GenerateOptions { rounds: 5000, ..Default::default() }), "generation: 5000 rounds: at most 1000");
    assert_eq!(run(&start, GenerateOptions { mask_fraction: f32::NAN, ..Default::default() }), "generation: the share masked per round (NaN) must be within (0, 1]");
}

#[test]
fn files_the_detector_cannot_place_are_named() {
    let mut session = Session::new(device());
    let err = session.load_model(&[NamedFile { name: "notes.txt", bytes: b"hello" }], "notes").unwrap_err().to_string();
    assert_eq!(err, "notes.txt: not a model plmscope can read; expected a hub model folder (config.json with model.safetensors) or one fair-esm .pt file");
    let config = TINY_CONFIG.as_bytes();
    let files = [NamedFile { name: "config.json", bytes: config }, NamedFile { name: "model.safetensors", bytes: TINY_SAFETENSORS }];
    session.load_model(&files, "tiny").unwrap();
    let err = session.load_sae(1, &[NamedFile { name: "config.json", bytes: config }], None, "config.json").unwrap_err().to_string();
    assert!(err.starts_with("config.json: not an SAE plmscope can read"), "{err}");
    let err = session.load_sae(1, &[NamedFile { name: "a.pt", bytes: b"PK\x03\x04" }, NamedFile { name: "b.pt", bytes: b"PK\x03\x04" }], None, "two").unwrap_err().to_string();
    assert_eq!(err, "a.pt, b.pt: several files could be the torch checkpoint; give one");
    say!("the detector names what it could not place");
}

#[test]
fn hostile_pt_files_get_their_errors() {
    common::hostile::check_all();
}
