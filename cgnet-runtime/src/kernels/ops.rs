//! The kernels, generic over the lane type. Channels are processed one vector
//! (`S::LANES`: 8 or 16) at a time. The packed weights are laid out in blocks
//! of [`PACKED_BLOCK`] channels whatever the vector width: 8-lane variants
//! load whole vectors of them (the padding guarantees that), wider ones load
//! the valid lanes only (`packed`).
//!
//! Every kernel here is `unsafe`: its caller (`Exec::step`) has checked that
//! all views are in bounds of their memories and all weight offsets inside
//! the packed weights, that the views' shapes fit the op, that the output
//! does not alias what the step reads, and that concurrent callers write
//! disjoint destination rows. Each `unsafe` block says which of these it uses.

// Register tiles are indexed by (pixel, vector); index loops say that most directly.
#![allow(clippy::needless_range_loop)]

use std::ops::Range;

use super::simd::{Simd, PACKED_BLOCK};
use super::Memory;
use crate::program::{
    Act, AvgPool, ChannelSums, Conv, DepthwisePair, Elementwise, Epilogue, Mem, Normalisation, Squeeze, Step, View,
    WINOGRAD_MAX_CHANNELS, WINOGRAD_POSITIONS, WINOGRAD_TILE,
};

/// Per instruction set, one entry point per op, each compiled with the set's
/// target features (so the generic kernels inline into it with their
/// intrinsics) and kept out of line (so each op gets its own register
/// allocation and shows up by name in profiles).
macro_rules! entry_points {
    ($module:ident, $simd:ty $(, $features:literal)?) => {
        pub(super) mod $module {
            use super::*;

            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn conv_rows(m: &Memory, w: *const f32, s: &Conv, rows: Range<usize>) {
                // SAFETY: the caller upholds this function's contract, which is the kernel's; `Exec::step` checked that the CPU has this module's target features.
                unsafe { conv::<Tiles>(m, w, s, rows) }
            }

            /// This instruction set's register tiles, each shape a function of its own.
            struct Tiles;

            impl ConvTiles for Tiles {
                type S = $simd;

                #[inline(always)]
                unsafe fn tile<X: Source, const P: usize, const V: usize>(job: TileJob<X>) {
                    // SAFETY: forwarded from this function's contract.
                    unsafe { conv_tile_shape::<X, P, V>(job) }
                }
            }

            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn conv_tile_shape<X: Source, const P: usize, const V: usize>(job: TileJob<X>) {
                // SAFETY: the caller upholds this function's contract, which is `conv_tile`'s; `Exec::step` checked that the CPU has this module's target features.
                unsafe { conv_tile::<$simd, X, P, V>(job) }
            }

            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn winograd_rows(m: &Memory, w: *const f32, s: &Conv, rows: Range<usize>) {
                // SAFETY: the caller upholds this function's contract, which is the kernel's; `Exec::step` checked that the CPU has this module's target features.
                unsafe { winograd::<$simd>(m, w, s, rows) }
            }

            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn depthwise_pair_rows(m: &Memory, w: *const f32, s: &DepthwisePair, rows: Range<usize>) {
                // SAFETY: the caller upholds this function's contract, which is the kernel's; `Exec::step` checked that the CPU has this module's target features.
                unsafe { depthwise_pair::<$simd>(m, w, s, rows) }
            }

            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn avg_pool_rows(m: &Memory, w: *const f32, s: &AvgPool, rows: Range<usize>) {
                // SAFETY: the caller upholds this function's contract, which is the kernel's; `Exec::step` checked that the CPU has this module's target features.
                unsafe { avg_pool::<$simd>(m, w, s, rows) }
            }

            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn copy_rows(m: &Memory, w: *const f32, s: &Elementwise, rows: Range<usize>) {
                // SAFETY: the caller upholds this function's contract, which is the kernel's; `Exec::step` checked that the CPU has this module's target features.
                unsafe { copy::<$simd>(m, w, s, rows) }
            }

            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn channel_sums_rows(m: &Memory, s: &ChannelSums, rows: Range<usize>) {
                // SAFETY: the caller upholds this function's contract, which is the kernel's; `Exec::step` checked that the CPU has this module's target features.
                unsafe { channel_sums::<$simd>(m, s, rows) }
            }

            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            unsafe fn squeeze(m: &Memory, w: *const f32, s: &Squeeze) {
                // SAFETY: the caller upholds this function's contract, which is the kernel's; `Exec::step` checked that the CPU has this module's target features.
                unsafe { global_context::<$simd>(m, w, s) }
            }

            /// `rounds` rounds of [`FMA_CHAINS`] independent multiply-adds on
            /// registers (see [`fma_chains`]).
            ///
            /// # Safety
            /// The instruction set is supported by this CPU.
            $(#[target_feature(enable = $features)])?
            #[inline(never)]
            pub(in crate::kernels) unsafe fn fma_loop(rounds: usize) -> f32 {
                fma_chains::<$simd>(rounds)
            }

            /// # Safety
            /// As for every kernel: views and weight offsets in bounds (checked by
            /// `Exec::step`), disjoint destination rows per thread, and the
            /// instruction set supported by this CPU.
            pub(in crate::kernels) unsafe fn run(m: &Memory, w: &[f32], step: &Step, rows: Range<usize>) {
                let w = w.as_ptr();
                // SAFETY: forwarded from this function's contract (see `# Safety`).
                unsafe {
                    match step {
                        Step::Conv(s) => conv_rows(m, w, s, rows),
                        Step::Winograd(s) => winograd_rows(m, w, s, rows),
                        Step::DepthwisePair(s) => depthwise_pair_rows(m, w, s, rows),
                        Step::AvgPool(s) => avg_pool_rows(m, w, s, rows),
                        Step::Elementwise(s) => copy_rows(m, w, s, rows),
                        Step::ChannelSums(s) => channel_sums_rows(m, s, rows),
                        Step::Squeeze(s) => squeeze(m, w, s),
                        Step::Upsample(s) => super::super::head::upsample_rows(m, s, rows),
                        Step::UpsampleArgmax(s) => super::super::head::upsample_argmax_rows(m, s, rows),
                    }
                }
            }
        }
    };
}

entry_points!(scalar, super::super::simd::Scalar);
#[cfg(target_arch = "x86_64")]
entry_points!(avx2, super::super::simd::Avx2, "avx2,fma");
#[cfg(target_arch = "x86_64")]
entry_points!(avx512, super::super::simd::Avx512, "avx512f,avx2,fma");
#[cfg(target_arch = "aarch64")]
entry_points!(neon, super::super::simd::Neon, "neon");

/// Independent multiply-add chains of the peak loop: enough to cover the FMA
/// latency on two FMA ports (4 cycles x 2), few enough to stay in registers.
pub(super) const FMA_CHAINS: usize = 12;

/// The machine's multiply-add ceiling for a variant: `rounds` rounds of
/// [`FMA_CHAINS`] vector multiply-adds with no memory traffic. Returns a sum of
/// the results so that the work cannot be optimised away.
#[inline(always)]
fn fma_chains<S: Simd>(rounds: usize) -> f32 {
    let mut acc = [S::zero(); FMA_CHAINS];
    let (a, b) = (S::splat(std::hint::black_box(0.999_9)), S::splat(std::hint::black_box(1e-6)));
    for _ in 0..rounds {
        for x in acc.iter_mut() {
            *x = S::madd(*x, a, b);
        }
    }
    acc.iter().map(|v| S::to_array(*v).as_ref().iter().sum::<f32>()).sum()
}

/// One past the largest packed-weight index a step reads.
pub(super) fn max_weight_offset(step: &Step) -> usize {
    // Saturating: a step with absurd sizes must fail the bounds check, not wrap past it.
    let prod = |factors: &[usize]| factors.iter().fold(1usize, |p, f| p.saturating_mul(*f));
    const B: usize = PACKED_BLOCK;
    let pad = |c: usize| c.saturating_add(B - 1) / B * B + B;
    let epi = |e: &Epilogue, c: usize| {
        let act = |a: Act| if let Act::Prelu(o) = a { o.saturating_add(pad(c)) } else { 0 };
        let affine = e.affine.map_or(0, |(sc, sh)| sc.max(sh).saturating_add(pad(c)));
        act(e.act).max(affine).max(act(e.act2))
    };
    let co_pad = |c: usize| c.saturating_add(B - 1) / B * B;
    match step {
        Step::Conv(s) => {
            let weights = s.weights.saturating_add(prod(&[s.kernel, s.kernel, s.src.c, co_pad(s.dst.c)]));
            weights.max(s.bias.saturating_add(pad(s.dst.c))).max(epi(&s.epilogue, s.dst.c))
        }
        Step::Winograd(s) => {
            let weights = s.weights.saturating_add(prod(&[WINOGRAD_POSITIONS, s.src.c, co_pad(s.dst.c)]));
            weights.max(s.bias.saturating_add(pad(s.dst.c))).max(epi(&s.epilogue, s.dst.c))
        }
        Step::DepthwisePair(s) => {
            let c = s.src.c;
            let weights = s.loc_weights.max(s.sur_weights).saturating_add(prod(&[9, pad(c)]));
            weights.max(s.loc_bias.max(s.sur_bias).saturating_add(pad(c))).max(epi(&s.epilogue, c.saturating_mul(2)))
        }
        Step::AvgPool(s) => epi(&s.epilogue, s.dst.c).max(epi(&s.tee_epilogue, s.dst.c)),
        Step::ChannelSums(_) | Step::Upsample(_) | Step::UpsampleArgmax(_) => 0,
        Step::Elementwise(s) => epi(&s.epilogue, s.dst.c).max(epi(&s.tee_epilogue, s.dst.c)),
        Step::Squeeze(s) => {
            let c = s.x.c;
            (s.fc1_weight.saturating_add(prod(&[s.hidden, c])))
                .max(s.fc1_bias.saturating_add(s.hidden))
                .max(s.fc2_weight.saturating_add(prod(&[c, s.hidden])))
                .max(s.fc2_bias.saturating_add(c))
        }
    }
}

fn ptr(m: &Memory, v: &View) -> *mut f32 {
    m.base(v.mem).0
}

/// A vector of packed weights or per-channel parameters at `p`, of which the
/// first `n` lanes are used (`n >= 1`; the other lanes' results are never
/// stored). With 8 lanes the packing pads every such vector to whole blocks,
/// so it is one plain load; wider vectors load the `n` lanes only.
///
/// # Safety
/// `p` is inside the packed weights with `n` floats after it, and a whole
/// [`PACKED_BLOCK`] where `n` ends inside one (true of every row and vector
/// that `max_weight_offset` covers).
#[inline(always)]
unsafe fn packed<S: Simd>(p: *const f32, n: usize) -> S::V {
    if S::LANES == PACKED_BLOCK {
        // SAFETY: this function's contract: a whole block is readable.
        unsafe { S::load(p) }
    } else {
        // SAFETY: this function's contract: `n` floats are readable.
        unsafe { S::load_first(p, n) }
    }
}

/// `max(v, 0) + min(v, 0) * slope`, i.e. `v < 0 ? v * slope : v`.
#[inline(always)]
fn prelu<S: Simd>(v: S::V, slope: S::V) -> S::V {
    S::madd(S::min(v, S::zero()), slope, S::max(v, S::zero()))
}

/// The epilogue on the vector of channels `c..c + n` (`n <= S::LANES`).
#[inline(always)]
fn epilogue<S: Simd>(e: &Epilogue, w: *const f32, c: usize, n: usize, v: S::V) -> S::V {
    Prepared::new::<S>(e, Channels { w, c, n }).apply::<S>(v)
}

/// An activation with its slopes loaded: [`Act`] for one vector.
#[derive(Clone, Copy)]
enum Slopes<V> {
    None,
    Relu,
    Prelu(V),
}

/// An [`Epilogue`] for one vector with its parameters loaded, for kernels that
/// apply it to many pixels of the same channels: `apply` then loads nothing
/// and tests no lane count. ([`epilogue`] is this, loaded for one use.)
#[derive(Clone, Copy)]
struct Prepared<V> {
    act: Slopes<V>,
    affine: Option<(V, V)>,
    act2: Slopes<V>,
}

/// Where a [`Prepared`] takes its per-channel parameters from. (A trait, not a
/// closure: closures do not inherit target features.)
trait Params: Copy {
    /// The parameter vector at offset `at` of the packed weights.
    fn load<S: Simd>(self, at: usize) -> S::V;
}

/// Channels `c..c + n` in the lanes (lanes that are channels).
#[derive(Clone, Copy)]
struct Channels {
    w: *const f32,
    c: usize,
    n: usize,
}

impl Params for Channels {
    #[inline(always)]
    fn load<S: Simd>(self, at: usize) -> S::V {
        // SAFETY: epilogue parameters are block-padded per-channel vectors of the packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`); channels `c..c + n` are channels of the step's output.
        unsafe { packed::<S>(self.w.add(at + self.c), self.n) }
    }
}

/// Channel `c` in every lane (lanes that are pixels).
#[derive(Clone, Copy)]
struct Channel {
    w: *const f32,
    c: usize,
}

impl Params for Channel {
    #[inline(always)]
    fn load<S: Simd>(self, at: usize) -> S::V {
        // SAFETY: as for `Channels`; `c` is a channel of the step's output.
        S::splat(unsafe { *self.w.add(at + self.c) })
    }
}

impl<V: Copy> Prepared<V> {
    /// The epilogue `e` with its parameters from `params`.
    #[inline(always)]
    fn new<S: Simd<V = V>>(e: &Epilogue, params: impl Params) -> Self {
        #[inline(always)]
        fn slopes<S: Simd>(a: Act, params: impl Params) -> Slopes<S::V> {
            match a {
                Act::None => Slopes::None,
                Act::Relu => Slopes::Relu,
                Act::Prelu(o) => Slopes::Prelu(params.load::<S>(o)),
            }
        }
        let mut affine = None;
        if let Some((scale, shift)) = e.affine {
            affine = Some((params.load::<S>(scale), params.load::<S>(shift)));
        }
        Prepared { act: slopes::<S>(e.act, params), affine, act2: slopes::<S>(e.act2, params) }
    }

    #[inline(always)]
    fn apply<S: Simd<V = V>>(&self, v: V) -> V {
        #[inline(always)]
        fn activate<S: Simd>(a: Slopes<S::V>, v: S::V) -> S::V {
            match a {
                Slopes::None => v,
                Slopes::Relu => S::max(v, S::zero()),
                Slopes::Prelu(slope) => prelu::<S>(v, slope),
            }
        }
        let mut v = activate::<S>(self.act, v);
        if let Some((scale, shift)) = self.affine {
            v = S::madd(v, scale, shift);
        }
        activate::<S>(self.act2, v)
    }
}

/// Loads `n <= S::LANES` channels at `p` spaced `stride` apart; other lanes are zero.
#[inline(always)]
unsafe fn load_n<S: Simd>(p: *const f32, n: usize, stride: usize) -> S::V {
    if stride == 1 {
        // SAFETY: this function's contract: `p + i * stride` is valid for each of the `n` lanes used.
        return unsafe { S::load_first(p, n) };
    }
    // SAFETY: this function's contract: `p + i * stride` is valid for each of the `n` lanes used.
    unsafe { S::gather(p, n, stride) }
}

/// [`load_n`], or with `WHOLE` (`n == S::LANES`, `stride == 1`) one plain load.
#[inline(always)]
unsafe fn load_v<S: Simd, const WHOLE: bool>(p: *const f32, n: usize, stride: usize) -> S::V {
    // SAFETY: this function's contract is `load_n`'s.
    unsafe {
        if WHOLE {
            S::load(p)
        } else {
            load_n::<S>(p, n, stride)
        }
    }
}

/// Stores the first `n <= S::LANES` lanes at `p` spaced `stride` apart.
#[inline(always)]
unsafe fn store_n<S: Simd>(p: *mut f32, v: S::V, n: usize, stride: usize) {
    if stride == 1 {
        // SAFETY: this function's contract: `p + i * stride` is valid for each of the `n` lanes used.
        return unsafe { S::store_first(p, v, n) };
    }
    let lanes = S::to_array(v);
    for (i, lane) in lanes.as_ref().iter().enumerate().take(n) {
        // SAFETY: this function's contract: `p + i * stride` is valid for each of the `n` lanes used.
        unsafe { *p.add(i * stride) = *lane };
    }
}

/// Where a convolution or a pool reads its source: floats, or the caller's
/// 8-bit picture normalised as it is read (so a picture needs no float copy).
trait Source: Copy {
    /// Element `index` of the source, which is in channel `c`.
    ///
    /// # Safety
    /// `index` is an element of the checked source view.
    unsafe fn get(self, index: usize, c: usize) -> f32;

    /// Channels `c..c + n` (`n <= S::LANES`) from `index`, spaced `stride` apart; other lanes zero.
    ///
    /// # Safety
    /// Each of the `n` elements is in the checked source view.
    #[inline(always)]
    unsafe fn lanes<S: Simd>(self, index: usize, c: usize, n: usize, stride: usize) -> S::V {
        let mut lanes = S::Lanes::default();
        for (i, lane) in lanes.as_mut().iter_mut().enumerate().take(n) {
            // SAFETY: this function's contract.
            *lane = unsafe { self.get(index + i * stride, c + i) };
        }
        S::from_array(lanes)
    }
}

#[derive(Clone, Copy)]
struct Floats(*const f32);

impl Source for Floats {
    #[inline(always)]
    unsafe fn get(self, index: usize, _c: usize) -> f32 {
        // SAFETY: this function's contract.
        unsafe { *self.0.add(index) }
    }

    #[inline(always)]
    unsafe fn lanes<S: Simd>(self, index: usize, _c: usize, n: usize, stride: usize) -> S::V {
        // SAFETY: this function's contract.
        unsafe { load_n::<S>(self.0.add(index), n, stride) }
    }
}

/// A [`Mem::Rgb8`] picture; `Exec::step` lets only views of at most 3 channels read it.
#[derive(Clone, Copy)]
struct Rgb8(*const u8, Normalisation);

impl Source for Rgb8 {
    #[inline(always)]
    unsafe fn get(self, index: usize, c: usize) -> f32 {
        // SAFETY: this function's contract.
        self.1.apply(c, unsafe { *self.0.add(index) })
    }
}

/// Evaluates `$body` with `$src` bound to the view's source: the picture or floats.
macro_rules! with_source {
    ($m:expr, $view:expr, |$src:ident| $body:expr) => {
        if $view.mem == Mem::Rgb8 {
            let (bytes, normalisation) = $m.rgb8();
            let $src = Rgb8(bytes, normalisation);
            $body
        } else {
            let $src = Floats(ptr($m, &$view));
            $body
        }
    };
}

/// The terms `accumulate` sums, each an offset from a pixel's first element
/// and the channel it is in: the input channels of one tap, or every (tap,
/// channel) pair of a convolution with few of them ([`TapTable`]).
trait Terms: Copy {
    /// The offset and channel of term `j`.
    ///
    /// # Safety
    /// `j` is below the number of terms the caller passes with these.
    unsafe fn term(self, j: usize) -> (usize, usize);
}

/// Channel `c` of one tap, `stride` elements apart.
#[derive(Clone, Copy)]
struct TapChannels(usize);

impl Terms for TapChannels {
    #[inline(always)]
    unsafe fn term(self, c: usize) -> (usize, usize) {
        (c * self.0, c)
    }
}

/// The most terms (taps x input channels) of a convolution that
/// [`conv_tile`] runs as one list over every tap: the first convolution,
/// 3x3 over a picture's 3 channels (27).
const TAP_TABLE_TERMS: usize = 32;

/// Every (tap, channel) pair of a convolution in weight order (`ky`, `kx`,
/// channel), as offsets from the pixel under the kernel's corner: one loop of
/// 27 terms for a 3x3 convolution of 3 channels instead of 9 of 3, each with
/// its own addressing. Same terms, same order: the same sums, bit for bit.
#[derive(Clone, Copy)]
struct TapTable<'a>(&'a [(usize, usize)]);

