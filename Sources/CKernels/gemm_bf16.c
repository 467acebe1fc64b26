/*
 * gemm_bf16.c — the two weight-side GEMMs with bf16 products and f32 accumulation
 * (VDPBF16PS, AVX-512 BF16), for callers that accept bf16-rounded activations:
 *   ck_matmul_forward_bf16        out[T,N]   = bf16(inp)[T,K] · bf16(W)[N,K]ᵀ (+ bias)
 *   ck_matmul_backward_input_bf16 dinp[T,K] (+)= bf16(dout)[T,N] · bf16(W)[N,K]
 * W is any dequantizable type; bf16(W) is exact for BF16 weights, a rounding for the others.
 * Activations are rounded to bf16 (nearest even) once per call and stored as pairs along the
 * reduction index; W tiles are packed as pairs too, so one VDPBF16PS does 32 MACs (twice the
 * f32 FMA rate on Zen 4). Micro-kernel: MR×32 tile, MR <= 12 (24 zmm accumulators), like
 * gemm_avx512.c. Each output is its initial value followed by one VDPBF16PS step per pair
 * of reduction indices in increasing order, whatever the tile or thread: results are
 * bit-identical for any thread count. Without AVX-512 BF16 (or with ISA < avx512) both
 * entry points run the f32 kernels (ck_matmul_forward / ck_matmul_backward_input).
 * References (`_ref`): the same roundings, double accumulation.
 */
#include "ck_internal.h"
#include "ck_train.h"
#include "ck_quant.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TILE_NB 32 // forward: weight rows per task
#define BKC 32     // backward input: dinp columns per task (one 32-wide stripe)
#define BNB 512    // backward input: W rows per packed panel (even; [256 pairs][32] = 32 KiB)
#define BTB 1024   // backward input: dinp rows per task at most (multiple of 12)

static uint32_t pair_of(float lo, float hi) {
    return (uint32_t)ck_fp32_to_bf16(lo) | (uint32_t)ck_fp32_to_bf16(hi) << 16;
}

static float bf16_round(float x) { return ck_bf16_to_fp32(ck_fp32_to_bf16(x)); }

// ---- references ------------------------------------------------------------------------

int ck_matmul_forward_bf16_ref(float *out, const float *inp, const void *w, int wtype,
                               const float *bias, int64_t T, int64_t K, int64_t N) {
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (T < 0 || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    float *row = malloc((size_t)K * sizeof(float));
    if (!row) return -1;
    for (int64_t n = 0; n < N; n++) {
        if (ck_dequantize_row_ref(wtype, (const char *)w + n * rb, row, K) != 0) { free(row); return -1; }
        for (int64_t k = 0; k < K; k++) row[k] = bf16_round(row[k]);
        for (int64_t t = 0; t < T; t++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)bf16_round(inp[t * K + k]) * (double)row[k];
            out[t * N + n] = (float)s + (bias ? bias[n] : 0.0f);
        }
    }
    free(row);
    return 0;
}

