// ops.cu — the non-GEMM ops with their CPU signatures on device pointers: embedding, RMSNorm,
// RoPE, SwiGLU, elementwise helpers, softmax cross-entropy, AdamW, Σx². Reductions accumulate in
// double where the CPU reference does, so results match it to rounding (see docs/cuda.md).
#include "common.cuh"
#include <math.h>

// ---- embedding ------------------------------------------------------------------------------

template <int WT>
__global__ void embedding_k(float *out, const int32_t *ids, const void *table, int64_t rb, int64_t T, int64_t C) {
    TCU_GRID_STRIDE(e, T * C) {
        const int64_t t = e / C, c = e % C;
        out[e] = tcu_wval<WT>(table, rb, ids[t], c);
    }
}

extern "C" int tcu_embedding_forward(float *out, const int32_t *ids, const void *table, int type, int64_t T, int64_t C) {
    const int64_t rb = tcu_row_bytes(type, C);
    if (T <= 0) return 0;
    if (C <= 0) { tcu_fail("tcu_embedding_forward: C=%lld is not positive", (long long)C); return -1; }
    if (tcu_bad_row("tcu_embedding_forward", type, C)) return -1;
    TCU_DISPATCH_TYPE(type, "tcu_embedding_forward",
                      (embedding_k<WT><<<tcu_blocks(T * C, 256), 256, 0, tcu_stream>>>(out, ids, table, rb, T, C)));
    tcu_check_launch("tcu_embedding_forward");
    return 0;
}

// ---- RMSNorm ----------------------------------------------------------------------------------

__global__ void rmsnorm_fwd_k(float *out, float *rstd, const float *inp, const float *w, float eps, int64_t C) {
    const int64_t t = blockIdx.x;
    const float *x = inp + t * C;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) ss += (double)x[i] * (double)x[i];
    ss = tcu_block_sum_d(ss);
    const float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) out[t * C + i] = __fmul_rn(__fmul_rn(x[i], r), w[i]);
    if (rstd && threadIdx.x == 0) rstd[t] = r;
}

extern "C" void tcu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, float eps, int64_t T, int64_t C) {
    if (T <= 0 || C <= 0) return;
    rmsnorm_fwd_k<<<(unsigned)T, 256, 0, tcu_stream>>>(out, rstd, inp, weight, eps, C);
    tcu_check_launch("tcu_rmsnorm_forward");
}

__global__ void rmsnorm_bwd_dx_k(float *dinp, const float *dout, const float *inp, const float *w, const float *rstd, int64_t C) {
    const int64_t t = blockIdx.x;
    const float *x = inp + t * C, *dy = dout + t * C;
    const double r = rstd[t];
    double dot = 0.0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) dot += (double)dy[i] * (double)w[i] * (double)x[i];
    dot = tcu_block_sum_d(dot);
    const double c = dot * r * r * r / (double)C;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
        dinp[t * C + i] = (float)(r * (double)dy[i] * (double)w[i] - c * (double)x[i]);
}

/* dweight[i] += Σ_t dy·x·rstd: one warp-column per channel group; threads stride over t. */
__global__ void rmsnorm_bwd_dw_k(float *dw, const float *dout, const float *inp, const float *rstd, int64_t T, int64_t C) {
    // block: 32 channels × 8 row-lanes
    const int64_t i = (int64_t)blockIdx.x * 32 + threadIdx.x;
    double s = 0.0;
    if (i < C)
        for (int64_t t = threadIdx.y; t < T; t += blockDim.y) s += (double)dout[t * C + i] * (double)inp[t * C + i] * (double)rstd[t];
    __shared__ double part[8][33];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && i < C) {
        double tot = 0.0;
        for (int y = 0; y < (int)blockDim.y; y++) tot += part[y][threadIdx.x];
        dw[i] = (float)((double)dw[i] + tot);
    }
}

extern "C" void tcu_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                                     const float *weight, const float *rstd, int64_t T, int64_t C) {
    if (T <= 0 || C <= 0) return;
    rmsnorm_bwd_dx_k<<<(unsigned)T, 256, 0, tcu_stream>>>(dinp, dout, inp, weight, rstd, C);
    if (dweight) rmsnorm_bwd_dw_k<<<(unsigned)((C + 31) / 32), dim3(32, 8), 0, tcu_stream>>>(dweight, dout, inp, rstd, T, C);
    tcu_check_launch("tcu_rmsnorm_backward");
}

// ---- RoPE (HF rotate_half; angles as rope.c) ----------------------------------------------------
// inv_freq[i] = 1 / theta^(2i/D) is computed on the host with the same float32 libm calls as the CPU
// (CUDA's powf is not correctly rounded, a 1-ulp difference would show at large positions), and goes
// to constant memory stream-ordered; angle = (float)pos · inv_freq in float32, cos/sin in double.

