/*
 * norm.c — embedding lookup and RMSNorm (forward).
 * RMSNorm follows HF LlamaRMSNorm in float32: out = (x * rstd) * weight,
 * rstd = 1/sqrt(mean(x²) + eps). Fast path: AVX2 sum of squares with 4 partial
 * accumulators, threaded over rows.
 */
#include "ck_internal.h"
#include "ck_quant.h"
#include <math.h>

// ---- embedding ---------------------------------------------------------------------

/* out [T,C]; ids [T]; table [V,C] rows of `type`. Returns -1 on bad type/C or negative id.
 * Fast: ck_dequantize_row per row; ref: ck_dequantize_row_ref. */
int ck_embedding_forward(float *out, const int32_t *ids, const void *table, int type,
                         int64_t T, int64_t C) {
    if (!ck_use_simd()) return ck_embedding_forward_ref(out, ids, table, type, T, C);
    const int64_t rb = ck_type_row_bytes(type, C);
    if (T < 0 || C <= 0 || rb == 0 || !ck_type_can_dequantize(type)) return -1;
    for (int64_t t = 0; t < T; t++) {
        if (ids[t] < 0) return -1;
        if (ck_dequantize_row(type, (const char *)table + (int64_t)ids[t] * rb, out + t * C, C) != 0) return -1;
    }
    return 0;
}

int ck_embedding_forward_ref(float *out, const int32_t *ids, const void *table, int type,
                             int64_t T, int64_t C) {
    const int64_t rb = ck_type_row_bytes(type, C);
    if (T < 0 || C <= 0 || rb == 0 || !ck_type_can_dequantize(type)) return -1;
    for (int64_t t = 0; t < T; t++) {
        if (ids[t] < 0) return -1;
        if (ck_dequantize_row_ref(type, (const char *)table + (int64_t)ids[t] * rb, out + t * C, C) != 0) return -1;
    }
    return 0;
}

// ---- RMSNorm reference -------------------------------------------------------------

/* out [T,C]; rstd [T] or NULL; inp [T,C]; weight [C]. Sum of squares in double. */
void ck_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight,
                            float eps, int64_t T, int64_t C) {
    for (int64_t t = 0; t < T; t++) {
        const float *x = inp + t * C;
        double ss = 0.0;
        for (int64_t i = 0; i < C; i++) ss += (double)x[i] * (double)x[i];
        const float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        for (int64_t i = 0; i < C; i++) out[t * C + i] = (x[i] * r) * weight[i];
        if (rstd) rstd[t] = r;
    }
}

// ---- RMSNorm fast ------------------------------------------------------------------

typedef struct {
    float *out, *rstd;
    const float *inp, *weight;
    float eps;
    int64_t T, C, rows_per_task;
} rms_ctx;

#if CK_X86
CK_AVX2 static void rms_row(float *o, float *rstd, const float *x, const float *w, float eps, int64_t C) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= C; i += 32) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        const __m256 x2 = _mm256_loadu_ps(x + i + 16), x3 = _mm256_loadu_ps(x + i + 24);
        a0 = _mm256_fmadd_ps(x0, x0, a0);
        a1 = _mm256_fmadd_ps(x1, x1, a1);
        a2 = _mm256_fmadd_ps(x2, x2, a2);
        a3 = _mm256_fmadd_ps(x3, x3, a3);
    }
    for (; i + 8 <= C; i += 8) {
        const __m256 x0 = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(x0, x0, a0);
    }
    double ss = (double)ck_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < C; i++) ss += (double)x[i] * (double)x[i];
    const float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    const __m256 rv = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= C; i += 8)
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), rv), _mm256_loadu_ps(w + i)));
    for (; i < C; i++) o[i] = (x[i] * r) * w[i];
    if (rstd) *rstd = r;
}

static void rms_task(void *vctx, int64_t task) {
    const rms_ctx *c = vctx;
    const int64_t t0 = task * c->rows_per_task;
    const int64_t t1 = t0 + c->rows_per_task < c->T ? t0 + c->rows_per_task : c->T;
    for (int64_t t = t0; t < t1; t++)
        rms_row(c->out + t * c->C, c->rstd ? c->rstd + t : NULL, c->inp + t * c->C, c->weight, c->eps, c->C);
}
#endif

void ck_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                        float eps, int64_t T, int64_t C) {
#if CK_X86
    if (ck_use_simd()) {
        if (T <= 0 || C <= 0) return;
        int64_t rows = (16384 + C - 1) / C; // ~64 KB of input per task
        if (rows < 1) rows = 1;
        rms_ctx c = {out, rstd, inp, weight, eps, T, C, rows};
        ck_parallel_for((T + rows - 1) / rows, rms_task, &c);
        return;
    }
#endif
    ck_rmsnorm_forward_ref(out, rstd, inp, weight, eps, T, C);
}
