//! SAE files, detected from their contents, with one rename table per format onto the canonical
//! form of [`crate::sae::Sae`] (`W_enc [d_in, d_sae]`, `b_enc`, `W_dec [d_sae, d_in]`, `b_dec`):
//!
//! | canonical | InterPLM `.pt` (state dict)        | SAELens `sae_weights.safetensors` | InterProt (`.pt` or `.safetensors`) |
//! |-----------|------------------------------------|-----------------------------------|-------------------------------------|
//! | W_enc     | `encoder.weight`ᵀ `[d_sae, d_in]`  | `W_enc`                           | `w_enc`                             |
//! | b_enc     | `encoder.bias`                     | `b_enc`                           | `b_enc`                             |
//! | W_dec     | `decoder.weight`ᵀ `[d_in, d_sae]`  | `W_dec`                           | `w_dec`                             |
//! | b_dec     | `bias`                             | `b_dec`                           | `b_pre`                             |
//!
//! InterPLM adds `activation_rescale_factor` and `normalize_to_sqrt_d`; SAELens' `cfg.json` gives
//! the architecture (`standard`, `topk` with `k`, `jumprelu` with a `threshold` tensor) and the
//! input normalisation; InterProt normalises each token and takes k from its file name (`_k64`).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::safetensors::OutTensor;
use super::{pt, safetensors, LoadError, TensorMap, Vars};
use crate::device::{read_f32, DeviceError};
use crate::sae::{Activation, InputNorm, Sae, SaeFormat};

/// An InterPLM-shaped ReLU SAE with deterministic random weights (the offline demo), read
/// through the same InterPLM path as a real file. Encoder biases sit near −2.5 so that, as in a
/// trained SAE, only a few percent of features fire on a token.
pub fn random_interplm(d_in: usize, d_sae: usize, seed: u64, device: &Device) -> Result<Sae, LoadError> {
    use super::random::tensor;
    let mut tensors = TensorMap::new();
    tensors.insert("encoder.weight".into(), tensor("encoder.weight", &[d_sae, d_in], seed));
    let mut b_enc = tensor("encoder.bias", &[d_sae], seed);
    b_enc.data.iter_mut().for_each(|b| *b -= 2.5);
    tensors.insert("encoder.bias".into(), b_enc);
    tensors.insert("decoder.weight".into(), tensor("decoder.weight", &[d_in, d_sae], seed));
    tensors.insert("bias".into(), tensor("bias", &[d_in], seed));
    interplm(tensors, "random demo SAE", d_in, device)
}

/// An SAE as the user has it.
#[derive(Clone, Copy)]
pub enum SaeSource<'a> {
    /// A torch `.pt` (InterPLM or InterProt state dict). `k` is needed for InterProt only; when
    /// `None` it is read from the file name.
    Pt { bytes: &'a [u8], name: &'a str, k: Option<usize> },
    /// A `.safetensors` file without a cfg.json (InterProt).
    Safetensors { bytes: &'a [u8], name: &'a str, k: Option<usize> },
    /// A SAELens folder.
    SaeLens { cfg_json: &'a str, weights: &'a [u8] },
}

#[derive(Deserialize)]
struct SaeLensCfg {
    architecture: Option<String>,
    d_in: usize,
    d_sae: usize,
    #[serde(default)]
    apply_b_dec_to_input: bool,
    #[serde(default)]
    normalize_activations: Option<String>,
    #[serde(default)]
    k: Option<usize>,
}

/// Reads an SAE for a model whose residual stream has `d_model` dimensions.
pub fn load(source: SaeSource<'_>, d_model: usize, device: &Device) -> Result<Sae, LoadError> {
    let sae = match source {
        SaeSource::Pt { bytes, name, k } => {
            let tensors = pt::state_dict(bytes, name)?;
            from_state_dict(tensors, name, k, d_model, device)?
        }
        SaeSource::Safetensors { bytes, name, k } => {
            let tensors = safetensors::read(bytes, name)?;
            if tensors.contains_key("W_enc") {
                return Err(config_err(name, "this is a SAELens weights file: load it together with its cfg.json"));
            }
            from_state_dict(tensors, name, k, d_model, device)?
        }
        SaeSource::SaeLens { cfg_json, weights } => saelens(cfg_json, weights, d_model, device)?,
    };
    Ok(sae)
}

fn config_err(source_name: &str, detail: impl Into<String>) -> LoadError {
    LoadError::SaeConfig { source_name: source_name.to_string(), detail: detail.into() }
}

/// `d_in` must be the model's width: an SAE of another model reads nothing meaningful. An SAE
/// needs at least one feature.
fn check_d_in(source_name: &str, d_in: usize, d_model: usize, d_sae: usize) -> Result<(), LoadError> {
    if d_sae == 0 {
        return Err(config_err(source_name, "the SAE has no features (d_sae = 0)"));
    }
    if d_in != d_model {
        return Err(config_err(
            source_name,
            format!("the SAE reads vectors of d_in = {d_in}, but this model's residual stream has d_model = {d_model}: it was trained on another model"),
        ));
    }
    Ok(())
}

