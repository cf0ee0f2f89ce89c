//! ESM-2, SAEs and interventions compiled to WebAssembly, in headless Chromium, on burn's WebGPU
//! backend and on the CPU (Flex) backend, against the same reference fixtures as the native
//! tests; and the page's wasm object driven as the worker drives it.
//!
//! Run by `pkg-build/test.sh` (wasm-bindgen-test-runner + chromedriver).

#![cfg(target_arch = "wasm32")]

#[macro_use]
mod common;

use burn::prelude::*;
use common::*;
use plmscope::device::Precision;
use plmscope::esm::{EsmConfig, EsmModel};
use plmscope::weights::{self, random, Vars};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn webgpu() -> Device {
    plmscope::device::webgpu_device().await.expect("navigator.gpu gives an adapter (--enable-unsafe-webgpu)")
}

async fn check_all(label: &str, device: Device) {
    let t6 = EsmModel::load(&Vars::random(random::SEED, &device), &EsmConfig::from_json(T6_CONFIG).unwrap()).unwrap();
    let fx = Fixture::read(T6_OUTPUTS);
    for name in ALONE {
        assert_within(&format!("{label} t6_8m alone"), &compare(&t6, &device, &fx, &[name]).await);
    }
    assert_within(&format!("{label} t6_8m batch"), &compare(&t6, &device, &fx, &BATCH).await);

    let fx = Fixture::read(TINY_OUTPUTS);
    let (_, hub) = weights::esm::from_hub(TINY_CONFIG, TINY_SAFETENSORS, &device, Precision::F32).unwrap();
    let (_, pt) = weights::esm::from_fair_esm(TINY_PT, "esm2_tiny.pt", &device, Precision::F32).unwrap();
    for name in ALONE {
        assert_within(&format!("{label} tiny hub"), &compare(&hub, &device, &fx, &[name]).await);
        assert_within(&format!("{label} tiny .pt"), &compare(&pt, &device, &fx, &[name]).await);
    }
    assert_within(&format!("{label} tiny batch"), &compare(&hub, &device, &fx, &BATCH).await);

    // The real sizes' widths (2 layers each): 35M's, 150M's and 650M's blocks.
    for (d, config, outputs) in WIDTHS {
        let model = EsmModel::load(&Vars::random(WIDTHS_SEED, &device), &EsmConfig::from_json(config).unwrap()).unwrap();
        let fx = Fixture::read(outputs);
        assert_within(&format!("{label} width {d} batch"), &compare(&model, &device, &fx, &FEW).await);
    }
    // 650M's width through the fair-esm path too, at 32 bits.
    let (d, config, outputs) = WIDTHS[2];
    let pt = common::fair_esm::random_fair_esm_pt(config, WIDTHS_SEED);
    let (_, model) = weights::esm::from_fair_esm(&pt, "esm2_d1280.pt", &device, Precision::F32).unwrap();
    assert_within(&format!("{label} width {d} .pt batch"), &compare(&model, &device, &Fixture::read(outputs), &FEW).await);
}

#[wasm_bindgen_test]
async fn cpu_backend_matches_transformers() {
    check_all("wasm cpu", Device::flex()).await;
}

#[wasm_bindgen_test]
async fn webgpu_backend_matches_transformers() {
    check_all("wasm webgpu", webgpu().await).await;
}

async fn check_saes(label: &str, device: Device) {
    for case in common::sae::cases() {
        common::sae::assert_sae(label, &case, &common::sae::compare(&case, &device).await);
    }
}

#[wasm_bindgen_test]
async fn cpu_backend_saes_and_interventions_match_the_reference() {
    check_saes("wasm cpu", Device::flex()).await;
}

#[wasm_bindgen_test]
async fn webgpu_backend_saes_and_interventions_match_the_reference() {
    check_saes("wasm webgpu", webgpu().await).await;
}

