/*
 * ck_kquant_write.h — quantizers for the GGUF types a merged model can be written in beyond
 * ck_quantize_row's (Q5_0, Q5_1, Q4_K, Q5_K, Q6_K): ggml's reference quantizers without an
 * importance matrix (quantize_row_*_ref), reproduced bit for bit, so a model tune quantizes
 * holds the same bytes llama-quantize writes for it. The K types are the llama.cpp presets'
 * (Q4_K_M, Q5_K_M, Q6_K, ...); Q5_0, Q5_1 and Q8_0 are what those presets fall back to for a
 * matrix whose row length is not a multiple of 256.
 *
 * Rows are independent (every block depends on its own 32 or 256 values only), so a caller may
 * split a tensor across threads at row (or block) boundaries and get the same bytes.
 */
#ifndef CK_KQUANT_WRITE_H
#define CK_KQUANT_WRITE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Quantize n f32 values into dst blocks of `type` (a ck_type id). Handles Q5_0, Q5_1, Q4_K,
 * Q5_K and Q6_K here and hands every other type to ck_quantize_row (F32, F16, BF16, Q4_0,
 * Q4_1, Q8_0), so one entry point covers every type the GGUF writers produce.
 * n must be a multiple of the type's block size (32, or 256 for the K types).
 * Returns 0 on success, -1 if the type is not quantizable or n does not fit its blocks. */
int ck_quantize_row_any(int type, const float *src, void *dst, int64_t n);

/* 1 if ck_quantize_row_any can produce `type`, else 0. */
int ck_type_can_quantize_any(int type);

/* The individual reference quantizers (ggml's quantize_row_<type>_ref); n as above. */
void ck_quantize_row_q5_0_ref(const float *src, void *dst, int64_t n);
void ck_quantize_row_q5_1_ref(const float *src, void *dst, int64_t n);
void ck_quantize_row_q4_K_ref(const float *src, void *dst, int64_t n);
void ck_quantize_row_q5_K_ref(const float *src, void *dst, int64_t n);
void ck_quantize_row_q6_K_ref(const float *src, void *dst, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
