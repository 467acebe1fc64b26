/*
 * dispatch.c — run-time ISA selection for the dispatching entry points.
 * Detection uses cpuid via __builtin_cpu_supports (x86-64 only; other targets: ref).
 * The active ISA starts as TUNE_KERNELS (ref|avx2|avx512) if set and supported, else the
 * best ISA the CPU has; ck_set_isa() overrides it. Under avx512 the ops that have AVX-512
 * kernels (the f32 GEMM core: forward, backward input/weight, packed forward, small-N paths;
 * training and inference attention; the fused quantized GEMV) use them, the rest run AVX2.
 * The opt-in int8 decode path (gemv_q8.c) takes its VNNI kernel under avx512 when the CPU also
 * has avx512_vnni, its AVX2 kernel otherwise.
 */
#include "ck_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static int isa_detected = CK_ISA_REF;
static _Atomic int isa_active = CK_ISA_REF;

// ---- detection ------------------------------------------------------------------

static int detect(void) {
#if CK_X86
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return CK_ISA_REF;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return CK_ISA_AVX512;
    return CK_ISA_AVX2;
#else
    return CK_ISA_REF;
#endif
}

static int parse_isa(const char *s) {
    if (!strcmp(s, "ref")) return CK_ISA_REF;
    if (!strcmp(s, "avx2")) return CK_ISA_AVX2;
    if (!strcmp(s, "avx512")) return CK_ISA_AVX512;
    return -1;
}

static void isa_init(void) {
    isa_detected = detect();
    int active = isa_detected;
    const char *env = getenv("TUNE_KERNELS");
    if (env && *env) {
        const int want = parse_isa(env);
        if (want < 0)
            fprintf(stderr, "tune: TUNE_KERNELS=%s is not one of ref|avx2|avx512; using %s\n",
                    env, ck_isa_name(active));
        else if (want > isa_detected)
            fprintf(stderr, "tune: TUNE_KERNELS=%s is not supported by this CPU; using %s\n",
                    env, ck_isa_name(active));
        else
            active = want;
    }
    atomic_store(&isa_active, active);
}

// ---- public API -------------------------------------------------------------------

int ck_isa_detected(void) {
    pthread_once(&isa_once, isa_init);
    return isa_detected;
}

int ck_isa_active(void) {
    pthread_once(&isa_once, isa_init);
    return atomic_load_explicit(&isa_active, memory_order_relaxed);
}

int ck_set_isa(int isa) {
    pthread_once(&isa_once, isa_init);
    if (isa < CK_ISA_REF || isa > CK_ISA_AVX512 || isa > isa_detected) return -1;
    atomic_store(&isa_active, isa);
    return 0;
}

const char *ck_isa_name(int isa) {
    switch (isa) {
    case CK_ISA_REF: return "ref";
    case CK_ISA_AVX2: return "avx2";
    case CK_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}
