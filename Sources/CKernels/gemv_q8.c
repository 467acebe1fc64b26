/*
 * gemv_q8.c — opt-in int8 decode path: out[N] = x[K] · W[N,K]ᵀ (+ bias) for T = 1 with W in
 * Q4_0, Q4_1, Q8_0, Q5_0 (K % 32 == 0) or Q4_K, Q5_K, Q6_K (K % 256 == 0), the way llama.cpp decodes: x is quantized once per call to int8 blocks
 * (Q8_0-style, 32 quants + f32 scale + Σq) and every weight block meets it in an integer dot
 * product. ck_matmul_forward (gemm.c) routes here only while the calling thread has
 * ck_set_fast_decode(1); the default path (gemv_q.c) stays the exact float32 one.
 *
 * Activation quantization (ck_quantize_row_q8, llama.cpp's quantize_row_q8_0 rounding):
 *   d = max|x| / 127, q = roundf(x / d) computed as roundf(x · (1/d)), Σq kept as an int32.
 * Per block i (d_w, m_w the weight block's f16 scale and min, as f32):
 *   Q8_0:  isum = Σ w_q·x_q                         (int8 × int8)
 *   Q4_0:  isum = Σ nib·x_q − 8·Σx_q                (nib = 0..15 unsigned, the −8 folded into Σx_q)
 *   Q4_1:  isum = Σ nib·x_q,  plus the min term m_w · (d_x·Σx_q)
 *   Q5_0:  isum = Σ q5·x_q − 16·Σx_q               (q5 = nibble | qh bit << 4, 0..31 unsigned)
 *   out += (d_w·d_x) · isum  [+ m_w · (d_x·Σx_q)]
 * K-quants: a 256-weight super-block meets 8 activation blocks; unit u (weights 32u..32u+31)
 * meets block i = 8·sb + u and goes to lane u (= i % 8, as above). d, dmin: the super-block's
 * f16 scales; sc_u, m_u: Q4_K/Q5_K's 6-bit scale and min of unit u; s_j: Q6_K's int8 scales.
 *   Q4_K/Q5_K: isum = sc_u · Σ q·x_q   (q 0..15 / 0..31 unsigned)
 *              lane ← fmaf(d·d_x, (float)isum, lane), then lane ← fmaf(−(dmin·d_x), (float)(m_u·Σx_q), lane)
 *   Q6_K:      isum = s_2u · Σ_{j<16} (q−32)·x_q + s_2u+1 · Σ_{j>=16} (q−32)·x_q
 *              lane ← fmaf(d·d_x, (float)isum, lane)
 * All isums are exact int32 and exactly representable as float (|isum| < 2^24). The Q8 block's
 * Σx_q is all the min term needs; Q6_K's −32 is applied to the quants (signed, via the
 * |w|·sign(x, w) form), so no per-16 activation sums are needed.
 * The error vs the exact float path is the activation rounding only (|x − d·q| <= d/2 per
 * element, d = max|x_block|/127): relative ~0.3% per block, averaging down over K.
 *
 * Integer sums are exact in any order; the float combination is fixed: block i goes to float
 * lane i % 8 (lane ← fmaf(d_w·d_x, (float)isum, lane), then for Q4_1 lane ← fmaf(m_w, d_x·Σx_q,
 * lane)), and the 8 lanes end in ck_hsum8's order, then + bias (0 when absent). The scalar
 * reference (ck_gemv_q8_ref) spells this out; the SIMD kernels compute 8 blocks' isums at once
 * (one ymm of int32 per block, reduced by hadd into one ymm of 8 block sums) and are therefore
 * bit-identical to it, for any thread count (tasks are blocks of output rows).
 * Kernels: AVX2 (vpmaddubsw u8×s8 → i16 pairs, vpmaddwd → i32; no saturation: Q4 nibble pairs
 * <= 2·15·127, Q8_0 via |w|·sign(x, w) <= 2·128·127 < 32767) and, when the active ISA is
 * avx512 and the CPU has avx512_vnni, the same walk with one 256-bit vpdpbusd per block (u8×s8
 * summed in groups of 4 straight to i32). The 256-bit form keeps the per-block reduction of the
 * AVX2 kernel; a zmm would hold two blocks that must be split again for it. Q5_0's high bits come
 * from a byte shuffle + compare (AVX2) or a masked byte add with qh as the mask (VNNI kernel,
 * which also requires avx512bw). Q6_K's per-16 scales enter at the i16 -> i32 step (vpmaddwd by
 * [s_2u ×8 | s_2u+1 ×8] instead of by ones) in both kernels. K-quant super-blocks are exactly one
 * group of 8 blocks, so the same reduce8 gives the 8 unit isums.
 */
