// attention.cu — causal grouped-query attention, forward (inference with pos0/Tkv, and training with
// lse) and backward, flash-style: online softmax, scores recomputed in the backward from q, k and lse,
// no T×T matrix (extra memory: delta [T, H] only). One warp per (query, head) for the forward and
// dq, one warp per (key, kv head) for dk/dv; each lane scores one key (query) of a 32-wide chunk,
// then the warp accumulates the chunk's D-vectors with each lane owning D/32 components.
// Head dim D ≤ 256 (SmolLM2: 64); larger D records an error and leaves outputs untouched.
#include "common.cuh"
#include <math.h>

namespace {
constexpr int WARPS = 4, MAXD = 256;

__device__ __forceinline__ float dot_smem(const float *a, const float *g, int64_t D) {
    float s = 0.0f;
    for (int64_t i = 0; i < D; i++) s = fmaf(a[i], g[i], s);
    return s;
}

template <int DC>
__global__ void __launch_bounds__(WARPS * 32) attn_fwd_k(float *out, float *lse, const float *q, const float *k, const float *v,
                                                         int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D, float scale) {
    __shared__ float sq[WARPS][MAXD];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * WARPS + warp;
    if (row >= T * H) return;
    const int64_t t = row / H, h = row % H, hk = h / (H / Hkv), n = pos0 + t + 1;
    const float *qv = q + row * D;
    for (int64_t i = lane; i < D; i += 32) sq[warp][i] = qv[i];
    __syncwarp();
    float m = -INFINITY, l = 0.0f, o[DC];
#pragma unroll
    for (int c = 0; c < DC; c++) o[c] = 0.0f;
    for (int64_t j0 = 0; j0 < n; j0 += 32) {
        const int64_t j = j0 + lane;
        const float s = j < n ? dot_smem(sq[warp], k + (j * Hkv + hk) * D, D) * scale : -INFINITY;
        const float mn = fmaxf(m, tcu_warp_max(s));
        const float p = j < n ? expf(s - mn) : 0.0f, corr = expf(m - mn);
        l = l * corr + tcu_warp_sum(p);
#pragma unroll
        for (int c = 0; c < DC; c++) o[c] *= corr;
        const int cnt = (int)(n - j0 < 32 ? n - j0 : 32);
        for (int jj = 0; jj < cnt; jj++) {
            const float pj = __shfl_sync(0xffffffffu, p, jj);
            const float *vr = v + ((j0 + jj) * Hkv + hk) * D;
#pragma unroll
            for (int c = 0; c < DC; c++) {
                const int64_t d = lane + 32 * c;
                if (d < D) o[c] = fmaf(pj, vr[d], o[c]);
            }
        }
        m = mn;
    }
    const float inv = 1.0f / l;
#pragma unroll
    for (int c = 0; c < DC; c++) {
        const int64_t d = lane + 32 * c;
        if (d < D) out[row * D + d] = o[c] * inv;
    }
    if (lse && lane == 0) lse[row] = m + logf(l);
}

__global__ void attn_delta_k(float *delta, const float *dout, const float *out, int64_t rows, int64_t D) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * WARPS + warp;
    if (row >= rows) return;
    float s = 0.0f;
    for (int64_t i = lane; i < D; i += 32) s = fmaf(dout[row * D + i], out[row * D + i], s);
    s = tcu_warp_sum(s);
    if (lane == 0) delta[row] = s;
}

template <int DC>
__global__ void __launch_bounds__(WARPS * 32) attn_dq_k(float *dq, const float *dout, const float *q, const float *k, const float *v,
                                                        const float *lse, const float *delta, int64_t T, int64_t H, int64_t Hkv,
                                                        int64_t D, float scale) {
    __shared__ float sq[WARPS][MAXD], sg[WARPS][MAXD];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * WARPS + warp;
    if (row >= T * H) return;
    const int64_t t = row / H, h = row % H, hk = h / (H / Hkv), n = t + 1;
    for (int64_t i = lane; i < D; i += 32) { sq[warp][i] = q[row * D + i]; sg[warp][i] = dout[row * D + i]; }
    __syncwarp();
    const float L = lse[row], dl = delta[row];
    float acc[DC];
#pragma unroll
    for (int c = 0; c < DC; c++) acc[c] = 0.0f;
    for (int64_t j0 = 0; j0 < n; j0 += 32) {
        const int64_t j = j0 + lane;
        float ds = 0.0f;
        if (j < n) {
            const int64_t ki = (j * Hkv + hk) * D;
            const float s = dot_smem(sq[warp], k + ki, D) * scale, dp = dot_smem(sg[warp], v + ki, D);
            ds = expf(s - L) * (dp - dl) * scale;
        }
        const int cnt = (int)(n - j0 < 32 ? n - j0 : 32);
        for (int jj = 0; jj < cnt; jj++) {
            const float d = __shfl_sync(0xffffffffu, ds, jj);
            const float *kr = k + ((j0 + jj) * Hkv + hk) * D;
#pragma unroll
            for (int c = 0; c < DC; c++) {
                const int64_t e = lane + 32 * c;
                if (e < D) acc[c] = fmaf(d, kr[e], acc[c]);
            }
        }
    }
#pragma unroll
    for (int c = 0; c < DC; c++) {
        const int64_t e = lane + 32 * c;
        if (e < D) dq[row * D + e] = acc[c];
    }
}

