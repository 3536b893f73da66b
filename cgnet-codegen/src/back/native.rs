//! Runs a `CompiledModel`'s steps directly through the runtime kernels: the
//! same calls the Rust backend emits, from a vector instead of constants.
//! Used by `cgnetc run --target rust-*` and to test the kernels on whole models.

use cgnet_runtime::kernels::{Exec, Isa, KernelError, Memory, ParallelFor};
use cgnet_runtime::Arena;

use super::CompiledModel;

/// The three results of one inference.
pub struct Outputs {
    /// NCHW `[C, ceil(H/8), ceil(W/8)]`.
    pub logits: Vec<f32>,
    /// NCHW `[C, H, W]`.
    pub scores: Vec<f32>,
    /// `[H * W]`.
    pub labels: Vec<u8>,
}

/// The body and a tail, as `run` / `segment` in emitted code do, with the
/// arena and logits allocated once (for benchmarks, and one per worker
/// thread of `cgnetc segment` / `eval`).
pub struct Runner {
    arena: Arena,
    logits: Vec<f32>,
}

impl Runner {
    pub fn new(model: &CompiledModel) -> Self {
        Self {
            arena: Arena::new(model.arena_bytes),
            logits: vec![0.0; model.classes * model.logits.h * model.logits.w],
        }
    }

    pub fn run(
        &mut self,
        model: &CompiledModel,
        isa: Isa,
        parallel: Option<&dyn ParallelFor>,
        input: &[f32],
    ) -> Result<&[f32], KernelError> {
        let memory = Memory::new(self.arena.as_f32_mut(), input).with_logits(&mut self.logits);
        let exec = Exec::new(memory, &model.weights, isa, parallel);
        for step in model.steps.iter().chain([&model.tails.run]) {
            exec.step(step)?;
        }
        Ok(&self.logits)
    }

    /// The body and the labels tail, as `segment` in emitted code does:
    /// `labels` gets one class index per input pixel.
    pub fn segment(
        &mut self,
        model: &CompiledModel,
        isa: Isa,
        parallel: Option<&dyn ParallelFor>,
        input: &[f32],
        labels: &mut [u8],
    ) -> Result<(), KernelError> {
        let memory = Memory::new(self.arena.as_f32_mut(), input).with_labels(labels);
        let exec = Exec::new(memory, &model.weights, isa, parallel);
        for step in model.steps.iter().chain([&model.tails.segment]) {
            exec.step(step)?;
        }
        Ok(())
    }
}

/// Runs the body once and all three tails. `input` is NCHW `[3, H, W]`.
pub fn execute(
    model: &CompiledModel,
    isa: Isa,
    parallel: Option<&dyn ParallelFor>,
    input: &[f32],
) -> Result<Outputs, KernelError> {
    let mut arena = Arena::new(model.arena_bytes);
    let (h, w, c) = (model.height, model.width, model.classes);
    let mut logits = vec![0.0f32; c * model.logits.h * model.logits.w];
    let mut scores = vec![0.0f32; c * h * w];
    let mut labels = vec![0u8; h * w];
    let memory = Memory::new(arena.as_f32_mut(), input)
        .with_logits(&mut logits)
        .with_scores(&mut scores)
        .with_labels(&mut labels);
    let exec = Exec::new(memory, &model.weights, isa, parallel);
    let tails = &model.tails;
    for step in model.steps.iter().chain([&tails.run, &tails.scores, &tails.segment]) {
        exec.step(step)?;
    }
    Ok(Outputs { logits, scores, labels })
}
