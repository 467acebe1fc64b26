/*
 * xent.c — softmax cross-entropy over the vocabulary, forward and backward in one pass over
 * a chunk of logits rows (in place), with an ignore mask (target < 0 or >= V).
 * Fast: one task per row: AVX2 max, Σexp (ck_exp8), then (softmax − onehot)·scale written
 * over the logits. Rows are independent, so results are bit-identical for any thread count.
 */
#include "ck_internal.h"
#include "ck_train.h"
#include <math.h>

static int ignored(int32_t target, int64_t V) { return target < 0 || target >= V; }

// ---- reference -------------------------------------------------------------------------

/* losses [T]; logits [T,V] in place -> dlogits·scale; targets [T]. Double arithmetic. */
int64_t ck_xent_forward_backward_ref(float *losses, float *logits, const int32_t *targets,
                                     float scale, int64_t T, int64_t V) {
    int64_t counted = 0;
    for (int64_t t = 0; t < T; t++) {
        float *x = logits + t * V;
        if (ignored(targets[t], V)) {
            losses[t] = 0.0f;
            for (int64_t i = 0; i < V; i++) x[i] = 0.0f;
            continue;
        }
        counted++;
        double m = -INFINITY, s = 0.0;
        for (int64_t i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
        for (int64_t i = 0; i < V; i++) s += exp((double)x[i] - m);
        const double lse = m + log(s);
        losses[t] = (float)(lse - (double)x[targets[t]]);
        for (int64_t i = 0; i < V; i++) x[i] = (float)((exp((double)x[i] - lse) - (i == targets[t] ? 1.0 : 0.0)) * scale);
    }
    return counted;
}

// ---- fast ---------------------------------------------------------------------------------

typedef struct { float *losses, *logits; const int32_t *targets; float scale; int64_t V; } xent_ctx;

#if CK_X86
CK_AVX2 static void xent_task(void *vctx, int64_t t) {
    const xent_ctx *c = vctx;
    const int64_t V = c->V;
    float *x = c->logits + t * V;
    const int32_t y = c->targets[t];
    if (ignored(y, V)) {
        c->losses[t] = 0.0f;
        for (int64_t i = 0; i < V; i++) x[i] = 0.0f;
        return;
    }
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= V; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float m = ck_hmax8(mv);
    for (; i < V; i++) m = x[i] > m ? x[i] : m;
    const __m256 mb = _mm256_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    for (i = 0; i + 8 <= V; i += 8) sv = _mm256_add_ps(sv, ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mb)));
    double s = (double)ck_hsum8(sv);
    for (; i < V; i++) s += (double)expf(x[i] - m);
    const float lse = m + (float)log(s);
    c->losses[t] = lse - x[y];
    const float p_scale = c->scale;
    const __m256 lb = _mm256_set1_ps(lse), sc = _mm256_set1_ps(p_scale);
    for (i = 0; i + 8 <= V; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), lb)), sc));
    for (; i < V; i++) x[i] = expf(x[i] - lse) * p_scale;
    x[y] -= p_scale;
}
#endif

int64_t ck_xent_forward_backward(float *losses, float *logits, const int32_t *targets,
                                 float scale, int64_t T, int64_t V) {
#if CK_X86
    if (ck_use_simd()) {
        if (T <= 0 || V <= 0) return 0;
        xent_ctx c = {losses, logits, targets, scale, V};
        ck_parallel_for(T, xent_task, &c);
        int64_t counted = 0;
        for (int64_t t = 0; t < T; t++) counted += !ignored(targets[t], V);
        return counted;
    }
#endif
    return ck_xent_forward_backward_ref(losses, logits, targets, scale, T, V);
}
