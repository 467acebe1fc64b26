/*
 * train_ops.c — backward of RMSNorm, RoPE and SwiGLU; AdamW, Σx² and scale (ck_train.h).
 * Fast paths: AVX2/FMA per row or per fixed-size chunk of elements on the pool; chunk
 * boundaries never depend on the thread count, so results are bit-identical for any
 * thread count. References are plain loops (double where a reduction is involved).
 */
#include "ck_internal.h"
#include "ck_train.h"
#include <math.h>
#include <stdlib.h>

#define CHUNK 8192 // elements per task for elementwise ops

// ---- RMSNorm backward ------------------------------------------------------------------

/* dinp [T,C]; dweight [C] += or NULL; dout, inp [T,C]; weight [C]; rstd [T]. */
void ck_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int64_t T, int64_t C) {
    for (int64_t t = 0; t < T; t++) {
        const float *x = inp + t * C, *dy = dout + t * C;
        const double r = rstd[t];
        double dot = 0.0;
        for (int64_t i = 0; i < C; i++) dot += (double)dy[i] * (double)weight[i] * (double)x[i];
        const double c = dot * r * r * r / (double)C;
        for (int64_t i = 0; i < C; i++) dinp[t * C + i] = (float)(r * (double)dy[i] * (double)weight[i] - c * (double)x[i]);
    }
    if (dweight)
        for (int64_t i = 0; i < C; i++) {
            double s = 0.0;
            for (int64_t t = 0; t < T; t++) s += (double)dout[t * C + i] * (double)inp[t * C + i] * (double)rstd[t];
            dweight[i] = (float)((double)dweight[i] + s);
        }
}

typedef struct {
    float *dinp, *dweight;
    const float *dout, *inp, *weight, *rstd;
    int64_t T, C;
} rmsb_ctx;

#if CK_X86
CK_AVX2 static void rmsb_row(float *dx, const float *dy, const float *x, const float *w, float r, int64_t C) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= C; i += 8)
        acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(w + i)), _mm256_loadu_ps(x + i), acc);
    float dot = ck_hsum8(acc);
    for (; i < C; i++) dot = fmaf(dy[i] * w[i], x[i], dot);
    const float c = dot * r * r * r / (float)C;
    const __m256 rv = _mm256_set1_ps(r), cv = _mm256_set1_ps(c);
    for (i = 0; i + 8 <= C; i += 8) {
        const __m256 g = _mm256_mul_ps(rv, _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(w + i)));
        _mm256_storeu_ps(dx + i, _mm256_fnmadd_ps(cv, _mm256_loadu_ps(x + i), g));
    }
    for (; i < C; i++) dx[i] = fmaf(-c, x[i], r * (dy[i] * w[i]));
}

/* Task < T: one dinp row. Task >= T: one CHUNK-column slice of dweight (reduced over t). */
static void rmsb_task(void *vctx, int64_t task) {
    const rmsb_ctx *c = vctx;
    const int64_t C = c->C;
    if (task < c->T) {
        rmsb_row(c->dinp + task * C, c->dout + task * C, c->inp + task * C, c->weight, c->rstd[task], C);
        return;
    }
    const int64_t i0 = (task - c->T) * 256, i1 = i0 + 256 < C ? i0 + 256 : C;
    for (int64_t t = 0; t < c->T; t++) {
        const float r = c->rstd[t];
        const float *dy = c->dout + t * C, *x = c->inp + t * C;
        for (int64_t i = i0; i < i1; i++) c->dweight[i] = fmaf(dy[i] * x[i], r, c->dweight[i]);
    }
}
#endif

void ck_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                         const float *weight, const float *rstd, int64_t T, int64_t C) {
#if CK_X86
    if (ck_use_simd()) {
        if (T <= 0 || C <= 0) return;
        rmsb_ctx c = {dinp, dweight, dout, inp, weight, rstd, T, C};
        ck_parallel_for(T + (dweight ? (C + 255) / 256 : 0), rmsb_task, &c);
        return;
    }
#endif
    ck_rmsnorm_backward_ref(dinp, dweight, dout, inp, weight, rstd, T, C);
}

// ---- RoPE backward -------------------------------------------------------------------------
// Same angles as rope.c (HF float32): rotating by −angle is the transpose of the forward.

static inline float rope_inv_freq(int64_t i, int64_t D, float theta) {
    const float e = (float)(2 * i) / (float)D;
    return 1.0f / powf(theta, e);
}

