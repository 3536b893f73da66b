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
