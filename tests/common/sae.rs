//! SAE fixtures (tests/reference/generate_sae.py) and their comparison, native and in wasm.

use burn::prelude::*;
use plmscope::device::Precision;
use plmscope::device::read_f32;
use plmscope::esm::{Batch, EsmConfig, EsmModel};
use plmscope::features;
use plmscope::intervene::{self, Edit, Op};
use plmscope::sae::Sae;
use plmscope::weights::sae::{self as sae_files, SaeSource};
use plmscope::weights::{self, random, Vars};

use super::{Fixture, HIDDEN_TOL, LOGITS_TOL, T6_CONFIG, TINY_CONFIG, TINY_SAFETENSORS};

/// Features: the same maths as hidden states, read through one more matmul; the bound.
pub const FEATURE_TOL: f32 = 1e-4;

pub const EXPECTED: &[u8] = include_bytes!("../reference/fixtures/sae/expected.safetensors");
pub const SEQUENCES: [&str; 3] = ["short", "masked", "medium"];

/// Which model an SAE fixture sits on.
#[derive(Clone, Copy)]
pub enum On {
    Tiny,
    T6,
}

pub struct Case {
    pub key: &'static str,
    pub on: On,
    pub layer: usize,
    pub source: SaeSource<'static>,
}

pub fn cases() -> Vec<Case> {
    macro_rules! f {
        ($p:literal) => {
            include_bytes!(concat!("../reference/fixtures/sae/", $p))
        };
    }
    vec![
        Case { key: "interplm_tiny_l1", on: On::Tiny, layer: 1, source: SaeSource::Pt { bytes: f!("interplm_tiny_l1.pt"), name: "interplm_tiny_l1.pt", k: None } },
        Case { key: "interplm_tiny_l2", on: On::Tiny, layer: 2, source: SaeSource::Pt { bytes: f!("interplm_tiny_l2.pt"), name: "interplm_tiny_l2.pt", k: None } },
        Case {
            key: "saelens_standard_tiny_l1",
            on: On::Tiny,
            layer: 1,
            source: SaeSource::SaeLens {
                cfg_json: include_str!("../reference/fixtures/sae/saelens_standard_tiny_l1/cfg.json"),
                weights: f!("saelens_standard_tiny_l1/sae_weights.safetensors"),
            },
        },
        Case {
            key: "saelens_topk_tiny_l1",
            on: On::Tiny,
            layer: 1,
            source: SaeSource::SaeLens {
                cfg_json: include_str!("../reference/fixtures/sae/saelens_topk_tiny_l1/cfg.json"),
                weights: f!("saelens_topk_tiny_l1/sae_weights.safetensors"),
            },
        },
        Case {
            key: "saelens_jumprelu_tiny_l2",
            on: On::Tiny,
            layer: 2,
            source: SaeSource::SaeLens {
                cfg_json: include_str!("../reference/fixtures/sae/saelens_jumprelu_tiny_l2/cfg.json"),
                weights: f!("saelens_jumprelu_tiny_l2/sae_weights.safetensors"),
            },
        },
        Case {
            key: "interprot_tiny_l1_k8",
            on: On::Tiny,
            layer: 1,
            source: SaeSource::Safetensors { bytes: f!("interprot_tiny_l1_k8.safetensors"), name: "interprot_tiny_l1_k8.safetensors", k: None },
        },
        Case { key: "interplm_t6_l3", on: On::T6, layer: 3, source: SaeSource::Pt { bytes: f!("interplm_t6_l3.pt"), name: "interplm_t6_l3.pt", k: None } },
    ]
}

pub fn model(on: On, device: &Device) -> EsmModel {
    match on {
        On::Tiny => weights::esm::from_hub(TINY_CONFIG, TINY_SAFETENSORS, device, Precision::F32).unwrap().1,
        On::T6 => EsmModel::load(&Vars::random(random::SEED, device), &EsmConfig::from_json(T6_CONFIG).unwrap()).unwrap(),
    }
}

pub fn load(case: &Case, model: &EsmModel, device: &Device) -> Sae {
    sae_files::load(case.source, model.d_model(), device).unwrap_or_else(|e| panic!("{}: {e}", case.key))
}

/// The edits generate_sae.py applied to `key.seq`.
pub fn edits(key: &str, seq: &str) -> Vec<Edit> {
    let (_, meta) = ::safetensors::SafeTensors::read_metadata(EXPECTED).unwrap();
    let all: serde_json::Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["edits"]).unwrap();
    all[format!("{key}.{seq}.edits")]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Edit {
            feature: e["feature"].as_u64().unwrap() as usize,
            op: match e["op"].as_str().unwrap() {
                "ablate" => Op::Ablate,
                "clamp" => Op::Clamp(e["value"].as_f64().unwrap() as f32),
                _ => Op::Scale(e["value"].as_f64().unwrap() as f32),
            },
            positions: e["positions"].as_array().map(|p| (p[0].as_u64().unwrap() as usize..=p[1].as_u64().unwrap() as usize).collect()),
        })
        .collect()
}

