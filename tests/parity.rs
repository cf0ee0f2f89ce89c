//! ESM-2 natively (burn's Flex CPU backend) against transformers.

mod common;

use burn::prelude::*;
use common::*;
use plmscope::device::Precision;
use plmscope::esm::{EsmConfig, EsmModel};
use plmscope::weights::{self, random, LoadError, Vars};

fn device() -> Device {
    Device::flex()
}

fn t6_random() -> EsmModel {
    EsmModel::load(&Vars::random(random::SEED, &device()), &EsmConfig::from_json(T6_CONFIG).unwrap()).unwrap()
}

#[test]
fn t6_8m_alone_matches_transformers() {
    let fx = Fixture::read(T6_OUTPUTS);
    let model = t6_random();
    for name in ALONE {
        assert_within("t6_8m alone", &pollster::block_on(compare(&model, &device(), &fx, &[name])));
    }
}

#[test]
fn t6_8m_padded_batch_matches_each_sequence_alone() {
    let fx = Fixture::read(T6_OUTPUTS);
    assert_within("t6_8m batch", &pollster::block_on(compare(&t6_random(), &device(), &fx, &BATCH)));
}

#[test]
fn tiny_hub_safetensors_matches_transformers() {
    let fx = Fixture::read(TINY_OUTPUTS);
    let (_, model) = weights::esm::from_hub(TINY_CONFIG, TINY_SAFETENSORS, &device(), Precision::F32).unwrap();
    for name in ALONE {
        assert_within("tiny hub", &pollster::block_on(compare(&model, &device(), &fx, &[name])));
    }
    assert_within("tiny hub batch", &pollster::block_on(compare(&model, &device(), &fx, &BATCH)));
}

/// The real sizes' widths, each streamed as a hub `model.safetensors` in 1 MiB chunks.
#[test]
fn every_real_width_streamed_from_hub_safetensors_matches_transformers() {
    for (d, config, outputs) in WIDTHS {
        let bytes = random_hub_safetensors(config, WIDTHS_SEED);
        let mut stream = weights::esm::HubStream::new(EsmConfig::from_json(config).unwrap(), &device(), Precision::F32);
        for chunk in bytes.chunks(1 << 20) {
            stream.push(chunk).unwrap();
        }
        let (_, model) = stream.finish().unwrap();
        let fx = Fixture::read(outputs);
        for name in FEW {
            assert_within(&format!("width {d} alone"), &pollster::block_on(compare(&model, &device(), &fx, &[name])));
        }
        assert_within(&format!("width {d} batch"), &pollster::block_on(compare(&model, &device(), &fx, &FEW)));
    }
}

/// 650M's width through the fair-esm path: the same random weights as the hub fixture, written as
/// fair-esm's published checkpoints name them (`encoder.sentence_encoder.*`, `encoder.lm_head.*`).
#[test]
fn fair_esm_pt_at_650m_width_matches_transformers() {
    let (d, config, outputs) = WIDTHS[2];
    let pt = common::fair_esm::random_fair_esm_pt(config, WIDTHS_SEED);
    let (read, model) = weights::esm::from_fair_esm(&pt, "esm2_d1280.pt", &device(), Precision::F32).unwrap();
    assert_eq!(read, EsmConfig::from_json(config).unwrap());
    let fx = Fixture::read(outputs);
    for name in FEW {
        assert_within(&format!("width {d} .pt"), &pollster::block_on(compare(&model, &device(), &fx, &[name])));
    }
}

#[test]
fn tiny_fair_esm_pt_matches_transformers() {
    let fx = Fixture::read(TINY_OUTPUTS);
    let (config, model) = weights::esm::from_fair_esm(TINY_PT, "esm2_tiny.pt", &device(), Precision::F32).unwrap();
    assert_eq!(config, EsmConfig::from_json(TINY_CONFIG).unwrap());
    for name in ALONE {
        assert_within("tiny .pt", &pollster::block_on(compare(&model, &device(), &fx, &[name])));
    }
}

/// Rewrites the tiny hub file through `edit` (name → tensor) and loads it.
fn load_edited(edit: impl Fn(&mut weights::TensorMap)) -> Result<(), LoadError> {
    let mut tensors = weights::safetensors::read(TINY_SAFETENSORS, "model.safetensors").unwrap();
    edit(&mut tensors);
    let out = tensors
        .into_iter()
        .map(|(n, t)| (n, weights::safetensors::OutTensor::F32 { shape: t.shape, data: t.data }))
        .collect();
    let bytes = weights::safetensors::write(out).unwrap();
    weights::esm::from_hub(TINY_CONFIG, &bytes, &device(), Precision::F32).map(|_| ())
}

