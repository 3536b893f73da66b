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

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::program::{Mem, Normalisation, Step, View, ALL_ROWS};

/// Which kernel variant to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable code, unfused multiply-add: the reference for the others.
    Scalar,
    /// AVX2 + FMA (x86-64).
    Avx2,
    /// AVX-512F (x86-64): 16 lanes, 32 registers, larger register tiles.
    /// Bit-identical to [`Isa::Avx2`]: every output is the same multiply-adds in
    /// the same order; only the vector width and the tiles differ.
    Avx512,
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
        for isa in [Isa::Avx512, Isa::Avx2] {
            if isa.is_supported() {
                return isa;
            }
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
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Isa::Avx2.is_supported() && std::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
            Isa::Neon => cfg!(target_arch = "aarch64"),
        }
    }

    /// f32 lanes per vector of the variant's kernels.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Scalar | Isa::Avx2 | Isa::Neon => 8,
        }
    }
}

/// The multiply-add ceiling of one core for a kernel variant, in GFLOP/s (two
/// FLOPs per multiply-add): the best of `tries` timed runs of a register-only
/// loop of independent vector multiply-adds (no loads, no stores), about 2 ms
/// each. What the kernels reach is quoted as a share of it.
pub fn fma_peak_gflops(isa: Isa, tries: usize) -> Result<f64, KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::Unsupported(isa));
    }
    const ROUNDS: usize = 1_000_000;
    let flops = (ROUNDS * ops::FMA_CHAINS * isa.lanes() * 2) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..tries.max(1) {
        let start = std::time::Instant::now();
        // SAFETY: the variant is supported (checked above).
        let sum = unsafe {
            match isa {
                Isa::Scalar => ops::scalar::fma_loop(ROUNDS),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => ops::avx2::fma_loop(ROUNDS),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => ops::avx512::fma_loop(ROUNDS),
                #[cfg(target_arch = "aarch64")]
                Isa::Neon => ops::neon::fma_loop(ROUNDS),
                #[allow(unreachable_patterns)]
                _ => unreachable!("checked by is_supported"),
            }
        };
        std::hint::black_box(sum);
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(flops / best / 1e9)
}

/// The memories a program addresses, borrowed for `'a`. Built from slices, so
/// every base pointer is valid for its length for as long as the `Memory`
/// lives, and the input is only ever read.
pub struct Memory<'a> {
    pub(crate) arena: (*mut f32, usize),
    input: (*const f32, usize),
    logits: (*mut f32, usize),
    scores: (*mut f32, usize),
    pub(crate) labels: (*mut u8, usize),
    rgb8: (*const u8, usize),
    normalisation: Normalisation,
    // The borrows behind the pointers (the picture's `&'a [u8]` is covered by the labels').
    _borrows: PhantomData<(&'a mut [f32], &'a [f32], &'a mut [u8])>,
}

