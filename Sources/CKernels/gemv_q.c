/*
 * gemv_q.c — fused small-T matmul for quantized weights: out[T,N] = inp[T,K] · W[N,K]ᵀ (+ bias)
 * with W in Q4_0, Q4_1, Q8_0, Q5_0 (K % 32 == 0) or Q4_K, Q5_K, Q6_K (K % 256 == 0) and
 * 1 <= T <= CK_GEMV_MAX_T. Used by ck_matmul_forward (gemm.c) for generation and other short inputs.
 *
 * Each weight block (32 quants + f16 scale) is read once, its quants expanded to f32 in
 * registers (nibble mask/shift, cvtepu8/epi8 -> cvtepi32_ps) and FMA'd against every input
 * row; nothing is dequantized to memory, so T=1 streams W at memory bandwidth.
 *   Q4_0, Q8_0: out += d · Σ_block q·x          (Q4_0 quants have 8 subtracted as ints)
 *   Q4_1:       out += d · Σ_block q·x + m · Σ_block x   (Σ_block x precomputed per call)
 * Q5_0 and the K-quants ("unit" kernels, row1_u/rowT_u): each 32-weight unit (a Q5_0 block, 1/8
 * of a K-quant super-block) is expanded to floats bit-identical to ck_deq_*_ref's values — the
 * same float products, unfused: Q5_0 (q−16)·d; Q4_K/Q5_K (d·sc)·q − (dmin·m) with the 6-bit
 * sc, m of the unit; Q6_K (d·sc)·(q−32) with the 16-element sub-block's int8 sc — and then FMA'd
 * against x, so the result is dequantize-then-dot in a fixed order: T = 1 keeps four 8-lane
 * chains (chain i takes elements 8i..8i+7 of every unit; AVX-512: four 16-lane chains, even / odd
 * unit × elements 0..15 / 16..31), summed (c0+c1)+(c2+c3) then ck_hsum8 (ck_hsum16); T > 1 one
 * chain per input row (w[0..3] in turn per unit). Tests rebuild T = 1 from ck_dequantize_row_ref
 * in this order and compare bit for bit.
 * Reproducibility: one output = a fixed sequence of per-block 8-lane products, one 8-lane
 * accumulator, a fixed horizontal sum and a scalar m-term sum, independent of the task or
 * thread; tasks are blocks of output rows.
 * AVX-512 (active ISA avx512): the same walk with 16-lane vectors (gv512_task): one output is
 * per-block 16-lane products in four (T = 1) or one (T > 1) zmm accumulators and ck_hsum16.
 */
#include "ck_internal.h"
#include "gemv_unpack.h"
#include "quant_blocks.h"
#include <stdlib.h>
#include <string.h>

#define GEMV_ROWS 64 // weight rows per task: contiguous runs, so each thread streams its own part of W

// ---- dispatch predicate ---------------------------------------------------------

#if CK_X86
static int have_f16c(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return cached;
}
#endif

int ck_gemv_q_supported(int wtype, int64_t T, int64_t K) {
#if CK_X86
    if (T < 1 || T > CK_GEMV_MAX_T || K <= 0 || K % 32 != 0 || !have_f16c()) return 0;
    if (wtype == CK_TYPE_Q4_K || wtype == CK_TYPE_Q5_K || wtype == CK_TYPE_Q6_K) return K % QK_K == 0;
    return wtype == CK_TYPE_Q4_0 || wtype == CK_TYPE_Q4_1 || wtype == CK_TYPE_Q8_0 || wtype == CK_TYPE_Q5_0;
#else
    (void)wtype; (void)T; (void)K;
    return 0;
#endif
}

#if CK_X86
#define CK_GV __attribute__((target("avx2,fma,f16c")))
#define CK_GV_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

/* f16 -> f32 via vmovd (zero-extending) + vcvtph2ps. _cvtsh_ss compiles to a vpinsrw that
 * merges into a live register, chaining every block to the previous one (3x slower T = 1). */
CK_GV_INLINE __m128 h2f(uint16_t h) { return _mm_cvtph_ps(_mm_cvtsi32_si128(h)); }
CK_GV_INLINE __m256 h2f8(uint16_t h) { return _mm256_broadcastss_ps(h2f(h)); }

