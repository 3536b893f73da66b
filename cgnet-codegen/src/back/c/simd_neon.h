/* 8-lane vectors as two AArch64 NEON registers (the c-neon target). */
#include <arm_neon.h>
#define CG_LANES 8
#define CG_REGS 16
typedef struct { float32x4_t lo, hi; } vf;
static inline vf vf_make(float32x4_t lo, float32x4_t hi) { vf r; r.lo = lo; r.hi = hi; return r; }
static inline vf vf_splat(float x) { return vf_make(vdupq_n_f32(x), vdupq_n_f32(x)); }
static inline vf vf_zero(void) { return vf_splat(0.0f); }
static inline vf vf_load(const float *p) { return vf_make(vld1q_f32(p), vld1q_f32(p + 4)); }
static inline void vf_store(float *p, vf a) { vst1q_f32(p, a.lo); vst1q_f32(p + 4, a.hi); }
static inline vf vf_madd(vf a, vf b, vf c) { return vf_make(vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)); }
static inline vf vf_add(vf a, vf b) { return vf_make(vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)); }
static inline vf vf_mul(vf a, vf b) { return vf_make(vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)); }
static inline vf vf_max(vf a, vf b) { return vf_make(vmaxq_f32(a.lo, b.lo), vmaxq_f32(a.hi, b.hi)); }
static inline vf vf_min(vf a, vf b) { return vf_make(vminq_f32(a.lo, b.lo), vminq_f32(a.hi, b.hi)); }
/* p[0], p[2], ..., p[14]: every other one of 15 readable floats (p8..p11 and
 * p11..p14 give the last four: the even lanes of one, the odd of the other). */
static inline vf vf_load_even(const float *p) {
    const float32x4_t a = vld1q_f32(p + 8), b = vld1q_f32(p + 11);
    return vf_make(vld2q_f32(p).val[0], vcombine_f32(vget_low_f32(vuzp1q_f32(a, a)), vget_low_f32(vuzp2q_f32(b, b))));
}
