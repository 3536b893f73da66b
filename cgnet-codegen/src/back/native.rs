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

/// Runs the body and the logits tail, as `run` in emitted code does
/// (allocating the arena and logits: for benchmarks and tests, not for products).
pub fn execute_logits(
    model: &CompiledModel,
    isa: Isa,
    parallel: Option<&dyn ParallelFor>,
    input: &[f32],
) -> Result<Vec<f32>, KernelError> {
    Ok(execute_with(model, isa, parallel, input, false)?.logits)
}

/// Runs the body once and all three tails. `input` is NCHW `[3, H, W]`.
pub fn execute(
    model: &CompiledModel,
    isa: Isa,
    parallel: Option<&dyn ParallelFor>,
    input: &[f32],
) -> Result<Outputs, KernelError> {
    execute_with(model, isa, parallel, input, true)
}

fn execute_with(
    model: &CompiledModel,
    isa: Isa,
    parallel: Option<&dyn ParallelFor>,
    input: &[f32],
    tails: bool,
) -> Result<Outputs, KernelError> {
    let mut arena = Arena::new(model.arena_bytes);
    let (h, w, c) = (model.height, model.width, model.classes);
    let mut logits = vec![0.0f32; model.logits_out.end()];
    let (mut scores, mut labels) = if tails { (vec![0.0f32; c * h * w], vec![0u8; h * w]) } else { (vec![], vec![]) };
    let arena_f32 = arena.as_f32_mut();
    let memory = Memory {
        arena: (arena_f32.as_mut_ptr(), arena_f32.len()),
        input: (input.as_ptr(), input.len()),
        logits: (logits.as_mut_ptr(), logits.len()),
        scores: (std::ptr::null_mut(), 0),
    };
    let exec = Exec { memory, weights: &model.weights, isa, parallel };
    for step in &model.steps {
        exec.step(step)?;
    }
    let copy = cgnet_runtime::program::Copy {
        src: model.logits,
        add: None,
        dst: model.logits_out,
        epilogue: cgnet_runtime::program::Epilogue::NONE,
    };
    exec.step(&Step::Copy(copy))?;
    if tails {
        head::upsample(arena.as_f32(), &model.logits, &mut scores, h, w);
        head::upsample_argmax(arena.as_f32(), &model.logits, &mut labels, h, w);
    }
    Ok(Outputs { logits, scores, labels })
}