template <int DC>
__global__ void __launch_bounds__(WARPS * 32) attn_dkv_k(float *dk, float *dv, const float *dout, const float *q, const float *k,
                                                         const float *v, const float *lse, const float *delta, int64_t T, int64_t H,
                                                         int64_t Hkv, int64_t D, float scale) {
    __shared__ float sk[WARPS][MAXD], sv[WARPS][MAXD];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * WARPS + warp; // (j, hk)
    if (row >= T * Hkv) return;
    const int64_t j = row / Hkv, hk = row % Hkv, group = H / Hkv;
    for (int64_t i = lane; i < D; i += 32) { sk[warp][i] = k[row * D + i]; sv[warp][i] = v[row * D + i]; }
    __syncwarp();
    float ak[DC], av[DC];
#pragma unroll
    for (int c = 0; c < DC; c++) ak[c] = av[c] = 0.0f;
    for (int64_t h = hk * group; h < (hk + 1) * group; h++)
        for (int64_t t0 = j; t0 < T; t0 += 32) {
            const int64_t t = t0 + lane;
            float p = 0.0f, ds = 0.0f;
            if (t < T) {
                const int64_t qi = t * H + h;
                const float s = dot_smem(sk[warp], q + qi * D, D) * scale, dp = dot_smem(sv[warp], dout + qi * D, D);
                p = expf(s - lse[qi]);
                ds = p * (dp - delta[qi]) * scale;
            }
            const int cnt = (int)(T - t0 < 32 ? T - t0 : 32);
            for (int tt = 0; tt < cnt; tt++) {
                const float pt = __shfl_sync(0xffffffffu, p, tt), dt = __shfl_sync(0xffffffffu, ds, tt);
                const int64_t qi = (t0 + tt) * H + h;
#pragma unroll
                for (int c = 0; c < DC; c++) {
                    const int64_t e = lane + 32 * c;
                    if (e < D) { ak[c] = fmaf(dt, q[qi * D + e], ak[c]); av[c] = fmaf(pt, dout[qi * D + e], av[c]); }
                }
            }
        }
#pragma unroll
    for (int c = 0; c < DC; c++) {
        const int64_t e = lane + 32 * c;
        if (e < D) { dk[row * D + e] = ak[c]; dv[row * D + e] = av[c]; }
    }
}

bool bad(const char *what, int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D) {
    if (T <= 0 || H <= 0 || D <= 0 || Hkv <= 0 || H % Hkv != 0 || pos0 < 0 || Tkv < pos0 + T) return true; // CPU: untouched
    if (D > MAXD) { tcu_fail("%s: head dim D=%lld > %d is not supported on CUDA", what, (long long)D, MAXD); return true; }
    return false;
}

#define TCU_DC_DISPATCH(D, KERNEL, grid, ...)                                                         \
    do {                                                                                              \
        if ((D) <= 32) KERNEL<1><<<grid, WARPS * 32, 0, tcu_stream>>>(__VA_ARGS__);                  \
        else if ((D) <= 64) KERNEL<2><<<grid, WARPS * 32, 0, tcu_stream>>>(__VA_ARGS__);             \
        else if ((D) <= 128) KERNEL<4><<<grid, WARPS * 32, 0, tcu_stream>>>(__VA_ARGS__);            \
        else KERNEL<8><<<grid, WARPS * 32, 0, tcu_stream>>>(__VA_ARGS__);                            \
    } while (0)

unsigned warps_grid(int64_t rows) { return (unsigned)((rows + WARPS - 1) / WARPS); }
} // namespace

extern "C" void tcu_attention_forward(float *out, const float *q, const float *k, const float *v,
                                      int64_t T, int64_t Tkv, int64_t pos0, int64_t H, int64_t Hkv, int64_t D) {
    if (bad("tcu_attention_forward", T, Tkv, pos0, H, Hkv, D)) return;
    const float scale = (float)(1.0 / sqrt((double)D));
    TCU_DC_DISPATCH(D, attn_fwd_k, warps_grid(T * H), out, nullptr, q, k, v, T, Tkv, pos0, H, Hkv, D, scale);
    tcu_check_launch("tcu_attention_forward");
}

extern "C" void tcu_attention_forward_train(float *out, float *lse, const float *q, const float *k, const float *v,
                                            int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    if (bad("tcu_attention_forward_train", T, T, 0, H, Hkv, D)) return;
    const float scale = (float)(1.0 / sqrt((double)D));
    TCU_DC_DISPATCH(D, attn_fwd_k, warps_grid(T * H), out, lse, q, k, v, T, T, (int64_t)0, H, Hkv, D, scale);
    tcu_check_launch("tcu_attention_forward_train");
}

extern "C" void tcu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                       const float *k, const float *v, const float *out, const float *lse,
                                       int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    if (bad("tcu_attention_backward", T, T, 0, H, Hkv, D)) return;
    float *delta = (float *)tcu_scratch((size_t)(T * H) * sizeof(float));
    if (!delta) return;
    const float scale = (float)(1.0 / sqrt((double)D));
    attn_delta_k<<<warps_grid(T * H), WARPS * 32, 0, tcu_stream>>>(delta, dout, out, T * H, D);
    TCU_DC_DISPATCH(D, attn_dq_k, warps_grid(T * H), dq, dout, q, k, v, lse, delta, T, H, Hkv, D, scale);
    TCU_DC_DISPATCH(D, attn_dkv_k, warps_grid(T * Hkv), dk, dv, dout, q, k, v, lse, delta, T, H, Hkv, D, scale);
    tcu_check_launch("tcu_attention_backward");
}
