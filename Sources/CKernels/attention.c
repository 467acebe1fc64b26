/*
 * attention.c — causal grouped-query attention (forward), softmax scale 1/sqrt(D).
 * Reference: builds the full score row per (query, head) in double.
 * Fast: one task per (block of QB queries, head) on the pool; keys are processed in chunks
 * of CHUNK, each chunk serving every query of the block, with a per-query online softmax
 * (running max, rescaled sum and accumulator): AVX2 dot products four keys at a time,
 * vector exp, and P·V with the D-accumulator held in registers. Memory per task is
 * O(QB·(D + CHUNK)). A query's arithmetic does not depend on its block or thread, so
 * results are bit-identical for any thread count (for a given ISA).
 * AVX-512: the same blocks and chunks with 16-lane dots, exp and P·V (attn512_task).
 * Invalid shapes (Hkv <= 0, H % Hkv != 0, Tkv < pos0 + T) leave out untouched.
 * A sliding window (ck_attention_forward_window) only clips each query's first key.
 */
#include "ck_internal.h"
#include <math.h>
#include <stdlib.h>

#define CHUNK 64 // keys per online-softmax step
#define QB 8     // queries per task

static int bad_shape(int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D) {
    return T <= 0 || H <= 0 || D <= 0 || Hkv <= 0 || H % Hkv != 0 || pos0 < 0 || Tkv < pos0 + T;
}

// ---- reference -------------------------------------------------------------------------

/* First key a query at position p (n = p + 1 keys up to it) may see under `window` (<= 0: none). */
static inline int64_t window_lo(int64_t n, int64_t window) {
    return window > 0 && n > window ? n - window : 0;
}

/* out, q [T,H,D]; k, v [Tkv,Hkv,D]; query t sees keys window_lo .. pos0+t. */
static void attention_ref(float *out, const float *q, const float *k, const float *v,
                          int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D, int64_t window) {
    if (bad_shape(T, Tkv, pos0, H, Hkv, D)) return;
    double *p = malloc((size_t)(pos0 + T) * sizeof(double));
    double *o = malloc((size_t)D * sizeof(double));
    if (!p || !o) { free(p); free(o); return; }
    const double scale = 1.0 / sqrt((double)D);
    const int64_t group = H / Hkv;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const float *qv = q + (t * H + h) * D;
            const int64_t hk = h / group, n = pos0 + t + 1, lo = window_lo(n, window);
            double m = -INFINITY, sum = 0.0;
            for (int64_t j = lo; j < n; j++) {
                const float *kv = k + (j * Hkv + hk) * D;
                double s = 0.0;
                for (int64_t d = 0; d < D; d++) s += (double)qv[d] * (double)kv[d];
                p[j] = s * scale;
                if (p[j] > m) m = p[j];
            }
            for (int64_t j = lo; j < n; j++) { p[j] = exp(p[j] - m); sum += p[j]; }
            for (int64_t d = 0; d < D; d++) o[d] = 0.0;
            for (int64_t j = lo; j < n; j++) {
                const float *vv = v + (j * Hkv + hk) * D;
                for (int64_t d = 0; d < D; d++) o[d] += p[j] * (double)vv[d];
            }
            for (int64_t d = 0; d < D; d++) out[(t * H + h) * D + d] = (float)(o[d] / sum);
        }
    free(p);
    free(o);
}

void ck_attention_forward_ref(float *out, const float *q, const float *k, const float *v,
                              int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D) {
    attention_ref(out, q, k, v, T, Tkv, pos0, H, Hkv, D, 0);
}

void ck_attention_forward_window_ref(float *out, const float *q, const float *k, const float *v,
                                     int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D,
                                     int64_t window) {
    attention_ref(out, q, k, v, T, Tkv, pos0, H, Hkv, D, window);
}

// ---- fast --------------------------------------------------------------------------------

typedef struct {
    float *out;
    const float *q, *k, *v;
    int64_t T, Tkv, pos0, H, Hkv, D;
    int64_t window; // <= 0: none
} attn_ctx;

