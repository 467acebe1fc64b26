/*
 * ck_train.h — kernels for (Q)LoRA training: backward GEMM layouts, backward ops,
 * softmax cross-entropy, AdamW. Same conventions as ckernels.h (outputs first, shapes in
 * the first comment lines, input grads overwritten unless stated, parameter grads +=,
 * every op has a `_ref` twin; dispatchers honour ck_set_isa / TUNE_KERNELS=ref).
 */
#ifndef CK_TRAIN_H
#define CK_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM backward (out = inp · Wᵀ) ---------------------------------------- */

/* dX = dY · W
 *   dinp [T, K]  f32; overwritten, or added to when accumulate != 0
 *   dout [T, N]  f32
 *   w    [N, K]  rows of `wtype` (any dequantizable type; quantized tiles are dequantized
 *                inside the kernel, the full f32 W is never materialized)
 * Returns 0, or -1 on unsupported type / bad K / allocation failure. */
int ck_matmul_backward_input(float *dinp, const float *dout, const void *w, int wtype,
                             int64_t T, int64_t K, int64_t N, int accumulate);
int ck_matmul_backward_input_ref(float *dinp, const float *dout, const void *w, int wtype,
                                 int64_t T, int64_t K, int64_t N, int accumulate);

/* dW += dYᵀ · X
 *   dw [N, K] f32, accumulated;  dout [T, N];  inp [T, K] */
void ck_matmul_backward_weight(float *dw, const float *dout, const float *inp,
                               int64_t T, int64_t K, int64_t N);
void ck_matmul_backward_weight_ref(float *dw, const float *dout, const float *inp,
                                   int64_t T, int64_t K, int64_t N);

/* ---- op backward ---------------------------------------------------------------- */

/* RMSNorm backward, with rstd [T] saved by ck_rmsnorm_forward.
 *   dinp [T, C] overwritten;  dweight [C] accumulated (may be NULL: frozen weight);
 *   dout, inp [T, C];  weight [C];  rstd [T]
 * dinp = rstd·(w⊙dy) − x·rstd³·mean(x⊙w⊙dy);  dweight += Σ_t dy⊙x·rstd. */
void ck_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                         const float *weight, const float *rstd, int64_t T, int64_t C);
void ck_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int64_t T, int64_t C);

/* RoPE backward, in place: dx [T, H, D] holds d(out) on entry and d(in) on exit (rotation
 * by the negated angle, same convention and angles as ck_rope_forward). */
void ck_rope_backward(float *dx, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta);
void ck_rope_backward_ref(float *dx, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta);
/* The same with the cos/sin table of ck_rope_table (every pos[t] < its P); bit-identical. */
void ck_rope_backward_cached(float *dx, const int32_t *pos, const float *tab, int64_t T, int64_t H, int64_t D);
void ck_rope_backward_cached_ref(float *dx, const int32_t *pos, const float *tab, int64_t T, int64_t H, int64_t D);

/* SwiGLU backward: out = silu(gate)·up.  dgate, dup, dout, gate, up [n]; dgate/dup overwritten.
 * dup = dout·silu(g);  dgate = dout·up·σ(g)·(1 + g·(1 − σ(g))). */
void ck_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, int64_t n);
void ck_swiglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, int64_t n);

/* GeGLU backward: out = gelu_tanh(gate)·up (PyTorch's tanh approximation, ck_geglu_forward).
 * dgate, dup, dout, gate, up [n]; dgate/dup overwritten.
 * dup = dout·gelu_tanh(g);  dgate = dout·up·gelu_tanh'(g). */
void ck_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                       const float *up, int64_t n);
void ck_geglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, int64_t n);

/* Causal GQA self-attention for training (positions 0..T-1, scale 1/sqrt(D)).
 *   out [T, H, D] overwritten;  lse [T, H] overwritten: logsumexp of query (t,h)'s scaled scores
 *   q [T, H, D];  k, v [T, Hkv, D];  head h uses kv head h / (H / Hkv)
 * Invalid shapes (Hkv <= 0, H % Hkv != 0) leave outputs untouched. */
void ck_attention_forward_train(float *out, float *lse, const float *q, const float *k, const float *v,
                                int64_t T, int64_t H, int64_t Hkv, int64_t D);
void ck_attention_forward_train_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                                    int64_t T, int64_t H, int64_t Hkv, int64_t D);

/* Backward of ck_attention_forward_train, recomputing scores per row from q, k and lse
 * (memory O(T) per task). dq [T, H, D], dk, dv [T, Hkv, D] overwritten; dout, q, out [T, H, D];
 * k, v [T, Hkv, D]; lse [T, H]. Parallel over kv heads. */
void ck_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *out, const float *lse,
                           int64_t T, int64_t H, int64_t Hkv, int64_t D);
void ck_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *out, const float *lse,
                               int64_t T, int64_t H, int64_t Hkv, int64_t D);

/* Sliding-window twins (Gemma 3's local layers): query t attends to keys j with
 * t − window < j <= t (window <= 0: every earlier key, i.e. the plain kernels above, which they
 * call when the window clips nothing: window <= 0 or T <= window). Same shapes and outputs. */
void ck_attention_forward_train_window(float *out, float *lse, const float *q, const float *k, const float *v,
                                       int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t window);
void ck_attention_forward_train_window_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                                           int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t window);
void ck_attention_backward_window(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                  const float *k, const float *v, const float *out, const float *lse,
                                  int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t window);
void ck_attention_backward_window_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                      const float *k, const float *v, const float *out, const float *lse,
                                      int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t window);

/* ---- loss ------------------------------------------------------------------------ */

/* ---- GEMMs with bf16 products (AVX-512 BF16) ------------------------------------ */

