/* 8-lane vectors in portable C (the c-scalar target). */
#define CG_LANES 8
#define CG_REGS 16
typedef struct { float v[8]; } vf;
static inline vf vf_splat(float x) { vf r; int i; for (i = 0; i < 8; i++) r.v[i] = x; return r; }
static inline vf vf_zero(void) { return vf_splat(0.0f); }
static inline vf vf_load(const float *p) { vf r; int i; for (i = 0; i < 8; i++) r.v[i] = p[i]; return r; }
static inline void vf_store(float *p, vf a) { int i; for (i = 0; i < 8; i++) p[i] = a.v[i]; }
static inline vf vf_madd(vf a, vf b, vf c) { vf r; int i; for (i = 0; i < 8; i++) r.v[i] = a.v[i] * b.v[i] + c.v[i]; return r; }
static inline vf vf_add(vf a, vf b) { vf r; int i; for (i = 0; i < 8; i++) r.v[i] = a.v[i] + b.v[i]; return r; }
static inline vf vf_mul(vf a, vf b) { vf r; int i; for (i = 0; i < 8; i++) r.v[i] = a.v[i] * b.v[i]; return r; }
static inline vf vf_max(vf a, vf b) { vf r; int i; for (i = 0; i < 8; i++) r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return r; }
static inline vf vf_min(vf a, vf b) { vf r; int i; for (i = 0; i < 8; i++) r.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i]; return r; }
/* p[0], p[2], ..., p[14]: every other one of 15 readable floats. */
static inline vf vf_load_even(const float *p) { vf r; int i; for (i = 0; i < 8; i++) r.v[i] = p[2 * i]; return r; }
