/*
 * ck_ops.h — model ops, threading and ISA dispatch.
 *
 * Forward ops needed by Llama inference. Backward ops arrive with training (issue 2/3)
 * and follow the same conventions (see ckernels.h).
 */
#ifndef CK_OPS_H
#define CK_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dispatch & threads ------------------------------------------------ */

typedef enum { CK_ISA_REF = 0, CK_ISA_AVX2 = 1, CK_ISA_AVX512 = 2 } ck_isa;

/* Best ISA this CPU supports (cpuid), ignoring any forcing. */
int ck_isa_detected(void);
/* ISA used by dispatching entry points now. Initially: TUNE_KERNELS env (ref|avx2|avx512)
 * if set and supported (else a one-line stderr warning), otherwise the best ISA the CPU
 * supports. avx512 (avx512f/bw/vl/dq) has its own kernels for the f32 GEMMs (forward,
 * backward input, backward weight, packed forward; with a small-N path for N or K <= 16),
 * the training attention (forward_train, backward), the inference attention
 * (ck_attention_forward) and the fused small-T quantized GEMV (T <= 8, Q4_0/Q4_1/Q8_0/Q5_0/Q4_K/Q5_K/Q6_K);
 * every other op runs its AVX2 kernel under avx512. The bf16-product GEMMs (ck_train.h)
 * additionally need avx512_bf16. */
int ck_isa_active(void);
/* Force an ISA. Returns 0, or -1 if the CPU does not support it (nothing changes). */
int ck_set_isa(int isa);
const char *ck_isa_name(int isa);

/* Worker threads used by the kernels (>=1). Initially TUNE_THREADS env, else all cores. */
void ck_set_threads(int n);
int  ck_get_threads(void);

/* ---- GEMM ---------------------------------------------------------------- */

/* out = inp · Wᵀ (+ bias)
 *   out  [T, N]  f32, overwritten
 *   inp  [T, K]  f32
 *   w    [N, K]  rows of `wtype` (any type with ck_type_can_dequantize); each row is
 *                ck_type_row_bytes(wtype, K) bytes; K a multiple of the block size
 *   bias [N] or NULL
 * Quantized weights are dequantized tile by tile inside the kernel; the full f32
 * matrix is never materialized. For T <= 8 with Q4_0/Q4_1/Q8_0/Q5_0/Q4_K/Q5_K/Q6_K weights the blocks are
 * expanded in registers and FMA'd against inp directly (gemv_q.c; TUNE_GEMV=0 disables
 * this, for benchmarking only). T == 1 goes to the int8 path (ck_gemv_q8) instead while the
 * calling thread has ck_set_fast_decode(1). Returns 0, or -1 on unsupported type / bad K. */
int ck_matmul_forward(float *out, const float *inp, const void *w, int wtype,
                      const float *bias, int64_t T, int64_t K, int64_t N);
int ck_matmul_forward_ref(float *out, const float *inp, const void *w, int wtype,
                          const float *bias, int64_t T, int64_t K, int64_t N);

/* Packed weights, for one W used by many forward calls (the training loss runs the frozen LM head
 * over every chunk of rows): W dequantized and transposed once into f32 panels
 * [ceil(N/32)][K][32] (columns past N zero), so each call only runs the GEMM.
 * ck_matmul_packed_size: floats the panels need (0 for bad shapes).
 * ck_matmul_pack: packed (ck_matmul_packed_size floats) from w [N, K] rows of wtype; 0 or -1.
 * ck_matmul_forward_packed: out [T, N] = inp [T, K] · Wᵀ (+ bias [N] or NULL); under avx512
 * bit-identical to ck_matmul_forward on the same W; 0 or -1 (bad shape). */
int64_t ck_matmul_packed_size(int64_t K, int64_t N);
int ck_matmul_pack(float *packed, const void *w, int wtype, int64_t K, int64_t N);
/* 1 when ck_matmul_forward runs its tile path for these shapes and the active kernels (the path
 * ck_matmul_forward_packed reproduces bit for bit), 0 when it would take another (fused small-T,
 * small-N, reference). Callers holding packed panels use them only then. */
int ck_matmul_forward_is_tiled(int wtype, int64_t T, int64_t K, int64_t N);
/* 1 when ck_matmul_forward runs these shapes with bf16 products now (the fast path below, on a CPU
 * where ck_fast_gemm_bf16), the path ck_matmul_forward_packed_bf16 reproduces bit for bit. */
int ck_matmul_forward_is_bf16(int wtype, int64_t T, int64_t K, int64_t N);
int ck_matmul_forward_packed(float *out, const float *inp, const float *packed, const float *bias,
                             int64_t T, int64_t K, int64_t N);
int ck_matmul_forward_packed_ref(float *out, const float *inp, const float *packed, const float *bias,
                                 int64_t T, int64_t K, int64_t N);

