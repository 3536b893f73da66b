/* ---- cgnet kernels: one C implementation over the `vf` type above (CG_LANES
 * floats: 8, or 16 on AVX-512). Mirrors cgnet-runtime/src/kernels (the Rust
 * kernels); both are checked against the reference interpreter. Views are
 * strided windows: element (c, y, x) is at
 * offset + (y & row_mask)*row_stride + x*pixel_stride + c*channel_stride;
 * row_mask is CG_ALL_ROWS for a whole tensor, 2^k - 1 for a ring that holds
 * the last 2^k rows of a tensor computed band by band (a streamed region).
 * The packed weights come in blocks of CG_BLOCK = 8 channels whatever the
 * vector width: 8-lane targets load whole vectors of them (the padding
 * guarantees that), wider ones load the used lanes only (cg_packed). */

#if defined(__GNUC__) || defined(__clang__)
#define CG_INLINE static inline __attribute__((always_inline))
/* Unrolls a register tile's loop completely, so that its accumulators stay in
 * registers (a rolled loop indexes them, which keeps them in memory). */
#define CG_UNROLL _Pragma("GCC unroll 32")
#else
#define CG_INLINE static inline
#define CG_UNROLL
#endif

/* No multiply and add fused unless the code says so (vf_madd): GCC's GNU modes
 * (-ffp-contract=fast, the default without -std=c99, and CMake's) and clang (even
 * with -std=c99) would fuse some, changing the last bits. With this, any compiler
 * and mode give the Rust kernels' results bit for bit. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif

#define CG_BLOCK 8
/* Register tiles twice as large where there are 32 vector registers. */
#define CG_TILE_SCALE (CG_REGS >= 32 ? 2 : 1)

enum { CG_ARENA = 0, CG_INPUT = 1, CG_LOGITS = 2, CG_SCORES = 3, CG_LABELS = 4, CG_RGB8 = 5 };
enum { CG_ACT_NONE = 0, CG_ACT_RELU = 1, CG_ACT_PRELU = 2 };

#define CG_ALL_ROWS ((size_t)-1)
typedef struct { int mem; size_t offset, c, h, w, row_stride, pixel_stride, channel_stride, row_mask; } cg_view;
typedef struct { int kind; size_t off; } cg_act;
typedef struct { cg_act act; int has_affine; size_t scale, shift; cg_act act2; } cg_epilogue;
/* CG_STEP_TYPES: the step structs, generated from cgnet-runtime's step schema (program.rs). */
/* rgb8: the caller's picture ([H][W][3] bytes) when an 8-bit entry point runs (else null);
 * CG_RGB8 views read it as (byte - mean[c]) * inv_std[c]. */
typedef struct {
    float *arena; const float *input; float *logits; float *scores; uint8_t *labels; const float *w;
    const uint8_t *rgb8; const float *mean, *inv_std;
} cg_mem;

CG_INLINE float *cg_base(const cg_mem *m, int mem) {
    switch (mem) {
    case CG_INPUT: return (float *)m->input; /* only ever read */
    case CG_LOGITS: return m->logits;
    case CG_SCORES: return m->scores;
    default: return m->arena;
    }
}

CG_INLINE size_t cg_at(const cg_view *v, size_t c, size_t y, size_t x) {
    return v->offset + (y & v->row_mask) * v->row_stride + x * v->pixel_stride + c * v->channel_stride;
}

/* A vector of packed weights or per-channel parameters of which the first n lanes are used. */
CG_INLINE vf cg_packed(const float *p, size_t n) {
#if CG_LANES == CG_BLOCK
    (void)n;
    return vf_load(p);
#else
    return vf_load_first(p, n);
#endif
}

/* max(v, 0) + min(v, 0) * slope == (v < 0 ? v * slope : v) */
CG_INLINE vf cg_prelu(vf v, vf slope) { return vf_madd(vf_min(v, vf_zero()), slope, vf_max(v, vf_zero())); }

/* The per-channel parameter vector at offset `off` of the weights: channels
 * c..c+n in the lanes, or with `splat` (lanes that are pixels) channel c in every lane. */
CG_INLINE vf cg_param(const float *w, size_t off, size_t c, size_t n, int splat) {
    return splat ? vf_splat(w[off + c]) : cg_packed(w + off + c, n);
}

CG_INLINE vf cg_activate(const cg_act *a, const float *w, size_t c, size_t n, int splat, vf v) {
    if (a->kind == CG_ACT_RELU) return vf_max(v, vf_zero());
    if (a->kind == CG_ACT_PRELU) return cg_prelu(v, cg_param(w, a->off, c, n, splat));
    return v;
}

CG_INLINE vf cg_epilogue_params(const cg_epilogue *e, const float *w, size_t c, size_t n, int splat, vf v) {
    v = cg_activate(&e->act, w, c, n, splat, v);
    if (e->has_affine) v = vf_madd(v, cg_param(w, e->scale, c, n, splat), cg_param(w, e->shift, c, n, splat));
    return cg_activate(&e->act2, w, c, n, splat, v);
}

/* The epilogue on channels c..c+n (n <= CG_LANES). */
CG_INLINE vf cg_epilogue_apply(const cg_epilogue *e, const float *w, size_t c, size_t n, vf v) { return cg_epilogue_params(e, w, c, n, 0, v); }

/* The epilogue of channel c in every lane (lanes that are pixels): the same operations. */
CG_INLINE vf cg_epilogue_channel(const cg_epilogue *e, const float *w, size_t c, vf v) { return cg_epilogue_params(e, w, c, CG_LANES, 1, v); }

/* Loads n <= CG_LANES channels spaced `stride` apart; other lanes are zero. */
CG_INLINE vf cg_load_n(const float *p, size_t n, size_t stride) {
    if (n == CG_LANES && stride == 1) return vf_load(p);
#ifdef CG_MASKED
    if (stride == 1) return vf_load_first(p, n);
#endif
    {
        float t[CG_LANES] = {0};
        size_t i;
        for (i = 0; i < n; i++) t[i] = p[i * stride];
        return vf_load(t);
    }
}

CG_INLINE void cg_store_n(float *p, vf v, size_t n, size_t stride) {
    float t[CG_LANES];
    size_t i;
    if (n == CG_LANES && stride == 1) { vf_store(p, v); return; }
#ifdef CG_MASKED
    if (stride == 1) { vf_store_first(p, v, n); return; }
#endif
    vf_store(t, v);
    for (i = 0; i < n; i++) p[i * stride] = t[i];
}

/* Where a convolution or a pool reads: floats, or the 8-bit picture normalised as it is
 * read, in f32 exactly as cgnet-runtime's Normalisation (so both entry points agree bit
 * for bit). `rgb8` is a constant at every call site, so each inlined copy has one path. */
typedef struct { const float *f; const uint8_t *b; const float *mean, *inv_std; } cg_src;