fn shape_of(tensors: &TensorMap, name: &str, source_name: &str) -> Result<Vec<usize>, LoadError> {
    tensors
        .get(name)
        .map(|t| t.shape.clone())
        .ok_or_else(|| LoadError::Missing { name: name.to_string(), source_name: source_name.to_string() })
}

fn from_state_dict(tensors: TensorMap, name: &str, k: Option<usize>, d_model: usize, device: &Device) -> Result<Sae, LoadError> {
    if tensors.contains_key("encoder.weight") {
        interplm(tensors, name, d_model, device)
    } else if tensors.contains_key("w_enc") {
        interprot(tensors, name, k, d_model, device)
    } else {
        Err(config_err(
            name,
            "not an SAE plmscope knows: expected InterPLM tensors (encoder.weight, decoder.weight, bias) or InterProt tensors (w_enc, w_dec, b_enc, b_pre)",
        ))
    }
}

fn interplm(tensors: TensorMap, name: &str, d_model: usize, device: &Device) -> Result<Sae, LoadError> {
    let [d_sae, d_in] = match shape_of(&tensors, "encoder.weight", name)?[..] {
        [a, b] => [a, b],
        ref other => return Err(LoadError::Shape { name: "encoder.weight".into(), expected: vec![0, d_model], found: other.to_vec() }),
    };
    check_d_in(name, d_in, d_model, d_sae)?;
    let sqrt_d = tensors.get("normalize_to_sqrt_d").map(|t| t.data.first().copied().unwrap_or(0.0) != 0.0).unwrap_or(false);
    let has_rescale = tensors.contains_key("activation_rescale_factor");
    let v = Vars::from_map(tensors, name, device);
    Ok(Sae {
        w_enc: v.tensor_transposed("encoder.weight", [d_sae, d_in])?,
        b_enc: v.tensor("encoder.bias", [d_sae])?,
        w_dec: v.tensor_transposed("decoder.weight", [d_in, d_sae])?,
        b_dec: v.tensor("bias", [d_in])?,
        apply_b_dec_to_input: true,
        activation: Activation::Relu,
        norm: if sqrt_d { InputNorm::SqrtD } else { InputNorm::None },
        rescale: if has_rescale { Some(v.tensor("activation_rescale_factor", [d_sae])?) } else { None },
        format: SaeFormat::InterPlm,
        d_in,
        d_sae,
    })
}

/// `k` from an InterProt file name such as `esm2_plm1280_l24_sae4096_k64_auxk640.pt`.
fn k_from_name(name: &str) -> Option<usize> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.split(['_', '.', '-']).find_map(|part| part.strip_prefix('k').and_then(|n| n.parse().ok()))
}

fn interprot(tensors: TensorMap, name: &str, k: Option<usize>, d_model: usize, device: &Device) -> Result<Sae, LoadError> {
    let [d_in, d_sae] = match shape_of(&tensors, "w_enc", name)?[..] {
        [a, b] => [a, b],
        ref other => return Err(LoadError::Shape { name: "w_enc".into(), expected: vec![d_model, 0], found: other.to_vec() }),
    };
    check_d_in(name, d_in, d_model, d_sae)?;
    let k = k.or_else(|| k_from_name(name)).ok_or_else(|| {
        config_err(name, "a top-k SAE needs its k: name the file as InterProt does (…_k64…) or give k")
    })?;
    if k == 0 || k > d_sae {
        return Err(config_err(name, format!("k = {k} is outside 1..={d_sae} (d_sae)")));
    }
    let v = Vars::from_map(tensors, name, device);
    Ok(Sae {
        w_enc: v.tensor("w_enc", [d_in, d_sae])?,
        b_enc: v.tensor("b_enc", [d_sae])?,
        w_dec: v.tensor("w_dec", [d_sae, d_in])?,
        b_dec: v.tensor("b_pre", [d_in])?,
        apply_b_dec_to_input: true,
        activation: Activation::TopK(k),
        norm: InputNorm::LayerNorm,
        rescale: None,
        format: SaeFormat::InterProt,
        d_in,
        d_sae,
    })
}