// ---- block expansion -------------------------------------------------------------

/* 16 bytes of nibbles -> 32 floats (low nibbles = elements 0..15, high = 16..31), minus `off`. */
CK_GV_INLINE void expand_q4(const uint8_t *qs, __m128i off, __m256 q[4]) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs), mask = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, mask), off);
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), off);
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

CK_GV_INLINE void expand_q8(const int8_t *qs, __m256 q[4]) {
    for (int i = 0; i < 4; i++)
        q[i] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * i))));
}

/* Σ over one 32-element block of q·x, as 8 lanes (fixed order). */
CK_GV_INLINE __m256 block_dot(const __m256 q[4], const float *x) {
    __m256 s = _mm256_mul_ps(q[0], _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(x + 16), s);
    return _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + 24), s);
}

/* T = 1: acc[i] += (d·q[i])·x[i] — four independent FMA chains instead of one dependent
 * chain per block (the latency of that chain, not memory, limited T = 1). */
CK_GV_INLINE void block_acc4(const __m256 q[4], __m256 d, const float *x, __m256 acc[4]) {
    for (int i = 0; i < 4; i++) acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(d, q[i]), _mm256_loadu_ps(x + 8 * i), acc[i]);
}

CK_GV_INLINE float sum4(const __m256 acc[4]) {
    return ck_hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

/* One row, T = 1, any of the three types; xs = per-block Σx (Q4_1 only). */
CK_GV_INLINE float row1(int wtype, const void *w, const float *x, const float *xs, int64_t K) {
    const int64_t nb = K / 32;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float macc = 0.0f;
    __m256 q[4];
    if (wtype == CK_TYPE_Q4_0) {
        const block_q4_0 *b = w;
        for (int64_t i = 0; i < nb; i++) {
            expand_q4(b[i].qs, _mm_set1_epi8(8), q);
            block_acc4(q, h2f8(b[i].d), x + 32 * i, acc);
        }
    } else if (wtype == CK_TYPE_Q4_1) {
        const block_q4_1 *b = w;
        __m128 mv = _mm_setzero_ps(); // lane 1: Σ m·Σx (d and m converted together: no merge dependency)
        for (int64_t i = 0; i < nb; i++) {
            uint32_t dm;
            memcpy(&dm, &b[i], 4);
            const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dm));
            expand_q4(b[i].qs, _mm_setzero_si128(), q);
            block_acc4(q, _mm256_broadcastss_ps(f), x + 32 * i, acc);
            mv = _mm_fmadd_ps(f, _mm_set1_ps(xs[i]), mv);
        }
        macc = _mm_cvtss_f32(_mm_shuffle_ps(mv, mv, 1));
    } else {
        const block_q8_0 *b = w;
        for (int64_t i = 0; i < nb; i++) {
            expand_q8(b[i].qs, q);
            block_acc4(q, h2f8(b[i].d), x + 32 * i, acc);
        }
    }
    return sum4(acc) + macc;
}

// ---- row kernels -------------------------------------------------------------------
// res[t] = dot(x[t], row) for t < T; xs = per-block Σx [T, nb] (Q4_1 only).

