use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;

use super::{LoadError, RawTensor, TensorMap};
use crate::device::Precision;

/// Where [`Vars`] takes its tensors from.
enum Source {
    /// Tensors read from a file; `name` is the file, for error messages.
    Map { tensors: TensorMap, name: String },
    /// Zeros of every requested shape: builds a model from its config alone.
    Zeros,
    /// The deterministic random checkpoint of [`super::random`], recorded as it is drawn.
    Random { seed: u64, drawn: RefCell<TensorMap> },
    /// Tensors already on the device, put there one by one as a streamed file delivered them.
    Device { tensors: HashMap<String, OnDevice>, name: String },
}

/// A tensor on the device, flat, in the layout burn's module wants it.
struct OnDevice {
    /// The shape in the file.
    shape: Vec<usize>,
    /// Stored as its transpose (a torch `nn.Linear` weight, which burn keeps as `[in, out]`).
    transposed: bool,
    flat: Result<Tensor<1>, String>,
}

/// Where a streamed loader puts each tensor as soon as it has arrived, so that the host holds
/// one tensor at a time. Its checks are those [`Vars`] makes of a file's tensors.
pub struct DeviceStore {
    tensors: HashMap<String, OnDevice>,
    device: Device,
    precision: Precision,
}

impl DeviceStore {
    /// `precision` is that of the dense-layer weights (those stored transposed).
    pub fn new(device: &Device, precision: Precision) -> Self {
        Self { tensors: HashMap::new(), device: device.clone(), precision }
    }

    /// Moves `t` to the device under `name`; `transposed` stores a `[rows, cols]` matrix as
    /// `[cols, rows]`, for [`Vars::tensor_transposed`]. A tensor that is not floating point is kept
    /// as its dtype, to be refused if a module asks for it.
    pub fn insert(&mut self, name: String, t: RawTensor, transposed: bool) -> Result<(), LoadError> {
        let flat = if t.is_float() {
            check_finite(&name, &t)?;
            let data = match (transposed, t.shape.as_slice()) {
                (true, &[rows, cols]) => transpose(&t.data, rows, cols),
                _ => t.data,
            };
            let n = data.len();
            let precision = if transposed { self.precision } else { Precision::F32 };
            let flat = upload(data, [n], precision, &self.device);
            // A GPU backend queues up to 32 writes, each holding its bytes in host (wasm)
            // memory: handed to the queue now, a streamed model never holds more than one.
            self.device.flush().map_err(|e| LoadError::Device { name: name.clone(), detail: e.to_string() })?;
            Ok(flat)
        } else {
            Err(t.dtype)
        };
        self.tensors.insert(name, OnDevice { shape: t.shape, transposed, flat });
        Ok(())
    }

    pub fn into_vars(self, source_name: &str) -> Vars {
        Vars::new(Source::Device { tensors: self.tensors, name: source_name.to_string() }, &self.device).with_precision(self.precision)
    }
}

/// `data` on `device` in `precision`, converted on the host so that an f32 copy of an f16 weight
/// never reaches the device.
fn upload<const D: usize>(data: Vec<f32>, shape: [usize; D], precision: Precision, device: &Device) -> Tensor<D> {
    let data = TensorData::new(data, shape);
    let data = match precision {
        Precision::F32 => data,
        Precision::F16 => data.convert::<half::f16>(),
    };
    let dtype = data.dtype();
    Tensor::from_data(data, (device, dtype))
}

/// `[rows, cols]` row-major → `[cols, rows]` row-major, a tile at a time: element by element, the
/// strided side misses the cache on every read, and the transpose was the slowest part of a load.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut out = vec![0f32; rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = data[r * cols + c];
                }
            }
        }
    }
    out
}

/// A NaN or an infinity in a weight poisons every result downstream without a word.
fn check_finite(name: &str, t: &RawTensor) -> Result<(), LoadError> {
    // One pass where every value is finite (a weight file's usual case); counted only when not.
    if t.data.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let nan = t.data.iter().filter(|v| v.is_nan()).count();
    let inf = t.data.iter().filter(|v| v.is_infinite()).count();
    Err(LoadError::NonFinite { name: name.to_string(), nan, inf, total: t.data.len() })
}