/// The worker's path: the exported object, JSON in and out.
async fn object_path(backend: &str) {
    use plmscope::web::Plmscope;
    let fx = common::sae::sequences();
    let sae_fx = |p: &str| -> &'static [u8] {
        match p {
            "l1" => include_bytes!("reference/fixtures/sae/interplm_tiny_l1.pt"),
            _ => include_bytes!("reference/fixtures/sae/interplm_tiny_l2.pt"),
        }
    };
    // As the worker hands dropped files over: names and bytes, the format left to the detector.
    let files = |named: &[(&str, &[u8])]| -> (Vec<String>, js_sys::Array) {
        (named.iter().map(|(n, _)| n.to_string()).collect(), named.iter().map(|(_, b)| JsValue::from(js_sys::Uint8Array::from(*b))).collect())
    };
    let mut engine = Plmscope::create(backend.into()).await.map_err(JsValue::from).unwrap();
    // The files' starts (each file whole here, under 1 MiB), then the weights in chunks.
    let (names, heads) = files(&[("model.safetensors", TINY_SAFETENSORS), ("config.json", TINY_CONFIG.as_bytes())]);
    assert_eq!(engine.model_stream_start(names, heads, "tiny".into()).map_err(JsValue::from).unwrap(), 0);
    for chunk in TINY_SAFETENSORS.chunks(40_000) {
        engine.model_stream_push(chunk).map_err(JsValue::from).unwrap();
    }
    engine.model_stream_finish().map_err(JsValue::from).unwrap();
    for (layer, key) in [(1, "l1"), (2, "l2")] {
        let name = format!("interplm_tiny_{key}.pt");
        let (names, bytes) = files(&[(&name, sae_fx(key))]);
        engine.load_sae(layer, names, bytes, None, name.clone()).map_err(JsValue::from).unwrap();
    }
    let fasta = format!(">short\n{}\n>medium\n{}\n", fx.sequences["short"], fx.sequences["medium"]);
    let out: serde_json::Value = serde_wasm_bindgen::from_value(engine.run(fasta, 1, 1).await.map_err(JsValue::from).unwrap()).unwrap();
    assert_eq!(out["header"], "medium");
    let want = fx.get("interplm_tiny_l1.medium.features");
    let mut dense = vec![0f32; want.data.len()];
    for (r, row) in out["features"]["rows"].as_array().unwrap().iter().enumerate() {
        for pair in row.as_array().unwrap() {
            dense[r * 128 + pair[0].as_u64().unwrap() as usize] = pair[1].as_f64().unwrap() as f32;
        }
    }
    let worst = dense.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= common::sae::FEATURE_TOL, "{backend} object features: {worst:.2e}");
    assert!(out["reconstruction"]["fractionOfVarianceExplained"].as_f64().unwrap().is_finite());

    let edits = serde_json::to_value(common::sae::edits("interplm_tiny_l1", "medium")).unwrap();
    let edits = serde_wasm_bindgen::to_value(&edits).unwrap();
    let after: serde_json::Value =
        serde_wasm_bindgen::from_value(engine.intervene(1, edits, Some(2)).await.map_err(JsValue::from).unwrap()).unwrap();
    assert!(after["logits"].is_array(), "{backend}: intervene gave {:?}", after.as_object().map(|o| o.keys().collect::<Vec<_>>()));
    let logits: Vec<f32> = after["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let want = fx.get("interplm_tiny_l1.medium.intervened_logits");
    let worst = logits.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= LOGITS_TOL, "{backend} object intervened logits: {worst:.2e}");
    assert_eq!(after["deltaLogprob"].as_array().unwrap().len(), 25);
    assert_eq!(after["downstream"]["layer"], 2);
    say!("{backend} object path: features and intervention within tolerance");
}

