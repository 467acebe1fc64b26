// bench_gemm.cu — libtunecuda's GEMMs vs cuBLAS at SmolLM2-135M shapes for a batch of 8×1024 tokens
// (M = 8192; hidden 576, intermediate 1536, kv 192, vocab 49152), in the three training layouts,
// f32 (vs cublasSgemm, no TF32) and bf16 products (vs cublasGemmEx bf16→f32). Prints per shape the
// time of both, the ratio cuBLAS/tune (≥ 0.8 is the target; 1.0 = as fast as cuBLAS) and the NMSE
// between the two results (the "GEMM vs cuBLAS" correctness check), then the geometric-mean ratio.
// cuBLAS is dlopen'ed (CUBLAS_LIB, else libcublas.so.13/.12 on the loader path, else PyTorch's
// wheels under python3's site-packages), so nothing links against it and no cuBLAS header is needed.
#include "tunecuda.h"
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <string>
#include <vector>

// ---- the slice of the cuBLAS ABI we call (values from cublas_api.h / library_types.h) ---------
typedef void *cublasHandle_t;
enum { OP_N = 0, OP_T = 1, R_32F = 0, R_16BF = 14, COMPUTE_32F = 68, GEMM_DEFAULT = -1 };
static int (*cublasCreate)(cublasHandle_t *);
static int (*cublasSgemm)(cublasHandle_t, int, int, int, int, int, const float *, const float *, int, const float *, int,
                          const float *, float *, int);
static int (*cublasGemmEx)(cublasHandle_t, int, int, int, int, int, const void *, const void *, int, int, const void *, int,
                           int, const void *, void *, int, int, int, int);

static void *open_cublas() {
    std::vector<std::string> tries;
    if (const char *e = getenv("CUBLAS_LIB")) tries.push_back(e);
    tries.push_back("libcublas.so.13"); tries.push_back("libcublas.so.12"); tries.push_back("libcublas.so");
    for (auto &t : tries) if (void *h = dlopen(t.c_str(), RTLD_NOW | RTLD_GLOBAL)) { printf("cuBLAS: %s\n", t.c_str()); return h; }
    FILE *f = popen("python3 -c 'import site;print(\"\\n\".join(site.getsitepackages()))' 2>/dev/null | "
                    "while read d; do find \"$d/nvidia\" -name 'libcublas.so.*' 2>/dev/null; done | sort -r | head -1", "r");
    char path[1024] = {0};
    if (f) { if (!fgets(path, sizeof path, f)) path[0] = 0; pclose(f); }
    path[strcspn(path, "\n")] = 0;
    if (path[0]) {
        // libcublas needs libcublasLt from the same directory first.
        std::string lt = std::string(path); lt = lt.substr(0, lt.rfind('/')) + "/libcublasLt.so." + lt.substr(lt.rfind(".so.") + 4);
        dlopen(lt.c_str(), RTLD_NOW | RTLD_GLOBAL);
        if (void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL)) { printf("cuBLAS: %s\n", path); return h; }
    }
    return nullptr;
}

static double now() { timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
template <class F> static double time_ms(F f, int iters = 10) {
    f(); f(); cudaDeviceSynchronize(); tcu_sync(nullptr, 0);
    const double t0 = now();
    for (int i = 0; i < iters; i++) f();
    cudaDeviceSynchronize(); tcu_sync(nullptr, 0);
    return (now() - t0) * 1e3 / iters;
}

static float *dev_rand(size_t n, unsigned seed) {
    std::vector<float> h(n); uint32_t s = seed * 2654435761u + 1;
    for (auto &x : h) { s = s * 1664525u + 1013904223u; x = ((s >> 8) * (1.0f / 16777216.0f) - 0.5f); }
    float *d; cudaMalloc(&d, n * 4); cudaMemcpy(d, h.data(), n * 4, cudaMemcpyHostToDevice); return d;
}
__global__ void to_bf16(__nv_bfloat16 *o, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) o[i] = __float2bfloat16_rn(x[i]);
}
static __nv_bfloat16 *bf(const float *x, size_t n) { __nv_bfloat16 *o; cudaMalloc(&o, n * 2); to_bf16<<<1024, 256>>>(o, x, n); return o; }
static double nmse(const float *a, const float *b, size_t n) {
    std::vector<float> x(n), y(n); cudaMemcpy(x.data(), a, n * 4, cudaMemcpyDeviceToHost); cudaMemcpy(y.data(), b, n * 4, cudaMemcpyDeviceToHost);
    double num = 0, den = 0; for (size_t i = 0; i < n; i++) { double d = (double)x[i] - y[i]; num += d * d; den += (double)y[i] * y[i]; }
    return num / den;
}