impl Terms for TapTable<'_> {
    #[inline(always)]
    unsafe fn term(self, j: usize) -> (usize, usize) {
        // SAFETY: this function's contract: `j` is below the table's length.
        unsafe { *self.0.get_unchecked(j) }
    }
}

/// `acc[p][v] += w[j][v] * x[p][j]` over the `count` terms `j` (input
/// channels, or (tap, channel) pairs): the conv's inner loop. Of the weights
/// (`V` vectors) and the broadcast inputs (`P`), whichever is fewer is loaded
/// up front and the other one at a time, so that the accumulators plus
/// operands fit in the vector registers. Weight vectors are `co_pad` apart
/// per term; the last one has `last` used lanes. With `MASK`, each pixel's
/// input is multiplied by `mask[p]` (0 for padding).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn accumulate<S: Simd, X: Source, T: Terms, const P: usize, const V: usize, const MASK: bool>(
    acc: &mut [[S::V; V]; P],
    (wrow, co_pad, last): (*const f32, usize, usize),
    src: X,
    base: &[usize; P],
    terms: T,
    count: usize,
    mask: &[f32; P],
) {
    // A plain function, not a closure: closures do not inherit target features
    // and would not inline into the vector code.
    #[inline(always)]
    fn input<S: Simd, X: Source, T: Terms, const P: usize, const MASK: bool>(
        src: X,
        base: &[usize; P],
        terms: T,
        mask: &[f32; P],
        p: usize,
        j: usize,
    ) -> S::V {
        // SAFETY: the caller's contract: `j < count`, and `base[p]` plus the
        // term's offset is an element of the checked source view.
        let x = unsafe {
            let (offset, c) = terms.term(j);
            src.get(base[p] + offset, c)
        };
        S::splat(if MASK { x * mask[p] } else { x })
    }
    // A private copy, indexed by constants only (the loops unroll), which LLVM
    // keeps in registers; the caller's tile is also indexed by run-time pixel
    // counts, which may keep it in memory, stored to on every term (as C's
    // `cg_accumulate` does).
    let mut a = *acc;
    for c in 0..count {
        // SAFETY: the caller's contract: `wrow` points at `ci` rows of `co_pad` packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
        let w = unsafe { wrow.add(c * co_pad) };
        if V <= P {
            let mut wv = [S::zero(); V];
            for (v, x) in wv.iter_mut().enumerate() {
                // SAFETY: the caller's contract: `wrow` points at `ci` rows of `co_pad` packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                *x = unsafe { packed::<S>(w.add(v * S::LANES), if v + 1 == V { last } else { S::LANES }) };
            }
            for p in 0..P {
                let b = input::<S, X, T, P, MASK>(src, base, terms, mask, p, c);
                for v in 0..V {
                    a[p][v] = S::madd(wv[v], b, a[p][v]);
                }
            }
        } else {
            let mut b = [S::zero(); P];
            for (p, x) in b.iter_mut().enumerate() {
                *x = input::<S, X, T, P, MASK>(src, base, terms, mask, p, c);
            }
            for v in 0..V {
                // SAFETY: the caller's contract: `wrow` points at `ci` rows of `co_pad` packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                let wv = unsafe { packed::<S>(w.add(v * S::LANES), if v + 1 == V { last } else { S::LANES }) };
                for p in 0..P {
                    a[p][v] = S::madd(wv, b[p], a[p][v]);
                }
            }
        }
    }
    *acc = a;
}

