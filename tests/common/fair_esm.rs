//! fair-esm `.pt` checkpoints written as `torch.save` writes them (a zip of `archive/data.pkl`, a
//! protocol-2 pickle, and one raw little-endian storage per tensor), so that a model of any width
//! can be read through the fair-esm path without torch or a committed file of that size.

use std::io::Write;

use plmscope::esm::{EsmConfig, EsmModel};
use plmscope::weights::TensorMap;

/// The hub name of an ESM-2 tensor as fair-esm's `ESM2` state dict names it, with the
/// `encoder.sentence_encoder.` / `encoder.` prefixes of the published checkpoints.
fn fair_esm_name(hub: &str) -> String {
    if let Some(rest) = hub.strip_prefix("lm_head.") {
        return format!("encoder.lm_head.{rest}");
    }
    let table = [
        ("esm.embeddings.word_embeddings.", "embed_tokens."),
        ("esm.encoder.emb_layer_norm_after.", "emb_layer_norm_after."),
        ("esm.contact_head.", "contact_head."),
        ("esm.encoder.layer.", "layers."),
        ("attention.self.query.", "self_attn.q_proj."),
        ("attention.self.key.", "self_attn.k_proj."),
        ("attention.self.value.", "self_attn.v_proj."),
        ("attention.output.dense.", "self_attn.out_proj."),
        ("attention.LayerNorm.", "self_attn_layer_norm."),
        ("intermediate.dense.", "fc1."),
        ("output.dense.", "fc2."),
        (".LayerNorm.", ".final_layer_norm."),
    ];
    let name = table.iter().fold(hub.to_string(), |n, (from, to)| n.replace(from, to));
    format!("encoder.sentence_encoder.{name}")
}

/// Pickle protocol 2, the opcodes `torch.save` uses for a state dict and an `argparse.Namespace`.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.op(b"X").op(&(s.len() as u32).to_le_bytes()).op(s.as_bytes())
    }
    fn int(&mut self, v: usize) -> &mut Self {
        self.op(b"J").op(&(v as i32).to_le_bytes())
    }
    fn tuple(&mut self, items: &[usize]) -> &mut Self {
        self.op(b"(");
        items.iter().for_each(|&v| {
            self.int(v);
        });
        self.op(b"t")
    }
    /// `_rebuild_tensor_v2(storage key, 0, shape, contiguous stride, False, OrderedDict())`.
    fn tensor(&mut self, key: usize, shape: &[usize]) -> &mut Self {
        let stride: Vec<usize> = (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect();
        self.global("torch._utils", "_rebuild_tensor_v2").op(b"(");
        self.op(b"(").str("storage").global("torch", "FloatStorage").str(&key.to_string()).str("cpu").int(shape.iter().product()).op(b"tQ");
        self.int(0).tuple(shape).tuple(&stride).op(b"\x89").global("collections", "OrderedDict").op(b")R");
        self.op(b"tR")
    }
}

/// The random checkpoint with `seed` of the model `config_json` describes (the same bits as
/// [`super::random_hub_safetensors`]), as a fair-esm `.pt`:
/// `{"model": OrderedDict(name → tensor), "cfg": {"model": Namespace(encoder_*)}}`.
pub fn random_fair_esm_pt(config_json: &str, seed: u64) -> Vec<u8> {
    let config = EsmConfig::from_json(config_json).unwrap();
    let vars = plmscope::weights::Vars::random(seed, &burn::tensor::Device::flex());
    EsmModel::load(&vars, &config).unwrap();
    let tensors: TensorMap = vars.drawn();
    let mut p = Pickle(b"\x80\x02".to_vec());
    p.op(b"}(").str("model").global("collections", "OrderedDict").op(b")R(");
    for (key, (name, t)) in tensors.iter().enumerate() {
        p.str(&fair_esm_name(name)).tensor(key, &t.shape);
    }
    p.op(b"u").str("cfg").op(b"}").str("model").global("argparse", "Namespace").op(b")R}(");
    for (k, v) in [
        ("encoder_layers", config.num_hidden_layers),
        ("encoder_embed_dim", config.hidden_size),
        ("encoder_ffn_embed_dim", config.intermediate_size),
        ("encoder_attention_heads", config.num_attention_heads),
        ("token_dropout", 1),
    ] {
        p.str(k).int(v);
    }
    p.op(b"ubsu.");
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&p.0).unwrap();
    for (key, t) in tensors.values().enumerate() {
        zip.start_file(format!("archive/data/{key}"), stored).unwrap();
        zip.write_all(&t.data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    }
    zip.finish().unwrap();
    buf.into_inner()
}
