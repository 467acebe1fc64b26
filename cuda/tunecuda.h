/*
 * tunecuda.h — the C ABI of libtunecuda.so, the CUDA twin of the CPU kernel module (ckernels.h).
 *
 * Naming: every op is `tcu_<name>` where `ck_<name>` is the CPU op in Sources/CKernels/include,
 * with the SAME signature, argument order, shapes and overwrite/accumulate contract — except that
 * every array argument is a DEVICE pointer (from tcu_malloc). Ops are launched asynchronously on
 * the library's stream; a launch or argument error is recorded and reported by the next
 * tcu_sync() (CUDA errors are sticky, so the reason is never lost). Ops whose CPU twin returns a
 * value (the GEMMs' 0/-1, xent's row count, sumsq) return it the same way; those returning host
 * values (xent, sumsq) synchronize.
 *
 * Lifecycle: dlopen → tunecuda_abi_version() == TUNECUDA_ABI_VERSION → tunecuda_init(why, n) == 0
 * → ops … → tcu_sync(). The Engine refuses a library whose ABI version differs (one stderr line).
 *
 * Coverage (v2; v2 added tcu_mul_inplace and made device→device copies asynchronous): see docs/cuda.md. Weight types for the GEMMs / embedding: F32, F16, BF16, Q4_0,
 * Q4_1, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K (quantized weights are dequantized inside the GEMM tile loader;
 * the f32 matrix is never materialized). Other types return -1 and record "unsupported weight type".
 */
#ifndef TUNECUDA_H
#define TUNECUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change of a signature or contract below. Engine's CUDABackend.abiVersion must match. */
#define TUNECUDA_ABI_VERSION 2

/* ---- library & device ----------------------------------------------------------------- */

int tunecuda_abi_version(void);
/* Picks device 0 (or TUNE_CUDA_DEVICE), creates the stream. Returns 0, or nonzero with a one-line
 * reason in why[n] ("no CUDA-capable device", "CUDA driver too old for this library (…)", …). */
int tunecuda_init(char *why, size_t n);
/* "NVIDIA H100 80GB HBM3, sm_90, 79.2 GiB, driver 13.0" into buf[n] (after a successful init). */
void tunecuda_device_info(char *buf, size_t n);

/* Device memory. tcu_malloc returns NULL on failure (reason via tcu_sync). */
void *tcu_malloc(size_t bytes);
void  tcu_free(void *p);
/* kind: 0 host→device, 1 device→host (both synchronous), 2 device→device (ordered on the stream
 * with the ops, not waited for: v2). Returns 0 or -1. */
int   tcu_memcpy(void *dst, const void *src, size_t bytes, int kind);
int   tcu_memset(void *dst, int value, size_t bytes);
/* Waits for all launched ops. Returns 0, or nonzero with the first error since the last call in why[n]. */
int   tcu_sync(char *why, size_t n);

/* ---- GEMM (ck_ops.h / ck_train.h) ------------------------------------------------------ */

int tcu_matmul_forward(float *out, const float *inp, const void *w, int wtype,
                       const float *bias, int64_t T, int64_t K, int64_t N);
int tcu_matmul_backward_input(float *dinp, const float *dout, const void *w, int wtype,
                              int64_t T, int64_t K, int64_t N, int accumulate);
void tcu_matmul_backward_weight(float *dw, const float *dout, const float *inp,
                                int64_t T, int64_t K, int64_t N);
/* bf16 products, f32 accumulation, on tensor cores (WMMA 16×16×16). */
int tcu_matmul_forward_bf16(float *out, const float *inp, const void *w, int wtype,
                            const float *bias, int64_t T, int64_t K, int64_t N);
int tcu_matmul_backward_input_bf16(float *dinp, const float *dout, const void *w, int wtype,
                                   int64_t T, int64_t K, int64_t N, int accumulate);
/* dW += bf16(dY)ᵀ · bf16(X) (no CPU twin: the CPU weight-gradient GEMM is f32 only). */
void tcu_matmul_backward_weight_bf16(float *dw, const float *dout, const float *inp,
                                     int64_t T, int64_t K, int64_t N);

/* ---- ops -------------------------------------------------------------------------------- */

int  tcu_embedding_forward(float *out, const int32_t *ids, const void *table, int type, int64_t T, int64_t C);
void tcu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, float eps, int64_t T, int64_t C);
void tcu_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                          const float *weight, const float *rstd, int64_t T, int64_t C);
void tcu_rope_forward(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta);
void tcu_rope_backward(float *dx, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta);
void tcu_attention_forward(float *out, const float *q, const float *k, const float *v,
                           int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D);
void tcu_attention_forward_train(float *out, float *lse, const float *q, const float *k, const float *v,
                                 int64_t T, int64_t H, int64_t Hkv, int64_t D);
void tcu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse,
                            int64_t T, int64_t H, int64_t Hkv, int64_t D);
void tcu_swiglu_forward(float *out, const float *gate, const float *up, int64_t n);
void tcu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n);
void tcu_add_inplace(float *x, const float *y, int64_t n);
void tcu_axpy(float *x, const float *y, float s, int64_t n);
void tcu_scale(float *x, float s, int64_t n);
/* x[i] *= y[i] (v2: LoRA dropout masks). */
void tcu_mul_inplace(float *x, const float *y, int64_t n);
int64_t tcu_xent_forward_backward(float *losses, float *logits, const int32_t *targets,
                                  float scale, int64_t T, int64_t V);
void tcu_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);
double tcu_sumsq(const float *x, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