/// Pixels per tile for a group of `v` channel vectors: the accumulators
/// (`pixels * v`: at most 12 of 16 registers, or 24 of 32), plus weights and a
/// broadcast, fit in the instruction set's vector registers.
const fn tile_pixels(registers: usize, v: usize) -> usize {
    let tile = match v {
        4 => 3,
        3 => 4,
        2 => 6,
        _ => 8,
    };
    if registers >= 32 {
        tile * 2
    } else {
        tile
    }
}

/// One register tile of a convolution ([`conv_tile`]) for an instruction set
/// `S`, run out of line: each tile shape is a function of its own (as in C),
/// so that its inner loop gets the registers to itself, where all shapes
/// inlined into one `conv_rows` shared one frame of loop state (rust-avx2
/// spent twice C's time around the same inner loop).
trait ConvTiles {
    type S: Simd;

    /// # Safety
    /// [`conv_tile`]'s contract.
    unsafe fn tile<X: Source, const P: usize, const V: usize>(job: TileJob<X>);
}

/// What [`conv_tile`] works on: output pixels `ox..ox + np` of row `oy`,
/// channel blocks from `cb` (`tile = (oy, ox, np, cb)`) of convolution `s`.
#[derive(Clone, Copy)]
struct TileJob<'a, X> {
    m: &'a Memory<'a>,
    w: *const f32,
    s: &'a Conv,
    src: X,
    taps: TapTable<'a>,
    tile: (usize, usize, usize, usize),
}

#[inline(always)]
unsafe fn conv<T: ConvTiles>(m: &Memory, w: *const f32, s: &Conv, rows: Range<usize>) {
    // SAFETY: forwarded from this function's contract.
    with_source!(m, s.src, |src| unsafe { conv_from::<T, _>(m, w, s, src, rows) })
}

#[inline(always)]
unsafe fn conv_from<T: ConvTiles, X: Source>(m: &Memory, w: *const f32, s: &Conv, src: X, rows: Range<usize>) {
    type S<T> = <T as ConvTiles>::S;
    let blocks = s.dst.c.div_ceil(S::<T>::LANES);
    // All channel groups walk the same pixel tiles, sized for the widest group.
    let tile = tile_pixels(S::<T>::REGISTERS, blocks.min(4));
    // A convolution with few terms over several taps runs its interior tiles as one list of them.
    let (k, dil) = (s.kernel, s.dilation);
    let mut table = [(0usize, 0usize); TAP_TABLE_TERMS];
    let terms = s.src.c * k * k;
    let taps = if k > 1 && terms <= TAP_TABLE_TERMS && !s.src.is_ring() {
        for (j, term) in table.iter_mut().enumerate().take(terms) {
            let (tap, c) = (j / s.src.c, j % s.src.c);
            let (ky, kx) = (tap / k, tap % k);
            let offset = ky * dil * s.src.row_stride + kx * dil * s.src.pixel_stride + c * s.src.channel_stride;
            *term = (offset, c);
        }
        &table[..terms]
    } else {
        &[]
    };
    // A plain function, not a closure: closures do not inherit target features.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn group<T: ConvTiles, X: Source>(
        m: &Memory,
        w: *const f32,
        s: &Conv,
        src: X,
        taps: &[(usize, usize)],
        oy: usize,
        ox: usize,
        cb: usize,
        tile: usize,
    ) {
        let (n, blocks) = (tile.min(s.dst.w - ox), s.dst.c.div_ceil(S::<T>::LANES));
        let job = TileJob { m, w, s, src, taps: TapTable(taps), tile: (oy, ox, n, cb) };
        // SAFETY: forwarded from `conv`'s contract: `cb` is below the output's channel blocks and `n` pixels from `ox` stay in the row.
        unsafe {
            match (S::<T>::REGISTERS >= 32, (blocks - cb).min(4)) {
                (false, 4) => T::tile::<X, { tile_pixels(16, 4) }, 4>(job),
                (false, 3) => T::tile::<X, { tile_pixels(16, 3) }, 3>(job),
                (false, 2) => T::tile::<X, { tile_pixels(16, 2) }, 2>(job),
                (false, _) => T::tile::<X, { tile_pixels(16, 1) }, 1>(job),
                (true, 4) => T::tile::<X, { tile_pixels(32, 4) }, 4>(job),
                (true, 3) => T::tile::<X, { tile_pixels(32, 3) }, 3>(job),
                (true, 2) => T::tile::<X, { tile_pixels(32, 2) }, 2>(job),
                (true, _) => T::tile::<X, { tile_pixels(32, 1) }, 1>(job),
            }
        }
    }
    // Every group reads one pixel tile while it is in L1. (Measured: looping over
    // channel groups outside the rows, to keep large weights in L2, is slower.)
    for oy in rows {
        for ox in (0..s.dst.w).step_by(tile) {
            for cb in (0..blocks).step_by(4) {
                group::<T, X>(m, w, s, src, taps, oy, ox, cb, tile);
            }
        }
    }
}