CK_GV_INLINE void row_q4_0(const void *w, const float *x, int64_t T, int64_t K, float *res) {
    const block_q4_0 *b = w;
    const int64_t nb = K / 32;
    __m256 acc[CK_GEMV_MAX_T];
    for (int64_t t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    const __m128i eight = _mm_set1_epi8(8);
    for (int64_t i = 0; i < nb; i++) {
        __m256 q[4];
        expand_q4(b[i].qs, eight, q);
        const __m256 d = h2f8(b[i].d);
        for (int64_t t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(d, block_dot(q, x + t * K + 32 * i), acc[t]);
    }
    for (int64_t t = 0; t < T; t++) res[t] = ck_hsum8(acc[t]);
}

CK_GV_INLINE void row_q8_0(const void *w, const float *x, int64_t T, int64_t K, float *res) {
    const block_q8_0 *b = w;
    const int64_t nb = K / 32;
    __m256 acc[CK_GEMV_MAX_T];
    for (int64_t t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256 q[4];
        expand_q8(b[i].qs, q);
        const __m256 d = h2f8(b[i].d);
        for (int64_t t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(d, block_dot(q, x + t * K + 32 * i), acc[t]);
    }
    for (int64_t t = 0; t < T; t++) res[t] = ck_hsum8(acc[t]);
}

CK_GV_INLINE void row_q4_1(const void *w, const float *x, const float *xs, int64_t T, int64_t K, float *res) {
    const block_q4_1 *b = w;
    const int64_t nb = K / 32;
    __m256 acc[CK_GEMV_MAX_T];
    float macc[CK_GEMV_MAX_T];
    for (int64_t t = 0; t < T; t++) { acc[t] = _mm256_setzero_ps(); macc[t] = 0.0f; }
    const __m128i zero = _mm_setzero_si128();
    for (int64_t i = 0; i < nb; i++) {
        __m256 q[4];
        expand_q4(b[i].qs, zero, q);
        const __m256 d = h2f8(b[i].d);
        const float m = _mm_cvtss_f32(h2f(b[i].m));
        for (int64_t t = 0; t < T; t++) {
            acc[t] = _mm256_fmadd_ps(d, block_dot(q, x + t * K + 32 * i), acc[t]);
            macc[t] = __builtin_fmaf(m, xs[t * nb + i], macc[t]);
        }
    }
    for (int64_t t = 0; t < T; t++) res[t] = ck_hsum8(acc[t]) + macc[t];
}

// ---- Q5_0 and the K-quants: dequantized units ------------------------------------------
// A unit is 32 consecutive weights (a Q5_0 block, 1/8 of a K-quant super-block). It is expanded
// in registers to 32 floats bit-identical to ck_deq_*_ref's values (the same products, no FMA
// contraction: Q5_0 (q−16)·d; Q4_K/Q5_K (d·sc)·q − dmin·m; Q6_K (d·sc)·(q−32)), which are then
// FMA'd against x: out = Σ_lanes (Σ_units w·x per lane), so the result is dequantize-then-dot
// in this lane order.

typedef struct { float d[16], m[8]; } kq_sb; // Q4_K/Q5_K: d[s] = d·sc_s, m[s] = dmin·m_s; Q6_K: d[j] = d·sc_j

static inline int64_t kq_block_bytes(int wtype) {
    return wtype == CK_TYPE_Q6_K ? (int64_t)sizeof(block_q6_K) : wtype == CK_TYPE_Q5_K ? (int64_t)sizeof(block_q5_K) : (int64_t)sizeof(block_q4_K);
}

/* Per-super-block scales, the float products ck_deq_*_ref forms. */
CK_GV_INLINE void kq_prep(int wtype, const void *blk, kq_sb *s) {
    if (wtype == CK_TYPE_Q6_K) {
        const block_q6_K *b = blk;
        const float d = _mm_cvtss_f32(h2f(b->d));
        for (int j = 0; j < 16; j++) s->d[j] = d * (float)b->scales[j];
    } else {
        const block_q4_K *b = blk; // Q5_K: same offsets of d, dmin and scales
        uint8_t sc[8], m[8];
        ck_k4_scales(b->scales, sc, m);
        const float d = _mm_cvtss_f32(h2f(b->d)), dmin = _mm_cvtss_f32(h2f(b->dmin));
        for (int j = 0; j < 8; j++) { s->d[j] = d * (float)sc[j]; s->m[j] = dmin * (float)m[j]; }
    }
}

/* 32 signed bytes -> 4 × 8 floats. */
CK_GV_INLINE void bytes_f8(__m256i q, __m256 f[4]) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    f[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    f[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    f[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    f[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/* The unit's signed quants (offset applied) and, for the K-quants, k = unit within super-block. */
CK_GV_INLINE __m256i unit_bytes(int wtype, const char *row, int64_t u) {
    if (wtype == CK_TYPE_Q5_0) return _mm256_sub_epi8(ck_q5_0_bytes((const block_q5_0 *)row + u), _mm256_set1_epi8(16));
    const char *blk = row + (u / 8) * kq_block_bytes(wtype);
    if (wtype == CK_TYPE_Q6_K) return _mm256_sub_epi8(ck_q6_K_bytes((const block_q6_K *)blk, (int)(u % 8)), _mm256_set1_epi8(32));
    if (wtype == CK_TYPE_Q5_K) return ck_k4_bytes(((const block_q5_K *)blk)->qs, ((const block_q5_K *)blk)->qh, (int)(u % 8));
    return ck_k4_bytes(((const block_q4_K *)blk)->qs, NULL, (int)(u % 8));
}

/* Unit u of a row as 4 × 8 dequantized floats; s = its super-block's kq_prep (K-quants). */
CK_GV_INLINE void unit8(int wtype, const char *row, int64_t u, const kq_sb *s, __m256 w[4]) {
    bytes_f8(unit_bytes(wtype, row, u), w);
    if (wtype == CK_TYPE_Q5_0) {
        const __m256 d = h2f8(((const block_q5_0 *)row + u)->d);
        for (int i = 0; i < 4; i++) w[i] = _mm256_mul_ps(w[i], d);
    } else if (wtype == CK_TYPE_Q6_K) {
        const int k = (int)(u % 8);
        const __m256 da = _mm256_set1_ps(s->d[2 * k]), db = _mm256_set1_ps(s->d[2 * k + 1]);
        w[0] = _mm256_mul_ps(da, w[0]); w[1] = _mm256_mul_ps(da, w[1]);
        w[2] = _mm256_mul_ps(db, w[2]); w[3] = _mm256_mul_ps(db, w[3]);
    } else {
        const int k = (int)(u % 8);
        const __m256 d = _mm256_set1_ps(s->d[k]), m = _mm256_set1_ps(s->m[k]);
        for (int i = 0; i < 4; i++) w[i] = _mm256_sub_ps(_mm256_mul_ps(d, w[i]), m);
    }
}

/* T = 1: acc[i] += w[i]·x[i] over the units (four independent chains), then sum4. */
CK_GV_INLINE float row1_u(int wtype, const char *row, const float *x, int64_t K) {
    const int64_t nu = K / 32;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    kq_sb s;
    for (int64_t u = 0; u < nu; u++) {
        if (wtype != CK_TYPE_Q5_0 && u % 8 == 0) kq_prep(wtype, row + (u / 8) * kq_block_bytes(wtype), &s);
        __m256 w[4];
        unit8(wtype, row, u, &s, w);
        for (int i = 0; i < 4; i++) acc[i] = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(x + 32 * u + 8 * i), acc[i]);
    }
    return sum4(acc);
}

/* 2 <= T: one 8-lane accumulator per input row, acc ← fma(w[i], x[i], acc) for i = 0..3 per unit. */
CK_GV_INLINE void rowT_u(int wtype, const char *row, const float *x, int64_t T, int64_t K, float *res) {
    const int64_t nu = K / 32;
    __m256 acc[CK_GEMV_MAX_T];
    for (int64_t t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    kq_sb s;
    for (int64_t u = 0; u < nu; u++) {
        if (wtype != CK_TYPE_Q5_0 && u % 8 == 0) kq_prep(wtype, row + (u / 8) * kq_block_bytes(wtype), &s);
        __m256 w[4];
        unit8(wtype, row, u, &s, w);
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + t * K + 32 * u;
            __m256 a = acc[t];
            for (int i = 0; i < 4; i++) a = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(xt + 8 * i), a);
            acc[t] = a;
        }
    }
    for (int64_t t = 0; t < T; t++) res[t] = ck_hsum8(acc[t]);
}

// ---- threaded driver ------------------------------------------------------------------

typedef struct {
    float *out;
    const float *inp, *xs, *bias;
    const char *w;
    int wtype;
    int64_t T, K, N, rb;
} gv_ctx;

CK_GV static void gv_task(void *vctx, int64_t task) {
    const gv_ctx *c = vctx;
    const int64_t n0 = task * GEMV_ROWS, n1 = n0 + GEMV_ROWS < c->N ? n0 + GEMV_ROWS : c->N;
    float res[CK_GEMV_MAX_T];
    for (int64_t n = n0; n < n1; n++) {
        const void *row = c->w + n * c->rb;
        if (n + 1 < n1) _mm_prefetch((const char *)row + c->rb, _MM_HINT_T0);
        const int64_t T = c->T;
        if (T == 1) switch (c->wtype) { // constant wtype per instantiation for the unit kernels
        case CK_TYPE_Q5_0: res[0] = row1_u(CK_TYPE_Q5_0, row, c->inp, c->K); break;
        case CK_TYPE_Q4_K: res[0] = row1_u(CK_TYPE_Q4_K, row, c->inp, c->K); break;
        case CK_TYPE_Q5_K: res[0] = row1_u(CK_TYPE_Q5_K, row, c->inp, c->K); break;
        case CK_TYPE_Q6_K: res[0] = row1_u(CK_TYPE_Q6_K, row, c->inp, c->K); break;
        default: res[0] = row1(c->wtype, row, c->inp, c->xs, c->K); break;
        }
        else switch (c->wtype) {
        case CK_TYPE_Q4_0: row_q4_0(row, c->inp, T, c->K, res); break;
        case CK_TYPE_Q4_1: row_q4_1(row, c->inp, c->xs, T, c->K, res); break;
        case CK_TYPE_Q5_0: rowT_u(CK_TYPE_Q5_0, row, c->inp, T, c->K, res); break;
        case CK_TYPE_Q4_K: rowT_u(CK_TYPE_Q4_K, row, c->inp, T, c->K, res); break;
        case CK_TYPE_Q5_K: rowT_u(CK_TYPE_Q5_K, row, c->inp, T, c->K, res); break;
        case CK_TYPE_Q6_K: rowT_u(CK_TYPE_Q6_K, row, c->inp, T, c->K, res); break;
        default: row_q8_0(row, c->inp, T, c->K, res); break;
        }
        const float b = c->bias ? c->bias[n] : 0.0f;
        for (int64_t t = 0; t < c->T; t++) c->out[t * c->N + n] = res[t] + b;
    }
}

// ---- AVX-512 -------------------------------------------------------------------------
// The same block walk with 16-lane vectors: a Q4 block's 16 nibble bytes become 2 zmm (low
// nibbles = elements 0..15, high = 16..31) with one sign-extension each; T = 1 keeps four
// independent FMA chains (even / odd blocks × two halves).

CK_AVX512_INLINE __m512 h2f16(uint16_t h) { return _mm512_broadcastss_ps(h2f(h)); }

CK_AVX512_INLINE void expand_q4_512(const uint8_t *qs, __m128i off, __m512 q[2]) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs), mask = _mm_set1_epi8(0x0f);
    q[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_sub_epi8(_mm_and_si128(raw, mask), off)));
    q[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), off)));
}

