/* 16-lane vectors on AVX-512F (the c-avx512 target; compile with -mavx512f -mavx2 -mfma). */
#include <immintrin.h>
#define CG_LANES 16
#define CG_REGS 32
typedef __m512 vf;
static inline vf vf_splat(float x) { return _mm512_set1_ps(x); }
static inline vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vf_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
static inline vf vf_madd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
/* Partial vectors: masked loads and stores (masked-off floats are not accessed). */
#define CG_MASKED 1
static inline __mmask16 vf_first(size_t n) { return (__mmask16)((1u << n) - 1u); }
static inline vf vf_load_first(const float *p, size_t n) { return _mm512_maskz_loadu_ps(vf_first(n), p); }
static inline void vf_store_first(float *p, vf a, size_t n) { _mm512_mask_storeu_ps(p, vf_first(n), a); }
/* p[0], p[2], ..., p[30]: every other one of 31 readable floats (a = p0..p15's even
 * lanes, then b = p15..p30's odd lanes). */
static inline vf vf_load_even(const float *p) {
    const __m512i index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(p), index, _mm512_loadu_ps(p + 15));
}
