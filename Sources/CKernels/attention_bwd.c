/*
 * attention_bwd.c — causal GQA attention for training (self-attention, keys = queries'
 * positions 0..T-1, softmax scale 1/sqrt(D)):
 *   ck_attention_forward_train: out and the per-(t,h) logsumexp of the scaled scores;
 *   ck_attention_backward: dq, dk, dv from q, k, v, out, dout and that lse, recomputing each
 *   score row (memory O(T) per task, no T×T matrix):
 *     p_j = exp(s_j − lse),  dP_j = dout_t·v_j,  δ = dout_t·out_t,  dS_j = p_j (dP_j − δ)
 *     dq_t = scale Σ_j dS_j k_j,  dk_j += scale dS_j q_t,  dv_j += p_j dout_t
 * Fast (AVX2): one task per kv head (it owns dk, dv of that head and dq of its query heads),
 * dots/axpys. Fast (AVX-512): score blocks as GEMMs on the 12×32 core, see below. In both
 * the arithmetic order does not depend on the thread, so results are bit-identical for any
 * thread count. References use double.
 */
#include "ck_internal.h"
#include "ck_train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int bad(int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    return T <= 0 || H <= 0 || D <= 0 || Hkv <= 0 || H % Hkv != 0;
}

// ---- reference ----------------------------------------------------------------------------

/* First key query t may see under `window` (<= 0: none): keys j with t − j < window. */
static inline int64_t win_lo(int64_t t, int64_t window) {
    return window > 0 && t + 1 > window ? t + 1 - window : 0;
}

void ck_attention_forward_train_window_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                                           int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t window) {
    if (bad(T, H, Hkv, D)) return;
    double *p = malloc((size_t)T * sizeof(double));
    if (!p) return;
    const double scale = 1.0 / sqrt((double)D);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t hk = h / (H / Hkv);
            const float *qv = q + (t * H + h) * D;
            double m = -INFINITY, s = 0.0;
            const int64_t lo = win_lo(t, window);
            for (int64_t j = lo; j <= t; j++) {
                double d = 0.0;
                for (int64_t i = 0; i < D; i++) d += (double)qv[i] * (double)k[(j * Hkv + hk) * D + i];
                p[j] = d * scale;
                m = p[j] > m ? p[j] : m;
            }
            for (int64_t j = lo; j <= t; j++) s += exp(p[j] - m);
            const double l = m + log(s);
            lse[t * H + h] = (float)l;
            for (int64_t i = 0; i < D; i++) {
                double o = 0.0;
                for (int64_t j = lo; j <= t; j++) o += exp(p[j] - l) * (double)v[(j * Hkv + hk) * D + i];
                out[(t * H + h) * D + i] = (float)o;
            }
        }
    free(p);
}

void ck_attention_forward_train_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                                    int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    ck_attention_forward_train_window_ref(out, lse, q, k, v, T, H, Hkv, D, 0);
}

void ck_attention_backward_window_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                      const float *k, const float *v, const float *out, const float *lse,
                                      int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t window) {
    if (bad(T, H, Hkv, D)) return;
    double *gq = calloc((size_t)(T * H * D), sizeof(double)), *gk = calloc((size_t)(T * Hkv * D), sizeof(double));
    double *gv = calloc((size_t)(T * Hkv * D), sizeof(double));
    if (!gq || !gk || !gv) { free(gq); free(gk); free(gv); return; }
    const double scale = 1.0 / sqrt((double)D);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t hk = h / (H / Hkv), qi = (t * H + h) * D;
            double delta = 0.0;
            for (int64_t i = 0; i < D; i++) delta += (double)dout[qi + i] * (double)out[qi + i];
            for (int64_t j = win_lo(t, window); j <= t; j++) {
                const int64_t ki = (j * Hkv + hk) * D;
                double s = 0.0, dp = 0.0;
                for (int64_t i = 0; i < D; i++) { s += (double)q[qi + i] * (double)k[ki + i]; dp += (double)dout[qi + i] * (double)v[ki + i]; }
                const double p = exp(s * scale - (double)lse[t * H + h]), ds = p * (dp - delta) * scale;
                for (int64_t i = 0; i < D; i++) {
                    gq[qi + i] += ds * (double)k[ki + i];
                    gk[ki + i] += ds * (double)q[qi + i];
                    gv[ki + i] += p * (double)dout[qi + i];
                }
            }
        }
    for (int64_t i = 0; i < T * H * D; i++) dq[i] = (float)gq[i];
    for (int64_t i = 0; i < T * Hkv * D; i++) { dk[i] = (float)gk[i]; dv[i] = (float)gv[i]; }
    free(gq); free(gk); free(gv);
}

