//! The feature atlas, built by the CLI as a user builds it, on a planted feature that fires on a
//! known motif (tryptophan, in every seventh protein): its top examples are those proteins, its
//! counts and histograms equal a brute-force count over `plmscope features`' output, shards
//! merge into exactly the single build, its direct effect is the head's own numbers, and in an
//! annotated corpus its best concept is the motif's, with every concept score equal to a
//! brute-force count.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::prelude::*;
use common::planted::{self, LAYER, PLANTED};
use common::*;
use plmscope::analysis::atlas::{self, format::Atlas, Partial};
use plmscope::device::read_f32;
use plmscope::esm::{residue_rows, Batch};
use plmscope::weights::sae::{self as sae_files, SaeLensOrigin};
use plmscope::weights::safetensors;

const PROTEINS: usize = 42;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plmscope-atlas-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn plmscope(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_plmscope")).args(args).output().unwrap();
    assert!(out.status.success(), "plmscope {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn plmscope_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_plmscope")).args(args).output().unwrap();
    assert!(!out.status.success(), "plmscope {} succeeded", args.join(" "));
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Every file of an atlas folder, by path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

struct Case {
    dir: PathBuf,
    motif: planted::Motif,
    args: Vec<String>,
}

fn case(name: &str) -> Case {
    let device = Device::flex();
    let motif = pollster::block_on(planted::motif(PROTEINS, &device));
    let dir = scratch(name);
    let (model, sae) = (dir.join("model"), dir.join("sae"));
    for d in [&model, &sae] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(model.join("config.json"), TINY_CONFIG).unwrap();
    std::fs::write(model.join("model.safetensors"), TINY_SAFETENSORS).unwrap();
    let origin = SaeLensOrigin { model_name: "tiny".into(), hook_layer: LAYER, plmscope: serde_json::json!({}) };
    let (cfg, weights) = pollster::block_on(sae_files::to_saelens(&motif.sae, &origin)).unwrap();
    std::fs::write(sae.join("cfg.json"), cfg).unwrap();
    std::fs::write(sae.join("sae_weights.safetensors"), weights).unwrap();
    std::fs::write(dir.join("corpus.fasta"), &motif.fasta).unwrap();
    std::fs::write(dir.join("corpus.json"), annotated(&motif.fasta)).unwrap();
    let s = |p: &Path| p.display().to_string();
    let args = vec!["--model".into(), s(&model), "--sae".into(), s(&sae), "--layer".into(), LAYER.to_string()];
    Case { dir, motif, args }
}

impl Case {
    fn run(&self, verb: &[&str], more: &[&str]) {
        let args: Vec<&str> = verb.iter().copied().chain(self.args.iter().map(String::as_str)).chain(more.iter().copied()).collect();
        plmscope(&args);
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// The motif corpus as UniProt JSON: each W a "Motif" ("W"), and a decoy "Region" ("N-term")
/// over the first five residues of every third protein.
fn annotated(fasta: &str) -> String {
    let at = |start: usize, end: usize| serde_json::json!({"start": {"value": start}, "end": {"value": end}});
    let entries: Vec<serde_json::Value> = plmscope::alphabet::parse_fasta(fasta)
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let seq = r.sequence();
            let mut features: Vec<serde_json::Value> = seq
                .bytes()
                .enumerate()
                .filter(|b| b.1 == b'W')
                .map(|(k, _)| serde_json::json!({"type": "Motif", "description": "W", "location": at(k + 1, k + 1)}))
                .collect();
            if i % 3 == 0 {
                features.push(serde_json::json!({"type": "Region", "description": "N-term", "location": at(1, 5)}));
            }
            serde_json::json!({"primaryAccession": r.header, "sequence": {"value": seq}, "features": features})
        })
        .collect();
    serde_json::json!({ "results": entries }).to_string()
}

fn read_atlas(dir: &Path) -> Atlas {
    Atlas::read(|p| std::fs::read(dir.join(p)).map_err(|e| atlas::AtlasError::Io(e.to_string()))).unwrap()
}

