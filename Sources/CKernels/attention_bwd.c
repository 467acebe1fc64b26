/*
 * attention_bwd.c — causal GQA attention for training (self-attention, keys = queries'
 * positions 0..T-1, softmax scale 1/sqrt(D)):
 *   ck_attention_forward_train: out and the per-(t,h) logsumexp of the scaled scores;
 *   ck_attention_backward: dq, dk, dv from q, k, v, out, dout and that lse, recomputing each
 *   score row (memory O(T) per task, no T×T matrix):
 *     p_j = exp(s_j − lse),  dP_j = dout_t·v_j,  δ = dout_t·out_t,  dS_j = p_j (dP_j − δ)
 *     dq_t = scale Σ_j dS_j k_j,  dk_j += scale dS_j q_t,  dv_j += p_j dout_t
 * Fast: one task per kv head (it owns dk, dv of that head and dq of its query heads), AVX2
 * dots/axpys; the arithmetic order does not depend on the thread, so results are
 * bit-identical for any thread count. References use double.
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

void ck_attention_forward_train_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                                    int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    if (bad(T, H, Hkv, D)) return;
    double *p = malloc((size_t)T * sizeof(double));
    if (!p) return;
    const double scale = 1.0 / sqrt((double)D);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t hk = h / (H / Hkv);
            const float *qv = q + (t * H + h) * D;
            double m = -INFINITY, s = 0.0;
            for (int64_t j = 0; j <= t; j++) {
                double d = 0.0;
                for (int64_t i = 0; i < D; i++) d += (double)qv[i] * (double)k[(j * Hkv + hk) * D + i];
                p[j] = d * scale;
                m = p[j] > m ? p[j] : m;
            }
            for (int64_t j = 0; j <= t; j++) s += exp(p[j] - m);
            const double l = m + log(s);
            lse[t * H + h] = (float)l;
            for (int64_t i = 0; i < D; i++) {
                double o = 0.0;
                for (int64_t j = 0; j <= t; j++) o += exp(p[j] - l) * (double)v[(j * Hkv + hk) * D + i];
                out[(t * H + h) * D + i] = (float)o;
            }
        }
    free(p);
}

void ck_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *out, const float *lse,
                               int64_t T, int64_t H, int64_t Hkv, int64_t D) {
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
            for (int64_t j = 0; j <= t; j++) {
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
    int64_t T, H, Hkv, D;
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
        for (int64_t j = 0; j <= t; j++) { p[j] = dotf(qv, c->k + (j * Hkv + hk) * D, D) * scale; m = p[j] > m ? p[j] : m; }
        double s = 0.0;
        for (int64_t j = 0; j <= t; j++) { p[j] = expf(p[j] - m); s += p[j]; }
        const float l = m + (float)log(s), inv = (float)(1.0 / s);
        c->lse[t * H + h] = l;
        float *o = c->out + (t * H + h) * D;
        memset(o, 0, (size_t)D * sizeof(float));
        for (int64_t j = 0; j <= t; j++) axpy(o, p[j] * inv, c->v + (j * Hkv + hk) * D, D);
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
            for (int64_t j = 0; j <= t; j++) {
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

void ck_attention_forward_train(float *out, float *lse, const float *q, const float *k, const float *v,
                                int64_t T, int64_t H, int64_t Hkv, int64_t D) {
#if CK_X86
    if (ck_use_simd()) {
        if (bad(T, H, Hkv, D)) return;
        att_ctx c = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .T = T, .H = H, .Hkv = Hkv, .D = D};
        ck_parallel_for(T, fwd_task, &c);
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
        ck_parallel_for(Hkv, bwd_task, &c);
        return;
    }
#endif
    ck_attention_backward_ref(dq, dk, dv, dout, q, k, v, out, lse, T, H, Hkv, D);
}
