//! plmscope: ESM-2 protein language models and sparse autoencoders on their residual stream,
//! on burn, natively and in the browser (WebGPU or CPU).
//!
//! ```no_run
//! use plmscope::{alphabet, esm::Batch, weights};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = burn::tensor::Device::flex();
//! let config = std::fs::read_to_string("esm2_t6_8M_UR50D/config.json")?;
//! let bytes = std::fs::read("esm2_t6_8M_UR50D/model.safetensors")?;
//! let (_config, model) = weights::esm::from_hub(&config, &bytes, &device, plmscope::device::Precision::F32)?;
//! let records = alphabet::parse_fasta(">p\nMKTAYIAKQR")?;
//! let out = model.forward(&Batch::new(&[records[0].tokens()], &device));
//! let logits = out.logits; // [1, 12, 33]
//! # Ok(()) }
//! ```
//!
//! Crate map: [`alphabet`] (tokens, FASTA, input errors) → [`weights`] (file formats, rename
//! tables, typed load errors) → [`esm`] (the model, one file per block) → [`embed`] (the
//! per-record results the CLI and the page share). [`sae`] holds sparse autoencoders in one
//! canonical form (their files are read in [`weights::sae`]); [`features`] encodes a sequence at
//! a layer and [`intervene`] edits features and re-runs the layers after it; [`analysis`] loops
//! over both (probes, circuits, concept association, steered generation); [`train`] trains
//! SAEs on harvested activations. `web` is the only wasm-bindgen module.

// The CPU build's kernels are WebAssembly SIMD (.cargo/config.toml), and a build without it still
// runs, only slower: no test would see it. RUSTFLAGS replaces the config's flags, which is how one
// package once lost it; so a wasm build without SIMD is refused here.
#[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
compile_error!("plmscope's wasm builds need WebAssembly SIMD: RUSTFLAGS replaces .cargo/config.toml's `-C target-feature=+simd128`, so say it there too (or pass flags with cargo --config)");

pub mod alphabet;
pub mod analysis;
#[cfg(feature = "bench")]
pub mod bench;
pub mod device;
pub mod embed;
pub mod esm;
pub mod features;
pub mod intervene;
pub mod kernels;
pub mod sae;
pub mod selfcheck;
pub mod session;
pub mod train;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod web;