/// Output pixels `ox..ox + np` of row `oy`, channel blocks `cb..cb + V`
/// (`tile = (oy, ox, np, cb)`), in register tiles of `P` pixels. `taps`: the
/// convolution's terms as one list, or empty (see [`TapTable`]).
#[inline(always)]
unsafe fn conv_tile<S: Simd, X: Source, const P: usize, const V: usize>(job: TileJob<X>) {
    let TileJob { m, w, s, src, taps, tile: (oy, ox, np, cb) } = job;
    let (lanes, co) = (S::LANES, s.dst.c);
    let dst = ptr(m, &s.dst);
    let co_pad = co.next_multiple_of(PACKED_BLOCK);
    // Used lanes of the group's last vector (the others are whole).
    let last = (co - (cb + V - 1).min(co.div_ceil(lanes) - 1) * lanes).min(lanes);
    let (k, stride, dil) = (s.kernel, s.stride, s.dilation);
    let pad = (dil * (k - 1) / 2) as isize;
    let (ci, cs) = (s.src.c, s.src.channel_stride);
    // A tile may be narrower than P (the widest group's tile, or the row end): extra pixels are masked.
    let mut done = 0;
    while done < np {
        let n = (np - done).min(P);
        let x0 = ox + done;
        let mut acc = match &s.add {
            // One part of a split convolution: the sums so far, at these pixels.
            Some(add) => {
                let from = ptr(m, add);
                // Constant bounds, so that the loops unroll and `acc` stays in
                // registers (a loop to `n` indexes it at run time: it would
                // live on the stack through the whole tile).
                register_tile::<S::V, P, V>(|p, v| {
                    let c = (cb + v) * lanes;
                    if p < n && c < co {
                        // SAFETY: `(c, oy, x0 + p)` is inside the addend, which has the destination's shape (checked by `Exec::step`).
                        unsafe { load_n::<S>(from.add(add.at(c, oy, x0 + p)), (co - c).min(lanes), add.channel_stride) }
                    } else {
                        S::zero()
                    }
                })
            }
            None => {
                let mut bias = [S::zero(); V];
                for (v, b) in bias.iter_mut().enumerate() {
                    // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                    *b =
                        unsafe { packed::<S>(w.add(s.bias + (cb + v) * lanes), if v + 1 == V { last } else { lanes }) };
                }
                register_tile::<S::V, P, V>(|_, v| bias[v])
            }
        };
        // The corner of the kernel's window over the tile's first pixel, and how far the window reaches.
        let (corner_y, corner_x) = ((oy * stride) as isize - pad, (x0 * stride) as isize - pad);
        let reach = (dil * (k - 1)) as isize;
        let interior = n == P
            && corner_y >= 0
            && corner_y + reach < s.src.h as isize
            && corner_x >= 0
            && corner_x + reach + (((P - 1) * stride) as isize) < s.src.w as isize;
        if interior && !taps.0.is_empty() {
            let mut base = [0usize; P];
            for (p, b) in base.iter_mut().enumerate() {
                *b = s.src.at(0, corner_y as usize, corner_x as usize + p * stride);
            }
            // SAFETY: the step's packed weights, [tap][channel][co_pad] from `s.weights`, are inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
            let wrow = (unsafe { w.add(s.weights + cb * lanes) }, co_pad, last);
            // SAFETY: every pixel's window lies inside the source (`interior`, and the source is no ring), so `base[p]` plus each term's offset is an element of the checked source view.
            unsafe { accumulate::<S, X, _, P, V, false>(&mut acc, wrow, src, &base, taps, taps.0.len(), &[1.0; P]) };
        } else {
            for ky in 0..k {
                let iy = (oy * stride + ky * dil) as isize - pad;
                if iy < 0 || iy >= s.src.h as isize {
                    continue;
                }
                for kx in 0..k {
                    let ix0 = (x0 * stride + kx * dil) as isize - pad;
                    let ix_last = ix0 + ((n - 1) * stride) as isize;
                    // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                    let wrow = (unsafe { w.add(s.weights + (ky * k + kx) * ci * co_pad + cb * lanes) }, co_pad, last);
                    if n == P && ix0 >= 0 && ix_last < s.src.w as isize {
                        let mut base = [0usize; P];
                        for (p, b) in base.iter_mut().enumerate() {
                            *b = s.src.at(0, iy as usize, (ix0 + (p * stride) as isize) as usize);
                        }
                        // SAFETY: `base` holds pixels of the checked source view (inside the image, or clamped to it with a zero mask), `wrow` this tap's packed weights.
                        unsafe {
                            accumulate::<S, X, _, P, V, false>(
                                &mut acc,
                                wrow,
                                src,
                                &base,
                                TapChannels(cs),
                                ci,
                                &[1.0; P],
                            )
                        };
                    } else {
                        // Border or short tile: clamp addresses, zero the contribution of padding.
                        let mut base = [0usize; P];
                        let mut mask = [0.0f32; P];
                        for p in 0..P {
                            let ix = ix0 + (p * stride) as isize;
                            let valid = p < n && ix >= 0 && ix < s.src.w as isize;
                            mask[p] = if valid { 1.0 } else { 0.0 };
                            base[p] = s.src.at(0, iy as usize, ix.clamp(0, s.src.w as isize - 1) as usize);
                        }
                        // SAFETY: `base` holds pixels of the checked source view (inside the image, or clamped to it with a zero mask), `wrow` this tap's packed weights.
                        unsafe {
                            accumulate::<S, X, _, P, V, true>(&mut acc, wrow, src, &base, TapChannels(cs), ci, &mask)
                        };
                    }
                }
            }
        }
        for (p, a) in acc.iter().enumerate().take(n) {
            for (v, value) in a.iter().enumerate() {
                let c = (cb + v) * lanes;
                if c >= co {
                    break;
                }
                let n = (co - c).min(lanes);
                let out = epilogue::<S>(&s.epilogue, w, c, n, *value);
                let at = s.dst.at(c, oy, x0 + p);
                // SAFETY: the coordinates are inside the destination view (its shape was checked against the loop bounds by `Exec::step`), and this thread owns the row.
                unsafe { store_n::<S>(dst.add(at), out, n, s.dst.channel_stride) };
            }
        }
        done += n;
    }
}

/// Winograd tiles (of 4x4 outputs) per register block: 3 tiles x 4 channel
/// vectors on 16 registers, 6 x 4 on 32.
const fn winograd_tiles(registers: usize) -> usize {
    if registers >= 32 {
        6
    } else {
        3
    }
}

/// The most tiles of any variant: sizes the stack buffers.
const WG_MAX_TILES: usize = winograd_tiles(32);

/// Transformed positions per tile, and output rows / columns per tile.
const WG_P: usize = WINOGRAD_POSITIONS;
const WG_T: usize = WINOGRAD_TILE;

#[inline(always)]
unsafe fn winograd<S: Simd>(m: &Memory, w: *const f32, s: &Conv, rows: Range<usize>) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        if S::REGISTERS >= 32 {
            winograd_strips::<S, { winograd_tiles(32) }>(m, w, s, rows)
        } else {
            winograd_strips::<S, { winograd_tiles(16) }>(m, w, s, rows)
        }
    }
}

