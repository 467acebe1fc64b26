/*
 * rope.c — rotary position embedding, HF "rotate_half" (NeoX) convention, in place.
 * Angles follow HF transformers' float32 computation exactly:
 *   inv_freq[i] = 1 / theta^((2i)/D)   (exponent, power and reciprocal in float32)
 *   angle       = (float)pos * inv_freq[i]   (float32 product)
 *   cos, sin    = correctly rounded float32 cos/sin of that angle
 *   x1' = x1*cos - x2*sin,  x2' = x2*cos + x1*sin   (no FMA contraction, as torch)
 * The fast path precomputes cos/sin per position and rotates all heads with AVX2,
 * threaded over positions; it is bit-identical to the reference.
 */
#include "ck_internal.h"
#include <math.h>

#pragma STDC FP_CONTRACT OFF

static inline float inv_freq(int64_t i, int64_t D, float theta) {
    const float e = (float)(2 * i) / (float)D;
    return 1.0f / powf(theta, e);
}

static inline void rope_cs(int32_t pos, float f, float *c, float *s) {
    const float a = (float)pos * f;
    *c = (float)cos((double)a);
    *s = (float)sin((double)a);
}

// ---- reference ---------------------------------------------------------------------

/* x [T,H,D] in place; pos [T]. */
void ck_rope_forward_ref(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta) {
    const int64_t half = D / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            float *v = x + (t * H + h) * D;
            for (int64_t i = 0; i < half; i++) {
                float c, s;
                rope_cs(pos[t], inv_freq(i, D, theta), &c, &s);
                const float x1 = v[i], x2 = v[i + half];
                const float a = x1 * c, b = x2 * s, p = x2 * c, q = x1 * s;
                v[i] = a - b;
                v[i + half] = p + q;
            }
        }
}

// ---- fast ----------------------------------------------------------------------------

typedef struct {
    float *x;
    const int32_t *pos;
    const float *freq; // [D/2]
    int64_t T, H, D;
    float theta;
} rope_ctx;

#if CK_X86
CK_AVX2 static void rope_rotate(float *v, const float *cs, const float *sn, int64_t half) {
    int64_t i = 0;
    for (; i + 8 <= half; i += 8) {
        const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
        const __m256 x1 = _mm256_loadu_ps(v + i), x2 = _mm256_loadu_ps(v + i + half);
        _mm256_storeu_ps(v + i, _mm256_sub_ps(_mm256_mul_ps(x1, c), _mm256_mul_ps(x2, s)));
        _mm256_storeu_ps(v + i + half, _mm256_add_ps(_mm256_mul_ps(x2, c), _mm256_mul_ps(x1, s)));
    }
    for (; i < half; i++) {
        const float x1 = v[i], x2 = v[i + half];
        const float a = x1 * cs[i], b = x2 * sn[i], p = x2 * cs[i], q = x1 * sn[i];
        v[i] = a - b;
        v[i + half] = p + q;
    }
}

static void rope_task(void *vctx, int64_t t) {
    const rope_ctx *c = vctx;
    const int64_t half = c->D / 2;
    float *tab = ck_scratch((size_t)(2 * half));
    if (!tab) { // allocation failure: fall back to the reference for this position
        ck_rope_forward_ref(c->x + t * c->H * c->D, c->pos + t, 1, c->H, c->D, c->theta);
        return;
    }
    float *cs = tab, *sn = tab + half;
    for (int64_t i = 0; i < half; i++) {
        const float a = (float)c->pos[t] * c->freq[i];
        cs[i] = (float)cos((double)a);
        sn[i] = (float)sin((double)a);
    }
    for (int64_t h = 0; h < c->H; h++) rope_rotate(c->x + (t * c->H + h) * c->D, cs, sn, half);
}
#endif

#if CK_X86
/* rope_task for explicit frequencies (c->theta unused): the same rotation; on allocation failure
 * the position falls back to the explicit-frequency reference. */
static void rope_freq_task(void *vctx, int64_t t) {
    const rope_ctx *c = vctx;
    const int64_t half = c->D / 2;
    float *tab = ck_scratch((size_t)(2 * half));
    if (!tab) {
        ck_rope_forward_freq_ref(c->x + t * c->H * c->D, c->pos + t, 1, c->H, c->D, c->freq);
        return;
    }
    float *cs = tab, *sn = tab + half;
    for (int64_t i = 0; i < half; i++) rope_cs(c->pos[t], c->freq[i], &cs[i], &sn[i]);
    for (int64_t h = 0; h < c->H; h++) rope_rotate(c->x + (t * c->H + h) * c->D, cs, sn, half);
}
#endif