void ck_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *out, const float *lse,
                               int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    ck_attention_backward_window_ref(dq, dk, dv, dout, q, k, v, out, lse, T, H, Hkv, D, 0);
}

// ---- AVX2 helpers ---------------------------------------------------------------------------

#if CK_X86
CK_AVX2 static float dotf(const float *a, const float *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float s = ck_hsum8(acc);
    for (; i < n; i++) s = fmaf(a[i], b[i], s);
    return s;
}

CK_AVX2 static void axpy(float *y, float a, const float *x, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}
#endif

// ---- fast -------------------------------------------------------------------------------------

typedef struct {
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *o, *lse_in;
    float *delta; // [T,H] dout·out per query (AVX-512 backward: written by part 1, read by part 2)
    int64_t T, H, Hkv, D;
    int64_t window; // sliding window (<= 0: none); only the AVX2 tasks take it
    _Atomic int failed;
} att_ctx;

#if CK_X86
/* Forward task: query t, all heads. */
static void fwd_task(void *vctx, int64_t t) {
    att_ctx *c = vctx;
    const int64_t H = c->H, Hkv = c->Hkv, D = c->D;
    float *p = ck_scratch((size_t)(t + 1));
    if (!p) { c->failed = 1; return; }
    const float scale = 1.0f / sqrtf((float)D);
    for (int64_t h = 0; h < H; h++) {
        const int64_t hk = h / (H / Hkv);
        const float *qv = c->q + (t * H + h) * D;
        float m = -INFINITY;
        const int64_t lo = win_lo(t, c->window);
        for (int64_t j = lo; j <= t; j++) { p[j] = dotf(qv, c->k + (j * Hkv + hk) * D, D) * scale; m = p[j] > m ? p[j] : m; }
        double s = 0.0;
        for (int64_t j = lo; j <= t; j++) { p[j] = expf(p[j] - m); s += p[j]; }
        const float l = m + (float)log(s), inv = (float)(1.0 / s);
        c->lse[t * H + h] = l;
        float *o = c->out + (t * H + h) * D;
        memset(o, 0, (size_t)D * sizeof(float));
        for (int64_t j = lo; j <= t; j++) axpy(o, p[j] * inv, c->v + (j * Hkv + hk) * D, D);
    }
}

/* Backward task: kv head hk; owns dk, dv of hk and dq of the query heads that use it. */
static void bwd_task(void *vctx, int64_t hk) {
    att_ctx *c = vctx;
    const int64_t T = c->T, H = c->H, Hkv = c->Hkv, D = c->D, G = H / Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    for (int64_t j = 0; j < T; j++) {
        memset(c->dk + (j * Hkv + hk) * D, 0, (size_t)D * sizeof(float));
        memset(c->dv + (j * Hkv + hk) * D, 0, (size_t)D * sizeof(float));
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = hk * G; h < (hk + 1) * G; h++) {
            const int64_t qi = (t * H + h) * D;
            float *dq = c->dq + qi;
            memset(dq, 0, (size_t)D * sizeof(float));
            const float delta = dotf(c->dout + qi, c->o + qi, D), l = c->lse_in[t * H + h];
            for (int64_t j = win_lo(t, c->window); j <= t; j++) {
                const int64_t ki = (j * Hkv + hk) * D;
                const float p = expf(dotf(c->q + qi, c->k + ki, D) * scale - l);
                const float ds = p * (dotf(c->dout + qi, c->v + ki, D) - delta) * scale;
                axpy(dq, ds, c->k + ki, D);
                axpy(c->dk + ki, ds, c->q + qi, D);
                axpy(c->dv + ki, p, c->dout + qi, D);
            }
        }
}
#endif

// ---- AVX-512: the score blocks as GEMMs ---------------------------------------------------
//
// Queries are handled in blocks of AB (one 32-wide column stripe of the GEMM core). For a
// query block the transposed scores Sᵀ[j][lane] = k_j·q_(t0+lane) come from one
// ck512_tile_gemm (K rows × packed Qᵀ), the softmax runs down each column with the 32 queries
// as vector lanes, and out = P·V, dq = dS·K are GEMMs with P/dS read as a strided A operand.
// dk and dv are reduced per key block (task = key block × kv head) over the query rows and
// the group's heads in a fixed order, so no two tasks write the same row; scores are
// recomputed there (flash-attention style, memory O(AB·T) per task, no T×T matrix).

#define AB 32