static void rope_back_pos(float *dx, int32_t pos, int64_t H, int64_t D, float theta) {
    const int64_t half = D / 2;
    for (int64_t i = 0; i < half; i++) {
        const float a = (float)pos * rope_inv_freq(i, D, theta);
        const float c = (float)cos((double)a), s = (float)sin((double)a);
        for (int64_t h = 0; h < H; h++) {
            float *v = dx + h * D;
            const float g1 = v[i], g2 = v[i + half];
            v[i] = g1 * c + g2 * s;
            v[i + half] = g2 * c - g1 * s;
        }
    }
}

void ck_rope_backward_ref(float *dx, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta) {
    for (int64_t t = 0; t < T; t++) rope_back_pos(dx + t * H * D, pos[t], H, D, theta);
}

typedef struct { float *dx; const int32_t *pos; int64_t H, D; float theta; } ropeb_ctx;
static void ropeb_task(void *vctx, int64_t t) {
    const ropeb_ctx *c = vctx;
    rope_back_pos(c->dx + t * c->H * c->D, c->pos[t], c->H, c->D, c->theta);
}

/* Threaded over positions; cos/sin computed once per (position, pair) for all heads. */
void ck_rope_backward(float *dx, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta) {
    if (!ck_use_simd()) { ck_rope_backward_ref(dx, pos, T, H, D, theta); return; }
    if (T <= 0) return;
    ropeb_ctx c = {dx, pos, H, D, theta};
    ck_parallel_for(T, ropeb_task, &c);
}

/* Backward with the cached cos/sin table of ck_rope_table (tab [P, D]): same products and
 * sums as rope_back_pos, without FMA contraction, so bit-identical to ck_rope_backward. */
void ck_rope_backward_cached_ref(float *dx, const int32_t *pos, const float *tab, int64_t T, int64_t H, int64_t D) {
    const int64_t half = D / 2;
    for (int64_t t = 0; t < T; t++) {
        const float *cs = tab + (int64_t)pos[t] * D, *sn = cs + half;
        for (int64_t h = 0; h < H; h++) {
            float *v = dx + (t * H + h) * D;
            for (int64_t i = 0; i < half; i++) {
                const float g1 = v[i], g2 = v[i + half];
                v[i] = g1 * cs[i] + g2 * sn[i];
                v[i + half] = g2 * cs[i] - g1 * sn[i];
            }
        }
    }
}

typedef struct { float *dx; const int32_t *pos; const float *tab; int64_t H, D; } ropebc_ctx;
#if CK_X86
CK_AVX2 static void ropebc_task(void *vctx, int64_t t) {
    const ropebc_ctx *c = vctx;
    const int64_t half = c->D / 2;
    const float *cs = c->tab + (int64_t)c->pos[t] * c->D, *sn = cs + half;
    for (int64_t h = 0; h < c->H; h++) {
        float *v = c->dx + (t * c->H + h) * c->D;
        int64_t i = 0;
        for (; i + 8 <= half; i += 8) {
            const __m256 co = _mm256_loadu_ps(cs + i), si = _mm256_loadu_ps(sn + i);
            const __m256 g1 = _mm256_loadu_ps(v + i), g2 = _mm256_loadu_ps(v + i + half);
            _mm256_storeu_ps(v + i, _mm256_add_ps(_mm256_mul_ps(g1, co), _mm256_mul_ps(g2, si)));
            _mm256_storeu_ps(v + i + half, _mm256_sub_ps(_mm256_mul_ps(g2, co), _mm256_mul_ps(g1, si)));
        }
        for (; i < half; i++) {
            const float g1 = v[i], g2 = v[i + half];
            const float a = g1 * cs[i], b = g2 * sn[i], p = g2 * cs[i], q = g1 * sn[i];
            v[i] = a + b;
            v[i + half] = p - q;
        }
    }
}
#endif

void ck_rope_backward_cached(float *dx, const int32_t *pos, const float *tab, int64_t T, int64_t H, int64_t D) {
#if CK_X86
    if (ck_use_simd() && T > 0 && H > 0 && D >= 2) {
        ropebc_ctx c = {dx, pos, tab, H, D};
        ck_parallel_for(T, ropebc_task, &c);
        return;
    }
#endif
    ck_rope_backward_cached_ref(dx, pos, tab, T, H, D);
}

// ---- SwiGLU backward --------------------------------------------------------------------------

void ck_swiglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const double g = gate[i], sg = 1.0 / (1.0 + exp(-g));
        dup[i] = (float)((double)dout[i] * g * sg);
        dgate[i] = (float)((double)dout[i] * (double)up[i] * sg * (1.0 + g * (1.0 - sg)));
    }
}