void ck_rope_forward(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta) {
#if CK_X86
    if (ck_use_simd() && T > 0 && H > 0 && D >= 2) {
        const int64_t half = D / 2;
        float fbuf[512];
        float *freq = half <= 512 ? fbuf : NULL;
        if (freq) {
            for (int64_t i = 0; i < half; i++) freq[i] = inv_freq(i, D, theta);
            rope_ctx c = {x, pos, freq, T, H, D, theta};
            ck_parallel_for(T, rope_task, &c);
            return;
        }
    }
#endif
    ck_rope_forward_ref(x, pos, T, H, D, theta);
}

// ---- explicit frequencies -----------------------------------------------------------------

void ck_rope_inv_freq(float *freq, int64_t D, float theta) {
    for (int64_t i = 0; i < D / 2; i++) freq[i] = inv_freq(i, D, theta);
}

void ck_rope_forward_freq_ref(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, const float *freq) {
    const int64_t half = D / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            float *v = x + (t * H + h) * D;
            for (int64_t i = 0; i < half; i++) {
                float c, s;
                rope_cs(pos[t], freq[i], &c, &s);
                const float x1 = v[i], x2 = v[i + half];
                const float a = x1 * c, b = x2 * s, p = x2 * c, q = x1 * s;
                v[i] = a - b;
                v[i + half] = p + q;
            }
        }
}

void ck_rope_forward_freq(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, const float *freq) {
#if CK_X86
    if (ck_use_simd() && T > 0 && H > 0 && D >= 2) {
        rope_ctx c = {x, pos, freq, T, H, D, 0.0f};
        ck_parallel_for(T, rope_freq_task, &c);
        return;
    }
#endif
    ck_rope_forward_freq_ref(x, pos, T, H, D, freq);
}

void ck_rope_table_freq(float *tab, int64_t P, int64_t D, const float *freq) {
    const int64_t half = D / 2;
    for (int64_t i = 0; i < half; i++)
        for (int64_t p = 0; p < P; p++) rope_cs((int32_t)p, freq[i], &tab[p * D + i], &tab[p * D + half + i]);
}

// ---- cached angles ------------------------------------------------------------------------
// A table of cos/sin per (position, pair) built once per (positions, D, theta) by the caller
// (the training graph keeps one per model) replaces the per-call cos/sin: same float32
// angles and correctly rounded cos/sin, so results are bit-identical to ck_rope_forward.

void ck_rope_table(float *tab, int64_t P, int64_t D, float theta) {
    float fbuf[512];
    if (D / 2 <= 512) { // θ's frequencies through the explicit-frequency table (same values, same bits)
        ck_rope_inv_freq(fbuf, D, theta);
        ck_rope_table_freq(tab, P, D, fbuf);
        return;
    }
    const int64_t half = D / 2;
    for (int64_t i = 0; i < half; i++) {
        const float f = inv_freq(i, D, theta);
        for (int64_t p = 0; p < P; p++) rope_cs((int32_t)p, f, &tab[p * D + i], &tab[p * D + half + i]);
    }
}

void ck_rope_forward_cached_ref(float *x, const int32_t *pos, const float *tab, int64_t T, int64_t H, int64_t D) {
    const int64_t half = D / 2;
    for (int64_t t = 0; t < T; t++) {
        const float *cs = tab + (int64_t)pos[t] * D, *sn = cs + half;
        for (int64_t h = 0; h < H; h++) {
            float *v = x + (t * H + h) * D;
            for (int64_t i = 0; i < half; i++) {
                const float x1 = v[i], x2 = v[i + half];
                const float a = x1 * cs[i], b = x2 * sn[i], p = x2 * cs[i], q = x1 * sn[i];
                v[i] = a - b;
                v[i + half] = p + q;
            }
        }
    }
}

typedef struct { float *x; const int32_t *pos; const float *tab; int64_t H, D; } ropec_ctx;

#if CK_X86
static void ropec_task(void *vctx, int64_t t) {
    const ropec_ctx *c = vctx;
    const float *cs = c->tab + (int64_t)c->pos[t] * c->D;
    for (int64_t h = 0; h < c->H; h++) rope_rotate(c->x + (t * c->H + h) * c->D, cs, cs + c->D / 2, c->D / 2);
}
#endif

void ck_rope_forward_cached(float *x, const int32_t *pos, const float *tab, int64_t T, int64_t H, int64_t D) {
#if CK_X86
    if (ck_use_simd() && T > 0 && H > 0 && D >= 2) {
        ropec_ctx c = {x, pos, tab, H, D};
        ck_parallel_for(T, ropec_task, &c);
        return;
    }
#endif
    ck_rope_forward_cached_ref(x, pos, tab, T, H, D);
}
