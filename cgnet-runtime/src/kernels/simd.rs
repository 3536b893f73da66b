//! An f32 vector for the kernels, implemented per instruction set: 8 lanes
//! (portable, AVX2, a NEON pair) or 16 (AVX-512). Kernels are written once,
//! generic over [`Simd`], and compiled per target inside `#[target_feature]`
//! entry points (`entry_points!` in `ops.rs`).

/// Channels per block of the packed layout: per-output-channel weights are
/// padded to a multiple of 8 (`[..][co padded to 8]`), per-channel vectors to
/// a multiple of 8 plus 8. Independent of the vector width: a 16-lane variant
/// reads a half block with a masked load.
pub const PACKED_BLOCK: usize = 8;

/// # Safety
/// `load`/`store` read or write `LANES` consecutive f32 at the pointer, and
/// `load_first`/`store_first` the first `n`; callers guarantee those are in
/// bounds. Implementations that use instructions of an extension are only
/// called where that extension is enabled.
pub unsafe trait Simd: Copy {
    type V: Copy;
    /// An array of one vector's lanes: exactly `[f32; LANES]`, so that lanes
    /// gathered into it become register inserts, not a store and a reload.
    type Lanes: Copy + Default + AsRef<[f32]> + AsMut<[f32]>;
    /// Lanes per vector.
    const LANES: usize;
    /// Vector registers of the instruction set, counted in `V`s: sizes the register tiles.
    const REGISTERS: usize;
    fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The first `n <= LANES` floats at `p`; the other lanes are zero.
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self::V {
        if n == Self::LANES {
            // SAFETY: the caller guarantees `n` readable floats.
            return unsafe { Self::load(p) };
        }
        // Element by element (a `copy_nonoverlapping` of a variable length is a call to `memcpy`).
        // SAFETY: the caller guarantees `n` readable floats.
        unsafe { Self::gather(p, n, 1) }
    }
    /// `n <= LANES` floats at `p`, `p + stride`, `p + 2 * stride`, ...; the
    /// other lanes are zero.
    #[inline(always)]
    unsafe fn gather(p: *const f32, n: usize, stride: usize) -> Self::V {
        let mut lanes = Self::Lanes::default();
        for (i, lane) in lanes.as_mut().iter_mut().enumerate().take(n) {
            // SAFETY: the caller guarantees the `n` floats readable.
            *lane = unsafe { *p.add(i * stride) };
        }
        Self::from_array(lanes)
    }
    /// The floats at `p`, `p + 2`, ..., `p + 2 * (LANES - 1)`: every other one
    /// of `2 * LANES - 1` readable floats (a stride-2 window along a row).
    #[inline(always)]
    unsafe fn load_even(p: *const f32) -> Self::V {
        let mut lanes = Self::Lanes::default();
        for (i, lane) in lanes.as_mut().iter_mut().enumerate() {
            // SAFETY: the caller guarantees the floats readable.
            *lane = unsafe { *p.add(2 * i) };
        }
        Self::from_array(lanes)
    }
    /// Stores the first `n <= LANES` lanes at `p`.
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: Self::V, n: usize) {
        if n == Self::LANES {
            // SAFETY: the caller guarantees `n` writable floats.
            return unsafe { Self::store(p, v) };
        }
        for (i, lane) in Self::to_array(v).as_ref().iter().enumerate().take(n) {
            // SAFETY: the caller guarantees `n` writable floats.
            unsafe { *p.add(i) = *lane };
        }
    }
    /// `a * b + c` (fused where the target has FMA).
    fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn add(a: Self::V, b: Self::V) -> Self::V;
    fn mul(a: Self::V, b: Self::V) -> Self::V;
    fn max(a: Self::V, b: Self::V) -> Self::V;
    fn min(a: Self::V, b: Self::V) -> Self::V;
    fn zero() -> Self::V {
        Self::splat(0.0)
    }
    fn to_array(v: Self::V) -> Self::Lanes {
        let mut out = Self::Lanes::default();
        // SAFETY: `out` holds LANES floats.
        unsafe { Self::store(out.as_mut().as_mut_ptr(), v) };
        out
    }
    fn from_array(lanes: Self::Lanes) -> Self::V {
        // SAFETY: `lanes` holds LANES floats.
        unsafe { Self::load(lanes.as_ref().as_ptr()) }
    }
}