CG_INLINE cg_src cg_source(const cg_mem *m, int mem) {
    cg_src s;
    s.f = cg_base(m, mem);
    s.b = m->rgb8;
    s.mean = m->mean;
    s.inv_std = m->inv_std;
    return s;
}

CG_INLINE float cg_get(const cg_src *s, size_t i, size_t c, int rgb8) {
    return rgb8 ? ((float)s->b[i] - s->mean[c]) * s->inv_std[c] : s->f[i];
}

/* Channels c..c+n (n <= CG_LANES) from element i, spaced `stride` apart; other lanes zero. */
CG_INLINE vf cg_get_n(const cg_src *s, size_t i, size_t c, size_t n, size_t stride, int rgb8) {
    if (!rgb8) return cg_load_n(s->f + i, n, stride);
    {
        float t[CG_LANES] = {0};
        size_t k;
        for (k = 0; k < n; k++) t[k] = cg_get(s, i + k * stride, c + k, 1);
        return vf_load(t);
    }
}

#define CG_MAX_P (8 * CG_TILE_SCALE)
#define CG_MAX_V 4
/* Accumulators of a register tile, flat (acc[p * V + v]) and no larger than the
 * largest tile: compilers keep a small array in registers, a large one in memory. */
#define CG_MAX_ACC (12 * CG_TILE_SCALE)

/* One term of a convolution with few (tap, channel) pairs: its offset from the
 * pixel under the kernel's corner, and its channel. Such a convolution (the
 * first one: 3x3 over a picture's 3 channels, 27 terms) runs its interior
 * tiles as one loop over every term, in weight order (ky, kx, channel),
 * instead of one short loop per tap with its own addressing: the same sums in
 * the same order, bit for bit (Rust: `TapTable`). */
typedef struct { size_t offset, channel; } cg_tap;
#define CG_TAP_TABLE_TERMS 32

/* acc[p * V + v] += w[j][v] * x[p][j] over the `count` terms j: input channels c
 * (`taps` null: offset c * cs, channel c) or the entries of `taps`. Of the
 * weights (V vectors, co_pad apart per term, `last` lanes used in the last one)
 * and the broadcast inputs (P), whichever is fewer is loaded up front and the
 * other one at a time, so that the accumulators and operands fit in the vector
 * registers. With a mask, pixel p's input is scaled by mask[p] (0 for padding). */
CG_INLINE void cg_accumulate(vf acc[CG_MAX_ACC], const float *wrow, size_t co_pad, size_t last, const cg_src *src,
                             int rgb8, const size_t *base, size_t cs, const cg_tap *taps, size_t count,
                             const float *mask, const size_t P, const size_t V) {
    /* A private copy with constant indices only (the loops are unrolled), which
     * compilers keep in registers; the caller's tile is also indexed by run-time
     * pixel counts, which keeps it in memory, stored to on every iteration. */
    vf a[CG_MAX_ACC];
    size_t c, p, v;
    CG_UNROLL for (p = 0; p < P * V; p++) a[p] = acc[p];
    for (c = 0; c < count; c++) {
        const float *w = wrow + c * co_pad;
        const size_t offset = taps ? taps[c].offset : c * cs, channel = taps ? taps[c].channel : c;
        if (V <= P) {
            vf wv[CG_MAX_V];
            CG_UNROLL for (v = 0; v < V; v++) wv[v] = cg_packed(w + v * CG_LANES, v + 1 == V ? last : CG_LANES);
            CG_UNROLL for (p = 0; p < P; p++) {
                const float x = cg_get(src, base[p] + offset, channel, rgb8);
                const vf b = vf_splat(mask ? x * mask[p] : x);
                CG_UNROLL for (v = 0; v < V; v++) a[p * V + v] = vf_madd(wv[v], b, a[p * V + v]);
            }
        } else {
            vf b[CG_MAX_P];
            CG_UNROLL for (p = 0; p < P; p++) {
                const float x = cg_get(src, base[p] + offset, channel, rgb8);
                b[p] = vf_splat(mask ? x * mask[p] : x);
            }
            CG_UNROLL for (v = 0; v < V; v++) {
                const vf wv = cg_packed(w + v * CG_LANES, v + 1 == V ? last : CG_LANES);
                CG_UNROLL for (p = 0; p < P; p++) a[p * V + v] = vf_madd(wv, b[p], a[p * V + v]);
            }
        }
    }
    CG_UNROLL for (p = 0; p < P * V; p++) acc[p] = a[p];
}

/* Output pixels ox..ox+np of row oy, channel blocks cb..cb+V, in register tiles of P
 * pixels. `taps`: the convolution's `nt` terms as one list (cg_tap), or null. */
