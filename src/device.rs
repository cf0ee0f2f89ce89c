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

/// Which backends this build holds, by the names [`create`] takes.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut b = Vec::new();
    if cfg!(feature = "webgpu") {
        b.push("webgpu");
    }
    if cfg!(feature = "cpu") {
        b.push("cpu");
    }
    b
}

/// The device of backend `name` (`"webgpu"` or `"cpu"`). WebGPU fails with an error where the
/// browser has no adapter; the caller then falls back to the CPU.
pub async fn create(name: &str) -> Result<Device, String> {
    match name {
        #[cfg(all(feature = "webgpu", target_arch = "wasm32"))]
        "webgpu" => webgpu_device().await.map_err(|e| format!("WebGPU: {e}")),
        #[cfg(feature = "cpu")]
        "cpu" => Ok(Device::flex()),
        other => Err(format!("backend \"{other}\" is not in this build (it has {:?})", compiled_backends())),
    }
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
