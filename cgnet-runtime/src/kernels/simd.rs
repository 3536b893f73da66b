//! An 8-lane f32 vector for the kernels, implemented per instruction set.
//! Kernels are written once, generic over [`Simd`], and compiled per target
//! inside `#[target_feature]` entry points (`entry_points!` in `ops.rs`).

/// Lanes per vector: one AVX2 register, two NEON registers.
pub const LANES: usize = 8;

/// # Safety
/// `load`/`store` read or write 8 consecutive f32 at the pointer; callers
/// guarantee those are in bounds. Implementations that use instructions of
/// an extension are only called where that extension is enabled.
pub unsafe trait Simd: Copy {
    type V: Copy;
    fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c` (fused where the target has FMA).
    fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn add(a: Self::V, b: Self::V) -> Self::V;
    fn mul(a: Self::V, b: Self::V) -> Self::V;
    fn max(a: Self::V, b: Self::V) -> Self::V;
    fn min(a: Self::V, b: Self::V) -> Self::V;
    fn zero() -> Self::V {
        Self::splat(0.0)
    }
    fn to_array(v: Self::V) -> [f32; LANES] {
        let mut out = [0.0; LANES];
        // SAFETY: `out` holds LANES floats.
        unsafe { Self::store(out.as_mut_ptr(), v) };
        out
    }
}

/// Portable lanes: plain arrays, `a * b + c` unfused. The reference variant.
#[derive(Clone, Copy)]
pub struct Scalar;

// SAFETY: plain array reads and writes of 8 floats at the caller's pointer; no extension.
unsafe impl Simd for Scalar {
    type V = [f32; LANES];
    #[inline(always)]
    fn splat(x: f32) -> Self::V {
        [x; LANES]
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
    use super::{Simd, LANES};
    use std::arch::x86_64::*;

    /// AVX2 + FMA. Only used inside `#[target_feature(enable = "avx2,fma")]` code.
    #[derive(Clone, Copy)]
    pub struct Avx2;

    // SAFETY: `load`/`store` touch exactly 8 floats (unaligned forms), and the
    // type is only used inside kernels compiled with AVX2 + FMA enabled.
    unsafe impl Simd for Avx2 {
        type V = __m256;
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
        #[inline(always)]
        fn to_array(v: __m256) -> [f32; LANES] {
            let mut out = [0.0; LANES];
            // SAFETY: AVX2 is enabled (these methods only run inside `#[target_feature(enable = "avx2,fma")]` kernels, after `Exec::step` checked the CPU), and the caller's contract makes `p` valid for 8 floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
            out
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub use neon::Neon;

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{Simd, LANES};
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
        #[inline(always)]
        fn to_array(v: V2) -> [f32; LANES] {
            let mut out = [0.0; LANES];
            // SAFETY: `out` holds 8 floats.
            unsafe { Self::store(out.as_mut_ptr(), v) };
            out
        }
    }
}