/* ---- the fast inference path (gemv_q8.c, gemm_bf16.c), opt-in ----------------- */

/* llama.cpp-style decoding for T = 1: the activation row is quantized once to int8 blocks and
 * every Q4_0/Q4_1/Q8_0/Q5_0/Q4_K/Q5_K/Q6_K weight block meets it in an integer dot product. Faster than the exact
 * path, not exact: the activation rounding (<= d/2 per element, d = max|x_block|/127) changes
 * the logits slightly (see docs/PERFORMANCE.md for the measured drift on SmolLM2).
 *
 * ck_set_fast_decode(1) turns it on for the CALLING THREAD only (thread-local, default off):
 * while on, ck_matmul_forward sends T == 1 with a ck_gemv_q8_supported (wtype, K) here, and the
 * shapes of more than 8 rows that would run the f32 tile GEMM (prompts, batched decode steps) to
 * ck_matmul_forward_bf16 when ck_fast_gemm_bf16() (ck_train.h). Up to 8 rows (fused small-T GEMV or
 * the f32 tiles) and LoRA's small-N matmuls stay exact. With the switch off every result is what it was. */
void ck_set_fast_decode(int on);
int  ck_get_fast_decode(void);

/* One quantized activation block: x ≈ d·qs[j], d = max|x| / 127 (f32), qs = roundf(x / d)
 * (llama.cpp's quantize_row_q8_0 rounding, via x · (1/d)), sum = Σ qs (for Q4_0's −8 offset
 * and Q4_1's min term m·d·sum). 40 bytes. */
typedef struct { float d; int32_t sum; int8_t qs[32]; } ck_block_q8x;

/* x [K] (K % 32 == 0) -> K/32 ck_block_q8x at out. 0, or -1 for bad K. The AVX2 version (any
 * SIMD ISA active) writes the same bytes as the _ref one. */
int ck_quantize_row_q8(const float *x, int64_t K, void *out);
int ck_quantize_row_q8_ref(const float *x, int64_t K, void *out);

/* 1 if the int8 path takes this weight: wtype Q4_0/Q4_1/Q8_0/Q5_0 and K a positive multiple of 32, or
 * Q4_K/Q5_K/Q6_K and K a positive multiple of 256. */
int ck_gemv_q8_supported(int wtype, int64_t K);

/* out [N] = x [K] · W[N,K]ᵀ (+ bias [N] or NULL), W rows of wtype, through int8 x:
 *   Σ_blocks (d_w·d_x)·isum (+ m_w·d_x·Σq_x for Q4_1) in a fixed order (gemv_q8.c), + bias.
 * ck_gemv_q8 picks the kernel ck_gemv_q8_kernel() names; all kernels, and any thread count,
 * give bit-identical results. Returns 0, or -1 (unsupported wtype/K, N < 0, allocation,
 * or for _with a kernel this CPU lacks). */
int ck_gemv_q8(float *out, const float *x, const void *w, int wtype, const float *bias, int64_t K, int64_t N);
int ck_gemv_q8_ref(float *out, const float *x, const void *w, int wtype, const float *bias, int64_t K, int64_t N);

/* Kernels of the int8 path. ck_gemv_q8_kernel: the one ck_gemv_q8 uses now (VNNI when the active
 * ISA is avx512 and the CPU has avx512_vnni, AVX2 under avx2/avx512, else the reference);
 * _available: whether this CPU can run one; _name: "int8-ref", "int8-avx2", "int8-avx512vnni";
 * ck_gemv_q8_with: ck_gemv_q8 on a given kernel (tests compare them bit for bit). */
typedef enum { CK_Q8_KERNEL_REF = 0, CK_Q8_KERNEL_AVX2 = 1, CK_Q8_KERNEL_VNNI = 2 } ck_q8_kernel;
int ck_gemv_q8_kernel(void);
int ck_gemv_q8_kernel_available(int kernel);
const char *ck_gemv_q8_kernel_name(int kernel);
int ck_gemv_q8_with(int kernel, float *out, const float *x, const void *w, int wtype, const float *bias,
                    int64_t K, int64_t N);

/* ---- elementwise / norms ------------------------------------------------ */

/* Embedding lookup: out[t,:] = dequant(table row ids[t])
 *   out [T, C]; ids [T]; table [V, C] rows of `type`. Returns 0 or -1. */
int ck_embedding_forward(float *out, const int32_t *ids, const void *table, int type,
                         int64_t T, int64_t C);
int ck_embedding_forward_ref(float *out, const int32_t *ids, const void *table, int type,
                             int64_t T, int64_t C);

/* RMSNorm: out[t,:] = inp[t,:] / sqrt(mean(inp[t,:]^2) + eps) * weight
 *   out [T, C]; rstd [T] or NULL (stores 1/sqrt(mean+eps)); inp [T, C]; weight [C] */
void ck_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                        float eps, int64_t T, int64_t C);
void ck_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight,
                            float eps, int64_t T, int64_t C);

