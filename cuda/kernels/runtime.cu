// runtime.cu — library lifecycle: ABI version, device init with a one-line reason on failure,
// device info, memory, the sticky error record and scratch memory.
#include "common.cuh"
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cudaStream_t tcu_stream = 0;
static char g_err[512];
static int g_has_err = 0;
static int g_ready = 0;
static void *g_scratch = nullptr;
static size_t g_scratch_bytes = 0;

static void put(char *dst, size_t n, const char *s) {
    if (dst && n) { snprintf(dst, n, "%s", s); }
}

void tcu_fail(const char *fmt, ...) {
    if (g_has_err) return;
    va_list ap; va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    g_has_err = 1;
}

void tcu_check_launch(const char *what) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) tcu_fail("%s: %s", what, cudaGetErrorString(e));
}

void *tcu_scratch(size_t bytes) {
    if (bytes <= g_scratch_bytes) return g_scratch;
    if (g_scratch) { cudaStreamSynchronize(tcu_stream); cudaFree(g_scratch); g_scratch = nullptr; g_scratch_bytes = 0; }
    size_t want = bytes < (1u << 20) ? (1u << 20) : bytes;
    if (cudaMalloc(&g_scratch, want) != cudaSuccess) {
        cudaGetLastError();
        tcu_fail("scratch: cannot allocate %zu bytes of device memory", want);
        g_scratch = nullptr;
        return nullptr;
    }
    g_scratch_bytes = want;
    return g_scratch;
}

extern "C" int tunecuda_abi_version(void) { return TUNECUDA_ABI_VERSION; }

extern "C" int tunecuda_init(char *why, size_t n) {
    if (g_ready) return 0;
    // The runtime is linked statically; it needs the driver library. Name that case plainly.
    void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!drv) { put(why, n, "no NVIDIA driver (libcuda.so.1 not found)"); return 1; }
    int (*drv_version)(int *) = (int (*)(int *))dlsym(drv, "cuDriverGetVersion");
    int dv = 0;
    if (drv_version) drv_version(&dv);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    char buf[512];
    if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) { put(why, n, "no CUDA-capable device"); return 2; }
    if (e == cudaErrorInsufficientDriver) {
        snprintf(buf, sizeof buf, "CUDA driver too old (driver supports CUDA %d.%d, this library needs %d.%d)",
                 dv / 1000, dv % 1000 / 10, CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
        put(why, n, buf); return 3;
    }
    if (e != cudaSuccess) { snprintf(buf, sizeof buf, "CUDA init failed: %s", cudaGetErrorString(e)); put(why, n, buf); return 4; }
    int dev = 0;
    const char *env = getenv("TUNE_CUDA_DEVICE");
    if (env && *env) dev = atoi(env);
    if (dev < 0 || dev >= count) {
        snprintf(buf, sizeof buf, "TUNE_CUDA_DEVICE=%s but there are %d device(s)", env, count); put(why, n, buf); return 5;
    }
    cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, dev)) != cudaSuccess || (e = cudaSetDevice(dev)) != cudaSuccess) {
        snprintf(buf, sizeof buf, "CUDA device %d: %s", dev, cudaGetErrorString(e)); put(why, n, buf); return 4;
    }
    if (p.major < 8) {
        snprintf(buf, sizeof buf, "GPU %s is sm_%d%d; libtunecuda.so needs sm_80 or newer", p.name, p.major, p.minor);
        put(why, n, buf); return 6;
    }
    if ((e = cudaStreamCreateWithFlags(&tcu_stream, cudaStreamNonBlocking)) != cudaSuccess) {
        snprintf(buf, sizeof buf, "cannot create a CUDA stream: %s", cudaGetErrorString(e)); put(why, n, buf); return 4;
    }
    g_ready = 1;
    put(why, n, "");
    return 0;
}

extern "C" void tunecuda_device_info(char *buf, size_t n) {
    int dev = 0, dv = 0;
    cudaDeviceProp p;
    if (!g_ready || cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        put(buf, n, "not initialized"); return;
    }
    cudaDriverGetVersion(&dv);
    snprintf(buf, n, "%s, sm_%d%d, %.1f GiB, %d SMs, driver CUDA %d.%d, runtime %d.%d", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.multiProcessorCount,
             dv / 1000, dv % 1000 / 10, CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
}

extern "C" void *tcu_malloc(size_t bytes) {
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) { cudaGetLastError(); tcu_fail("tcu_malloc(%zu): %s", bytes, cudaGetErrorString(e)); return nullptr; }
    return p;
}

extern "C" void tcu_free(void *p) {
    if (p) { cudaStreamSynchronize(tcu_stream); cudaFree(p); }
}

extern "C" int tcu_memcpy(void *dst, const void *src, size_t bytes, int kind) {
    const cudaMemcpyKind k = kind == 0 ? cudaMemcpyHostToDevice : kind == 1 ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
    if (kind < 0 || kind > 2) { tcu_fail("tcu_memcpy: kind %d (expected 0 h2d, 1 d2h, 2 d2d)", kind); return -1; }
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, k, tcu_stream);
    if (e == cudaSuccess && kind != 2) e = cudaStreamSynchronize(tcu_stream); // d2d: stream-ordered (v2)
    if (e != cudaSuccess) { tcu_fail("tcu_memcpy(%zu bytes): %s", bytes, cudaGetErrorString(e)); return -1; }
    return 0;
}

extern "C" int tcu_memset(void *dst, int value, size_t bytes) {
    cudaError_t e = cudaMemsetAsync(dst, value, bytes, tcu_stream);
    if (e != cudaSuccess) { tcu_fail("tcu_memset(%zu bytes): %s", bytes, cudaGetErrorString(e)); return -1; }
    return 0;
}

extern "C" int tcu_sync(char *why, size_t n) {
    const cudaError_t e = cudaStreamSynchronize(tcu_stream);
    if (e != cudaSuccess) tcu_fail("%s", cudaGetErrorString(e));
    if (!g_has_err) { put(why, n, ""); return 0; }
    put(why, n, g_err);
    g_has_err = 0;
    return 1;
}