#include "ck_internal.h"
#include "ck_quant.h"
#include "gemv_unpack.h"
#include "quant_blocks.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define Q8_ROWS 64 // weight rows per task: contiguous runs, so each thread streams its own part of W
#define Q8_GROUP 8 // blocks whose isums are reduced together (one float lane each)

_Static_assert(sizeof(ck_block_q8x) == 40, "ck_block_q8x must be 40 bytes");

// ---- the opt-in switch ------------------------------------------------------------

static _Thread_local int fast_decode = 0;

void ck_set_fast_decode(int on) { fast_decode = on != 0; }
int ck_get_fast_decode(void) { return fast_decode; }

int ck_gemv_q8_supported(int wtype, int64_t K) {
    if (K <= 0 || K % 32 != 0) return 0;
    if (wtype == CK_TYPE_Q4_K || wtype == CK_TYPE_Q5_K || wtype == CK_TYPE_Q6_K) return K % QK_K == 0;
    return wtype == CK_TYPE_Q4_0 || wtype == CK_TYPE_Q4_1 || wtype == CK_TYPE_Q8_0 || wtype == CK_TYPE_Q5_0;
}

// ---- kernel availability ----------------------------------------------------------

#if CK_X86
static int have_avx2_f16c(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return cached;
}
static int have_vnni(void) {
    static int cached = -1;
    if (cached < 0) cached = have_avx2_f16c() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                             __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vnni");
    return cached;
}
#endif

int ck_gemv_q8_kernel_available(int kernel) {
#if CK_X86
    if (kernel == CK_Q8_KERNEL_VNNI) return have_vnni();
    if (kernel == CK_Q8_KERNEL_AVX2) return have_avx2_f16c();
#endif
    return kernel == CK_Q8_KERNEL_REF;
}

int ck_gemv_q8_kernel(void) {
#if CK_X86
    if (ck_use_avx512() && have_vnni()) return CK_Q8_KERNEL_VNNI;
    if (ck_use_simd() && have_avx2_f16c()) return CK_Q8_KERNEL_AVX2;
#endif
    return CK_Q8_KERNEL_REF;
}

const char *ck_gemv_q8_kernel_name(int kernel) {
    switch (kernel) {
    case CK_Q8_KERNEL_REF: return "int8-ref";
    case CK_Q8_KERNEL_AVX2: return "int8-avx2";
    case CK_Q8_KERNEL_VNNI: return "int8-avx512vnni";
    default: return "unknown";
    }
}

// ---- activation quantization --------------------------------------------------------
// One block of 32: q[32], its scale *d and Σq *sum. Both versions give the same bytes.

static void quant_block_ref(const float *x, int8_t *q, float *d, int32_t *sum) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    int32_t s = 0;
    for (int j = 0; j < 32; j++) {
        const int v = (int)roundf(x[j] * id);
        q[j] = (int8_t)v;
        s += v;
    }
    *d = dd;
    *sum = s;
}

#if CK_X86
/* roundf (half away from zero) on 8 lanes: t = trunc|p|, +1 when |p| − t >= 0.5 (exact: t and
 * |p| are within a factor 2 or t = 0), sign of p restored. _mm256_round_ps's nearest mode
 * would round ties to even and differ from llama.cpp's reference rounding. */