#[test]
fn the_planted_feature_shows_its_motif_and_every_count_is_the_brute_force_one() {
    let c = case("counts");
    let corpus = c.path("corpus.fasta");
    c.run(&["atlas", "build"], &["--corpus", &corpus, "--out", &c.path("whole")]);
    let got = read_atlas(&c.dir.join("whole"));
    let m = &got.manifest;
    assert_eq!((m.proteins, m.subject.d_sae, m.subject.layer, m.schema.as_str()), (PROTEINS as u64, planted::D_SAE, LAYER, "plmscope-atlas/1"));
    let cards: Vec<_> = got.blocks.iter().flat_map(|b| &b.features).collect();
    assert_eq!(cards.len(), planted::D_SAE);

    // Brute force over `plmscope features`: [residues, d_sae] per record.
    c.run(&["features"], &["--fasta", &corpus, "--out", &c.path("features.safetensors")]);
    let dense = safetensors::read(&std::fs::read(c.dir.join("features.safetensors")).unwrap(), "features").unwrap();
    let d = planted::D_SAE;
    let (mut residues, mut active_res, mut active_prot, mut max) = (0u64, vec![0u64; d], vec![0u64; d], vec![0f32; d]);
    let (mut res_hist, mut prot_hist) = (vec![vec![0u64; atlas::BINS]; d], vec![vec![0u64; atlas::BINS]; d]);
    let mut fired_on: Vec<Vec<usize>> = vec![Vec::new(); d];
    for i in 0..PROTEINS {
        let t = &dense[&format!("{i}.features")];
        residues += t.shape[0] as u64;
        for j in 0..d {
            let col: Vec<f32> = t.data.chunks_exact(d).map(|row| row[j]).filter(|&v| v != 0.0).collect();
            if col.is_empty() {
                continue;
            }
            active_prot[j] += 1;
            active_res[j] += col.len() as u64;
            col.iter().for_each(|&v| res_hist[j][atlas::bin(v)] += 1);
            let pmax = col.iter().copied().fold(0.0, f32::max);
            prot_hist[j][atlas::bin(pmax)] += 1;
            max[j] = max[j].max(pmax);
            fired_on[j].push(i);
        }
    }
    assert_eq!(m.residues, residues);
    for (j, card) in cards.iter().enumerate() {
        assert_eq!(card.feature, j);
        let k = card.counts.as_ref().unwrap();
        assert_eq!((k.active_residues, k.active_proteins, card.max), (active_res[j], active_prot[j], max[j]), "feature {j}");
        assert_eq!(k.residue_hist, res_hist[j], "feature {j}");
        assert_eq!(k.protein_hist, prot_hist[j], "feature {j}");
        assert_eq!(k.residue_frequency, active_res[j] as f64 / residues as f64);
        // Every example is a protein it fires on, with its max.
        for e in card.top.iter().chain(card.quantiles.iter().flat_map(|q| &q.examples)) {
            assert!(fired_on[j].contains(&(e.protein as usize)), "feature {j}: example {}", e.protein);
        }
    }
    let dead: Vec<usize> = (0..d).filter(|&j| active_prot[j] == 0).collect();
    assert_eq!(m.dead, dead);

    // The planted feature: exactly the motif proteins, the best first, W's highlighted.
    let card = cards[PLANTED];
    let motif: Vec<u64> = c.motif.with_motif.iter().map(|&(i, _)| i as u64).collect();
    let mut top: Vec<u64> = card.top.iter().map(|e| e.protein).collect();
    assert!(card.top.windows(2).all(|w| w[0].max >= w[1].max), "top examples are best first");
    top.sort_unstable();
    assert_eq!(top, motif, "the top examples are the proteins with the motif");
    let active = card.counts.as_ref().unwrap().active_residues;
    assert_eq!(active, c.motif.with_motif.iter().map(|&(_, n)| n as u64).sum::<u64>());
    let proteins: BTreeMap<u64, _> = got.blocks.iter().flat_map(|b| b.proteins.clone()).collect();
    for e in &card.top {
        let seq = proteins[&e.protein].sequence.as_bytes();
        assert!(e.acts.iter().all(|&(r, q)| seq[r as usize] == b'W' && q >= 1), "protein {}: it fires on its W's only", e.protein);
        assert_eq!(proteins[&e.protein].id, format!("P{:03}", e.protein));
    }
    assert!(card.top.iter().any(|e| e.acts.iter().any(|&(_, q)| q == 255)), "the max quantises to 255");
    say!("planted feature: top {:?}, {} residues, {} dead of {d}", top, active, m.dead.len());

    // Its direct effect is the head's: the mean final residual plus max × its decoder row.
    let device = Device::flex();
    let model = &c.motif.model;
    let mut sum = vec![0f64; model.d_model()];
    for record in plmscope::alphabet::parse_fasta(&c.motif.fasta).unwrap() {
        let acts = model.forward(&Batch::new(&[record.tokens()], &device));
        let last = pollster::block_on(read_f32(residue_rows(acts.residual_pre_ln.unwrap()))).unwrap();
        for row in last.chunks_exact(model.d_model()) {
            sum.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v));
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| (s / residues as f64) as f32).collect();
    let w_dec = pollster::block_on(read_f32(c.motif.sae.w_dec.clone())).unwrap();
    let dm = model.d_model();
    let logp = |x: Vec<f32>| {
        let x = Tensor::<3>::from_data(TensorData::new(x, [1, 1, dm]), &device);
        let h = model.emb_layer_norm_after.forward(x);
        let logits = pollster::block_on(read_f32(model.forward_from(model.n_layers(), h, &Batch::new(&[vec![0]], &device)).logits)).unwrap();
        let lse = logits.iter().map(|v| v.exp()).sum::<f32>().ln();
        logits.iter().map(|v| v - lse).collect::<Vec<f32>>()
    };
    let before = logp(mean.clone());
    let after = logp(mean.iter().zip(&w_dec[PLANTED * dm..(PLANTED + 1) * dm]).map(|(a, b)| a + card.max * b).collect());
    let effect = card.effect.as_ref().unwrap();
    for (aa, delta) in effect.promotes.iter().chain(&effect.suppresses) {
        let t = plmscope::alphabet::VOCAB.iter().position(|v| v == aa).unwrap();
        assert!((delta - (after[t] - before[t])).abs() < 1e-4, "{aa}: {delta} vs {}", after[t] - before[t]);
    }
    assert!(effect.promotes.windows(2).all(|w| w[0].1 >= w[1].1) && effect.promotes.iter().all(|p| p.1 > 0.0));
    assert!(dead.iter().all(|&j| cards[j].effect.is_none()));
}

