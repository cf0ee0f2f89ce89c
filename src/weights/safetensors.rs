//! `.safetensors` in (any float or integer dtype, converted to f32) and out (f32 and i64 results).

use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use super::{Dtype, LoadError, RawTensor, TensorMap};

fn dtype_of(d: StDtype) -> Option<Dtype> {
    Some(match d {
        StDtype::F64 => Dtype::F64,
        StDtype::F32 => Dtype::F32,
        StDtype::F16 => Dtype::F16,
        StDtype::BF16 => Dtype::Bf16,
        StDtype::I64 => Dtype::I64,
        StDtype::I32 => Dtype::I32,
        StDtype::I16 => Dtype::I16,
        StDtype::I8 => Dtype::I8,
        StDtype::U8 => Dtype::U8,
        StDtype::BOOL => Dtype::Bool,
        _ => return None,
    })
}

/// A tensor's bytes as f32; one of a dtype plmscope does not read keeps only its name, for the
/// error if a model asks for it.
pub(crate) fn raw_tensor(dtype: StDtype, shape: Vec<usize>, data: &[u8]) -> RawTensor {
    match dtype_of(dtype) {
        Some(d) => RawTensor { data: d.dense(data), shape, dtype: d.name().into() },
        None => RawTensor { shape, data: Vec::new(), dtype: format!("{dtype:?}") },
    }
}

/// Reads every tensor of a safetensors file. `source_name` names the file in errors.
pub fn read(bytes: &[u8], source_name: &str) -> Result<TensorMap, LoadError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| LoadError::Format {
        source_name: source_name.to_string(),
        format: "safetensors",
        detail: e.to_string(),
    })?;
    let mut map = TensorMap::new();
    for (name, view) in st.tensors() {
        map.insert(name, raw_tensor(view.dtype(), view.shape().to_vec(), view.data()));
    }
    Ok(map)
}

pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        // Saturating: a shape with a zero dimension holds nothing, whatever its other dimensions.
        strides[d] = strides[d + 1].saturating_mul(shape[d + 1]);
    }
    strides
}

/// One result tensor to write.
pub enum OutTensor {
    F32 { shape: Vec<usize>, data: Vec<f32> },
    I64 { shape: Vec<usize>, data: Vec<i64> },
}

/// Serialises named results (the CLI's output files).
pub fn write(tensors: Vec<(String, OutTensor)>) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let bytes: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, t)| match t {
            OutTensor::F32 { shape, data } => {
                (name, StDtype::F32, shape, data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            OutTensor::I64 { shape, data } => {
                (name, StDtype::I64, shape, data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, dtype, shape, data)| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    safetensors::serialize(views, None)
}