CK_AVX2_INLINE __m256i roundf8(__m256 p) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, p);
    __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ), _mm256_set1_ps(1.0f)));
    return _mm256_cvtps_epi32(_mm256_or_ps(t, _mm256_and_ps(p, sign)));
}

CK_AVX2 static void quant_block_avx2(const float *x, int8_t *q, float *d, int32_t *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
    const __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                    _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
    const float amax = ck_hmax8(mx);
    const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i i0 = roundf8(_mm256_mul_ps(v[0], idv)), i1 = roundf8(_mm256_mul_ps(v[1], idv));
    __m256i i2 = roundf8(_mm256_mul_ps(v[2], idv)), i3 = roundf8(_mm256_mul_ps(v[3], idv));
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    // i32 -> i8 with packs (values within ±127, no saturation), then undo the lane interleave
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, i0);
    *d = dd;
    *sum = _mm_cvtsi128_si32(s4);
}
#endif

int ck_quantize_row_q8_ref(const float *x, int64_t K, void *out) {
    if (K < 0 || K % 32 != 0) return -1;
    ck_block_q8x *b = out;
    for (int64_t i = 0; i < K / 32; i++) quant_block_ref(x + 32 * i, b[i].qs, &b[i].d, &b[i].sum);
    return 0;
}

int ck_quantize_row_q8(const float *x, int64_t K, void *out) {
#if CK_X86
    if (K < 0 || K % 32 != 0) return -1;
    if (!ck_use_simd() || !have_avx2_f16c()) return ck_quantize_row_q8_ref(x, K, out);
    ck_block_q8x *b = out;
    for (int64_t i = 0; i < K / 32; i++) quant_block_avx2(x + 32 * i, b[i].qs, &b[i].d, &b[i].sum);
    return 0;
#else
    return ck_quantize_row_q8_ref(x, K, out);
#endif
}

// ---- shared state of one call ----------------------------------------------------------
// x is kept as structure-of-arrays, padded with zeros to whole groups of Q8_GROUP blocks:
// xq [ng·256] quants (block i at 32·i), xd [ng·8] scales, xs [ng·8] Σq.

typedef struct {
    float *out;
    const float *bias;
    const char *w;
    int wtype;
    int64_t K, N, rb;
    const int8_t *xq;
    const float *xd;
    const int32_t *xs;
} q8_ctx;

// ---- scalar reference -------------------------------------------------------------------

/* ck_hsum8's order on 8 floats. */
static float hsum8_ref(const float a[8]) {
    const float s0 = a[0] + a[4], s1 = a[1] + a[5], s2 = a[2] + a[6], s3 = a[3] + a[7];
    const float t0 = s0 + s2, t1 = s1 + s3;
    return t0 + t1;
}

static float row_ref(const q8_ctx *c, const char *row) {
    const int64_t nb = c->K / 32;
    float acc[Q8_GROUP] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *xq = c->xq + 32 * i;
        int32_t isum = 0;
        float dw, m = 0.0f;
        if (c->wtype == CK_TYPE_Q8_0) {
            const block_q8_0 *b = (const block_q8_0 *)row + i;
            for (int j = 0; j < 32; j++) isum += (int32_t)b->qs[j] * xq[j];
            dw = ck_fp16_to_fp32(b->d);
        } else if (c->wtype == CK_TYPE_Q5_0) {
            const block_q5_0 *b = (const block_q5_0 *)row + i;
            for (int j = 0; j < 32; j++) isum += ck_q5_0_quant(b, j) * xq[j];
            isum -= 16 * c->xs[i];
            dw = ck_fp16_to_fp32(b->d);
        } else {
            const uint8_t *qs;
            if (c->wtype == CK_TYPE_Q4_0) {
                const block_q4_0 *b = (const block_q4_0 *)row + i;
                qs = b->qs;
                dw = ck_fp16_to_fp32(b->d);
            } else {
                const block_q4_1 *b = (const block_q4_1 *)row + i;
                qs = b->qs;
                dw = ck_fp16_to_fp32(b->d);
                m = ck_fp16_to_fp32(b->m);
            }
            for (int j = 0; j < 16; j++) isum += (int32_t)(qs[j] & 0x0f) * xq[j] + (int32_t)(qs[j] >> 4) * xq[j + 16];
            if (c->wtype == CK_TYPE_Q4_0) isum -= 8 * c->xs[i];
        }
        float *a = &acc[i % Q8_GROUP];
        const float dd = dw * c->xd[i];
        *a = fmaf(dd, (float)isum, *a);
        if (c->wtype == CK_TYPE_Q4_1) {
            const float s = c->xd[i] * (float)c->xs[i];
            *a = fmaf(m, s, *a);
        }
    }
    return hsum8_ref(acc);
}