int ck_matmul_backward_input_bf16_ref(float *dinp, const float *dout, const void *w, int wtype,
                                      int64_t T, int64_t K, int64_t N, int accumulate) {
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (T < 0 || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    double *acc = calloc((size_t)(T * K) + 1, sizeof(double));
    float *row = malloc((size_t)K * sizeof(float));
    if (!acc || !row) { free(acc); free(row); return -1; }
    for (int64_t n = 0; n < N; n++) {
        if (ck_dequantize_row_ref(wtype, (const char *)w + n * rb, row, K) != 0) { free(acc); free(row); return -1; }
        for (int64_t t = 0; t < T; t++) {
            const double g = bf16_round(dout[t * N + n]);
            for (int64_t k = 0; k < K; k++) acc[t * K + k] += g * (double)bf16_round(row[k]);
        }
    }
    for (int64_t i = 0; i < T * K; i++) dinp[i] = (float)((accumulate ? (double)dinp[i] : 0.0) + acc[i]);
    free(acc);
    free(row);
    return 0;
}

// ---- AVX-512 BF16 ------------------------------------------------------------------------

#if CK_X86
#define CK_BF16 __attribute__((target(CK_AVX512_TARGET ",avx512bf16")))
#define CK_BF16_INLINE __attribute__((target(CK_AVX512_TARGET ",avx512bf16"), always_inline)) static inline

static int bf16_supported(void) {
    static _Atomic int v = -1;
    if (v < 0) { __builtin_cpu_init(); v = __builtin_cpu_supports("avx512bf16") ? 1 : 0; }
    return v;
}

#define MAXMR 12
/* C[i, j] (+)= Σ_p dot2(A[i*sai + p], B[p*ldb + j]) for i < MR, j < nc <= 16·NV, p < P, where
 * A and B entries are bf16 pairs (low half = even reduction index). */
CK_BF16_INLINE void mkb(int MR, int NV, int FULL, float *c, int64_t ldc, const uint32_t *a, int64_t sai,
                        const uint32_t *b, int64_t ldb, int64_t P, int nc, int load_c) {
    const __mmask16 m0 = FULL || nc >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nc) - 1);
    const __mmask16 m1 = FULL || nc >= 32 ? (__mmask16)0xffff : nc <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nc - 16)) - 1);
    __m512 acc[MAXMR][2];
    for (int i = 0; i < MR; i++) {
        if (load_c) {
            acc[i][0] = FULL ? _mm512_loadu_ps(c + i * ldc) : _mm512_maskz_loadu_ps(m0, c + i * ldc);
            if (NV == 2) acc[i][1] = FULL ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
        } else {
            acc[i][0] = _mm512_setzero_ps();
            if (NV == 2) acc[i][1] = _mm512_setzero_ps();
        }
    }
    for (int64_t p = 0; p < P; p++) {
        const uint32_t *bp = b + p * ldb;
        const __m512bh b0 = (__m512bh)(FULL ? _mm512_loadu_si512(bp) : _mm512_maskz_loadu_epi32(m0, bp));
        __m512bh b1 = b0;
        if (NV == 2) b1 = (__m512bh)(FULL ? _mm512_loadu_si512(bp + 16) : _mm512_maskz_loadu_epi32(m1, bp + 16));
        for (int i = 0; i < MR; i++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i * sai + p]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
            if (NV == 2) acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
        }
    }
    for (int i = 0; i < MR; i++) {
        if (FULL) {
            _mm512_storeu_ps(c + i * ldc, acc[i][0]);
            if (NV == 2) _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
        } else {
            _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
            if (NV == 2) _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
        }
    }
}

#define MKB_ARGS float *c, int64_t ldc, const uint32_t *a, int64_t sai, const uint32_t *b, int64_t ldb, int64_t P, int nc, int load_c
#define MKB_PASS c, ldc, a, sai, b, ldb, P, nc, load_c
typedef void (*mkb_fn)(MKB_ARGS);
#define MKB_DEF(MR)                                                                     \
    CK_BF16 static void mkb##MR##_2f(MKB_ARGS) { mkb(MR, 2, 1, MKB_PASS); }               \
    CK_BF16 static void mkb##MR##_2m(MKB_ARGS) { mkb(MR, 2, 0, MKB_PASS); }               \
    CK_BF16 static void mkb##MR##_1f(MKB_ARGS) { mkb(MR, 1, 1, MKB_PASS); }               \
    CK_BF16 static void mkb##MR##_1m(MKB_ARGS) { mkb(MR, 1, 0, MKB_PASS); }
MKB_DEF(1) MKB_DEF(2) MKB_DEF(3) MKB_DEF(4) MKB_DEF(5) MKB_DEF(6)
MKB_DEF(7) MKB_DEF(8) MKB_DEF(9) MKB_DEF(10) MKB_DEF(11) MKB_DEF(12)
#define MKB_ROW(MR) {mkb##MR##_1m, mkb##MR##_1f, mkb##MR##_2m, mkb##MR##_2f}
static const mkb_fn kernels_b[MAXMR + 1][4] = {
    {0, 0, 0, 0}, MKB_ROW(1), MKB_ROW(2), MKB_ROW(3), MKB_ROW(4), MKB_ROW(5), MKB_ROW(6),
    MKB_ROW(7), MKB_ROW(8), MKB_ROW(9), MKB_ROW(10), MKB_ROW(11), MKB_ROW(12)};

