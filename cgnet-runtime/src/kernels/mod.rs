//! The kernels generated Rust calls: one generic implementation per op over
//! `simd::Simd`, instantiated per instruction set, each working on a range
//! of output rows so that a step can be split across threads.
//!
//! Memory is addressed through [`Memory`]: raw base pointers with lengths.
//! [`Exec::step`] checks every view of a step against those lengths before a
//! kernel runs, so kernels index without further checks.

pub mod head;
mod ops;
mod simd;

use std::ops::Range;

use crate::program::{Mem, Step, View};

/// Which kernel variant to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable code, unfused multiply-add: the reference for the others.
    Scalar,
    /// AVX2 + FMA (x86-64).
    Avx2,
    /// AArch64 NEON (every AArch64 CPU has it).
    Neon,
}

impl Isa {
    /// The best variant this CPU supports.
    ///
    /// ```
    /// use cgnet_runtime::kernels::Isa;
    /// let isa = Isa::detect();
    /// assert!(isa.is_supported() && Isa::Scalar.is_supported());
    /// ```
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
        #[cfg(target_arch = "aarch64")]
        return Isa::Neon;
        #[allow(unreachable_code)]
        Isa::Scalar
    }

    /// Whether this CPU can run the variant.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 => false,
            Isa::Neon => cfg!(target_arch = "aarch64"),
        }
    }
}

/// Base pointers and lengths (in f32) of the memories a program addresses.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub arena: (*mut f32, usize),
    pub input: (*const f32, usize),
    pub logits: (*mut f32, usize),
    pub scores: (*mut f32, usize),
}

// SAFETY: `Memory` is a set of addresses; threads that share it write disjoint
// output rows of a step (see `Exec::step`).
unsafe impl Send for Memory {}
unsafe impl Sync for Memory {}

impl Memory {
    fn base(&self, mem: Mem) -> (*mut f32, usize) {
        match mem {
            Mem::Arena => self.arena,
            Mem::Input => (self.input.0.cast_mut(), self.input.1),
            Mem::Logits => self.logits,
            Mem::Scores => self.scores,
        }
    }

    fn check(&self, v: &View) -> Result<(), KernelError> {
        let (ptr, len) = self.base(v.mem);
        if ptr.is_null() || v.end() > len {
            return Err(KernelError::OutOfBounds { view: *v, len });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    #[error("view {view:?} does not fit in its memory of {len} floats")]
    OutOfBounds { view: View, len: usize },
    #[error("weights offset {0} is outside the packed weights")]
    Weights(usize),
    #[error("kernel variant {0:?} is not supported by this CPU")]
    Unsupported(Isa),
    #[error("a Winograd step must be a 3x3 stride-1 convolution of at most 64 channels")]
    Winograd,
}

/// Runs a job on `n` workers: `job(i)` for `i in 0..n`, returning when all are done.
pub trait ParallelFor: Sync {
    fn threads(&self) -> usize;
    fn run(&self, job: &(dyn Fn(usize) + Sync));
}

/// Executes steps against one set of memories and packed weights.
pub struct Exec<'a> {
    pub memory: Memory,
    pub weights: &'a [f32],
    pub isa: Isa,
    pub parallel: Option<&'a dyn ParallelFor>,
}

impl Exec<'_> {
    /// Runs one step, split by output rows across the workers if any.
    pub fn step(&self, step: &Step) -> Result<(), KernelError> {
        if !self.isa.is_supported() {
            return Err(KernelError::Unsupported(self.isa));
        }
        for view in views(step).iter().flatten() {
            self.memory.check(view)?;
        }
        if let Step::Winograd(s) = step {
            let wide = s.src.c.max(s.dst.c) > crate::program::WINOGRAD_MAX_CHANNELS;
            if wide || s.kernel != 3 || s.stride != 1 || s.dilation != 1 {
                return Err(KernelError::Winograd);
            }
        }
        let max_weight = ops::max_weight_offset(step);
        if max_weight > self.weights.len() {
            return Err(KernelError::Weights(max_weight));
        }
        match (step.rows(), self.parallel) {
            (Some(rows), Some(pool)) if pool.threads() > 1 && rows > 1 => {
                let n = pool.threads().min(rows);
                pool.run(&|i| {
                    if i < n {
                        // SAFETY: views and weights were checked above; workers
                        // write disjoint row ranges of the destination.
                        unsafe { self.rows(step, i * rows / n..(i + 1) * rows / n) }
                    }
                });
            }
            _ => {
                let rows = step.rows().unwrap_or(1);
                // SAFETY: as above, on one thread.
                unsafe { self.rows(step, 0..rows) }
            }
        }
        Ok(())
    }

    /// # Safety
    /// Every view of `step` is in bounds of `self.memory`, weight offsets are in
    /// bounds, and no other thread writes the same destination rows.
    unsafe fn rows(&self, step: &Step, rows: Range<usize>) {
        let (m, w) = (&self.memory, self.weights);
        match self.isa {
            Isa::Scalar => unsafe { ops::scalar::run(m, w, step, rows) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { ops::avx2::run(m, w, step, rows) },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => unsafe { ops::neon::run(m, w, step, rows) },
            #[allow(unreachable_patterns)]
            _ => unreachable!("Exec::step rejects unsupported variants"),
        }
    }
}

/// Every view a step reads or writes (no allocation: this runs per inference).
fn views(step: &Step) -> [Option<View>; 4] {
    match step {
        Step::Conv(s) | Step::Winograd(s) => [Some(s.src), Some(s.dst), None, None],
        Step::DepthwisePair(s) => [Some(s.src), Some(s.dst), None, None],
        Step::AvgPool(s) => [Some(s.src), Some(s.dst), None, None],
        Step::Copy(s) => [Some(s.src), Some(s.dst), s.add, s.scale.map(|offset| scratch_view(offset, s.src.c))],
        Step::ChannelSums(s) => [Some(s.x), Some(scratch_view(s.sums, s.x.h * s.x.c)), None, None],
        Step::GlobalContext(s) => [Some(scratch_view(s.scratch, s.scratch_len())), None, None, None],
    }
}

/// `len` floats of arena scratch at `offset`, as a view for the bounds check.
fn scratch_view(offset: usize, len: usize) -> View {
    View { mem: Mem::Arena, offset, c: len, h: 1, w: 1, row_stride: 0, pixel_stride: 0, channel_stride: 1 }
}
