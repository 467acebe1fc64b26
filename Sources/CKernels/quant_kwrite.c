/*
 * quant_kwrite.c — quantizers for Q5_0, Q5_1, Q4_K, Q5_K and Q6_K that reproduce ggml's
 * quantize_row_*_ref (ggml-quants.c, no importance matrix) byte for byte, so a model tune writes
 * in a llama.cpp preset (Q4_K_M, ...) equals llama-quantize's output for the same f32 values.
 *
 * Bit identity rests on doing the same float operations in the same order as the reference:
 *  - every accumulation is a left-to-right sum in float (no reassociation, no vectorized reduction);
 *  - no fused multiply-add: ggml-base is built for baseline x86-64 (no FMA) and so is this target,
 *    but FP_CONTRACT OFF keeps a future -march flag from fusing `sum += w*x` into one rounding;
 *  - nearest_int is ggml's: add 1.5*2^23 and read the mantissa, i.e. round-half-to-even
 *    (not roundf's half-away-from-zero);
 *  - scales go through fp16 (ck_fp32_to_fp16 is ggml's round-to-nearest-even conversion) and the
 *    second pass re-reads them from the block, as the reference does.
 * Block structs come from quant_blocks.h (the ones the dequantizers read).
 */
#include "quant_blocks.h"
#include "ck_kquant_write.h"
#include <float.h>
#include <math.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

// ggml's threshold below which a group is treated as all zero (GROUP_MAX_EPS).
#define KQ_GROUP_MAX_EPS 1e-15f

static inline int kq_min(int a, int b) { return a < b ? a : b; }
static inline int kq_max(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, for |fval| <= 4194303: adding 1.5 * 2^23 leaves the rounded
 * integer in the low mantissa bits. Same trick (and same ties) as ggml's nearest_int. */
static inline int kq_nearest_int(float fval) {
    const float val = fval + 12582912.f;
    int i; memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

// MARK: - legacy 32-element blocks with a 5th bit

void ck_quantize_row_q5_0_ref(const float *x, void *dst, int64_t n) {
    block_q5_0 *y = dst;
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; i++, x += QK5_0) {
        float amax = 0.0f, max = 0.0f; // absolute max, and the signed value that has it
        for (int j = 0; j < QK5_0; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = ck_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const float x0 = x[j] * id, x1 = x[QK5_0 / 2 + j] * id;
            // (int8_t) truncates toward zero after the +16.5 offset, as in ggml; then clamp to 31.
            const int8_t a = (int8_t)(x0 + 16.5f), b = (int8_t)(x1 + 16.5f);
            const uint8_t xi0 = (uint8_t)(a < 31 ? a : 31), xi1 = (uint8_t)(b < 31 ? b : 31);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        memcpy(y[i].qh, &qh, sizeof(qh));
    }
}

void ck_quantize_row_q5_1_ref(const float *x, void *dst, int64_t n) {
    block_q5_1 *y = dst;
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; i++, x += QK5_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK5_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = ck_fp32_to_fp16(d);
        y[i].m = ck_fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const float x0 = (x[j] - min) * id, x1 = (x[QK5_1 / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)(x0 + 0.5f), xi1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_1 / 2);
        }
        memcpy(y[i].qh, &qh, sizeof(qh));
    }
}

// MARK: - K-quant helpers

/* Symmetric scale search for Q6_K (ggml's make_qx_quants with rmse_type 1, no weights): start at
 * -nmax/max, then try 18 nearby inverse scales and keep the one with the best weighted
 * (w = x^2) least-squares fit. L gets the codes biased by nmax; returns the scale. */
