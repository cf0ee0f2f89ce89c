//! The `plmscope` command line, run as a user runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::sae::max_abs_diff;
use common::*;
use plmscope::device::Precision;
use plmscope::weights::{random, safetensors};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plmscope-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn plmscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_plmscope")).args(args).output().unwrap()
}

fn fixture_dir(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixtures").join(name).display().to_string()
}

/// `embed` on every fixture sequence, in FASTA order, against transformers.
fn check_embed(model: &str, dir: &Path) {
    let fx = Fixture::read(TINY_OUTPUTS);
    let fasta: String = ALONE.iter().map(|n| format!(">{n}\n{}\n", fx.sequences[*n])).collect();
    let (fasta_path, out) = (dir.join("in.fasta"), dir.join("out.safetensors"));
    std::fs::write(&fasta_path, fasta).unwrap();
    let run = plmscope(&["embed", "--model", model, "--fasta", fasta_path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got = safetensors::read(&std::fs::read(&out).unwrap(), "out").unwrap();
    for (i, name) in ALONE.iter().enumerate() {
        let ids = &got[&format!("{i}.input_ids")];
        assert_eq!(ids.dtype, "I64");
        assert_eq!(ids.data, fx.get(&format!("{name}.input_ids")).data, "{name}");
        let t = ids.data.len();
        for (key, tol) in [("hidden_states", HIDDEN_TOL), ("logits", LOGITS_TOL)] {
            let (g, w) = (&got[&format!("{i}.{key}")], fx.get(&format!("{name}.{key}")));
            assert_eq!(g.shape, w.shape, "{name}.{key}");
            assert_eq!(g.shape[g.shape.len() - 2], t);
            let worst = g.data.iter().zip(&w.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= tol, "{name}.{key}: max |Δ| {worst:.2e}");
        }
    }
}

#[test]
fn embed_from_a_hub_folder_matches_transformers() {
    check_embed(&fixture_dir("tiny"), &scratch("hub"));
}

#[test]
fn embed_from_a_fair_esm_pt_matches_transformers() {
    check_embed(&format!("{}/esm2_tiny.pt", fixture_dir("tiny")), &scratch("pt"));
}

#[test]
fn random_model_writes_the_reference_checkpoint() {
    let dir = scratch("random");
    let out = dir.join("model");
    let run = plmscope(&["random-model", "--config", &format!("{}/config.json", fixture_dir("t6_8m")), "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let tensors = safetensors::read(&std::fs::read(out.join("model.safetensors")).unwrap(), "model.safetensors").unwrap();
    let name = "esm.encoder.layer.5.output.dense.weight";
    assert_eq!(tensors[name], random::tensor(name, &[320, 1280], random::SEED));
    // The folder is a hub model folder: embed reads it and gives the fixture's numbers.
    let fx = Fixture::read(T6_OUTPUTS);
    let fasta = dir.join("short.fasta");
    std::fs::write(&fasta, format!(">short\n{}\n", fx.sequences["short"])).unwrap();
    let result = dir.join("short.safetensors");
    let run = plmscope(&["embed", "--model", out.to_str().unwrap(), "--fasta", fasta.to_str().unwrap(), "--out", result.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got = safetensors::read(&std::fs::read(&result).unwrap(), "out").unwrap();
    let worst = got["0.logits"].data.iter().zip(&fx.get("short.logits").data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= LOGITS_TOL, "{worst:.2e}");
}

#[test]
fn bad_fasta_fails_with_the_record_and_position() {
    let dir = scratch("bad");
    let fasta = dir.join("bad.fasta");
    std::fs::write(&fasta, ">ok\nMKT\n>broken\nMK7A\n").unwrap();
    let out = dir.join("never.safetensors");
    let run = plmscope(&["embed", "--model", &fixture_dir("tiny"), "--fasta", fasta.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("bad.fasta: record 2 (>broken): '7' at residue 3 (line 4, column 3)"), "{stderr}");
    assert!(!out.exists());
}

/// The CPU keeps f32: `--precision f16` there is refused in words before any model is read;
/// `auto` (the default) and `f32` load the tiny model in f32.
#[test]
fn f16_on_the_cpu_is_refused_before_the_model_is_read() {
    let dir = scratch("f16");
    let fasta = dir.join("in.fasta");
    std::fs::write(&fasta, ">p\nMKTAYIAKQR\n").unwrap();
    let out = dir.join("never.safetensors");
    let run = plmscope(&["embed", "--precision", "f16", "--model", "/nowhere", "--fasta", fasta.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("f16 weights need a GPU whose adapter has 16-bit floats (WebGPU's shader-f16); this device has none"), "{stderr}");
    assert!(!out.exists());
    let mut session = plmscope::session::Session::new(burn::tensor::Device::flex());
    assert!(!session.f16_available());
    assert_eq!(session.precision_for(&plmscope::esm::EsmConfig::esm2("650M").unwrap()), Precision::F32);
    assert_eq!(session.load_random_model().unwrap().precision, Precision::F32);
    let err = session.set_precision("bf16").unwrap_err().to_string();
    assert_eq!(err, "precision: \"bf16\" is none of auto, f32, f16");
}

/// A model whose buffers pass the device's limit (the page gives WebGPU's) is refused before any
/// weight is read, in words that name the limit; the model loaded before stays.
#[test]
fn a_model_past_the_buffer_limit_is_refused_naming_it() {
    use plmscope::weights::detect::NamedFile;
    let mut session = plmscope::session::Session::new(burn::tensor::Device::flex());
    session.load_random_model().unwrap();
    session.set_buffer_limit(64_000_000);
    let (_, config, _) = WIDTHS[2];
    let weights = random_hub_safetensors(config, WIDTHS_SEED);
    let files = [NamedFile { name: "config.json", bytes: config.as_bytes() }, NamedFile { name: "model.safetensors", bytes: &weights[..1 << 20] }];
    let err = session.model_stream_start(&files, "d1280").unwrap_err().to_string();
    assert_eq!(err, "this model needs one buffer of 84.2 MB for the attention scores of its longest sequence, and this GPU binds at most 64.0 MB in one (its maxStorageBufferBindingSize, within maxBufferSize)");
    assert_eq!(session.model_info().unwrap().d_model, 320);
    // A fair-esm .pt says its configuration in its pickle, first in the file: refused there.
    let pt = common::fair_esm::random_fair_esm_pt(config, WIDTHS_SEED);
    let pt_files = [NamedFile { name: "esm2_d1280.pt", bytes: &pt[..1 << 20] }];
    assert_eq!(session.model_stream_start(&pt_files, "d1280").unwrap(), 0);
    assert_eq!(session.model_stream_push(&pt[..1 << 20]).unwrap_err().to_string(), err);
    assert_eq!(session.model_info().unwrap().d_model, 320);
    session.set_buffer_limit(128 << 20); // WebGPU's guaranteed minimum: every ESM-2 up to 650M fits
    assert_eq!(session.model_stream_start(&files, "d1280").unwrap(), 1);
}

fn sae_fixture(path: &str) -> String {
    format!("{}/sae/{path}", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixtures").display())
}

#[test]
fn features_match_the_reference_for_every_record() {
    let fx = common::sae::sequences();
    let dir = scratch("features");
    let fasta = dir.join("in.fasta");
    std::fs::write(&fasta, common::sae::SEQUENCES.iter().map(|n| format!(">{n}\n{}\n", fx.sequences[*n])).collect::<String>()).unwrap();
    for (key, sae, extra) in [
        ("interplm_tiny_l1", sae_fixture("interplm_tiny_l1.pt"), None),
        ("interplm_tiny_l1", sae_fixture("interplm_tiny_l1.pt"), Some("--normalized")),
        ("saelens_topk_tiny_l1", sae_fixture("saelens_topk_tiny_l1"), None),
    ] {
        let out = dir.join("f.safetensors");
        let model = fixture_dir("tiny");
        let mut args = vec!["features", "--model", &model, "--sae", &sae, "--layer", "1"];
        args.extend(["--fasta", fasta.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        args.extend(extra);
        let run = plmscope(&args);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let got = safetensors::read(&std::fs::read(&out).unwrap(), "out").unwrap();
        for (i, name) in common::sae::SEQUENCES.iter().enumerate() {
            let suffix = if extra.is_some() { "features_normalized" } else { "features" };
            let want = fx.get(&format!("{key}.{name}.{suffix}"));
            assert_eq!(got[&format!("{i}.features")].shape, want.shape);
            let d = max_abs_diff(&got[&format!("{i}.features")].data, &want.data);
            assert!(d <= common::sae::FEATURE_TOL, "{key} {name} {extra:?}: {d:.2e}");
        }
    }
}

#[test]
fn intervene_matches_the_reference() {
    let fx = common::sae::sequences();
    let dir = scratch("intervene");
    for name in common::sae::SEQUENCES {
        let fasta = dir.join(format!("{name}.fasta"));
        std::fs::write(&fasta, format!(">{name}\n{}\n", fx.sequences[name])).unwrap();
        let out = dir.join(format!("{name}.safetensors"));
        let edits: Vec<String> = common::sae::edits("interplm_tiny_l1", name)
            .iter()
            .map(|e| {
                let op = match e.op {
                    plmscope::intervene::Op::Ablate => format!("ablate:{}", e.feature),
                    plmscope::intervene::Op::Clamp(v) => format!("clamp:{}={v}", e.feature),
                    plmscope::intervene::Op::Scale(v) => format!("scale:{}={v}", e.feature),
                };
                match &e.positions {
                    Some(p) => format!("{op}@{}-{}", p[0], p[p.len() - 1]),
                    None => op,
                }
            })
            .collect();
        let (model, sae) = (fixture_dir("tiny"), sae_fixture("interplm_tiny_l1.pt"));
        let mut args = vec!["intervene", "--model", &model, "--sae", &sae, "--layer", "1"];
        args.extend(["--fasta", fasta.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        for e in &edits {
            args.extend(["--edit", e]);
        }
        let run = plmscope(&args);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let got = safetensors::read(&std::fs::read(&out).unwrap(), "out").unwrap();
        let logits = max_abs_diff(&got["0.logits"].data, &fx.get(&format!("interplm_tiny_l1.{name}.intervened_logits")).data);
        let hidden = max_abs_diff(&got["0.hidden_states"].data, &fx.get(&format!("interplm_tiny_l1.{name}.intervened_hidden_states")).data);
        assert!(logits <= LOGITS_TOL && hidden <= HIDDEN_TOL, "{name} {edits:?}: logits {logits:.2e} hidden {hidden:.2e}");
    }
}

#[test]
fn intervene_refuses_a_feature_the_sae_lacks() {
    let dir = scratch("bad-edit");
    let fasta = dir.join("in.fasta");
    std::fs::write(&fasta, ">p\nMKTAYIAKQR\n").unwrap();
    let (model, sae) = (fixture_dir("tiny"), sae_fixture("interplm_tiny_l1.pt"));
    let out = dir.join("o.safetensors");
    let run = plmscope(&[
        "intervene", "--model", &model, "--sae", &sae, "--layer", "1", "--fasta", fasta.to_str().unwrap(),
        "--out", out.to_str().unwrap(), "--edit", "ablate:500",
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("record 1 (p): feature 500 does not exist: the SAE has features 0..128"), "{stderr}");
}

/// `probe`, `circuit` and `concepts` on the tiny model and its two InterPLM SAEs, with labels in
/// UniProt's JSON: the circuit equals the library's for the same inputs.
#[test]
fn probe_circuit_and_concepts_from_files() {
    use plmscope::analysis::circuit::{CircuitOptions, CircuitRun, Graph};
    use plmscope::analysis::{labels, probe::Probe};
    let dir = scratch("circuit");
    let fx = Fixture::read(TINY_OUTPUTS);
    let entries: Vec<serde_json::Value> = ALONE
        .iter()
        .cycle()
        .take(10)
        .enumerate()
        .map(|(i, n)| {
            let seq = fx.sequences[*n].replace("<mask>", "A");
            let end = (seq.len() / 2).max(2);
            serde_json::json!({"primaryAccession": format!("T{i}"), "sequence": {"value": seq},
                "features": [{"type": "Transmembrane", "location": {"start": {"value": 1 + i % 2}, "end": {"value": end}}}]})
        })
        .collect();
    let labels_path = dir.join("uniprot.json");
    std::fs::write(&labels_path, serde_json::json!({ "results": entries }).to_string()).unwrap();
    let (model, l1, l2) = (fixture_dir("tiny"), fixture_dir("sae/interplm_tiny_l1.pt"), fixture_dir("sae/interplm_tiny_l2.pt"));
    let path = |name: &str| dir.join(name).display().to_string();
    let labels_arg = labels_path.display().to_string();

    let run = plmscope(&["probe", "--model", &model, "--labels", &labels_arg, "--concept", "Transmembrane", "--layer", "2", "--out", &path("probe.json")]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("held out: "), "{}", String::from_utf8_lossy(&run.stderr));
    let probe = Probe::from_json(&std::fs::read_to_string(path("probe.json")).unwrap()).unwrap();

    let (sae1, sae2) = (format!("1={l1}"), format!("2={l2}"));
    let args = ["circuit", "--model", &model, "--proteins", &labels_arg, "--sae", &sae1, "--sae", &sae2, "--probe", &path("probe.json"), "--top-n", "6", "--edges-per-feature", "3", "--out", &path("graph.json")];
    let run = plmscope(&args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let graph: Graph = serde_json::from_str(&std::fs::read_to_string(path("graph.json")).unwrap()).unwrap();
    assert_eq!(graph.nodes.len(), 1 + 12);
    assert_eq!(graph.edges.iter().filter(|e| e.kind == "feat->behavior").count(), 12);
    assert_eq!(graph.edges.iter().filter(|e| e.kind == "feat->feat").count(), 6 * 3);

    // The same circuit from the library.
    let device = burn::prelude::Device::flex();
    let tiny = plmscope::weights::esm::from_hub(TINY_CONFIG, TINY_SAFETENSORS, &device, Precision::F32).unwrap().1;
    let load = |p: &str| plmscope::weights::sae::load(plmscope::weights::sae::SaeSource::Pt { bytes: &std::fs::read(p).unwrap(), name: p, k: None }, 64, &device).unwrap();
    let saes: plmscope::sae::SaeSet = [(1, load(&l1)), (2, load(&l2))].into_iter().collect();
    let proteins = labels::read(&std::fs::read_to_string(&labels_path).unwrap()).unwrap().proteins;
    let options = CircuitOptions { layers: vec![1, 2], top_n: 6, edges_per_feature: 3, batch: 8, model_name: model.clone() };
    let mut lib = CircuitRun::new(&tiny, &saes, Some(&probe), &proteins, options).unwrap();
    while !lib.finished() {
        pollster::block_on(lib.step(&tiny, &saes, Some(&probe))).unwrap();
    }
    assert!(lib.graph(&saes, Some(&probe)) == graph, "the CLI's circuit is the library's");

    let run = plmscope(&["concepts", "--model", &model, "--labels", &labels_arg, "--sae", &l1, "--layer", "1", "--out", &path("concepts.json")]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let table: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path("concepts.json")).unwrap()).unwrap();
    assert_eq!(table["concepts"][0]["concept"], "Transmembrane");
    assert_eq!(table["concepts"][0]["domains"], 10);

    // Bad input names what was wrong.
    let run = plmscope(&["circuit", "--model", &model, "--proteins", &labels_arg, "--sae", &l1, "--out", &path("x.json")]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("is not LAYER=PATH"), "{}", String::from_utf8_lossy(&run.stderr));
    let run = plmscope(&["circuit", "--model", &model, "--proteins", &labels_arg, "--sae", &sae1, "--probe", &labels_arg, "--out", &path("x.json")]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("not a probe: missing field `format`"), "{}", String::from_utf8_lossy(&run.stderr));
}

/// `generate`: a seed reproduces the FASTA it writes; headers carry the pseudo-log-likelihood and
/// the steered feature's activation; a bad steer names itself.
#[test]
fn generate_is_reproducible_from_the_command_line() {
    let dir = scratch("generate");
    let (model, l1) = (fixture_dir("tiny"), fixture_dir("sae/interplm_tiny_l1.pt"));
    let sae = format!("1={l1}");
    let run = |out: &str, seed: &str| {
        let path = dir.join(out).display().to_string();
        let r = plmscope(&["generate", "--model", &model, "--sae", &sae, "--steer", "1:clamp:3=5", "--length", "12", "--samples", "2", "--rounds", "3", "--seed", seed, "--out", &path]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        std::fs::read_to_string(path).unwrap()
    };
    let (a, b, c) = (run("a.fasta", "3"), run("b.fasta", "3"), run("c.fasta", "4"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let records = plmscope::alphabet::parse_fasta(&a).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.residues.len() == 12 && r.header.contains("pll=-") && r.header.contains("L1:F3=")), "{a}");
    let r = plmscope(&["generate", "--model", &model, "--sae", &sae, "--steer", "clamp:3=5", "--out", "x"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("\"clamp\" is not a layer number"), "{}", String::from_utf8_lossy(&r.stderr));
    let r = plmscope(&["generate", "--model", &model, "--steer", "1:clamp:3=5", "--out", "x"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("no SAE is loaded for layer 1"), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn train_sae_writes_a_saelens_folder_the_other_commands_read() {
    let dir = scratch("train-sae");
    let fasta = dir.join("in.fasta");
    let aa = "ACDEFGHIKLMNPQRSTVWY";
    let text: String = (0..12).map(|i| format!(">p{i}\n{}\n", aa.repeat(2)[i..i + 20].to_string())).collect();
    std::fs::write(&fasta, text).unwrap();
    let model = fixture_dir("tiny");
    let train = |out: &str, recipe: &str| {
        let out = dir.join(out);
        let r = plmscope(&[
            "train-sae", "--model", &model, "--fasta", fasta.to_str().unwrap(), "--layer", "2", "--recipe", recipe, "--d-sae", "16",
            "--k", "4", "--steps", "30", "--batch", "48", "--lr", "0.01", "--seed", "7", "--out", out.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        out
    };
    let (a, b) = (train("a", "topk"), train("b", "topk"));
    // A seed reproduces the run bit for bit.
    let weights = |d: &Path| std::fs::read(d.join("sae_weights.safetensors")).unwrap();
    assert_eq!(weights(&a), weights(&b));
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("cfg.json")).unwrap()).unwrap();
    assert_eq!((cfg["architecture"].as_str(), cfg["k"].as_u64(), cfg["hook_layer"].as_u64()), (Some("topk"), Some(4), Some(2)));
    let metrics = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 30);
    assert!(lines.iter().all(|m| m["l0"].as_f64().unwrap() <= 4.0 + 1e-6));
    assert!(lines[29]["mse"].as_f64() < lines[0]["mse"].as_f64(), "{} → {}", lines[0], lines[29]);

    // `features` reads the folder: 16 features per residue, at most 4 of them nonzero.
    let out = dir.join("f.safetensors");
    let r = plmscope(&["features", "--model", &model, "--sae", a.to_str().unwrap(), "--layer", "2", "--fasta", fasta.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = safetensors::read(&std::fs::read(&out).unwrap(), "out").unwrap();
    let f = &got["0.features"];
    assert_eq!(f.shape, vec![20, 16]);
    assert!(f.data.chunks(16).all(|row| row.iter().filter(|v| **v != 0.0).count() <= 4));
    let relu = train("c", "relu-l1");
    let cfg = std::fs::read_to_string(relu.join("cfg.json")).unwrap();
    assert!(cfg.contains("\"architecture\": \"standard\""), "{cfg}");

    let r = plmscope(&["train-sae", "--model", &model, "--fasta", fasta.to_str().unwrap(), "--layer", "2", "--recipe", "gated", "--out", "x"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("--recipe gated: expected topk or relu-l1"), "{}", String::from_utf8_lossy(&r.stderr));
    let r = plmscope(&["train-sae", "--model", &model, "--fasta", fasta.to_str().unwrap(), "--layer", "2", "--out", "x"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("240 tokens of width"), "{}", String::from_utf8_lossy(&r.stderr));
}

/// Harvests of a corpus's shards train as the whole FASTA does (the workflow's path at scale;
/// pkg-build/workflow-test.sh runs it under Snakemake), and bad harvests are named.
#[test]
fn train_sae_on_harvested_shards_equals_training_on_the_fasta() {
    let dir = scratch("harvest");
    let fasta = dir.join("in.fasta");
    let aa = "ACDEFGHIKLMNPQRSTVWY";
    std::fs::write(&fasta, (0..7).map(|i| format!(">p{i}\n{}\n", &aa.repeat(2)[i..i + 12 + i])).collect::<String>()).unwrap();
    let model = fixture_dir("tiny");
    let path = |n: &str| dir.join(n).display().to_string();
    let run = |args: &[&str]| {
        let r = plmscope(args);
        assert!(r.status.success(), "plmscope {}: {}", args.join(" "), String::from_utf8_lossy(&r.stderr));
    };
    for i in 0..2 {
        run(&["harvest", "--model", &model, "--fasta", &path("in.fasta"), "--layer", "2", "--shard", &format!("{i}/2"), "--out", &path(&format!("h{i}.safetensors"))]);
    }
    // Shard 1 holds sequences 1, 3, 5, each [residues, d_model].
    let h1 = safetensors::read(&std::fs::read(dir.join("h1.safetensors")).unwrap(), "h1").unwrap();
    assert_eq!(h1.keys().collect::<Vec<_>>(), ["layer2.1", "layer2.3", "layer2.5"]);
    assert_eq!(h1["layer2.3"].shape, [15, 64]);
    let train = |out: &str, data: &[&str]| {
        let mut args = vec!["train-sae", "--model", &model, "--layer", "2", "--d-sae", "16", "--k", "4", "--steps", "20", "--batch", "32", "--seed", "5", "--max-tokens", "80"];
        let out = path(out);
        args.extend(["--out", &out]);
        args.extend(data);
        plmscope(&args)
    };
    for r in [train("whole", &["--fasta", &path("in.fasta")]), train("shards", &["--activations", &path("h1.safetensors"), &path("h0.safetensors")])] {
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let weights = |d: &str| std::fs::read(dir.join(d).join("sae_weights.safetensors")).unwrap();
    assert_eq!(weights("whole"), weights("shards"), "shards in any order train as the FASTA does (80 tokens: the same first rows)");

    let err = |r: std::process::Output| String::from_utf8_lossy(&r.stderr).trim().to_string();
    let twice = err(train("x", &["--activations", &path("h0.safetensors"), &path("h0.safetensors")]));
    assert_eq!(twice, format!("plmscope: {}: sequence 0 is in two harvests", path("h0.safetensors")));
    run(&["harvest", "--model", &model, "--fasta", &path("in.fasta"), "--layer", "1", "--out", &path("l1.safetensors")]);
    let other = err(train("x", &["--activations", &path("l1.safetensors")]));
    assert_eq!(other, format!("plmscope: {}: tensor layer1.0 is not a harvest of hidden state 2 (layer2.N)", path("l1.safetensors")));
    let none = err(plmscope(&["train-sae", "--model", &model, "--layer", "2", "--out", "x"]));
    assert!(none.contains("--fasta <FASTA>") && none.contains("required"), "{none}");
}

/// `plmscope` with `stdin` written to it and closed.
fn plmscope_fed(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_plmscope"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The speed suite's driver (peers.py) runs plmscope through `bench-cases --serve`: one answer per
/// request, and a bad request named by its number, after the answers already given.
#[test]
fn bench_serve_answers_each_request_and_names_a_bad_one() {
    use plmscope::bench::{flop, Case};
    let run = plmscope_fed(
        &["bench-cases", "--serve"],
        "{\"case\": \"forward\", \"shape\": \"1x10\"}\n{\"run\": true}\n{\"run\": true}\n{\"case\": \"sae\"}\n",
    );
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("request 4: a case without a shape: {\"case\": \"sae\"}"), "{stderr}");
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!((answers[0]["gflop"].as_f64().unwrap() - flop(&plmscope::esm::EsmConfig::esm2_t6_8m(), Case::Forward, 1, 10) / 1e9).abs() < 1e-12, "{answers:?}");
    for a in &answers[1..] {
        assert!(a["ms"].as_f64().unwrap() > 0.0, "{answers:?}");
    }

    let run = plmscope_fed(&["bench-cases", "--serve"], "{\"run\": true}\n");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("request 1: a run before any case was prepared"), "{stderr}");
    assert!(run.stdout.is_empty());
}

#[test]
fn a_backend_this_build_lacks_is_refused_in_words() {
    if cfg!(feature = "cuda") {
        return;
    }
    let model = fixture_dir("tiny");
    let run = plmscope(&["embed", "--backend", "cuda", "--model", &model, "--fasta", "none.fasta", "--out", "none.safetensors"]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("backend \"cuda\" is not in this build (it has [") && err.contains("\"cpu\"]"), "{err}");
}
