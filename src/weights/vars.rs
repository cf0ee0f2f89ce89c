use std::cell::RefCell;
use std::rc::Rc;

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;

use super::{LoadError, RawTensor, TensorMap};

/// Where [`Vars`] takes its tensors from.
enum Source {
    /// Tensors read from a file; `name` is the file, for error messages.
    Map { tensors: TensorMap, name: String },
    /// Zeros of every requested shape: builds a model from its config alone.
    Zeros,
    /// The deterministic random checkpoint of [`super::random`], recorded as it is drawn.
    Random { seed: u64, drawn: RefCell<TensorMap> },
}

/// A prefix-walking view of a set of weights, in hub naming (`vars.pp("attention").linear(...)`).
#[derive(Clone)]
pub struct Vars {
    source: Rc<Source>,
    prefix: String,
    device: Device,
}

impl Vars {
    pub fn from_map(tensors: TensorMap, source_name: &str, device: &Device) -> Self {
        Self::new(Source::Map { tensors, name: source_name.to_string() }, device)
    }

    pub fn zeros(device: &Device) -> Self {
        Self::new(Source::Zeros, device)
    }

    pub fn random(seed: u64, device: &Device) -> Self {
        Self::new(Source::Random { seed, drawn: RefCell::new(TensorMap::new()) }, device)
    }

    fn new(source: Source, device: &Device) -> Self {
        Self { source: Rc::new(source), prefix: String::new(), device: device.clone() }
    }

    /// The tensors a random `Vars` has handed out so far (empty for other sources).
    pub fn drawn(&self) -> TensorMap {
        match &*self.source {
            Source::Random { drawn, .. } => drawn.borrow().clone(),
            _ => TensorMap::new(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The view under `prefix.` (push a path segment).
    pub fn pp(&self, segment: impl AsRef<str>) -> Self {
        let prefix = if self.prefix.is_empty() {
            segment.as_ref().to_string()
        } else {
            format!("{}.{}", self.prefix, segment.as_ref())
        };
        Self { source: self.source.clone(), prefix, device: self.device.clone() }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    /// The raw values of `name`, checked against `shape`.
    pub fn raw(&self, name: &str, shape: &[usize]) -> Result<RawTensor, LoadError> {
        let full = self.full(name);
        let t = match &*self.source {
            Source::Map { tensors, name: src } => tensors
                .get(&full)
                .cloned()
                .ok_or_else(|| LoadError::Missing { name: full.clone(), source_name: src.clone() })?,
            Source::Zeros => RawTensor::f32(shape.to_vec(), vec![0.0; shape.iter().product()]),
            Source::Random { seed, drawn } => {
                let t = super::random::tensor(&full, shape, *seed);
                drawn.borrow_mut().insert(full.clone(), t.clone());
                t
            }
        };
        if !t.is_float() {
            return Err(LoadError::Dtype { name: full, dtype: t.dtype });
        }
        if t.shape != shape {
            return Err(LoadError::Shape { name: full, expected: shape.to_vec(), found: t.shape });
        }
        // A NaN or an infinity in a weight poisons every result downstream without a word.
        let nan = t.data.iter().filter(|v| v.is_nan()).count();
        let inf = t.data.iter().filter(|v| v.is_infinite()).count();
        if nan + inf > 0 {
            return Err(LoadError::NonFinite { name: full, nan, inf, total: t.data.len() });
        }
        Ok(t)
    }

    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, LoadError> {
        let t = self.raw(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(t.data, shape), &self.device))
    }

    /// A `[rows, cols]` matrix stored as its transpose, `[cols, rows]`, laid out contiguously:
    /// a transposed view would be copied out again by every matmul that reads it.
    pub fn tensor_transposed(&self, name: &str, [rows, cols]: [usize; 2]) -> Result<Tensor<2>, LoadError> {
        let t = self.raw(name, &[rows, cols])?;
        let transposed: Vec<f32> = (0..cols * rows).map(|i| t.data[(i % rows) * cols + i / rows]).collect();
        Ok(Tensor::from_data(TensorData::new(transposed, [cols, rows]), &self.device))
    }

    /// A torch `nn.Linear` (`weight [out, in]`, `bias [out]`) as burn's `Linear` (`weight [in, out]`).
    pub fn linear(&self, name: &str, d_in: usize, d_out: usize) -> Result<Linear, LoadError> {
        let vars = self.pp(name);
        let weight = vars.tensor_transposed("weight", [d_out, d_in])?; // [d_in, d_out]
        let bias = vars.tensor("bias", [d_out])?;
        Ok(Linear { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)) })
    }

    pub fn layer_norm(&self, name: &str, d: usize, eps: f64) -> Result<LayerNorm, LoadError> {
        let vars = self.pp(name);
        let gamma = vars.tensor("weight", [d])?;
        let beta = vars.tensor("bias", [d])?;
        let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(&self.device);
        norm.gamma = Param::from_tensor(gamma);
        norm.beta = Some(Param::from_tensor(beta));
        Ok(norm)
    }

    pub fn embedding(&self, name: &str, n: usize, d: usize) -> Result<Embedding, LoadError> {
        let weight = self.pp(name).tensor("weight", [n, d])?;
        Ok(Embedding { weight: Param::from_tensor(weight) })
    }
}