#if CK_X86
/* s[i] = dot(q, k_i) * scale for 4 key rows (D-long); two accumulators per key (even and
 * odd 8-column steps) so 8 FMA chains are in flight. */
CK_AVX2 static void dot4(float *s, const float *q, const float *const *kr, int64_t D, float scale) {
    __m256 a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
    int64_t d = 0;
    for (; d + 16 <= D; d += 16) {
        const __m256 q0 = _mm256_loadu_ps(q + d), q1 = _mm256_loadu_ps(q + d + 8);
        for (int i = 0; i < 4; i++) {
            a[i] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(kr[i] + d), a[i]);
            a[i + 4] = _mm256_fmadd_ps(q1, _mm256_loadu_ps(kr[i] + d + 8), a[i + 4]);
        }
    }
    for (; d + 8 <= D; d += 8) {
        const __m256 q0 = _mm256_loadu_ps(q + d);
        for (int i = 0; i < 4; i++) a[i] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(kr[i] + d), a[i]);
    }
    for (int i = 0; i < 4; i++) {
        float r = ck_hsum8(_mm256_add_ps(a[i], a[i + 4]));
        for (int64_t dd = d; dd < D; dd++) r = fmaf(q[dd], kr[i][dd], r);
        s[i] = r * scale;
    }
}

/* acc[d] += Σ_j p[j] · v_j[d] for the nc rows v_j = v0 + j*stride; acc stays in registers
 * while the chunk's keys stream by (32 columns at a time). */
CK_AVX2 static void pv_chunk(float *acc, const float *v0, int64_t stride, const float *p, int64_t nc, int64_t D) {
    int64_t d = 0;
    for (; d + 64 <= D; d += 64) { // 8 independent FMA chains
        __m256 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_ps(acc + d + 8 * i);
        for (int64_t j = 0; j < nc; j++) {
            const float *vj = v0 + j * stride + d;
            const __m256 pj = _mm256_broadcast_ss(p + j);
            for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * i), a[i]);
        }
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(acc + d + 8 * i, a[i]);
    }
    for (; d + 32 <= D; d += 32) {
        __m256 a0 = _mm256_loadu_ps(acc + d), a1 = _mm256_loadu_ps(acc + d + 8);
        __m256 a2 = _mm256_loadu_ps(acc + d + 16), a3 = _mm256_loadu_ps(acc + d + 24);
        for (int64_t j = 0; j < nc; j++) {
            const float *vj = v0 + j * stride + d;
            const __m256 pj = _mm256_broadcast_ss(p + j);
            a0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj), a0);
            a1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8), a1);
            a2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 16), a2);
            a3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 24), a3);
        }
        _mm256_storeu_ps(acc + d, a0);
        _mm256_storeu_ps(acc + d + 8, a1);
        _mm256_storeu_ps(acc + d + 16, a2);
        _mm256_storeu_ps(acc + d + 24, a3);
    }
    for (; d + 8 <= D; d += 8) {
        __m256 a0 = _mm256_loadu_ps(acc + d);
        for (int64_t j = 0; j < nc; j++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j), _mm256_loadu_ps(v0 + j * stride + d), a0);
        _mm256_storeu_ps(acc + d, a0);
    }
    for (; d < D; d++) {
        float a = acc[d];
        for (int64_t j = 0; j < nc; j++) a = fmaf(p[j], v0[j * stride + d], a);
        acc[d] = a;
    }
}

/* Online-softmax update of one query's state (acc [D], running max *m, sum *l) with keys
 * j0 .. j0+nc-1 of kv head hk; s is CHUNK floats of scratch. */
