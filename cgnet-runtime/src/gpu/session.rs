//! The wgpu shim. Set-up creates every GPU resource once (buffers, pipelines,
//! one bind group); an inference creates none: it maps the upload buffer and
//! copies the input in, encodes the fixed dispatch list in one compute pass,
//! copies the wanted output to the read-back buffer, submits once and reads
//! back once.

use std::sync::mpsc;

use super::{GpuKernel, GpuPlan, BINDINGS};

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found (on Linux without a GPU, install Mesa's lavapipe: `mesa-vulkan-drivers`): {0}")]
    NoAdapter(String),
    #[error("the GPU device could not be created: {0}")]
    Device(String),
    #[error(
        "the program needs a {what} of {needed} bytes, but this adapter allows at most {allowed}: \
         use a smaller input size or a GPU with more memory"
    )]
    TooLarge { what: &'static str, needed: u64, allowed: u64 },
    #[error("the GPU rejected {what}: {message}")]
    Rejected { what: String, message: String },
    #[error("{what} has {got} elements, expected {expected}")]
    Size { what: &'static str, got: usize, expected: usize },
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
}

/// A device and its queue: made by [`Gpu::new`], or the host's own with [`Gpu::from_device`].
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: String,
}

impl Gpu {
    /// The default adapter (a discrete GPU if there is one; lavapipe on a
    /// machine without one), with the limits a program of `largest_buffer`
    /// bytes needs. Blocks until the device is ready.
    pub fn new(largest_buffer: u64) -> Result<Self, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter =
            pollster::block_on(instance.request_adapter(&options)).map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let allowed = adapter.limits();
        let binding = allowed.max_storage_buffer_binding_size;
        if largest_buffer > binding {
            return Err(GpuError::TooLarge {
                what: "storage buffer binding",
                needed: largest_buffer,
                allowed: binding,
            });
        }
        if largest_buffer > allowed.max_buffer_size {
            return Err(GpuError::TooLarge {
                what: "buffer",
                needed: largest_buffer,
                allowed: allowed.max_buffer_size,
            });
        }
        // Ask for what the program needs above WebGPU's defaults, no more.
        let defaults = wgpu::Limits::defaults();
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: defaults.max_storage_buffer_binding_size.max(largest_buffer),
            max_buffer_size: defaults.max_buffer_size.max(largest_buffer),
            ..defaults
        };
        let descriptor = wgpu::DeviceDescriptor { label: Some("cgnet"), required_limits, ..Default::default() };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| GpuError::Device(e.to_string()))?;
        let a = adapter.get_info();
        let info = format!("{} ({:?}, {})", a.name, a.backend, a.driver_info);
        Ok(Self { device, queue, info })
    }

    /// The host's device and queue (e.g. a renderer's); their limits must
    /// cover the program's buffers.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self { device, queue, info: "host device".into() }
    }

    /// The adapter's name, backend and driver.
    pub fn info(&self) -> &str {
        &self.info
    }
}

/// The buffers of one program, in binding order.
struct Buffers {
    arena: wgpu::Buffer,
    weights: wgpu::Buffer,
    input: wgpu::Buffer,
    logits: wgpu::Buffer,
    scores: wgpu::Buffer,
    labels: wgpu::Buffer,
    /// MAP_WRITE | COPY_SRC: the input is written here, then copied.
    upload: wgpu::Buffer,
    /// MAP_READ | COPY_DST: the largest output fits.
    readback: wgpu::Buffer,
}

/// A program set up on a device: run it as often as needed.
pub struct GpuSession {
    device: wgpu::Device,
    queue: wgpu::Queue,
    buffers: Buffers,
    bind_group: wgpu::BindGroup,
    body: Vec<(wgpu::ComputePipeline, [u32; 3])>,
    /// `GpuPlan::picture`'s pipelines, by index into `body`.
    picture: Vec<(usize, (wgpu::ComputePipeline, [u32; 3]))>,
    tails: [(wgpu::ComputePipeline, [u32; 3]); 3],
    sizes: (usize, usize, usize, usize),
    /// GPU resources this session created (buffers, modules, layouts, pipelines, bind groups).
    created: usize,
}