CK_AVX512_INLINE void expand_q8_512(const int8_t *qs, __m512 q[2]) {
    q[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)qs)));
    q[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16))));
}

CK_AVX512_INLINE __m512 block_dot512(const __m512 q[2], const float *x) {
    return _mm512_fmadd_ps(q[1], _mm512_loadu_ps(x + 16), _mm512_mul_ps(q[0], _mm512_loadu_ps(x)));
}

/* Block i of a row expanded to 2×16 floats, its scale d and (Q4_1) min m. */
CK_AVX512_INLINE void load_block512(int wtype, const void *w, int64_t i, __m512 q[2], __m512 *d, float *m) {
    if (wtype == CK_TYPE_Q4_0) {
        const block_q4_0 *b = (const block_q4_0 *)w + i;
        expand_q4_512(b->qs, _mm_set1_epi8(8), q);
        *d = h2f16(b->d);
    } else if (wtype == CK_TYPE_Q4_1) {
        const block_q4_1 *b = (const block_q4_1 *)w + i;
        expand_q4_512(b->qs, _mm_setzero_si128(), q);
        *d = h2f16(b->d);
        *m = _mm_cvtss_f32(h2f(b->m));
    } else {
        const block_q8_0 *b = (const block_q8_0 *)w + i;
        expand_q8_512(b->qs, q);
        *d = h2f16(b->d);
    }
}

