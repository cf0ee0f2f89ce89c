//! Every SAE format, through the one format detector as the page and the CLI reach it, for a
//! 64-wide model. The input is two files: a u32 (little-endian) length, the first file, then the
//! second (so a SAELens folder is its weights and its cfg.json).
#![no_main]
use libfuzzer_sys::fuzz_target;
use plmscope::weights::detect::{self, NamedFile};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<4>() else { return };
    let n = (u32::from_le_bytes(*head) as usize).min(rest.len());
    let (first, second) = rest.split_at(n);
    let files = [NamedFile { name: "a_k8.safetensors", bytes: first }, NamedFile { name: "b.pt", bytes: second }];
    let device = burn::tensor::Device::flex();
    if let Ok(parts) = detect::sae_files(&files) {
        if let Ok(source) = parts.source(&files, None) {
            let _ = plmscope::weights::sae::load(source, 64, &device);
        }
    }
    let _ = detect::model_files(&files);
});