#if CK_X86
/* Qᵀ-style pack: dst[d*AB + lane] = src[lane*ld + d] for lane < n (lanes n..AB-1 zero). */
static void pack_t(float *dst, const float *src, int64_t ld, int64_t n, int64_t D) {
    for (int64_t d = 0; d < D; d++)
        for (int64_t i = n; i < AB; i++) dst[d * AB + i] = 0.0f;
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) dst[d * AB + i] = src[i * ld + d];
}

static float dot_ref_order(const float *a, const float *b, int64_t n) { // δ = dout·out
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s = fmaf(a[i], b[i], s);
    return s;
}

/* Forward, task = (query block, head), blocks with more keys first. */
CK_AVX512 static void fwd512_task(void *vctx, int64_t task) {
    att_ctx *c = vctx;
    const int64_t T = c->T, H = c->H, Hkv = c->Hkv, D = c->D, hk_of = H / Hkv;
    const int64_t nblk = (T + AB - 1) / AB, b = nblk - 1 - task / H, h = task % H, hk = h / hk_of;
    const int64_t t0 = b * AB, nq = T - t0 < AB ? T - t0 : AB, n = t0 + nq;
    float *buf = ck_scratch((size_t)(D * AB + n * AB));
    if (!buf) { c->failed = 1; return; }
    float *qt = buf, *s = buf + D * AB;
    const float scale = 1.0f / sqrtf((float)D);
    pack_t(qt, c->q + (t0 * H + h) * D, H * D, nq, D);
    ck512_tile_gemm(s, AB, c->k + hk * D, Hkv * D, 1, qt, AB, D, n, nq, 0); // Sᵀ [n][AB]
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 sc = _mm512_set1_ps(scale);
    float lse_l[AB], inv_l[AB];
    for (int v = 0; v < 2; v++) {
        const __m512i tq = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(t0 + 16 * v))); // query index per lane
        const __mmask16 live = _mm512_cmp_epi32_mask(iota, _mm512_set1_epi32((int)(nq - 16 * v)), _MM_CMPINT_LT);
        __m512 m = _mm512_set1_ps(-INFINITY), l = _mm512_setzero_ps();
        for (int64_t j = 0; j < n; j++) {
            const __mmask16 ok = live & _mm512_cmp_epi32_mask(tq, _mm512_set1_epi32((int)j), _MM_CMPINT_NLT);
            m = _mm512_mask_max_ps(m, ok, m, _mm512_mul_ps(_mm512_loadu_ps(s + j * AB + 16 * v), sc));
        }
        for (int64_t j = 0; j < n; j++) {
            const __mmask16 ok = live & _mm512_cmp_epi32_mask(tq, _mm512_set1_epi32((int)j), _MM_CMPINT_NLT);
            const __m512 e = _mm512_maskz_mov_ps(ok, ck_exp16(_mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(s + j * AB + 16 * v), sc), m)));
            _mm512_storeu_ps(s + j * AB + 16 * v, e);
            l = _mm512_add_ps(l, e);
        }
        float mv[16], lv[16];
        _mm512_storeu_ps(mv, m);
        _mm512_storeu_ps(lv, l);
        for (int i = 0; i < 16; i++) {
            lse_l[16 * v + i] = mv[i] + logf(lv[i]);
            inv_l[16 * v + i] = 1.0f / lv[i];
        }
    }
    float *o = c->out + (t0 * H + h) * D;
    ck512_tile_gemm(o, H * D, s, 1, AB, c->v + hk * D, Hkv * D, n, nq, D, 0); // E·V
    for (int64_t i = 0; i < nq; i++) {
        c->lse[(t0 + i) * H + h] = lse_l[i];
        for (int64_t d = 0; d < D; d++) o[i * H * D + d] *= inv_l[i];
    }
}

