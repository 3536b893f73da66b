//! Runs a `CompiledModel`'s steps directly through the runtime kernels: the
//! same calls the Rust backend emits, from a vector instead of constants.
//! Used by `cgnetc run --target rust-*` and to test the kernels on whole models.

use std::ops::Range;
use std::time::Instant;

use cgnet_runtime::kernels::{Exec, Input, Isa, KernelError, Memory, ParallelFor};
use cgnet_runtime::model::PackedWeights;
use cgnet_runtime::program::{Step, MAX_GROUP};
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
/// arena, logits and an aligned copy of the weights allocated once (for
/// benchmarks, and one per worker thread of `cgnetc segment` / `eval`): its
/// methods take the model it was made for.
pub struct Runner {
    arena: Arena,
    logits: Vec<f32>,
    /// The packed weights, 64-byte aligned (as generated models hold them).
    weights: PackedWeights,
}

impl Runner {
    pub fn new(model: &CompiledModel) -> Self {
        Self {
            arena: Arena::new(model.arena_bytes),
            logits: vec![0.0; model.classes * model.logits.h * model.logits.w],
            weights: PackedWeights::packed(&model.weights),
        }
    }

    pub fn run(
        &mut self,
        model: &CompiledModel,
        isa: Isa,
        parallel: Option<&dyn ParallelFor>,
        input: Input<'_>,
    ) -> Result<&[f32], KernelError> {
        self.run_timing(model, isa, parallel, input, None)?;
        Ok(&self.logits)
    }

    /// [`Runner::run`] with each group of steps timed: `seconds[i]` gets group
    /// `i`'s wall time, `seconds[groups]` the tail's (for `cgnetc bench --profile`).
    pub fn run_profiled(
        &mut self,
        model: &CompiledModel,
        isa: Isa,
        parallel: Option<&dyn ParallelFor>,
        input: Input<'_>,
        seconds: &mut [f64],
    ) -> Result<(), KernelError> {
        assert_eq!(seconds.len(), model.calls.len() + 1, "one time per call and one for the tail");
        self.run_timing(model, isa, parallel, input, Some(seconds))
    }

    /// The body and the logits tail; with `seconds`, each group's wall time (the tail's last).
    fn run_timing(
        &mut self,
        model: &CompiledModel,
        isa: Isa,
        parallel: Option<&dyn ParallelFor>,
        input: Input<'_>,
        seconds: Option<&mut [f64]>,
    ) -> Result<(), KernelError> {
        let picture = matches!(input, Input::Rgb8 { .. });
        let memory = Memory::with_input(self.arena.as_f32_mut(), input).with_logits(&mut self.logits);
        let exec = Exec::new(memory, self.weights.as_slice(), isa, parallel);
        run_calls(&exec, model.called_steps().chain([whole(&model.tails.run)]), picture, seconds)
    }

    /// The body and the labels tail, as `segment` in emitted code does:
    /// `labels` gets one class index per input pixel.
    pub fn segment(
        &mut self,
        model: &CompiledModel,
        isa: Isa,
        parallel: Option<&dyn ParallelFor>,
        input: Input<'_>,
        labels: &mut [u8],
    ) -> Result<(), KernelError> {
        let picture = matches!(input, Input::Rgb8 { .. });
        let memory = Memory::with_input(self.arena.as_f32_mut(), input).with_labels(labels);
        let exec = Exec::new(memory, self.weights.as_slice(), isa, parallel);
        run_calls(&exec, model.called_steps().chain([whole(&model.tails.segment)]), picture, None)
    }
}

/// A step as a call of all its rows.
fn whole(step: &Step) -> (&[Step], Range<usize>) {
    (std::slice::from_ref(step), 0..step.rows().unwrap_or(1))
}

/// Runs the calls (groups of steps over output rows); with `picture`, the
/// readers of the input in the form that reads an 8-bit picture
/// (`Step::reading_rgb8`), as emitted code does. With `seconds`, each call's
/// wall time.
fn run_calls<'s>(
    exec: &Exec<'_>,
    calls: impl Iterator<Item = (&'s [Step], Range<usize>)>,
    picture: bool,
    mut seconds: Option<&mut [f64]>,
) -> Result<(), KernelError> {
    for (i, (group, rows)) in calls.enumerate() {
        let start = seconds.is_some().then(Instant::now);
        // Any split of a group runs the same computation: one longer than the
        // compiler makes runs in parts that fit the stack array below.
        for part in group.chunks(MAX_GROUP) {
            if picture && part.iter().any(|s| s.reading_rgb8().is_some()) {
                // The picture forms, on the stack (an inference allocates nothing).
                let mut forms = [part[0]; MAX_GROUP];
                for (form, step) in forms.iter_mut().zip(part) {
                    *form = step.picture_form();
                }
                exec.steps_rows(&forms[..part.len()], rows.clone())?;
            } else {
                exec.steps_rows(part, rows.clone())?;
            }
        }
        if let (Some(seconds), Some(start)) = (seconds.as_deref_mut(), start) {
            seconds[i] = start.elapsed().as_secs_f64();
        }
    }
    Ok(())
}

/// Runs the body once and all three tails, on floats (NCHW `[3, H, W]`) or a picture.
pub fn execute(
    model: &CompiledModel,
    isa: Isa,
    parallel: Option<&dyn ParallelFor>,
    input: Input<'_>,
) -> Result<Outputs, KernelError> {
    let picture = matches!(input, Input::Rgb8 { .. });
    let mut arena = Arena::new(model.arena_bytes);
    let (h, w, c) = (model.height, model.width, model.classes);
    let mut logits = vec![0.0f32; c * model.logits.h * model.logits.w];
    let mut scores = vec![0.0f32; c * h * w];
    let mut labels = vec![0u8; h * w];
    let memory = Memory::with_input(arena.as_f32_mut(), input)
        .with_logits(&mut logits)
        .with_scores(&mut scores)
        .with_labels(&mut labels);
    let weights = PackedWeights::packed(&model.weights);
    let exec = Exec::new(memory, weights.as_slice(), isa, parallel);
    let tails = &model.tails;
    let tails = [&tails.run, &tails.scores, &tails.segment].map(whole);
    run_calls(&exec, model.called_steps().chain(tails), picture, None)?;
    Ok(Outputs { logits, scores, labels })
}
