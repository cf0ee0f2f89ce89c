//! The safetensors reader and the model's loader (`Vars`: names, shapes, dtypes, finiteness) on
//! any bytes, as a hub `model.safetensors` beside the tiny test model's config.json.
#![no_main]
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = include_str!("../../tests/reference/fixtures/tiny/config.json");

fuzz_target!(|data: &[u8]| {
    let device = burn::tensor::Device::flex();
    let _ = plmscope::weights::esm::from_hub(CONFIG, data, &device, plmscope::device::Precision::F32);
});
