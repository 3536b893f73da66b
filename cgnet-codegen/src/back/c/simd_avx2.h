/* 8-lane vectors on AVX2 + FMA (the c-avx2 target; compile with -mavx2 -mfma). */
#include <immintrin.h>
#define CG_LANES 8
#define CG_REGS 16
typedef __m256 vf;
static inline vf vf_splat(float x) { return _mm256_set1_ps(x); }
static inline vf vf_zero(void) { return _mm256_setzero_ps(); }
static inline vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
static inline vf vf_madd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
/* Partial vectors: masked loads and stores (masked-off floats are not accessed). */
#define CG_MASKED 1
static inline __m256i vf_first(size_t n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
static inline vf vf_load_first(const float *p, size_t n) { return _mm256_maskload_ps(p, vf_first(n)); }
static inline void vf_store_first(float *p, vf a, size_t n) { _mm256_maskstore_ps(p, vf_first(n), a); }
/* p[0], p[2], ..., p[14]: every other one of 15 readable floats. a = p0..p7 and
 * b = p7..p14 hold them in lanes 0 2 4 6 and 1 3 5 7: blend, then order each half
 * and the pairs. */
static inline vf vf_load_even(const float *p) {
    const vf evens = _mm256_blend_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 7), 0xaa);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_permute_ps(evens, 0xd8)), 0xd8));
}