CK_AVX2 static void attn_chunk(const attn_ctx *c, const float *qv, int64_t hk, int64_t j0, int64_t nc,
                               float *acc, float *s, float *m, float *l) {
    const int64_t D = c->D, Hkv = c->Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    for (int64_t jj = 0; jj < nc; jj += 4) {
        const float *kr[4];
        for (int i = 0; i < 4; i++) {
            const int64_t j = j0 + (jj + i < nc ? jj + i : nc - 1);
            kr[i] = c->k + (j * Hkv + hk) * D;
        }
        dot4(s + jj, qv, kr, D, scale); // may write up to 3 entries past nc (within CHUNK)
    }
    const int64_t nc8 = (nc + 7) & ~(int64_t)7;
    for (int64_t jj = nc; jj < nc8; jj++) s[jj] = -INFINITY;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (int64_t jj = 0; jj < nc8; jj += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + jj));
    const float cm = ck_hmax8(mv);
    if (cm > *m) {
        const float corr = expf(*m - cm); // 0 on the first chunk
        if (corr != 1.0f) {
            const __m256 cv = _mm256_set1_ps(corr);
            int64_t d = 0;
            for (; d + 8 <= D; d += 8) _mm256_storeu_ps(acc + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), cv));
            for (; d < D; d++) acc[d] *= corr;
            *l *= corr;
        }
        *m = cm;
    }
    const __m256 mb = _mm256_set1_ps(*m);
    __m256 lv = _mm256_setzero_ps();
    for (int64_t jj = 0; jj < nc8; jj += 8) {
        const __m256 p = ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + jj), mb));
        _mm256_storeu_ps(s + jj, p);
        lv = _mm256_add_ps(lv, p);
    }
    *l += ck_hsum8(lv);
    pv_chunk(acc, c->v + (j0 * Hkv + hk) * D, Hkv * D, s, nc, D);
}

/* Task = (block of QB consecutive queries, head); blocks with more keys are handed out first.
 * Each key chunk is used by all queries of the block while it is in L1/L2. */
CK_AVX2 static void attn_task(void *vctx, int64_t task) {
    const attn_ctx *c = vctx;
    const int64_t D = c->D, H = c->H, nblk = (c->T + QB - 1) / QB;
    const int64_t t0 = (nblk - 1 - task / H) * QB, h = task % H, hk = h / (H / c->Hkv);
    const int64_t nq = c->T - t0 < QB ? c->T - t0 : QB, stride = D + CHUNK;
    float stack_buf[QB * (256 + CHUNK)];
    float *buf = D <= 256 ? stack_buf : ck_scratch((size_t)(QB * stride));
    if (!buf) { // allocation failure (only possible for D > 256): NaN marks it
        for (int64_t qi = 0; qi < nq; qi++)
            for (int64_t d = 0; d < D; d++) c->out[((t0 + qi) * H + h) * D + d] = NAN;
        return;
    }
    float m[QB], l[QB];
    for (int64_t qi = 0; qi < nq; qi++) {
        m[qi] = -INFINITY;
        l[qi] = 0.0f;
        for (int64_t d = 0; d < D; d++) buf[qi * stride + d] = 0.0f;
    }
    const int64_t n_max = c->pos0 + t0 + nq; // keys seen by the block's last query
    // Chunks start at multiples of CHUNK from the block's lowest visible key (0 without a window);
    // each query clips them to its own keys lo .. n-1.
    for (int64_t j0 = window_lo(c->pos0 + t0 + 1, c->window) / CHUNK * CHUNK; j0 < n_max; j0 += CHUNK)
        for (int64_t qi = 0; qi < nq; qi++) {
            const int64_t n = c->pos0 + t0 + qi + 1, lo = window_lo(n, c->window);
            const int64_t j_begin = j0 > lo ? j0 : lo, j_end = j0 + CHUNK < n ? j0 + CHUNK : n;
            if (j_begin >= j_end) continue;
            float *acc = buf + qi * stride;
            attn_chunk(c, c->q + ((t0 + qi) * H + h) * D, hk, j_begin, j_end - j_begin,
                       acc, acc + D, &m[qi], &l[qi]);
        }
    for (int64_t qi = 0; qi < nq; qi++) {
        const float inv = 1.0f / l[qi];
        float *o = c->out + ((t0 + qi) * H + h) * D;
        for (int64_t d = 0; d < D; d++) o[d] = buf[qi * stride + d] * inv;
    }
}
#endif