typedef struct { float *dgate, *dup; const float *dout, *gate, *up; int64_t n; } swb_ctx;

#if CK_X86
CK_AVX2 static void swb_task(void *vctx, int64_t task) {
    const swb_ctx *c = vctx;
    const int64_t i0 = task * CHUNK, i1 = i0 + CHUNK < c->n ? i0 + CHUNK : c->n;
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        const __m256 g = _mm256_loadu_ps(c->gate + i), dy = _mm256_loadu_ps(c->dout + i);
        const __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, ck_exp8(_mm256_xor_ps(g, sign))));
        _mm256_storeu_ps(c->dup + i, _mm256_mul_ps(dy, _mm256_mul_ps(g, sg)));
        const __m256 k = _mm256_fmadd_ps(g, _mm256_sub_ps(one, sg), one);
        _mm256_storeu_ps(c->dgate + i, _mm256_mul_ps(_mm256_mul_ps(dy, _mm256_loadu_ps(c->up + i)), _mm256_mul_ps(sg, k)));
    }
    for (; i < i1; i++) {
        const float g = c->gate[i], sg = 1.0f / (1.0f + expf(-g));
        c->dup[i] = c->dout[i] * (g * sg);
        c->dgate[i] = (c->dout[i] * c->up[i]) * (sg * fmaf(g, 1.0f - sg, 1.0f));
    }
}
#endif

void ck_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, int64_t n) {
#if CK_X86
    if (ck_use_simd()) {
        if (n <= 0) return;
        swb_ctx c = {dgate, dup, dout, gate, up, n};
        ck_parallel_for((n + CHUNK - 1) / CHUNK, swb_task, &c);
        return;
    }
#endif
    ck_swiglu_backward_ref(dgate, dup, dout, gate, up, n);
}

// ---- GeGLU backward ---------------------------------------------------------------------------
//
// out = gelu_tanh(g)·u with gelu_tanh(x) = ½x(1 + tanh(β(x + κx³))), β = √(2/π), κ = 0.044715:
//   dup = dout·gelu_tanh(g);  dgate = dout·u·gelu_tanh'(g),
//   gelu_tanh'(x) = ½(1 + tanh a) + ½x(1 − tanh² a)·β(1 + 3κx²),  a = β(x + κx³).

void ck_geglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, int64_t n) {
    const double kBeta = 0.7978845608028654, kKappa = 0.044715;
    for (int64_t i = 0; i < n; i++) {
        const double x = gate[i], a = kBeta * (x + kKappa * x * x * x), th = tanh(a);
        const double g = 0.5 * x * (1.0 + th);
        const double dg = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * kBeta * (1.0 + 3.0 * kKappa * x * x);
        dup[i] = (float)((double)dout[i] * g);
        dgate[i] = (float)((double)dout[i] * (double)up[i] * dg);
    }
}

#if CK_X86
/* Logistic form (see ck_gelu_exp): s = σ(2a), g = x·s, gelu_tanh'(x) = s·(1 + 2x(1 − s)·a'),
 * a' = β(1 + 3κx²); dup uses the same x/(1 + e) as the forward kernel, so it equals forward(g, dout).
 * The same arithmetic whatever chunk or thread handles an element. */
CK_AVX2 static void geglub_task(void *vctx, int64_t task) {
    const swb_ctx *c = vctx;
    const int64_t i0 = task * CHUNK, i1 = i0 + CHUNK < c->n ? i0 + CHUNK : c->n;
    const float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f), m2b = _mm256_set1_ps(-2.0f * kBeta),
                 kk = _mm256_set1_ps(kKappa), b = _mm256_set1_ps(kBeta), k3 = _mm256_set1_ps(3.0f * kKappa);
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        const __m256 x = _mm256_loadu_ps(c->gate + i), dy = _mm256_loadu_ps(c->dout + i), x2 = _mm256_mul_ps(x, x);
        const __m256 e = ck_exp8(_mm256_mul_ps(_mm256_mul_ps(m2b, x), _mm256_fmadd_ps(kk, x2, one)));
        const __m256 den = _mm256_add_ps(one, e), s = _mm256_div_ps(one, den);
        _mm256_storeu_ps(c->dup + i, _mm256_mul_ps(dy, _mm256_div_ps(x, den)));
        const __m256 da = _mm256_mul_ps(b, _mm256_fmadd_ps(k3, x2, one));
        const __m256 dg = _mm256_mul_ps(s, _mm256_fmadd_ps(_mm256_mul_ps(two, x), _mm256_mul_ps(_mm256_sub_ps(one, s), da), one));
        _mm256_storeu_ps(c->dgate + i, _mm256_mul_ps(_mm256_mul_ps(dy, _mm256_loadu_ps(c->up + i)), dg));
    }
    for (; i < i1; i++) {
        const float x = c->gate[i], x2 = x * x, den = 1.0f + ck_gelu_exp(x), g = x / den, s = 1.0f / den;
        const float dg = s * (1.0f + 2.0f * x * (1.0f - s) * kBeta * (1.0f + 3.0f * kKappa * x2));
        c->dup[i] = c->dout[i] * g;
        c->dgate[i] = (c->dout[i] * c->up[i]) * dg;
    }
}
#endif

