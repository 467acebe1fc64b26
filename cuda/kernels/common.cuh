// common.cuh — shared by every kernel file: the library stream, the sticky error record, device
// scratch memory, launch helpers and the ggml block decoders used by GEMM tile loaders and the
// embedding (byte-identical layouts to Sources/CKernels/quant_blocks.h).
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
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

enum {
    TCU_F32 = 0, TCU_F16 = 1, TCU_Q4_0 = 2, TCU_Q4_1 = 3, TCU_Q5_0 = 6, TCU_Q8_0 = 8,
    TCU_Q4_K = 12, TCU_Q5_K = 13, TCU_Q6_K = 14, TCU_BF16 = 30
};

/* Elements per block of `type` (1 for float types), 0 if the type is not supported here. */
static inline int64_t tcu_block_size(int type) {
    switch (type) {
    case TCU_F32: case TCU_F16: case TCU_BF16: return 1;
    case TCU_Q4_0: case TCU_Q4_1: case TCU_Q5_0: case TCU_Q8_0: return 32;
    case TCU_Q4_K: case TCU_Q5_K: case TCU_Q6_K: return 256;
    default: return 0;
    }
}

/* Bytes in a row of n elements of `type`, or 0 if the type is not supported here or n is not a
 * multiple of the block size. */
static inline int64_t tcu_row_bytes(int type, int64_t n) {
    const int64_t bs = tcu_block_size(type);
    if (bs == 0 || n % bs) return 0;
    switch (type) {
    case TCU_F32:  return n * 4;
    case TCU_F16:
    case TCU_BF16: return n * 2;
    case TCU_Q4_0: return n / 32 * 18;
    case TCU_Q4_1: return n / 32 * 20;
    case TCU_Q5_0: return n / 32 * 22;
    case TCU_Q8_0: return n / 32 * 34;
    case TCU_Q4_K: return n / 256 * 144;
    case TCU_Q5_K: return n / 256 * 176;
    case TCU_Q6_K: return n / 256 * 210;
    default: return 0;
    }
}

/* A row length the GEMM / embedding cannot decode (not a multiple of the type's block): records it and
 * returns 1. */
static inline int tcu_bad_row(const char *what, int type, int64_t n) {
    const int64_t bs = tcu_block_size(type);
    if (bs <= 1 || n % bs == 0) return 0;
    tcu_fail("%s: row length %lld is not a multiple of the block size %lld of weight type %d", what, (long long)n, (long long)bs, type);
    return 1;
}

// The block decoders below are __host__ __device__: on the GPU they round with __fmul_rn / __fadd_rn /
// __fsub_rn (no FMA contraction), on the host with plain float operations compiled with
// -ffp-contract=off, so build/test_decode_host checks every element against ck_dequantize_row_ref on
// the CPU (bit for bit, no GPU needed) and the GPU computes the same bits.
#ifdef __CUDA_ARCH__
#define TCU_MUL(a, b) __fmul_rn((a), (b))
#define TCU_ADD(a, b) __fadd_rn((a), (b))
#define TCU_SUB(a, b) __fsub_rn((a), (b))
#else
#define TCU_MUL(a, b) ((a) * (b))
#define TCU_ADD(a, b) ((a) + (b))
#define TCU_SUB(a, b) ((a) - (b))
#endif

__host__ __device__ __forceinline__ float tcu_h2f(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)(p[0] | (p[1] << 8))));
}

__host__ __device__ __forceinline__ float tcu_bf2f(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __uint_as_float((unsigned)h << 16);
#else
    const uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
#endif
}