/// A 3x3 stride-1 convolution as Winograd F(4x4, 3x3). For a strip of `T`
/// tiles: the 6x6 input tiles are transformed (`B^T d B`, vectorised over
/// input channels) into a stack buffer, 36 small GEMMs (one per transformed
/// position, the conv's register-tiled inner loop) multiply them with the
/// pre-transformed weights, and the output transform (`A^T M A`) adds the
/// bias, applies the epilogue and stores the 4x4 outputs.
#[inline(always)]
unsafe fn winograd_strips<S: Simd, const T: usize>(m: &Memory, w: *const f32, s: &Conv, rows: Range<usize>) {
    const MAXC: usize = WINOGRAD_MAX_CHANNELS;
    let (src, dst) = (ptr(m, &s.src), ptr(m, &s.dst));
    let (ci, co, lanes) = (s.src.c, s.dst.c, S::LANES);
    let blocks = co.div_ceil(lanes);
    let co_pad = co.next_multiple_of(PACKED_BLOCK);
    let (h, wd, cs) = (s.src.h as isize, s.src.w as isize, s.src.channel_stride);
    // [tile][36][channel] for the transformed inputs and the products. Not
    // zeroed (that was 110 KB per call, evicting L1): every element read is
    // written first, since the register tiles past a row's end read tile 0.
    let mut vbuf = std::mem::MaybeUninit::<[f32; WG_MAX_TILES * WG_P * MAXC]>::uninit();
    let mut mbuf = std::mem::MaybeUninit::<[f32; WG_MAX_TILES * WG_P * MAXC]>::uninit();
    let (vbuf, mbuf) = (vbuf.as_mut_ptr().cast::<f32>(), mbuf.as_mut_ptr().cast::<f32>());
    // Tiles start at rows that are multiples of 4 whatever the row range, so that
    // every output is computed from the same tile (and rounds the same) for any
    // thread split.
    let mut oy = rows.start - rows.start % WG_T;
    while oy < rows.end {
        let mut ox = 0;
        while ox < s.dst.w {
            let tiles = T.min((s.dst.w - ox).div_ceil(WG_T));
            for t in 0..tiles {
                let (y0, x0) = (oy as isize - 1, (ox + WG_T * t) as isize - 1);
                for cb in (0..ci).step_by(lanes) {
                    let n = (ci - cb).min(lanes);
                    let d = register_tile::<S::V, 6, 6>(|r, c| {
                        let (iy, ix) = (y0 + r as isize, x0 + c as isize);
                        if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                            // SAFETY: (iy, ix) was tested against the source's size, and channels `cb..cb + n` are in the checked source view.
                            unsafe { load_n::<S>(src.add(s.src.at(cb, iy as usize, ix as usize)), n, cs) }
                        } else {
                            S::zero()
                        }
                    });
                    let v = winograd_input::<S>(&d);
                    for (xi, value) in v.iter().flatten().enumerate() {
                        // SAFETY: t < T <= WG_MAX_TILES, xi < 36 and every channel < WINOGRAD_MAX_CHANNELS (checked by `Exec::step`): inside the stack buffer of WG_MAX_TILES x 36 x MAXC floats.
                        unsafe { store_n::<S>(vbuf.add((t * WG_P + xi) * MAXC + cb), *value, n, 1) };
                    }
                }
            }
            for xi in 0..WG_P {
                // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                let wrow = unsafe { w.add(s.weights + xi * ci * co_pad) };
                // Register tiles past the row's end compute tile 0 again (their
                // products are never read): no tile reads what was not written.
                let mut base = [0usize; T];
                for (t, b) in base.iter_mut().enumerate() {
                    *b = ((if t < tiles { t } else { 0 }) * WG_P + xi) * MAXC;
                }
                for cb in (0..blocks).step_by(4) {
                    let nv = (blocks - cb).min(4);
                    let last = (co - (cb + nv - 1) * lanes).min(lanes);
                    // SAFETY: t < T <= WG_MAX_TILES, xi < 36 and every vector of channels ends by WINOGRAD_MAX_CHANNELS (checked by `Exec::step`; a multiple of the lanes): inside the stack buffer of WG_MAX_TILES x 36 x MAXC floats.
                    let out = unsafe { mbuf.add(xi * MAXC + cb * lanes) };
                    // SAFETY: this transformed position's packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                    let wcb = (unsafe { wrow.add(cb * lanes) }, co_pad, last);
                    // SAFETY: `vbuf` and `out` are inside this function's stack buffers (see the SAFETY notes above), `vbuf` at every `base` holds this strip's transformed inputs, `ci` channels written above (tiles past the row's end point at tile 0), and `wcb` is this position's packed weights.
                    unsafe {
                        match nv {
                            4 => winograd_gemm::<S, T, 4>(wcb, vbuf, &base, ci, out),
                            3 => winograd_gemm::<S, T, 3>(wcb, vbuf, &base, ci, out),
                            2 => winograd_gemm::<S, T, 2>(wcb, vbuf, &base, ci, out),
                            _ => winograd_gemm::<S, T, 1>(wcb, vbuf, &base, ci, out),
                        }
                    }
                }
            }
            for t in 0..tiles {
                for cb in (0..co).step_by(lanes) {
                    let n = (co - cb).min(lanes);
                    let mv = register_tile::<S::V, 6, 6>(|r, c| {
                        // SAFETY: t < T <= WG_MAX_TILES, r * 6 + c < 36 and the vector of channels from `cb` ends by WINOGRAD_MAX_CHANNELS (a multiple of the lanes): inside the stack buffer of WG_MAX_TILES x 36 x MAXC floats, and written by the products above (whole vectors, every tile and position).
                        unsafe { S::load(mbuf.add((t * WG_P + r * 6 + c) * MAXC + cb)) }
                    });
                    // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                    let bias = unsafe { packed::<S>(w.add(s.bias + cb), n) };
                    let y = winograd_output::<S>(&mv);
                    for (r, row) in y.iter().enumerate() {
                        for (c, value) in row.iter().enumerate() {
                            let (yy, xx) = (oy + r, ox + WG_T * t + c);
                            if rows.contains(&yy) && xx < s.dst.w {
                                let out = epilogue::<S>(&s.epilogue, w, cb, n, S::add(*value, bias));
                                let at = s.dst.at(cb, yy, xx);
                                // SAFETY: the coordinates are inside the destination view (its shape was checked against the loop bounds by `Exec::step`), and this thread owns the row.
                                unsafe { store_n::<S>(dst.add(at), out, n, s.dst.channel_stride) };
                            }
                        }
                    }
                }
            }
            ox += WG_T * tiles;
        }
        oy += WG_T;
    }
}

/// `acc[t][v] = sum_c U[c][v] * V[t][c]` for `T` tiles and `V` vectors of
/// output channels (`wrow` = (weights, row stride, used lanes of the last
/// vector)); products go to `out + t * 36 * MAXC + v * S::LANES`.
#[inline(always)]
unsafe fn winograd_gemm<S: Simd, const T: usize, const V: usize>(
    wrow: (*const f32, usize, usize),
    vbuf: *const f32,
    base: &[usize; T],
    ci: usize,
    out: *mut f32,
) {
    let mut acc = [[S::zero(); V]; T];
    // SAFETY: the caller's contract (see `winograd_strips`): `vbuf`, `base` and `wrow` address its stack buffer and weights.
    unsafe {
        accumulate::<S, Floats, _, T, V, false>(&mut acc, wrow, Floats(vbuf), base, TapChannels(1), ci, &[1.0; T])
    };
    for (t, a) in acc.iter().enumerate() {
        for (v, value) in a.iter().enumerate() {
            // SAFETY: the caller's contract: `out` is inside `winograd_strips`'s product buffer with room for WG_MAX_TILES x 36 x MAXC floats.
            unsafe { S::store(out.add(t * WG_P * WINOGRAD_MAX_CHANNELS + v * S::LANES), *value) };
        }
    }
}

// The transforms are plain functions with explicit indices: closures would
// not inherit the target features and would not inline.

/// `a - b`.
#[inline(always)]
fn sub<S: Simd>(a: S::V, b: S::V) -> S::V {
    S::madd(b, S::splat(-1.0), a)
}

/// `a * k + b`.
#[inline(always)]
fn scaled<S: Simd>(a: S::V, k: f32, b: S::V) -> S::V {
    S::madd(a, S::splat(k), b)
}

/// `B^T x` for one column (or row) `x`, with
/// `B^T = [[4,0,-5,0,1,0], [0,-4,-4,1,1,0], [0,4,-4,-1,1,0], [0,-2,-1,2,1,0], [0,2,-1,-2,1,0], [0,4,0,-5,0,1]]`.
#[inline(always)]
fn input_1d<S: Simd>(x: [S::V; 6]) -> [S::V; 6] {
    let a = scaled::<S>(x[2], -4.0, x[4]); // x4 - 4 x2
    let b = scaled::<S>(x[1], -4.0, x[3]); // x3 - 4 x1
    let c = sub::<S>(x[4], x[2]); // x4 - x2
    let d = S::mul(sub::<S>(x[3], x[1]), S::splat(2.0)); // 2 (x3 - x1)
    [
        scaled::<S>(x[0], 4.0, scaled::<S>(x[2], -5.0, x[4])),
        S::add(a, b),
        sub::<S>(a, b),
        S::add(c, d),
        sub::<S>(c, d),
        scaled::<S>(x[1], 4.0, scaled::<S>(x[3], -5.0, x[5])),
    ]
}

/// `A^T x`, `A^T = [[1,1,1,1,1,0], [0,1,-1,2,-2,0], [0,1,1,4,4,0], [0,1,-1,8,-8,1]]`.
#[inline(always)]
fn output_1d<S: Simd>(x: [S::V; 6]) -> [S::V; 4] {
    let (a, b) = (S::add(x[1], x[2]), sub::<S>(x[1], x[2]));
    let (c, d) = (S::add(x[3], x[4]), sub::<S>(x[3], x[4]));
    [S::add(S::add(x[0], a), c), scaled::<S>(d, 2.0, b), scaled::<S>(c, 4.0, a), S::add(scaled::<S>(d, 8.0, b), x[5])]
}

/// `B^T d B`, indexed `[row][column]`.
#[inline(always)]
fn winograd_input<S: Simd>(d: &[[S::V; 6]; 6]) -> [[S::V; 6]; 6] {
    let mut t = [[S::zero(); 6]; 6]; // t[c] = column c of B^T d
    for c in 0..6 {
        t[c] = input_1d::<S>([d[0][c], d[1][c], d[2][c], d[3][c], d[4][c], d[5][c]]);
    }
    let mut v = [[S::zero(); 6]; 6];
    for r in 0..6 {
        v[r] = input_1d::<S>([t[0][r], t[1][r], t[2][r], t[3][r], t[4][r], t[5][r]]);
    }
    v
}

