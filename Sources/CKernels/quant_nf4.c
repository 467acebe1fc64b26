/*
 * quant_nf4.c — NF4 ("4-bit NormalFloat", QLoRA / bitsandbytes) blocks: 64 weights share one
 * f32 absmax; each weight is a 4-bit index into 16 fixed levels in [-1, 1] (the quantiles of a
 * standard normal, rescaled), x = level[q] * absmax. tune-private type (CK_TYPE_NF4): it exists
 * for QLoRA over a float base model and is never written into a GGUF file.
 *
 * Semantics follow bitsandbytes' blockwise NF4 (blocksize 64, no double quantization):
 * quantize = nearest level of x * (1 / absmax) (bitsandbytes' decision tree compares against
 * the midpoints between neighbouring levels, `>` taking the upper one); nibble order: element
 * 2i is the HIGH nibble of qs[i], element 2i+1 the LOW nibble.
 * The AVX2 dequantizer is bit-identical to the reference (one multiply per element).
 */
#include "quant_blocks.h"
#include <math.h>

#pragma STDC FP_CONTRACT OFF

/* bitsandbytes' NF4 code book (float32). */
static const float NF4_LEVELS[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

/* The decision thresholds of bitsandbytes' dQuantizeNF4 (midpoints of neighbouring levels). */
static const float NF4_MIDPOINTS[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
};

const float *ck_nf4_levels(void) { return NF4_LEVELS; }

static inline uint8_t nf4_code(float x) {
    uint8_t q = 0;
    while (q < 15 && x > NF4_MIDPOINTS[q]) q++;
    return q;
}

void ck_deq_nf4_ref(const void *src, float *y, int64_t nb) {
    const block_nf4 *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK_NF4) {
        const float d = b[i].d;
        for (int j = 0; j < QK_NF4 / 2; j++) {
            y[2 * j] = NF4_LEVELS[b[i].qs[j] >> 4] * d;
            y[2 * j + 1] = NF4_LEVELS[b[i].qs[j] & 15] * d;
        }
    }
}

void ck_quant_nf4(const float *x, void *dst, int64_t nb) {
    block_nf4 *b = dst;
    for (int64_t i = 0; i < nb; i++, x += QK_NF4) {
        float amax = 0.0f;
        for (int j = 0; j < QK_NF4; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float inv = amax > 0.0f ? 1.0f / amax : 0.0f;
        b[i].d = amax;
        for (int j = 0; j < QK_NF4 / 2; j++)
            b[i].qs[j] = (uint8_t)(nf4_code(x[2 * j] * inv) << 4 | nf4_code(x[2 * j + 1] * inv));
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) void ck_deq_nf4_avx2(const void *src, float *y, int64_t nb) {
    const block_nf4 *b = src;
    const __m256 lo_levels = _mm256_loadu_ps(NF4_LEVELS), hi_levels = _mm256_loadu_ps(NF4_LEVELS + 8);
    const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0), fifteen = _mm256_set1_epi32(15);
    for (int64_t i = 0; i < nb; i++, y += QK_NF4) {
        const __m256 d = _mm256_set1_ps(b[i].d);
        for (int j = 0; j < QK_NF4 / 2; j += 4) { // 4 bytes -> 8 elements
            int32_t four;
            __builtin_memcpy(&four, b[i].qs + j, 4);
            const __m128i bytes = _mm_cvtsi32_si128(four);
            const __m256i dup = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(bytes, bytes)); // b0 b0 b1 b1 …
            const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(dup, shifts), fifteen);
            const __m256 lo = _mm256_permutevar8x32_ps(lo_levels, q), hi = _mm256_permutevar8x32_ps(hi_levels, q);
            const __m256 upper = _mm256_castsi256_ps(_mm256_slli_epi32(q, 28)); // bit 3 -> sign bit
            _mm256_storeu_ps(y + 2 * j, _mm256_mul_ps(_mm256_blendv_ps(lo, hi, upper), d));
        }
    }
}
#else
void ck_deq_nf4_avx2(const void *src, float *y, int64_t nb) { ck_deq_nf4_ref(src, y, nb); }
#endif