/* C[rows, cols] (+)= A·B in 12×32 tiles (A: rows of pairs, stride sai; B: P rows of pairs, stride ldb). */
static void tile_gemm_b(float *c, int64_t ldc, const uint32_t *a, int64_t sai, const uint32_t *b, int64_t ldb,
                        int64_t P, int64_t rows, int64_t cols, int load_c) {
    for (int64_t j = 0; j < cols; j += 32) {
        const int nc = (int)(cols - j < 32 ? cols - j : 32);
        const int nv = nc > 16 ? 2 : 1, full = nc == 16 * nv;
        for (int64_t i = 0; i < rows;) {
            const int mr = (int)(rows - i < MAXMR ? rows - i : MAXMR);
            kernels_b[mr][2 * (nv - 1) + full](c + i * ldc + j, ldc, a + i * sai, sai, b + j, ldb, P, nc, load_c);
            i += mr;
        }
    }
}

/* dst[t*P + p] = pair(src[t*ld + 2p], src[t*ld + 2p + 1]) for t < T, p < P = ceil(n/2)
 * (a missing odd element is 0); rows converted 32 floats at a time (RNE). */
CK_BF16 static void to_pairs(uint32_t *dst, const float *src, int64_t ld, int64_t T, int64_t n) {
    const int64_t P = (n + 1) / 2;
    for (int64_t t = 0; t < T; t++) {
        const float *s = src + t * ld;
        uint32_t *d = dst + t * P;
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + i + 16), _mm512_loadu_ps(s + i));
            _mm512_storeu_si512(d + i / 2, (__m512i)v);
        }
        for (; i < n; i += 2) d[i / 2] = pair_of(s[i], i + 1 < n ? s[i + 1] : 0.0f);
    }
}

typedef struct {
    float *out;
    const uint32_t *a; // activations as pairs [T][P]
    const char *w;
    const uint32_t *packed; // forward: W already packed as pair panels [tiles][P][32], or NULL
    const float *bias;
    int wtype, accumulate;
    int64_t T, K, N, rb, P;
    int64_t t_block, t_blocks;       // forward: input rows per task, tasks per tile
    int64_t kc, bs, bbytes, k_tiles; // backward
    _Atomic int failed;
} gb_ctx;

/* Packs weight rows n0 .. n0+nn-1 as pairs [P][32] (P = ceil(K/2)); columns >= nn are zero.
 * `tmp` holds K + 2 floats. 0, or -1 when a row cannot be dequantized. */
CK_BF16 static int pack_tile_b(uint32_t *panel, const char *w, int wtype, int64_t rb, int64_t K, int64_t n0, int nn,
                               float *tmp) {
    const int64_t P = (K + 1) / 2;
    for (int j = 0; j < TILE_NB; j++) {
        if (j >= nn) {
            for (int64_t p = 0; p < P; p++) panel[p * TILE_NB + j] = 0;
            continue;
        }
        const char *src = w + (n0 + j) * rb;
        if (wtype == CK_TYPE_BF16 && K % 2 == 0) {
            const uint32_t *s = (const uint32_t *)src; // already pairs (bf16 little-endian)
            for (int64_t p = 0; p < P; p++) panel[p * TILE_NB + j] = s[p];
        } else {
            if (ck_dequantize_row(wtype, src, tmp, K) != 0) return -1;
            uint32_t *row = (uint32_t *)tmp; // pairs written over the floats they came from (p <= 2p)
            to_pairs(row, tmp, K, 1, K);
            for (int64_t p = 0; p < P; p++) panel[p * TILE_NB + j] = row[p];
        }
    }
    return 0;
}

/* Forward task: a tile of 32 weight rows as pairs [P][32] (packed here, or taken from c->packed),
 * times the task's rows. */