/* Backward part 1, task = (query block, head): dq = scale·dS·K with dS = P∘(dP − δ). */
CK_AVX512 static void bwdq512_task(void *vctx, int64_t task) {
    att_ctx *c = vctx;
    const int64_t T = c->T, H = c->H, Hkv = c->Hkv, D = c->D, G = H / Hkv;
    const int64_t nblk = (T + AB - 1) / AB, b = nblk - 1 - task / H, h = task % H, hk = h / G;
    const int64_t t0 = b * AB, nq = T - t0 < AB ? T - t0 : AB, n = t0 + nq;
    float *buf = ck_scratch((size_t)(2 * D * AB + 2 * n * AB));
    if (!buf) { c->failed = 1; return; }
    float *qt = buf, *dot = buf + D * AB, *s = buf + 2 * D * AB, *dp = s + n * AB;
    const float scale = 1.0f / sqrtf((float)D);
    pack_t(qt, c->q + (t0 * H + h) * D, H * D, nq, D);
    pack_t(dot, c->dout + (t0 * H + h) * D, H * D, nq, D);
    ck512_tile_gemm(s, AB, c->k + hk * D, Hkv * D, 1, qt, AB, D, n, nq, 0);   // Sᵀ
    ck512_tile_gemm(dp, AB, c->v + hk * D, Hkv * D, 1, dot, AB, D, n, nq, 0); // dPᵀ
    float lse_l[AB], delta[AB];
    for (int64_t i = 0; i < AB; i++) {
        const int64_t t = t0 + (i < nq ? i : 0), qi = (t * H + h) * D;
        lse_l[i] = c->lse_in[t * H + h];
        delta[i] = dot_ref_order(c->dout + qi, c->o + qi, D);
        if (i < nq) c->delta[t * H + h] = delta[i];
    }
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 sc = _mm512_set1_ps(scale);
    for (int v = 0; v < 2; v++) {
        const __m512i tq = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(t0 + 16 * v)));
        const __mmask16 live = _mm512_cmp_epi32_mask(iota, _mm512_set1_epi32((int)(nq - 16 * v)), _MM_CMPINT_LT);
        const __m512 lv = _mm512_loadu_ps(lse_l + 16 * v), dv = _mm512_loadu_ps(delta + 16 * v);
        for (int64_t j = 0; j < n; j++) {
            const __mmask16 ok = live & _mm512_cmp_epi32_mask(tq, _mm512_set1_epi32((int)j), _MM_CMPINT_NLT);
            float *sj = s + j * AB + 16 * v;
            const __m512 p = _mm512_maskz_mov_ps(ok, ck_exp16(_mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(sj), sc), lv)));
            const __m512 ds = _mm512_mul_ps(_mm512_mul_ps(p, _mm512_sub_ps(_mm512_loadu_ps(dp + j * AB + 16 * v), dv)), sc);
            _mm512_storeu_ps(sj, ds);
        }
    }
    ck512_tile_gemm(c->dq + (t0 * H + h) * D, H * D, s, 1, AB, c->k + hk * D, Hkv * D, n, nq, D, 0);
}

/* Backward part 2, task = (key block, kv head), blocks with more queries first:
 * dv_j = Σ_h Σ_t p_tj dout_t, dk_j = Σ_h Σ_t dS_tj q_t (heads of the group, then t, in order). */
CK_AVX512 static void bwdkv512_task(void *vctx, int64_t task) {
    att_ctx *c = vctx;
    const int64_t T = c->T, H = c->H, Hkv = c->Hkv, D = c->D, G = H / Hkv;
    const int64_t kb = task / Hkv, hk = task % Hkv;
    const int64_t j0 = kb * AB, nk = T - j0 < AB ? T - j0 : AB, nt = T - j0;
    float *buf = ck_scratch((size_t)(2 * D * AB + 2 * nt * AB));
    if (!buf) { c->failed = 1; return; }
    float *kt = buf, *vt = buf + D * AB, *s = buf + 2 * D * AB, *dp = s + nt * AB;
    const float scale = 1.0f / sqrtf((float)D);
    pack_t(kt, c->k + (j0 * Hkv + hk) * D, Hkv * D, nk, D);
    pack_t(vt, c->v + (j0 * Hkv + hk) * D, Hkv * D, nk, D);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t g = 0; g < G; g++) {
        const int64_t h = hk * G + g;
        const float *qb = c->q + (j0 * H + h) * D, *db = c->dout + (j0 * H + h) * D;
        ck512_tile_gemm(s, AB, qb, H * D, 1, kt, AB, D, nt, nk, 0);  // S  [nt][AB]
        ck512_tile_gemm(dp, AB, db, H * D, 1, vt, AB, D, nt, nk, 0); // dP [nt][AB]
        for (int64_t r = 0; r < nt; r++) { // query t = j0 + r sees keys j0 + lane for lane <= r
            const int64_t t = j0 + r;
            const __m512 lv = _mm512_set1_ps(c->lse_in[t * H + h]);
            const __m512 dv = _mm512_set1_ps(c->delta[t * H + h]);
            for (int v = 0; v < 2; v++) {
                const __m512i key = _mm512_add_epi32(iota, _mm512_set1_epi32(16 * v));
                const __mmask16 ok = _mm512_cmp_epi32_mask(key, _mm512_set1_epi32((int)(r < nk - 1 ? r : nk - 1)), _MM_CMPINT_LE);
                float *sr = s + r * AB + 16 * v, *dr = dp + r * AB + 16 * v;
                const __m512 p = _mm512_maskz_mov_ps(ok, ck_exp16(_mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(sr), sc), lv)));
                const __m512 ds = _mm512_mul_ps(_mm512_mul_ps(p, _mm512_sub_ps(_mm512_loadu_ps(dr), dv)), sc);
                _mm512_storeu_ps(sr, p);
                _mm512_storeu_ps(dr, ds);
            }
        }
        ck512_tile_gemm(c->dv + (j0 * Hkv + hk) * D, Hkv * D, s, 1, AB, db, H * D, nt, nk, D, g > 0);
        ck512_tile_gemm(c->dk + (j0 * Hkv + hk) * D, Hkv * D, dp, 1, AB, qb, H * D, nt, nk, D, g > 0);
    }
}
#endif