/* 1 if the _bf16 GEMMs below run bf16 products now (CPU has avx512_bf16 and the active ISA
 * is avx512); 0 if they currently run the f32 kernels. */
int ck_bf16_products_available(void);

/* out = bf16(inp) · bf16(W)ᵀ (+ bias): ck_matmul_forward's shapes and contract (out [T,N]
 * overwritten; inp [T,K]; w [N,K] rows of any dequantizable type; bias [N] or NULL), but every
 * product is of bf16-rounded operands (inp rounded to nearest even; W exact for BF16 weights,
 * rounded otherwise) with f32 accumulation (VDPBF16PS). Not bit-compatible with the f32 kernel
 * (relative error ~ 2^-8 per product); deterministic and thread-count invariant. Without
 * AVX-512 BF16 it is ck_matmul_forward. Returns 0, or -1 (bad type / K, allocation). */
int ck_matmul_forward_bf16(float *out, const float *inp, const void *w, int wtype,
                           const float *bias, int64_t T, int64_t K, int64_t N);
int ck_matmul_forward_bf16_ref(float *out, const float *inp, const void *w, int wtype,
                               const float *bias, int64_t T, int64_t K, int64_t N);

/* 1 if the fast inference path (ck_set_fast_decode) runs tile-stage matmuls with bf16 products:
 * TUNE_FAST_GEMM=bf16|f32 forces it; by default on AMD CPUs with AVX-512 BF16 (where VDPBF16PS is
 * twice the f32 FMA rate), off elsewhere. 0 whenever ck_bf16_products_available() is 0. */
int ck_fast_gemm_bf16(void);

/* Packed bf16 panels: W [N,K] dequantized, rounded and stored once as the pair panels
 * ck_matmul_forward_bf16 builds per call ([ceil(N/32)][ceil(K/2)][32] uint32, zero past N).
 * ck_matmul_packed_bf16_size: uint32 words needed (0 for bad shapes). ck_matmul_pack_bf16: 0, or
 * -1 (bad type / shape, or no bf16 products on this CPU). ck_matmul_forward_packed_bf16: out [T,N]
 * = bf16(inp) · panelsᵀ (+ bias), bit-identical to ck_matmul_forward_bf16 on the same W; -1 without
 * bf16 products. */
int64_t ck_matmul_packed_bf16_size(int64_t K, int64_t N);
int ck_matmul_pack_bf16(uint32_t *packed, const void *w, int wtype, int64_t K, int64_t N);
int ck_matmul_forward_packed_bf16(float *out, const float *inp, const uint32_t *packed, const float *bias,
                                  int64_t T, int64_t K, int64_t N);

/* dinp (+)= bf16(dout) · bf16(W): ck_matmul_backward_input's shapes and contract (dinp [T,K]
 * overwritten, or added to when accumulate != 0; dout [T,N]; w [N,K]) with bf16 products as in
 * ck_matmul_forward_bf16. Without AVX-512 BF16 it is ck_matmul_backward_input. */
int ck_matmul_backward_input_bf16(float *dinp, const float *dout, const void *w, int wtype,
                                  int64_t T, int64_t K, int64_t N, int accumulate);
int ck_matmul_backward_input_bf16_ref(float *dinp, const float *dout, const void *w, int wtype,
                                      int64_t T, int64_t K, int64_t N, int accumulate);

/* Softmax cross-entropy over the vocabulary for a chunk of rows, in place.
 *   losses [T] overwritten: −log softmax(logits[t])[targets[t]], 0 for ignored rows
 *   logits [T, V] on entry; on exit d(loss_t)/d(logits[t]) · scale = (softmax − onehot)·scale,
 *          all zeros for ignored rows
 *   targets [T]: class ids; rows with target < 0 or >= V are ignored
 * Returns the number of non-ignored rows. Intended use: the trainer computes logits for a
 * chunk of rows (e.g. 32) from the hidden states, calls this with scale = 1 / (non-ignored
 * tokens in the whole batch) so the mean is its normalization, then backprops the chunk
 * through the LM head with ck_matmul_backward_input. */
int64_t ck_xent_forward_backward(float *losses, float *logits, const int32_t *targets,
                                 float scale, int64_t T, int64_t V);
int64_t ck_xent_forward_backward_ref(float *losses, float *logits, const int32_t *targets,
                                     float scale, int64_t T, int64_t V);

/* ---- optimizer ------------------------------------------------------------------- */

/* AdamW (decoupled weight decay, bias correction), step >= 1, all arrays [n] f32:
 *   m = b1·m + (1−b1)·g;  v = b2·v + (1−b2)·g²
 *   p −= lr·( (m/(1−b1^step)) / (sqrt(v/(1−b2^step)) + eps) + wd·p ) */
void ck_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);
void ck_adamw_step_ref(float *param, const float *grad, float *m, float *v, int64_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);

/* Σ x[i]² in double (grad-norm helper), [n]. Deterministic for any thread count. */
double ck_sumsq(const float *x, int64_t n);
double ck_sumsq_ref(const float *x, int64_t n);

/* x[i] *= s, [n]. */
void ck_scale(float *x, float s, int64_t n);
void ck_scale_ref(float *x, float s, int64_t n);

#ifdef __cplusplus
}
#endif

/* LoRA dropout mask: mask[i] = scale if hash(key, i) <= threshold else 0, with hash the SplitMix64
 * finalizer of key + i·0x9E3779B97F4A7C15, upper 32 bits (the generator LoRADropout defines; CPU and
 * CUDA training use the same host-generated masks). Threaded over fixed chunks: the same values for
 * any thread count and ISA. */
void ck_dropout_mask(float *mask, int64_t n, uint64_t key, uint32_t threshold, float scale);
void ck_dropout_mask_ref(float *mask, int64_t n, uint64_t key, uint32_t threshold, float scale);

#endif
