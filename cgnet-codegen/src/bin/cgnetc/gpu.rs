//! `--target gpu`: the WGSL kernels of `back::wgsl` run by cgnet-runtime's wgpu
//! shim. Built without the `gpu` feature, the target says how to get it.

use cgnet_codegen::back::CompiledModel;
use cgnet_codegen::Tensor;

use crate::failure::Failure;
use crate::Results;

#[cfg(feature = "gpu")]
mod imp {
    use std::time::Instant;

    use cgnet_codegen::back::{wgsl, CompiledModel};
    use cgnet_runtime::gpu::{Gpu, GpuSession};

    use crate::failure::Failure;

    /// The GPU (printed to stderr once) and the program set up on it.
    pub fn session(model: &CompiledModel) -> Result<(GpuSession, cgnet_runtime::gpu::GpuPlan), Failure> {
        let plan = wgsl::plan(model).map_err(|e| Failure::new(e.to_string()))?;
        let largest = (plan.arena_floats.max(plan.scores_floats).max(model.weights.len()) * 4) as u64;
        let gpu = Gpu::new(largest).map_err(|e| Failure::new(e.to_string()))?;
        eprintln!("gpu: {}", gpu.info());
        let started = Instant::now();
        let session = GpuSession::new(&gpu, &plan, &model.weights).map_err(|e| Failure::new(e.to_string()))?;
        eprintln!(
            "gpu: {} kernels set up in {:.1} s ({} GPU resources)",
            plan.body.len() + 3,
            started.elapsed().as_secs_f64(),
            session.resources_created()
        );
        Ok((session, plan))
    }
}

#[cfg(feature = "gpu")]
fn gpu_error(e: cgnet_runtime::gpu::GpuError) -> Failure {
    Failure::new(e.to_string())
}

/// One inference: the three outputs.
#[cfg(feature = "gpu")]
pub fn run(model: &CompiledModel, input: &Tensor) -> Result<Results, Failure> {
    let (mut session, plan) = imp::session(model)?;
    let (c, h, w) = (model.classes, model.height, model.width);
    let mut logits = vec![0.0f32; plan.logits_floats];
    let mut scores = vec![0.0f32; plan.scores_floats];
    let mut labels = vec![0u8; plan.labels];
    session.run(&input.data, &mut logits).map_err(gpu_error)?;
    session.scores(&input.data, &mut scores).map_err(gpu_error)?;
    session.segment(&input.data, &mut labels).map_err(gpu_error)?;
    Ok(Results {
        logits: Tensor { c, h: model.logits.h, w: model.logits.w, data: logits },
        scores: Tensor { c, h, w, data: scores },
        labels: labels.iter().map(|l| i32::from(*l)).collect(),
    })
}

/// Times `iters` inferences (`run`: upload, all kernels, logits read back)
/// after 2 warm-up runs; ms each.
#[cfg(feature = "gpu")]
pub fn bench(model: &CompiledModel, input: &Tensor, iters: usize) -> Result<Vec<f64>, Failure> {
    let (mut session, plan) = imp::session(model)?;
    let mut logits = vec![0.0f32; plan.logits_floats];
    let mut times = Vec::with_capacity(iters);
    for i in 0..iters + 2 {
        let start = std::time::Instant::now();
        session.run(&input.data, &mut logits).map_err(gpu_error)?;
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}

#[cfg(not(feature = "gpu"))]
fn unavailable() -> Failure {
    Failure::new("this cgnetc was built without the `gpu` feature: rebuild with `--features gpu` (on by default)")
}

#[cfg(not(feature = "gpu"))]
pub fn run(_: &CompiledModel, _: &Tensor) -> Result<Results, Failure> {
    Err(unavailable())
}

#[cfg(not(feature = "gpu"))]
pub fn bench(_: &CompiledModel, _: &Tensor, _: usize) -> Result<Vec<f64>, Failure> {
    Err(unavailable())
}