/* K-quant rows: super-block sb covers activation blocks i = 8·sb + u, u = 0..7, lane u. */
static float row_ref_k(const q8_ctx *c, const char *row) {
    const int64_t nsb = c->K / QK_K, bb = c->wtype == CK_TYPE_Q6_K ? (int64_t)sizeof(block_q6_K)
                                           : c->wtype == CK_TYPE_Q5_K ? (int64_t)sizeof(block_q5_K) : (int64_t)sizeof(block_q4_K);
    float acc[Q8_GROUP] = {0};
    for (int64_t sb = 0; sb < nsb; sb++) {
        const void *blk = row + sb * bb;
        uint8_t sc[8], mn[8];
        float d, dmin = 0.0f;
        if (c->wtype == CK_TYPE_Q6_K) {
            d = ck_fp16_to_fp32(((const block_q6_K *)blk)->d);
        } else {
            const block_q4_K *b = blk; // Q5_K: same offsets of d, dmin and scales
            d = ck_fp16_to_fp32(b->d);
            dmin = ck_fp16_to_fp32(b->dmin);
            ck_k4_scales(b->scales, sc, mn);
        }
        for (int u = 0; u < 8; u++) {
            const int64_t i = 8 * sb + u;
            const int8_t *xq = c->xq + 32 * i;
            float *a = &acc[u];
            if (c->wtype == CK_TYPE_Q6_K) {
                const int8_t *s6 = ((const block_q6_K *)blk)->scales;
                int32_t lo = 0, hi = 0;
                for (int j = 0; j < 16; j++) lo += (ck_kq_quant(c->wtype, blk, u, j) - 32) * xq[j];
                for (int j = 16; j < 32; j++) hi += (ck_kq_quant(c->wtype, blk, u, j) - 32) * xq[j];
                const int32_t isum = s6[2 * u] * lo + s6[2 * u + 1] * hi;
                *a = fmaf(d * c->xd[i], (float)isum, *a);
            } else {
                int32_t isum = 0;
                for (int j = 0; j < 32; j++) isum += ck_kq_quant(c->wtype, blk, u, j) * xq[j];
                *a = fmaf(d * c->xd[i], (float)(sc[u] * isum), *a);
                *a = fmaf(-(dmin * c->xd[i]), (float)(mn[u] * c->xs[i]), *a);
            }
        }
    }
    return hsum8_ref(acc);
}

static int is_kquant(int wtype) { return wtype == CK_TYPE_Q4_K || wtype == CK_TYPE_Q5_K || wtype == CK_TYPE_Q6_K; }

static void task_ref(void *vctx, int64_t task) {
    const q8_ctx *c = vctx;
    const int64_t n0 = task * Q8_ROWS, n1 = n0 + Q8_ROWS < c->N ? n0 + Q8_ROWS : c->N;
    for (int64_t n = n0; n < n1; n++) {
        const char *row = c->w + n * c->rb;
        c->out[n] = (is_kquant(c->wtype) ? row_ref_k(c, row) : row_ref(c, row)) + (c->bias ? c->bias[n] : 0.0f);
    }
}

// ---- SIMD kernels ----------------------------------------------------------------------

