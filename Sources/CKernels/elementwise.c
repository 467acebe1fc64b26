/*
 * elementwise.c — SwiGLU, GeGLU, in-place add and row-wise log-softmax (forward).
 * Fast paths use AVX2 with a vector exp (ck_exp8, ~2 ulp) and are threaded over
 * fixed-size chunks (elementwise) or rows (log-softmax); a row's reduction is never
 * split across threads. Log-softmax accumulates the exp-sum in double.
 */
#include "ck_internal.h"
#include <math.h>

#define EW_CHUNK 16384 // elements per task for elementwise ops

// ---- SwiGLU ------------------------------------------------------------------------------

/* out, gate, up [n]: out = gate / (1 + exp(-gate)) * up */
void ck_swiglu_forward_ref(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (gate[i] / (1.0f + expf(-gate[i]))) * up[i];
}

typedef struct { float *out; const float *a, *b; int64_t n; } ew_ctx;

#if CK_X86
CK_AVX2 static void swiglu_task(void *vctx, int64_t task) {
    const ew_ctx *c = vctx;
    const int64_t i0 = task * EW_CHUNK, i1 = i0 + EW_CHUNK < c->n ? i0 + EW_CHUNK : c->n;
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        const __m256 g = _mm256_loadu_ps(c->a + i);
        const __m256 e = ck_exp8(_mm256_xor_ps(g, sign));
        const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(c->out + i, _mm256_mul_ps(s, _mm256_loadu_ps(c->b + i)));
    }
    if (i < i1) ck_swiglu_forward_ref(c->out + i, c->a + i, c->b + i, i1 - i);
}

CK_AVX2 static void add_task(void *vctx, int64_t task) {
    const ew_ctx *c = vctx;
    const int64_t i0 = task * EW_CHUNK, i1 = i0 + EW_CHUNK < c->n ? i0 + EW_CHUNK : c->n;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8)
        _mm256_storeu_ps(c->out + i, _mm256_add_ps(_mm256_loadu_ps(c->out + i), _mm256_loadu_ps(c->b + i)));
    for (; i < i1; i++) c->out[i] += c->b[i];
}

/* out += s·b over one chunk (s passed through a[0]). */
CK_AVX2 static void axpy_task(void *vctx, int64_t task) {
    const ew_ctx *c = vctx;
    const int64_t i0 = task * EW_CHUNK, i1 = i0 + EW_CHUNK < c->n ? i0 + EW_CHUNK : c->n;
    const float s = c->a[0];
    const __m256 sv = _mm256_set1_ps(s);
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8)
        _mm256_storeu_ps(c->out + i, _mm256_fmadd_ps(sv, _mm256_loadu_ps(c->b + i), _mm256_loadu_ps(c->out + i)));
    for (; i < i1; i++) c->out[i] = fmaf(s, c->b[i], c->out[i]);
}

CK_AVX2 static void mul_task(void *vctx, int64_t task) {
    const ew_ctx *c = vctx;
    const int64_t i0 = task * EW_CHUNK, i1 = i0 + EW_CHUNK < c->n ? i0 + EW_CHUNK : c->n;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8)
        _mm256_storeu_ps(c->out + i, _mm256_mul_ps(_mm256_loadu_ps(c->out + i), _mm256_loadu_ps(c->b + i)));
    for (; i < i1; i++) c->out[i] *= c->b[i];
}
#endif

#if CK_X86
/* The elementwise dispatch: `task` over EW_CHUNK chunks of out/a/b when a SIMD ISA is active (1), or 0
 * so the caller runs its reference. */
static int ew_run(ck_task_fn task, float *out, const float *a, const float *b, int64_t n) {
    if (!ck_use_simd()) return 0;
    if (n > 0) {
        ew_ctx c = {out, a, b, n};
        ck_parallel_for((n + EW_CHUNK - 1) / EW_CHUNK, task, &c);
    }
    return 1;
}
#endif

void ck_swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
#if CK_X86
    if (ew_run(swiglu_task, out, gate, up, n)) return;
#endif
    ck_swiglu_forward_ref(out, gate, up, n);
}

// ---- GeGLU ---------------------------------------------------------------------------------
// PyTorch's tanh-approximated GELU in float32: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).