fn saelens(cfg_json: &str, weights: &[u8], d_model: usize, device: &Device) -> Result<Sae, LoadError> {
    let source = "cfg.json";
    let cfg: SaeLensCfg = serde_json::from_str(cfg_json).map_err(|e| config_err(source, format!("not a SAELens config: {e}")))?;
    check_d_in(source, cfg.d_in, d_model, cfg.d_sae)?;
    let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
    let tensors = safetensors::read(weights, "sae_weights.safetensors")?;
    let v = Vars::from_map(tensors, "sae_weights.safetensors", device);
    let architecture = cfg.architecture.as_deref().unwrap_or("standard");
    let activation = match architecture {
        "standard" => Activation::Relu,
        "topk" => {
            let k = cfg.k.ok_or_else(|| config_err(source, "architecture \"topk\" without k"))?;
            if k == 0 || k > d_sae {
                return Err(config_err(source, format!("k = {k} is outside 1..={d_sae} (d_sae)")));
            }
            Activation::TopK(k)
        }
        "jumprelu" => Activation::JumpRelu(v.tensor("threshold", [d_sae])?),
        other => return Err(config_err(source, format!("architecture \"{other}\" is not supported (standard, topk, jumprelu are)"))),
    };
    let norm = match cfg.normalize_activations.as_deref().unwrap_or("none") {
        "none" => InputNorm::None,
        "layer_norm" => InputNorm::LayerNorm,
        other => {
            return Err(config_err(source, format!("normalize_activations \"{other}\" is not supported (none, layer_norm are)")));
        }
    };
    Ok(Sae {
        w_enc: v.tensor("W_enc", [d_in, d_sae])?,
        b_enc: v.tensor("b_enc", [d_sae])?,
        w_dec: v.tensor("W_dec", [d_sae, d_in])?,
        b_dec: v.tensor("b_dec", [d_in])?,
        apply_b_dec_to_input: cfg.apply_b_dec_to_input,
        activation,
        norm,
        rescale: None,
        format: SaeFormat::SaeLens,
        d_in,
        d_sae,
    })
}

/// Why an SAE could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("SAELens cannot express this SAE: {0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("writing sae_weights.safetensors: {0}")]
    Safetensors(String),
}

/// Where an SAE was trained, written into its `cfg.json` beside the architecture.
#[derive(Debug, Clone, Serialize)]
pub struct SaeLensOrigin {
    pub model_name: String,
    /// The hidden state read (1..=n_layers), as `hook_layer`.
    pub hook_layer: usize,
    /// Anything else worth keeping (the training options and final metrics), as `plmscope`.
    pub plmscope: serde_json::Value,
}

/// The two files of a SAELens folder, `cfg.json` text and `sae_weights.safetensors` bytes,
/// that [`load`] reads back into the same SAE (same table as above, read the other way).
pub async fn to_saelens(sae: &Sae, origin: &SaeLensOrigin) -> Result<(String, Vec<u8>), SaveError> {
    if sae.norm == InputNorm::SqrtD {
        return Err(SaveError::Unsupported("InterPLM's normalize_to_sqrt_d has no SAELens normalize_activations"));
    }
    if sae.rescale.is_some() {
        return Err(SaveError::Unsupported("InterPLM's activation_rescale_factor has no SAELens field"));
    }
    let (architecture, k) = match &sae.activation {
        Activation::Relu => ("standard", None),
        Activation::TopK(k) => ("topk", Some(*k)),
        Activation::JumpRelu(_) => ("jumprelu", None),
    };
    let (d_in, d_sae) = (sae.d_in, sae.d_sae);
    let mut tensors = vec![
        ("W_enc".to_string(), vec![d_in, d_sae], sae.w_enc.clone().reshape([d_in * d_sae])),
        ("b_enc".to_string(), vec![d_sae], sae.b_enc.clone()),
        ("W_dec".to_string(), vec![d_sae, d_in], sae.w_dec.clone().reshape([d_sae * d_in])),
        ("b_dec".to_string(), vec![d_in], sae.b_dec.clone()),
    ];
    if let Activation::JumpRelu(threshold) = &sae.activation {
        tensors.push(("threshold".to_string(), vec![d_sae], threshold.clone()));
    }
    let mut out = Vec::new();
    for (name, shape, t) in tensors {
        out.push((name, OutTensor::F32 { shape, data: read_f32(t).await? }));
    }
    let bytes = safetensors::write(out).map_err(|e| SaveError::Safetensors(e.to_string()))?;
    let cfg = serde_json::json!({
        "architecture": architecture,
        "d_in": d_in,
        "d_sae": d_sae,
        "k": k,
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": if sae.norm == InputNorm::LayerNorm { "layer_norm" } else { "none" },
        "dtype": "float32",
        "device": "cpu",
        "model_name": origin.model_name,
        "hook_name": format!("hidden_states.{}", origin.hook_layer),
        "hook_layer": origin.hook_layer,
        "plmscope": origin.plmscope,
    });
    Ok((serde_json::to_string_pretty(&cfg).expect("a JSON value serialises"), bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn k_is_read_from_interprot_file_names() {
        assert_eq!(super::k_from_name("esm2_plm1280_l24_sae4096_k64_auxk640.pt"), Some(64));
        assert_eq!(super::k_from_name("dir/interprot_tiny_l1_k8.safetensors"), Some(8));
        assert_eq!(super::k_from_name("sae.pt"), None);
    }
}