/// An `R x C` tile of vectors, element `[r][c]` from `at(r, c)`, with no
/// zeroing first. A tile that does not stay in registers (36 vectors of a
/// Winograd tile; a convolution's accumulators, which its stores index at run
/// time) lives on the stack, and a zeroed array that was then overwritten cost
/// a `memset` call per tile. (A closure, inlined with this function into the
/// kernel's target-feature function that calls it.)
#[inline(always)]
fn register_tile<V, const R: usize, const C: usize>(mut at: impl FnMut(usize, usize) -> V) -> [[V; C]; R] {
    let mut tile = std::mem::MaybeUninit::<[[V; C]; R]>::uninit();
    let first = tile.as_mut_ptr().cast::<V>();
    for r in 0..R {
        for c in 0..C {
            // SAFETY: r * C + c < R * C: an element of the array.
            unsafe { first.add(r * C + c).write(at(r, c)) };
        }
    }
    // SAFETY: all R * C elements were written above.
    unsafe { tile.assume_init() }
}

/// `A^T m A`, indexed `[row][column]`.
#[inline(always)]
fn winograd_output<S: Simd>(m: &[[S::V; 6]; 6]) -> [[S::V; 4]; 4] {
    let mut t = [[S::zero(); 4]; 6]; // t[c] = column c of A^T m
    for c in 0..6 {
        t[c] = output_1d::<S>([m[0][c], m[1][c], m[2][c], m[3][c], m[4][c], m[5][c]]);
    }
    let mut y = [[S::zero(); 4]; 4];
    for r in 0..4 {
        y[r] = output_1d::<S>([t[0][r], t[1][r], t[2][r], t[3][r], t[4][r], t[5][r]]);
    }
    y
}

/// Pixels a depthwise conv computes at once.
const DW_PIXELS: usize = 4;

/// F_loc and F_sur: per row and channel block, the 9 weights of each half stay
/// in registers while the row streams by; interior pixels skip bounds checks.
#[inline(always)]
unsafe fn depthwise_pair<S: Simd>(m: &Memory, w: *const f32, s: &DepthwisePair, rows: Range<usize>) {
    let (src, dst) = (ptr(m, &s.src), ptr(m, &s.dst));
    let c = s.src.c;
    let c_pad = c.next_multiple_of(PACKED_BLOCK) + PACKED_BLOCK;
    let (h, wd) = (s.src.h, s.src.w);
    let (ps, cs) = (s.src.pixel_stride, s.src.channel_stride);
    for oy in rows {
        for cb in (0..c).step_by(S::LANES) {
            let n = (c - cb).min(S::LANES);
            for (half, dil, weights, bias) in
                [(0, 1, s.loc_weights, s.loc_bias), (c, s.dilation, s.sur_weights, s.sur_bias)]
            {
                let mut k = [S::zero(); 9];
                for (t, kt) in k.iter_mut().enumerate() {
                    // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                    *kt = unsafe { packed::<S>(w.add(weights + t * c_pad + cb), n) };
                }
                // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
                let b = unsafe { packed::<S>(w.add(bias + cb), n) };
                let epi = Prepared::new::<S>(&s.epilogue, Channels { w, c: half + cb, n });
                // The input rows of the three taps, when inside the image.
                let tap_rows: [Option<usize>; 3] = std::array::from_fn(|ky| {
                    let iy = oy as isize + (ky as isize - 1) * dil as isize;
                    (iy >= 0 && (iy as usize) < h).then_some(iy as usize)
                });
                let interior = dil.min(wd)..wd.saturating_sub(dil).max(dil.min(wd));
                // All three tap rows inside the image, whole contiguous vectors:
                // the taps unroll completely (weights and accumulators stay in
                // registers), in the order of the general loop below.
                let full = n == S::LANES && cs == 1;
                let rows3 = match tap_rows {
                    [Some(a), Some(b), Some(c)] if full => Some([a, b, c]),
                    _ => None,
                };
                let mut ox = 0;
                while ox < wd {
                    if interior.contains(&ox) && ox + DW_PIXELS <= interior.end {
                        if let (Some(rows3), true) = (rows3, s.dst.is_nhwc()) {
                            // The common case, all tiles of the interior in one
                            // tight loop, specialised on the epilogue's shape.
                            let end = ox + (interior.end - ox) / DW_PIXELS * DW_PIXELS;
                            let run =
                                DwRun { src, dst, s, oy, ch: (cb, half + cb), dil, taps: k, bias: b, rows: rows3 };
                            // SAFETY: the interior range keeps `ox - dil` and every tap up to `end - 1 + dil` inside the row; the rows are rows of the image; `full`: whole contiguous vectors; the destination is NHWC.
                            unsafe {
                                match epi {
                                    Prepared { act: Slopes::Prelu(slope), affine: None, act2: Slopes::None } => {
                                        run.tiles::<S, _>(ox..end, PreluOnly(slope))
                                    }
                                    _ => run.tiles::<S, _>(ox..end, epi),
                                }
                            }
                            ox = end;
                            continue;
                        }
                        // DW_PIXELS independent accumulators hide the FMA latency.
                        let mut acc = [b; DW_PIXELS];
                        if let Some(rows3) = rows3 {
                            for (ky, iy) in rows3.into_iter().enumerate() {
                                let taps = [k[ky * 3], k[ky * 3 + 1], k[ky * 3 + 2]];
                                // SAFETY: the interior range keeps `ox - dil` and every tap up to `ox + DW_PIXELS - 1 + dil` inside the row; `iy` is a row of the image; `full`: whole contiguous vectors.
                                unsafe {
                                    let row = src.add(s.src.at(cb, iy, ox - dil));
                                    depthwise_row::<S, true>(&mut acc, row, taps, (dil * ps, ps), (n, cs));
                                }
                            }
                        } else {
                            for (ky, iy) in tap_rows.iter().enumerate() {
                                let Some(iy) = *iy else { continue };
                                let taps = [k[ky * 3], k[ky * 3 + 1], k[ky * 3 + 2]];
                                // SAFETY: the interior range keeps `ox - dil` and every tap up to `ox + DW_PIXELS - 1 + dil` inside the row; `iy` is a row of the image.
                                unsafe {
                                    let row = src.add(s.src.at(cb, iy, ox - dil));
                                    depthwise_row::<S, false>(&mut acc, row, taps, (dil * ps, ps), (n, cs));
                                }
                            }
                        }
                        for (p, a) in acc.iter().enumerate() {
                            let out = epi.apply::<S>(*a);
                            // SAFETY: the coordinates are inside the destination view (its shape was checked against the loop bounds by `Exec::step`), and this thread owns the row.
                            unsafe {
                                store_n::<S>(dst.add(s.dst.at(half + cb, oy, ox + p)), out, n, s.dst.channel_stride)
                            };
                        }
                        ox += DW_PIXELS;
                        continue;
                    }
                    let mut acc = b;
                    for (ky, iy) in tap_rows.iter().enumerate() {
                        let Some(iy) = *iy else { continue };
                        for kx in 0..3 {
                            let ix = ox as isize + (kx as isize - 1) * dil as isize;
                            if ix >= 0 && (ix as usize) < wd {
                                let at = s.src.at(cb, iy, ix as usize);
                                // SAFETY: (iy, ix) was tested against the source's size above, and channels `cb..cb + n` are in the checked source view.
                                acc = S::madd(unsafe { load_n::<S>(src.add(at), n, cs) }, k[ky * 3 + kx], acc);
                            }
                        }
                    }
                    let out = epi.apply::<S>(acc);
                    // SAFETY: the coordinates are inside the destination view (its shape was checked against the loop bounds by `Exec::step`), and this thread owns the row.
                    unsafe { store_n::<S>(dst.add(s.dst.at(half + cb, oy, ox)), out, n, s.dst.channel_stride) };
                    ox += 1;
                }
            }
        }
    }
}

/// The interior of one row of one half of a depthwise pair for one vector of
/// channels (`ch`: source and destination channel), with all three tap rows
/// inside the image, whole contiguous vectors and an NHWC destination.
struct DwRun<'a, V> {
    src: *const f32,
    dst: *mut f32,
    s: &'a DepthwisePair,
    oy: usize,
    ch: (usize, usize),
    dil: usize,
    taps: [V; 9],
    bias: V,
    rows: [usize; 3],
}

impl<V: Copy> DwRun<'_, V> {
    /// Tiles of `DW_PIXELS` pixels from `pixels.start` (a multiple of it long).
    ///
    /// # Safety
    /// Every tap of every pixel is inside the row and the checked source view;
    /// the outputs are inside the checked destination view, on a row this thread owns.
    #[inline(always)]
    unsafe fn tiles<S: Simd<V = V>, F: Finish<V>>(&self, pixels: Range<usize>, finish: F) {
        let (src, dst, (cs, cd)) = (&self.s.src, &self.s.dst, self.ch);
        for ox in pixels.step_by(DW_PIXELS) {
            let mut acc = [self.bias; DW_PIXELS];
            for (ky, iy) in self.rows.into_iter().enumerate() {
                let taps = [self.taps[ky * 3], self.taps[ky * 3 + 1], self.taps[ky * 3 + 2]];
                // SAFETY: this function's contract.
                unsafe {
                    let row = self.src.add(src.at(cs, iy, ox - self.dil));
                    depthwise_row::<S, true>(
                        &mut acc,
                        row,
                        taps,
                        (self.dil * src.pixel_stride, src.pixel_stride),
                        (S::LANES, 1),
                    );
                }
            }
            for (p, a) in acc.iter().enumerate() {
                // SAFETY: this function's contract: a whole vector of the NHWC destination.
                unsafe { S::store(self.dst.add(dst.at(cd, self.oy, ox + p)), finish.apply::<S>(*a)) };
            }
        }
    }
}

