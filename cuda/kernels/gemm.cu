// gemm.cu — the three training GEMM layouts, f32 (tiled SIMT) and bf16 products (WMMA tensor cores),
// with weights of any supported ggml type dequantized inside the tile loader.
//
// One generic problem covers all layouts:   C[M, Nc] (op)= Σ_r A(i, r) · B(r, j),  r < R
//   A(i, r) = AT ? A[r·lda + i] : A[i·lda + r]                       (f32)
//   B(r, j) = BT ? W(row j, col r) : W(row r, col j)                 (W of type WT, rb bytes per row)
// forward  Y = X·Wᵀ:   M=T, Nc=N, R=K, A=X (AT=0, lda=K), B=W (BT=1)
// dX = dY·W:          M=T, Nc=K, R=N, A=dY (AT=0, lda=N), B=W (BT=0)
// dW += dYᵀ·X:        M=N, Nc=K, R=T, A=dY (AT=1, lda=N), B=X as an f32 "weight" (BT=0)
// Loads are coalesced along whichever index is contiguous in memory, prefetched into registers
// while the previous tile is multiplied. Quantized tiles are decoded element by element from their
// blocks (tcu_wval); the dequantized matrix never exists in memory.
#include "common.cuh"
#include <mma.h>

enum { EPI_STORE = 0, EPI_ACC = 1 };

// ---- f32: 128×128×16 tiles, 256 threads, 8×8 outputs per thread ------------------------------

namespace f32k {
constexpr int BM = 128, BN = 128, BK = 16, PAD = 4;

template <bool AT, bool BT, int WT>
__global__ void __launch_bounds__(256) gemm(float *__restrict__ C, const float *__restrict__ A, const void *__restrict__ W,
                                            const float *__restrict__ bias, int64_t M, int64_t Nc, int64_t R,
                                            int64_t lda, int64_t rb, int epi) {
    __shared__ __align__(16) float As[BK][BM + PAD];
    __shared__ __align__(16) float Bs[BK][BN + PAD];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int64_t i0 = (int64_t)blockIdx.y * BM, j0 = (int64_t)blockIdx.x * BN;
    float ra[8], rbv[8];

    auto load = [&](int64_t k0) {
#pragma unroll
        for (int p = 0; p < 8; p++) {
            const int e = tid + p * 256;
            const int r = AT ? e >> 7 : e & 15, i = AT ? e & 127 : e >> 4;
            const int64_t gi = i0 + i, gr = k0 + r;
            ra[p] = (gi < M && gr < R) ? (AT ? A[gr * lda + gi] : A[gi * lda + gr]) : 0.0f;
        }
#pragma unroll
        for (int p = 0; p < 8; p++) {
            const int e = tid + p * 256;
            const int r = BT ? e & 15 : e >> 7, j = BT ? e >> 4 : e & 127;
            const int64_t gj = j0 + j, gr = k0 + r;
            rbv[p] = (gj < Nc && gr < R) ? (BT ? tcu_wval<WT>(W, rb, gj, gr) : tcu_wval<WT>(W, rb, gr, gj)) : 0.0f;
        }
    };
    auto store = [&]() {
#pragma unroll
        for (int p = 0; p < 8; p++) {
            const int e = tid + p * 256;
            As[AT ? e >> 7 : e & 15][AT ? e & 127 : e >> 4] = ra[p];
            Bs[BT ? e & 15 : e >> 7][BT ? e >> 4 : e & 127] = rbv[p];
        }
    };

    float acc[8][8];
#pragma unroll
    for (int a = 0; a < 8; a++)
#pragma unroll
        for (int b = 0; b < 8; b++) acc[a][b] = 0.0f;

    load(0);
    store();
    __syncthreads();
    for (int64_t k0 = 0; k0 < R; k0 += BK) {
        const bool more = k0 + BK < R;
        if (more) load(k0 + BK);
#pragma unroll
        for (int k = 0; k < BK; k++) {
            const float4 a0 = *(const float4 *)&As[k][ty * 4], a1 = *(const float4 *)&As[k][64 + ty * 4];
            const float4 b0 = *(const float4 *)&Bs[k][tx * 4], b1 = *(const float4 *)&Bs[k][64 + tx * 4];
            const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int a = 0; a < 8; a++)
#pragma unroll
                for (int b = 0; b < 8; b++) acc[a][b] = fmaf(av[a], bv[b], acc[a][b]);
        }
        __syncthreads();
        if (more) { store(); __syncthreads(); }
    }
#pragma unroll
    for (int a = 0; a < 8; a++) {
        const int64_t gi = i0 + (a < 4 ? ty * 4 + a : 64 + ty * 4 + a - 4);
        if (gi >= M) continue;
#pragma unroll
        for (int b = 0; b < 8; b++) {
            const int64_t gj = j0 + (b < 4 ? tx * 4 + b : 64 + tx * 4 + b - 4);
            if (gj >= Nc) continue;
            float *c = C + gi * Nc + gj;
            const float v = acc[a][b];
            *c = epi == EPI_ACC ? *c + v : (bias ? v + bias[gj] : v);
        }
    }
}
} // namespace f32k

