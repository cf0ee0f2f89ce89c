//! The one format detector: which of a set of files plays which part (a model's config and
//! weights, an SAE's weights and SAELens cfg.json), judged by their contents, never by their
//! names. The page's dropped files, its hub downloads and the CLI's paths all come through here.
//!
//! A file is a torch `.pt` when it is a zip (`PK\x03\x04`), safetensors when its first 8 bytes give
//! the length of a JSON header that follows, and a config when it is a JSON object with the
//! config's fields. A safetensors file's part comes from its tensor names, so only the start of a
//! large file is needed: [`PREFIX`] bytes hold any real header.

use super::LoadError;
use super::sae::SaeSource;

/// Enough of a file's start to tell its part: a safetensors header (ESM-2 650M's is ≈ 50 KB), and
/// any config JSON whole.
pub const PREFIX: usize = 1 << 20;

/// A file as the user gave it: its name (for messages, and InterProt's k) and its bytes, or the
/// first [`PREFIX`] of them when only the parts are asked for.
#[derive(Clone, Copy)]
pub struct NamedFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

impl<'a> NamedFile<'a> {
    /// Views of owned `(name, bytes)` files, as the page's and the CLI's loaders hold them.
    pub fn views(files: &'a [(String, Vec<u8>)]) -> Vec<NamedFile<'a>> {
        files.iter().map(|(name, bytes)| NamedFile { name, bytes }).collect()
    }
}

/// The files of a model: indices into the list given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFiles {
    /// A hub folder: `config.json` and `model.safetensors`.
    Hub { config: usize, weights: usize },
    /// A fair-esm checkpoint.
    FairEsm { pt: usize },
}

/// The files of an SAE: indices into the list given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaeFiles {
    /// A torch state dict (InterPLM or InterProt).
    Pt { file: usize },
    /// A safetensors state dict without a cfg.json (InterProt).
    Safetensors { file: usize },
    /// A SAELens folder: `cfg.json` and `sae_weights.safetensors`.
    SaeLens { cfg: usize, weights: usize },
}

#[derive(Debug)]
enum Kind {
    Zip,
    /// Tensor names, when the header was within the bytes given.
    Safetensors(Option<Vec<String>>),
    Json(serde_json::Map<String, serde_json::Value>),
    Other,
}

fn kind(bytes: &[u8]) -> Kind {
    if bytes.starts_with(b"PK\x03\x04") {
        return Kind::Zip;
    }
    if bytes.len() > 8 && bytes[8] == b'{' {
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let names = usize::try_from(n).ok().and_then(|n| bytes.get(8..8usize.checked_add(n)?)).and_then(|header| {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
            Some(map.into_iter().map(|(k, _)| k).filter(|k| k != "__metadata__").collect())
        });
        return Kind::Safetensors(names);
    }
    let text = bytes.trim_ascii_start();
    if text.starts_with(b"{") {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(bytes) {
            return Kind::Json(map);
        }
    }
    Kind::Other
}