CG_INLINE void cg_conv_tile(const cg_conv *s, const cg_mem *m, const cg_tap *taps, size_t nt, size_t oy, size_t ox,
                            size_t np, size_t cb, const size_t P, const size_t V) {
    const float *w = m->w;
    const cg_src src = cg_source(m, s->src.mem);
    const int rgb8 = s->src.mem == CG_RGB8;
    float *dst = cg_base(m, s->dst.mem);
    const size_t co = s->dst.c, co_pad = (co + CG_BLOCK - 1) / CG_BLOCK * CG_BLOCK, vectors = (co + CG_LANES - 1) / CG_LANES;
    /* Used lanes of the group's last vector (the others are whole). */
    const size_t last_v = cb + V - 1 < vectors - 1 ? cb + V - 1 : vectors - 1;
    const size_t last = co - last_v * CG_LANES < CG_LANES ? co - last_v * CG_LANES : CG_LANES;
    const size_t k = s->kernel, stride = s->stride, dil = s->dilation;
    const long pad = (long)(dil * (k - 1) / 2), reach = (long)(dil * (k - 1));
    const size_t ci = s->src.c, cs = s->src.channel_stride;
    size_t done = 0;
    while (done < np) {
        const size_t n = np - done < P ? np - done : P;
        const size_t x0 = ox + done;
        vf acc[CG_MAX_ACC];
        size_t p, v, ky, kx;
        long corner_y, corner_x;
        if (s->has_add) {
            /* One part of a split convolution: the sums so far, at these pixels. */
            const float *from = cg_base(m, s->add.mem);
            for (p = 0; p < P; p++) {
                for (v = 0; v < V; v++) {
                    const size_t ch = (cb + v) * CG_LANES;
                    acc[p * V + v] = p < n && ch < co
                                         ? cg_load_n(from + cg_at(&s->add, ch, oy, x0 + p), co - ch < CG_LANES ? co - ch : CG_LANES,
                                                     s->add.channel_stride)
                                         : vf_zero();
                }
            }
        } else {
            for (v = 0; v < V; v++) {
                vf b = cg_packed(w + s->bias + (cb + v) * CG_LANES, v + 1 == V ? last : CG_LANES);
                for (p = 0; p < P; p++) acc[p * V + v] = b;
            }
        }
        /* The corner of the kernel's window over the tile's first pixel, and how far the window reaches. */
        corner_y = (long)(oy * stride) - pad;
        corner_x = (long)(x0 * stride) - pad;
        if (taps && n == P && corner_y >= 0 && corner_y + reach < (long)s->src.h && corner_x >= 0
            && corner_x + reach + (long)((P - 1) * stride) < (long)s->src.w) {
            size_t base[CG_MAX_P];
            const float *wrow = w + s->weights + cb * CG_LANES;
            for (p = 0; p < P; p++) base[p] = cg_at(&s->src, 0, (size_t)corner_y, (size_t)corner_x + p * stride);
            if (rgb8) cg_accumulate(acc, wrow, co_pad, last, &src, 1, base, 0, taps, nt, 0, P, V);
            else cg_accumulate(acc, wrow, co_pad, last, &src, 0, base, 0, taps, nt, 0, P, V);
        } else {
            for (ky = 0; ky < k; ky++) {
                const long iy = (long)(oy * stride + ky * dil) - pad;
                if (iy < 0 || iy >= (long)s->src.h) continue;
                for (kx = 0; kx < k; kx++) {
                    const long ix0 = (long)(x0 * stride + kx * dil) - pad;
                    const long ix_last = ix0 + (long)((n - 1) * stride);
                    const float *wrow = w + s->weights + (ky * k + kx) * ci * co_pad + cb * CG_LANES;
                    size_t base[CG_MAX_P];
                    float mask[CG_MAX_P];
                    int interior = n == P && ix0 >= 0 && ix_last < (long)s->src.w;
                    for (p = 0; p < P; p++) {
                        long ix = ix0 + (long)(p * stride);
                        int valid = p < n && ix >= 0 && ix < (long)s->src.w;
                        if (ix < 0) ix = 0;
                        if (ix > (long)s->src.w - 1) ix = (long)s->src.w - 1;
                        mask[p] = valid ? 1.0f : 0.0f;
                        base[p] = cg_at(&s->src, 0, (size_t)iy, (size_t)ix);
                    }
                    /* One call site per case, so that each inlined copy has a constant mask and source. */
                    if (rgb8 && interior) cg_accumulate(acc, wrow, co_pad, last, &src, 1, base, cs, 0, ci, 0, P, V);
                    else if (rgb8) cg_accumulate(acc, wrow, co_pad, last, &src, 1, base, cs, 0, ci, mask, P, V);
                    else if (interior) cg_accumulate(acc, wrow, co_pad, last, &src, 0, base, cs, 0, ci, 0, P, V);
                    else cg_accumulate(acc, wrow, co_pad, last, &src, 0, base, cs, 0, ci, mask, P, V);
                }
            }
        }
        for (p = 0; p < n; p++) {
            for (v = 0; v < V; v++) {
                const size_t ch = (cb + v) * CG_LANES, nc = co - ch < CG_LANES ? co - ch : CG_LANES;
                if (ch >= co) break;
                cg_store_n(dst + cg_at(&s->dst, ch, oy, x0 + p), cg_epilogue_apply(&s->epilogue, w, ch, nc, acc[p * V + v]), nc,
                           s->dst.channel_stride);
            }
        }
        done += n;
    }
}

/* Pixels per tile for a group of v channel vectors: p * v <= 12 accumulators of 16
 * registers (24 of 32). */
static size_t cg_tile_pixels(size_t v) { return (v >= 4 ? 3 : v == 3 ? 4 : v == 2 ? 6 : 8) * CG_TILE_SCALE; }

#define CG_CONV_TILE(P, V)                                                                                                      \
    static void cg_conv_tile_##P##_##V(const cg_conv *s, const cg_mem *m, const cg_tap *taps, size_t nt, size_t oy,             \
                                       size_t ox, size_t np, size_t cb) {                                                       \
        cg_conv_tile(s, m, taps, nt, oy, ox, np, cb, P * CG_TILE_SCALE, V);                                                    \
    }
CG_CONV_TILE(3, 4)
CG_CONV_TILE(4, 3)
CG_CONV_TILE(6, 2)
CG_CONV_TILE(8, 1)

static void cg_conv_group(const cg_conv *s, const cg_mem *m, const cg_tap *taps, size_t nt, size_t oy, size_t ox, size_t cb,
                          size_t tile) {
    const size_t blocks = (s->dst.c + CG_LANES - 1) / CG_LANES, nv = blocks - cb < 4 ? blocks - cb : 4;
    const size_t np = s->dst.w - ox < tile ? s->dst.w - ox : tile;
    if (nv == 4) cg_conv_tile_3_4(s, m, taps, nt, oy, ox, np, cb);
    else if (nv == 3) cg_conv_tile_4_3(s, m, taps, nt, oy, ox, np, cb);
    else if (nv == 2) cg_conv_tile_6_2(s, m, taps, nt, oy, ox, np, cb);
    else cg_conv_tile_8_1(s, m, taps, nt, oy, ox, np, cb);
}

static void cg_conv_rows(const cg_conv *s, const cg_mem *m, size_t y0, size_t y1) {
    const size_t blocks = (s->dst.c + CG_LANES - 1) / CG_LANES;
    const size_t tile = cg_tile_pixels(blocks < 4 ? blocks : 4); /* every group walks the widest group's tiles */
    const size_t k = s->kernel, ci = s->src.c, nt = ci * k * k;
    cg_tap table[CG_TAP_TABLE_TERMS];
    const cg_tap *taps = 0;
    size_t oy, ox, cb, j;
    /* A convolution with few terms over several taps, reading a whole tensor (not a ring), runs its interior
     * tiles as one list of them. */
    if (k > 1 && nt <= CG_TAP_TABLE_TERMS && s->src.row_mask >= s->src.h - 1) {
        for (j = 0; j < nt; j++) {
            const size_t tap = j / ci, c = j % ci;
            table[j].offset = (tap / k) * s->dilation * s->src.row_stride + (tap % k) * s->dilation * s->src.pixel_stride
                              + c * s->src.channel_stride;
            table[j].channel = c;
        }
        taps = table;
    }
    /* Every group reads one pixel tile while it is in L1. */
    for (oy = y0; oy < y1; oy++)
        for (ox = 0; ox < s->dst.w; ox += tile)
            for (cb = 0; cb < blocks; cb += 4) cg_conv_group(s, m, taps, nt, oy, ox, cb, tile);
}

/* ---- Winograd F(4x4, 3x3) for 3x3 stride-1 convs of at most CG_WG_MAXC channels.
 * For a strip of CG_WG_TILES tiles: the 6x6 input tiles are transformed (B^T d B,
 * vectorised over input channels) into a stack buffer, 36 small GEMMs (the conv's
 * register-tiled inner loop) multiply them with the pre-transformed weights
 * (U = G g G^T, packed [36][ci][co padded]), and the output transform (A^T M A)
 * adds the bias, applies the epilogue and stores the 4x4 outputs. */
