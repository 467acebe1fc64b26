/*
 * quant.c — ggml-compatible tensor types: half/bfloat16 conversion, the type traits table
 * (one row per type), dequantization dispatch (reference / AVX2) and quantization that
 * reproduces ggml's quantize_row_*_ref byte for byte.
 * Block structs live in quant_blocks.h; reference dequantizers in quant_dequant.c;
 * fast paths in quant_avx2.c.
 */
#include "quant_blocks.h"
#include <float.h>
#include <math.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

// MARK: - half / bfloat16

float ck_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) { bits = sign; }
        else { // subnormal: normalize
            exp = 127 - 15 + 1;
            while ((man & 0x400) == 0) { man <<= 1; exp--; }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f; memcpy(&f, &bits, 4); return f;
}

uint16_t ck_fp32_to_fp16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        const int shift = 14 - exp;
        uint32_t half = man >> shift;
        const uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    const uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)half;
}

float ck_bf16_to_fp32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16; float f; memcpy(&f, &bits, 4); return f;
}

uint16_t ck_fp32_to_bf16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 64); // quiet NaN
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

// MARK: - quantization (ggml quantize_row_*_ref)

static void quant_f32(const float *x, void *dst, int64_t n) { memcpy(dst, x, (size_t)n * 4); }

static void quant_f16(const float *x, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) { const uint16_t h = ck_fp32_to_fp16(x[i]); memcpy(p + 2 * i, &h, 2); }
}

static void quant_bf16(const float *x, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) { const uint16_t h = ck_fp32_to_bf16(x[i]); memcpy(p + 2 * i, &h, 2); }
}