/// A prefix-walking view of a set of weights, in hub naming (`vars.pp("attention").linear(...)`).
#[derive(Clone)]
pub struct Vars {
    source: Rc<Source>,
    prefix: String,
    device: Device,
    /// Of the matrices stored transposed ([`Vars::tensor_transposed`]: the dense layers' weights).
    precision: Precision,
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
        Self { source: Rc::new(source), prefix: String::new(), device: device.clone(), precision: Precision::F32 }
    }

    /// The same weights, with the transposed matrices (the dense layers' weights) in `precision`.
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
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
        Self { source: self.source.clone(), prefix, device: self.device.clone(), precision: self.precision }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    /// The raw values of `name`, checked against `shape`.
    fn raw(&self, name: &str, shape: &[usize]) -> Result<RawTensor, LoadError> {
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
            Source::Device { .. } => unreachable!("tensors on the device are taken by `on_device`"),
        };
        if !t.is_float() {
            return Err(LoadError::Dtype { name: full, dtype: t.dtype });
        }
        if t.shape != shape {
            return Err(LoadError::Shape { name: full, expected: shape.to_vec(), found: t.shape });
        }
        check_finite(&full, &t)?;
        Ok(t)
    }

    /// The flat device tensor `name` of a streamed store, checked against `shape` and against
    /// the layout it was stored in; `None` for the other sources.
    fn on_device(&self, name: &str, shape: &[usize], transposed: bool) -> Option<Result<Tensor<1>, LoadError>> {
        let Source::Device { tensors, name: src } = &*self.source else { return None };
        let full = self.full(name);
        Some((|| {
            let t = tensors.get(&full).ok_or_else(|| LoadError::Missing { name: full.clone(), source_name: src.clone() })?;
            let flat = t.flat.clone().map_err(|dtype| LoadError::Dtype { name: full.clone(), dtype })?;
            if t.shape != shape {
                return Err(LoadError::Shape { name: full.clone(), expected: shape.to_vec(), found: t.shape.clone() });
            }
            // The streamed loader's layout rule and the module disagree: a bug, never a file's fault.
            assert_eq!(t.transposed, transposed, "`{full}` was streamed in the wrong layout");
            Ok(flat)
        })())
    }

    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, LoadError> {
        if let Some(flat) = self.on_device(name, &shape, false) {
            return Ok(flat?.reshape(shape));
        }
        let t = self.raw(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(t.data, shape), &self.device))
    }

    /// A `[rows, cols]` matrix stored as its transpose, `[cols, rows]`, laid out contiguously (a
    /// transposed view would be copied out again by every matmul that reads it), in the precision
    /// of these `Vars`.
    pub fn tensor_transposed(&self, name: &str, [rows, cols]: [usize; 2]) -> Result<Tensor<2>, LoadError> {
        if let Some(flat) = self.on_device(name, &[rows, cols], true) {
            return Ok(flat?.reshape([cols, rows]));
        }
        let t = self.raw(name, &[rows, cols])?;
        Ok(upload(transpose(&t.data, rows, cols), [cols, rows], self.precision, &self.device))
    }

    /// A torch `nn.Linear` (`weight [out, in]`, `bias [out]`) as burn's `Linear` (`weight [in, out]`),
    /// its weight in the precision of these `Vars` ([`Vars::tensor_transposed`]; its bias in f32).
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

#[cfg(test)]
mod tests {
    /// The tiles cover every element once, at shapes that end mid-tile.
    #[test]
    fn transpose_by_tiles_is_the_transpose() {
        for (rows, cols) in [(1, 1), (3, 70), (37, 5), (64, 96), (65, 33)] {
            let data: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = super::transpose(&data, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], data[r * cols + c], "[{rows}, {cols}] at ({r}, {c})");
                }
            }
        }
    }
}