/// How a kernel finishes an output vector: its epilogue, prepared.
trait Finish<V>: Copy {
    fn apply<S: Simd<V = V>>(&self, v: V) -> V;
}

impl<V: Copy> Finish<V> for Prepared<V> {
    #[inline(always)]
    fn apply<S: Simd<V = V>>(&self, v: V) -> V {
        Prepared::apply::<S>(self, v)
    }
}

/// The commonest epilogue, a PReLU alone (a conv's folded BatchNorm and
/// activation), without the tests of a [`Prepared`]: the same operations.
#[derive(Clone, Copy)]
struct PreluOnly<V>(V);

impl<V: Copy> Finish<V> for PreluOnly<V> {
    #[inline(always)]
    fn apply<S: Simd<V = V>>(&self, v: V) -> V {
        prelu::<S>(v, self.0)
    }
}

/// The three taps of one kernel row for `DW_PIXELS` neighbouring pixels from
/// `row` (the first pixel's left tap): tap `kx` of pixel `p` is at
/// `row + kx * tap + p * pixel`. `FULL`: whole contiguous vectors; else `n`
/// channels `cs` apart.
///
/// # Safety
/// Every element addressed is inside the checked source view.
#[inline(always)]
unsafe fn depthwise_row<S: Simd, const FULL: bool>(
    acc: &mut [S::V; DW_PIXELS],
    row: *const f32,
    k: [S::V; 3],
    (tap, pixel): (usize, usize),
    (n, cs): (usize, usize),
) {
    for (kx, kt) in k.iter().enumerate() {
        for (p, a) in acc.iter_mut().enumerate() {
            let at = kx * tap + p * pixel;
            // SAFETY: this function's contract.
            let x = unsafe {
                if FULL {
                    S::load(row.add(at))
                } else {
                    load_n::<S>(row.add(at), n, cs)
                }
            };
            *a = S::madd(x, *kt, *a);
        }
    }
}

#[inline(always)]
unsafe fn avg_pool<S: Simd>(m: &Memory, w: *const f32, s: &AvgPool, rows: Range<usize>) {
    // SAFETY: forwarded from this function's contract.
    with_source!(m, s.src, |src| unsafe { avg_pool_from::<S, _>(m, w, s, src, rows) })
}

/// Columns clipped to the image: the taps `2 * o - 1 ..= 2 * o + 1` of output
/// column (or row) `o` inside `0..len`.
fn pool_taps(o: usize, len: usize) -> Range<usize> {
    (2 * o).saturating_sub(1)..(2 * o + 2).min(len)
}

#[inline(always)]
unsafe fn avg_pool_from<S: Simd, X: Source>(m: &Memory, w: *const f32, s: &AvgPool, src: X, rows: Range<usize>) {
    // A planar float source (the model's input) with a few channels: a vector
    // holds `S::LANES` output pixels of one channel, not the channels of one
    // pixel (which would take a gather per tap).
    let planar = s.src.mem != Mem::Rgb8 && s.src.pixel_stride == 1 && s.src.channel_stride > 1 && s.src.c < S::LANES;
    // Output columns whose taps are all inside the row and which fill whole
    // vectors: `first..first + runs * S::LANES`.
    let first = 1.min(s.dst.w);
    let inside = s.dst.w.min(s.src.w / 2).saturating_sub(first);
    let runs = if planar { inside / S::LANES } else { 0 };
    let vectors = first..first + runs * S::LANES;
    for oy in rows {
        for ox in (0..s.dst.w).filter(|ox| !vectors.contains(ox)) {
            // SAFETY: forwarded from this function's contract.
            unsafe { pool_pixel::<S, X>(m, w, s, src, oy, ox) };
        }
        for ox in vectors.clone().step_by(S::LANES) {
            for c in 0..s.dst.c {
                // SAFETY: `vectors` keeps every tap `2 * ox - 1 ..= 2 * (ox + S::LANES - 1) + 1` inside the row of the checked planar source.
                unsafe { pool_lanes::<S>(m, w, s, (c, oy, ox)) };
            }
        }
    }
}

/// One output pixel of a pool, a vector of channels at a time.
///
/// # Safety
/// As for the kernel: the views checked, `(oy, ox)` inside the destination, row `oy` this thread's.
#[inline(always)]
unsafe fn pool_pixel<S: Simd, X: Source>(m: &Memory, w: *const f32, s: &AvgPool, src: X, oy: usize, ox: usize) {
    let dst = ptr(m, &s.dst);
    let tee = s.tee.as_ref().map(|t| (ptr(m, t), t));
    let ninth = S::splat(1.0 / 9.0);
    // The views in locals, and each window clipped to the image once: the
    // taps then need no test (and add in the same order as a tested 3x3 loop).
    let (from, to) = (s.src, s.dst);
    let (ys, xs) = (pool_taps(oy, from.h), pool_taps(ox, from.w));
    for cb in (0..to.c).step_by(S::LANES) {
        let n = (to.c - cb).min(S::LANES);
        let mut sum = S::zero();
        for iy in ys.clone() {
            for ix in xs.clone() {
                // SAFETY: (iy, ix) is inside the source (clipped above), and channels `cb..cb + n` are in the checked source view.
                sum = S::add(sum, unsafe { src.lanes::<S>(from.at(cb, iy, ix), cb, n, from.channel_stride) });
            }
        }
        let out = epilogue::<S>(&s.epilogue, w, cb, n, S::mul(sum, ninth));
        // SAFETY: the coordinates are inside the destination view (its shape was checked against the loop bounds by `Exec::step`), and this thread owns the row.
        unsafe { store_n::<S>(dst.add(to.at(cb, oy, ox)), out, n, to.channel_stride) };
        // SAFETY: as for the destination (the tee has its shape, checked by `Exec::step`).
        unsafe { store_tee::<S>(tee, w, &s.tee_epilogue, (cb, oy, ox), n, out) };
    }
}

/// `S::LANES` output pixels `ox..` of channel `c` of a pool from a planar float
/// source: the same additions per output as [`pool_pixel`], in the same order,
/// and the same epilogue with the channel's parameters in every lane.
///
/// # Safety
/// As for [`pool_pixel`], and every tap of the pixels is inside the source row.
#[inline(always)]
unsafe fn pool_lanes<S: Simd>(m: &Memory, w: *const f32, s: &AvgPool, (c, oy, ox): (usize, usize, usize)) {
    let (from, to) = (s.src, s.dst);
    let src = ptr(m, &from);
    let mut sum = S::zero();
    for iy in pool_taps(oy, from.h) {
        // SAFETY: this function's contract: taps `2 * ox - 1 ..` of row `iy` of channel `c`.
        let row = unsafe { src.add(from.at(c, iy, 2 * ox - 1)) };
        for kx in 0..3 {
            // SAFETY: as above; the last float read is tap `2 * (ox + S::LANES - 1) + 1`, inside the row.
            sum = S::add(sum, unsafe { S::load_even(row.add(kx)) });
        }
    }
    let out = Prepared::new::<S>(&s.epilogue, Channel { w, c }).apply::<S>(S::mul(sum, S::splat(1.0 / 9.0)));
    // SAFETY: the coordinates are inside the destination view (checked by `Exec::step`), and this thread owns the row.
    unsafe { store_pixels::<S>(ptr(m, &to), &to, (c, oy, ox), out) };
    // (Not `Option::map`: closures do not inherit target features.)
    if let Some(t) = &s.tee {
        let teed = Prepared::new::<S>(&s.tee_epilogue, Channel { w, c }).apply::<S>(out);
        // SAFETY: as for the destination (the tee has its shape, checked by `Exec::step`).
        unsafe { store_pixels::<S>(ptr(m, t), t, (c, oy, ox), teed) };
    }
}

/// Stores a vector of `S::LANES` pixels `x..` of channel `c`, row `y`, of `view`.
///
/// # Safety
/// The pixels are inside `view`, on a row this thread owns.
#[inline(always)]
unsafe fn store_pixels<S: Simd>(base: *mut f32, view: &View, (c, y, x): (usize, usize, usize), v: S::V) {
    for (p, value) in S::to_array(v).as_ref().iter().enumerate() {
        // SAFETY: this function's contract.
        unsafe { *base.add(view.at(c, y, x + p)) = *value };
    }
}

#[inline(always)]
unsafe fn copy<S: Simd>(m: &Memory, w: *const f32, s: &Elementwise, rows: Range<usize>) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match (s.scale.is_some(), s.add.is_some()) {
            (false, false) => copy_with::<S, false, false>(m, w, s, rows),
            (true, false) => copy_with::<S, true, false>(m, w, s, rows),
            (false, true) => copy_with::<S, false, true>(m, w, s, rows),
            (true, true) => copy_with::<S, true, true>(m, w, s, rows),
        }
    }
}

/// One pixel of an elementwise step: where channel 0 of it is in each view
/// (channel `c` is `c * channel_stride` further on).
#[derive(Clone, Copy)]
struct ElementwisePixel {
    src: *const f32,
    add: *const f32,
    dst: *mut f32,
    tee: *mut f32,
}