#define CG_WG_MAXC 64
#define CG_WG_TILES (3 * CG_TILE_SCALE)
#define CG_WG_P 36 /* transformed positions per tile */
#define CG_WG_T 4  /* output rows and columns per tile */

CG_INLINE vf cg_sub(vf a, vf b) { return vf_madd(b, vf_splat(-1.0f), a); }
CG_INLINE vf cg_scaled(vf a, float k, vf b) { return vf_madd(a, vf_splat(k), b); }

/* B^T x for one column or row, B^T = [[4,0,-5,0,1,0], [0,-4,-4,1,1,0], [0,4,-4,-1,1,0],
 * [0,-2,-1,2,1,0], [0,2,-1,-2,1,0], [0,4,0,-5,0,1]]. */
CG_INLINE void cg_wg_in(const vf x[6], vf y[6]) {
    const vf a = cg_scaled(x[2], -4.0f, x[4]), b = cg_scaled(x[1], -4.0f, x[3]);
    const vf c = cg_sub(x[4], x[2]), d = vf_mul(cg_sub(x[3], x[1]), vf_splat(2.0f));
    y[0] = cg_scaled(x[0], 4.0f, cg_scaled(x[2], -5.0f, x[4]));
    y[1] = vf_add(a, b); y[2] = cg_sub(a, b); y[3] = vf_add(c, d); y[4] = cg_sub(c, d);
    y[5] = cg_scaled(x[1], 4.0f, cg_scaled(x[3], -5.0f, x[5]));
}

/* A^T x, A^T = [[1,1,1,1,1,0], [0,1,-1,2,-2,0], [0,1,1,4,4,0], [0,1,-1,8,-8,1]]. */
CG_INLINE void cg_wg_out(const vf x[6], vf y[4]) {
    const vf a = vf_add(x[1], x[2]), b = cg_sub(x[1], x[2]), c = vf_add(x[3], x[4]), d = cg_sub(x[3], x[4]);
    y[0] = vf_add(vf_add(x[0], a), c); y[1] = cg_scaled(d, 2.0f, b); y[2] = cg_scaled(c, 4.0f, a);
    y[3] = vf_add(cg_scaled(d, 8.0f, b), x[5]);
}

CG_INLINE void cg_wg_gemm(const float *wrow, size_t co_pad, size_t last, const float *vbuf, const size_t *base, size_t ci,
                          float *out, const size_t V) {
    vf acc[CG_MAX_ACC];
    cg_src src = {0, 0, 0, 0};
    size_t t, v;
    src.f = vbuf;
    for (t = 0; t < CG_WG_TILES; t++)
        for (v = 0; v < V; v++) acc[t * V + v] = vf_zero();
    cg_accumulate(acc, wrow, co_pad, last, &src, 0, base, 1, 0, ci, 0, CG_WG_TILES, V);
    for (t = 0; t < CG_WG_TILES; t++)
        for (v = 0; v < V; v++) vf_store(out + t * CG_WG_P * CG_WG_MAXC + v * CG_LANES, acc[t * V + v]);
}

static void cg_winograd_rows(const cg_conv *s, const cg_mem *m, size_t y0, size_t y1) {
    const float *w = m->w;
    const float *src = cg_base(m, s->src.mem);
    float *dst = cg_base(m, s->dst.mem);
    const size_t ci = s->src.c, co = s->dst.c, blocks = (co + CG_LANES - 1) / CG_LANES;
    const size_t co_pad = (co + CG_BLOCK - 1) / CG_BLOCK * CG_BLOCK;
    const long h = (long)s->src.h, wd = (long)s->src.w;
    float vbuf[CG_WG_TILES * CG_WG_P * CG_WG_MAXC], mbuf[CG_WG_TILES * CG_WG_P * CG_WG_MAXC];
    size_t oy, ox, t, cb, xi, r, c;
    /* Tiles start at rows that are multiples of 4 whatever the row range, so that every
     * output is computed from the same tile (and rounds the same) for any thread split. */
    for (oy = y0 - y0 % CG_WG_T; oy < y1; oy += CG_WG_T) {
        for (ox = 0; ox < s->dst.w;) {
            const size_t left = (s->dst.w - ox + CG_WG_T - 1) / CG_WG_T, tiles = left < CG_WG_TILES ? left : CG_WG_TILES;
            for (t = 0; t < tiles; t++) {
                const long ty = (long)oy - 1, tx = (long)(ox + CG_WG_T * t) - 1;
                for (cb = 0; cb < ci; cb += CG_LANES) {
                    const size_t n = ci - cb < CG_LANES ? ci - cb : CG_LANES;
                    vf d[6][6], col[6], tcol[6][6], row[6], v[6];
                    for (r = 0; r < 6; r++) {
                        for (c = 0; c < 6; c++) {
                            const long iy = ty + (long)r, ix = tx + (long)c;
                            d[r][c] = (iy >= 0 && iy < h && ix >= 0 && ix < wd)
                                          ? cg_load_n(src + cg_at(&s->src, cb, (size_t)iy, (size_t)ix), n, s->src.channel_stride)
                                          : vf_zero();
                        }
                    }
                    for (c = 0; c < 6; c++) {
                        for (r = 0; r < 6; r++) col[r] = d[r][c];
                        cg_wg_in(col, tcol[c]);
                    }
                    for (r = 0; r < 6; r++) {
                        for (c = 0; c < 6; c++) row[c] = tcol[c][r];
                        cg_wg_in(row, v);
                        for (c = 0; c < 6; c++) cg_store_n(vbuf + (t * CG_WG_P + r * 6 + c) * CG_WG_MAXC + cb, v[c], n, 1);
                    }
                }
            }
            for (xi = 0; xi < CG_WG_P; xi++) {
                const float *wrow = w + s->weights + xi * ci * co_pad;
                size_t base[CG_MAX_P];
                /* Register tiles past the row's end compute tile 0 again (their products are never
                 * read): no tile reads what was not written. */
                for (t = 0; t < CG_WG_TILES; t++) base[t] = ((t < tiles ? t : 0) * CG_WG_P + xi) * CG_WG_MAXC;
                for (cb = 0; cb < blocks; cb += 4) {
                    const size_t nv = blocks - cb < 4 ? blocks - cb : 4, rest = co - (cb + nv - 1) * CG_LANES;
                    const size_t last = rest < CG_LANES ? rest : CG_LANES;
                    const float *wcb = wrow + cb * CG_LANES;
                    float *out = mbuf + xi * CG_WG_MAXC + cb * CG_LANES;
                    if (nv == 4) cg_wg_gemm(wcb, co_pad, last, vbuf, base, ci, out, 4);
                    else if (nv == 3) cg_wg_gemm(wcb, co_pad, last, vbuf, base, ci, out, 3);
                    else if (nv == 2) cg_wg_gemm(wcb, co_pad, last, vbuf, base, ci, out, 2);
                    else cg_wg_gemm(wcb, co_pad, last, vbuf, base, ci, out, 1);
                }
            }
            for (t = 0; t < tiles; t++) {
                for (cb = 0; cb < co; cb += CG_LANES) {
                    const size_t n = co - cb < CG_LANES ? co - cb : CG_LANES;
                    const vf bias = cg_packed(w + s->bias + cb, n);
                    vf mcol[6], tm[6][4], y[4][4];
                    for (c = 0; c < 6; c++) {
                        for (r = 0; r < 6; r++) mcol[r] = vf_load(mbuf + (t * CG_WG_P + r * 6 + c) * CG_WG_MAXC + cb);
                        cg_wg_out(mcol, tm[c]);
                    }
                    for (r = 0; r < 4; r++) {
                        vf trow[6];
                        for (c = 0; c < 6; c++) trow[c] = tm[c][r];
                        cg_wg_out(trow, y[r]);
                    }
                    for (r = 0; r < 4; r++) {
                        for (c = 0; c < 4; c++) {
                            const size_t yy = oy + r, xx = ox + CG_WG_T * t + c;
                            if (yy >= y0 && yy < y1 && xx < s->dst.w)
                                cg_store_n(dst + cg_at(&s->dst, cb, yy, xx), cg_epilogue_apply(&s->epilogue, w, cb, n, vf_add(y[r][c], bias)),
                                           n, s->dst.channel_stride);
                        }
                    }
                }
            }
            ox += CG_WG_T * tiles;
        }
    }
}

