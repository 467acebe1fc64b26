/*
 * quant.c — ggml-compatible block layouts: type traits, dequantization, quantization.
 * Block structs mirror ggml byte for byte (sizes asserted below).
 */
#include "ck_quant.h"
#include <math.h>
#include <string.h>

// ---- half / bfloat16 -------------------------------------------------------

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

// ---- block layouts (ggml) ---------------------------------------------------

#define QK4_0 32
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;          // x = (q - 8) * d
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");
#define QK4_1 32
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;      // x = q * d + m
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must be 20 bytes");
#define QK8_0 32
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;               // x = q * d
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");
// Nibble order (q4_0, q4_1): element j (j < 16) is the low nibble of qs[j], element j+16 the high nibble.

// ---- reference dequantization ----------------------------------------------

static void deq_q4_0_ref(const block_q4_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[i * QK4_0 + j] = ((b[i].qs[j] & 0x0f) - 8) * d;
            y[i * QK4_0 + j + QK4_0 / 2] = ((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1_ref(const block_q4_1 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_fp16_to_fp32(b[i].d), m = ck_fp16_to_fp32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[i * QK4_1 + j] = (b[i].qs[j] & 0x0f) * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = (b[i].qs[j] >> 4) * d + m;
        }
    }
}

static void deq_q8_0_ref(const block_q8_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = ck_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_0; j++) y[i * QK8_0 + j] = b[i].qs[j] * d;
    }
}

// ---- type traits -----------------------------------------------------------

typedef struct { int type; const char *name; int64_t block; int64_t bytes; } ck_traits;
static const ck_traits TRAITS[] = {
    {CK_TYPE_F32, "f32", 1, 4},
    {CK_TYPE_F16, "f16", 1, 2},
    {CK_TYPE_BF16, "bf16", 1, 2},
    {CK_TYPE_Q4_0, "q4_0", QK4_0, sizeof(block_q4_0)},
    {CK_TYPE_Q4_1, "q4_1", QK4_1, sizeof(block_q4_1)},
    {CK_TYPE_Q8_0, "q8_0", QK8_0, sizeof(block_q8_0)},
};
static const ck_traits *traits(int type) {
    for (size_t i = 0; i < sizeof(TRAITS) / sizeof(TRAITS[0]); i++)
        if (TRAITS[i].type == type) return &TRAITS[i];
    return NULL;
}

int64_t ck_type_block_size(int type) { const ck_traits *t = traits(type); return t ? t->block : 0; }
int64_t ck_type_block_bytes(int type) { const ck_traits *t = traits(type); return t ? t->bytes : 0; }
int64_t ck_type_row_bytes(int type, int64_t n) {
    const ck_traits *t = traits(type);
    if (!t || n % t->block) return 0;
    return n / t->block * t->bytes;
}
const char *ck_type_name(int type) { const ck_traits *t = traits(type); return t ? t->name : "unknown"; }
int ck_type_can_dequantize(int type) { return traits(type) != NULL; }

int ck_dequantize_row_ref(int type, const void *src, float *dst, int64_t n) {
    const ck_traits *t = traits(type);
    if (!t || n % t->block) return -1;
    const int64_t nb = n / t->block;
    switch (type) {
    case CK_TYPE_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case CK_TYPE_F16: for (int64_t i = 0; i < n; i++) dst[i] = ck_fp16_to_fp32(((const uint16_t *)src)[i]); return 0;
    case CK_TYPE_BF16: for (int64_t i = 0; i < n; i++) dst[i] = ck_bf16_to_fp32(((const uint16_t *)src)[i]); return 0;
    case CK_TYPE_Q4_0: deq_q4_0_ref(src, dst, nb); return 0;
    case CK_TYPE_Q4_1: deq_q4_1_ref(src, dst, nb); return 0;
    case CK_TYPE_Q8_0: deq_q8_0_ref(src, dst, nb); return 0;
    default: return -1;
    }
}

int ck_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    return ck_dequantize_row_ref(type, src, dst, n);
}

int ck_quantize_row(int type, const float *src, void *dst, int64_t n) {
    (void)type; (void)src; (void)dst; (void)n;
    return -1; // quantization lands with the GGUF writer
}
