//! ESM-2 checkpoints in the two formats users have: a hub folder (`config.json` +
//! `model.safetensors`) and a fair-esm `.pt`.

use std::rc::Rc;

use burn::prelude::*;

use super::pickle::{TensorRef, Value};
use super::pt::{PtSink, PtStream};
use super::stream::SafetensorsStream;
use super::{rename, DeviceStore, LoadError, RawTensor};
use crate::device::Precision;
use crate::esm::{EsmConfig, EsmModel};

/// A hub model: `config.json` text and `model.safetensors` bytes (hub or transformers-5 names),
/// its dense layers' weights in `precision`.
pub fn from_hub(config_json: &str, model_safetensors: &[u8], device: &Device, precision: Precision) -> Result<(EsmConfig, EsmModel), LoadError> {
    let mut stream = HubStream::new(EsmConfig::from_json(config_json)?, device, precision);
    stream.push(model_safetensors)?;
    stream.finish()
}

/// A hub model whose `model.safetensors` arrives in chunks: each tensor goes to the device as
/// soon as its bytes are in, so the host never holds more than the tensor being filled.
pub struct HubStream {
    config: EsmConfig,
    stream: SafetensorsStream,
    store: DeviceStore,
}

impl HubStream {
    pub fn new(config: EsmConfig, device: &Device, precision: Precision) -> Self {
        Self { config, stream: SafetensorsStream::new("model.safetensors"), store: DeviceStore::new(device, precision) }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), LoadError> {
        let store = &mut self.store;
        self.stream.push(chunk, &mut |name, t| match rename::transformers_name(&name) {
            Some(hub) => {
                let linear = is_linear_weight(&hub, &t.shape);
                store.insert(hub, t, linear)
            }
            None => Ok(()),
        })
    }

    /// The file's length, once its header is in.
    pub fn expected_len(&self) -> Option<usize> {
        self.stream.expected_len()
    }

    pub fn finish(self) -> Result<(EsmConfig, EsmModel), LoadError> {
        self.stream.finish()?;
        let model = EsmModel::load(&self.store.into_vars("model.safetensors"), &self.config)?;
        Ok((self.config, model))
    }
}

/// Whether ESM-2 reads hub tensor `name` as a torch `nn.Linear` weight ([`super::Vars::linear`]): every
/// matrix but the token embeddings. `Vars` refuses to build a module from a tensor stored in the
/// other layout, so this rule cannot drift from the modules unnoticed.
fn is_linear_weight(name: &str, shape: &[usize]) -> bool {
    shape.len() == 2 && name.ends_with(".weight") && !name.ends_with("word_embeddings.weight")
}

/// A fair-esm ESM-2 checkpoint (`{"model": state_dict, "cfg": {"model": Namespace}}`), its dense
/// layers' weights in `precision`.
pub fn from_fair_esm(pt: &[u8], source_name: &str, device: &Device, precision: Precision) -> Result<(EsmConfig, EsmModel), LoadError> {
    let mut stream = FairEsmStream::new(source_name, device, Box::new(move |_| Ok(precision)));
    stream.push(pt)?;
    stream.finish()
}

/// Chooses the precision of a model once its configuration is known, or refuses it (one that
/// does not fit the device).
pub type Decide = Box<dyn FnMut(&EsmConfig) -> Result<Precision, LoadError>>;

/// A fair-esm `.pt` arriving in chunks. Its configuration is in its pickle, which comes first:
/// the precision is chosen then, and each tensor goes to the device as soon as its storage is in.
pub struct FairEsmStream {
    stream: PtStream,
    sink: FairEsmSink,
}

struct FairEsmSink {
    source_name: String,
    device: Device,
    decide: Decide,
    /// Once the pickle is in.
    loaded: Option<(EsmConfig, DeviceStore)>,
}

impl FairEsmStream {
    pub fn new(source_name: &str, device: &Device, decide: Decide) -> Self {
        let sink = FairEsmSink { source_name: source_name.to_string(), device: device.clone(), decide, loaded: None };
        Self { stream: PtStream::new(source_name), sink }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), LoadError> {
        self.stream.push(chunk, &mut self.sink)
    }