// ---- AVX-512 ------------------------------------------------------------------------------
// The same algorithm (blocks, chunks, online softmax) with 16-lane vectors: masked loads
// cover D tails (no scalar loops), exp is ck_exp16, sums use the fixed ck_hsum16 order.

#if CK_X86
CK_AVX512_INLINE __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/* s[i] = dot(q, k_i) * scale for 4 key rows; two accumulators per key (32-column steps). */
CK_AVX512 static void dot4_512(float *s, const float *q, const float *const *kr, int64_t D, float scale) {
    __m512 a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_ps();
    int64_t d = 0;
    for (; d + 32 <= D; d += 32) {
        const __m512 q0 = _mm512_loadu_ps(q + d), q1 = _mm512_loadu_ps(q + d + 16);
        for (int i = 0; i < 4; i++) {
            a[i] = _mm512_fmadd_ps(q0, _mm512_loadu_ps(kr[i] + d), a[i]);
            a[i + 4] = _mm512_fmadd_ps(q1, _mm512_loadu_ps(kr[i] + d + 16), a[i + 4]);
        }
    }
    for (; d < D; d += 16) {
        const __mmask16 m = lanes(D - d);
        const __m512 q0 = _mm512_maskz_loadu_ps(m, q + d);
        for (int i = 0; i < 4; i++) a[i] = _mm512_fmadd_ps(q0, _mm512_maskz_loadu_ps(m, kr[i] + d), a[i]);
    }
    for (int i = 0; i < 4; i++) s[i] = ck_hsum16(_mm512_add_ps(a[i], a[i + 4])) * scale;
}

/* acc[d] += Σ_j p[j] · v_j[d] for the nc rows v_j = v0 + j*stride, 64 columns at a time in registers. */
CK_AVX512 static void pv_chunk512(float *acc, const float *v0, int64_t stride, const float *p, int64_t nc, int64_t D) {
    for (int64_t d = 0; d < D; d += 64) {
        __mmask16 m[4];
        __m512 a[4];
        for (int i = 0; i < 4; i++) {
            const int64_t left = D - d - 16 * i;
            m[i] = left <= 0 ? 0 : lanes(left);
            a[i] = _mm512_maskz_loadu_ps(m[i], acc + d + 16 * i);
        }
        for (int64_t j = 0; j < nc; j++) {
            const float *vj = v0 + j * stride + d;
            const __m512 pj = _mm512_set1_ps(p[j]);
            for (int i = 0; i < 4; i++) a[i] = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m[i], vj + 16 * i), a[i]);
        }
        for (int i = 0; i < 4; i++) _mm512_mask_storeu_ps(acc + d + 16 * i, m[i], a[i]);
    }
}

/* attn_chunk with 16 lanes (s is CHUNK floats of scratch). */
CK_AVX512 static void attn_chunk512(const attn_ctx *c, const float *qv, int64_t hk, int64_t j0, int64_t nc,
                                    float *acc, float *s, float *m, float *l) {
    const int64_t D = c->D, Hkv = c->Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    for (int64_t jj = 0; jj < nc; jj += 4) {
        const float *kr[4];
        for (int i = 0; i < 4; i++) {
            const int64_t j = j0 + (jj + i < nc ? jj + i : nc - 1);
            kr[i] = c->k + (j * Hkv + hk) * D;
        }
        dot4_512(s + jj, qv, kr, D, scale); // may write up to 3 entries past nc (within CHUNK)
    }
    const int64_t nc16 = (nc + 15) & ~(int64_t)15;
    for (int64_t jj = nc; jj < nc16; jj++) s[jj] = -INFINITY;
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int64_t jj = 0; jj < nc16; jj += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(s + jj));
    const float cm = ck_hmax16(mv);
    if (cm > *m) {
        const float corr = expf(*m - cm); // 0 on the first chunk
        if (corr != 1.0f) {
            const __m512 cv = _mm512_set1_ps(corr);
            for (int64_t d = 0; d < D; d += 16) {
                const __mmask16 mk = lanes(D - d);
                _mm512_mask_storeu_ps(acc + d, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, acc + d), cv));
            }
            *l *= corr;
        }
        *m = cm;
    }
    const __m512 mb = _mm512_set1_ps(*m);
    __m512 lv = _mm512_setzero_ps();
    for (int64_t jj = 0; jj < nc16; jj += 16) {
        const __m512 p = ck_exp16(_mm512_sub_ps(_mm512_loadu_ps(s + jj), mb));
        _mm512_storeu_ps(s + jj, p);
        lv = _mm512_add_ps(lv, p);
    }
    *l += ck_hsum16(lv);
    pv_chunk512(acc, c->v + (j0 * Hkv + hk) * D, Hkv * D, s, nc, D);
}

