//! The model configuration, read from a hub `config.json` (unknown fields are ignored).

use serde::{Deserialize, Serialize};

/// What changes between ESM-2 sizes. Field names are the hub's `config.json` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsmConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_true")]
    pub token_dropout: bool,
    #[serde(default)]
    pub emb_layer_norm_before: bool,
    #[serde(default = "default_rotary")]
    pub position_embedding_type: String,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_mask")]
    pub mask_token_id: u32,
    #[serde(default = "default_pad")]
    pub pad_token_id: u32,
    #[serde(default = "default_gelu")]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_max_positions() -> usize {
    1026
}
fn default_true() -> bool {
    true
}
fn default_rotary() -> String {
    "rotary".into()
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_mask() -> u32 {
    crate::alphabet::MASK
}
fn default_pad() -> u32 {
    crate::alphabet::PAD
}
fn default_gelu() -> String {
    "gelu".into()
}

/// A `config.json` that plmscope cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config.json is not valid JSON for an ESM model: {0}")]
    Json(#[from] serde_json::Error),
    #[error("config.json: {0}")]
    Unsupported(String),
}

impl EsmConfig {
    /// Parses and validates a hub `config.json`.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let c: EsmConfig = serde_json::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    /// facebook/esm2_t6_8M_UR50D.
    pub fn esm2_t6_8m() -> Self {
        Self {
            vocab_size: 33,
            hidden_size: 320,
            num_hidden_layers: 6,
            num_attention_heads: 20,
            intermediate_size: 1280,
            layer_norm_eps: 1e-5,
            max_position_embeddings: 1026,
            token_dropout: true,
            emb_layer_norm_before: false,
            position_embedding_type: "rotary".into(),
            rope_theta: 10_000.0,
            mask_token_id: crate::alphabet::MASK,
            pad_token_id: crate::alphabet::PAD,
            hidden_act: "gelu".into(),
        }
    }

    /// The hub's config of an ESM-2 size by its parameter count ("8M", "35M", "150M", "650M",
    /// "3B", "15B"): `facebook/esm2_t{layers}_{size}_UR50D`. They differ only in these four counts.
    pub fn esm2(size: &str) -> Option<Self> {
        let (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size) = match size {
            "8M" => (320, 6, 20, 1280),
            "35M" => (480, 12, 20, 1920),
            "150M" => (640, 30, 20, 2560),
            "650M" => (1280, 33, 20, 5120),
            "3B" => (2560, 36, 40, 10240),
            "15B" => (5120, 48, 40, 20480),
            _ => return None,
        };
        Some(Self { hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, ..Self::esm2_t6_8m() })
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The dense layers' weights (query, key, value, output, fc1 and fc2 of every block and the
    /// LM head's dense): nearly all of the model, and all that [`crate::device::Precision`] changes.
    pub fn dense_weights(&self) -> usize {
        let (d, f) = (self.hidden_size, self.intermediate_size);
        self.num_hidden_layers * (4 * d * d + 2 * d * f) + d * d
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Unsupported(m));
        if self.position_embedding_type != "rotary" {
            return bad(format!(
                "position_embedding_type \"{}\" is not supported (ESM-2 uses \"rotary\"; ESM-1b's absolute positions are not ported)",
                self.position_embedding_type
            ));
        }
        if self.emb_layer_norm_before {
            return bad("emb_layer_norm_before = true is an ESM-1b setting; ESM-2 has none".into());
        }
        if self.hidden_act != "gelu" {
            return bad(format!("hidden_act \"{}\" is not supported (ESM-2 uses exact \"gelu\")", self.hidden_act));
        }
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!("head size {} is odd; rotary embeddings need an even head size", self.head_dim()));
        }
        if self.vocab_size != crate::alphabet::VOCAB.len() {
            return bad(format!("vocab_size {} is not the ESM alphabet's 33", self.vocab_size));
        }
        Ok(())
    }
}