/* Threaded over fixed chunks; bit-identical for any thread count. */
void ck_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                       const float *up, int64_t n) {
    if (n <= 0) return;
#if CK_X86
    if (ck_use_simd()) {
        swb_ctx c = {dgate, dup, dout, gate, up, n};
        ck_parallel_for((n + CHUNK - 1) / CHUNK, geglub_task, &c);
        return;
    }
#endif
    ck_geglu_backward_ref(dgate, dup, dout, gate, up, n);
}

// ---- AdamW -----------------------------------------------------------------------------------

void ck_adamw_step_ref(float *p, const float *g, float *m, float *v, int64_t n,
                       float lr, float b1, float b2, float eps, float wd, int64_t step) {
    const double c1 = 1.0 - pow((double)b1, (double)step), c2 = 1.0 - pow((double)b2, (double)step);
    for (int64_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        const double mh = m[i] / c1, vh = v[i] / c2;
        p[i] = (float)((double)p[i] - (double)lr * (mh / (sqrt(vh) + (double)eps) + (double)wd * (double)p[i]));
    }
}

typedef struct { float *p, *m, *v; const float *g; int64_t n; float lr, b1, b2, eps, wd, c1, c2; } adam_ctx;

#if CK_X86
CK_AVX2 static void adam_task(void *vctx, int64_t task) {
    const adam_ctx *c = vctx;
    const int64_t i0 = task * CHUNK, i1 = i0 + CHUNK < c->n ? i0 + CHUNK : c->n;
    const __m256 b1 = _mm256_set1_ps(c->b1), b2 = _mm256_set1_ps(c->b2), a1 = _mm256_set1_ps(1.0f - c->b1);
    const __m256 a2 = _mm256_set1_ps(1.0f - c->b2), ic1 = _mm256_set1_ps(1.0f / c->c1), ic2 = _mm256_set1_ps(1.0f / c->c2);
    const __m256 eps = _mm256_set1_ps(c->eps), lr = _mm256_set1_ps(c->lr), wd = _mm256_set1_ps(c->wd);
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        const __m256 g = _mm256_loadu_ps(c->g + i), p = _mm256_loadu_ps(c->p + i);
        const __m256 m = _mm256_fmadd_ps(b1, _mm256_loadu_ps(c->m + i), _mm256_mul_ps(a1, g));
        const __m256 v = _mm256_fmadd_ps(b2, _mm256_loadu_ps(c->v + i), _mm256_mul_ps(a2, _mm256_mul_ps(g, g)));
        _mm256_storeu_ps(c->m + i, m);
        _mm256_storeu_ps(c->v + i, v);
        const __m256 u = _mm256_div_ps(_mm256_mul_ps(m, ic1), _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(v, ic2)), eps));
        _mm256_storeu_ps(c->p + i, _mm256_fnmadd_ps(lr, _mm256_fmadd_ps(wd, p, u), p));
    }
    for (; i < i1; i++) {
        const float g = c->g[i];
        c->m[i] = fmaf(c->b1, c->m[i], (1.0f - c->b1) * g);
        c->v[i] = fmaf(c->b2, c->v[i], (1.0f - c->b2) * (g * g));
        const float u = (c->m[i] * (1.0f / c->c1)) / (sqrtf(c->v[i] * (1.0f / c->c2)) + c->eps);
        c->p[i] = fmaf(-c->lr, fmaf(c->wd, c->p[i], u), c->p[i]);
    }
}
#endif

void ck_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step) {
#if CK_X86
    if (ck_use_simd()) {
        if (n <= 0) return;
        adam_ctx c = {param, m, v, grad, n, lr, beta1, beta2, eps, weight_decay,
                      (float)(1.0 - pow((double)beta1, (double)step)), (float)(1.0 - pow((double)beta2, (double)step))};
        ck_parallel_for((n + CHUNK - 1) / CHUNK, adam_task, &c);
        return;
    }
#endif
    ck_adamw_step_ref(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step);
}

