//! ESM-2 (`EsmForMaskedLM` in transformers), one file per block, named as `modeling_esm.py`.

mod attention;
mod config;
mod embeddings;
mod layer;
mod lm_head;
mod model;

pub use attention::{EsmAttention, EsmSelfAttention, EsmSelfOutput};
pub use config::{ConfigError, EsmConfig};
pub use embeddings::EsmEmbeddings;
pub use layer::{EsmIntermediate, EsmLayer, EsmOutput};
pub use lm_head::EsmLMHead;
pub use model::{residue_rows, Activations, Batch, EsmModel};
