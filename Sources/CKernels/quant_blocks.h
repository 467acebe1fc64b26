/*
 * quant_blocks.h — private: ggml block structs (byte-identical, sizes asserted) and the
 * per-type row functions shared by quant.c (traits + dispatch), quant_dequant.c (reference
 * dequantization) and quant_avx2.c (fast paths). Not part of the public C ABI.
 */
#ifndef CK_QUANT_BLOCKS_H
#define CK_QUANT_BLOCKS_H

#include "ck_quant.h"

// ---- legacy 32-element blocks ------------------------------------------------
// Nibble order (q4_0, q4_1, q5_0, q5_1): element j (j < 16) is the LOW nibble of qs[j],
// element j+16 the HIGH nibble of qs[j]. For q5_*, bit 4 of element j is bit j of the
// little-endian uint32 qh.

#define QK4_0 32
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;                  // x = (q - 8) * d
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");
#define QK4_1 32
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;              // x = q * d + m
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must be 20 bytes");
#define QK5_0 32
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;   // x = (q - 16) * d
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 must be 22 bytes");
#define QK5_1 32
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1; // x = q * d + m
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 must be 24 bytes");
#define QK8_0 32
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;                       // x = q * d
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");

// ---- NF4 (tune-private, quant_nf4.c) ------------------------------------------------
// 64 weights, f32 absmax d, x = NF4_LEVELS[q] * d; element 2i is the HIGH nibble of qs[i].

#define QK_NF4 64
typedef struct { float d; uint8_t qs[QK_NF4 / 2]; } block_nf4;
_Static_assert(sizeof(block_nf4) == 36, "block_nf4 must be 36 bytes");

// ---- k-quants: 256-element super-blocks ---------------------------------------
// Q4_K/Q5_K: 8 sub-blocks of 32 with 6-bit scale and min packed in scales[12]
// (see get_scale_min_k4); each 64-element chunk takes the low nibbles of 32 qs bytes
// (first 32 values) then the high nibbles (next 32). Q6_K: 16 sub-blocks of 16 with
// int8 scales. Q2_K/Q3_K: 16 sub-blocks of 16.

#define QK_K 256
#define K_SCALE_SIZE 12
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; } block_q2_K;
_Static_assert(sizeof(block_q2_K) == 84, "block_q2_K must be 84 bytes");
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; } block_q3_K;
_Static_assert(sizeof(block_q3_K) == 110, "block_q3_K must be 110 bytes");
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K must be 144 bytes");
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K must be 176 bytes");
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K;
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K must be 210 bytes");
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K must be 292 bytes");

// ---- row functions -------------------------------------------------------------
// `nb` is the number of blocks (elements for float types). Fast variants must be
// bit-identical to the reference ones.

typedef void (*ck_deq_fn)(const void *src, float *dst, int64_t nb);
typedef void (*ck_quant_fn)(const float *src, void *dst, int64_t nb);

void ck_deq_f32_ref(const void *src, float *dst, int64_t nb);
void ck_deq_f16_ref(const void *src, float *dst, int64_t nb);
void ck_deq_bf16_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q4_0_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q4_1_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q5_0_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q5_1_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q8_0_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q2_K_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q3_K_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q4_K_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q5_K_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q6_K_ref(const void *src, float *dst, int64_t nb);
void ck_deq_q8_K_ref(const void *src, float *dst, int64_t nb);
void ck_deq_nf4_ref(const void *src, float *dst, int64_t nb);
void ck_quant_nf4(const float *src, void *dst, int64_t nb);

/* AVX2 fast paths (quant_avx2.c). Callers check ck_quant_have_avx2() first; on other
 * architectures it returns 0 and the fast functions fall back to the reference ones. */
int  ck_quant_have_avx2(void);
void ck_deq_q4_0_avx2(const void *src, float *dst, int64_t nb);
void ck_deq_q4_1_avx2(const void *src, float *dst, int64_t nb);
void ck_deq_q8_0_avx2(const void *src, float *dst, int64_t nb);
void ck_deq_q4_K_avx2(const void *src, float *dst, int64_t nb);
void ck_deq_q5_0_avx2(const void *src, float *dst, int64_t nb);
void ck_deq_q5_K_avx2(const void *src, float *dst, int64_t nb);
void ck_deq_q6_K_avx2(const void *src, float *dst, int64_t nb);
void ck_deq_bf16_avx2(const void *src, float *dst, int64_t nb);
void ck_deq_nf4_avx2(const void *src, float *dst, int64_t nb);

#endif