constexpr int ROPE_MAX_HALF = 1024;
__constant__ float c_inv_freq[ROPE_MAX_HALF];

template <bool BACKWARD>
__global__ void rope_k(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D) {
    const int64_t half = D / 2;
    TCU_GRID_STRIDE(e, T * H * half) {
        const int64_t i = e % half, th = e / half, t = th / H;
        const float a = __fmul_rn((float)pos[t], c_inv_freq[i]);
        const float c = (float)cos((double)a), s = (float)sin((double)a);
        float *v = x + th * D;
        const float x1 = v[i], x2 = v[i + half];
        if (!BACKWARD) {
            v[i] = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
            v[i + half] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
        } else {
            v[i] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
            v[i + half] = __fsub_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
        }
    }
}

template <bool BACKWARD>
static void rope(const char *what, float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta) {
    if (T <= 0 || H <= 0 || D < 2) return;
    const int64_t half = D / 2;
    if (half > ROPE_MAX_HALF) { tcu_fail("%s: head dim D=%lld > %d is not supported on CUDA", what, (long long)D, 2 * ROPE_MAX_HALF); return; }
    float f[ROPE_MAX_HALF];
    for (int64_t i = 0; i < half; i++) {
        volatile float e = (float)(2 * i) / (float)D; // no contraction / reassociation, as rope.c
        f[i] = 1.0f / powf(theta, e);
    }
    // Pageable source: the copy has staged f before returning, so f may go out of scope.
    cudaError_t err = cudaMemcpyToSymbolAsync(c_inv_freq, f, (size_t)half * sizeof(float), 0, cudaMemcpyHostToDevice, tcu_stream);
    if (err != cudaSuccess) { tcu_fail("%s: %s", what, cudaGetErrorString(err)); return; }
    rope_k<BACKWARD><<<tcu_blocks(T * H * half, 256), 256, 0, tcu_stream>>>(x, pos, T, H, D);
    tcu_check_launch(what);
}

extern "C" void tcu_rope_forward(float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta) {
    rope<false>("tcu_rope_forward", x, pos, T, H, D, theta);
}
extern "C" void tcu_rope_backward(float *dx, const int32_t *pos, int64_t T, int64_t H, int64_t D, float theta) {
    rope<true>("tcu_rope_backward", dx, pos, T, H, D, theta);
}

// ---- SwiGLU & elementwise ------------------------------------------------------------------------

__global__ void swiglu_fwd_k(float *out, const float *g, const float *u, int64_t n) {
    TCU_GRID_STRIDE(i, n) out[i] = __fmul_rn(__fdiv_rn(g[i], __fadd_rn(1.0f, expf(-g[i]))), u[i]);
}
__global__ void swiglu_bwd_k(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n) {
    TCU_GRID_STRIDE(i, n) {
        const double gg = g[i], sg = 1.0 / (1.0 + exp(-gg));
        du[i] = (float)((double)dy[i] * gg * sg);
        dg[i] = (float)((double)dy[i] * (double)u[i] * sg * (1.0 + gg * (1.0 - sg)));
    }
}
__global__ void add_k(float *x, const float *y, int64_t n) { TCU_GRID_STRIDE(i, n) x[i] = x[i] + y[i]; }
__global__ void axpy_k(float *x, const float *y, float s, int64_t n) { TCU_GRID_STRIDE(i, n) x[i] = fmaf(s, y[i], x[i]); }
__global__ void scale_k(float *x, float s, int64_t n) { TCU_GRID_STRIDE(i, n) x[i] = x[i] * s; }
__global__ void mul_k(float *x, const float *y, int64_t n) { TCU_GRID_STRIDE(i, n) x[i] = __fmul_rn(x[i], y[i]); }

#define TCU_EW(name, ...)                                                        \
    if (n <= 0) return;                                                          \
    name<<<tcu_blocks(n, 256), 256, 0, tcu_stream>>>(__VA_ARGS__);               \
    tcu_check_launch(#name);

extern "C" void tcu_swiglu_forward(float *out, const float *gate, const float *up, int64_t n) { TCU_EW(swiglu_fwd_k, out, gate, up, n) }
extern "C" void tcu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n) {
    TCU_EW(swiglu_bwd_k, dgate, dup, dout, gate, up, n)
}
extern "C" void tcu_add_inplace(float *x, const float *y, int64_t n) { TCU_EW(add_k, x, y, n) }
extern "C" void tcu_axpy(float *x, const float *y, float s, int64_t n) { TCU_EW(axpy_k, x, y, s, n) }
extern "C" void tcu_scale(float *x, float s, int64_t n) { TCU_EW(scale_k, x, s, n) }
/* ABI v2: the LoRA dropout mask product (x *= mask·1/(1−p)). */
extern "C" void tcu_mul_inplace(float *x, const float *y, int64_t n) { TCU_EW(mul_k, x, y, n) }