    pub fn finish(self) -> Result<(EsmConfig, EsmModel), LoadError> {
        self.stream.finish()?;
        let (config, store) = self.sink.loaded.expect("a .pt read to its end had its pickle read");
        let model = EsmModel::load(&store.into_vars(&self.sink.source_name), &config)?;
        Ok((config, model))
    }
}

impl PtSink for FairEsmSink {
    fn pickle(&mut self, root: Value) -> Result<Vec<(String, Rc<TensorRef>)>, LoadError> {
        let (config, tensors) = read_fair_esm(root, &self.source_name)?;
        let precision = (self.decide)(&config)?;
        self.loaded = Some((config, DeviceStore::new(&self.device, precision)));
        Ok(tensors)
    }

    fn tensor(&mut self, name: String, tensor: RawTensor) -> Result<(), LoadError> {
        let linear = is_linear_weight(&name, &tensor.shape);
        let (_, store) = self.loaded.as_mut().expect("tensors come after the pickle");
        store.insert(name, tensor, linear)
    }
}

/// The configuration and the tensors (in hub naming) of a fair-esm checkpoint's pickle: the
/// configuration from `cfg.model` (or the `args` of older ones), the sizes it leaves out from the
/// tensors' shapes.
fn read_fair_esm(mut root: Value, source_name: &str) -> Result<(EsmConfig, Vec<(String, Rc<TensorRef>)>), LoadError> {
    let bad = |detail: &str| LoadError::Format { source_name: source_name.to_string(), format: "fair-esm checkpoint", detail: detail.to_string() };
    let state = root.remove("model").ok_or_else(|| bad("no \"model\" state dict at the top level"))?;
    let tensors: Vec<_> = state.tensor_refs().into_iter().filter_map(|(name, t)| Some((rename::fair_esm_name(&name)?, t))).collect();
    let cfg = root.get("cfg").and_then(|c| c.get("model")).or_else(|| root.get("args"));
    let int = |key: &str| cfg.and_then(|c| c.get(key)).and_then(Value::as_int).map(|v| v as usize);
    let has = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let embed = has("esm.embeddings.word_embeddings.weight")
        .ok_or_else(|| LoadError::Missing { name: "embed_tokens.weight".into(), source_name: source_name.to_string() })?;
    let hidden = embed.shape.get(1).copied().unwrap_or(0);
    let layers = (0..).take_while(|i| has(&format!("esm.encoder.layer.{i}.LayerNorm.weight")).is_some()).count();
    let heads = int("encoder_attention_heads").ok_or_else(|| bad("cfg.model.encoder_attention_heads is missing; the head count cannot be read from the tensors"))?;
    let mut config = EsmConfig::esm2_t6_8m();
    config.hidden_size = int("encoder_embed_dim").unwrap_or(hidden);
    config.num_hidden_layers = int("encoder_layers").unwrap_or(layers);
    config.num_attention_heads = heads;
    config.intermediate_size = int("encoder_ffn_embed_dim").unwrap_or(4 * config.hidden_size);
    config.token_dropout = cfg.and_then(|c| c.get("token_dropout")).and_then(Value::as_int).is_none_or(|v| v != 0);
    let config = EsmConfig::from_json(&serde_json::to_string(&config).expect("config serialises"))?;
    Ok((config, tensors))
}

/// A model's weights arriving in chunks, in either format.
pub enum ModelStream {
    Hub(HubStream),
    FairEsm(FairEsmStream),
}

impl ModelStream {
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), LoadError> {
        match self {
            ModelStream::Hub(s) => s.push(chunk),
            ModelStream::FairEsm(s) => s.push(chunk),
        }
    }

    /// The file's length, where its start says it (a safetensors header does; a zip does not).
    pub fn expected_len(&self) -> Option<usize> {
        match self {
            ModelStream::Hub(s) => s.expected_len(),
            ModelStream::FairEsm(_) => None,
        }
    }

    pub fn finish(self) -> Result<(EsmConfig, EsmModel), LoadError> {
        match self {
            ModelStream::Hub(s) => s.finish(),
            ModelStream::FairEsm(s) => s.finish(),
        }
    }
}
