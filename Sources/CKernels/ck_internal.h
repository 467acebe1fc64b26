/*
 * ck_internal.h — private helpers shared by the kernel sources (not part of the ABI):
 * ISA query for dispatch, the thread pool's parallel_for, per-thread scratch memory and
 * AVX2 vector helpers (horizontal sum, exp). SIMD code is compiled per function with
 * target attributes, never with -mavx2, so the binary runs on any x86-64.
 */
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include "ck_ops.h"

#if defined(__x86_64__) && !defined(CK_NO_SIMD) // CK_NO_SIMD: build as on non-x86 (ref only)
#define CK_X86 1
#include <immintrin.h>
#define CK_AVX2 __attribute__((target("avx2,fma")))
#define CK_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#define CK_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"
#define CK_AVX512 __attribute__((target(CK_AVX512_TARGET)))
#define CK_AVX512_INLINE __attribute__((target(CK_AVX512_TARGET), always_inline)) static inline
#else
#define CK_X86 0
#endif

// ---- dispatch ----------------------------------------------------------------

/* 1 if the dispatching entry points should take the SIMD (AVX2) path now. */
static inline int ck_use_simd(void) { return ck_isa_active() >= CK_ISA_AVX2; }
/* 1 if the entry points that have AVX-512 kernels should take them now. */
static inline int ck_use_avx512(void) { return CK_X86 && ck_isa_active() >= CK_ISA_AVX512; }

// ---- AVX-512 GEMM core (gemm_avx512.c) -----------------------------------------------

#if CK_X86
/* C[i, j] (+)= Σ_r A[i*sai + r*sar] · B[r*ldb + j] for i < rows, j < cols (any sizes), in
 * 12×32 register tiles (24 zmm accumulators, B rows loaded as 2 zmm, A broadcast).
 * load_c: 1 start from C, 2 sum from 0 then add C, 0 neither. Partial column stripes use masked loads and stores, so
 * nothing outside the rows × cols window of B and C is read or written.
 * Each element is its initial value followed by one fmaf per r in increasing order (load_c 2: the
 * chain from 0, then one add of C). */
void ck512_tile_gemm(float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar,
                     const float *b, int64_t ldb, int64_t R, int64_t rows, int64_t cols, int load_c);

/* Small-N products (N <= 16, e.g. LoRA rank r): out[i, n] (+)= Σ_k x[i*ldx + k] · w[n*ldw + k]
 * (+ bias[n]) for i < rows, n < N. Vectorized along k (16-lane accumulators, fixed ck_hsum16
 * order), so no lanes are wasted on the short N side. accumulate: out += the sum (rounded
 * once), else out = it. Each element's arithmetic depends only on K, never on rows or tiling. */
void ck512_small_n(float *out, int64_t ldo, const float *x, int64_t ldx, const float *w, int64_t ldw,
                   const float *bias, int64_t rows, int64_t K, int64_t N, int accumulate);
#endif

#if CK_X86
/* C[rows, cols] (+)= A·B with ck512_tile_gemm's contract, on the AVX2 6×16 tiles or (active ISA
 * avx512) the 12×32 AVX-512 tiles (gemm_bwd.c). load_c: 0 C = A·B; 1 the FMA chain starts from C;
 * 2 A·B is summed from zero and then added to C (rounding relative to this block's sum). */
void ck_tile_gemm(float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar,
                  const float *b, int64_t ldb, int64_t R, int64_t rows, int64_t cols, int load_c);
/* Register-tile height of ck_tile_gemm on the active ISA: 12 (avx512) or 6 (avx2). */
int ck_tile_mr(void);
/* Packs A[rows, R] (A[i, r] = a[i*sai + r*sar]) into tiles of mr rows, tile q = [R][mr] at
 * ap + q*mr*R (rows·R floats in all, a short last tile keeps stride mr). */
void ck_pack_a(float *ap, const float *a, int64_t sai, int64_t sar, int64_t rows, int64_t R, int mr);
#endif

// ---- threads -------------------------------------------------------------------

/* Runs fn(ctx, i) for i in [0, n_tasks) on the pool (the calling thread helps).
 * Tasks must write disjoint outputs; which thread runs a task must not change its result.
 * Runs inline (serially) if one thread is configured, if called from inside a task, or
 * if another caller thread is currently using the pool. */
typedef void (*ck_task_fn)(void *ctx, int64_t task);
void ck_parallel_for(int64_t n_tasks, ck_task_fn fn, void *ctx);

/* Per-thread scratch buffer of at least n floats, 64-byte aligned, reused across calls
 * (contents undefined). Freed at thread exit. Returns NULL on allocation failure. */
float *ck_scratch(size_t n);
/* A second per-thread buffer for a dispatcher's operands shared by all its tasks (packed once
 * before ck_parallel_for, read by the tasks): reused across calls, so large packs do not cost
 * fresh pages (mmap + page faults) on every call. Never call it inside a task. */
float *ck_scratch_caller(size_t n);

// ---- fused small-T quantized matmul (gemv_q.c) ------------------------------------