// ---- softmax cross-entropy (one block per row, in place) ------------------------------------------

__global__ void xent_k(float *losses, float *logits, const int32_t *targets, float scale, int64_t V, int *counted) {
    const int64_t t = blockIdx.x;
    float *x = logits + t * V;
    const int32_t y = targets[t];
    if (y < 0 || y >= V) {
        for (int64_t i = threadIdx.x; i < V; i += blockDim.x) x[i] = 0.0f;
        if (threadIdx.x == 0) losses[t] = 0.0f;
        return;
    }
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, x[i]);
    m = tcu_block_max(m);
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += exp((double)x[i] - (double)m);
    s = tcu_block_sum_d(s);
    const double lse = (double)m + log(s);
    __syncthreads(); // every thread has read x[y] territory before it is overwritten below
    const float xy = x[y];
    __syncthreads();
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        x[i] = (float)((exp((double)x[i] - lse) - (i == y ? 1.0 : 0.0)) * (double)scale);
    if (threadIdx.x == 0) { losses[t] = (float)(lse - (double)xy); atomicAdd(counted, 1); }
}

extern "C" int64_t tcu_xent_forward_backward(float *losses, float *logits, const int32_t *targets, float scale, int64_t T, int64_t V) {
    if (T <= 0 || V <= 0) return 0;
    int *cnt = (int *)tcu_scratch(sizeof(int));
    if (!cnt) return 0;
    cudaMemsetAsync(cnt, 0, sizeof(int), tcu_stream);
    xent_k<<<(unsigned)T, 1024, 0, tcu_stream>>>(losses, logits, targets, scale, V, cnt);
    tcu_check_launch("tcu_xent_forward_backward");
    int h = 0;
    if (cudaMemcpyAsync(&h, cnt, sizeof(int), cudaMemcpyDeviceToHost, tcu_stream) != cudaSuccess ||
        cudaStreamSynchronize(tcu_stream) != cudaSuccess)
        tcu_check_launch("tcu_xent_forward_backward (count)");
    return h;
}

// ---- AdamW (same arithmetic as ck_adamw_step_ref: f32 moments, double update) -----------------------

__global__ void adamw_k(float *p, const float *g, float *m, float *v, int64_t n, float lr, float b1, float b2,
                        float eps, float wd, double c1, double c2) {
    TCU_GRID_STRIDE(i, n) {
        const float gi = g[i];
        const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(1.0f - b1, gi));
        const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(1.0f - b2, gi), gi));
        m[i] = mi; v[i] = vi;
        const double mh = mi / c1, vh = vi / c2;
        p[i] = (float)((double)p[i] - (double)lr * (mh / (sqrt(vh) + (double)eps) + (double)wd * (double)p[i]));
    }
}

extern "C" void tcu_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1,
                               float beta2, float eps, float weight_decay, int64_t step) {
    if (n <= 0) return;
    const double c1 = 1.0 - pow((double)beta1, (double)step), c2 = 1.0 - pow((double)beta2, (double)step);
    adamw_k<<<tcu_blocks(n, 256), 256, 0, tcu_stream>>>(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, c1, c2);
    tcu_check_launch("tcu_adamw_step");
}

// ---- Σx² (two passes, fixed block count: deterministic) ------------------------------------------

__global__ void sumsq_part_k(double *part, const float *x, int64_t n) {
    double s = 0.0;
    TCU_GRID_STRIDE(i, n) s += (double)x[i] * (double)x[i];
    s = tcu_block_sum_d(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}
__global__ void sumsq_final_k(double *part, int nb) {
    double s = 0.0;
    for (int i = threadIdx.x; i < nb; i += blockDim.x) s += part[i];
    s = tcu_block_sum_d(s);
    if (threadIdx.x == 0) part[nb] = s;
}

extern "C" double tcu_sumsq(const float *x, int64_t n) {
    if (n <= 0) return 0.0;
    const int nb = 512;
    double *part = (double *)tcu_scratch((nb + 1) * sizeof(double));
    if (!part) return 0.0;
    sumsq_part_k<<<nb, 256, 0, tcu_stream>>>(part, x, n);
    sumsq_final_k<<<1, 512, 0, tcu_stream>>>(part, nb);
    tcu_check_launch("tcu_sumsq");
    double h = 0.0;
    if (cudaMemcpyAsync(&h, part + nb, sizeof(double), cudaMemcpyDeviceToHost, tcu_stream) != cudaSuccess ||
        cudaStreamSynchronize(tcu_stream) != cudaSuccess)
        tcu_check_launch("tcu_sumsq (result)");
    return h;
}