fn has(map: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> bool {
    keys.iter().all(|k| map.contains_key(*k))
}

fn names(files: &[NamedFile<'_>], which: &[usize]) -> String {
    which.iter().map(|&i| files[i].name).collect::<Vec<_>>().join(", ")
}

fn unrecognised(files: &[NamedFile<'_>], what: &'static str, expected: &'static str) -> LoadError {
    let all: Vec<usize> = (0..files.len()).collect();
    LoadError::Unrecognised { files: if files.is_empty() { "no files".into() } else { names(files, &all) }, what, expected }
}

/// At most one file of a part, or an error naming them all.
fn one(files: &[NamedFile<'_>], of: &[usize], part: &str) -> Result<Option<usize>, LoadError> {
    match of {
        [] => Ok(None),
        [i] => Ok(Some(*i)),
        many => Err(LoadError::Ambiguous { files: names(files, many), part: part.to_string() }),
    }
}

const MODEL_EXPECTED: &str = "a hub model folder (config.json with model.safetensors) or one fair-esm .pt file";
const SAE_EXPECTED: &str = "an SAE file (InterPLM or InterProt .pt, InterProt .safetensors) or a SAELens folder (cfg.json with sae_weights.safetensors)";

/// Which files make a model.
pub fn model_files(files: &[NamedFile<'_>]) -> Result<ModelFiles, LoadError> {
    let kinds: Vec<Kind> = files.iter().map(|f| kind(f.bytes)).collect();
    let pick = |f: &dyn Fn(&Kind) -> bool| -> Vec<usize> { (0..kinds.len()).filter(|&i| f(&kinds[i])).collect() };
    let configs = pick(&|k| matches!(k, Kind::Json(m) if has(m, &["hidden_size", "num_hidden_layers"])));
    let weights = pick(&|k| matches!(k, Kind::Safetensors(Some(n)) if n.iter().any(|n| n.ends_with("word_embeddings.weight") || n.ends_with("embed_tokens.weight"))));
    let zips = pick(&|k| matches!(k, Kind::Zip));
    if let Some(weights) = one(files, &weights, "model weights")? {
        let config = one(files, &configs, "model config")?
            .ok_or_else(|| LoadError::Incomplete { file: files[weights].name.to_string(), needs: "its config.json (hidden_size, num_hidden_layers, …)" })?;
        return Ok(ModelFiles::Hub { config, weights });
    }
    match one(files, &zips, "torch checkpoint")? {
        Some(pt) => Ok(ModelFiles::FairEsm { pt }),
        None => Err(unrecognised(files, "a model", MODEL_EXPECTED)),
    }
}

/// Which files make an SAE.
pub fn sae_files(files: &[NamedFile<'_>]) -> Result<SaeFiles, LoadError> {
    let kinds: Vec<Kind> = files.iter().map(|f| kind(f.bytes)).collect();
    let pick = |f: &dyn Fn(&Kind) -> bool| -> Vec<usize> { (0..kinds.len()).filter(|&i| f(&kinds[i])).collect() };
    let cfgs = pick(&|k| matches!(k, Kind::Json(m) if has(m, &["d_in", "d_sae"])));
    let saelens = pick(&|k| matches!(k, Kind::Safetensors(Some(n)) if n.iter().any(|n| n == "W_enc")));
    let state = pick(&|k| matches!(k, Kind::Safetensors(Some(n)) if n.iter().any(|n| n == "w_enc" || n == "encoder.weight")));
    let zips = pick(&|k| matches!(k, Kind::Zip));
    if let Some(weights) = one(files, &saelens, "SAELens weights")? {
        let cfg = one(files, &cfgs, "SAELens cfg.json")?
            .ok_or_else(|| LoadError::Incomplete { file: files[weights].name.to_string(), needs: "its SAELens cfg.json (d_in, d_sae, architecture)" })?;
        return Ok(SaeFiles::SaeLens { cfg, weights });
    }
    if let Some(file) = one(files, &state, "SAE weights")? {
        return Ok(SaeFiles::Safetensors { file });
    }
    match one(files, &zips, "torch checkpoint")? {
        Some(file) => Ok(SaeFiles::Pt { file }),
        None => Err(unrecognised(files, "an SAE", SAE_EXPECTED)),
    }
}

/// The text of a config file (JSON, so UTF-8 when [`model_files`] or [`sae_files`] chose it).
pub fn text<'a>(file: &NamedFile<'a>) -> Result<&'a str, LoadError> {
    std::str::from_utf8(file.bytes)
        .map_err(|e| LoadError::Format { source_name: file.name.to_string(), format: "JSON", detail: e.to_string() })
}

impl SaeFiles {
    /// The loader's view of the chosen files, whole. `k` for a top-k SAE whose file name does
    /// not give it.
    pub fn source<'a>(self, files: &[NamedFile<'a>], k: Option<usize>) -> Result<SaeSource<'a>, LoadError> {
        Ok(match self {
            SaeFiles::Pt { file } => SaeSource::Pt { bytes: files[file].bytes, name: files[file].name, k },
            SaeFiles::Safetensors { file } => SaeSource::Safetensors { bytes: files[file].bytes, name: files[file].name, k },
            SaeFiles::SaeLens { cfg, weights } => SaeSource::SaeLens { cfg_json: text(&files[cfg])?, weights: files[weights].bytes },
        })
    }

    pub fn indices(self) -> Vec<usize> {
        match self {
            SaeFiles::Pt { file } | SaeFiles::Safetensors { file } => vec![file],
            SaeFiles::SaeLens { cfg, weights } => vec![cfg, weights],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safetensors(names: &[&str]) -> Vec<u8> {
        let header: serde_json::Map<_, _> =
            names.iter().map(|n| (n.to_string(), serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}))).collect();
        let header = serde_json::to_vec(&header).unwrap();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header);
        out.extend([0u8; 4]);
        out
    }

    #[test]
    fn parts_come_from_contents_not_names() {
        let weights = safetensors(&["esm.embeddings.word_embeddings.weight"]);
        let config = br#"{"hidden_size": 320, "num_hidden_layers": 6}"#;
        let tokenizer = br#"{"model_max_length": 1024}"#;
        let files = [
            NamedFile { name: "tokenizer_config.json", bytes: tokenizer },
            NamedFile { name: "weights.bin", bytes: &weights },
            NamedFile { name: "a.json", bytes: config },
        ];
        assert_eq!(model_files(&files).unwrap(), ModelFiles::Hub { config: 2, weights: 1 });
        let pt = b"PK\x03\x04rest";
        assert_eq!(model_files(&[NamedFile { name: "m.ckpt", bytes: pt }]).unwrap(), ModelFiles::FairEsm { pt: 0 });
        assert_eq!(sae_files(&[NamedFile { name: "x", bytes: pt }]).unwrap(), SaeFiles::Pt { file: 0 });

        let sparsity = safetensors(&["sparsity"]);
        let w = safetensors(&["W_enc", "W_dec", "b_enc", "b_dec"]);
        let cfg = br#"{"d_in": 64, "d_sae": 128, "architecture": "standard"}"#;
        let folder = [
            NamedFile { name: "sparsity.safetensors", bytes: &sparsity },
            NamedFile { name: "cfg.json", bytes: cfg },
            NamedFile { name: "sae_weights.safetensors", bytes: &w },
        ];
        assert_eq!(sae_files(&folder).unwrap(), SaeFiles::SaeLens { cfg: 1, weights: 2 });
        let interprot = safetensors(&["w_enc", "w_dec", "b_enc", "b_pre"]);
        assert_eq!(sae_files(&[NamedFile { name: "l1_k8.safetensors", bytes: &interprot }]).unwrap(), SaeFiles::Safetensors { file: 0 });
    }

    #[test]
    fn missing_and_doubled_parts_are_named() {
        let weights = safetensors(&["esm.embeddings.word_embeddings.weight"]);
        let err = model_files(&[NamedFile { name: "model.safetensors", bytes: &weights }]).unwrap_err().to_string();
        assert_eq!(err, "model.safetensors needs its config.json (hidden_size, num_hidden_layers, …) beside it");
        let err = model_files(&[NamedFile { name: "a.pt", bytes: b"PK\x03\x04" }, NamedFile { name: "b.pt", bytes: b"PK\x03\x04" }]).unwrap_err().to_string();
        assert_eq!(err, "a.pt, b.pt: several files could be the torch checkpoint; give one");
        let err = sae_files(&[NamedFile { name: "notes.txt", bytes: b"hello" }]).unwrap_err().to_string();
        assert!(err.starts_with("notes.txt: not an SAE plmscope can read; expected an SAE file"), "{err}");
        let w = safetensors(&["W_enc"]);
        let err = sae_files(&[NamedFile { name: "sae_weights.safetensors", bytes: &w }]).unwrap_err().to_string();
        assert_eq!(err, "sae_weights.safetensors needs its SAELens cfg.json (d_in, d_sae, architecture) beside it");
    }
}