#if CK_X86
#define CK_Q8_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline
#define CK_Q8_VNNI_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
#define CK_Q8_VNNI __attribute__((target(CK_Q8_VNNI_TARGET)))
#define CK_Q8_VNNI_INLINE __attribute__((target(CK_Q8_VNNI_TARGET), always_inline)) static inline

/* 8 blocks' int32 lane vectors -> one vector of the 8 block sums (block j in lane j). */
CK_Q8_AVX2_INLINE __m256i reduce8(const __m256i v[8]) {
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i a = _mm256_hadd_epi32(h01, h23), b = _mm256_hadd_epi32(h45, h67); // [0123|0123], [4567|4567] halves
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* Weight block i's quants as 32 unsigned bytes in element order (Q4: low nibbles = elements
 * 0..15 in the low 128 bits, high nibbles = 16..31 in the high 128 bits). */
CK_Q8_AVX2_INLINE __m256i nibbles(const uint8_t *qs) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

/* Q5_0 block -> 32 bytes 0..31: AVX2 via ck_q5_0_bytes (shuffle/compare of qh), VNNI kernel with
 * qh as a byte mask (AVX-512BW masked add of 16 onto the nibbles). */
CK_Q8_AVX2_INLINE __m256i q5_avx2(const block_q5_0 *b) { return ck_q5_0_bytes(b); }

CK_Q8_AVX2_INLINE __m256i dot_avx2(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
CK_Q8_VNNI_INLINE __m256i dot_vnni(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }
CK_Q8_VNNI_INLINE __m256i q5_vnni(const block_q5_0 *b) {
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    const __m256i nib = nibbles(b->qs);
    return _mm256_mask_add_epi8(nib, (__mmask32)qh, nib, _mm256_set1_epi8(16));
}

/* One row, generated once per kernel: DOT(u8, s8) -> 8 × i32 partial sums of one block.
 * A group of up to 8 blocks: per-block lane vectors and each block's first 4 bytes (f16 d, and
 * Q4_1's f16 m), packed into 8 d's (+ 8 m's) for one vcvtph2ps each — 0 past the row's end,
 * where the padded x lanes are 0 too, so a short last group adds exact zeros — the reduce, then
 * the fixed float combination of the file comment. */
#define Q8_DEFINE_ROW(NAME, INLINE, DOT, Q5B)                                                                      \
    INLINE float NAME(int wtype, const char *row, const q8_ctx *c) {                                          \
        const int64_t nb = c->K / 32;                                                                            \
        __m256 acc = _mm256_setzero_ps();                                                                        \
        for (int64_t i = 0; i < nb; i += Q8_GROUP) {                                                             \
            const int n = nb - i < Q8_GROUP ? (int)(nb - i) : Q8_GROUP;                                          \
            __m256i v[Q8_GROUP];                                                                                 \
            uint32_t dm[Q8_GROUP]; /* each block's first 4 bytes: d | (Q4_1: m, else quants) << 16 */        \
            for (int j = 0; j < Q8_GROUP; j++) {                                                                 \
                if (j >= n) { v[j] = _mm256_setzero_si256(); dm[j] = 0; continue; }                             \
                const __m256i x = _mm256_loadu_si256((const __m256i *)(c->xq + 32 * (i + j)));                  \
                if (wtype == CK_TYPE_Q8_0) {                                                                     \
                    const block_q8_0 *b = (const block_q8_0 *)row + i + j;                                       \
                    const __m256i w = _mm256_loadu_si256((const __m256i *)b->qs);                                \
                    v[j] = DOT(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));                                      \
                    memcpy(&dm[j], b, 4);                                                                        \
                } else if (wtype == CK_TYPE_Q4_0) {                                                              \
                    const block_q4_0 *b = (const block_q4_0 *)row + i + j;                                       \
                    v[j] = DOT(nibbles(b->qs), x);                                                               \
                    memcpy(&dm[j], b, 4);                                                                        \
                } else if (wtype == CK_TYPE_Q5_0) {                                                              \
                    const block_q5_0 *b = (const block_q5_0 *)row + i + j;                                       \
                    v[j] = DOT(Q5B(b), x);                                                                       \
                    memcpy(&dm[j], b, 4);                                                                        \
                } else {                                                                                         \
                    const block_q4_1 *b = (const block_q4_1 *)row + i + j;                                       \
                    v[j] = DOT(nibbles(b->qs), x);                                                               \
                    memcpy(&dm[j], b, 4);                                                                        \
                }                                                                                                \
            }                                                                                                    \
            __m256i isum = reduce8(v);                                                                           \
            const __m256i xs = _mm256_loadu_si256((const __m256i *)(c->xs + i));                                 \
            if (wtype == CK_TYPE_Q4_0) isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(xs, 3));                  \
            if (wtype == CK_TYPE_Q5_0) isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(xs, 4));                  \
            const __m256 xd = _mm256_loadu_ps(c->xd + i);                                                        \
            /* 8 × (d | hi << 16) -> packus [d0..3 hi0..3 | d4..7 hi4..7] -> permute [d0..7 | hi0..7] */       \
            const __m256i p = _mm256_loadu_si256((const __m256i *)dm);                                           \
            const __m256i h = _mm256_permute4x64_epi64(                                                          \
                _mm256_packus_epi32(_mm256_and_si256(p, _mm256_set1_epi32(0xffff)), _mm256_srli_epi32(p, 16)), 0xd8); \
            const __m256 dd = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), xd);                    \
            acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(isum), acc);                                            \
            if (wtype == CK_TYPE_Q4_1) {                                                                         \
                const __m256 s = _mm256_mul_ps(xd, _mm256_cvtepi32_ps(xs));                                      \
                acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), s, acc);                 \
            }                                                                                                    \
        }                                                                                                        \
        return ck_hsum8(acc);                                                                                    \
    }

