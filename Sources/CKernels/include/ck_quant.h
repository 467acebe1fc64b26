/*
 * ck_quant.h — ggml-compatible tensor types: block layouts, dequantization, quantization.
 *
 * Block layouts are byte-identical to ggml (see quant_blocks.h for the structs with
 * _Static_assert sizes and the nibble order). A row of n elements of type t is
 * n / ck_type_block_size(t) consecutive blocks; n must be a multiple of the block size.
 *
 * Dequantization: all types below (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q8_K),
 * bit-identical to ggml / gguf-py, plus tune's NF4. ck_dequantize_row uses AVX2 for Q4_0, Q4_1,
 * Q8_0, Q4_K, BF16 and NF4 when the CPU has it (cpuid at run time; not when ck_isa_active() reports the
 * reference ISA), and is bit-identical to ck_dequantize_row_ref.
 */
#ifndef CK_QUANT_H
#define CK_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ggml type ids (enum ggml_type). Only these are understood by the kernels
 * (Q8_K: dequantization only, f32 scale + int8 values). */
typedef enum {
    CK_TYPE_F32  = 0,
    CK_TYPE_F16  = 1,
    CK_TYPE_Q4_0 = 2,
    CK_TYPE_Q4_1 = 3,
    CK_TYPE_Q5_0 = 6,
    CK_TYPE_Q5_1 = 7,
    CK_TYPE_Q8_0 = 8,
    CK_TYPE_Q2_K = 10,
    CK_TYPE_Q3_K = 11,
    CK_TYPE_Q4_K = 12,
    CK_TYPE_Q5_K = 13,
    CK_TYPE_Q6_K = 14,
    CK_TYPE_Q8_K = 15,
    CK_TYPE_BF16 = 30,
    /* tune-private (not a ggml type, never written to GGUF): QLoRA's 4-bit NormalFloat,
     * bitsandbytes' blockwise NF4 — 64 weights per 36-byte block {f32 absmax; 32 bytes of
     * codes}, x = level[q] * absmax, element 2i in the HIGH nibble of byte i. */
    CK_TYPE_NF4  = 1024,
} ck_type;

/* Elements per block (1 for float types); 0 if the type is unknown to the kernels. */
int64_t ck_type_block_size(int type);
/* Bytes per block; 0 if unknown. */
int64_t ck_type_block_bytes(int type);
/* Bytes in a row of n elements (n a multiple of the block size); 0 if unknown. */
int64_t ck_type_row_bytes(int type, int64_t n);
/* Short ggml name ("q4_1"), or "unknown". */
const char *ck_type_name(int type);
/* 1 if dequantization of `type` is implemented, else 0. */
int ck_type_can_dequantize(int type);

/* Dequantize n elements of `type` from src into dst[n] (f32).
 * Returns 0 on success, -1 if the type is unsupported or n is not a multiple of the block size. */
int ck_dequantize_row(int type, const void *src, float *dst, int64_t n);
int ck_dequantize_row_ref(int type, const void *src, float *dst, int64_t n);

/* Quantize n f32 values into dst blocks of `type` (ggml's reference rounding, so the bytes
 * equal ggml's quantize_row_*_ref). Supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0, and NF4
 * (bitsandbytes' rounding: nearest level of x * (1 / absmax)).
 * Returns 0 on success, -1 if unsupported. */
int ck_quantize_row(int type, const float *src, void *dst, int64_t n);

/* The 16 NF4 levels (bitsandbytes' code book, ascending, float32). */
const float *ck_nf4_levels(void);

/* Scalar half/bfloat16 conversions (round-to-nearest-even), ggml-compatible. */
float    ck_fp16_to_fp32(uint16_t h);
uint16_t ck_fp32_to_fp16(float f);
float    ck_bf16_to_fp32(uint16_t h);
uint16_t ck_fp32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
