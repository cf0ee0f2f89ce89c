//! The `plmscope` command line, run as a user runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::sae::max_abs_diff;
use common::*;
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