CK_BF16 static void fwd_task(void *vctx, int64_t task) {
    gb_ctx *c = vctx;
    const int64_t K = c->K, N = c->N, P = c->P, tile = task / c->t_blocks;
    const int64_t t_begin = (task % c->t_blocks) * c->t_block;
    const int64_t T = t_begin + c->t_block < c->T ? t_begin + c->t_block : c->T;
    const int64_t n0 = tile * TILE_NB;
    const int nn = (int)(N - n0 < TILE_NB ? N - n0 : TILE_NB);
    const uint32_t *panel = c->packed ? c->packed + tile * TILE_NB * P : NULL;
    if (!panel) {
        float *buf = ck_scratch((size_t)(TILE_NB * P + K + 2));
        if (!buf || pack_tile_b((uint32_t *)buf, c->w, c->wtype, c->rb, K, n0, nn, buf + TILE_NB * P) != 0) {
            c->failed = 1;
            return;
        }
        panel = (const uint32_t *)buf;
    }
    tile_gemm_b(c->out + t_begin * N + n0, N, c->a + t_begin * P, P, panel, TILE_NB, P, T - t_begin, nn, 0);
    if (c->bias)
        for (int64_t t = t_begin; t < T; t++)
            for (int j = 0; j < nn; j++) c->out[t * N + n0 + j] += c->bias[n0 + j];
}

/* Packing task for ck_matmul_pack_bf16: one tile. */
CK_BF16 static void pack_task_b(void *vctx, int64_t tile) {
    gb_ctx *c = vctx;
    const int64_t n0 = tile * TILE_NB;
    const int nn = (int)(c->N - n0 < TILE_NB ? c->N - n0 : TILE_NB);
    float *tmp = ck_scratch((size_t)(c->K + 2));
    if (!tmp || pack_tile_b((uint32_t *)c->packed + tile * TILE_NB * c->P, c->w, c->wtype, c->rb, c->K, n0, nn, tmp) != 0)
        c->failed = 1;
}

/* Rounds inp to pairs and runs fwd_task over every (tile, row block): c has w or packed set. */
static int forward_b(gb_ctx *c, const float *inp) {
    uint32_t *a = malloc((size_t)(c->T * c->P) * sizeof(uint32_t));
    if (!a) return -1;
    to_pairs(a, inp, c->K, c->T, c->K);
    c->a = a;
    c->t_block = c->T;
    c->t_blocks = 1;
    const int64_t tiles = (c->N + TILE_NB - 1) / TILE_NB, want = 4 * (int64_t)ck_get_threads();
    if (tiles < want && c->T >= 96) {
        int64_t tb = (c->T * tiles + want - 1) / want;
        tb = tb < 48 ? 48 : (tb + 11) / 12 * 12;
        c->t_block = tb;
        c->t_blocks = (c->T + tb - 1) / tb;
    }
    ck_parallel_for(tiles * c->t_blocks, fwd_task, c);
    free(a);
    return c->failed ? -1 : 0;
}

/* Backward-input task: dinp tile (t block × kc columns); W walked in panels of BNB rows,
 * packed as pairs of rows [BNB/2][kc]. */