// ---- bf16 products on tensor cores: 128×128×32 tiles, 8 warps (4×2), each 32×64 -------------

namespace bf16k {
using namespace nvcuda;
constexpr int BM = 128, BN = 128, BK = 32, LDA = BK + 8, LDB = BN + 8;

template <bool AT, bool BT, int WT>
__global__ void __launch_bounds__(256) gemm(float *__restrict__ C, const float *__restrict__ A, const void *__restrict__ W,
                                            const float *__restrict__ bias, int64_t M, int64_t Nc, int64_t R,
                                            int64_t lda, int64_t rb, int epi) {
    __shared__ __align__(32) __nv_bfloat16 As[BM * LDA];  // A(i, k) at i·LDA + k   (row_major matrix_a)
    __shared__ __align__(32) __nv_bfloat16 Bs[BK * LDB];  // B(k, j) at k·LDB + j   (row_major matrix_b)
    __shared__ __align__(32) float Cs[8][16 * 16];        // per-warp epilogue staging
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wm = warp >> 1, wn = warp & 1;
    const int64_t i0 = (int64_t)blockIdx.y * BM, j0 = (int64_t)blockIdx.x * BN;
    float ra[16], rbv[16];

    auto load = [&](int64_t k0) {
#pragma unroll
        for (int p = 0; p < 16; p++) {
            const int e = tid + p * 256;
            const int r = AT ? e >> 7 : e & 31, i = AT ? e & 127 : e >> 5;
            const int64_t gi = i0 + i, gr = k0 + r;
            ra[p] = (gi < M && gr < R) ? (AT ? A[gr * lda + gi] : A[gi * lda + gr]) : 0.0f;
        }
#pragma unroll
        for (int p = 0; p < 16; p++) {
            const int e = tid + p * 256;
            const int r = BT ? e & 31 : e >> 7, j = BT ? e >> 5 : e & 127;
            const int64_t gj = j0 + j, gr = k0 + r;
            rbv[p] = (gj < Nc && gr < R) ? (BT ? tcu_wval<WT>(W, rb, gj, gr) : tcu_wval<WT>(W, rb, gr, gj)) : 0.0f;
        }
    };
    auto store = [&]() {
#pragma unroll
        for (int p = 0; p < 16; p++) {
            const int e = tid + p * 256;
            const int ar = AT ? e >> 7 : e & 31, ai = AT ? e & 127 : e >> 5;
            As[ai * LDA + ar] = __float2bfloat16_rn(ra[p]);
            const int br = BT ? e & 31 : e >> 7, bj = BT ? e >> 5 : e & 127;
            Bs[br * LDB + bj] = __float2bfloat16_rn(rbv[p]);
        }
    };

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][4];
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int b = 0; b < 4; b++) wmma::fill_fragment(acc[a][b], 0.0f);

    load(0);
    store();
    __syncthreads();
    for (int64_t k0 = 0; k0 < R; k0 += BK) {
        const bool more = k0 + BK < R;
        if (more) load(k0 + BK);
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb[4];
#pragma unroll
            for (int a = 0; a < 2; a++) wmma::load_matrix_sync(fa[a], &As[(wm * 32 + a * 16) * LDA + kk], LDA);
#pragma unroll
            for (int b = 0; b < 4; b++) wmma::load_matrix_sync(fb[b], &Bs[kk * LDB + wn * 64 + b * 16], LDB);
#pragma unroll
            for (int a = 0; a < 2; a++)
#pragma unroll
                for (int b = 0; b < 4; b++) wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
        }
        __syncthreads();
        if (more) { store(); __syncthreads(); }
    }
    float *cs = Cs[warp];
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            wmma::store_matrix_sync(cs, acc[a][b], 16, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                const int64_t gi = i0 + wm * 32 + a * 16 + (e >> 4), gj = j0 + wn * 64 + b * 16 + (e & 15);
                if (gi < M && gj < Nc) {
                    float *c = C + gi * Nc + gj;
                    const float v = cs[e];
                    *c = epi == EPI_ACC ? *c + v : (bias ? v + bias[gj] : v);
                }
            }
            __syncwarp();
        }
}
} // namespace bf16k

// ---- launchers (CPU signatures) --------------------------------------------------------------