#[test]
fn shards_merge_into_exactly_the_single_build_and_bad_partials_are_named() {
    let c = case("shards");
    let corpus = c.path("corpus.json");
    c.run(&["atlas", "build"], &["--corpus", &corpus, "--description", "the motif corpus", "--out", &c.path("whole")]);
    let parts: Vec<String> = (0..3).map(|i| c.path(&format!("part{i}.json"))).collect();
    for (i, p) in parts.iter().enumerate() {
        c.run(&["atlas", "build"], &["--corpus", &corpus, "--description", "the motif corpus", "--shard", &format!("{i}/3"), "--out", p]);
    }
    // In another order, to a zip and to a folder.
    let merge = |out: &str, parts: &[&str]| {
        let mut more = vec!["--out", out];
        more.extend(parts);
        c.run(&["atlas", "merge"], &more);
    };
    merge(&c.path("merged"), &[&parts[2], &parts[0], &parts[1]]);
    merge(&c.path("merged.zip"), &[&parts[1], &parts[2], &parts[0]]);
    let (whole, merged) = (files(&c.dir.join("whole")), files(&c.dir.join("merged")));
    assert_eq!(whole.keys().collect::<Vec<_>>(), merged.keys().collect::<Vec<_>>());
    for (path, bytes) in &whole {
        assert!(bytes == &merged[path], "{path} differs between the single build and the merge");
    }
    let zipped = Atlas::from_zip(&std::fs::read(c.dir.join("merged.zip")).unwrap()).unwrap();
    assert_eq!(zipped, read_atlas(&c.dir.join("whole")));
    say!("3 shards merge into the single build: {} files, {} bytes", whole.len(), whole.values().map(Vec::len).sum::<usize>());

    // What a merge refuses, in words.
    let refuse = |parts: &[&str]| {
        let mut args = vec!["atlas", "merge"];
        args.extend(c.args.iter().map(String::as_str));
        args.extend(["--out", "/dev/null/never"]);
        args.extend(parts);
        plmscope_fails(&args)
    };
    assert_eq!(refuse(&[&parts[0], &parts[2]]), "plmscope: atlas: shards [1] of 3 are missing: merge every shard first");
    assert_eq!(refuse(&[&parts[0], &parts[0], &parts[1], &parts[2]]), "plmscope: atlas: shard 0 of 3 is there twice");
    let other = c.path("other.json");
    std::fs::write(c.dir.join("other.fasta"), ">Q1\nMKTAYIAKQR\n").unwrap();
    c.run(&["atlas", "build"], &["--corpus", &c.path("other.fasta"), "--description", "the motif corpus", "--shard", "1/3", "--out", &other]);
    let err = refuse(&[&parts[0], &other]);
    assert_eq!(err, "plmscope: atlas: shards [0] and [1] are of different atlases (model, SAE, layer, corpus, options or shard count differ)");
    std::fs::write(c.dir.join("junk.json"), r#"{"schema": "plmscope-atlas-partial/1"}"#).unwrap();
    let err = refuse(&[&c.path("junk.json")]);
    assert!(err.starts_with(&format!("plmscope: {}: atlas: not a partial atlas: missing field", c.path("junk.json"))), "{err}");
    let mut p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&parts[0]).unwrap()).unwrap();
    p["features"][PLANTED]["top"][0]["protein"] = serde_json::json!(100_000);
    std::fs::write(c.dir.join("bad.json"), p.to_string()).unwrap();
    let err = refuse(&[&c.path("bad.json")]);
    assert!(err.ends_with(&format!("feature {PLANTED}: example protein 100000 is not among the named proteins")), "{err}");
    let mut p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&parts[0]).unwrap()).unwrap();
    p["options"]["quantiles"] = serde_json::json!(1_000_000_000);
    std::fs::write(c.dir.join("loops.json"), p.to_string()).unwrap();
    let err = refuse(&[&c.path("loops.json")]);
    assert!(err.ends_with("atlas: options top 8, sample 40, quantiles 1000000000, per quantile 2, concepts 64: top must be within 1..=1000, sample 0..=10000, quantiles 1..=100, per quantile 0..=100, concepts 0..=1000"), "{err}");
    p["options"]["quantiles"] = serde_json::json!(5);
    p["features"][PLANTED]["max"] = serde_json::json!(null);
    std::fs::write(c.dir.join("nan.json"), p.to_string()).unwrap();
    let err = refuse(&[&c.path("nan.json")]);
    assert!(err.contains("not a partial atlas: invalid type: null, expected f32"), "{err}");
    let err = plmscope_fails(&["atlas", "build", "--model", "x", "--sae", "y", "--layer", "1", "--corpus", "z", "--shard", "3/3", "--out", "o"]);
    assert!(err.contains("\"3/3\" is not a shard i/n with i < n, e.g. 0/4"), "{err}");
    let p = Partial::from_json(&std::fs::read_to_string(&parts[1]).unwrap()).unwrap();
    assert_eq!((p.shards.as_slice(), p.shard_count, p.proteins), (&[1][..], 3, (PROTEINS as u64 + 1) / 3));
}