/* attn_task with the AVX-512 chunk update. */
CK_AVX512 static void attn512_task(void *vctx, int64_t task) {
    const attn_ctx *c = vctx;
    const int64_t D = c->D, H = c->H, nblk = (c->T + QB - 1) / QB;
    const int64_t t0 = (nblk - 1 - task / H) * QB, h = task % H, hk = h / (H / c->Hkv);
    const int64_t nq = c->T - t0 < QB ? c->T - t0 : QB, stride = D + CHUNK;
    float stack_buf[QB * (256 + CHUNK)];
    float *buf = D <= 256 ? stack_buf : ck_scratch((size_t)(QB * stride));
    if (!buf) {
        for (int64_t qi = 0; qi < nq; qi++)
            for (int64_t d = 0; d < D; d++) c->out[((t0 + qi) * H + h) * D + d] = NAN;
        return;
    }
    float m[QB], l[QB];
    for (int64_t qi = 0; qi < nq; qi++) {
        m[qi] = -INFINITY;
        l[qi] = 0.0f;
        for (int64_t d = 0; d < D; d++) buf[qi * stride + d] = 0.0f;
    }
    const int64_t n_max = c->pos0 + t0 + nq; // keys seen by the block's last query
    // Chunks start at multiples of CHUNK from the block's lowest visible key (0 without a window);
    // each query clips them to its own keys lo .. n-1.
    for (int64_t j0 = window_lo(c->pos0 + t0 + 1, c->window) / CHUNK * CHUNK; j0 < n_max; j0 += CHUNK)
        for (int64_t qi = 0; qi < nq; qi++) {
            const int64_t n = c->pos0 + t0 + qi + 1, lo = window_lo(n, c->window);
            const int64_t j_begin = j0 > lo ? j0 : lo, j_end = j0 + CHUNK < n ? j0 + CHUNK : n;
            if (j_begin >= j_end) continue;
            float *acc = buf + qi * stride;
            attn_chunk512(c, c->q + ((t0 + qi) * H + h) * D, hk, j_begin, j_end - j_begin,
                          acc, acc + D, &m[qi], &l[qi]);
        }
    for (int64_t qi = 0; qi < nq; qi++) {
        const float inv = 1.0f / l[qi];
        float *o = c->out + ((t0 + qi) * H + h) * D;
        for (int64_t d = 0; d < D; d++) o[d] = buf[qi * stride + d] * inv;
    }
}
#endif

void ck_attention_forward_window(float *out, const float *q, const float *k, const float *v,
                                 int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D,
                                 int64_t window) {
#if CK_X86
    if (ck_use_simd()) {
        if (bad_shape(T, Tkv, pos0, H, Hkv, D)) return;
        attn_ctx c = {out, q, k, v, T, Tkv, pos0, H, Hkv, D, window};
        ck_parallel_for((T + QB - 1) / QB * H, ck_use_avx512() ? attn512_task : attn_task, &c);
        return;
    }
#endif
    attention_ref(out, q, k, v, T, Tkv, pos0, H, Hkv, D, window);
}

void ck_attention_forward(float *out, const float *q, const float *k, const float *v,
                          int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D) {
    ck_attention_forward_window(out, q, k, v, T, Tkv, pos0, H, Hkv, D, 0);
}