// ---- Σx² and scale ---------------------------------------------------------------------------

double ck_sumsq_ref(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

typedef struct { const float *x; float *xs; double *part; float s; int64_t n; } vec_ctx;

#if CK_X86
/* One CHUNK's Σx² in 4 double lanes (fixed order), stored to part[task]. */
CK_AVX2 static void sumsq_task(void *vctx, int64_t task) {
    const vec_ctx *c = vctx;
    const int64_t i0 = task * CHUNK, i1 = i0 + CHUNK < c->n ? i0 + CHUNK : c->n;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        const __m256 v = _mm256_loadu_ps(c->x + i);
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        a0 = _mm256_fmadd_pd(lo, lo, a0);
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
    double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < i1; i++) s += (double)c->x[i] * (double)c->x[i];
    c->part[task] = s;
}

CK_AVX2 static void scale_task(void *vctx, int64_t task) {
    const vec_ctx *c = vctx;
    const int64_t i0 = task * CHUNK, i1 = i0 + CHUNK < c->n ? i0 + CHUNK : c->n;
    const __m256 sv = _mm256_set1_ps(c->s);
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(c->xs + i, _mm256_mul_ps(_mm256_loadu_ps(c->xs + i), sv));
    for (; i < i1; i++) c->xs[i] *= c->s;
}
#endif

double ck_sumsq(const float *x, int64_t n) {
#if CK_X86
    if (ck_use_simd() && n > 0) {
        const int64_t tasks = (n + CHUNK - 1) / CHUNK;
        double *part = malloc((size_t)tasks * sizeof(double));
        if (part) {
            vec_ctx c = {.x = x, .part = part, .n = n};
            ck_parallel_for(tasks, sumsq_task, &c);
            double s = 0.0;
            for (int64_t t = 0; t < tasks; t++) s += part[t];
            free(part);
            return s;
        }
    }
#endif
    return ck_sumsq_ref(x, n);
}

void ck_scale_ref(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void ck_scale(float *x, float s, int64_t n) {
#if CK_X86
    if (ck_use_simd()) {
        if (n <= 0) return;
        vec_ctx c = {.xs = x, .s = s, .n = n};
        ck_parallel_for((n + CHUNK - 1) / CHUNK, scale_task, &c);
        return;
    }
#endif
    ck_scale_ref(x, s, n);
}

// ---- LoRA dropout mask ------------------------------------------------------------------------

static inline uint32_t dropout_hash(uint64_t key, uint64_t i) {
    uint64_t z = key + i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* mask[i] for i0 <= i < i1: one loop for the reference and both task variants, inlined into each so
 * the AVX-512 task compiles it with vpmullq (eight 64-bit hashes per instruction). */
__attribute__((always_inline)) static inline void dm_span(float *mask, int64_t i0, int64_t i1, uint64_t key,
                                                          uint32_t threshold, float scale) {
    for (int64_t i = i0; i < i1; i++) mask[i] = dropout_hash(key, (uint64_t)i) <= threshold ? scale : 0.0f;
}

void ck_dropout_mask_ref(float *mask, int64_t n, uint64_t key, uint32_t threshold, float scale) {
    dm_span(mask, 0, n, key, threshold, scale);
}

typedef struct { float *mask; int64_t n; uint64_t key; uint32_t threshold; float scale; } dm_ctx;

__attribute__((always_inline)) static inline void dm_chunk(void *vctx, int64_t task) {
    const dm_ctx *c = vctx;
    const int64_t i0 = task * CHUNK, i1 = i0 + CHUNK < c->n ? i0 + CHUNK : c->n;
    dm_span(c->mask, i0, i1, c->key, c->threshold, c->scale);
}
#if CK_X86
CK_AVX512 static void dm_task512(void *vctx, int64_t task) { dm_chunk(vctx, task); }
#endif
static void dm_task(void *vctx, int64_t task) { dm_chunk(vctx, task); }

void ck_dropout_mask(float *mask, int64_t n, uint64_t key, uint32_t threshold, float scale) {
    if (n <= 0) return;
    if (!ck_use_simd()) { ck_dropout_mask_ref(mask, n, key, threshold, scale); return; }
    dm_ctx c = {mask, n, key, threshold, scale};
#if CK_X86
    if (ck_use_avx512()) { ck_parallel_for((n + CHUNK - 1) / CHUNK, dm_task512, &c); return; }
#endif
    ck_parallel_for((n + CHUNK - 1) / CHUNK, dm_task, &c);
}
