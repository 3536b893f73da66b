//! Runs a `CompiledModel`'s steps directly through the runtime kernels: the
//! same calls the Rust backend emits, from a vector instead of constants.
//! Used by `cgnetc run --target rust-*` and to test the kernels on whole models.

use cgnet_runtime::kernels::{head, Exec, Isa, KernelError, Memory, ParallelFor};
use cgnet_runtime::program::Step;
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

/// The body and the logits tail, as `run` in emitted code does, with the
/// arena and logits allocated once (for benchmarks).
pub struct Runner {
    arena: Arena,
    logits: Vec<f32>,
}

impl Runner {
    pub fn new(model: &CompiledModel) -> Self {
        Self { arena: Arena::new(model.arena_bytes), logits: vec![0.0; model.logits_out.end()] }
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
        for step in &model.steps {
            exec.step(step)?;
        }
        exec.step(&logits_tail(model))?;
        Ok(&self.logits)
    }
}

/// The step that copies the logits from the arena (NHWC) to the caller (NCHW).
pub fn logits_tail(model: &CompiledModel) -> Step {
    Step::Copy(cgnet_runtime::program::Copy {
        src: model.logits,
        scale: None,
        add: None,
        dst: model.logits_out,
        epilogue: cgnet_runtime::program::Epilogue::NONE,
    })
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
    let mut logits = vec![0.0f32; model.logits_out.end()];
    let mut scores = vec![0.0f32; c * h * w];
    let mut labels = vec![0u8; h * w];
    {
        let memory = Memory::new(arena.as_f32_mut(), input).with_logits(&mut logits);
        let exec = Exec::new(memory, &model.weights, isa, parallel);
        for step in &model.steps {
            exec.step(step)?;
        }
        exec.step(&logits_tail(model))?;
    }
    head::upsample(arena.as_f32(), &model.logits, &mut scores, h, w);
    head::upsample_argmax(arena.as_f32(), &model.logits, &mut labels, h, w);
    Ok(Outputs { logits, scores, labels })
}