/// Portable lanes: plain arrays, `a * b + c` unfused. The reference variant.
#[derive(Clone, Copy)]
pub struct Scalar;

// SAFETY: plain array reads and writes of 8 floats at the caller's pointer; no extension.
unsafe impl Simd for Scalar {
    type V = [f32; 8];
    type Lanes = [f32; 8];
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    #[inline(always)]
    fn splat(x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: the caller guarantees 8 readable floats.
        unsafe { std::ptr::read_unaligned(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: the caller guarantees 8 writable floats.
        unsafe { std::ptr::write_unaligned(p.cast(), v) }
    }
    #[inline(always)]
    fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    fn mul(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i])
    }
    #[inline(always)]
    fn max(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn min(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| if a[i] < b[i] { a[i] } else { b[i] })
    }
}

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// AVX2 + FMA. Only used inside `#[target_feature(enable = "avx2,fma")]` code.
    #[derive(Clone, Copy)]
    pub struct Avx2;

    /// The mask of the first `n <= 8` lanes (all bits set in each).
    #[inline(always)]
    fn first(n: usize) -> __m256i {
        // SAFETY: AVX2 is enabled: only called from the methods below, inside AVX2 kernels.
        unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
    }

    // SAFETY: `load`/`store` touch exactly 8 floats (unaligned forms), and the
    // type is only used inside kernels compiled with AVX2 + FMA enabled.
    unsafe impl Simd for Avx2 {
        type V = __m256;
        type Lanes = [f32; 8];
        const LANES: usize = 8;
        const REGISTERS: usize = 16;
        #[inline(always)]
        fn splat(x: f32) -> __m256 {
            // SAFETY: AVX2 and FMA are enabled: these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU.
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: AVX2 is enabled (these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU), and the caller's contract makes `p` valid for 8 floats.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: AVX2 is enabled (these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU), and the caller's contract makes `p` valid for 8 floats.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, n: usize) -> __m256 {
            if n == 8 {
                // SAFETY: AVX2 is enabled (see `splat`), and the caller's contract makes `p` valid for 8 floats.
                return unsafe { _mm256_loadu_ps(p) };
            }
            // A masked load (masked-off floats are not accessed), not a copy through the stack.
            // SAFETY: AVX2 is enabled (see `splat`); only the first `n` floats, valid by the caller's contract, are read.
            unsafe { _mm256_maskload_ps(p, first(n)) }
        }
        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: __m256, n: usize) {
            if n == 8 {
                // SAFETY: AVX2 is enabled (see `splat`), and the caller's contract makes `p` valid for 8 floats.
                return unsafe { _mm256_storeu_ps(p, v) };
            }
            // SAFETY: AVX2 is enabled (see `splat`); only the first `n` floats, valid by the caller's contract, are written.
            unsafe { _mm256_maskstore_ps(p, first(n), v) }
        }
        #[inline(always)]
        unsafe fn gather(p: *const f32, n: usize, stride: usize) -> __m256 {
            // A gather instruction, not lanes stored one by one and reloaded as a
            // vector (a store-forwarding stall per vector).
            if stride > (i32::MAX / 8) as usize {
                let mut lanes = [0.0f32; 8];
                for (i, lane) in lanes.iter_mut().enumerate().take(n) {
                    // SAFETY: the caller guarantees the `n` floats readable.
                    *lane = unsafe { *p.add(i * stride) };
                }
                // SAFETY: AVX2 is enabled (see `splat`), and `lanes` holds 8 floats.
                return unsafe { _mm256_loadu_ps(lanes.as_ptr()) };
            }
            // SAFETY: AVX2 is enabled (see `splat`); the mask keeps only the first `n` lanes, whose floats the caller guarantees readable (masked-off lanes are not accessed), and `7 * stride` fits the 32-bit offsets.
            unsafe {
                let offsets =
                    _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride as i32));
                _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), p, offsets, _mm256_castsi256_ps(first(n)))
            }
        }
        #[inline(always)]
        unsafe fn load_even(p: *const f32) -> __m256 {
            // SAFETY: AVX2 is enabled (see `splat`); the caller guarantees `2 * 8 - 1` readable floats, and the second load ends at the last of them.
            unsafe {
                let (a, b) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(7)));
                // a = p0..p7, b = p7..p14: the even floats are a's lanes 0 2 4 6 and b's lanes 1 3 5 7.
                let evens = _mm256_blend_ps::<0b1010_1010>(a, b);
                // evens = p0 p8 p2 p10 | p4 p12 p6 p14: order each half (p0 p2 p8 p10 | p4 p6 p12 p14), then the pairs.
                let halves = _mm256_permute_ps::<0b11_01_10_00>(evens);
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(halves)))
            }
        }
        #[inline(always)]
        fn madd(a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: AVX2 and FMA are enabled: these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU.
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX2 and FMA are enabled: these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU.
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX2 and FMA are enabled: these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU.
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn max(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX2 and FMA are enabled: these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU.
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX2 and FMA are enabled: these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU.
            unsafe { _mm256_min_ps(a, b) }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub use avx512::Avx512;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// AVX-512F: 16 lanes, 32 registers; partial vectors are masked loads and
    /// stores. Only used inside `#[target_feature(enable = "avx512f,avx2,fma")]` code.
    #[derive(Clone, Copy)]
    pub struct Avx512;

    /// The mask of the first `n <= 16` lanes.
    #[inline(always)]
    fn first(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    // SAFETY: `load`/`store` touch exactly 16 floats and `load_first`/`store_first`
    // exactly `n` (masked lanes are not accessed: AVX-512 masked memory operations
    // do not fault on masked-off elements); the type is only used inside kernels
    // compiled with AVX-512F enabled.
    unsafe impl Simd for Avx512 {
        type V = __m512;
        type Lanes = [f32; 16];
        const LANES: usize = 16;
        const REGISTERS: usize = 32;
        #[inline(always)]
        fn splat(x: f32) -> __m512 {
            // SAFETY: AVX-512F is enabled: these methods only run inside `#[target_feature(enable = "avx512f,avx2,fma")]` kernels, after `Exec::step` checked the CPU.
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: AVX-512F is enabled (see `splat`), and the caller's contract makes `p` valid for 16 floats.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: AVX-512F is enabled (see `splat`), and the caller's contract makes `p` valid for 16 floats.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, n: usize) -> __m512 {
            if n == 16 {
                // SAFETY: AVX-512F is enabled (see `splat`), and the caller's contract makes `p` valid for 16 floats.
                return unsafe { _mm512_loadu_ps(p) };
            }
            // SAFETY: AVX-512F is enabled (see `splat`); only the first `n` floats, valid by the caller's contract, are read.
            unsafe { _mm512_maskz_loadu_ps(first(n), p) }
        }
        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: __m512, n: usize) {
            // Whole vectors with a plain store: a load of data a masked store
            // wrote cannot be forwarded from it, and waits for it to retire.
            if n == 16 {
                // SAFETY: AVX-512F is enabled (see `splat`), and the caller's contract makes `p` valid for 16 floats.
                return unsafe { _mm512_storeu_ps(p, v) };
            }
            // SAFETY: AVX-512F is enabled (see `splat`); only the first `n` floats, valid by the caller's contract, are written.
            unsafe { _mm512_mask_storeu_ps(p, first(n), v) }
        }
        #[inline(always)]
        unsafe fn gather(p: *const f32, n: usize, stride: usize) -> __m512 {
            // A gather instruction, not lanes stored one by one and reloaded as a
            // vector (a store-forwarding stall per vector).
            if stride > (i32::MAX / 16) as usize {
                let mut lanes = [0.0f32; 16];
                for (i, lane) in lanes.iter_mut().enumerate().take(n) {
                    // SAFETY: the caller guarantees the `n` floats readable.
                    *lane = unsafe { *p.add(i * stride) };
                }
                // SAFETY: AVX-512F is enabled (see `splat`), and `lanes` holds 16 floats.
                return unsafe { _mm512_loadu_ps(lanes.as_ptr()) };
            }
            if n <= 8 {
                // An 8-lane gather is the cheaper instruction (a planar picture's 3 channels).
                // SAFETY: AVX2 is enabled with AVX-512F here (see `splat`); as for `Avx2::gather`.
                return unsafe { _mm512_zextps256_ps512(super::Avx2::gather(p, n, stride)) };
            }
            // SAFETY: AVX-512F is enabled (see `splat`); the mask keeps only the first `n` lanes, whose floats the caller guarantees readable (masked-off lanes are not accessed), and `15 * stride` fits the 32-bit offsets.
            unsafe {
                let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                let offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32(stride as i32));
                _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), first(n), offsets, p)
            }
        }
        #[inline(always)]
        unsafe fn load_even(p: *const f32) -> __m512 {
            // SAFETY: AVX-512F is enabled (see `splat`); the caller guarantees `2 * 16 - 1` readable floats, and the second load ends at the last of them.
            unsafe {
                let (a, b) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(15)));
                // a = p0..p15, b = p15..p30: the even floats are a's even lanes, then b's odd lanes.
                let index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 31);
                _mm512_permutex2var_ps(a, index, b)
            }
        }
        #[inline(always)]
        fn madd(a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: AVX-512F is enabled (see `splat`).
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F is enabled (see `splat`).
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F is enabled (see `splat`).
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        fn max(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F is enabled (see `splat`).
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F is enabled (see `splat`).
            unsafe { _mm512_min_ps(a, b) }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub use neon::Neon;

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::Simd;
    use std::arch::aarch64::*;

    /// Two NEON registers per 8-lane vector (NEON is baseline on AArch64).
    #[derive(Clone, Copy)]
    pub struct Neon;

    #[derive(Clone, Copy)]
    pub struct V2(float32x4_t, float32x4_t);

    // SAFETY: `load`/`store` touch exactly 8 floats (two 4-lane registers);
    // NEON is part of every AArch64 CPU.
    unsafe impl Simd for Neon {
        type V = V2;
        type Lanes = [f32; 8];
        const LANES: usize = 8;
        // 32 NEON registers, two per vector.
        const REGISTERS: usize = 16;
        #[inline(always)]
        fn splat(x: f32) -> V2 {
            // SAFETY: NEON is part of every AArch64 CPU: the intrinsic only computes on registers.
            unsafe { V2(vdupq_n_f32(x), vdupq_n_f32(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> V2 {
            // SAFETY: NEON is part of every AArch64 CPU, and the caller's contract makes `p` valid for 8 floats.
            unsafe { V2(vld1q_f32(p), vld1q_f32(p.add(4))) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: V2) {
            // SAFETY: NEON is part of every AArch64 CPU, and the caller's contract makes `p` valid for 8 floats.
            unsafe {
                vst1q_f32(p, v.0);
                vst1q_f32(p.add(4), v.1);
            }
        }
        #[inline(always)]
        fn madd(a: V2, b: V2, c: V2) -> V2 {
            // SAFETY: NEON is part of every AArch64 CPU: the intrinsic only computes on registers.
            unsafe { V2(vfmaq_f32(c.0, a.0, b.0), vfmaq_f32(c.1, a.1, b.1)) }
        }
        #[inline(always)]
        fn add(a: V2, b: V2) -> V2 {
            // SAFETY: NEON is part of every AArch64 CPU: the intrinsic only computes on registers.
            unsafe { V2(vaddq_f32(a.0, b.0), vaddq_f32(a.1, b.1)) }
        }
        #[inline(always)]
        fn mul(a: V2, b: V2) -> V2 {
            // SAFETY: NEON is part of every AArch64 CPU: the intrinsic only computes on registers.
            unsafe { V2(vmulq_f32(a.0, b.0), vmulq_f32(a.1, b.1)) }
        }
        #[inline(always)]
        fn max(a: V2, b: V2) -> V2 {
            // SAFETY: NEON is part of every AArch64 CPU: the intrinsic only computes on registers.
            unsafe { V2(vmaxq_f32(a.0, b.0), vmaxq_f32(a.1, b.1)) }
        }
        #[inline(always)]
        fn min(a: V2, b: V2) -> V2 {
            // SAFETY: NEON is part of every AArch64 CPU: the intrinsic only computes on registers.
            unsafe { V2(vminq_f32(a.0, b.0), vminq_f32(a.1, b.1)) }
        }
    }
}