/* The j-th (0..7) 6-bit scale and min of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4). */
__host__ __device__ __forceinline__ void tcu_scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
    else { *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

/* Element c of row `row` of a [*, cols] matrix of `TYPE` with `rb` bytes per row. Same float32
 * arithmetic, in the same order, as ck_dequantize_row_ref (quant_dequant.c), so dequantized values
 * are bit-identical to the CPU's. */
template <int TYPE>
__host__ __device__ __forceinline__ float tcu_wval(const void *w, int64_t rb, int64_t row, int64_t c) {
    const uint8_t *r = (const uint8_t *)w + row * rb;
    if (TYPE == TCU_F32) return ((const float *)r)[c];
    if (TYPE == TCU_F16) return tcu_h2f(r + 2 * c);
    if (TYPE == TCU_BF16) return tcu_bf2f(((const uint16_t *)r)[c]);
    if (TYPE == TCU_Q4_K || TYPE == TCU_Q5_K || TYPE == TCU_Q6_K) {
        const int64_t b = c >> 8; const int j = (int)(c & 255);
        if (TYPE == TCU_Q6_K) {   // ql[128] qh[64] scales[16] d: halves of 128, quarters of 32
            const uint8_t *blk = r + b * 210;
            const int n = j >> 7, quarter = (j >> 5) & 3, l = j & 31;
            const uint8_t lo = blk[64 * n + l + (quarter & 1) * 32];
            const int q = (int)(int8_t)(((quarter < 2 ? lo & 0xF : lo >> 4) | (((blk[128 + 32 * n + l] >> (2 * quarter)) & 3) << 4))) - 32;
            const int sc = (int8_t)blk[192 + 8 * n + (l >> 4) + 2 * quarter];
            return TCU_MUL(TCU_MUL(tcu_h2f(blk + 208), (float)sc), (float)q);
        }
        // Q4_K: d dmin scales[12] qs[128];  Q5_K: d dmin scales[12] qh[32] qs[128]. Chunks of 64: the
        // low nibbles of 32 bytes, then their high nibbles, each half with its own 6-bit scale and min.
        const uint8_t *blk = r + b * (TYPE == TCU_Q4_K ? 144 : 176);
        const int chunk = j >> 6, hi = (j >> 5) & 1, l = j & 31;
        int sc, m;
        tcu_scale_min_k4(2 * chunk + hi, blk + 4, &sc, &m);
        const uint8_t qb = blk[(TYPE == TCU_Q4_K ? 16 : 48) + 32 * chunk + l];
        int q = hi ? qb >> 4 : qb & 0xF;
        if (TYPE == TCU_Q5_K && (blk[16 + l] & ((hi ? 2 : 1) << (2 * chunk)))) q += 16;
        const float d1 = TCU_MUL(tcu_h2f(blk), (float)sc), m1 = TCU_MUL(tcu_h2f(blk + 2), (float)m);
        return TCU_SUB(TCU_MUL(d1, (float)q), m1);
    }
    const int64_t b = c >> 5; const int j = (int)(c & 31);
    if (TYPE == TCU_Q8_0) {
        const uint8_t *blk = r + b * 34;
        return TCU_MUL((float)(int8_t)blk[2 + j], tcu_h2f(blk));
    }
    if (TYPE == TCU_Q4_0) {
        const uint8_t *blk = r + b * 18;
        const int q = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
        return TCU_MUL((float)(q - 8), tcu_h2f(blk));
    }
    if (TYPE == TCU_Q5_0) {   // d qh[4] qs[16]: bit 4 of element j is bit j of the little-endian qh
        const uint8_t *blk = r + b * 22;
        const uint32_t qh = (uint32_t)blk[2] | ((uint32_t)blk[3] << 8) | ((uint32_t)blk[4] << 16) | ((uint32_t)blk[5] << 24);
        const int q = (j < 16 ? (blk[6 + j] & 15) : (blk[6 + j - 16] >> 4)) | (int)(((qh >> j) & 1) << 4);
        return TCU_MUL((float)(q - 16), tcu_h2f(blk));
    }
    // TCU_Q4_1
    const uint8_t *blk = r + b * 20;
    const int q = j < 16 ? (blk[4 + j] & 15) : (blk[4 + j - 16] >> 4);
    return TCU_ADD(TCU_MUL((float)q, tcu_h2f(blk)), tcu_h2f(blk + 2));
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
    case TCU_Q5_0: { constexpr int WT = TCU_Q5_0; CALL; } break;                       \
    case TCU_Q8_0: { constexpr int WT = TCU_Q8_0; CALL; } break;                       \
    case TCU_Q4_K: { constexpr int WT = TCU_Q4_K; CALL; } break;                       \
    case TCU_Q5_K: { constexpr int WT = TCU_Q5_K; CALL; } break;                       \
    case TCU_Q6_K: { constexpr int WT = TCU_Q6_K; CALL; } break;                       \
    default: tcu_fail("%s: unsupported weight type %d (CUDA supports f32, f16, bf16, q4_0, q4_1, q5_0, q8_0, q4_K, q5_K, q6_K)", what, type); return -1; \
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
