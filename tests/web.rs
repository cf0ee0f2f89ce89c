//! ESM-2 compiled to WebAssembly, in headless Chromium, on burn's WebGPU backend and on the CPU
//! (Flex) backend, against the same transformers fixtures as the native tests.
//!
//! Run by `pkg-build/test.sh` (wasm-bindgen-test-runner + chromedriver).

#![cfg(target_arch = "wasm32")]

mod common;

use burn::prelude::*;
use common::*;
use plmscope::esm::{EsmConfig, EsmModel};
use plmscope::weights::{self, random, Vars};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn webgpu() -> Device {
    Device::wgpu_options().init_async().await.expect("navigator.gpu gives an adapter (--enable-unsafe-webgpu)")
}

async fn check_all(label: &str, device: Device) {
    let t6 = EsmModel::load(&Vars::random(random::SEED, &device), &EsmConfig::from_json(T6_CONFIG).unwrap()).unwrap();
    let fx = Fixture::read(T6_OUTPUTS);
    for name in ALONE {
        assert_within(&format!("{label} t6_8m alone"), &compare(&t6, &device, &fx, &[name]).await);
    }
    assert_within(&format!("{label} t6_8m batch"), &compare(&t6, &device, &fx, &BATCH).await);

    let fx = Fixture::read(TINY_OUTPUTS);
    let (_, hub) = weights::esm::from_hub(TINY_CONFIG, TINY_SAFETENSORS, &device).unwrap();
    let (_, pt) = weights::esm::from_fair_esm(TINY_PT, "esm2_tiny.pt", &device).unwrap();
    for name in ALONE {
        assert_within(&format!("{label} tiny hub"), &compare(&hub, &device, &fx, &[name]).await);
        assert_within(&format!("{label} tiny .pt"), &compare(&pt, &device, &fx, &[name]).await);
    }
    assert_within(&format!("{label} tiny batch"), &compare(&hub, &device, &fx, &BATCH).await);
}

#[wasm_bindgen_test]
async fn cpu_backend_matches_transformers() {
    check_all("wasm cpu", Device::flex()).await;
}

#[wasm_bindgen_test]
async fn webgpu_backend_matches_transformers() {
    check_all("wasm webgpu", webgpu().await).await;
}