#[test]
fn missing_tensor_is_named() {
    let err = load_edited(|t| {
        t.remove("esm.encoder.layer.1.attention.self.key.bias");
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "tensor `esm.encoder.layer.1.attention.self.key.bias` is missing from model.safetensors");
}

#[test]
fn wrong_shape_is_named() {
    let err = load_edited(|t| {
        let w = t.get_mut("esm.encoder.layer.0.intermediate.dense.weight").unwrap();
        w.shape = vec![64, 128];
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `esm.encoder.layer.0.intermediate.dense.weight` has shape [64, 128] where [128, 64] was expected"
    );
}

#[test]
fn wrong_dtype_is_named() {
    let mut tensors = weights::safetensors::read(TINY_SAFETENSORS, "model.safetensors").unwrap();
    let out: Vec<_> = tensors
        .iter_mut()
        .map(|(n, t)| {
            let o = if n == "lm_head.bias" {
                weights::safetensors::OutTensor::I64 { shape: t.shape.clone(), data: vec![0; t.data.len()] }
            } else {
                weights::safetensors::OutTensor::F32 { shape: t.shape.clone(), data: t.data.clone() }
            };
            (n.clone(), o)
        })
        .collect();
    let bytes = weights::safetensors::write(out).unwrap();
    let err = weights::esm::from_hub(TINY_CONFIG, &bytes, &device(), Precision::F32).err().unwrap();
    assert_eq!(err.to_string(), "tensor `lm_head.bias` has dtype I64; the model needs floating-point weights (F32, F16, BF16)");
}

#[test]
fn truncated_files_are_format_errors_not_panics() {
    let cut = &TINY_SAFETENSORS[..TINY_SAFETENSORS.len() - 1000];
    let err = weights::esm::from_hub(TINY_CONFIG, cut, &device(), Precision::F32).err().unwrap().to_string();
    assert!(err.starts_with("model.safetensors is not a readable safetensors file:"), "{err}");
    let err = weights::esm::from_fair_esm(&TINY_PT[..TINY_PT.len() / 2], "half.pt", &device(), Precision::F32).err().unwrap().to_string();
    assert!(err.starts_with("half.pt is not a readable torch .pt file"), "{err}");
    let err = weights::esm::from_hub("{\"hidden_size\": 320", TINY_SAFETENSORS, &device(), Precision::F32).err().unwrap().to_string();
    assert!(err.starts_with("config.json is not valid JSON for an ESM model"), "{err}");
}

#[test]
fn transformers5_save_pretrained_names_load() {
    // transformers 5 writes LayerNorm.gamma/beta and keeps the inv_freq buffers.
    let fx = Fixture::read(TINY_OUTPUTS);
    let mut tensors = weights::safetensors::read(TINY_SAFETENSORS, "model.safetensors").unwrap();
    let renamed: weights::TensorMap = std::mem::take(&mut tensors)
        .into_iter()
        .map(|(n, t)| (n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"), t))
        .chain([(
            "esm.encoder.layer.0.attention.self.rotary_embeddings.inv_freq".to_string(),
            weights::RawTensor::f32(vec![8], vec![1.0; 8]),
        )])
        .collect();
    assert!(renamed.contains_key("esm.encoder.layer.1.LayerNorm.gamma"));
    let out = renamed.into_iter().map(|(n, t)| (n, weights::safetensors::OutTensor::F32 { shape: t.shape, data: t.data })).collect();
    let bytes = weights::safetensors::write(out).unwrap();
    let (_, model) = weights::esm::from_hub(TINY_CONFIG, &bytes, &device(), Precision::F32).unwrap();
    assert_within("tiny transformers-5 names", &pollster::block_on(compare(&model, &device(), &fx, &["masked"])));
}

#[test]
fn larger_sizes_build_from_config_alone() {
    let sizes: serde_json::Value = serde_json::from_str(include_str!("reference/fixtures/sizes.json")).unwrap();
    for (name, entry) in sizes.as_object().unwrap() {
        let config = EsmConfig::from_json(&entry["config"].to_string()).unwrap();
        let model = EsmModel::load(&Vars::zeros(&device()), &config).unwrap();
        // transformers also counts the contact head (one weight per layer × head, one bias).
        let contact = config.num_hidden_layers * config.num_attention_heads + 1;
        assert_eq!(
            burn::module::Module::num_params(&model) + contact,
            entry["transformers_parameters"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(model.n_layers(), config.num_hidden_layers, "{name}");
        // The sizes plmscope knows by name are the hub's configs.
        let size = name.split('_').nth(2).unwrap();
        assert_eq!(EsmConfig::esm2(size).as_ref(), Some(&config), "{name}");
    }
    assert_eq!(EsmConfig::esm2("8M"), Some(EsmConfig::from_json(T6_CONFIG).unwrap()));
}

#[test]
fn self_check_fails_on_random_weights_and_names_what_is_off() {
    let check = pollster::block_on(plmscope::selfcheck::run(&t6_random(), &device())).expect("read back");
    assert!(!check.pass);
    assert_eq!(check.failures.len(), 12, "{:?}", check.failures);
    assert!(check.failures[0].starts_with("layer 1, residue 1, dim 0: "), "{}", check.failures[0]);
    assert!(check.failures[0].ends_with("where -0.33677 was expected"), "{}", check.failures[0]);
}
