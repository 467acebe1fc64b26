/*
 * gemv_unpack.h — private: the quant unpacking shared by the two decode paths (gemv_q.c, exact
 * float; gemv_q8.c, int8) for Q5_0 and the K-quants. Each helper yields the quants of one
 * 32-element unit as 32 bytes in element order (the order of ck_deq_*_ref's output), before any
 * offset: Q5_0 0..31, Q4_K 0..15, Q5_K 0..31, Q6_K 0..63. The scale helpers are scalar.
 */
#ifndef CK_GEMV_UNPACK_H
#define CK_GEMV_UNPACK_H

#include "ck_internal.h"
#include "quant_blocks.h"
#include <string.h>

/* 6-bit scales and mins of a Q4_K/Q5_K super-block: sc[j], m[j] as get_scale_min_k4(j) gives them. */
static inline void ck_k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t m[8]) {
    uint32_t u[3];
    memcpy(u, q, 12);
    const uint32_t s[2] = {u[0] & 0x3f3f3f3fu, (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4)};
    const uint32_t n[2] = {u[1] & 0x3f3f3f3fu, ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4)};
    memcpy(sc, s, 8);
    memcpy(m, n, 8);
}

/* Scalar quant j (0..31) of unit u (0..7) of a K-quant super-block, as ck_deq_*_ref reads it:
 * Q4_K/Q5_K unsigned (0..15 / 0..31, before d·sc and − dmin·m), Q6_K unsigned 0..63 (before − 32). */
static inline int ck_kq_quant(int wtype, const void *blk, int u, int j) {
    if (wtype == CK_TYPE_Q6_K) {
        const block_q6_K *b = blk;
        const int n = u / 4, k = u % 4;
        const uint8_t l = b->ql[64 * n + 32 * (k & 1) + j], h = b->qh[32 * n + j];
        return ((k < 2 ? l & 0xF : l >> 4) | (((h >> (2 * k)) & 3) << 4));
    }
    const uint8_t *qs = wtype == CK_TYPE_Q4_K ? ((const block_q4_K *)blk)->qs : ((const block_q5_K *)blk)->qs;
    const uint8_t l = qs[32 * (u / 2) + j];
    int q = u & 1 ? l >> 4 : l & 0xF;
    if (wtype == CK_TYPE_Q5_K) q += (((const block_q5_K *)blk)->qh[j] >> u) & 1 ? 16 : 0;
    return q;
}

/* Scalar quant j of a Q5_0 block, 0..31 (before − 16). */
static inline int ck_q5_0_quant(const block_q5_0 *b, int j) {
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    const uint8_t l = b->qs[j & 15];
    return (j < 16 ? l & 0xF : l >> 4) | (int)(((qh >> j) & 1) << 4);
}

#if CK_X86
#define CK_UNPACK_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

/* Byte j = 0x10 where bit j of qh is set, else 0. */
CK_UNPACK_INLINE __m256i ck_hbits32(uint32_t qh) {
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), sel);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

/* Q5_0 block -> 32 bytes 0..31 (low nibbles = elements 0..15, high = 16..31, bit 4 from qh). */
CK_UNPACK_INLINE __m256i ck_q5_0_bytes(const block_q5_0 *b) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)b->qs);
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    return _mm256_or_si256(nib, ck_hbits32(qh));
}

/* Unit u (0..7) of a Q4_K (qh NULL) or Q5_K super-block -> 32 bytes 0..15 / 0..31: the low (u even)
 * or high (u odd) nibbles of qs[32·(u/2) ..], plus 16 where bit u of qh[j] is set. */
CK_UNPACK_INLINE __m256i ck_k4_bytes(const uint8_t *qs, const uint8_t *qh, int u) {
    const __m256i mask = _mm256_set1_epi8(0x0f);
    const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * (u >> 1)));
    __m256i q = _mm256_and_si256(u & 1 ? _mm256_srli_epi16(raw, 4) : raw, mask);
    if (qh) {
        const __m256i h = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)qh), u), _mm256_set1_epi8(1));
        q = _mm256_or_si256(q, _mm256_slli_epi16(h, 4));
    }
    return q;
}

/* Unit u (0..7) of a Q6_K super-block -> 32 bytes 0..63: 128-element half n = u/4, k = u%4 takes
 * the low (k < 2) or high nibbles of ql[64n + 32·(k&1) ..] and bits 2k, 2k+1 of qh[32n ..]. */
CK_UNPACK_INLINE __m256i ck_q6_K_bytes(const block_q6_K *b, int u) {
    const int n = u >> 2, k = u & 3;
    const __m256i mask = _mm256_set1_epi8(0x0f);
    const __m256i l = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * n + 32 * (k & 1)));
    const __m256i h = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * n));
    const __m256i lo = _mm256_and_si256(k < 2 ? l : _mm256_srli_epi16(l, 4), mask);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(h, 2 * k), _mm256_set1_epi8(3));
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
}
#endif

#endif