#define CG_DW_PIXELS 4 /* written out as a0..a3 below */

/* Interior tiles ox0..end of one row of one half of a depthwise pair for a whole
 * vector of channels (source channel cs, destination channel cd), all three tap
 * rows inside the image, contiguous channels and an NHWC destination. With
 * `prelu_only` (a constant where it is inlined), the epilogue is a PReLU with
 * `slope`: the same operations as cg_epilogue_apply, without its tests. */
CG_INLINE void cg_dw_tiles(const cg_dwpair *s, const cg_mem *m, const float *src, float *dst, size_t oy, size_t cs, size_t cd, size_t dil,
                           const size_t row[3], const vf k[9], vf b, size_t ox0, size_t end, int prelu_only, vf slope) {
    const size_t ps = s->src.pixel_stride, pd = s->dst.pixel_stride;
    size_t ox, ky, kx;
    for (ox = ox0; ox < end; ox += CG_DW_PIXELS) {
        vf a0 = b, a1 = b, a2 = b, a3 = b;
        float *out = dst + cg_at(&s->dst, cd, oy, ox);
        for (ky = 0; ky < 3; ky++) {
            const float *r = src + cg_at(&s->src, cs, row[ky], ox - dil);
            for (kx = 0; kx < 3; kx++) {
                const float *q = r + kx * dil * ps;
                const vf kk = k[ky * 3 + kx];
                a0 = vf_madd(vf_load(q), kk, a0);
                a1 = vf_madd(vf_load(q + ps), kk, a1);
                a2 = vf_madd(vf_load(q + 2 * ps), kk, a2);
                a3 = vf_madd(vf_load(q + 3 * ps), kk, a3);
            }
        }
        if (prelu_only) {
            vf_store(out, cg_prelu(a0, slope));
            vf_store(out + pd, cg_prelu(a1, slope));
            vf_store(out + 2 * pd, cg_prelu(a2, slope));
            vf_store(out + 3 * pd, cg_prelu(a3, slope));
        } else {
            vf_store(out, cg_epilogue_apply(&s->epilogue, m->w, cd, CG_LANES, a0));
            vf_store(out + pd, cg_epilogue_apply(&s->epilogue, m->w, cd, CG_LANES, a1));
            vf_store(out + 2 * pd, cg_epilogue_apply(&s->epilogue, m->w, cd, CG_LANES, a2));
            vf_store(out + 3 * pd, cg_epilogue_apply(&s->epilogue, m->w, cd, CG_LANES, a3));
        }
    }
}

/* F_loc and F_sur: per row and channel block, the 9 weights of each half stay in
 * registers while the row streams by; interior pixels skip bounds checks. */