static void quant_q4_0(const float *x, void *dst, int64_t nb) {
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < nb; i++, x += QK4_0) {
        float amax = 0.0f, max = 0.0f; // absolute max, and the signed value that has it
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = ck_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[j] * id, x1 = x[QK4_0 / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)((int8_t)(x0 + 8.5f) < 15 ? (int8_t)(x0 + 8.5f) : 15);
            const uint8_t xi1 = (uint8_t)((int8_t)(x1 + 8.5f) < 15 ? (int8_t)(x1 + 8.5f) : 15);
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void quant_q4_1(const float *x, void *dst, int64_t nb) {
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < nb; i++, x += QK4_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK4_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = ck_fp32_to_fp16(d);
        y[i].m = ck_fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const float x0 = (x[j] - min) * id, x1 = (x[QK4_1 / 2 + j] - min) * id;
            const int8_t a = (int8_t)(x0 + 0.5f), b = (int8_t)(x1 + 0.5f);
            const uint8_t xi0 = (uint8_t)(a < 15 ? a : 15), xi1 = (uint8_t)(b < 15 ? b : 15);
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void quant_q8_0(const float *x, void *dst, int64_t nb) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = ck_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

// MARK: - type traits

/* Fast dequantizers chosen at run time: AVX2 when the CPU has it (and, when the ops
 * module provides ck_isa_active, when it is not forced to the reference path). */
#if defined(__ELF__)
extern int ck_isa_active(void) __attribute__((weak));
#endif
static int fast_ok(void) {
#if defined(__ELF__)
    if (ck_isa_active && ck_isa_active() == 0) return 0;
#endif
    return ck_quant_have_avx2();
}

typedef struct {
    int type; const char *name; int64_t block; int64_t bytes;
    ck_deq_fn deq_ref; ck_deq_fn deq_avx2; ck_quant_fn quant;
} ck_traits;

static const ck_traits TRAITS[] = {
    {CK_TYPE_F32,  "f32",  1,     4,                  ck_deq_f32_ref,  NULL,             quant_f32},
    {CK_TYPE_F16,  "f16",  1,     2,                  ck_deq_f16_ref,  NULL,             quant_f16},
    {CK_TYPE_BF16, "bf16", 1,     2,                  ck_deq_bf16_ref, ck_deq_bf16_avx2, quant_bf16},
    {CK_TYPE_Q4_0, "q4_0", QK4_0, sizeof(block_q4_0), ck_deq_q4_0_ref, ck_deq_q4_0_avx2, quant_q4_0},
    {CK_TYPE_Q4_1, "q4_1", QK4_1, sizeof(block_q4_1), ck_deq_q4_1_ref, ck_deq_q4_1_avx2, quant_q4_1},
    {CK_TYPE_Q5_0, "q5_0", QK5_0, sizeof(block_q5_0), ck_deq_q5_0_ref, ck_deq_q5_0_avx2, NULL},
    {CK_TYPE_Q5_1, "q5_1", QK5_1, sizeof(block_q5_1), ck_deq_q5_1_ref, NULL,             NULL},
    {CK_TYPE_Q8_0, "q8_0", QK8_0, sizeof(block_q8_0), ck_deq_q8_0_ref, ck_deq_q8_0_avx2, quant_q8_0},
    {CK_TYPE_Q2_K, "q2_K", QK_K,  sizeof(block_q2_K), ck_deq_q2_K_ref, NULL,             NULL},
    {CK_TYPE_Q3_K, "q3_K", QK_K,  sizeof(block_q3_K), ck_deq_q3_K_ref, NULL,             NULL},
    {CK_TYPE_Q4_K, "q4_K", QK_K,  sizeof(block_q4_K), ck_deq_q4_K_ref, ck_deq_q4_K_avx2, NULL},
    {CK_TYPE_Q5_K, "q5_K", QK_K,  sizeof(block_q5_K), ck_deq_q5_K_ref, ck_deq_q5_K_avx2, NULL},
    {CK_TYPE_Q6_K, "q6_K", QK_K,  sizeof(block_q6_K), ck_deq_q6_K_ref, ck_deq_q6_K_avx2, NULL},
    {CK_TYPE_Q8_K, "q8_K", QK_K,  sizeof(block_q8_K), ck_deq_q8_K_ref, NULL,             NULL},
    {CK_TYPE_NF4,  "nf4",  QK_NF4, sizeof(block_nf4), ck_deq_nf4_ref,  ck_deq_nf4_avx2,  ck_quant_nf4},
};

static const ck_traits *traits(int type) {
    for (size_t i = 0; i < sizeof(TRAITS) / sizeof(TRAITS[0]); i++)
        if (TRAITS[i].type == type) return &TRAITS[i];
    return NULL;
}

// MARK: - public entry points

int64_t ck_type_block_size(int type) { const ck_traits *t = traits(type); return t ? t->block : 0; }
int64_t ck_type_block_bytes(int type) { const ck_traits *t = traits(type); return t ? t->bytes : 0; }
int64_t ck_type_row_bytes(int type, int64_t n) {
    const ck_traits *t = traits(type);
    if (!t || n < 0 || n % t->block) return 0;
    return n / t->block * t->bytes;
}
const char *ck_type_name(int type) { const ck_traits *t = traits(type); return t ? t->name : "unknown"; }
int ck_type_can_dequantize(int type) { return traits(type) != NULL; }

int ck_dequantize_row_ref(int type, const void *src, float *dst, int64_t n) {
    const ck_traits *t = traits(type);
    if (!t || n < 0 || n % t->block) return -1;
    t->deq_ref(src, dst, n / t->block);
    return 0;
}

int ck_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const ck_traits *t = traits(type);
    if (!t || n < 0 || n % t->block) return -1;
    if (t->deq_avx2 && fast_ok()) t->deq_avx2(src, dst, n / t->block);
    else t->deq_ref(src, dst, n / t->block);
    return 0;
}

int ck_quantize_row(int type, const float *src, void *dst, int64_t n) {
    const ck_traits *t = traits(type);
    if (!t || !t->quant || n < 0 || n % t->block) return -1;
    t->quant(src, dst, n / t->block);
    return 0;
}
