//! The wgpu device: one adapter, one queue, WebGPU's default limits (so what passes here
//! passes in a browser), and the few buffer operations the kernels need. The same code
//! runs on Vulkan/Metal/DX12 natively and on the browser's WebGPU.

use std::sync::{Arc, Mutex};

use super::GpuError;

pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Why the device was lost, once it is: every later run fails with it.
    lost: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("adapter", &self.adapter_name()).finish()
    }
}

impl Gpu {
    /// The high-performance adapter (natively, `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` may pick
    /// another) with WebGPU's default limits and no optional feature.
    pub async fn new() -> Result<Gpu, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tessera"),
                required_limits: wgpu::Limits::default(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Device(format!("{} ({:?}): {e}", info.name, info.backend)))?;
        let lost = Arc::new(Mutex::new(None));
        let on_lost = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *on_lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{reason:?}: {message}"));
        });
        // Errors are caught by the error scopes around each run; nothing else submits work.
        device.on_uncaptured_error(Arc::new(|_error| {}));
        Ok(Gpu { device, queue, info, lost })
    }

    /// `name (backend)`, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`. Browsers may
    /// hide the name (privacy): then its type, e.g. `Cpu adapter (BrowserWebGpu)`.
    pub fn adapter_name(&self) -> String {
        let name = if self.info.name.is_empty() { format!("{:?} adapter", self.info.device_type) } else { self.info.name.clone() };
        format!("{name} ({:?})", self.info.backend)
    }

    /// A GPU emulated on the CPU (lavapipe, SwiftShader, WARP): right, but no faster than tract.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The largest storage buffer one binding may hold.
    pub fn max_binding_bytes(&self) -> u64 {
        self.device.limits().max_storage_buffer_binding_size
    }

    // Buffers are filled through the queue, not mapped at creation: on a lost device that
    // is an error in the run's error scope, where mapping would panic.

    /// A storage buffer holding `data`.
    pub fn storage<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let buffer = self.scratch(label, data.len() * size_of::<T>() / 4);
        self.write(&buffer, data);
        buffer
    }

    /// A zeroed storage buffer of `len` floats (or 4-byte words).
    pub fn scratch(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn uniform<T: bytemuck::Pod>(&self, value: &T) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dims"),
            size: size_of::<T>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.write(&buffer, std::slice::from_ref(value));
        buffer
    }

    /// Runs `work` (buffer creation, uploads, pipelines) inside error scopes: what the
    /// device refuses comes back as an error instead of an unusable object.
    pub async fn checked<T>(&self, what: &str, work: impl FnOnce() -> T) -> Result<T, GpuError> {
        let scopes = [wgpu::ErrorFilter::Validation, wgpu::ErrorFilter::OutOfMemory].map(|f| self.device.push_error_scope(f));
        let value = work();
        for scope in scopes.into_iter().rev() {
            if let Some(error) = scope.pop().await {
                return Err(GpuError::Device(format!("{}: {what}: {error}", self.adapter_name())));
            }
        }
        self.check_lost()?;
        Ok(value)
    }

    /// Overwrites the start of `buffer` with `data` (ordered before the next run).
    pub fn write<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, data: &[T]) {
        self.queue.write_buffer(buffer, 0, bytemuck::cast_slice(data));
    }

    /// Records one compute pass with `record`, runs it, and reads back the first `len`
    /// floats of `result`. Validation, out-of-memory and internal errors, and a lost device,
    /// come back as [`GpuError::Run`]: never a result from work that did not happen.
    pub async fn run(&self, result: &wgpu::Buffer, len: usize, record: impl FnOnce(&mut wgpu::ComputePass<'_>)) -> Result<Vec<f32>, GpuError> {
        self.check_lost()?;
        let scopes = [wgpu::ErrorFilter::Validation, wgpu::ErrorFilter::OutOfMemory, wgpu::ErrorFilter::Internal]
            .map(|filter| self.device.push_error_scope(filter));
        let bytes = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tessera") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            record(&mut pass);
        }
        encoder.copy_buffer_to_buffer(result, 0, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let (sender, receiver) = futures_channel::oneshot::channel();
        staging.slice(..bytes).map_async(wgpu::MapMode::Read, move |mapped| {
            let _ = sender.send(mapped);
        });
        // The browser polls by itself; natively the map completes only when polled.
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Run(format!("waiting for the GPU: {e}")))?;
        let mapped = receiver.await;
        for scope in scopes.into_iter().rev() {
            if let Some(error) = scope.pop().await {
                return Err(GpuError::Run(error.to_string()));
            }
        }
        self.check_lost()?;
        match mapped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Run(format!("reading results back: {e}"))),
            Err(_) => return Err(GpuError::Run("reading results back: the map request was dropped".into())),
        }
        let view = staging.slice(..bytes).get_mapped_range().map_err(|e| GpuError::Run(format!("reading results back: {e}")))?;
        Ok(bytemuck::cast_slice::<u8, f32>(&view).to_vec())
    }

    fn check_lost(&self) -> Result<(), GpuError> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(reason) => Err(GpuError::Run(format!("the device was lost ({reason})"))),
            None => Ok(()),
        }
    }
}
