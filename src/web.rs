//! The wasm boundary: one exported object, async methods, serde objects out.
//!
//! The page's Web Worker owns one [`Plmscope`]; nothing else in the crate knows about
//! JavaScript.

use burn::prelude::*;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::alphabet;
use crate::embed::{self, ResiduePrediction};
use crate::esm::{EsmConfig, EsmModel};
use crate::weights::{self, random, Vars};

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The model on its device.
#[wasm_bindgen]
pub struct Plmscope {
    device: Device,
    backend: String,
    model: Option<(EsmConfig, EsmModel)>,
    random_weights: bool,
}

/// Which backends this build of the wasm holds.
#[wasm_bindgen(js_name = compiledBackends)]
pub fn compiled_backends() -> Vec<String> {
    let mut b = Vec::new();
    if cfg!(feature = "webgpu") {
        b.push("webgpu".to_string());
    }
    if cfg!(feature = "cpu") {
        b.push("cpu".to_string());
    }
    b
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo {
    backend: String,
    n_layers: usize,
    d_model: usize,
    n_heads: usize,
    random_weights: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordPredictions {
    header: String,
    sequence: String,
    residues: Vec<ResiduePrediction>,
}

#[wasm_bindgen]
impl Plmscope {
    /// `backend` is `"webgpu"` or `"cpu"`. WebGPU initialisation fails with an error when the
    /// browser has no adapter; the worker then falls back to the CPU build.
    pub async fn create(backend: String) -> Result<Plmscope, JsError> {
        let device = match backend.as_str() {
            #[cfg(feature = "webgpu")]
            "webgpu" => Device::wgpu_options().init_async().await.map_err(|e| js_err(format!("WebGPU: {e}")))?,
            #[cfg(feature = "cpu")]
            "cpu" => Device::flex(),
            other => return Err(js_err(format!("backend \"{other}\" is not in this build (it has {:?})", compiled_backends()))),
        };
        Ok(Plmscope { device, backend, model: None, random_weights: false })
    }

    /// Loads a hub model: `config.json` text and `model.safetensors` bytes.
    #[wasm_bindgen(js_name = loadHub)]
    pub fn load_hub(&mut self, config_json: &str, model_safetensors: &[u8]) -> Result<JsValue, JsError> {
        self.model = Some(weights::esm::from_hub(config_json, model_safetensors, &self.device).map_err(js_err)?);
        self.random_weights = false;
        self.info()
    }

    /// Loads a fair-esm `.pt` checkpoint.
    #[wasm_bindgen(js_name = loadFairEsm)]
    pub fn load_fair_esm(&mut self, pt: &[u8], file_name: &str) -> Result<JsValue, JsError> {
        self.model = Some(weights::esm::from_fair_esm(pt, file_name, &self.device).map_err(js_err)?);
        self.random_weights = false;
        self.info()
    }

    /// Builds esm2_t6_8M with deterministic random weights (the offline demo): the page must say
    /// so.
    #[wasm_bindgen(js_name = loadRandom)]
    pub fn load_random(&mut self, seed: u64) -> Result<JsValue, JsError> {
        let config = EsmConfig::esm2_t6_8m();
        let model = EsmModel::load(&Vars::random(seed, &self.device), &config).map_err(js_err)?;
        self.model = Some((config, model));
        self.random_weights = true;
        self.info()
    }

    pub fn info(&self) -> Result<JsValue, JsError> {
        let (config, _) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let info = ModelInfo {
            backend: self.backend.clone(),
            n_layers: config.num_hidden_layers,
            d_model: config.hidden_size,
            n_heads: config.num_attention_heads,
            random_weights: self.random_weights,
        };
        serde_wasm_bindgen::to_value(&info).map_err(js_err)
    }

    /// Per-residue predictions for every record of a FASTA text (or a bare sequence). Input
    /// errors name the record and the position.
    pub async fn predict(&self, fasta: String, top_k: usize) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let records = alphabet::parse_fasta(&fasta).map_err(js_err)?;
        let mut out = Vec::with_capacity(records.len());
        for record in &records {
            let o = embed::run_record(model, &record.tokens(), &self.device).await;
            out.push(RecordPredictions {
                header: record.header.clone(),
                sequence: record.sequence(),
                residues: embed::predictions(&o, top_k),
            });
        }
        serde_wasm_bindgen::to_value(&out).map_err(js_err)
    }
}