Q8_DEFINE_ROW(row_avx2, CK_Q8_AVX2_INLINE, dot_avx2, q5_avx2)
Q8_DEFINE_ROW(row_vnni, CK_Q8_VNNI_INLINE, dot_vnni, q5_vnni)

/* Q6_K: one unit's dot with its two sub-block scales applied in the i16 -> i32 step: sc16 holds
 * [s_2u ×8 | s_2u+1 ×8] as i16 (exact in int32: |lane| <= 4·32·127·128). */
CK_Q8_AVX2_INLINE __m256i dot6(__m256i u, __m256i s, __m256i sc16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc16);
}

/* The 16 int8 scales of a Q6_K super-block -> per unit u the i16 vector [s_2u ×8 | s_2u+1 ×8]:
 * lo/hi = scales 0..7 / 8..15 as i16 in both 128-bit halves, one in-lane byte shuffle per unit. */
CK_Q8_AVX2_INLINE void q6_scales(const int8_t *scales, __m256i sc16[8]) {
    const __m256i all = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)scales));
    const __m256i lo = _mm256_permute2x128_si256(all, all, 0x00), hi = _mm256_permute2x128_si256(all, all, 0x11);
    for (int u = 0; u < 8; u++) {
        const int a = 4 * (u & 3); // byte offset of i16 element 2(u % 4) in its half
        const __m256i idx = _mm256_setr_epi8(a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1,
                                             a + 2, a + 3, a + 2, a + 3, a + 2, a + 3, a + 2, a + 3,
                                             a + 2, a + 3, a + 2, a + 3, a + 2, a + 3, a + 2, a + 3);
        sc16[u] = _mm256_shuffle_epi8(u < 4 ? lo : hi, idx);
    }
}

/* K-quant rows: one super-block = one group of 8 activation blocks (lane u = unit u), so the
 * group's reduce gives the 8 unit isums; Q4_K/Q5_K then scale them by sc_u in int32 and add the
 * min term, Q6_K applies its two scales per unit inside the dot (DOT6). */