/// f16 weights where the adapter has `shader-f16` (at 650M's width, against transformers at the
/// f16 bounds); elsewhere, as on the tests' SwiftShader and on the CPU build, a refusal in
/// words and f32 under `auto`.
#[wasm_bindgen_test]
async fn f16_weights_where_the_adapter_has_shader_f16() {
    use plmscope::web::Plmscope;
    for backend in ["cpu", "webgpu"] {
        let mut engine = Plmscope::create(backend.into()).await.map_err(JsValue::from).unwrap();
        let plan: serde_json::Value = serde_wasm_bindgen::from_value(engine.plan_for("650M").map_err(JsValue::from).unwrap()).unwrap();
        if !engine.f16_available() {
            let err = JsValue::from(engine.set_precision("f16").unwrap_err());
            let message = js_sys::Reflect::get(&err, &"message".into()).unwrap().as_string().unwrap();
            assert!(message.starts_with("f16 weights need a GPU whose adapter has 16-bit floats (WebGPU's shader-f16)"), "{backend}: {message}");
            assert_eq!((plan["precision"].as_str(), plan["weightBytes"].as_u64()), (Some("f32"), Some(2_604_170_372)), "{backend}");
            say!("{backend}: no f16 here; refused in words, 650M planned in f32");
            continue;
        }
        assert_eq!(plan["precision"], "f16");
        let device = webgpu().await;
        let (_, config, outputs) = WIDTHS[2];
        let model = weights::esm::from_hub(config, &random_hub_safetensors(config, WIDTHS_SEED), &device, Precision::F16).unwrap().1;
        let fx = Fixture::read(outputs);
        assert_within_bounds("webgpu f16 width 1280", &compare(&model, &device, &fx, &FEW).await, F16_HIDDEN_TOL, F16_LOGITS_TOL);
    }
}

#[wasm_bindgen_test]
async fn the_wasm_object_runs_features_and_interventions_on_cpu() {
    object_path("cpu").await;
}

#[wasm_bindgen_test]
async fn the_wasm_object_runs_features_and_interventions_on_webgpu() {
    object_path("webgpu").await;
}

/// SAE training with burn's autodiff on the browser's backends: the planted directions found
/// (tests/common/synthetic.rs) as natively (tests/train.rs).
async fn check_training(label: &str, device: Device) {
    use common::synthetic::{recovered, synthetic, ACTIVE, D_IN, N_TRUE, TOKENS};
    use plmscope::train::{Recipe, TrainOptions, Trainer};
    let s = synthetic(0x7A11);
    let data = Tensor::<1>::from_floats(s.data.as_slice(), &device).reshape([TOKENS, D_IN]);
    let options = TrainOptions {
        recipe: Recipe::TopK { k: ACTIVE + 1 },
        d_sae: 2 * N_TRUE,
        // Fewer, larger steps than natively: on the software WebGPU adapter a step costs its
        // kernel launches and one read-back, whatever its size.
        steps: 100,
        batch: 1024,
        lr: 2e-2,
        warmup_steps: 20,
        dead_after: 4096,
        aux_k: 16,
        ..TrainOptions::default()
    };
    let mut trainer = Trainer::new(data, options).await.unwrap();
    let mut last = None;
    while trainer.steps_done() < options.steps {
        last = Some(trainer.step().await.unwrap());
    }
    let last = last.unwrap();
    let w_dec = plmscope::device::read_f32(trainer.sae().w_dec).await.unwrap();
    let found = recovered(&s.directions, &w_dec, 2 * N_TRUE);
    say!("{label} training: {found} of {N_TRUE} directions at cos > 0.9; {last:?}");
    assert!(found * 10 >= N_TRUE * 9, "{label}: only {found} of {N_TRUE} directions recovered");
    assert!(last.fraction_variance_explained > 0.95 && last.l0 <= (ACTIVE + 1) as f32 + 1e-6, "{label}: {last:?}");
}

#[wasm_bindgen_test]
async fn cpu_backend_trains_an_sae() {
    check_training("wasm cpu", Device::flex()).await;
}

#[wasm_bindgen_test]
async fn webgpu_backend_trains_an_sae() {
    check_training("wasm webgpu", webgpu().await).await;
}

/// The hostile files of tests/hostile.rs in wasm32, where a usize is 32 bits: the same errors.
#[wasm_bindgen_test]
fn hostile_files_get_the_same_errors_at_32_bits() {
    common::hostile::check_all();
    say!("hostile files: the same errors in wasm32");
}
