//! The device side of every backend: reading results back, the error when that fails, and the
//! devices themselves (the page's one WebGPU device, the CPU).

use burn::prelude::*;

/// The device could not give a result back: on WebGPU, a lost or destroyed device. Returned,
/// not panicked, so that the page can move to the CPU build and keep its state.
#[derive(Debug, thiserror::Error)]
#[error("the device failed while reading a result back: {0}")]
pub struct DeviceError(String);

/// Reads a tensor back to host memory: the only way that works on WebGPU in a browser.
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, DeviceError> {
    let data = t.into_data_async().await.map_err(|e| DeviceError(e.to_string()))?;
    data.try_to_vec::<f32>().map_err(|e| DeviceError(format!("{e:?}")))
}

/// How ESM-2's dense-layer weights are held on the device and multiplied. Everything else (the
/// residual stream, layer norms, softmax, GELU, the embeddings and the SAEs) stays in f32, the
/// split torch's autocast makes (matmuls in f16, norms and softmax in f32); f16 halves the GPU
/// memory of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    /// Weights stored in f16; each dense layer's input is rounded to f16 and its product
    /// returned to f32 before the bias.
    F16,
}

impl Precision {
    /// Bytes per dense-layer weight.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

/// Whether `device` holds and multiplies f16 tensors: a GPU backend whose adapter has 16-bit
/// floats (WebGPU's `shader-f16`, Vulkan's `shaderFloat16`). The CPU build's kernels are f32 only.
pub fn f16_available(device: &Device) -> bool {
    #[cfg(feature = "cpu")]
    if *device == Device::flex() {
        return false;
    }
    device.supports_dtype(burn::tensor::FloatDType::F16)
}

/// Which backends this build holds, by the names [`create`] takes.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut b = Vec::new();
    if cfg!(all(feature = "webgpu", target_arch = "wasm32")) {
        b.push("webgpu");
    }
    if cfg!(all(feature = "wgpu", not(target_arch = "wasm32"))) {
        b.push("wgpu");
    }
    if cfg!(all(feature = "cuda", not(target_arch = "wasm32"))) {
        b.push("cuda");
    }
    if cfg!(feature = "cpu") {
        b.push("cpu");
    }
    b
}

/// The device of backend `name`: `"webgpu"` (the browser's), `"wgpu"` (natively: Vulkan, Metal
/// or DX12), `"cuda"` or `"cpu"`. A GPU backend fails with an error where the machine has no
/// adapter or driver; the page then falls back to the CPU, the CLI says so.
pub async fn create(name: &str) -> Result<Device, String> {
    match name {
        #[cfg(all(feature = "webgpu", target_arch = "wasm32"))]
        "webgpu" => webgpu_device().await.map_err(|e| format!("WebGPU: {e}")),
        #[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
        "wgpu" => native_wgpu(),
        #[cfg(all(feature = "cuda", not(target_arch = "wasm32")))]
        "cuda" => cuda_device(),
        #[cfg(feature = "cpu")]
        "cpu" => Ok(Device::flex()),
        other => Err(format!("backend \"{other}\" is not in this build (it has {:?})", compiled_backends())),
    }
}

/// The process's one wgpu device: burn registers its runtime once per process, so every caller
/// (every test) shares it.
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
fn native_wgpu() -> Result<Device, String> {
    static WGPU: std::sync::Mutex<Option<Device>> = std::sync::Mutex::new(None);
    let mut held = WGPU.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = held.as_ref() {
        return Ok(d.clone());
    }
    let device = Device::wgpu_options().init().map_err(|e| format!("wgpu: {e}"))?;
    Ok(held.insert(device).clone())
}

/// CUDA device 0, tried with one small operation: the runtime panics where there is no driver or
/// GPU, and that becomes an error here rather than on the first real call.
#[cfg(all(feature = "cuda", not(target_arch = "wasm32")))]
fn cuda_device() -> Result<Device, String> {
    std::panic::catch_unwind(|| {
        let device = Device::cuda(0);
        let probe = Tensor::<1>::ones([1], &device).into_data();
        (device, probe)
    })
    .map(|(device, _)| device)
    .map_err(|e| {
        let why = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("CUDA: no usable device ({})", why.unwrap_or_else(|| "the runtime panicked".into()))
    })
}

#[cfg(all(feature = "webgpu", target_arch = "wasm32"))]
thread_local! {
    static WEBGPU: std::cell::OnceCell<Device> = const { std::cell::OnceCell::new() };
}

/// The page's one WebGPU device: burn registers a runtime per adapter once per page, so every
/// engine (and every test) shares it.
#[cfg(all(feature = "webgpu", target_arch = "wasm32"))]
pub async fn webgpu_device() -> Result<Device, burn::tensor::wgpu::WgpuInitError> {
    if let Some(d) = WEBGPU.with(|cell| cell.get().cloned()) {
        return Ok(d);
    }
    let device = Device::wgpu_options().init_async().await?;
    Ok(WEBGPU.with(|cell| cell.get_or_init(|| device).clone()))
}