/* One row, T = 1 (row1 with 16 lanes): two blocks per step, four independent FMA chains. */
CK_AVX512_INLINE float row1_512(int wtype, const void *w, const float *x, const float *xs, int64_t K) {
    const int64_t nb = K / 32;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    float macc = 0.0f, m0 = 0.0f, m1 = 0.0f;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        __m512 q[2], r[2], d0, d1;
        load_block512(wtype, w, i, q, &d0, &m0);
        load_block512(wtype, w, i + 1, r, &d1, &m1);
        a0 = _mm512_fmadd_ps(_mm512_mul_ps(d0, q[0]), _mm512_loadu_ps(x + 32 * i), a0);
        a1 = _mm512_fmadd_ps(_mm512_mul_ps(d0, q[1]), _mm512_loadu_ps(x + 32 * i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_mul_ps(d1, r[0]), _mm512_loadu_ps(x + 32 * i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_mul_ps(d1, r[1]), _mm512_loadu_ps(x + 32 * i + 48), a3);
        if (wtype == CK_TYPE_Q4_1) macc = __builtin_fmaf(m1, xs[i + 1], __builtin_fmaf(m0, xs[i], macc));
    }
    if (i < nb) {
        __m512 q[2], d0;
        load_block512(wtype, w, i, q, &d0, &m0);
        a0 = _mm512_fmadd_ps(_mm512_mul_ps(d0, q[0]), _mm512_loadu_ps(x + 32 * i), a0);
        a1 = _mm512_fmadd_ps(_mm512_mul_ps(d0, q[1]), _mm512_loadu_ps(x + 32 * i + 16), a1);
        if (wtype == CK_TYPE_Q4_1) macc = __builtin_fmaf(m0, xs[i], macc);
    }
    return ck_hsum16(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) + macc;
}

/* res[t] = dot(x[t], row) for 2 <= T <= CK_GEMV_MAX_T, one zmm accumulator per input row. */
CK_AVX512_INLINE void rowT_512(int wtype, const void *w, const float *x, const float *xs, int64_t T, int64_t K, float *res) {
    const int64_t nb = K / 32;
    __m512 acc[CK_GEMV_MAX_T];
    float macc[CK_GEMV_MAX_T];
    for (int64_t t = 0; t < T; t++) { acc[t] = _mm512_setzero_ps(); macc[t] = 0.0f; }
    for (int64_t i = 0; i < nb; i++) {
        __m512 q[2], d;
        float m = 0.0f;
        load_block512(wtype, w, i, q, &d, &m);
        if (wtype == CK_TYPE_Q4_1)
            for (int64_t t = 0; t < T; t++) macc[t] = __builtin_fmaf(m, xs[t * nb + i], macc[t]);
        for (int64_t t = 0; t < T; t++) acc[t] = _mm512_fmadd_ps(d, block_dot512(q, x + t * K + 32 * i), acc[t]);
    }
    for (int64_t t = 0; t < T; t++) res[t] = ck_hsum16(acc[t]) + macc[t];
}

/* Unit u as 2 × 16 dequantized floats (unit8's values: elements 0..15, 16..31). */
CK_AVX512_INLINE void unit16(int wtype, const char *row, int64_t u, const kq_sb *s, __m512 w[2]) {
    __m256i q;
    if (wtype == CK_TYPE_Q5_0) { // qh as a byte mask: (nib − 16) + 16 where the bit is set
        const block_q5_0 *b = (const block_q5_0 *)row + u;
        const __m128i raw = _mm_loadu_si128((const __m128i *)b->qs);
        const __m256i t = _mm256_sub_epi8(_mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f)),
                                          _mm256_set1_epi8(16));
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        q = _mm256_mask_add_epi8(t, (__mmask32)qh, t, _mm256_set1_epi8(16));
    } else q = unit_bytes(wtype, row, u);
    w[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
    w[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
    if (wtype == CK_TYPE_Q5_0) {
        const __m512 d = h2f16(((const block_q5_0 *)row + u)->d);
        w[0] = _mm512_mul_ps(w[0], d); w[1] = _mm512_mul_ps(w[1], d);
    } else if (wtype == CK_TYPE_Q6_K) {
        const int k = (int)(u % 8);
        w[0] = _mm512_mul_ps(_mm512_set1_ps(s->d[2 * k]), w[0]);
        w[1] = _mm512_mul_ps(_mm512_set1_ps(s->d[2 * k + 1]), w[1]);
    } else {
        const int k = (int)(u % 8);
        const __m512 d = _mm512_set1_ps(s->d[k]), m = _mm512_set1_ps(s->m[k]);
        w[0] = _mm512_sub_ps(_mm512_mul_ps(d, w[0]), m);
        w[1] = _mm512_sub_ps(_mm512_mul_ps(d, w[1]), m);
    }
}

/* T = 1: four zmm chains (even / odd unit × two halves), ck_hsum16 of their sum. */
CK_AVX512_INLINE float row1_u512(int wtype, const char *row, const float *x, int64_t K) {
    const int64_t nu = K / 32;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    kq_sb s;
    for (int64_t u = 0; u + 2 <= nu; u += 2) { // nu is even for the K-quants; odd tails below (Q5_0)
        if (wtype != CK_TYPE_Q5_0 && u % 8 == 0) kq_prep(wtype, row + (u / 8) * kq_block_bytes(wtype), &s);
        __m512 w[2], v[2];
        unit16(wtype, row, u, &s, w);
        unit16(wtype, row, u + 1, &s, v);
        a0 = _mm512_fmadd_ps(w[0], _mm512_loadu_ps(x + 32 * u), a0);
        a1 = _mm512_fmadd_ps(w[1], _mm512_loadu_ps(x + 32 * u + 16), a1);
        a2 = _mm512_fmadd_ps(v[0], _mm512_loadu_ps(x + 32 * u + 32), a2);
        a3 = _mm512_fmadd_ps(v[1], _mm512_loadu_ps(x + 32 * u + 48), a3);
    }
    if (nu % 2) {
        const int64_t u = nu - 1;
        __m512 w[2];
        unit16(wtype, row, u, &s, w);
        a0 = _mm512_fmadd_ps(w[0], _mm512_loadu_ps(x + 32 * u), a0);
        a1 = _mm512_fmadd_ps(w[1], _mm512_loadu_ps(x + 32 * u + 16), a1);
    }
    return ck_hsum16(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* 2 <= T: one zmm per input row, acc ← fma(w[1], x[16..], fma(w[0], x[0..], acc)) per unit. */
CK_AVX512_INLINE void rowT_u512(int wtype, const char *row, const float *x, int64_t T, int64_t K, float *res) {
    const int64_t nu = K / 32;
    __m512 acc[CK_GEMV_MAX_T];
    for (int64_t t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    kq_sb s;
    for (int64_t u = 0; u < nu; u++) {
        if (wtype != CK_TYPE_Q5_0 && u % 8 == 0) kq_prep(wtype, row + (u / 8) * kq_block_bytes(wtype), &s);
        __m512 w[2];
        unit16(wtype, row, u, &s, w);
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + t * K + 32 * u;
            acc[t] = _mm512_fmadd_ps(w[1], _mm512_loadu_ps(xt + 16), _mm512_fmadd_ps(w[0], _mm512_loadu_ps(xt), acc[t]));
        }
    }
    for (int64_t t = 0; t < T; t++) res[t] = ck_hsum16(acc[t]);
}

CK_AVX512 static void gv512_task(void *vctx, int64_t task) {
    const gv_ctx *c = vctx;
    const int64_t n0 = task * GEMV_ROWS, n1 = n0 + GEMV_ROWS < c->N ? n0 + GEMV_ROWS : c->N;
    float res[CK_GEMV_MAX_T];
    for (int64_t n = n0; n < n1; n++) {
        const void *row = c->w + n * c->rb;
        if (n + 1 < n1) _mm_prefetch((const char *)row + c->rb, _MM_HINT_T0);
        if (c->T == 1) {
            switch (c->wtype) { // constant wtype per instantiation: the block loop has no type switch
            case CK_TYPE_Q4_0: res[0] = row1_512(CK_TYPE_Q4_0, row, c->inp, c->xs, c->K); break;
            case CK_TYPE_Q4_1: res[0] = row1_512(CK_TYPE_Q4_1, row, c->inp, c->xs, c->K); break;
            case CK_TYPE_Q5_0: res[0] = row1_u512(CK_TYPE_Q5_0, row, c->inp, c->K); break;
            case CK_TYPE_Q4_K: res[0] = row1_u512(CK_TYPE_Q4_K, row, c->inp, c->K); break;
            case CK_TYPE_Q5_K: res[0] = row1_u512(CK_TYPE_Q5_K, row, c->inp, c->K); break;
            case CK_TYPE_Q6_K: res[0] = row1_u512(CK_TYPE_Q6_K, row, c->inp, c->K); break;
            default: res[0] = row1_512(CK_TYPE_Q8_0, row, c->inp, c->xs, c->K); break;
            }
        } else { // constant (wtype, T) per instantiation: the accumulators stay in registers
#define ROWT_CASE(TT) case TT: \
            if (c->wtype == CK_TYPE_Q4_0) rowT_512(CK_TYPE_Q4_0, row, c->inp, c->xs, TT, c->K, res); \
            else if (c->wtype == CK_TYPE_Q4_1) rowT_512(CK_TYPE_Q4_1, row, c->inp, c->xs, TT, c->K, res); \
            else if (c->wtype == CK_TYPE_Q5_0) rowT_u512(CK_TYPE_Q5_0, row, c->inp, TT, c->K, res); \
            else if (c->wtype == CK_TYPE_Q4_K) rowT_u512(CK_TYPE_Q4_K, row, c->inp, TT, c->K, res); \
            else if (c->wtype == CK_TYPE_Q5_K) rowT_u512(CK_TYPE_Q5_K, row, c->inp, TT, c->K, res); \
            else if (c->wtype == CK_TYPE_Q6_K) rowT_u512(CK_TYPE_Q6_K, row, c->inp, TT, c->K, res); \
            else rowT_512(CK_TYPE_Q8_0, row, c->inp, c->xs, TT, c->K, res); \
            break;
            switch (c->T) { ROWT_CASE(2) ROWT_CASE(3) ROWT_CASE(4) ROWT_CASE(5) ROWT_CASE(6) ROWT_CASE(7) default: ROWT_CASE(8) }
#undef ROWT_CASE
        }
        const float b = c->bias ? c->bias[n] : 0.0f;
        for (int64_t t = 0; t < c->T; t++) c->out[t * c->N + n] = res[t] + b;
    }
}

/* Per-block Σx for Q4_1: xs [T, K/32], 8-lane sums with the fixed horizontal sum. */
CK_GV static void block_sums(float *xs, const float *inp, int64_t T, int64_t K) {
    const int64_t nb = K / 32;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < nb; i++) {
            const float *x = inp + t * K + 32 * i;
            const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8)),
                                           _mm256_add_ps(_mm256_loadu_ps(x + 16), _mm256_loadu_ps(x + 24)));
            xs[t * nb + i] = ck_hsum8(s);
        }
}
#endif

/* out [T,N], inp [T,K], w [N,K] rows of wtype, bias [N] or NULL. Caller checked
 * ck_gemv_q_supported. Returns 0, or -1 on allocation failure. */
int ck_gemv_q(float *out, const float *inp, const void *w, int wtype, const float *bias,
              int64_t T, int64_t K, int64_t N) {
#if CK_X86
    if (N == 0) return 0;
    float *xs = NULL;
    if (wtype == CK_TYPE_Q4_1) {
        xs = malloc((size_t)(T * (K / 32)) * sizeof(float));
        if (!xs) return -1;
        block_sums(xs, inp, T, K);
    }
    gv_ctx c = {.out = out, .inp = inp, .xs = xs, .bias = bias, .w = w, .wtype = wtype,
                .T = T, .K = K, .N = N, .rb = ck_type_row_bytes(wtype, K)};
    ck_parallel_for((N + GEMV_ROWS - 1) / GEMV_ROWS, ck_use_avx512() ? gv512_task : gv_task, &c);
    free(xs);
    return 0;
#else
    (void)out; (void)inp; (void)w; (void)wtype; (void)bias; (void)T; (void)K; (void)N;
    return -1;
#endif
}