CK_BF16 static void bwd_task(void *vctx, int64_t task) {
    gb_ctx *c = vctx;
    const int64_t k0 = (task % c->k_tiles) * c->kc, t0 = (task / c->k_tiles) * c->t_block;
    const int64_t kn = c->K - k0 < c->kc ? c->K - k0 : c->kc, tn = c->T - t0 < c->t_block ? c->T - t0 : c->t_block;
    const int64_t kc = c->kc;
    float *buf = ck_scratch((size_t)(BNB / 2 * kc + 2 * kc));
    if (!buf) { c->failed = 1; return; }
    uint32_t *panel = (uint32_t *)buf;
    float *r0 = buf + BNB / 2 * kc, *r1 = r0 + kc;
    float *out = c->out + t0 * c->K + k0;
    short lo[32], hi[32];
    for (int i = 0; i < 16; i++) {
        lo[2 * i] = (short)i, lo[2 * i + 1] = (short)(32 + i);
        hi[2 * i] = (short)(16 + i), hi[2 * i + 1] = (short)(48 + i);
    }
    const __m512i ilv_lo = _mm512_loadu_si512(lo), ilv_hi = _mm512_loadu_si512(hi);
    for (int64_t n0 = 0; n0 < c->N; n0 += BNB) {
        const int64_t nn = c->N - n0 < BNB ? c->N - n0 : BNB, np = (nn + 1) / 2;
        for (int64_t p = 0; p < np; p++) {
            const int64_t n = n0 + 2 * p;
            const int two = 2 * p + 1 < nn;
            if (c->wtype == CK_TYPE_BF16) {
                const uint16_t *s0 = (const uint16_t *)(c->w + n * c->rb) + k0;
                const uint16_t *s1 = two ? (const uint16_t *)(c->w + (n + 1) * c->rb) + k0 : NULL;
                int64_t j = 0;
                if (two) // interleave 32 columns of the two rows: vpermt2w
                    for (; j + 32 <= kn; j += 32) {
                        const __m512i a = _mm512_loadu_si512(s0 + j), b = _mm512_loadu_si512(s1 + j);
                        _mm512_storeu_si512(panel + p * kc + j, _mm512_permutex2var_epi16(a, ilv_lo, b));
                        _mm512_storeu_si512(panel + p * kc + j + 16, _mm512_permutex2var_epi16(a, ilv_hi, b));
                    }
                for (; j < kn; j++) panel[p * kc + j] = (uint32_t)s0[j] | (two ? (uint32_t)s1[j] << 16 : 0u);
            } else {
                const char *s0 = c->w + n * c->rb + (k0 / c->bs) * c->bbytes;
                if (ck_dequantize_row(c->wtype, s0, r0, kn) != 0 ||
                    (two && ck_dequantize_row(c->wtype, s0 + c->rb, r1, kn) != 0)) { c->failed = 1; return; }
                if (!two) for (int64_t j = 0; j < kn; j++) r1[j] = 0.0f;
                int64_t j = 0;
                for (; j + 16 <= kn; j += 16) { // pair = bf16(r0) | bf16(r1) << 16, 16 columns at a time
                    const __m512i lo16 = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r0 + j)));
                    const __m512i hi16 = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r1 + j)));
                    _mm512_storeu_si512(panel + p * kc + j, _mm512_or_si512(lo16, _mm512_slli_epi32(hi16, 16)));
                }
                for (; j < kn; j++) panel[p * kc + j] = pair_of(r0[j], r1[j]);
            }
        }
        tile_gemm_b(out, c->K, c->a + t0 * c->P + n0 / 2, c->P, panel, kc, np, tn, kn, n0 > 0 || c->accumulate);
    }
}
#endif

int ck_bf16_products_available(void) {
#if CK_X86
    return ck_use_avx512() && bf16_supported();
#else
    return 0;
#endif
}

/* TUNE_FAST_GEMM=bf16|f32 (read once) picks the fast path's GEMM; by default bf16 products where
 * they are available on an AMD CPU (Zen 4: VDPBF16PS at twice the f32 FMA rate) and f32 elsewhere
 * (the Intel Xeons this runs on issue VDPBF16PS no faster than FMA, so it would only add rounding). */
int ck_fast_gemm_bf16(void) {
#if CK_X86
    static _Atomic int v = -1;
    if (v < 0) {
        const char *e = getenv("TUNE_FAST_GEMM");
        __builtin_cpu_init();
        v = e && !strcmp(e, "bf16") ? 1 : e && !strcmp(e, "f32") ? 0 : __builtin_cpu_is("amd") ? 1 : 0;
    }
    return v && ck_bf16_products_available();
#else
    return 0;
#endif
}