static inline float gelu_tanh(float x) {
    const float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
    const float inner = kBeta * (x + kKappa * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

void ck_geglu_forward_ref(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = gelu_tanh(gate[i]) * up[i];
}

#if CK_X86
/* gelu_tanh(x) = ½x(1 + tanh a) = x·σ(2a), a = β(x + κx³): the logistic form needs one exp and no
 * tanh, with ck_exp8 (~2 ulp) as in SwiGLU. Elements past the last full vector use expf (ck_gelu_exp). */
CK_AVX2 static void geglu_task(void *vctx, int64_t task) {
    const ew_ctx *c = vctx;
    const int64_t i0 = task * EW_CHUNK, i1 = i0 + EW_CHUNK < c->n ? i0 + EW_CHUNK : c->n;
    const __m256 one = _mm256_set1_ps(1.0f), m2b = _mm256_set1_ps(-2.0f * 0.7978845608028654f), kk = _mm256_set1_ps(0.044715f);
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        const __m256 x = _mm256_loadu_ps(c->a + i);
        const __m256 e = ck_exp8(_mm256_mul_ps(_mm256_mul_ps(m2b, x), _mm256_fmadd_ps(kk, _mm256_mul_ps(x, x), one)));
        _mm256_storeu_ps(c->out + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(c->b + i)));
    }
    for (; i < i1; i++) c->out[i] = (c->a[i] / (1.0f + ck_gelu_exp(c->a[i]))) * c->b[i];
}
#endif

/* Threaded over fixed chunks (bit-identical for any thread count); within 1e-5 relative (1e-6 absolute) of the
 * tanhf reference. */
void ck_geglu_forward(float *out, const float *gate, const float *up, int64_t n) {
#if CK_X86
    if (ew_run(geglu_task, out, gate, up, n)) return;
#endif
    ck_geglu_forward_ref(out, gate, up, n);
}

// ---- add ------------------------------------------------------------------------------------

/* x, y [n]: x += y */
void ck_add_inplace(float *x, const float *y, int64_t n) {
#if CK_X86
    if (ew_run(add_task, x, NULL, y, n)) return;
#endif
    ck_add_inplace_ref(x, y, n);
}

void ck_add_inplace_ref(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

/* x, y [n]: x += s·y (one fused multiply-add per element, so every path rounds the same way) */
void ck_axpy(float *x, const float *y, float s, int64_t n) {
#if CK_X86
    if (ew_run(axpy_task, x, &s, y, n)) return;
#endif
    ck_axpy_ref(x, y, s, n);
}

void ck_axpy_ref(float *x, const float *y, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = fmaf(s, y[i], x[i]);
}

/* x, y [n]: x *= y */
void ck_mul_inplace(float *x, const float *y, int64_t n) {
#if CK_X86
    if (ew_run(mul_task, x, NULL, y, n)) return;
#endif
    ck_mul_inplace_ref(x, y, n);
}

void ck_mul_inplace_ref(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= y[i];
}

// ---- log-softmax -------------------------------------------------------------------------

/* One row: out[V] = inp[V] - logsumexp(inp). Scalar, double accumulation. */
static void logsm_row_ref(float *out, const float *x, int64_t V) {
    float m = -INFINITY;
    for (int64_t i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
    double sum = 0.0;
    for (int64_t i = 0; i < V; i++) sum += exp((double)x[i] - (double)m);
    const double lse = (double)m + log(sum);
    for (int64_t i = 0; i < V; i++) out[i] = (float)((double)x[i] - lse);
}

typedef struct { float *out; const float *inp; int64_t V; } lsm_ctx;

#if CK_X86
CK_AVX2 static void logsm_row(float *out, const float *x, int64_t V) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= V; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float m = ck_hmax8(mv);
    for (; i < V; i++) m = x[i] > m ? x[i] : m;
    if (!(m > -INFINITY) || m == INFINITY) { logsm_row_ref(out, x, V); return; } // NaN/inf rows
    const __m256 mb = _mm256_set1_ps(m);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    for (i = 0; i + 8 <= V; i += 8) {
        const __m256 e = ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mb));
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < V; i++) sum += exp((double)x[i] - (double)m);
    const double lse = (double)m + log(sum);
    const __m256d lv = _mm256_set1_pd(lse);
    for (i = 0; i + 8 <= V; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        const __m128 lo = _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xv)), lv));
        const __m128 hi = _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1)), lv));
        _mm256_storeu_ps(out + i, _mm256_set_m128(hi, lo));
    }
    for (; i < V; i++) out[i] = (float)((double)x[i] - lse);
}

static void logsm_task(void *vctx, int64_t t) {
    const lsm_ctx *c = vctx;
    logsm_row(c->out + t * c->V, c->inp + t * c->V, c->V);
}
#endif

/* out, inp [T,V] (out may equal inp) */
void ck_log_softmax_forward(float *out, const float *inp, int64_t T, int64_t V) {
    if (T <= 0 || V <= 0) return;
#if CK_X86
    if (ck_use_simd()) {
        lsm_ctx c = {out, inp, V};
        ck_parallel_for(T, logsm_task, &c);
        return;
    }
#endif
    ck_log_softmax_forward_ref(out, inp, T, V);
}

void ck_log_softmax_forward_ref(float *out, const float *inp, int64_t T, int64_t V) {
    for (int64_t t = 0; t < T; t++) logsm_row_ref(out + t * V, inp + t * V, V);
}
