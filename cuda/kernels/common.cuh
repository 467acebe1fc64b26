// common.cuh — shared by every kernel file: the library stream, the sticky error record, device
// scratch memory, launch helpers and the ggml block decoders used by GEMM tile loaders and the
// embedding (byte-identical layouts to Sources/CKernels/quant_blocks.h).
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stddef.h>
#include "../tunecuda.h"

// ---- library state (runtime.cu) -----------------------------------------------------------

extern cudaStream_t tcu_stream;
/* Records the first error since the last tcu_sync (printf-style); later ones are dropped. */
void tcu_fail(const char *fmt, ...);
/* Records a launch error if the last launch failed; `what` names the op. */
void tcu_check_launch(const char *what);
/* Device scratch of at least `bytes`, owned by the library, reused across calls (stream-ordered). */
void *tcu_scratch(size_t bytes);

static inline unsigned tcu_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 1048576 ? 1048576 : (b < 1 ? 1 : b)); // grid-stride loops cover the rest
}

#define TCU_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// ---- ggml types (ck_quant.h ids) -------------------------------------------------------------

enum { TCU_F32 = 0, TCU_F16 = 1, TCU_Q4_0 = 2, TCU_Q4_1 = 3, TCU_Q8_0 = 8, TCU_BF16 = 30 };

/* Bytes in a row of n elements of `type`, or 0 if the type is not supported here or n is not a
 * multiple of the block size. */
static inline int64_t tcu_row_bytes(int type, int64_t n) {
    switch (type) {
    case TCU_F32:  return n * 4;
    case TCU_F16:
    case TCU_BF16: return n * 2;
    case TCU_Q4_0: return n % 32 ? 0 : n / 32 * 18;
    case TCU_Q4_1: return n % 32 ? 0 : n / 32 * 20;
    case TCU_Q8_0: return n % 32 ? 0 : n / 32 * 34;
    default: return 0;
    }
}

__device__ __forceinline__ float tcu_h2f(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)(p[0] | (p[1] << 8))));
}

/* Element c of row `row` of a [*, cols] matrix of `TYPE` with `rb` bytes per row. Same float32
 * arithmetic as ck_dequantize_row_ref (no FMA contraction: __fmul_rn/__fadd_rn), so dequantized
 * values are bit-identical to the CPU's. */
template <int TYPE>
__device__ __forceinline__ float tcu_wval(const void *w, int64_t rb, int64_t row, int64_t c) {
    const uint8_t *r = (const uint8_t *)w + row * rb;
    if (TYPE == TCU_F32) return ((const float *)r)[c];
    if (TYPE == TCU_F16) return __half2float(((const __half *)r)[c]);
    if (TYPE == TCU_BF16) return __uint_as_float((unsigned)((const uint16_t *)r)[c] << 16);
    const int64_t b = c >> 5; const int j = (int)(c & 31);
    if (TYPE == TCU_Q8_0) {
        const uint8_t *blk = r + b * 34;
        return __fmul_rn((float)(int8_t)blk[2 + j], tcu_h2f(blk));
    }
    if (TYPE == TCU_Q4_0) {
        const uint8_t *blk = r + b * 18;
        const int q = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
        return __fmul_rn((float)(q - 8), tcu_h2f(blk));
    }
    // TCU_Q4_1
    const uint8_t *blk = r + b * 20;
    const int q = j < 16 ? (blk[4 + j] & 15) : (blk[4 + j - 16] >> 4);
    return __fadd_rn(__fmul_rn((float)q, tcu_h2f(blk)), tcu_h2f(blk + 2));
}

/* Calls f.template operator()<TYPE>() for a supported runtime type; returns -1 (and records why)
 * otherwise. */
#define TCU_DISPATCH_TYPE(type, what, CALL)                                            \
    switch (type) {                                                                    \
    case TCU_F32:  { constexpr int WT = TCU_F32;  CALL; } break;                       \
    case TCU_F16:  { constexpr int WT = TCU_F16;  CALL; } break;                       \
    case TCU_BF16: { constexpr int WT = TCU_BF16; CALL; } break;                       \
    case TCU_Q4_0: { constexpr int WT = TCU_Q4_0; CALL; } break;                       \
    case TCU_Q4_1: { constexpr int WT = TCU_Q4_1; CALL; } break;                       \
    case TCU_Q8_0: { constexpr int WT = TCU_Q8_0; CALL; } break;                       \
    default: tcu_fail("%s: unsupported weight type %d (CUDA supports f32, f16, bf16, q4_0, q4_1, q8_0)", what, type); return -1; \
    }

// ---- warp/block reductions ------------------------------------------------------------------

__device__ __forceinline__ float tcu_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double tcu_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float tcu_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result. */
__device__ __forceinline__ double tcu_block_sum_d(double v) {
    __shared__ double part[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = tcu_warp_sum_d(v);
    __syncthreads();
    if (lane == 0) part[wid] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : 0.0;
    return tcu_warp_sum_d(v);
}
__device__ __forceinline__ float tcu_block_max(float v) {
    __shared__ float partm[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = tcu_warp_max(v);
    __syncthreads();
    if (lane == 0) partm[wid] = v;
    __syncthreads();
    v = lane < nw ? partm[lane] : -INFINITY;
    return tcu_warp_max(v);
}
