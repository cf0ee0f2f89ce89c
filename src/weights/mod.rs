//! Weight loading, apart from the math: file formats in, named f32 tensors out.
//!
//! Every format is read into a [`TensorMap`] keyed by the **hub names** of
//! `facebook/esm2_*` `model.safetensors`; each format has one rename table that maps its own names to
//! those. Blocks then take their tensors through [`Vars`] (a prefix-walking view, as candle's
//! `VarBuilder`), which checks every shape and returns a [`LoadError`] naming the tensor.

pub mod detect;
pub mod esm;
pub mod pickle;
pub mod pt;
pub mod random;
pub mod rename;
pub mod sae;
pub mod safetensors;
pub mod stream;
mod vars;

pub use vars::{DeviceStore, Vars};

use std::collections::BTreeMap;

/// A tensor as read from a file, its values converted to f32. `dtype` is the file's own name of
/// the stored type, kept so that a model asking for float weights can refuse an integer tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub dtype: String,
}

impl RawTensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self { shape, data, dtype: "F32".into() }
    }

    pub fn is_float(&self) -> bool {
        matches!(self.dtype.as_str(), "F32" | "F16" | "BF16" | "F64")
    }
}

/// Named tensors in hub naming.
pub type TensorMap = BTreeMap<String, RawTensor>;

/// Why a weight file could not be used. Every variant names the file or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("tensor `{name}` is missing from {source_name}")]
    Missing { name: String, source_name: String },
    #[error("tensor `{name}` has shape {found:?} where {expected:?} was expected")]
    Shape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor `{name}` has dtype {dtype}; the model needs floating-point weights (F32, F16, BF16)")]
    Dtype { name: String, dtype: String },
    #[error("{source_name} is not a readable {format} file: {detail}")]
    Format { source_name: String, format: &'static str, detail: String },
    #[error("{source_name}: refused to load `{global}`: a weights file may only rebuild tensors (a pickle naming anything else could run code)")]
    UnsafePickle { source_name: String, global: String },
    #[error("{0}")]
    Config(#[from] crate::esm::ConfigError),
    #[error("{source_name}: {detail}")]
    SaeConfig { source_name: String, detail: String },
    #[error("{files}: not {what} plmscope can read; expected {expected}")]
    Unrecognised { files: String, what: &'static str, expected: &'static str },
    #[error("{files}: several files could be the {part}; give one")]
    Ambiguous { files: String, part: String },
    #[error("tensor `{name}` holds {nan} NaN and {inf} infinite values of {total}: refused, as they would poison every result")]
    NonFinite { name: String, nan: usize, inf: usize, total: usize },
    #[error("{file} needs {needs} beside it")]
    Incomplete { file: String, needs: &'static str },
    #[error("this model needs one buffer of {:.1} MB for {what}, and this GPU binds at most {:.1} MB in one (its maxStorageBufferBindingSize, within maxBufferSize)", *.bytes as f64 / 1e6, *.limit as f64 / 1e6)]
    BufferLimit { what: &'static str, bytes: usize, limit: usize },
    #[error("tensor `{name}` could not be sent to the device: {detail}")]
    Device { name: String, detail: String },
}

/// Little-endian element types found in weight files, with their conversion to f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    F16,
    Bf16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::Bf16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    /// The safetensors spelling, used in messages whatever the file format.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "F64",
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
            Dtype::I16 => "I16",
            Dtype::I8 => "I8",
            Dtype::U8 => "U8",
            Dtype::Bool => "BOOL",
        }
    }

    /// Element `i` of little-endian `bytes`, as f32.
    fn read(self, bytes: &[u8], i: usize) -> f32 {
        let s = self.size();
        let b = &bytes[i * s..(i + 1) * s];
        match self {
            Dtype::F64 => f64::from_le_bytes(b.try_into().unwrap()) as f32,
            Dtype::F32 => f32::from_le_bytes(b.try_into().unwrap()),
            Dtype::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::Bf16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::I64 => i64::from_le_bytes(b.try_into().unwrap()) as f32,
            Dtype::I32 => i32::from_le_bytes(b.try_into().unwrap()) as f32,
            Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            Dtype::I8 => b[0] as i8 as f32,
            Dtype::U8 | Dtype::Bool => b[0] as f32,
        }
    }

    /// Contiguous little-endian `bytes` (whole elements), as f32.
    pub(crate) fn dense(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            // The hub's own dtype: read at the speed of a copy, as a 2.6 GB model is.
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
            _ => (0..bytes.len() / self.size()).map(|i| self.read(bytes, i)).collect(),
        }
    }

    /// Gathers a strided view (element offset and strides in elements) into a dense f32 tensor.
    /// Callers check that every index lies inside `bytes`.
    pub(crate) fn gather(self, bytes: &[u8], offset: usize, shape: &[usize], strides: &[usize]) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let mut out = Vec::with_capacity(n);
        let mut index = vec![0usize; shape.len()];
        for _ in 0..n {
            let at = offset + index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
            out.push(self.read(bytes, at));
            for d in (0..shape.len()).rev() {
                index[d] += 1;
                if index[d] < shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out
    }
}
