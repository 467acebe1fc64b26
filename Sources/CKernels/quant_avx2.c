/*
 * quant_avx2.c — AVX2 dequantization fast paths for the hot weight types (Q4_0, Q4_1,
 * Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, BF16: every type a Q4_K_M/Q5_K_M/Q6_K GGUF mixes). Each is
 * bit-identical to its reference in quant_dequant.c: the same single-rounding int->float
 * conversions, multiplies and adds, never fused (no FMA).
 * Compiled for the baseline ISA; only these functions carry target("avx2"), and callers
 * check ck_quant_have_avx2() (cpuid) before calling them.
 */
#include "quant_blocks.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>

#define CK_AVX2 __attribute__((target("avx2")))

int ck_quant_have_avx2(void) { return __builtin_cpu_supports("avx2"); }

// MARK: - helpers

/* 16 packed bytes -> 32 nibble values (low nibbles first, then high), as int8 lanes. */
CK_AVX2 static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m128i mask = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_and_si128(raw, mask);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    return _mm256_set_m128i(hi, lo);
}

/* Store 32 int8 lanes times d (+ m if add) as floats. */
CK_AVX2 static inline void store_scaled(__m256i q8, __m256 d, __m256 m, int add, float *y) {
    const __m128i lo = _mm256_castsi256_si128(q8), hi = _mm256_extracti128_si256(q8, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++) {
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k])), d);
        if (add) v = _mm256_add_ps(v, m);
        _mm256_storeu_ps(y + 8 * k, v);
    }
}

// MARK: - legacy blocks

CK_AVX2 void ck_deq_q4_0_avx2(const void *src, float *y, int64_t nb) {
    const block_q4_0 *b = src;
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < nb; i++, y += QK4_0) {
        const __m256 d = _mm256_set1_ps(ck_fp16_to_fp32(b[i].d));
        const __m256i q = _mm256_sub_epi8(unpack_nibbles(b[i].qs), eight);
        store_scaled(q, d, d, 0, y);
    }
}

CK_AVX2 void ck_deq_q4_1_avx2(const void *src, float *y, int64_t nb) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK4_1) {
        const __m256 d = _mm256_set1_ps(ck_fp16_to_fp32(b[i].d));
        const __m256 m = _mm256_set1_ps(ck_fp16_to_fp32(b[i].m));
        store_scaled(unpack_nibbles(b[i].qs), d, m, 1, y);
    }
}

CK_AVX2 void ck_deq_q8_0_avx2(const void *src, float *y, int64_t nb) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK8_0) {
        const __m256 d = _mm256_set1_ps(ck_fp16_to_fp32(b[i].d));
        const __m256i q = _mm256_loadu_si256((const __m256i *)b[i].qs);
        store_scaled(q, d, d, 0, y);
    }
}

// MARK: - Q4_K

CK_AVX2 void ck_deq_q4_K_avx2(const void *src, float *y, int64_t nb) {
    const block_q4_K *b = src;
    const __m256i mask = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_fp16_to_fp32(b[i].d), min = ck_fp16_to_fp32(b[i].dmin);
        const uint8_t *s = b[i].scales, *q = b[i].qs;
        for (int j = 0; j < 4; j++, q += 32, y += 64) {
            // scales/mins of sub-blocks 2j and 2j+1 (get_scale_min_k4)
            uint8_t sc[2], mn[2];
            for (int h = 0; h < 2; h++) {
                const int k = 2 * j + h;
                if (k < 4) { sc[h] = s[k] & 63; mn[h] = s[k + 4] & 63; }
                else { sc[h] = (s[k + 4] & 0xF) | ((s[k - 4] >> 6) << 4); mn[h] = (s[k + 4] >> 4) | ((s[k] >> 6) << 4); }
            }
            const __m256i raw = _mm256_loadu_si256((const __m256i *)q);
            const __m256i halves[2] = {_mm256_and_si256(raw, mask), _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask)};
            for (int h = 0; h < 2; h++) {
                const __m256 dv = _mm256_set1_ps(d * sc[h]), mv = _mm256_set1_ps(min * mn[h]);
                const __m128i lo = _mm256_castsi256_si128(halves[h]), hi = _mm256_extracti128_si256(halves[h], 1);
                const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
                for (int k = 0; k < 4; k++) {
                    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
                    _mm256_storeu_ps(y + 32 * h + 8 * k, _mm256_sub_ps(_mm256_mul_ps(dv, v), mv));
                }
            }
        }
    }
}

// MARK: - Q5_0

/* 32 lanes of 0x10 where bit e of the little-endian qh is set (lane e), else 0 (ggml's
 * bytes_from_bits_32, masked to the 5th bit). */