pub fn sequences() -> Fixture {
    let (_, meta) = ::safetensors::SafeTensors::read_metadata(EXPECTED).unwrap();
    let seqs: std::collections::BTreeMap<String, String> = serde_json::from_str(&meta.metadata().as_ref().unwrap()["sequences"]).unwrap();
    Fixture { tensors: weights::safetensors::read(EXPECTED, "expected.safetensors").unwrap(), sequences: seqs }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) })
}

/// Max |Δ| of features, normalised features, intervened logits and intervened hidden states.
#[derive(Debug, Default)]
pub struct SaeDiffs {
    pub features: f32,
    pub logits: f32,
    pub hidden: f32,
    /// max |Δ logits| / max |logits| of an empty intervention and of ablating a silent feature.
    pub no_op: f32,
}

pub async fn compare(case: &Case, device: &Device) -> SaeDiffs {
    let fx = sequences();
    let model = model(case.on, device);
    let sae = load(case, &model, device);
    let mut d = SaeDiffs::default();
    for seq in SEQUENCES {
        let key = format!("{}.{seq}", case.key);
        let tokens = fx.tokens_unchecked(seq);
        let batch = Batch::new(&[tokens.clone()], device);
        let cache = model.forward(&batch);
        let encoded = features::encode(&cache, &sae, case.layer);
        let f = encoded.features.clone();
        let want = fx.get(&format!("{key}.features"));
        let got = read_f32(f.clone()).await.expect("read back");
        d.features = d.features.max(max_abs_diff(&got, &want.data));
        if let Some(n) = fx.tensors.get(&format!("{key}.features_normalized")) {
            d.features = d.features.max(max_abs_diff(&read_f32(sae.normalised_features(f)).await.expect("read back"), &n.data));
        }

        let after = intervene::intervene(&model, &sae, case.layer, &cache, &batch, &encoded, &edits(case.key, seq)).unwrap();
        let [_, t, v] = after.logits.dims();
        let logits = read_f32(after.logits.clone().reshape([t, v])).await.expect("read back");
        d.logits = d.logits.max(max_abs_diff(&logits, &fx.get(&format!("{key}.intervened_logits")).data));
        if let Some(h) = fx.tensors.get(&format!("{key}.intervened_hidden_states")) {
            let hidden: Vec<_> = (0..=model.n_layers())
                .map(|l| if l < case.layer { cache.hidden(l).clone() } else { after.hidden(l).clone() })
                .collect();
            d.hidden = d.hidden.max(max_abs_diff(&read_f32(Tensor::cat(hidden, 0)).await.expect("read back"), &h.data));
        }

        // An empty intervention, and ablating a feature that never fires here, change nothing.
        let plain = read_f32(cache.logits.clone()).await.expect("read back");
        let scale = plain.iter().fold(0f32, |m, x| m.max(x.abs()));
        let silent = (0..sae.d_sae).find(|&j| want.data.iter().skip(j).step_by(sae.d_sae).all(|&x| x == 0.0)).expect("a silent feature");
        for edits in [vec![], vec![Edit { feature: silent, op: Op::Ablate, positions: None }]] {
            let after = intervene::intervene(&model, &sae, case.layer, &cache, &batch, &encoded, &edits).unwrap();
            d.no_op = d.no_op.max(max_abs_diff(&read_f32(after.logits).await.expect("read back"), &plain) / scale);
        }
    }
    d
}

pub fn assert_sae(label: &str, case: &Case, d: &SaeDiffs) {
    say!("{label} {}: max|Δ| features {:.2e} logits {:.2e} hidden {:.2e}; no-op relative {:.1e}", case.key, d.features, d.logits, d.hidden, d.no_op);
    assert!(d.features <= FEATURE_TOL, "{label} {}: features off by {:.2e}", case.key, d.features);
    assert!(d.logits <= LOGITS_TOL, "{label} {}: intervened logits off by {:.2e}", case.key, d.logits);
    assert!(d.hidden <= HIDDEN_TOL, "{label} {}: intervened hidden states off by {:.2e}", case.key, d.hidden);
    assert!(d.no_op <= 1e-5, "{label} {}: a no-op intervention moved logits by {:.1e} (relative)", case.key, d.no_op);
}