static void cg_dwpair_rows(const cg_dwpair *s, const cg_mem *m, size_t y0, size_t y1) {
    const float *w = m->w;
    const float *src = cg_base(m, s->src.mem);
    float *dst = cg_base(m, s->dst.mem);
    const size_t c = s->src.c, c_pad = (c + CG_BLOCK - 1) / CG_BLOCK * CG_BLOCK + CG_BLOCK;
    const size_t h = s->src.h, wd = s->src.w, ps = s->src.pixel_stride, cs = s->src.channel_stride;
    size_t oy, ox, cb, half, t, ky, kx;
    for (oy = y0; oy < y1; oy++) {
        for (cb = 0; cb < c; cb += CG_LANES) {
            const size_t n = c - cb < CG_LANES ? c - cb : CG_LANES;
            for (half = 0; half < 2; half++) {
                const size_t dil = half ? s->dilation : 1;
                const size_t weights = half ? s->sur_weights : s->loc_weights;
                const vf b = cg_packed(w + (half ? s->sur_bias : s->loc_bias) + cb, n);
                const size_t lo = dil < wd ? dil : wd, hi = wd > 2 * dil ? wd - dil : lo;
                vf k[9];
                int row_ok[3];
                size_t row[3];
                for (t = 0; t < 9; t++) k[t] = cg_packed(w + weights + t * c_pad + cb, n);
                for (ky = 0; ky < 3; ky++) {
                    const long iy = (long)oy + ((long)ky - 1) * (long)dil;
                    row_ok[ky] = iy >= 0 && iy < (long)h;
                    row[ky] = row_ok[ky] ? (size_t)iy : 0;
                }
                for (ox = 0; ox < wd;) {
                    if (ox >= lo && ox + CG_DW_PIXELS <= hi && n == CG_LANES && cs == 1 && s->dst.channel_stride == 1 && row_ok[0] &&
                        row_ok[1] && row_ok[2]) {
                        /* The common case: all tiles of the interior in one tight loop, specialised on the epilogue's shape. */
                        const size_t end = ox + (hi - ox) / CG_DW_PIXELS * CG_DW_PIXELS;
                        const cg_epilogue *e = &s->epilogue;
                        if (e->act.kind == CG_ACT_PRELU && !e->has_affine && e->act2.kind == CG_ACT_NONE)
                            cg_dw_tiles(s, m, src, dst, oy, cb, half * c + cb, dil, row, k, b, ox, end, 1, cg_packed(w + e->act.off + half * c + cb, n));
                        else cg_dw_tiles(s, m, src, dst, oy, cb, half * c + cb, dil, row, k, b, ox, end, 0, b);
                        ox = end;
                        continue;
                    }
                    if (ox >= lo && ox + CG_DW_PIXELS <= hi) {
                        /* Four independent accumulators (named, so they stay in registers) hide the FMA latency. */
                        vf a0 = b, a1 = b, a2 = b, a3 = b;
                        const int full = n == CG_LANES && cs == 1;
                        for (ky = 0; ky < 3; ky++) {
                            const float *r;
                            if (!row_ok[ky]) continue;
                            r = src + cg_at(&s->src, cb, row[ky], ox - dil);
                            for (kx = 0; kx < 3; kx++) {
                                const float *q = r + kx * dil * ps;
                                const vf kk = k[ky * 3 + kx];
                                if (full) {
                                    a0 = vf_madd(vf_load(q), kk, a0);
                                    a1 = vf_madd(vf_load(q + ps), kk, a1);
                                    a2 = vf_madd(vf_load(q + 2 * ps), kk, a2);
                                    a3 = vf_madd(vf_load(q + 3 * ps), kk, a3);
                                } else {
                                    a0 = vf_madd(cg_load_n(q, n, cs), kk, a0);
                                    a1 = vf_madd(cg_load_n(q + ps, n, cs), kk, a1);
                                    a2 = vf_madd(cg_load_n(q + 2 * ps, n, cs), kk, a2);
                                    a3 = vf_madd(cg_load_n(q + 3 * ps, n, cs), kk, a3);
                                }
                            }
                        }
                        {
                            const size_t ch = half * c + cb;
                            cg_store_n(dst + cg_at(&s->dst, ch, oy, ox), cg_epilogue_apply(&s->epilogue, w, ch, n, a0), n, s->dst.channel_stride);
                            cg_store_n(dst + cg_at(&s->dst, ch, oy, ox + 1), cg_epilogue_apply(&s->epilogue, w, ch, n, a1), n, s->dst.channel_stride);
                            cg_store_n(dst + cg_at(&s->dst, ch, oy, ox + 2), cg_epilogue_apply(&s->epilogue, w, ch, n, a2), n, s->dst.channel_stride);
                            cg_store_n(dst + cg_at(&s->dst, ch, oy, ox + 3), cg_epilogue_apply(&s->epilogue, w, ch, n, a3), n, s->dst.channel_stride);
                        }
                        ox += CG_DW_PIXELS;
                    } else {
                        vf acc = b;
                        for (ky = 0; ky < 3; ky++) {
                            if (!row_ok[ky]) continue;
                            for (kx = 0; kx < 3; kx++) {
                                const long ix = (long)ox + ((long)kx - 1) * (long)dil;
                                if (ix < 0 || ix >= (long)wd) continue;
                                acc = vf_madd(cg_load_n(src + cg_at(&s->src, cb, row[ky], (size_t)ix), n, cs), k[ky * 3 + kx], acc);
                            }
                        }
                        cg_store_n(dst + cg_at(&s->dst, half * c + cb, oy, ox), cg_epilogue_apply(&s->epilogue, w, half * c + cb, n, acc), n,
                                   s->dst.channel_stride);
                        ox++;
                    }
                }
            }
        }
    }
}

/* A step's tee (elementwise steps and pools): tee_epilogue(out) at (cb.., y, x). */
CG_INLINE void cg_store_tee(float *tee, const cg_view *t, const cg_epilogue *e, const float *w, size_t cb, size_t y, size_t x,
                            size_t n, vf out) {
    cg_store_n(tee + cg_at(t, cb, y, x), cg_epilogue_apply(e, w, cb, n, out), n, t->channel_stride);
}

/* One output pixel of a pool, a vector of channels at a time. */
CG_INLINE void cg_pool_pixel(const cg_pool *s, const cg_mem *m, const cg_src *src, float *dst, float *tee, size_t oy, size_t ox, int rgb8) {
    const float *w = m->w;
    size_t cb;
    for (cb = 0; cb < s->dst.c; cb += CG_LANES) {
        const size_t n = s->dst.c - cb < CG_LANES ? s->dst.c - cb : CG_LANES;
        vf sum = vf_zero();
        long ky, kx;
        for (ky = 0; ky < 3; ky++) {
            const long iy = (long)(oy * 2) + ky - 1;
            if (iy < 0 || iy >= (long)s->src.h) continue;
            for (kx = 0; kx < 3; kx++) {
                const long ix = (long)(ox * 2) + kx - 1;
                if (ix < 0 || ix >= (long)s->src.w) continue;
                sum = vf_add(sum, cg_get_n(src, cg_at(&s->src, cb, (size_t)iy, (size_t)ix), cb, n, s->src.channel_stride, rgb8));
            }
        }
        sum = cg_epilogue_apply(&s->epilogue, w, cb, n, vf_mul(sum, vf_splat(1.0f / 9.0f)));
        cg_store_n(dst + cg_at(&s->dst, cb, oy, ox), sum, n, s->dst.channel_stride);
        if (s->has_tee) cg_store_tee(tee, &s->tee, &s->tee_epilogue, w, cb, oy, ox, n, sum);
    }
}

/* Stores a vector of CG_LANES output pixels ox.. of channel c. */
CG_INLINE void cg_store_pixels(float *base, const cg_view *v, size_t c, size_t y, size_t x, vf a) {
    float t[CG_LANES];
    size_t p;
    vf_store(t, a);
    for (p = 0; p < CG_LANES; p++) base[cg_at(v, c, y, x + p)] = t[p];
}

/* CG_LANES output pixels ox.. of channel c of a pool from a planar float source
 * (every tap inside the row): the additions of cg_pool_pixel in the same order,
 * and its epilogue with the channel's parameters in every lane. */
CG_INLINE void cg_pool_lanes(const cg_pool *s, const cg_mem *m, const float *src, float *dst, float *tee, size_t c, size_t oy, size_t ox) {
    vf sum = vf_zero();
    size_t iy, kx;
    const size_t y0 = oy > 0 ? 2 * oy - 1 : 0, y1 = 2 * oy + 2 < s->src.h ? 2 * oy + 2 : s->src.h;
    for (iy = y0; iy < y1; iy++) {
        const float *row = src + cg_at(&s->src, c, iy, 2 * ox - 1);
        for (kx = 0; kx < 3; kx++) sum = vf_add(sum, vf_load_even(row + kx));
    }
    sum = cg_epilogue_channel(&s->epilogue, m->w, c, vf_mul(sum, vf_splat(1.0f / 9.0f)));
    cg_store_pixels(dst, &s->dst, c, oy, ox, sum);
    if (s->has_tee) cg_store_pixels(tee, &s->tee, c, oy, ox, cg_epilogue_channel(&s->tee_epilogue, m->w, c, sum));
}