#[test]
fn the_planted_feature_means_its_motif_and_every_concept_score_is_the_brute_force_one() {
    let c = case("concepts");
    let corpus = c.path("corpus.json");
    c.run(&["atlas", "build"], &["--corpus", &corpus, "--out", &c.path("whole")]);
    let got = read_atlas(&c.dir.join("whole"));
    let m = &got.manifest;
    let cards: Vec<_> = got.blocks.iter().flat_map(|b| &b.features).collect();
    let names: Vec<&str> = m.concepts.iter().map(|e| e.name.as_str()).collect();

    // Brute force over `plmscope features` and the annotations: per concept, residues, domains,
    // and per feature and threshold the firing residues, those inside and the domains hit.
    c.run(&["features"], &["--fasta", &c.path("corpus.fasta"), "--out", &c.path("features.safetensors")]);
    let dense = safetensors::read(&std::fs::read(c.dir.join("features.safetensors")).unwrap(), "features").unwrap();
    let labelled = plmscope::analysis::labels::read(&std::fs::read_to_string(&corpus).unwrap()).unwrap();
    let d = planted::D_SAE;
    let thresholds = plmscope::analysis::concepts::THRESHOLDS;
    let most_annotated: Vec<String> = plmscope::analysis::labels::concepts(&labelled.proteins).into_iter().map(|c| c.0).collect();
    assert_eq!(names, most_annotated, "the concepts, most annotated first");
    assert_eq!(most_annotated.len(), 4);
    for (entry, concept) in m.concepts.iter().zip(&names) {
        let (residues, domains): (usize, usize) = labelled.proteins.iter().fold((0, 0), |(r, n), p| {
            (r + p.labels(concept).iter().filter(|&&x| x).count(), n + p.segments.iter().filter(|s| &s.concept == concept).count())
        });
        assert_eq!((entry.residues, entry.domains), (residues as u64, domains as u64), "{concept}");
        for (j, card) in cards.iter().enumerate() {
            let mut best: Option<(f32, f32, f32, f32)> = None;
            for &t in &thresholds {
                let from = atlas::concept::threshold_bin(t, card.max);
                let (mut fires, mut inside, mut hit) = (0u64, 0u64, 0u64);
                for (i, p) in labelled.proteins.iter().enumerate() {
                    let f = &dense[&format!("{i}.features")];
                    let col: Vec<f32> = f.data.chunks_exact(d).map(|row| row[j]).collect();
                    let above = |v: f32| v > 0.0 && atlas::bin(v) >= from;
                    let labels = p.labels(concept);
                    fires += col.iter().filter(|&&v| above(v)).count() as u64;
                    inside += col.iter().zip(&labels).filter(|&(&v, &y)| y && above(v)).count() as u64;
                    for s in p.segments.iter().filter(|s| &s.concept == concept) {
                        hit += u64::from(above(col[s.start - 1..s.end].iter().copied().fold(0.0, f32::max)));
                    }
                }
                let precision = if fires > 0 { inside as f32 / fires as f32 } else { 0.0 };
                let recall = hit as f32 / domains as f32;
                let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                if best.is_none_or(|b| f1 >= b.3) {
                    best = Some((t, precision, recall, f1));
                }
            }
            let (t, precision, recall, f1) = best.unwrap();
            match card.concepts.iter().find(|s| &s.concept == concept) {
                Some(s) => assert_eq!((s.threshold, s.precision, s.recall, s.f1), (t, precision, recall, f1), "feature {j}, {concept}"),
                None => assert!(f1 == 0.0 || card.concepts.len() == atlas::format::CARD_CONCEPTS && card.concepts.iter().all(|s| s.f1 >= f1), "feature {j}: {concept} (F1 {f1}) is missing"),
            }
            let listed = entry.features.iter().find(|x| x.0 == j);
            assert!(listed.is_none_or(|x| x.1 == f1), "feature {j} in {concept}'s list");
        }
    }

    // The planted feature is the motif's, exactly, and the motif's best feature is it.
    let card = cards[PLANTED];
    let best: Vec<(&str, f32)> = card.concepts.iter().map(|s| (s.concept.as_str(), s.f1)).collect();
    assert_eq!(&best[..2], [("Motif", 1.0), ("Motif: W", 1.0)], "{best:?}");
    assert_eq!(m.concepts.iter().find(|e| e.name == "Motif: W").unwrap().features[0], (PLANTED, 1.0));
    assert!(card.concepts[0].logistic_r2 > 0.9, "R² {}", card.concepts[0].logistic_r2);
    // The exact association (`plmscope concepts`) agrees.
    let model = c.args[1].clone();
    plmscope(&["concepts", "--model", &model, "--labels", &corpus, "--sae", &c.args[3], "--layer", &LAYER.to_string(), "--concept", "Motif: W", "--out", &c.path("concepts.json")]);
    let table: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(c.dir.join("concepts.json")).unwrap()).unwrap();
    let exact = &table["concepts"][0]["top"][0];
    assert_eq!((exact["feature"].as_u64(), exact["f1"].as_f64()), (Some(PLANTED as u64), Some(1.0)));
    let r2 = exact["logisticR2"].as_f64().unwrap() as f32;
    // The feature separates the motif exactly, so binning its values cannot move the fit: both
    // reach the ridge-bounded optimum.
    assert!((r2 - card.concepts[1].logistic_r2).abs() < 1e-3, "R² exact {r2}, binned {}", card.concepts[1].logistic_r2);
    say!("planted feature's concepts: {best:?}; R² exact {r2:.6}, binned {:.6}", card.concepts[1].logistic_r2);
}

