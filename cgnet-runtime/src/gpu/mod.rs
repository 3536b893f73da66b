//! The GPU target: a compiled program as WGSL compute kernels (made by the
//! compiler's `back::wgsl`) and, behind the `gpu` feature, the wgpu shim that
//! runs them ([`GpuSession`]).
//!
//! Every kernel addresses the same seven bindings of one bind group: the arena
//! (one storage buffer laid out exactly as the CPU plan, offsets baked into the
//! WGSL as constants), the packed weights (as floats and as `vec4`s), the
//! input, and the three outputs.

#[cfg(feature = "gpu")]
mod session;

#[cfg(feature = "gpu")]
pub use session::{Gpu, GpuError, GpuSession};

/// One compute kernel: a WGSL module with a `main` entry point, dispatched once
/// with `workgroups`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuKernel {
    /// What it computes, for debuggers and error messages (e.g. `step 12 Conv`).
    pub label: String,
    pub wgsl: String,
    pub workgroups: [u32; 3],
}

/// A whole program for the GPU: the body's kernels, then one tail per entry
/// point (`run` copies the logits out, `scores` upsamples them, `segment`
/// upsamples and takes the argmax, writing four labels per `u32`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuPlan {
    pub body: Vec<GpuKernel>,
    /// The body's kernels that read the input, again reading an 8-bit picture
    /// instead (its bytes uploaded into the input buffer, four per word), each
    /// with its index in `body`: the 8-bit entry points run these in their place.
    pub picture: Vec<(usize, GpuKernel)>,
    pub run: GpuKernel,
    pub scores: GpuKernel,
    pub segment: GpuKernel,
    /// Floats of each buffer.
    pub arena_floats: usize,
    pub input_floats: usize,
    pub logits_floats: usize,
    pub scores_floats: usize,
    /// Labels (bytes): one per input pixel.
    pub labels: usize,
}

/// The bindings every kernel declares, in binding order: `(name, access)`.
/// `weights4` is the weights buffer again, read as `vec4`s.
pub const BINDINGS: [(&str, &str); 7] = [
    ("arena", "read_write"),
    ("weights", "read"),
    ("weights4", "read"),
    ("input", "read"),
    ("logits", "read_write"),
    ("scores", "read_write"),
    ("labels", "read_write"),
];

/// Invocations per workgroup of every kernel except F_glo's squeeze (one workgroup).
pub const WORKGROUP_SIZE: u32 = 64;

/// Most workgroups along one dispatch dimension (WebGPU's default limit);
/// larger dispatches spill into `y`.
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65_535;