CK_AVX2 static inline __m256i high_bits_32(const uint8_t *qh4) {
    uint32_t x;
    memcpy(&x, qh4, 4);
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

CK_AVX2 void ck_deq_q5_0_avx2(const void *src, float *y, int64_t nb) {
    const block_q5_0 *b = src;
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; i++, y += QK5_0) {
        const __m256 d = _mm256_set1_ps(ck_fp16_to_fp32(b[i].d));
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(b[i].qs), high_bits_32(b[i].qh)), sixteen);
        store_scaled(q, d, d, 0, y); // (float)q * d, as the reference's x0 * d
    }
}

// MARK: - Q5_K

/* Scale and min of sub-block k (0..7) of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4). */
static inline void scale_min_k4(int k, const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    if (k < 4) { *sc = s[k] & 63; *mn = s[k + 4] & 63; }
    else { *sc = (s[k + 4] & 0xF) | ((s[k - 4] >> 6) << 4); *mn = (s[k + 4] >> 4) | ((s[k] >> 6) << 4); }
}

/* y[0..31] = dv * (float)q - mv for 32 unsigned byte lanes q (the reference's d1 * q - m1, unfused). */
CK_AVX2 static inline void store_affine_u8(__m256i q, __m256 dv, __m256 mv, float *y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++) {
        const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
        _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(dv, v), mv));
    }
}

CK_AVX2 void ck_deq_q5_K_avx2(const void *src, float *y, int64_t nb) {
    const block_q5_K *b = src;
    const __m256i mask = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_fp16_to_fp32(b[i].d), min = ck_fp16_to_fp32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        const __m256i qh = _mm256_loadu_si256((const __m256i *)b[i].qh);
        for (int j = 0; j < 4; j++, q += 32, y += 64) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)q);
            for (int h = 0; h < 2; h++) {
                uint8_t sc, mn;
                scale_min_k4(2 * j + h, b[i].scales, &sc, &mn);
                // bit (2j + h) of each qh byte -> 16 (16-bit shifts: bit 0 of each byte comes from the same byte)
                const __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + h), one), 4);
                const __m256i nib = _mm256_and_si256(h ? _mm256_srli_epi16(raw, 4) : raw, mask);
                store_affine_u8(_mm256_add_epi8(nib, hb), _mm256_set1_ps(d * sc), _mm256_set1_ps(min * mn), y + 32 * h);
            }
        }
    }
}

// MARK: - Q6_K

/* y[0..31] = (d * sc[0]) * (float)q for lanes 0..15, (d * sc[1]) * (float)q for lanes 16..31
 * (the reference's d * sc[is] * q, left to right). */
CK_AVX2 static inline void store_q6(__m256i q, float d, const int8_t *sc, float *y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    const __m256 d0 = _mm256_set1_ps(d * sc[0]), d1 = _mm256_set1_ps(d * sc[1]);
    for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(k < 2 ? d0 : d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k]))));
}

CK_AVX2 void ck_deq_q6_K_avx2(const void *src, float *y, int64_t nb) {
    const block_q6_K *b = src;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_fp16_to_fp32(b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            // bits 2s..2s+1 of each qh byte, moved to bits 4..5 (16-bit shifts, masked per byte)
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(h, m2), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4);
            const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4);
            const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4);
            const __m256i q1 = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l0, m4), h0), off);
            const __m256i q2 = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l1, m4), h1), off);
            const __m256i q3 = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), h2), off);
            const __m256i q4 = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), h3), off);
            store_q6(q1, d, sc + 0, y + 0);
            store_q6(q2, d, sc + 2, y + 32);
            store_q6(q3, d, sc + 4, y + 64);
            store_q6(q4, d, sc + 6, y + 96);
        }
    }
}

// MARK: - BF16

CK_AVX2 void ck_deq_bf16_avx2(const void *src, float *y, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(p + 2 * i));
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    if (i < n) ck_deq_bf16_ref(p + 2 * i, y + i, n - i);
}

#else // not x86_64: no fast paths; the dispatcher never calls these.

int ck_quant_have_avx2(void) { return 0; }
void ck_deq_q4_0_avx2(const void *src, float *y, int64_t nb) { ck_deq_q4_0_ref(src, y, nb); }
void ck_deq_q4_1_avx2(const void *src, float *y, int64_t nb) { ck_deq_q4_1_ref(src, y, nb); }
void ck_deq_q8_0_avx2(const void *src, float *y, int64_t nb) { ck_deq_q8_0_ref(src, y, nb); }
void ck_deq_q4_K_avx2(const void *src, float *y, int64_t nb) { ck_deq_q4_K_ref(src, y, nb); }
void ck_deq_q5_0_avx2(const void *src, float *y, int64_t nb) { ck_deq_q5_0_ref(src, y, nb); }
void ck_deq_q5_K_avx2(const void *src, float *y, int64_t nb) { ck_deq_q5_K_ref(src, y, nb); }
void ck_deq_q6_K_avx2(const void *src, float *y, int64_t nb) { ck_deq_q6_K_ref(src, y, nb); }
void ck_deq_bf16_avx2(const void *src, float *y, int64_t n) { ck_deq_bf16_ref(src, y, n); }

#endif