/// What one inference reads: the float input, or an 8-bit picture that the
/// kernels normalise as they read it.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// NCHW `[1, 3, H, W]` floats, addressed by `Mem::Input` views.
    Floats(&'a [f32]),
    /// Interleaved 8-bit RGB `[H, W, 3]`, addressed by `Mem::Rgb8` views (the
    /// program's steps mapped by `Step::reading_rgb8`).
    Rgb8 { pixels: &'a [u8], normalisation: Normalisation },
}

// SAFETY: `Memory` is a set of exclusive borrows (and one shared borrow of the
// input) turned into addresses. `Exec::step` only lets threads share it for
// steps whose threads write disjoint rows that no thread reads.
unsafe impl Send for Memory<'_> {}
// SAFETY: as above.
unsafe impl Sync for Memory<'_> {}

impl<'a> Memory<'a> {
    /// The arena and the input of one inference; outputs are added with
    /// [`Memory::with_logits`] / [`Memory::with_scores`].
    pub fn new(arena: &'a mut [f32], input: &'a [f32]) -> Self {
        Self::with_input(arena, Input::Floats(input))
    }

    /// The arena and the float input or picture of one inference.
    pub fn with_input(arena: &'a mut [f32], input: Input<'a>) -> Self {
        let (floats, rgb8, normalisation) = match input {
            Input::Floats(x) => ((x.as_ptr(), x.len()), (std::ptr::null(), 0), Normalisation::new([0.0; 3], [1.0; 3])),
            Input::Rgb8 { pixels, normalisation } => {
                ((std::ptr::null(), 0), (pixels.as_ptr(), pixels.len()), normalisation)
            }
        };
        Self {
            arena: (arena.as_mut_ptr(), arena.len()),
            input: floats,
            logits: (std::ptr::null_mut(), 0),
            scores: (std::ptr::null_mut(), 0),
            labels: (std::ptr::null_mut(), 0),
            rgb8,
            normalisation,
            _borrows: PhantomData,
        }
    }

    /// The picture's bytes and how they are normalised (null when the
    /// inference reads floats; `Exec::step` rejects `Mem::Rgb8` views then).
    pub(crate) fn rgb8(&self) -> (*const u8, Normalisation) {
        (self.rgb8.0, self.normalisation)
    }

    /// The caller's logits, addressed by `Mem::Logits` views.
    pub fn with_logits(mut self, logits: &'a mut [f32]) -> Self {
        self.logits = (logits.as_mut_ptr(), logits.len());
        self
    }

    /// The caller's full-resolution scores, addressed by `Mem::Scores` views.
    pub fn with_scores(mut self, scores: &'a mut [f32]) -> Self {
        self.scores = (scores.as_mut_ptr(), scores.len());
        self
    }

    /// The caller's labels, addressed by `Mem::Labels` views (bytes).
    pub fn with_labels(mut self, labels: &'a mut [u8]) -> Self {
        self.labels = (labels.as_mut_ptr(), labels.len());
        self
    }

    /// The base of a float memory (null for the byte-wide labels and picture:
    /// kernels that address them use `labels` / `rgb8`).
    fn base(&self, mem: Mem) -> (*mut f32, usize) {
        match mem {
            Mem::Arena => self.arena,
            // Never written: `Exec::step` rejects steps that write `Mem::Input`.
            Mem::Input => (self.input.0.cast_mut(), self.input.1),
            Mem::Logits => self.logits,
            Mem::Scores => self.scores,
            Mem::Labels | Mem::Rgb8 => (std::ptr::null_mut(), 0),
        }
    }

    fn check(&self, v: &View) -> Result<(), KernelError> {
        let (present, len) = match v.mem {
            Mem::Labels => (!self.labels.0.is_null(), self.labels.1),
            Mem::Rgb8 => (!self.rgb8.0.is_null(), self.rgb8.1),
            mem => {
                let (ptr, len) = self.base(mem);
                (!ptr.is_null(), len)
            }
        };
        if !present || v.end() > len {
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
    #[error("a Winograd step must be a 3x3 stride-1 convolution of at most 64 channels, with no addend")]
    Winograd,
    #[error("the views of a step do not fit together: {0}")]
    Shapes(&'static str),
    #[error("only convolutions and pools read an 8-bit picture, as their source of at most 3 channels")]
    Picture,
    #[error("a step may not write the input (view {0:?})")]
    WritesInput(View),
    #[error("these steps cannot run as one group: {0}")]
    Group(&'static str),
    #[error("these rows cannot run as one band: {0}")]
    Band(&'static str),
    #[error("the output view {0:?} has rows that overlap each other")]
    OverlappingRows(View),
    #[error("the output view {write:?} overlaps the input view {read:?} of the same step")]
    Aliasing { read: Box<View>, write: Box<View> },
}

/// Lends threads to a step. `run` calls `job` on up to `threads()` threads at
/// once, and returns when every call it made has returned; the job divides the
/// work itself ([`Exec::step`] cuts a step into [`Step::chunks`] and each call
/// claims chunks from a shared counter until none is left). So a pool may call
/// the job on fewer threads than it has, on the caller alone, with any index,
/// or late: only speed depends on it, never the result. [`crate::ThreadPool`]
/// calls it on the caller and on the workers that are free.
pub trait ParallelFor: Sync {
    /// Threads that may run a job at once, the caller included.
    fn threads(&self) -> usize;
    fn run(&self, job: &(dyn Fn(usize) + Sync));
}

/// Executes steps against one set of memories and packed weights.
///
/// Safety contract: nothing a caller passes can make a kernel touch memory
/// outside the borrowed slices or race. Before a kernel runs, [`Exec::step`]
/// checks that every view lies inside its memory and every weight offset inside
/// the weights; that the step does not write the input; that the rows of its
/// output are disjoint (threads write different rows); and that the output
/// shares no element with what the step reads, except an elementwise copy
/// reading the very view it writes (each thread then reads only its own rows);
/// a tee (of an elementwise step or a pool) overlaps nothing else the step touches.
/// A step that fails a check is an error, not undefined behaviour.
pub struct Exec<'a> {
    memory: Memory<'a>,
    weights: &'a [f32],
    isa: Isa,
    parallel: Option<&'a dyn ParallelFor>,
}

impl<'a> Exec<'a> {
    pub fn new(memory: Memory<'a>, weights: &'a [f32], isa: Isa, parallel: Option<&'a dyn ParallelFor>) -> Self {
        Self { memory, weights, isa, parallel }
    }

    /// Runs one step, split by output rows across the workers if any.
    pub fn step(&self, step: &Step) -> Result<(), KernelError> {
        self.steps(std::slice::from_ref(step))
    }

    /// Runs a group of steps chunk by chunk: each chunk of output rows goes
    /// through every step of the group in order, on one thread, while what the
    /// first steps wrote is still in that core's cache, and the group ends
    /// with one hand-off between threads instead of one per step. The result is
    /// that of the steps run one after the other, bit for bit: [`check_group`]
    /// admits only steps whose chunks read nothing another chunk writes. A
    /// group of one step is that step.
    pub fn steps(&self, group: &[Step]) -> Result<(), KernelError> {
        let rows = group.first().and_then(|s| s.rows()).unwrap_or(1);
        self.steps_rows(group, 0..rows)
    }

    /// [`Exec::steps`] for output rows `rows` only: one band of a streamed
    /// region, whose rings (views with a [`View::row_mask`]) hold the rows
    /// that the region's next steps read. A step writes at most as many rows
    /// of a ring at once as it has slots, and a Winograd step's rows start
    /// (and, before the last row, end) on a tile boundary, so that its tiles are
    /// those of a whole run.
    pub fn steps_rows(&self, group: &[Step], rows: Range<usize>) -> Result<(), KernelError> {
        for step in group {
            self.check(step)?;
        }
        if group.len() > 1 {
            check_group(group)?;
        }
        check_band(group, &rows)?;
        let first = rows.start;
        let chunk = crate::program::band_chunk_rows(group, rows.len());
        let chunks = rows.len().max(1).div_ceil(chunk);
        let rows = rows.end;
        let run = |range: Range<usize>| {
            for step in group {
                // SAFETY: every step's views and weights were checked by `check`,
                // and `check_group` makes the chunks of a group independent; each
                // chunk is run once (below) and writes its own rows of outputs
                // that no other chunk reads (beyond its own rows of an
                // elementwise copy).
                unsafe { self.rows(step, range.clone()) }
            }
        };
        match self.parallel {
            Some(pool) if pool.threads() > 1 && chunks > 1 => {
                // Chunks are claimed from a counter, so each runs exactly once
                // whatever the pool does: calls of `job` on any number of
                // threads claim nothing twice, and the caller finishes any
                // chunk the pool left.
                let next = AtomicUsize::new(0);
                let work = |_: usize| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks {
                        break;
                    }
                    run(first + i * chunk..(first + (i + 1) * chunk).min(rows));
                };
                pool.run(&work);
                work(0);
            }
            _ => run(first..rows),
        }
        Ok(())
    }

    /// Everything [`Exec::rows`] relies on for one step: see the type's safety contract.
    fn check(&self, step: &Step) -> Result<(), KernelError> {
        if !self.isa.is_supported() {
            return Err(KernelError::Unsupported(self.isa));
        }
        let (reads, write, tee) = accesses(step);
        for view in reads.iter().flatten().chain([&write]).chain(&tee) {
            self.memory.check(view)?;
        }
        check_shapes(step)?;
        // Only an argmax addresses the byte-wide labels, and only as its output.
        let bytes_misused = reads.iter().flatten().chain(&tee).any(|v| v.mem == Mem::Labels)
            || ((write.mem == Mem::Labels) != matches!(step, Step::UpsampleArgmax(_)));
        if bytes_misused {
            return Err(KernelError::Shapes("only an argmax step addresses the labels, as its output"));
        }
        if let Some(w) = [&write].into_iter().chain(&tee).find(|w| w.mem == Mem::Input || w.mem == Mem::Rgb8) {
            return Err(KernelError::WritesInput(*w));
        }
        // A picture is read by the kernels that normalise as they read (its
        // channels index the normalisation's three values).
        let reads_picture = reads.iter().flatten().any(|v| v.mem == Mem::Rgb8);
        let picture_reader = match step {
            Step::Conv(s) => s.src.c <= 3,
            Step::AvgPool(s) => s.src.c <= 3,
            _ => false,
        };
        if reads_picture && !picture_reader {
            return Err(KernelError::Picture);
        }
        if let Some(w) = [&write].into_iter().chain(&tee).find(|w| !w.rows_disjoint()) {
            return Err(KernelError::OverlappingRows(*w));
        }
        // An elementwise step, and a convolution's addend, are read at the
        // very elements written, each by the thread that writes it, before it does.
        let in_place = |read: &View| match step {
            Step::Elementwise(_) => true,
            Step::Conv(s) => s.add == Some(*read),
            _ => false,
        };
        for read in reads.iter().flatten() {
            if read.may_overlap(&write) && !(in_place(read) && *read == write) {
                return Err(KernelError::Aliasing { read: Box::new(*read), write: Box::new(write) });
            }
        }
        if let Some(tee) = tee {
            if let Some(other) = reads.iter().flatten().chain([&write]).find(|v| v.may_overlap(&tee)) {
                return Err(KernelError::Aliasing { read: Box::new(*other), write: Box::new(tee) });
            }
        }
        if let Step::Winograd(s) = step {
            let wide = s.src.c.max(s.dst.c) > crate::program::WINOGRAD_MAX_CHANNELS;
            if wide || s.kernel != 3 || s.stride != 1 || s.dilation != 1 || s.add.is_some() {
                return Err(KernelError::Winograd);
            }
        }
        let max_weight = ops::max_weight_offset(step);
        if max_weight > self.weights.len() {
            return Err(KernelError::Weights(max_weight));
        }
        Ok(())
    }

    /// # Safety
    /// Every view of `step` is in bounds of `self.memory`, weight offsets are in
    /// bounds, and no other thread writes the same destination rows.
    unsafe fn rows(&self, step: &Step, rows: Range<usize>) {
        let (m, w) = (&self.memory, self.weights);
        match self.isa {
            // SAFETY: forwarded from this function's contract; the variant is supported (checked first by `step`).
            Isa::Scalar => unsafe { ops::scalar::run(m, w, step, rows) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: forwarded from this function's contract; the variant is supported (checked first by `step`).
            Isa::Avx2 => unsafe { ops::avx2::run(m, w, step, rows) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: forwarded from this function's contract; the variant is supported (checked first by `step`).
            Isa::Avx512 => unsafe { ops::avx512::run(m, w, step, rows) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: forwarded from this function's contract; NEON is part of every AArch64 CPU.
            Isa::Neon => unsafe { ops::neon::run(m, w, step, rows) },
            #[allow(unreachable_patterns)]
            _ => unreachable!("Exec::step rejects unsupported variants"),
        }
    }
}

/// The views a step reads, the one it writes, and its tee (elementwise steps and pools)
/// (no allocation: this runs per inference).
fn accesses(step: &Step) -> ([Option<View>; 3], View, Option<View>) {
    let (reads, write) = match step {
        Step::Conv(s) | Step::Winograd(s) => ([Some(s.src), s.add, None], s.dst),
        Step::DepthwisePair(s) => ([Some(s.src), None, None], s.dst),
        Step::AvgPool(s) => ([Some(s.src), None, None], s.dst),
        Step::Elementwise(s) => ([Some(s.src), s.add, s.scale.map(|offset| scratch_view(offset, s.src.c))], s.dst),
        // Row `y` of `x` sums into `sums + y * c`.
        Step::ChannelSums(s) => {
            let sums = View {
                mem: Mem::Arena,
                offset: s.sums,
                c: s.x.c,
                h: s.x.h,
                w: 1,
                row_stride: s.x.c,
                pixel_stride: 0,
                channel_stride: 1,
                row_mask: ALL_ROWS,
            };
            ([Some(s.x), None, None], sums)
        }
        // Serial, and only its own scratch.
        Step::Squeeze(s) => ([None, None, None], scratch_view(s.scratch, s.scratch_len())),
        Step::Upsample(s) => ([Some(s.src), None, None], s.dst),
        Step::UpsampleArgmax(s) => ([Some(s.src), None, None], s.dst),
    };
    (reads, write, step.tee())
}

/// Whether `steps` may run as one group ([`Exec::steps`]): chunk by chunk, each
/// chunk's rows through every step in order. They must split into the same
/// output rows (so no Winograd step, whose tiles span rows, and no squeeze), and
/// whenever a later step touches what an earlier one touches and one of them
/// writes it, both must do so row by row on the same rows: row `y` of a step's
/// output, or of what a row-local step ([`Step::row_local`]) reads, is row `y`
/// of the other view. Then no chunk reads or writes a row that another chunk
/// writes, and each row sees the steps in their order. The compiler forms its
/// groups with this function; `Exec` checks every group with it again.
pub fn check_group(group: &[Step]) -> Result<(), KernelError> {
    let rows = group.first().and_then(|s| s.rows());
    if rows.is_none() || group.iter().any(|s| s.rows() != rows || matches!(s, Step::Winograd(_))) {
        return Err(KernelError::Group("its steps split into the same output rows (no Winograd step or squeeze)"));
    }
    // Each access: the view, whether it is written, and whether its row `y` is
    // all that the step's output row `y` touches of it.
    let touched = |step: &Step| {
        let (reads, write, tee) = accesses(step);
        let local = step.row_local();
        let reads = reads.into_iter().flatten().map(move |v| (v, false, local));
        reads.chain([Some(write), tee].into_iter().flatten().map(|v| (v, true, true)))
    };
    for (i, earlier) in group.iter().enumerate() {
        for later in &group[i + 1..] {
            for (a, a_writes, a_local) in touched(earlier) {
                for (b, b_writes, b_local) in touched(later) {
                    let dependent = (a_writes || b_writes) && a.may_overlap(&b);
                    if dependent && !(a_local && b_local && rows_aligned(&a, &b)) {
                        return Err(KernelError::Group(
                            "a later step touches rows of what an earlier step writes (or writes what it reads) \
                             other than its own",
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The rows of a band ([`Exec::steps_rows`]): inside every step's output
/// rows; at most as many as a written ring holds; Winograd tiles whole.
fn check_band(group: &[Step], rows: &Range<usize>) -> Result<(), KernelError> {
    for step in group {
        let all = step.rows().unwrap_or(1);
        if rows.start > rows.end || rows.end > all {
            return Err(KernelError::Band("its rows lie outside a step's output rows"));
        }
        let (_, write, tee) = accesses(step);
        if [write].into_iter().chain(tee).any(|v| v.held_rows() < rows.len()) {
            return Err(KernelError::Band("it writes more rows of a ring than the ring holds"));
        }
        let tile = crate::program::WINOGRAD_TILE;
        if matches!(step, Step::Winograd(_))
            && (!rows.start.is_multiple_of(tile) || (!rows.end.is_multiple_of(tile) && rows.end != all))
        {
            return Err(KernelError::Band("a Winograd step's rows start and end on tile boundaries"));
        }
        if matches!(step, Step::Squeeze(_)) && (rows.start, rows.end) != (0, all) {
            return Err(KernelError::Band("a squeeze runs whole"));
        }
    }
    Ok(())
}

/// Whether row `y` of `a` can share elements only with row `y` of `b`: both
/// have `h` rows at one row stride, each row fits in it, and their first rows
/// start less than a row apart.
fn rows_aligned(a: &View, b: &View) -> bool {
    let span = |v: &View| {
        v.w.saturating_sub(1)
            .saturating_mul(v.pixel_stride)
            .saturating_add(v.c.saturating_sub(1).saturating_mul(v.channel_stride))
    };
    let stride = a.row_stride;
    a.mem == b.mem
        && a.h == b.h
        && a.row_mask == b.row_mask
        && b.row_stride == stride
        && span(a) < stride
        && span(b) < stride
        && a.offset.saturating_add(span(a)) < b.offset.saturating_add(stride)
        && b.offset.saturating_add(span(b)) < a.offset.saturating_add(stride)
}

/// The shape relations the kernels index by (e.g. a copy reads its source at
/// every coordinate of its destination).
fn check_shapes(step: &Step) -> Result<(), KernelError> {
    let same = |a: &View, b: &View| (a.c, a.h, a.w) == (b.c, b.h, b.w);
    let fits = match step {
        Step::DepthwisePair(s) => (s.dst.c, s.dst.h, s.dst.w) == (2 * s.src.c, s.src.h, s.src.w),
        Step::Upsample(s) => s.dst.c == s.src.c && s.dst.mem != Mem::Labels,
        // A label is a byte; only labels views are written as bytes.
        Step::UpsampleArgmax(s) => (1..=256).contains(&s.src.c) && s.dst.c == 1 && s.dst.mem == Mem::Labels,
        Step::AvgPool(s) => s.dst.c == s.src.c && s.tee.is_none_or(|t| same(&t, &s.dst)),
        Step::Elementwise(s) => {
            same(&s.src, &s.dst) && s.add.is_none_or(|a| same(&a, &s.dst)) && s.tee.is_none_or(|t| same(&t, &s.dst))
        }
        Step::Conv(s) | Step::Winograd(s) => s.add.is_none_or(|a| same(&a, &s.dst)),
        Step::ChannelSums(_) | Step::Squeeze(_) => true,
    };
    if fits {
        Ok(())
    } else {
        Err(KernelError::Shapes(match step {
            Step::DepthwisePair(_) => "a depthwise pair writes 2c channels of its input's size",
            Step::AvgPool(_) => "a pool keeps its channel count, and its tee has its output's shape",
            Step::Upsample(_) => "an upsample keeps its channel count and writes floats",
            Step::Conv(_) | Step::Winograd(_) => "a convolution's addend has its output's shape",
            Step::UpsampleArgmax(_) => "an argmax of 1..=256 channels writes one-channel labels",
            _ => "a copy's source, addend, destination and tee have one shape",
        }))
    }
}

/// `len` floats of arena scratch at `offset`, as a view for the bounds check.
fn scratch_view(offset: usize, len: usize) -> View {
    View {
        mem: Mem::Arena,
        offset,
        c: len,
        h: 1,
        w: 1,
        row_stride: 0,
        pixel_stride: 0,
        channel_stride: 1,
        row_mask: ALL_ROWS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::{Conv, Elementwise, Epilogue};

    /// An NHWC view of `c` channels in a buffer of `stride` floats per pixel.
    fn nhwc(mem: Mem, offset: usize, c: usize, h: usize, w: usize, stride: usize) -> View {
        View {
            mem,
            offset,
            c,
            h,
            w,
            row_stride: w * stride,
            pixel_stride: stride,
            channel_stride: 1,
            row_mask: ALL_ROWS,
        }
    }

    fn copy(src: View, dst: View) -> Step {
        Step::Elementwise(Elementwise::copy(src, dst, Epilogue::NONE))
    }

    fn run(step: &Step) -> Result<(), KernelError> {
        let mut arena = vec![0.0f32; 1024];
        let input = vec![1.0f32; 3 * 4 * 4];
        let weights = vec![0.0f32; 1024];
        Exec::new(Memory::new(&mut arena, &input), &weights, Isa::Scalar, None).step(step)
    }

    /// The model's input, NCHW `[3, 4, 4]`.
    fn planar_input() -> View {
        View {
            mem: Mem::Input,
            offset: 0,
            c: 3,
            h: 4,
            w: 4,
            row_stride: 4,
            pixel_stride: 1,
            channel_stride: 16,
            row_mask: ALL_ROWS,
        }
    }

    #[test]
    fn steps_that_could_corrupt_memory_are_errors() {
        let input = planar_input();
        let a = nhwc(Mem::Arena, 0, 8, 4, 4, 8);
        assert_eq!(run(&copy(nhwc(Mem::Arena, 0, 3, 4, 4, 8), input)), Err(KernelError::WritesInput(input)));
        assert!(matches!(run(&copy(a, nhwc(Mem::Arena, 512, 8, 4, 3, 8))), Err(KernelError::Shapes(_))));

        let rows_alias = View { row_stride: 0, ..a };
        assert_eq!(
            run(&copy(nhwc(Mem::Arena, 512, 8, 4, 4, 8), rows_alias)),
            Err(KernelError::OverlappingRows(rows_alias))
        );

        // A convolution whose output overlaps its input (shifted by one pixel).
        let shifted = nhwc(Mem::Arena, 8, 8, 4, 4, 8);
        let conv = Step::Conv(Conv {
            src: a,
            dst: shifted,
            kernel: 3,
            stride: 1,
            dilation: 1,
            weights: 0,
            bias: 0,
            add: None,
            epilogue: Epilogue::NONE,
        });
        assert_eq!(run(&conv), Err(KernelError::Aliasing { read: Box::new(a), write: Box::new(shifted) }));
        // Its addend may be its output, exactly (read at each output element before it is written) ...
        let Step::Conv(plain) = conv else { unreachable!() };
        let elsewhere = nhwc(Mem::Arena, 256, 8, 4, 4, 8);
        let onto = |add: View| Step::Conv(Conv { dst: a, add: Some(add), src: elsewhere, ..plain });
        assert_eq!(run(&onto(a)), Ok(()));
        // ... but not a view that overlaps it otherwise.
        let offset = nhwc(Mem::Arena, 4, 8, 4, 4, 8);
        assert_eq!(run(&onto(offset)), Err(KernelError::Aliasing { read: Box::new(offset), write: Box::new(a) }));

        let too_long = nhwc(Mem::Arena, 1000, 8, 4, 4, 8);
        assert!(matches!(run(&copy(a, too_long)), Err(KernelError::OutOfBounds { .. })));

        // A tee is a second output: it may overlap nothing else the step touches.
        let b = nhwc(Mem::Arena, 256, 8, 4, 4, 8);
        let teeing =
            |tee: View| Step::Elementwise(Elementwise { tee: Some(tee), ..Elementwise::copy(a, a, Epilogue::NONE) });
        assert_eq!(run(&teeing(b)), Ok(()));
        assert_eq!(run(&teeing(a)), Err(KernelError::Aliasing { read: Box::new(a), write: Box::new(a) }));
        let a3 = nhwc(Mem::Arena, 0, 3, 4, 4, 8);
        let into_input = Elementwise { tee: Some(input), ..Elementwise::copy(a3, a3, Epilogue::NONE) };
        assert_eq!(run(&Step::Elementwise(into_input)), Err(KernelError::WritesInput(input)));
        assert!(matches!(run(&teeing(nhwc(Mem::Arena, 256, 8, 4, 3, 8))), Err(KernelError::Shapes(_))));
        assert!(matches!(run(&teeing(too_long)), Err(KernelError::OutOfBounds { .. })));
    }

    #[test]
    fn groups_admit_only_steps_whose_chunks_are_independent() {
        // Three 8-channel 4x4 buffers (rows of 32 floats).
        let [a, b, c] = [0, 256, 512].map(|at| nhwc(Mem::Arena, at, 8, 4, 4, 8));
        let conv = |src: View, dst: View, kernel: usize| {
            let (stride, dilation, weights, bias, epilogue) = (1, 1, 0, 0, Epilogue::NONE);
            Conv { src, dst, kernel, stride, dilation, weights, bias, add: None, epilogue }
        };
        // Row y of each later step reads row y of what the earlier ones wrote.
        let chain = [copy(a, b), Step::Conv(conv(b, c, 1)), copy(c, c)];
        assert_eq!(check_group(&chain), Ok(()));
        // Independent steps group too.
        assert_eq!(check_group(&[copy(a, b), copy(a, c)]), Ok(()));
        let refused = |group: &[Step]| matches!(check_group(group), Err(KernelError::Group(_)));
        // A 3x3 convolution reads the rows around its own.
        assert!(refused(&[copy(a, b), Step::Conv(conv(b, c, 3))]));
        // ... and must not have its input overwritten by a later step either.
        assert!(refused(&[Step::Conv(conv(a, b, 3)), copy(c, a)]));
        // A copy into the previous step's output, one row down.
        let down = View { offset: b.offset + 32, h: 3, ..b };
        assert!(refused(&[copy(a, b), copy(View { h: 3, ..c }, down)]));
        // Different row counts, a squeeze, a Winograd step.
        assert!(refused(&[copy(a, b), copy(View { h: 2, ..a }, View { h: 2, ..c })]));
        assert!(refused(&[Step::Winograd(conv(a, b, 3)), copy(b, c)]));
        // `Exec` checks every group it runs.
        let mut arena = vec![1.0f32; 1024];
        let weights = vec![0.0f32; 1024];
        let exec = Exec::new(Memory::new(&mut arena, &[]), &weights, Isa::Scalar, None);
        assert!(matches!(exec.steps(&[copy(a, b), Step::Conv(conv(b, c, 3))]), Err(KernelError::Group(_))));
        assert_eq!(exec.steps(&chain), Ok(()));
    }

    #[test]
    fn what_the_compiler_emits_passes() {
        let a = nhwc(Mem::Arena, 0, 8, 4, 4, 8);
        // An elementwise copy in place.
        assert_eq!(run(&copy(a, a)), Ok(()));
        // Disjoint channel slices of one padded buffer (a concat written in place).
        let (left, right) = (nhwc(Mem::Arena, 0, 4, 4, 4, 16), nhwc(Mem::Arena, 4, 4, 4, 4, 16));
        assert!(!left.may_overlap(&right) && !right.may_overlap(&left));
        assert_eq!(run(&copy(left, right)), Ok(()));
        // NCHW rows nest in channel planes: disjoint.
        let nchw = View { mem: Mem::Arena, offset: 512, ..planar_input() };
        assert!(nchw.rows_disjoint());
        assert_eq!(run(&copy(nhwc(Mem::Arena, 0, 3, 4, 4, 8), nchw)), Ok(()));
        // Overlapping slices are caught.
        let (l, r) = (nhwc(Mem::Arena, 0, 6, 4, 4, 16), nhwc(Mem::Arena, 5, 3, 4, 4, 16));
        assert!(l.may_overlap(&r));
    }

    #[test]
    fn a_picture_is_read_only_by_convolutions_and_pools_and_never_written() {
        let planar = planar_input();
        let picture = planar.interleaved_rgb8().unwrap();
        assert_eq!((picture.row_stride, picture.pixel_stride, picture.channel_stride), (12, 3, 1));
        // Element (c, y, x) of the planar input is byte y * 12 + x * 3 + c of the picture.
        let corner = View { offset: 16 + 4 + 1, c: 2, h: 2, w: 2, ..planar }.interleaved_rgb8().unwrap();
        assert_eq!(corner.offset, 12 + 3 + 1);
        assert_eq!(View { pixel_stride: 3, ..planar }.interleaved_rgb8(), None);

        let pixels = [7u8; 3 * 4 * 4];
        let normalisation = Normalisation::new([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]);
        let run = |step: &Step| {
            let mut arena = vec![0.0f32; 1024];
            let memory = Memory::with_input(&mut arena, Input::Rgb8 { pixels: &pixels, normalisation });
            Exec::new(memory, &[], Isa::Scalar, None).step(step).map(|()| arena[0])
        };
        let pool = |src: View| {
            Step::AvgPool(crate::program::AvgPool::new(src, nhwc(Mem::Arena, 0, 3, 2, 2, 3), Epilogue::NONE))
        };
        // The middle of a 3x3 window of (7 - 1) * 1 = 6: padding counts as zero, 4 of 9 taps inside.
        assert_eq!(run(&pool(picture)), Ok(6.0 * 4.0 / 9.0));
        assert_eq!(run(&copy(picture, nhwc(Mem::Arena, 0, 3, 4, 4, 3))), Err(KernelError::Picture));
        assert_eq!(run(&copy(nhwc(Mem::Arena, 0, 3, 4, 4, 3), picture)), Err(KernelError::WritesInput(picture)));
        // A float program run on a picture reads no floats: an error, not a read of nothing.
        assert!(matches!(run(&pool(planar)), Err(KernelError::OutOfBounds { .. })));
    }

    #[test]
    fn the_fma_peak_is_measured_where_the_variant_runs() {
        assert!(fma_peak_gflops(Isa::Scalar, 1).unwrap() > 0.0);
        let unsupported = [Isa::Avx2, Isa::Neon].into_iter().find(|isa| !isa.is_supported()).unwrap();
        assert_eq!(fma_peak_gflops(unsupported, 1), Err(KernelError::Unsupported(unsupported)));
    }

    /// A pool that breaks the `ParallelFor` conventions: it calls `job(0)` on
    /// two threads at once and never calls the other indices.
    struct Careless;

    impl ParallelFor for Careless {
        fn threads(&self) -> usize {
            4
        }
        fn run(&self, job: &(dyn Fn(usize) + Sync)) {
            std::thread::scope(|scope| {
                scope.spawn(|| job(0));
                scope.spawn(|| job(0));
            });
        }
    }

    #[test]
    fn a_careless_pool_cannot_make_parts_race_or_go_missing() {
        // Big enough to be cut into several chunks.
        const HALF: usize = 64 * 64 * 16;
        let src = nhwc(Mem::Arena, 0, 64, 16, 64, 64);
        let dst = nhwc(Mem::Arena, HALF, 64, 16, 64, 64);
        let step = copy(src, dst);
        assert!(step.chunks() > 1);
        let input = [0.0f32; 3];
        let mut arena: Vec<f32> = (0..2 * HALF).map(|i| if i < HALF { i as f32 } else { -1.0 }).collect();
        Exec::new(Memory::new(&mut arena, &input), &[], Isa::Scalar, Some(&Careless)).step(&step).unwrap();
        assert_eq!(arena[HALF..], arena[..HALF], "every row was copied exactly once");
    }
}