#define CK_GEMV_MAX_T 8
/* 1 if ck_gemv_q can run (wtype Q4_0/Q4_1/Q8_0/Q5_0 with K % 32 == 0, Q4_K/Q5_K/Q6_K with K % 256 == 0,
 * 1 <= T <= CK_GEMV_MAX_T, CPU has AVX2+FMA+F16C). */
int ck_gemv_q_supported(int wtype, int64_t T, int64_t K);
/* out [T,N] = inp [T,K] · W[N,K]ᵀ (+ bias [N]); returns 0 or -1 (allocation). */
int ck_gemv_q(float *out, const float *inp, const void *w, int wtype, const float *bias,
              int64_t T, int64_t K, int64_t N);

// ---- AVX2 helpers --------------------------------------------------------------

#if CK_X86
/* Fixed-order horizontal sum of 8 lanes (same order everywhere so results are reproducible). */
CK_AVX2_INLINE float ck_hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);                       // 4 lanes
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));    // 2 lanes
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1)); // 1 lane
    return _mm_cvtss_f32(lo);
}

CK_AVX2_INLINE float ck_hmax8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_max_ps(lo, hi);
    lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_max_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

/* exp(x) for 8 floats, Cephes-style range reduction + degree-5 polynomial (~2 ulp).
 * x > 88.72 gives +inf, x < -87.33 gives 0, NaN propagates. */
CK_AVX2_INLINE __m256 ck_exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.72283f), lo = _mm256_set1_ps(-88.3762626647949f);
    const __m256 over = _mm256_cmp_ps(x, _mm256_set1_ps(88.72283f), _CMP_GT_OQ);
    const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    xc = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
    xc = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), xc);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(xc, xc), _mm256_add_ps(xc, _mm256_set1_ps(1.0f)));
    // 2^fx: fx in [-127, 128]; split in two factors so fx = 128 does not overflow the exponent
    __m256i n = _mm256_cvtps_epi32(fx);
    __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    y = _mm256_mul_ps(_mm256_mul_ps(y, p1), p2);
    y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), over);
    y = _mm256_andnot_ps(under, y);
    return _mm256_blendv_ps(y, x, nan);
}

/* Fixed-order horizontal sum / max of 16 lanes: the two 8-lane halves are combined first,
 * then the 8-lane order of ck_hsum8 / ck_hmax8. */
CK_AVX512_INLINE float ck_hsum16(__m512 v) {
    const __m256 lo = _mm512_castps512_ps256(v), hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    __m256 s = _mm256_add_ps(lo, hi);
    __m128 a = _mm256_castps256_ps128(s), b = _mm256_extractf128_ps(s, 1);
    a = _mm_add_ps(a, b);
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

CK_AVX512_INLINE float ck_hmax16(__m512 v) {
    const __m256 lo = _mm512_castps512_ps256(v), hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    __m256 s = _mm256_max_ps(lo, hi);
    __m128 a = _mm256_castps256_ps128(s), b = _mm256_extractf128_ps(s, 1);
    a = _mm_max_ps(a, b);
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

/* gelu_tanh(x) = ½x(1 + tanh(β(x + κx³))) = x / (1 + e) with e = exp(−2β·x(1 + κx²)), the logistic
 * form; this is e in float32 with expf, for the scalar tails of the vectorized GeGLU kernels
 * (forward and backward compute x / (1 + e) alike). */
static inline float ck_gelu_exp(float x) {
    return expf(-2.0f * 0.7978845608028654f * x * (1.0f + 0.044715f * x * x));
}

/* ck_exp8 for 16 lanes (same reduction and polynomial, so the same values lane by lane). */
CK_AVX512_INLINE __m512 ck_exp16(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.72283f), lo = _mm512_set1_ps(-88.3762626647949f);
    const __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
    const __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    xc = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), xc);
    xc = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), xc);
    __m512 y = _mm512_set1_ps(1.9875691500E-4f);
    y = _mm512_fmadd_ps(y, xc, _mm512_set1_ps(1.3981999507E-3f));
    y = _mm512_fmadd_ps(y, xc, _mm512_set1_ps(8.3334519073E-3f));
    y = _mm512_fmadd_ps(y, xc, _mm512_set1_ps(4.1665795894E-2f));
    y = _mm512_fmadd_ps(y, xc, _mm512_set1_ps(1.6666665459E-1f));
    y = _mm512_fmadd_ps(y, xc, _mm512_set1_ps(5.0000001201E-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(xc, xc), _mm512_add_ps(xc, _mm512_set1_ps(1.0f)));
    __m512i n = _mm512_cvtps_epi32(fx);
    __m512i n1 = _mm512_srai_epi32(n, 1), n2 = _mm512_sub_epi32(n, n1);
    __m512 p1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, _mm512_set1_epi32(127)), 23));
    __m512 p2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, _mm512_set1_epi32(127)), 23));
    y = _mm512_mul_ps(_mm512_mul_ps(y, p1), p2);
    y = _mm512_mask_mov_ps(y, over, _mm512_set1_ps(__builtin_inff()));
    y = _mm512_maskz_mov_ps((__mmask16)~under, y);
    return _mm512_mask_mov_ps(y, nan, x);
}
#endif

#endif