#define Q8_DEFINE_ROW_K(NAME, INLINE, DOT)                                                                      \
    INLINE float NAME(int wtype, const char *row, const q8_ctx *c) {                                          \
        const int64_t nsb = c->K / QK_K;                                                                         \
        const int64_t bb = wtype == CK_TYPE_Q6_K ? (int64_t)sizeof(block_q6_K)                                   \
                         : wtype == CK_TYPE_Q5_K ? (int64_t)sizeof(block_q5_K) : (int64_t)sizeof(block_q4_K);     \
        __m256 acc = _mm256_setzero_ps();                                                                        \
        for (int64_t sb = 0; sb < nsb; sb++) {                                                                   \
            const char *blk = row + sb * bb;                                                                     \
            const int8_t *xq = c->xq + 256 * sb;                                                                 \
            __m256i v[8];                                                                                        \
            if (wtype == CK_TYPE_Q6_K) {                                                                         \
                const block_q6_K *b = (const block_q6_K *)blk;                                                   \
                __m256i sc16[8];                                                                                 \
                q6_scales(b->scales, sc16);                                                                      \
                for (int u = 0; u < 8; u++) {                                                                    \
                    const __m256i w = _mm256_sub_epi8(ck_q6_K_bytes(b, u), _mm256_set1_epi8(32));                \
                    const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + 32 * u));                        \
                    v[u] = dot6(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w), sc16[u]);                          \
                }                                                                                                \
                const __m256 dd = _mm256_mul_ps(_mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(b->d))), _mm256_loadu_ps(c->xd + 8 * sb)); \
                acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(reduce8(v)), acc);                                  \
            } else {                                                                                             \
                const block_q4_K *b = (const block_q4_K *)blk; /* Q5_K: same d, dmin, scales */                  \
                const uint8_t *qs = wtype == CK_TYPE_Q5_K ? ((const block_q5_K *)blk)->qs : b->qs;               \
                const uint8_t *qh = wtype == CK_TYPE_Q5_K ? ((const block_q5_K *)blk)->qh : NULL;                \
                for (int u = 0; u < 8; u++)                                                                      \
                    v[u] = DOT(ck_k4_bytes(qs, qh, u), _mm256_loadu_si256((const __m256i *)(xq + 32 * u)));     \
                uint8_t sm[16];                                                                                  \
                ck_k4_scales(b->scales, sm, sm + 8);                                                             \
                const __m128i s16 = _mm_loadu_si128((const __m128i *)sm);                                        \
                const __m256i sc = _mm256_cvtepu8_epi32(s16), mn = _mm256_cvtepu8_epi32(_mm_srli_si128(s16, 8)); \
                const __m256i isum = _mm256_mullo_epi32(reduce8(v), sc);                                         \
                const __m256i msum = _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(c->xs + 8 * sb)), mn); \
                const __m128 dm = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)b)); /* d, dmin */               \
                const __m256 xd = _mm256_loadu_ps(c->xd + 8 * sb);                                              \
                const __m256 dd = _mm256_mul_ps(_mm256_broadcastss_ps(dm), xd);                                  \
                const __m256 md = _mm256_mul_ps(_mm256_broadcastss_ps(_mm_shuffle_ps(dm, dm, 1)), xd);          \
                acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(isum), acc);                                        \
                acc = _mm256_fnmadd_ps(md, _mm256_cvtepi32_ps(msum), acc);                                       \
            }                                                                                                    \
        }                                                                                                        \
        return ck_hsum8(acc);                                                                                    \
    }

Q8_DEFINE_ROW_K(rowk_avx2, CK_Q8_AVX2_INLINE, dot_avx2)
Q8_DEFINE_ROW_K(rowk_vnni, CK_Q8_VNNI_INLINE, dot_vnni)