CG_INLINE void cg_pool_rows_from(const cg_pool *s, const cg_mem *m, size_t y0, size_t y1, int rgb8) {
    const cg_src src = cg_source(m, s->src.mem);
    float *dst = cg_base(m, s->dst.mem);
    float *tee = cg_base(m, s->tee.mem);
    /* A planar float source (the model's input) with a few channels: a vector holds
     * CG_LANES output pixels of one channel, not the channels of one pixel. Output
     * columns vx0..vx1 have every tap inside the row and fill whole vectors. */
    const int planar = !rgb8 && s->src.pixel_stride == 1 && s->src.channel_stride > 1 && s->src.c < CG_LANES;
    const size_t vx0 = s->dst.w < 1 ? s->dst.w : 1;
    const size_t end = s->dst.w < s->src.w / 2 ? s->dst.w : s->src.w / 2;
    const size_t vx1 = vx0 + (planar && end > vx0 ? (end - vx0) / CG_LANES * CG_LANES : 0);
    size_t oy, ox, c;
    for (oy = y0; oy < y1; oy++) {
        for (ox = 0; ox < s->dst.w; ox++) {
            if (ox >= vx0 && ox < vx1) continue;
            cg_pool_pixel(s, m, &src, dst, tee, oy, ox, rgb8);
        }
        for (ox = vx0; ox < vx1; ox += CG_LANES)
            for (c = 0; c < s->dst.c; c++) cg_pool_lanes(s, m, src.f, dst, tee, c, oy, ox);
    }
}

static void cg_pool_rows(const cg_pool *s, const cg_mem *m, size_t y0, size_t y1) {
    if (s->src.mem == CG_RGB8) cg_pool_rows_from(s, m, y0, y1, 1);
    else cg_pool_rows_from(s, m, y0, y1, 0);
}

/* One vector of channels cb.. of an elementwise step at one pixel, whose channel 0 is at
 * src, add, dst and tee in each view; with `whole`, the views are NHWC and n == CG_LANES,
 * so plain loads and stores do. `has_scale` and `has_add` are constants at every call. */
CG_INLINE void cg_elementwise_vector(const cg_elementwise *s, const float *w, const float *scale, const float *src,
                                     const float *add, float *dst, float *tee, size_t cb, int whole, int has_scale,
                                     int has_add) {
    const size_t n = whole ? CG_LANES : s->dst.c - cb < CG_LANES ? s->dst.c - cb : CG_LANES;
    const float *a = add + cb * s->add.channel_stride;
    float *d = dst + cb * s->dst.channel_stride;
    vf v = whole ? vf_load(src + cb) : cg_load_n(src + cb * s->src.channel_stride, n, s->src.channel_stride);
    if (has_scale) v = vf_mul(v, whole ? vf_load(scale + cb) : cg_load_n(scale + cb, n, 1));
    if (has_add) v = vf_add(v, whole ? vf_load(a) : cg_load_n(a, n, s->add.channel_stride));
    v = cg_epilogue_apply(&s->epilogue, w, cb, n, v);
    if (whole) vf_store(d, v);
    else cg_store_n(d, v, n, s->dst.channel_stride);
    if (s->has_tee)
        cg_store_n(tee + cb * s->tee.channel_stride, cg_epilogue_apply(&s->tee_epilogue, w, cb, n, v), n, s->tee.channel_stride);
}

/* The rows of an elementwise step, each view's pixel located once: the code per vector is
 * loads, arithmetic and stores, with no address arithmetic or test of what the step has
 * (memory-bound steps that spent a third of their time on that with 8 lanes). */
CG_INLINE void cg_elementwise_rows_with(const cg_elementwise *s, const cg_mem *m, size_t y0, size_t y1, int has_scale,
                                        int has_add) {
    const float *src = cg_base(m, s->src.mem);
    const float *add = cg_base(m, s->add.mem);
    float *dst = cg_base(m, s->dst.mem);
    float *tee = cg_base(m, s->tee.mem);
    const float *scale = m->arena + s->scale;
    /* Where every view is NHWC, whole vectors of channels need no test of the lanes used or their spacing. */
    const int nhwc = s->src.channel_stride == 1 && s->dst.channel_stride == 1 && (!s->has_add || s->add.channel_stride == 1) &&
                     (!s->has_tee || s->tee.channel_stride == 1);
    const size_t whole = nhwc ? s->dst.c / CG_LANES * CG_LANES : 0;
    size_t y, x, cb;
    for (y = y0; y < y1; y++) {
        for (x = 0; x < s->dst.w; x++) {
            const float *ps = src + cg_at(&s->src, 0, y, x);
            const float *pa = has_add ? add + cg_at(&s->add, 0, y, x) : add;
            float *pd = dst + cg_at(&s->dst, 0, y, x);
            float *pt = s->has_tee ? tee + cg_at(&s->tee, 0, y, x) : tee;
            for (cb = 0; cb < whole; cb += CG_LANES) cg_elementwise_vector(s, m->w, scale, ps, pa, pd, pt, cb, 1, has_scale, has_add);
            for (cb = whole; cb < s->dst.c; cb += CG_LANES)
                cg_elementwise_vector(s, m->w, scale, ps, pa, pd, pt, cb, 0, has_scale, has_add);
        }
    }
}

static void cg_elementwise_rows(const cg_elementwise *s, const cg_mem *m, size_t y0, size_t y1) {
    if (s->has_scale && s->has_add) cg_elementwise_rows_with(s, m, y0, y1, 1, 1);
    else if (s->has_scale) cg_elementwise_rows_with(s, m, y0, y1, 1, 0);
    else if (s->has_add) cg_elementwise_rows_with(s, m, y0, y1, 0, 1);
    else cg_elementwise_rows_with(s, m, y0, y1, 0, 0);
}

#define CG_SUMS_VECTORS 8 /* vectors of channels a row's sums accumulate at once */

/* Channel sums of each row y of x into sums + y * c: the row-parallel half of F_glo's average.
 * Up to CG_SUMS_VECTORS vectors of channels at once, each pixel's in turn: the row is read in
 * memory order, and each channel's sum still adds its pixels left to right. */
static void cg_sums_rows(const cg_sums *s, const cg_mem *m, size_t y0, size_t y1) {
    const float *x = cg_base(m, s->x.mem);
    const size_t c = s->x.c;
    size_t y, first, v, px;
    for (y = y0; y < y1; y++) {
        for (first = 0; first < c; first += CG_SUMS_VECTORS * CG_LANES) {
            const size_t left = (c - first + CG_LANES - 1) / CG_LANES;
            const size_t vectors = left < CG_SUMS_VECTORS ? left : CG_SUMS_VECTORS;
            vf sums[CG_SUMS_VECTORS];
            for (v = 0; v < CG_SUMS_VECTORS; v++) sums[v] = vf_zero();
            for (px = 0; px < s->x.w; px++) {
                for (v = 0; v < vectors; v++) {
                    const size_t cb = first + v * CG_LANES, n = c - cb < CG_LANES ? c - cb : CG_LANES;
                    sums[v] = vf_add(sums[v], cg_load_n(x + cg_at(&s->x, cb, y, px), n, s->x.channel_stride));
                }
            }
            for (v = 0; v < vectors; v++) {
                const size_t cb = first + v * CG_LANES;
                cg_store_n(m->arena + s->sums + y * c + cb, sums[v], c - cb < CG_LANES ? c - cb : CG_LANES, 1);
            }
        }
    }
}

