//! The native GPU backends (`--features wgpu`) against the same reference fixtures as the CPU:
//! burn's wgpu runtime, the WGSL kernels the browser runs, here on Vulkan. CI runs it on Mesa's
//! software Vulkan device (lavapipe, Debian's mesa-vulkan-drivers), so the GPU code path is
//! checked on every submission without a GPU.
//!
//! Run by `pkg-build/test.sh`: `cargo test --release --features wgpu --test gpu`.

#![cfg(feature = "wgpu")]

#[macro_use]
mod common;

use std::process::Command;

use burn::prelude::*;
use common::*;
use plmscope::device::Precision;
use plmscope::esm::{EsmConfig, EsmModel};
use plmscope::session::Session;
use plmscope::weights::{self, random, safetensors, Vars};

fn wgpu() -> Device {
    pollster::block_on(plmscope::device::create("wgpu")).expect("a Vulkan, Metal or DX12 adapter (in CI: lavapipe, from mesa-vulkan-drivers)")
}

#[test]
fn esm2_on_wgpu_matches_transformers() {
    let device = wgpu();
    let t6 = EsmModel::load(&Vars::random(random::SEED, &device), &EsmConfig::from_json(T6_CONFIG).unwrap()).unwrap();
    let fx = Fixture::read(T6_OUTPUTS);
    for name in ALONE {
        assert_within("wgpu t6_8m alone", &pollster::block_on(compare(&t6, &device, &fx, &[name])));
    }
    assert_within("wgpu t6_8m batch", &pollster::block_on(compare(&t6, &device, &fx, &BATCH)));
    let fx = Fixture::read(TINY_OUTPUTS);
    let (_, hub) = weights::esm::from_hub(TINY_CONFIG, TINY_SAFETENSORS, &device, Precision::F32).unwrap();
    let (_, pt) = weights::esm::from_fair_esm(TINY_PT, "esm2_tiny.pt", &device, Precision::F32).unwrap();
    for name in ALONE {
        assert_within("wgpu tiny hub", &pollster::block_on(compare(&hub, &device, &fx, &[name])));
        assert_within("wgpu tiny .pt", &pollster::block_on(compare(&pt, &device, &fx, &[name])));
    }
}

/// f16 weights, as the page holds 650M: t6_8M's shape and every real width (2 layers each),
/// streamed as the hub serves them, against transformers' f32 at the f16 bounds.
#[test]
fn f16_weights_on_wgpu_match_transformers_within_the_f16_bounds() {
    let device = wgpu();
    assert!(plmscope::device::f16_available(&device), "lavapipe has shaderFloat16");
    let t6 = EsmModel::load(&Vars::random(random::SEED, &device).with_precision(Precision::F16), &EsmConfig::from_json(T6_CONFIG).unwrap()).unwrap();
    assert_eq!(t6.precision(), Precision::F16);
    let fx = Fixture::read(T6_OUTPUTS);
    assert_within_bounds("wgpu f16 t6_8m batch", &pollster::block_on(compare(&t6, &device, &fx, &BATCH)), F16_HIDDEN_TOL, F16_LOGITS_TOL);
    for (d, config, outputs) in WIDTHS {
        let (model, _) = streamed(config, &device, Precision::F16);
        assert_eq!(model.precision(), Precision::F16);
        let fx = Fixture::read(outputs);
        for name in FEW {
            assert_within_bounds(&format!("wgpu f16 width {d}"), &pollster::block_on(compare(&model, &device, &fx, &[name])), F16_HIDDEN_TOL, F16_LOGITS_TOL);
        }
    }
    // What the device holds for the model, by cubecl's count of its live allocations: the dense
    // weights are all but 0.2 % of it at 650M's width, so f16 holds a little over half.
    let (_, config, _) = WIDTHS[2];
    let (f32_model, f32_bytes) = streamed(config, &device, Precision::F32);
    drop(f32_model);
    let (_f16_model, f16_bytes) = streamed(config, &device, Precision::F16);
    say!("wgpu width 1280 on the device: f32 {:.1} MB, f16 {:.1} MB", f32_bytes as f64 / 1e6, f16_bytes as f64 / 1e6);
    assert!((f16_bytes as f64) < 0.52 * f32_bytes as f64, "f16 holds {f16_bytes} bytes against f32's {f32_bytes}");
}

/// A model of `config` streamed in as the hub serves it, and the device memory it holds after.
fn streamed(config: &str, device: &Device, precision: Precision) -> (EsmModel, u64) {
    let in_use = || device.memory_pool_usage().expect("cubecl counts its pools").bytes_in_use;
    let before = in_use();
    let mut stream = weights::esm::HubStream::new(EsmConfig::from_json(config).unwrap(), device, precision);
    for chunk in random_hub_safetensors(config, WIDTHS_SEED).chunks(1 << 20) {
        stream.push(chunk).unwrap();
    }
    let (_, model) = stream.finish().unwrap();
    device.sync().unwrap();
    (model, in_use().checked_sub(before).expect("the load freed memory it had not taken"))
}

/// `auto` takes f16 for 650M where the device has it, and only there; a choice stays across loads.
#[test]
fn auto_precision_takes_f16_for_650m_on_wgpu() {
    let mut session = Session::new(wgpu());
    assert_eq!(session.precision_for(&EsmConfig::esm2("650M").unwrap()), Precision::F16);
    assert_eq!(session.precision_for(&EsmConfig::esm2("150M").unwrap()), Precision::F32);
    session.set_precision("f32").unwrap();
    assert_eq!(session.precision_for(&EsmConfig::esm2("650M").unwrap()), Precision::F32);
    session.set_precision("f16").unwrap();
    let info = session.load_random_model().unwrap();
    assert_eq!((info.precision, session.precision_for(&EsmConfig::esm2("8M").unwrap())), (Precision::F16, Precision::F16));
}

#[test]
fn saes_and_interventions_on_wgpu_match_the_reference() {
    let device = wgpu();
    for case in common::sae::cases() {
        common::sae::assert_sae("wgpu", &case, &pollster::block_on(common::sae::compare(&case, &device)));
    }
}

/// `plmscope embed --backend wgpu` on every fixture sequence, against transformers.
#[test]
fn embed_with_backend_wgpu_matches_transformers() {
    let fx = Fixture::read(TINY_OUTPUTS);
    let dir = std::env::temp_dir().join(format!("plmscope-gpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fasta: String = ALONE.iter().map(|n| format!(">{n}\n{}\n", fx.sequences[*n])).collect();
    let (fasta_path, out) = (dir.join("in.fasta"), dir.join("out.safetensors"));
    std::fs::write(&fasta_path, fasta).unwrap();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixtures/tiny");
    let run = Command::new(env!("CARGO_BIN_EXE_plmscope"))
        .args(["embed", "--backend", "wgpu", "--model", model.to_str().unwrap(), "--fasta", fasta_path.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got = safetensors::read(&std::fs::read(&out).unwrap(), "out").unwrap();
    for (i, name) in ALONE.iter().enumerate() {
        assert_eq!(got[&format!("{i}.input_ids")].data, fx.get(&format!("{name}.input_ids")).data, "{name}");
        for (key, tol) in [("hidden_states", HIDDEN_TOL), ("logits", LOGITS_TOL)] {
            let (g, w) = (&got[&format!("{i}.{key}")], fx.get(&format!("{name}.{key}")));
            assert_eq!(g.shape, w.shape, "{name}.{key}");
            let worst = g.data.iter().zip(&w.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= tol, "{name}.{key}: max |Δ| {worst:.2e}");
        }
    }
}