void ck_attention_forward_train(float *out, float *lse, const float *q, const float *k, const float *v,
                                int64_t T, int64_t H, int64_t Hkv, int64_t D) {
#if CK_X86
    if (ck_use_simd()) {
        if (bad(T, H, Hkv, D)) return;
        att_ctx c = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .T = T, .H = H, .Hkv = Hkv, .D = D};
        if (ck_use_avx512()) ck_parallel_for((T + AB - 1) / AB * H, fwd512_task, &c);
        else ck_parallel_for(T, fwd_task, &c);
        if (!c.failed) return;
    }
#endif
    ck_attention_forward_train_ref(out, lse, q, k, v, T, H, Hkv, D);
}

void ck_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *out, const float *lse,
                           int64_t T, int64_t H, int64_t Hkv, int64_t D) {
#if CK_X86
    if (ck_use_simd()) {
        if (bad(T, H, Hkv, D)) return;
        att_ctx c = {.dq = dq, .dk = dk, .dv = dv, .q = q, .k = k, .v = v, .dout = dout, .o = out, .lse_in = lse,
                     .T = T, .H = H, .Hkv = Hkv, .D = D};
        if (ck_use_avx512()) {
            c.delta = malloc((size_t)(T * H) * sizeof(float));
            if (c.delta) {
                ck_parallel_for((T + AB - 1) / AB * H, bwdq512_task, &c);
                if (!c.failed) ck_parallel_for((T + AB - 1) / AB * Hkv, bwdkv512_task, &c);
                free(c.delta);
                if (!c.failed) return;
            }
        } else {
            ck_parallel_for(Hkv, bwd_task, &c);
            return;
        }
    }
#endif
    ck_attention_backward_ref(dq, dk, dv, dout, q, k, v, out, lse, T, H, Hkv, D);
}

/* Sliding-window variants: query t sees keys max(0, t − window + 1) .. t. A window that clips
 * nothing (window <= 0 or T <= window) is exactly the plain kernels above; otherwise the AVX2
 * tasks with the window bound (per-query / per-kv-head arithmetic independent of the thread, so
 * bit-identical for any thread count), or the reference without SIMD. */
void ck_attention_forward_train_window(float *out, float *lse, const float *q, const float *k, const float *v,
                                       int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t window) {
    if (window <= 0 || T <= window) { ck_attention_forward_train(out, lse, q, k, v, T, H, Hkv, D); return; }
#if CK_X86
    if (ck_use_simd()) {
        if (bad(T, H, Hkv, D)) return;
        att_ctx c = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .T = T, .H = H, .Hkv = Hkv, .D = D, .window = window};
        ck_parallel_for(T, fwd_task, &c);
        if (!c.failed) return;
    }
#endif
    ck_attention_forward_train_window_ref(out, lse, q, k, v, T, H, Hkv, D, window);
}

void ck_attention_backward_window(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                  const float *k, const float *v, const float *out, const float *lse,
                                  int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t window) {
    if (window <= 0 || T <= window) { ck_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, T, H, Hkv, D); return; }
#if CK_X86
    if (ck_use_simd()) {
        if (bad(T, H, Hkv, D)) return;
        att_ctx c = {.dq = dq, .dk = dk, .dv = dv, .q = q, .k = k, .v = v, .dout = dout, .o = out, .lse_in = lse,
                     .T = T, .H = H, .Hkv = Hkv, .D = D, .window = window};
        ck_parallel_for(Hkv, bwd_task, &c);
        return;
    }
#endif
    ck_attention_backward_window_ref(dq, dk, dv, dout, q, k, v, out, lse, T, H, Hkv, D, window);
}