/* Tasks: constant wtype per instantiation, so the block loop has no type switch. */
#define Q8_DEFINE_TASK(NAME, ATTR, ROW, ROWK)                                                                      \
    ATTR static void NAME(void *vctx, int64_t task) {                                                            \
        const q8_ctx *c = vctx;                                                                                  \
        const int64_t n0 = task * Q8_ROWS, n1 = n0 + Q8_ROWS < c->N ? n0 + Q8_ROWS : c->N;                     \
        for (int64_t n = n0; n < n1; n++) {                                                                      \
            const char *row = c->w + n * c->rb;                                                                  \
            if (n + 1 < n1) _mm_prefetch(row + c->rb, _MM_HINT_T0);                                              \
            float r;                                                                                             \
            switch (c->wtype) {                                                                                  \
            case CK_TYPE_Q4_0: r = ROW(CK_TYPE_Q4_0, row, c); break;                                             \
            case CK_TYPE_Q4_1: r = ROW(CK_TYPE_Q4_1, row, c); break;                                             \
            case CK_TYPE_Q5_0: r = ROW(CK_TYPE_Q5_0, row, c); break;                                             \
            case CK_TYPE_Q4_K: r = ROWK(CK_TYPE_Q4_K, row, c); break;                                            \
            case CK_TYPE_Q5_K: r = ROWK(CK_TYPE_Q5_K, row, c); break;                                            \
            case CK_TYPE_Q6_K: r = ROWK(CK_TYPE_Q6_K, row, c); break;                                            \
            default: r = ROW(CK_TYPE_Q8_0, row, c); break;                                                       \
            }                                                                                                    \
            c->out[n] = r + (c->bias ? c->bias[n] : 0.0f);                                                       \
        }                                                                                                        \
    }

Q8_DEFINE_TASK(task_avx2, __attribute__((target("avx2,fma,f16c"))), row_avx2, rowk_avx2)
Q8_DEFINE_TASK(task_vnni, CK_Q8_VNNI, row_vnni, rowk_vnni)
#endif

// ---- driver -------------------------------------------------------------------------------

int ck_gemv_q8_with(int kernel, float *out, const float *x, const void *w, int wtype, const float *bias,
                    int64_t K, int64_t N) {
    if (N < 0 || !ck_gemv_q8_supported(wtype, K) || !ck_gemv_q8_kernel_available(kernel)) return -1;
    if (N == 0) return 0;
    const int64_t nb = K / 32, ng = (nb + Q8_GROUP - 1) / Q8_GROUP;
    // one allocation: xq [ng·256] i8, xd [ng·8] f32, xs [ng·8] i32, zero-padded past nb
    char *buf = calloc((size_t)(ng * Q8_GROUP * (32 + 4 + 4)), 1);
    if (!buf) return -1;
    int8_t *xq = (int8_t *)buf;
    float *xd = (float *)(buf + ng * Q8_GROUP * 32);
    int32_t *xs = (int32_t *)(buf + ng * Q8_GROUP * 36);
    q8_ctx c = {.out = out, .bias = bias, .w = w, .wtype = wtype, .K = K, .N = N,
                .rb = ck_type_row_bytes(wtype, K), .xq = xq, .xd = xd, .xs = xs};
    ck_task_fn fn = task_ref;
#if CK_X86
    if (kernel != CK_Q8_KERNEL_REF) {
        for (int64_t i = 0; i < nb; i++) quant_block_avx2(x + 32 * i, xq + 32 * i, xd + i, xs + i);
        fn = kernel == CK_Q8_KERNEL_VNNI ? task_vnni : task_avx2;
    } else
#endif
    {
        for (int64_t i = 0; i < nb; i++) quant_block_ref(x + 32 * i, xq + 32 * i, xd + i, xs + i);
    }
    ck_parallel_for((N + Q8_ROWS - 1) / Q8_ROWS, fn, &c);
    free(buf);
    return 0;
}

int ck_gemv_q8(float *out, const float *x, const void *w, int wtype, const float *bias, int64_t K, int64_t N) {
    return ck_gemv_q8_with(ck_gemv_q8_kernel(), out, x, w, wtype, bias, K, N);
}

int ck_gemv_q8_ref(float *out, const float *x, const void *w, int wtype, const float *bias, int64_t K, int64_t N) {
    return ck_gemv_q8_with(CK_Q8_KERNEL_REF, out, x, w, wtype, bias, K, N);
}