int ck_matmul_forward_bf16(float *out, const float *inp, const void *w, int wtype,
                           const float *bias, int64_t T, int64_t K, int64_t N) {
#if CK_X86
    if (!ck_bf16_products_available()) return ck_matmul_forward(out, inp, w, wtype, bias, T, K, N);
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (T < 0 || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    if (T == 0 || N == 0) return 0;
    gb_ctx c = {.out = out, .w = w, .bias = bias, .wtype = wtype, .T = T, .K = K, .N = N, .rb = rb, .P = (K + 1) / 2};
    return forward_b(&c, inp);
#else
    return ck_matmul_forward(out, inp, w, wtype, bias, T, K, N);
#endif
}

int ck_matmul_backward_input_bf16(float *dinp, const float *dout, const void *w, int wtype,
                                  int64_t T, int64_t K, int64_t N, int accumulate) {
#if CK_X86
    if (!ck_bf16_products_available()) return ck_matmul_backward_input(dinp, dout, w, wtype, T, K, N, accumulate);
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (T < 0 || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    if (T == 0) return 0;
    if (N == 0) {
        if (!accumulate) memset(dinp, 0, (size_t)(T * K) * sizeof(float));
        return 0;
    }
    const int64_t P = (N + 1) / 2, bs = ck_type_block_size(wtype);
    uint32_t *a = malloc((size_t)(T * P) * sizeof(uint32_t));
    if (!a) return -1;
    to_pairs(a, dout, N, T, N);
    const int64_t kc = bs <= BKC ? BKC : bs;
    gb_ctx c = {.out = dinp, .a = a, .w = w, .wtype = wtype, .accumulate = accumulate, .T = T, .K = K, .N = N,
                .rb = rb, .P = P, .t_block = BTB, .kc = kc, .bs = bs, .bbytes = ck_type_block_bytes(wtype),
                .k_tiles = (K + kc - 1) / kc};
    while (c.t_block > 48 && c.k_tiles * ((T + c.t_block - 1) / c.t_block) < 4 * (int64_t)ck_get_threads())
        c.t_block = (c.t_block / 2 + 11) / 12 * 12;
    ck_parallel_for(c.k_tiles * ((T + c.t_block - 1) / c.t_block), bwd_task, &c);
    free(a);
    return c.failed ? -1 : 0;
#else
    return ck_matmul_backward_input(dinp, dout, w, wtype, T, K, N, accumulate);
#endif
}

// ---- packed bf16 panels (fast inference) ---------------------------------------------------
// For one W used by many forward calls: dequantized, rounded and stored once in the panels the
// forward task would build ([tiles][P][32] pairs, zero past N), so a call only rounds its
// activations. Same panels, same micro-kernel: bit-identical to ck_matmul_forward_bf16.

int64_t ck_matmul_packed_bf16_size(int64_t K, int64_t N) {
    return K <= 0 || N < 0 ? 0 : (N + TILE_NB - 1) / TILE_NB * TILE_NB * ((K + 1) / 2);
}

int ck_matmul_pack_bf16(uint32_t *packed, const void *w, int wtype, int64_t K, int64_t N) {
#if CK_X86
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (!ck_bf16_products_available() || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    gb_ctx c = {.packed = packed, .w = w, .wtype = wtype, .K = K, .N = N, .rb = rb, .P = (K + 1) / 2};
    ck_parallel_for((N + TILE_NB - 1) / TILE_NB, pack_task_b, &c);
    return c.failed ? -1 : 0;
#else
    (void)packed; (void)w; (void)wtype; (void)K; (void)N;
    return -1;
#endif
}

int ck_matmul_forward_packed_bf16(float *out, const float *inp, const uint32_t *packed, const float *bias,
                                  int64_t T, int64_t K, int64_t N) {
#if CK_X86
    if (!ck_bf16_products_available() || T < 0 || N < 0 || K <= 0) return -1;
    if (T == 0 || N == 0) return 0;
    gb_ctx c = {.out = out, .packed = packed, .bias = bias, .T = T, .K = K, .N = N, .P = (K + 1) / 2};
    return forward_b(&c, inp);
#else
    (void)out; (void)inp; (void)packed; (void)bias; (void)T; (void)K; (void)N;
    return -1;
#endif
}