/* RoPE, HF "rotate_half" (NeoX) convention, in place:
 *   x [T, H, D]; pos [T] absolute positions. For i < D/2, pair (i, i + D/2) is rotated by
 *   angle pos * theta^(-2i/D). (GGUF Llama Q/K rows are un-permuted at load so this
 *   convention holds for both GGUF and HF weights.) */
void ck_rope_forward(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta);
void ck_rope_forward_ref(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta);

/* RoPE with explicit inverse frequencies freq [D/2] (rope scaling: Llama-3's `llama3`, linear, GGUF
 * `rope_freqs.weight`): pair i is rotated by angle (float)pos * freq[i], same rounding as
 * ck_rope_forward, which equals this with freq = ck_rope_inv_freq(D, theta). */
void ck_rope_inv_freq(float *freq, int64_t D, float theta);
void ck_rope_forward_freq(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, const float *freq);
void ck_rope_forward_freq_ref(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, const float *freq);
/* ck_rope_table with explicit inverse frequencies. */
void ck_rope_table_freq(float *tab, int64_t P, int64_t D, const float *freq);

/* RoPE with cached angles. ck_rope_table fills tab [P, D]: tab[p*D + i] = cos, tab[p*D + D/2 + i]
 * = sin of position p's angle for pair i (the float32 angles of ck_rope_forward), p < P.
 * ck_rope_forward_cached rotates x [T, H, D] in place with it (every pos[t] < P); bit-identical
 * to ck_rope_forward, without recomputing cos/sin per call. */
void ck_rope_table(float *tab, int64_t P, int64_t D, float theta);
void ck_rope_forward_cached(float *x, const int32_t *pos, const float *tab, int64_t T, int64_t H, int64_t D);
void ck_rope_forward_cached_ref(float *x, const int32_t *pos, const float *tab, int64_t T, int64_t H, int64_t D);

/* Causal grouped-query attention with softmax scale 1/sqrt(D).
 *   out [T, H, D]      overwritten
 *   q   [T, H, D]      queries for positions pos0 .. pos0+T-1
 *   k,v [Tkv, Hkv, D]  keys/values for positions 0 .. Tkv-1 (Tkv >= pos0 + T)
 *   query t attends keys 0 .. pos0 + t; head h uses kv head h / (H / Hkv).
 * Memory is O(D) per (query, head): online softmax, no T×T matrix. Invalid shapes
 * (Hkv <= 0, H % Hkv != 0, Tkv < pos0 + T) leave out untouched. */
void ck_attention_forward(float *out, const float *q, const float *k, const float *v,
                          int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D);
void ck_attention_forward_ref(float *out, const float *q, const float *k, const float *v,
                              int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D);

/* ck_attention_forward with a sliding window (Gemma 3, Mistral): query at position p attends keys
 * max(0, p - window + 1) .. p, i.e. key j is masked when p - j >= window (transformers' and
 * llama.cpp's convention). window <= 0: no window (identical to ck_attention_forward). */
void ck_attention_forward_window(float *out, const float *q, const float *k, const float *v,
                                 int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D,
                                 int64_t window);
void ck_attention_forward_window_ref(float *out, const float *q, const float *k, const float *v,
                                     int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D,
                                     int64_t window);

/* GeGLU (Gemma): out[i] = gelu_tanh(gate[i]) * up[i] with PyTorch's tanh approximation
 * gelu_tanh(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (transformers' gelu_pytorch_tanh). */
void ck_geglu_forward(float *out, const float *gate, const float *up, int64_t n);
void ck_geglu_forward_ref(float *out, const float *gate, const float *up, int64_t n);

/* SwiGLU: out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)).  All [n]. */
void ck_swiglu_forward(float *out, const float *gate, const float *up, int64_t n);
void ck_swiglu_forward_ref(float *out, const float *gate, const float *up, int64_t n);

/* x[i] += y[i], [n]. */
void ck_add_inplace(float *x, const float *y, int64_t n);
void ck_add_inplace_ref(float *x, const float *y, int64_t n);

/* x, y [n]: x += s·y, one fused multiply-add per element (bit-identical on every path). */
void ck_axpy(float *x, const float *y, float s, int64_t n);
void ck_axpy_ref(float *x, const float *y, float s, int64_t n);

/* x, y [n]: x *= y */
void ck_mul_inplace(float *x, const float *y, int64_t n);
void ck_mul_inplace_ref(float *x, const float *y, int64_t n);

/* Row-wise log-softmax: out[t,:] = inp[t,:] - logsumexp(inp[t,:]).  out, inp [T, V]
 * (out may equal inp). */
void ck_log_softmax_forward(float *out, const float *inp, int64_t T, int64_t V);
void ck_log_softmax_forward_ref(float *out, const float *inp, int64_t T, int64_t V);

#ifdef __cplusplus
}
#endif
#endif