template <bool AT, bool BT, int WT>
static void launch(bool bf16, float *C, const float *A, const void *W, const float *bias, int64_t M, int64_t Nc,
                   int64_t R, int64_t lda, int64_t rb, int epi) {
    if (M <= 0 || Nc <= 0) return;
    const dim3 grid((unsigned)((Nc + 127) / 128), (unsigned)((M + 127) / 128));
    if (bf16) bf16k::gemm<AT, BT, WT><<<grid, 256, 0, tcu_stream>>>(C, A, W, bias, M, Nc, R, lda, rb, epi);
    else f32k::gemm<AT, BT, WT><<<grid, 256, 0, tcu_stream>>>(C, A, W, bias, M, Nc, R, lda, rb, epi);
}

static int bad_shape(const char *what, int64_t T, int64_t K, int64_t N) {
    if (T < 0 || K <= 0 || N <= 0) { tcu_fail("%s: bad shape T=%lld K=%lld N=%lld", what, (long long)T, (long long)K, (long long)N); return 1; }
    if ((T + 127) / 128 > 65535 || (N + 127) / 128 > 65535 || (K + 127) / 128 > 65535) { tcu_fail("%s: shape too large for one launch (T=%lld K=%lld N=%lld)", what, (long long)T, (long long)K, (long long)N); return 1; }
    return 0;
}

static int forward(bool bf16, const char *what, float *out, const float *inp, const void *w, int wtype,
                   const float *bias, int64_t T, int64_t K, int64_t N) {
    if (bad_shape(what, T, K, N)) return -1;
    if (tcu_bad_row(what, wtype, K)) return -1;
    const int64_t rb = tcu_row_bytes(wtype, K);
    TCU_DISPATCH_TYPE(wtype, what, (launch<false, true, WT>(bf16, out, inp, w, bias, T, N, K, K, rb, EPI_STORE)));
    tcu_check_launch(what);
    return 0;
}

static int backward_input(bool bf16, const char *what, float *dinp, const float *dout, const void *w, int wtype,
                          int64_t T, int64_t K, int64_t N, int accumulate) {
    if (bad_shape(what, T, K, N)) return -1;
    if (tcu_bad_row(what, wtype, K)) return -1;
    const int64_t rb = tcu_row_bytes(wtype, K);
    TCU_DISPATCH_TYPE(wtype, what,
                      (launch<false, false, WT>(bf16, dinp, dout, w, nullptr, T, K, N, N, rb, accumulate ? EPI_ACC : EPI_STORE)));
    tcu_check_launch(what);
    return 0;
}

static void backward_weight(bool bf16, const char *what, float *dw, const float *dout, const float *inp,
                            int64_t T, int64_t K, int64_t N) {
    if (bad_shape(what, T, K, N)) return;
    if (T == 0) return;
    launch<true, false, TCU_F32>(bf16, dw, dout, inp, nullptr, N, K, T, N, K * 4, EPI_ACC);
    tcu_check_launch(what);
}

extern "C" int tcu_matmul_forward(float *out, const float *inp, const void *w, int wtype, const float *bias,
                                  int64_t T, int64_t K, int64_t N) {
    return forward(false, "tcu_matmul_forward", out, inp, w, wtype, bias, T, K, N);
}
extern "C" int tcu_matmul_forward_bf16(float *out, const float *inp, const void *w, int wtype, const float *bias,
                                       int64_t T, int64_t K, int64_t N) {
    return forward(true, "tcu_matmul_forward_bf16", out, inp, w, wtype, bias, T, K, N);
}
extern "C" int tcu_matmul_backward_input(float *dinp, const float *dout, const void *w, int wtype,
                                         int64_t T, int64_t K, int64_t N, int accumulate) {
    return backward_input(false, "tcu_matmul_backward_input", dinp, dout, w, wtype, T, K, N, accumulate);
}
extern "C" int tcu_matmul_backward_input_bf16(float *dinp, const float *dout, const void *w, int wtype,
                                              int64_t T, int64_t K, int64_t N, int accumulate) {
    return backward_input(true, "tcu_matmul_backward_input_bf16", dinp, dout, w, wtype, T, K, N, accumulate);
}
extern "C" void tcu_matmul_backward_weight(float *dw, const float *dout, const float *inp, int64_t T, int64_t K, int64_t N) {
    backward_weight(false, "tcu_matmul_backward_weight", dw, dout, inp, T, K, N);
}
extern "C" void tcu_matmul_backward_weight_bf16(float *dw, const float *dout, const float *inp, int64_t T, int64_t K, int64_t N) {
    backward_weight(true, "tcu_matmul_backward_weight_bf16", dw, dout, inp, T, K, N);
}