int main() {
    char why[256];
    if (tunecuda_init(why, sizeof why) != 0) { printf("no usable GPU: %s\n", why); return 2; }
    char info[256]; tunecuda_device_info(info, sizeof info); printf("device: %s\n", info);
    void *lib = open_cublas();
    if (!lib) { printf("cuBLAS not found (set CUBLAS_LIB=/path/libcublas.so.N)\n"); return 2; }
    cublasCreate = (decltype(cublasCreate))dlsym(lib, "cublasCreate_v2");
    cublasSgemm = (decltype(cublasSgemm))dlsym(lib, "cublasSgemm_v2");
    cublasGemmEx = (decltype(cublasGemmEx))dlsym(lib, "cublasGemmEx");
    cublasHandle_t h;
    if (!cublasCreate || !cublasSgemm || !cublasGemmEx || cublasCreate(&h) != 0) { printf("cuBLAS unusable\n"); return 2; }

    const int M = 8192;
    struct Shape { const char *name; int K, N; } shapes[] = {
        {"q/o proj", 576, 576}, {"k/v proj", 576, 192}, {"gate/up", 576, 1536}, {"down", 1536, 576}, {"lm head", 576, 49152}};
    const float one = 1.0f, zero = 0.0f;
    double logsum[2] = {0, 0}; int cnt[2] = {0, 0};
    printf("%-9s %-5s %-4s %6s %6s  %9s %9s %7s %8s %9s\n", "shape", "layer", "prec", "K", "N", "tune ms", "cuBLAS ms", "ratio", "TFLOP/s", "nmse");
    for (auto &s : shapes) {
        const int K = s.K, N = s.N;
        float *X = dev_rand((size_t)M * K, 1), *W = dev_rand((size_t)N * K, 2), *dY = dev_rand((size_t)M * N, 3);
        float *Y1, *Y2, *dX1, *dX2, *dW1, *dW2;
        cudaMalloc(&Y1, (size_t)M * N * 4); cudaMalloc(&Y2, (size_t)M * N * 4);
        cudaMalloc(&dX1, (size_t)M * K * 4); cudaMalloc(&dX2, (size_t)M * K * 4);
        cudaMalloc(&dW1, (size_t)N * K * 4); cudaMalloc(&dW2, (size_t)N * K * 4);
        __nv_bfloat16 *Xb = bf(X, (size_t)M * K), *Wb = bf(W, (size_t)N * K), *dYb = bf(dY, (size_t)M * N);
        const double flop = 2.0 * M * K * N;
        for (int prec = 0; prec < 2; prec++) {
            const bool b16 = prec == 1;
            for (int layout = 0; layout < 3; layout++) {
                double tt, tc, err;
                if (layout == 0) { // Y = X·Wᵀ
                    tt = time_ms([&] { b16 ? tcu_matmul_forward_bf16(Y1, X, W, 0, nullptr, M, K, N) : tcu_matmul_forward(Y1, X, W, 0, nullptr, M, K, N); });
                    tc = time_ms([&] { b16 ? cublasGemmEx(h, OP_T, OP_N, N, M, K, &one, Wb, R_16BF, K, Xb, R_16BF, K, &zero, Y2, R_32F, N, COMPUTE_32F, GEMM_DEFAULT)
                                           : cublasSgemm(h, OP_T, OP_N, N, M, K, &one, W, K, X, K, &zero, Y2, N); });
                    err = nmse(Y1, Y2, (size_t)M * N);
                } else if (layout == 1) { // dX = dY·W
                    tt = time_ms([&] { b16 ? tcu_matmul_backward_input_bf16(dX1, dY, W, 0, M, K, N, 0) : tcu_matmul_backward_input(dX1, dY, W, 0, M, K, N, 0); });
                    tc = time_ms([&] { b16 ? cublasGemmEx(h, OP_N, OP_N, K, M, N, &one, Wb, R_16BF, K, dYb, R_16BF, N, &zero, dX2, R_32F, K, COMPUTE_32F, GEMM_DEFAULT)
                                           : cublasSgemm(h, OP_N, OP_N, K, M, N, &one, W, K, dY, N, &zero, dX2, K); });
                    err = nmse(dX1, dX2, (size_t)M * K);
                } else { // dW += dYᵀ·X  (both start from 0 and run the same number of times)
                    cudaMemset(dW1, 0, (size_t)N * K * 4); cudaMemset(dW2, 0, (size_t)N * K * 4);
                    tt = time_ms([&] { b16 ? tcu_matmul_backward_weight_bf16(dW1, dY, X, M, K, N) : tcu_matmul_backward_weight(dW1, dY, X, M, K, N); });
                    tc = time_ms([&] { b16 ? cublasGemmEx(h, OP_N, OP_T, K, N, M, &one, Xb, R_16BF, K, dYb, R_16BF, N, &one, dW2, R_32F, K, COMPUTE_32F, GEMM_DEFAULT)
                                           : cublasSgemm(h, OP_N, OP_T, K, N, M, &one, X, K, dY, N, &one, dW2, K); });
                    err = nmse(dW1, dW2, (size_t)N * K);
                }
                const double ratio = tc / tt;
                logsum[prec] += log(ratio); cnt[prec]++;
                printf("%-9s %-5s %-4s %6d %6d  %9.3f %9.3f %7.2f %8.1f %9.2g\n", s.name, layout == 0 ? "Y" : layout == 1 ? "dX" : "dW",
                       b16 ? "bf16" : "f32", K, N, tt, tc, ratio, flop / tt * 1e-9, err);
            }
        }
        // Fused Q4_1 forward: no cuBLAS twin; reported against cuBLAS f32 on the dequantized weights.
        {
            const size_t rb = (size_t)K / 32 * 20;
            std::vector<uint8_t> q((size_t)N * rb);
            uint32_t st = 7; for (auto &b : q) { st = st * 1664525u + 1013904223u; b = (uint8_t)(st >> 24); }
            for (size_t r = 0; r < (size_t)N * K / 32; r++) { q[r * 20 + 0] = 0x00; q[r * 20 + 1] = 0x20; q[r * 20 + 2] = 0x00; q[r * 20 + 3] = 0xa0; }
            void *Wq; cudaMalloc(&Wq, q.size()); cudaMemcpy(Wq, q.data(), q.size(), cudaMemcpyHostToDevice);
            const double t1 = time_ms([&] { tcu_matmul_forward(Y1, X, Wq, 3, nullptr, M, K, N); });
            const double t2 = time_ms([&] { tcu_matmul_forward_bf16(Y1, X, Wq, 3, nullptr, M, K, N); });
            printf("%-9s %-5s %-4s %6d %6d  %9.3f %9s   (q4_1 fused dequant; bf16 products: %.3f ms)\n", s.name, "Y", "q4_1", K, N, t1, "-", t2);
            cudaFree(Wq);
        }
        char err[256]; if (tcu_sync(err, sizeof err)) { printf("CUDA error: %s\n", err); return 1; }
        cudaFree(X); cudaFree(W); cudaFree(dY); cudaFree(Y1); cudaFree(Y2); cudaFree(dX1); cudaFree(dX2); cudaFree(dW1); cudaFree(dW2);
        cudaFree(Xb); cudaFree(Wb); cudaFree(dYb);
    }
    printf("geomean ratio cuBLAS/tune: f32 %.2f, bf16 %.2f (target >= 0.80)\n", exp(logsum[0] / cnt[0]), exp(logsum[1] / cnt[1]));
    return 0;
}