static float kq_make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < KQ_GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = kq_nearest_int(iscale * x[i]);
        l = kq_max(-nmax, kq_min(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = kq_nearest_int(iscale * x[i]);
            l = kq_max(-nmax, kq_min(nmax - 1, l));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = kq_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + kq_max(-nmax, kq_min(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Asymmetric scale + min search for Q4_K/Q5_K (ggml's make_qkx2_quants, use_mad false):
 * codes 0...nmax for x ≈ scale * L + min with min <= 0; tries nstep+1 inverse scales
 * (rmin + rdelta*is + nmax) / (max - min), solving the weighted least-squares scale and min for
 * each, and keeps the lowest weighted squared error. Returns the scale, *the_min = -min. */
static float kq_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                                 float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = kq_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)kq_max(0, kq_min(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = kq_nearest_int(iscale * (x[i] - min));
            l = kq_max(0, kq_min(nmax, l));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* The 6-bit scale and min of sub-block j from the packed scales[12] (ggml's get_scale_min_k4). */
static inline void kq_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63; *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* Shared by Q4_K and Q5_K: per 32-element sub-block a weighted scale/min search, then the eight
 * scales and mins as 6-bit multiples of the super-block's fp16 d and dmin, and finally the codes
 * recomputed against the rounded scales. Fills d, dmin, scales[12] and L[256]. */
static void kq_quantize_scales_mins(const float *x, int nmax, float rmin, float rdelta, int nstep,
                                    uint16_t *d_out, uint16_t *dmin_out, uint8_t *packed, uint8_t *L) {
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0; // the min is subtracted, so scales are never negative
    float max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = kq_make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(packed, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; ++j) {
        // ggml stores nearest_int into a uint8_t before the clamp: keep that truncation.
        uint8_t ls = (uint8_t)kq_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)kq_nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = ck_fp32_to_fp16(max_scale / 63.f);
    *dmin_out = ck_fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        kq_scale_min_k4(j, packed, &sc, &m);
        const float d = ck_fp16_to_fp32(*d_out) * sc;
        if (!d) continue; // keep the search's codes, as ggml does
        const float dm = ck_fp16_to_fp32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ++ii) {
            const int l = kq_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)kq_max(0, kq_min(nmax, l));
        }
    }
}

// MARK: - Q4_K, Q5_K, Q6_K

void ck_quantize_row_q4_K_ref(const float *x, void *dst, int64_t n) {
    block_q4_K *y = dst;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        // scales[] is OR-ed into by the packing, so start from a clean block.
        kq_quantize_scales_mins(x, 15, -1.f, 0.1f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }
}

void ck_quantize_row_q5_K_ref(const float *x, void *dst, int64_t n) {
    block_q5_K *y = dst;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        kq_quantize_scales_mins(x, 31, -0.5f, 0.1f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int nn = 0; nn < QK_K; nn += 64) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[nn + j];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                int l2 = L[nn + j + 32];
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2; m2 <<= 2;
            ql += 32;
        }
    }
}

void ck_quantize_row_q6_K_ref(const float *x, void *dst, int64_t n) {
    block_q6_K *y = dst;
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float scale = kq_make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) { max_abs_scale = abs_scale; max_scale = scale; }
        }
        if (max_abs_scale < KQ_GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(block_q6_K));
            y[i].d = ck_fp32_to_fp16(0.f);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = ck_fp32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            y[i].scales[ib] = (int8_t)kq_min(127, kq_nearest_int(iscale * scales[ib]));
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = ck_fp16_to_fp32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = kq_nearest_int(x[16 * j + ii] / d);
                l = kq_max(-32, kq_min(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

// MARK: - entry points

typedef void (*kq_row_fn)(const float *src, void *dst, int64_t n);

static kq_row_fn kq_fn(int type, int64_t *block) {
    switch (type) {
    case CK_TYPE_Q5_0: *block = QK5_0; return ck_quantize_row_q5_0_ref;
    case CK_TYPE_Q5_1: *block = QK5_1; return ck_quantize_row_q5_1_ref;
    case CK_TYPE_Q4_K: *block = QK_K; return ck_quantize_row_q4_K_ref;
    case CK_TYPE_Q5_K: *block = QK_K; return ck_quantize_row_q5_K_ref;
    case CK_TYPE_Q6_K: *block = QK_K; return ck_quantize_row_q6_K_ref;
    default: return NULL;
    }
}

int ck_quantize_row_any(int type, const float *src, void *dst, int64_t n) {
    int64_t block = 0;
    const kq_row_fn fn = kq_fn(type, &block);
    if (!fn) return ck_quantize_row(type, src, dst, n);
    if (n < 0 || n % block) return -1;
    fn(src, dst, n);
    return 0;
}

int ck_type_can_quantize_any(int type) {
    int64_t block = 0;
    if (kq_fn(type, &block)) return 1;
    switch (type) {
    case CK_TYPE_F32: case CK_TYPE_F16: case CK_TYPE_BF16:
    case CK_TYPE_Q4_0: case CK_TYPE_Q4_1: case CK_TYPE_Q8_0: return 1;
    default: return 0;
    }
}