/// What an inference uploads.
#[derive(Clone, Copy)]
enum Upload<'a> {
    Floats(&'a [f32]),
    Picture(&'a [u8]),
}

#[derive(Clone, Copy)]
enum Tail {
    Run = 0,
    Scores = 1,
    Segment = 2,
}

impl GpuSession {
    /// Creates every buffer, pipeline and the bind group, and uploads the packed weights.
    pub fn new(gpu: &Gpu, plan: &GpuPlan, weights: &[f32]) -> Result<Self, GpuError> {
        let device = gpu.device.clone();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut created = 0;
        let bytes = |floats: usize| (floats.max(1) * 4).next_multiple_of(16) as u64;
        let mut buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            created += 1;
            device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
        };
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let labels_floats = plan.labels.div_ceil(4);
        let largest_output = bytes(plan.logits_floats.max(plan.scores_floats).max(labels_floats));
        let buffers = Buffers {
            arena: buffer("arena", bytes(plan.arena_floats), storage),
            weights: buffer("weights", bytes(weights.len()), storage),
            input: buffer("input", bytes(plan.input_floats), storage),
            logits: buffer("logits", bytes(plan.logits_floats), storage),
            scores: buffer("scores", bytes(plan.scores_floats), storage),
            labels: buffer("labels", bytes(labels_floats), storage),
            upload: buffer(
                "upload",
                bytes(plan.input_floats),
                wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer("readback", largest_output, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
        };
        gpu.queue.write_buffer(&buffers.weights, 0, bytemuck::cast_slice(weights));

        let entries: Vec<wgpu::BindGroupLayoutEntry> = BINDINGS
            .iter()
            .enumerate()
            .map(|(i, (_, access))| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: *access == "read" },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("cgnet"), entries: &entries });
        let b = &buffers;
        let bound = [&b.arena, &b.weights, &b.weights, &b.input, &b.logits, &b.scores, &b.labels];
        let entries: Vec<wgpu::BindGroupEntry> = bound
            .iter()
            .enumerate()
            .map(|(i, buffer)| wgpu::BindGroupEntry { binding: i as u32, resource: buffer.as_entire_binding() })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cgnet"),
            layout: &layout,
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("cgnet"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        created += 3;
        let mut pipeline = |kernel: &GpuKernel| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&kernel.label),
                source: wgpu::ShaderSource::Wgsl(kernel.wgsl.as_str().into()),
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&kernel.label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
            created += 2;
            (pipeline, kernel.workgroups)
        };
        let body = plan.body.iter().map(&mut pipeline).collect();
        let picture = plan.picture.iter().map(|(i, kernel)| (*i, pipeline(kernel))).collect();
        let tails = [pipeline(&plan.run), pipeline(&plan.scores), pipeline(&plan.segment)];
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Rejected { what: "the program".into(), message: error.to_string() });
        }
        Ok(Self {
            device,
            queue: gpu.queue.clone(),
            buffers,
            bind_group,
            body,
            picture,
            tails,
            sizes: (plan.input_floats, plan.logits_floats, plan.scores_floats, plan.labels),
            created,
        })
    }

    /// GPU resources created so far; an inference adds none.
    pub fn resources_created(&self) -> usize {
        self.created
    }

    /// The logits, NCHW.
    pub fn run(&mut self, input: &[f32], logits: &mut [f32]) -> Result<(), GpuError> {
        check("logits", logits.len(), self.sizes.1)?;
        self.infer(Upload::Floats(input), Tail::Run, bytemuck::cast_slice_mut(logits))
    }

    /// The bilinearly upsampled scores, NCHW.
    pub fn scores(&mut self, input: &[f32], scores: &mut [f32]) -> Result<(), GpuError> {
        check("scores", scores.len(), self.sizes.2)?;
        self.infer(Upload::Floats(input), Tail::Scores, bytemuck::cast_slice_mut(scores))
    }

    /// One label per pixel.
    pub fn segment(&mut self, input: &[f32], labels: &mut [u8]) -> Result<(), GpuError> {
        check("labels", labels.len(), self.sizes.3)?;
        self.infer(Upload::Floats(input), Tail::Segment, labels)
    }

    /// [`GpuSession::run`] of a picture: interleaved 8-bit RGB `[H, W, 3]`,
    /// uploaded as bytes and normalised by the kernels that read it.
    pub fn run_rgb8(&mut self, picture: &[u8], logits: &mut [f32]) -> Result<(), GpuError> {
        check("logits", logits.len(), self.sizes.1)?;
        self.infer(Upload::Picture(picture), Tail::Run, bytemuck::cast_slice_mut(logits))
    }

    /// [`GpuSession::scores`] of a picture (see [`GpuSession::run_rgb8`]).
    pub fn scores_rgb8(&mut self, picture: &[u8], scores: &mut [f32]) -> Result<(), GpuError> {
        check("scores", scores.len(), self.sizes.2)?;
        self.infer(Upload::Picture(picture), Tail::Scores, bytemuck::cast_slice_mut(scores))
    }

    /// [`GpuSession::segment`] of a picture (see [`GpuSession::run_rgb8`]).
    pub fn segment_rgb8(&mut self, picture: &[u8], labels: &mut [u8]) -> Result<(), GpuError> {
        check("labels", labels.len(), self.sizes.3)?;
        self.infer(Upload::Picture(picture), Tail::Segment, labels)
    }

    fn infer(&mut self, input: Upload<'_>, tail: Tail, out: &mut [u8]) -> Result<(), GpuError> {
        // A picture has one byte per float of the input.
        let (bytes, picture): (&[u8], bool) = match input {
            Upload::Floats(x) => {
                check("input", x.len(), self.sizes.0)?;
                (bytemuck::cast_slice(x), false)
            }
            Upload::Picture(p) => {
                check("picture", p.len(), self.sizes.0)?;
                (p, true)
            }
        };
        let b = &self.buffers;
        map(&self.device, &b.upload, wgpu::MapMode::Write)?;
        {
            // Whole words: the kernels read the picture four bytes at a time.
            let len = bytes.len().next_multiple_of(4);
            let range = ..len as u64;
            let mut view = b.upload.get_mapped_range_mut(range).map_err(|e| GpuError::Readback(e.to_string()))?;
            let mut padded = [0u8; 4];
            let (whole, tail) = bytes.split_at(bytes.len() / 4 * 4);
            padded[..tail.len()].copy_from_slice(tail);
            view.slice(..whole.len()).copy_from_slice(whole);
            if whole.len() < len {
                view.slice(whole.len()..).copy_from_slice(&padded[..len - whole.len()]);
            }
        }
        b.upload.unmap();
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("cgnet") });
        encoder.copy_buffer_to_buffer(&b.upload, 0, &b.input, 0, b.upload.size());
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("cgnet"), timestamp_writes: None });
            pass.set_bind_group(0, &self.bind_group, &[]);
            let body = self.body.iter().enumerate().map(|(i, kernel)| {
                let replacement = self.picture.iter().find(|(at, _)| picture && *at == i);
                replacement.map_or(kernel, |(_, kernel)| kernel)
            });
            for (pipeline, [x, y, z]) in body.chain([&self.tails[tail as usize]]) {
                pass.set_pipeline(pipeline);
                pass.dispatch_workgroups(*x, *y, *z);
            }
        }
        let source = match tail {
            Tail::Run => &b.logits,
            Tail::Scores => &b.scores,
            Tail::Segment => &b.labels,
        };
        let size = (out.len() as u64).next_multiple_of(4);
        encoder.copy_buffer_to_buffer(source, 0, &b.readback, 0, size);
        self.queue.submit([encoder.finish()]);
        map(&self.device, &b.readback, wgpu::MapMode::Read)?;
        {
            let view = b.readback.get_mapped_range(..).map_err(|e| GpuError::Readback(e.to_string()))?;
            out.copy_from_slice(&view[..out.len()]);
        }
        b.readback.unmap();
        Ok(())
    }
}

fn check(what: &'static str, got: usize, expected: usize) -> Result<(), GpuError> {
    if got == expected {
        Ok(())
    } else {
        Err(GpuError::Size { what, got, expected })
    }
}

/// Maps all of `buffer` and waits (after the submitted work) until it is mapped.
fn map(device: &wgpu::Device, buffer: &wgpu::Buffer, mode: wgpu::MapMode) -> Result<(), GpuError> {
    let (sender, receiver) = mpsc::channel();
    buffer.map_async(mode, .., move |result| {
        let _ = sender.send(result);
    });
    device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback(e.to_string()))?;
    match receiver.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(GpuError::Readback(e.to_string())),
        Err(e) => Err(GpuError::Readback(e.to_string())),
    }
}