/// [`copy`] with the presence of F_glo's scale (`SCALE`) and of the addend
/// (`ADD`) constant, and each view's pixel located once: the code per vector
/// is loads, arithmetic and stores, with no address arithmetic or test of
/// what the step has (memory-bound steps that spent a third of their time
/// on that with 8 lanes).
#[inline(always)]
unsafe fn copy_with<S: Simd, const SCALE: bool, const ADD: bool>(
    m: &Memory,
    w: *const f32,
    s: &Elementwise,
    rows: Range<usize>,
) {
    let (src, dst) = (ptr(m, &s.src), ptr(m, &s.dst));
    let add = s.add.as_ref().map(|a| (ptr(m, a), a));
    let tee = s.tee.as_ref().map(|t| (ptr(m, t), t));
    // SAFETY: `scale..scale + c` is the F_glo scale scratch in the arena, checked as a read view of the step by `Exec::step`.
    let scale = s.scale.map_or(std::ptr::null(), |o| unsafe { m.arena.0.add(o) } as *const f32);
    // Where every view is NHWC, whole vectors of channels take plain loads and
    // stores, with no per-vector test of the lanes used or the spacing.
    let nhwc = [Some(&s.src), Some(&s.dst), s.add.as_ref(), s.tee.as_ref()].into_iter().flatten().all(View::is_nhwc);
    let whole = if nhwc { s.dst.c / S::LANES * S::LANES } else { 0 };
    // A plain function, not a closure: closures do not inherit target features.
    #[inline(always)]
    unsafe fn vector<S: Simd, const WHOLE: bool, const SCALE: bool, const ADD: bool>(
        w: *const f32,
        s: &Elementwise,
        px: ElementwisePixel,
        scale: *const f32,
        cb: usize,
    ) {
        let n = if WHOLE { S::LANES } else { (s.dst.c - cb).min(S::LANES) };
        // SAFETY: the source, addend and tee have the destination's shape (checked by `Exec::step`), so channels cb.. of the pixel are inside each; `scale` is the F_glo scale scratch of `c` floats; this thread owns the pixel's row. With `WHOLE`, the views are NHWC and `n` lanes are whole vectors.
        unsafe {
            let mut v = load_v::<S, WHOLE>(px.src.add(cb * s.src.channel_stride), n, s.src.channel_stride);
            if SCALE {
                v = S::mul(v, load_v::<S, WHOLE>(scale.add(cb), n, 1));
            }
            if let (true, Some(a)) = (ADD, &s.add) {
                v = S::add(v, load_v::<S, WHOLE>(px.add.add(cb * a.channel_stride), n, a.channel_stride));
            }
            let out = epilogue::<S>(&s.epilogue, w, cb, n, v);
            let at = px.dst.add(cb * s.dst.channel_stride);
            if WHOLE {
                S::store(at, out)
            } else {
                store_n::<S>(at, out, n, s.dst.channel_stride)
            }
            if let Some(t) = &s.tee {
                let teed = epilogue::<S>(&s.tee_epilogue, w, cb, n, out);
                store_n::<S>(px.tee.add(cb * t.channel_stride), teed, n, t.channel_stride);
            }
        }
    }
    for y in rows {
        for x in 0..s.dst.w {
            // SAFETY: (0, y, x) is inside each view (the addend and tee have the destination's shape, checked by `Exec::step`).
            let px = unsafe {
                ElementwisePixel {
                    src: src.add(s.src.at(0, y, x)),
                    add: match add {
                        Some((base, a)) => base.add(a.at(0, y, x)),
                        None => std::ptr::null(),
                    },
                    dst: dst.add(s.dst.at(0, y, x)),
                    tee: match tee {
                        Some((base, t)) => base.add(t.at(0, y, x)),
                        None => std::ptr::null_mut(),
                    },
                }
            };
            // SAFETY: forwarded from this function's contract (see `vector`).
            unsafe {
                for cb in (0..whole).step_by(S::LANES) {
                    vector::<S, true, SCALE, ADD>(w, s, px, scale, cb);
                }
                for cb in (whole..s.dst.c).step_by(S::LANES) {
                    vector::<S, false, SCALE, ADD>(w, s, px, scale, cb);
                }
            }
        }
    }
}

/// Stores `tee_epilogue(out)` at `(cb.., y, x)` of a step's tee, if it has one.
///
/// # Safety
/// The coordinates are inside the tee (it has the step's output shape), the tee
/// overlaps nothing else of the step, and this thread owns row `y`.
#[inline(always)]
unsafe fn store_tee<S: Simd>(
    tee: Option<(*mut f32, &View)>,
    w: *const f32,
    tee_epilogue: &Epilogue,
    (cb, y, x): (usize, usize, usize),
    n: usize,
    out: S::V,
) {
    if let Some((base, t)) = tee {
        let teed = epilogue::<S>(tee_epilogue, w, cb, n, out);
        // SAFETY: this function's contract.
        unsafe { store_n::<S>(base.add(t.at(cb, y, x)), teed, n, t.channel_stride) };
    }
}

/// Vectors of channels a row's sums accumulate at once (in registers).
const SUMS_VECTORS: usize = 8;

/// Channel sums of each row of `x`.
#[inline(always)]
unsafe fn channel_sums<S: Simd>(m: &Memory, s: &ChannelSums, rows: Range<usize>) {
    let (x, c) = (ptr(m, &s.x), s.x.c);
    for y in rows {
        // SAFETY: row `y` of the sums view (`sums + y * c`, c floats) was checked by `Exec::step`.
        let out = unsafe { m.arena.0.add(s.sums + y * c) };
        // Up to SUMS_VECTORS vectors of channels at once, each pixel's in
        // turn: the row is read in memory order, and each channel's sum still
        // adds its pixels left to right.
        for first in (0..c).step_by(SUMS_VECTORS * S::LANES) {
            let mut sums = [S::zero(); SUMS_VECTORS];
            let vectors = (c - first).div_ceil(S::LANES).min(SUMS_VECTORS);
            for px in 0..s.x.w {
                for (v, sum) in sums.iter_mut().enumerate().take(vectors) {
                    let cb = first + v * S::LANES;
                    let n = (c - cb).min(S::LANES);
                    // SAFETY: (cb.., y, px) is inside the checked view `x`.
                    *sum = S::add(*sum, unsafe { load_n::<S>(x.add(s.x.at(cb, y, px)), n, s.x.channel_stride) });
                }
            }
            for (v, sum) in sums.iter().enumerate().take(vectors) {
                let cb = first + v * S::LANES;
                // SAFETY: row `y` of the sums view (`sums + y * c`, c floats) was checked by `Exec::step`.
                unsafe { store_n::<S>(out.add(cb), *sum, (c - cb).min(S::LANES), 1) };
            }
        }
    }
}

/// The squeeze of F_glo: the rows' sums reduced to means, the two small FCs,
/// and the sigmoid scales into scratch.
#[inline(always)]
unsafe fn global_context<S: Simd>(m: &Memory, w: *const f32, s: &Squeeze) {
    let c = s.x.c;
    // SAFETY: F_glo's scratch (`scratch_len` floats: row sums, means, hidden units, scales) was checked by `Exec::step`.
    let scratch = unsafe { m.arena.0.add(s.scratch) };
    let rows = s.x.h;
    let (mean, hidden, scale) =
        // SAFETY: F_glo's scratch (`scratch_len` floats: row sums, means, hidden units, scales) was checked by `Exec::step`.
        unsafe { (scratch.add(rows * c), scratch.add(rows * c + c), scratch.add(rows * c + c + s.hidden)) };
    let inv = 1.0 / (s.x.h * s.x.w) as f32;
    for i in 0..c {
        let mut sum = 0.0;
        for y in 0..rows {
            // SAFETY: F_glo's scratch (`scratch_len` floats: row sums, means, hidden units, scales) was checked by `Exec::step`.
            sum += unsafe { *scratch.add(y * c + i) };
        }
        // SAFETY: F_glo's scratch (`scratch_len` floats: row sums, means, hidden units, scales) was checked by `Exec::step`.
        unsafe { *mean.add(i) = sum * inv };
    }
    // The two small FCs, in scalar: a few thousand multiply-adds.
    for j in 0..s.hidden {
        // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
        let mut acc = unsafe { *w.add(s.fc1_bias + j) };
        for i in 0..c {
            // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
            acc += unsafe { *w.add(s.fc1_weight + j * c + i) * *mean.add(i) };
        }
        // SAFETY: F_glo's scratch (`scratch_len` floats: row sums, means, hidden units, scales) was checked by `Exec::step`.
        unsafe { *hidden.add(j) = if acc > 0.0 { acc } else { 0.0 } };
    }
    for i in 0..c {
        // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
        let mut acc = unsafe { *w.add(s.fc2_bias + i) };
        for j in 0..s.hidden {
            // SAFETY: the step's bias and packed weights inside the weights slice (`Exec::step` checked every offset against `max_weight_offset`).
            acc += unsafe { *w.add(s.fc2_weight + i * s.hidden + j) * *hidden.add(j) };
        }
        // SAFETY: F_glo's scratch (`scratch_len` floats: row sums, means, hidden units, scales) was checked by `Exec::step`.
        unsafe { *scale.add(i) = 1.0 / (1.0 + (-acc).exp()) };
    }
}