/// The seed explorer's features files where they are beside the repo (CI has them; they are
/// never committed), else a file of their schema made here.
#[test]
fn the_seed_explorers_examples_read_as_atlases_of_its_sae() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/explorer");
    let files: Vec<(String, String)> = match ["features_tm.json", "features_sp.json"].map(|n| std::fs::read_to_string(dir.join(n)).map(|t| (n.to_string(), t))) {
        [Ok(tm), Ok(sp)] => {
            say!("the seed explorer's features files");
            vec![tm, sp]
        }
        _ => {
            say!("no seed explorer files beside the repo: a file of their schema made here");
            let example = |acc: &str, at: u32| serde_json::json!({"accession": acc, "sequence": "MKTAYIAKQRQISFVKSHFSRQ", "seq_len": 22, "behavior": "tm",
                "behavior_segments": [[3, 9]], "feature_segments": [[at, at + 1]], "top_positions": [{"pos": at, "act": 3.5}, {"pos": at + 1, "act": 1.0}],
                "max_act": 3.5, "threshold": 1.5, "overlap_frac_feature_in_behavior": 0.5});
            let features: Vec<serde_json::Value> = (0..20)
                .map(|i| serde_json::json!({"id": format!("L{}:F{}", 2 + 3 * (i % 2), 100 + i), "layer": 2 + 3 * (i % 2), "feature": 100 + i, "importance": 0.01,
                    "examples": (0..8).map(|k| example(&format!("Q{k}"), (i + k) as u32 % 20)).collect::<Vec<_>>()}))
                .collect();
            vec![("features_tm.json".into(), serde_json::json!({"meta": {"model": "facebook/esm2_t6_8M_UR50D", "behavior": "tm"}, "features": features}).to_string())]
        }
    };
    for (name, text) in files {
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
        let atlases = atlas::explorer::read(&name, &text).unwrap();
        let listed = raw["features"].as_array().unwrap();
        assert_eq!(atlases.values().map(|a| a.manifest.features.as_ref().unwrap().len()).sum::<usize>(), listed.len(), "{name}: every feature, once");
        for f in listed {
            let a = &atlases[&(f["layer"].as_u64().unwrap() as usize)];
            let j = f["feature"].as_u64().unwrap() as usize;
            let block = &a.blocks[a.manifest.features.as_ref().unwrap().iter().position(|&x| x == j).unwrap() / atlas::format::BLOCK];
            let card = block.features.iter().find(|c| c.feature == j).unwrap();
            let examples = f["examples"].as_array().unwrap();
            assert_eq!(card.top.len(), examples.len());
            for (shown, e) in card.top.iter().zip(examples) {
                let p = &block.proteins[&shown.protein];
                assert_eq!((p.id.as_str(), p.sequence.as_str()), (e["accession"].as_str().unwrap(), e["sequence"].as_str().unwrap()));
                let segments = |k: &str| serde_json::from_value::<Vec<(u32, u32)>>(e[k].clone()).unwrap();
                assert_eq!((shown.mask.clone(), shown.behavior.clone()), (segments("feature_segments"), segments("behavior_segments")));
                let mut top: Vec<u32> = e["top_positions"].as_array().unwrap().iter().filter(|t| t["act"].as_f64().unwrap() > 0.0).map(|t| t["pos"].as_u64().unwrap() as u32).collect();
                top.sort_unstable();
                top.dedup();
                assert_eq!(shown.acts.iter().map(|a| a.0).collect::<Vec<_>>(), top, "{name} feature {j}: the top positions");
                let peak = e["top_positions"].as_array().unwrap().iter().map(|t| t["act"].as_f64().unwrap() as f32).fold(0.0, f32::max);
                let q = shown.acts.iter().map(|a| a.1).max().unwrap_or(0);
                assert_eq!(q, (peak / card.max * 255.0).round().clamp(1.0, 255.0) as u8, "{name} feature {j}: quantised to the card's max");
            }
        }
        say!("{name}: layers {:?}, {} features", atlases.keys().collect::<Vec<_>>(), listed.len());
    }
}