/* F_glo's squeeze: the rows' sums reduced to means, the two small FCs, and the
 * sigmoid scales into scratch (after the row sums, the means and the hidden units). */
static void cg_squeeze_run(const cg_squeeze *s, const cg_mem *m) {
    const float *w = m->w;
    const size_t c = s->x.c, rows = s->x.h;
    float *sums = m->arena + s->scratch, *mean = sums + rows * c, *hidden = mean + c, *scale = hidden + s->hidden;
    const float inv = 1.0f / (float)(s->x.h * s->x.w);
    size_t y, i, j;
    for (i = 0; i < c; i++) {
        float sum = 0.0f;
        for (y = 0; y < rows; y++) sum += sums[y * c + i];
        mean[i] = sum * inv;
    }
    for (j = 0; j < s->hidden; j++) {
        float acc = w[s->fc1_bias + j];
        for (i = 0; i < c; i++) acc += w[s->fc1_weight + j * c + i] * mean[i];
        hidden[j] = acc > 0.0f ? acc : 0.0f;
    }
    for (i = 0; i < c; i++) {
        float acc = w[s->fc2_bias + i];
        for (j = 0; j < s->hidden; j++) acc += w[s->fc2_weight + i * s->hidden + j] * hidden[j];
        scale[i] = 1.0f / (1.0f + expf(-acc));
    }
}

/* Source index and weights along one axis, as PyTorch's upsample_bilinear2d
 * (align_corners = False, explicit output size). */
static void cg_bilinear_tap(size_t in, size_t out, size_t dst, size_t *i0, size_t *i1, float *w0, float *w1) {
    const float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    *i0 = (size_t)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *w1 = src - (float)*i0;
    *w0 = 1.0f - *w1;
}

CG_INLINE float cg_bilinear(const float *a, const cg_view *v, size_t c, size_t y0, size_t y1, size_t x0, size_t x1,
                            float wy0, float wy1, float wx0, float wx1) {
    const float top = wx0 * a[cg_at(v, c, y0, x0)] + wx1 * a[cg_at(v, c, y0, x1)];
    const float bottom = wx0 * a[cg_at(v, c, y1, x0)] + wx1 * a[cg_at(v, c, y1, x1)];
    return wy0 * top + wy1 * bottom;
}

/* Calls the bilinear taps of output pixel (oy, ox) of a resize of `v` to dst's size. */
#define CG_FOR_EACH_PIXEL(v, dst, y0_, y1_, BODY)                                                 \
    do {                                                                                     \
        size_t oy, ox;                                                                       \
        for (oy = (y0_); oy < (y1_); oy++) {                                                 \
            size_t ty0, ty1;                                                                 \
            float wy0, wy1;                                                                  \
            cg_bilinear_tap((v)->h, (dst)->h, oy, &ty0, &ty1, &wy0, &wy1);                   \
            for (ox = 0; ox < (dst)->w; ox++) {                                              \
                size_t tx0, tx1;                                                             \
                float wx0, wx1;                                                              \
                cg_bilinear_tap((v)->w, (dst)->w, ox, &tx0, &tx1, &wx0, &wx1);               \
                BODY                                                                         \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* The `scores` tail: rows y0..y1 of the upsampled logits. */
static void cg_upsample_rows(const cg_upsample *s, const cg_mem *m, size_t y0, size_t y1) {
    const float *src = cg_base(m, s->src.mem);
    float *dst = cg_base(m, s->dst.mem);
    size_t c;
    CG_FOR_EACH_PIXEL(&s->src, &s->dst, y0, y1, {
        for (c = 0; c < s->src.c; c++)
            dst[cg_at(&s->dst, c, oy, ox)] = cg_bilinear(src, &s->src, c, ty0, ty1, tx0, tx1, wy0, wy1, wx0, wx1);
    });
}

/* The `segment` tail: rows y0..y1 of the labels (the first channel with the largest score). */
static void cg_argmax_rows(const cg_argmax *s, const cg_mem *m, size_t y0, size_t y1) {
    const float *src = cg_base(m, s->src.mem);
    size_t c;
    CG_FOR_EACH_PIXEL(&s->src, &s->dst, y0, y1, {
        size_t best = 0;
        float best_score = 0.0f;
        for (c = 0; c < s->src.c; c++) {
            const float score = cg_bilinear(src, &s->src, c, ty0, ty1, tx0, tx1, wy0, wy1, wx0, wx1);
            if (c == 0 || score > best_score) { best = c; best_score = score; }
        }
        m->labels[cg_at(&s->dst, 0, oy, ox)] = (uint8_t)best;
    });
}

/* ---- Threads: each step, or group of steps, is cut into chunks of output rows
 * (the same chunks for every thread count), which the host's parallel_for runs
 * in any order; a group's chunk goes through each of its steps in turn. */
enum { CG_CONV = 0, CG_DWPAIR = 1, CG_POOL = 2, CG_ELEMENTWISE = 3, CG_SUMS = 4, CG_SQUEEZE = 5, CG_WINOGRAD = 6, CG_UPSAMPLE = 7, CG_ARGMAX = 8 };
typedef struct { size_t count; const int *kinds; const void *const *steps; const cg_mem *m; size_t y0, y1, chunk; } cg_task;

static void cg_rows(int kind, const void *step, const cg_mem *m, size_t y0, size_t y1) {
    switch (kind) {
    case CG_CONV: cg_conv_rows((const cg_conv *)step, m, y0, y1); break;
    case CG_WINOGRAD: cg_winograd_rows((const cg_conv *)step, m, y0, y1); break;
    case CG_DWPAIR: cg_dwpair_rows((const cg_dwpair *)step, m, y0, y1); break;
    case CG_POOL: cg_pool_rows((const cg_pool *)step, m, y0, y1); break;
    case CG_ELEMENTWISE: cg_elementwise_rows((const cg_elementwise *)step, m, y0, y1); break;
    case CG_SUMS: cg_sums_rows((const cg_sums *)step, m, y0, y1); break;
    case CG_UPSAMPLE: cg_upsample_rows((const cg_upsample *)step, m, y0, y1); break;
    case CG_ARGMAX: cg_argmax_rows((const cg_argmax *)step, m, y0, y1); break;
    default: cg_squeeze_run((const cg_squeeze *)step, m); break;
    }
}

static void cg_task_run(void *arg, size_t i) {
    const cg_task *t = (const cg_task *)arg;
    const size_t y0 = t->y0 + i * t->chunk, y1 = y0 + t->chunk < t->y1 ? y0 + t->chunk : t->y1;
    size_t k;
    for (k = 0; k < t->count; k++) cg_rows(t->kinds[k], t->steps[k], t->m, y0, y1);
}
