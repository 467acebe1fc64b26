/*
 * gemm_bwd.c — the two backward GEMM layouts of out = inp · Wᵀ:
 *   ck_matmul_backward_input : dinp[T,K] (+)= dout[T,N] · W[N,K]   (W any dequantizable type)
 *   ck_matmul_backward_weight: dw[N,K]   +=  dout[T,N]ᵀ · inp[T,K]  (f32)
 *
 * Fast path (AVX2/FMA and AVX-512): GotoBLAS-style blocking around the register-tile GEMM core
 * (6×16 ymm tiles here, 12×32 zmm tiles in gemm_avx512.c): the vector operand is packed into
 * 32-column panels read from L2, and a register tile's rows of the broadcast operand stay in L1
 * across all panels of a task.
 *  - backward_input: per block of BI_RC W rows, all threads dequantize the block once into shared
 *    panels (the full f32 W is never materialized); a task owns a block of dinp rows × up to
 *    BI_KR columns and runs every mr-row group of its dY block against every panel. dY is read in
 *    place, or packed [BI_RC][mr] when its rows are 4 KiB-aliased (the LM head, N = 49152).
 *  - backward_weight: inp is packed once per call into [T][32] panels; a task owns NBW rows of dw
 *    (× a range of panels when row blocks are few), copies its dout columns [T][NBW], and reduces
 *    over T in chunks of TCH rows: each panel chunk stays in L1 for all the block's tiles.
 * Small K (<= 16, f32: LoRA rank r) under AVX-512: backward_input runs the k-vectorized
 * small-N kernel on Wᵀ (each element: a 16-lane dot + ck_hsum16, added to the initial value
 * once); backward_weight computes dwᵀ on full-width tiles (same order as below).
 * Reproducibility: every output element is its initial value followed by one fmaf per
 * reduction index in increasing order (float), whatever the tile, panel or thread, so
 * results are bit-identical for any thread count.
 */
#include "ck_internal.h"
#include "ck_train.h"
#include "ck_quant.h"
#include <stdlib.h>
#include <string.h>

#define BIG_N 4096 // the LM head (N = 49152): W is read from memory, so dX re-reads it as few times as possible

// ---- reference ---------------------------------------------------------------------

/* dinp [T,K], dout [T,N], w [N,K] rows of wtype. Double accumulation. */
int ck_matmul_backward_input_ref(float *dinp, const float *dout, const void *w, int wtype,
                                 int64_t T, int64_t K, int64_t N, int accumulate) {
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (T < 0 || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    double *acc = calloc((size_t)(T * K) + 1, sizeof(double));
    float *row = malloc((size_t)K * sizeof(float));
    if (!acc || !row) { free(acc); free(row); return -1; }
    for (int64_t n = 0; n < N; n++) {
        if (ck_dequantize_row_ref(wtype, (const char *)w + n * rb, row, K) != 0) { free(acc); free(row); return -1; }
        for (int64_t t = 0; t < T; t++) {
            const double g = dout[t * N + n];
            for (int64_t k = 0; k < K; k++) acc[t * K + k] += g * (double)row[k];
        }
    }
    for (int64_t i = 0; i < T * K; i++) dinp[i] = (float)((accumulate ? (double)dinp[i] : 0.0) + acc[i]);
    free(acc);
    free(row);
    return 0;
}

/* dw [N,K] +=, dout [T,N], inp [T,K]. Double accumulation. */
void ck_matmul_backward_weight_ref(float *dw, const float *dout, const float *inp,
                                   int64_t T, int64_t K, int64_t N) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            double s = 0.0;
            for (int64_t t = 0; t < T; t++) s += (double)dout[t * N + n] * (double)inp[t * K + k];
            dw[n * K + k] = (float)((double)dw[n * K + k] + s);
        }
}

// ---- micro-kernel ----------------------------------------------------------------------

#if CK_X86
/* C[i, j] (+)= Σ_r A[i*sai + r*sar] · B[r*ldb + j] for i < MR, j < nc (nc <= 16).
 * load_c: 1 start from C; 2 sum from 0, then add C (the block's rounding relative to its own sum);
 * 0 C = the sum. FULL: nc == 16 (unmasked loads). */
CK_AVX2_INLINE void mk(int MR, int FULL, float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar,
                       const float *b, int64_t ldb, int64_t R, int nc, int load_c) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), idx);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc - 8), idx);
    __m256 acc[6][2];
    for (int i = 0; i < MR; i++) {
        if (load_c == 1) {
            acc[i][0] = FULL ? _mm256_loadu_ps(c + i * ldc) : _mm256_maskload_ps(c + i * ldc, m0);
            acc[i][1] = FULL ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_maskload_ps(c + i * ldc + 8, m1);
        } else {
            acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        }
    }
    for (int64_t r = 0; r < R; r++) {
        const float *br = b + r * ldb;
        const __m256 b0 = FULL ? _mm256_loadu_ps(br) : _mm256_maskload_ps(br, m0);
        const __m256 b1 = FULL ? _mm256_loadu_ps(br + 8) : _mm256_maskload_ps(br + 8, m1);
        for (int i = 0; i < MR; i++) {
            const __m256 av = _mm256_broadcast_ss(a + i * sai + r * sar);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    if (load_c == 2)
        for (int i = 0; i < MR; i++) {
            acc[i][0] = _mm256_add_ps(acc[i][0], FULL ? _mm256_loadu_ps(c + i * ldc) : _mm256_maskload_ps(c + i * ldc, m0));
            acc[i][1] = _mm256_add_ps(acc[i][1], FULL ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_maskload_ps(c + i * ldc + 8, m1));
        }
    for (int i = 0; i < MR; i++) {
        if (FULL) {
            _mm256_storeu_ps(c + i * ldc, acc[i][0]);
            _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
        } else {
            _mm256_maskstore_ps(c + i * ldc, m0, acc[i][0]);
            _mm256_maskstore_ps(c + i * ldc + 8, m1, acc[i][1]);
        }
    }
}

#define MK_ARGS float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar, const float *b, int64_t ldb, int64_t R, int nc, int load_c
#define MK_PASS c, ldc, a, sai, sar, b, ldb, R, nc, load_c
CK_AVX2 static void mk6f(MK_ARGS) { mk(6, 1, MK_PASS); }
CK_AVX2 static void mk1f(MK_ARGS) { mk(1, 1, MK_PASS); }
CK_AVX2 static void mk6m(MK_ARGS) { mk(6, 0, MK_PASS); }
CK_AVX2 static void mk1m(MK_ARGS) { mk(1, 0, MK_PASS); }

/* C[rows, cols] (+)= A·B as above, tiled into 6×16 micro-tiles (AVX2), or into the 12×32
 * tiles of gemm_avx512.c when the active ISA is AVX-512 (same per-element arithmetic order). */
void ck_tile_gemm(float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar,
                      const float *b, int64_t ldb, int64_t R, int64_t rows, int64_t cols, int load_c) {
    if (ck_use_avx512()) { ck512_tile_gemm(c, ldc, a, sai, sar, b, ldb, R, rows, cols, load_c); return; }
    if (cols > 32) { // stripes outer: a [R][16] stripe of B stays in L1 for every row tile
        for (int64_t j = 0; j < cols; j += 16) {
            const int nc = (int)(cols - j < 16 ? cols - j : 16);
            int64_t i = 0;
            for (; i + 6 <= rows; i += 6)
                (nc == 16 ? mk6f : mk6m)(c + i * ldc + j, ldc, a + i * sai, sai, sar, b + j, ldb, R, nc, load_c);
            for (; i < rows; i++)
                (nc == 16 ? mk1f : mk1m)(c + i * ldc + j, ldc, a + i * sai, sai, sar, b + j, ldb, R, nc, load_c);
        }
        return;
    }
    // Narrow B (the forward's 32-column panels): row tiles outer, so a tile's A rows (L1) serve
    // both 16-column stripes before the next rows are read.
    int64_t i = 0;
    for (; i + 6 <= rows; i += 6)
        for (int64_t j = 0; j < cols; j += 16) {
            const int nc = (int)(cols - j < 16 ? cols - j : 16);
            (nc == 16 ? mk6f : mk6m)(c + i * ldc + j, ldc, a + i * sai, sai, sar, b + j, ldb, R, nc, load_c);
        }
    for (; i < rows; i++)
        for (int64_t j = 0; j < cols; j += 16) {
            const int nc = (int)(cols - j < 16 ? cols - j : 16);
            (nc == 16 ? mk1f : mk1m)(c + i * ldc + j, ldc, a + i * sai, sai, sar, b + j, ldb, R, nc, load_c);
        }
}
/* A[rows, R] (A[i, r] = a[i*sai + r*sar]) packed in tiles of mr rows: tile q is [R][mr] at
 * ap + q*mr*R (a short last tile keeps the row stride mr). Broadcasting from a packed tile reads
 * one contiguous stream instead of mr strided rows: when the row stride is a multiple of 4 KiB
 * (dY of the LM head, N = 49152) those rows all fall into one L1 set and evict each other. */
/* dst[r*mr + i] = rows[i][r] for i < m (<= 8), r < 8: one 8×8 transpose in registers (rows
 * past m repeat row m-1: loaded, never stored), masked stores of m lanes. */
CK_AVX2 static inline void pack8x8(float *dst, const float *const *rows, int m, int mr) {
    __m256 v[8];
    for (int i = 0; i < 8; i++) v[i] = _mm256_loadu_ps(rows[i < m ? i : m - 1]);
    const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    __m256 o[8];
    o[0] = _mm256_permute2f128_ps(s0, s4, 0x20); o[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    o[2] = _mm256_permute2f128_ps(s2, s6, 0x20); o[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    o[4] = _mm256_permute2f128_ps(s0, s4, 0x31); o[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    o[6] = _mm256_permute2f128_ps(s2, s6, 0x31); o[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
    if (m == 8) {
        for (int r = 0; r < 8; r++) _mm256_storeu_ps(dst + r * mr, o[r]);
    } else {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int r = 0; r < 8; r++) _mm256_maskstore_ps(dst + r * mr, mask, o[r]);
    }
}

/* A[rows, R] (A[i, r] = a[i*sai + r*sar]) packed in tiles of mr rows: tile q is [R][mr] at
 * ap + q*mr*R (a short last tile keeps the row stride mr). Broadcasting from a packed tile reads
 * one contiguous stream instead of mr strided rows: when the row stride is a multiple of 4 KiB
 * (dY of the LM head, N = 49152) those rows all fall into one L1 set and evict each other.
 * sar == 1 (rows contiguous): 8×8 register transposes; otherwise a scalar copy. */
CK_AVX2 void ck_pack_a(float *restrict ap, const float *restrict a, int64_t sai, int64_t sar, int64_t rows, int64_t R, int mr) {
    for (int64_t i0 = 0; i0 < rows; i0 += mr) {
        const int m = (int)(rows - i0 < mr ? rows - i0 : mr);
        float *dst = ap + i0 * R;
        int64_t r0 = 0;
        if (sar == 1) {
            for (; r0 + 8 <= R; r0 += 8)
                for (int g = 0; g < m; g += 8) {
                    const float *rp[8];
                    const int gm = m - g < 8 ? m - g : 8;
                    for (int i = 0; i < gm; i++) rp[i] = a + (i0 + g + i) * sai + r0;
                    pack8x8(dst + r0 * mr + g, rp, gm, mr);
                }
        }
        for (int64_t i = 0; i < m; i++) {
            const float *src = a + (i0 + i) * sai;
            for (int64_t r = r0; r < R; r++) dst[r * mr + i] = src[r * sar];
        }
    }
}

int ck_tile_mr(void) { return ck_use_avx512() ? 12 : 6; }

#endif

// ---- backward input ----------------------------------------------------------------------

#if CK_X86
/* Short-row copy in registers (a plain loop would be turned back into a memcpy call). */
CK_AVX2 static inline void copy_row(float *restrict dst, const float *restrict src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    if (i < n) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(dst + i, m, _mm256_maskload_ps(src + i, m));
    }
}

#endif

/* Blocked path (GotoBLAS-style, both ISAs). W is taken in blocks of BI_RC rows: each block is
 * dequantized (or copied) once per call, by all threads, into 32-column panels [BI_RC][32]
 * (shared; the full f32 W is never materialized). Then a task owns a block of dinp rows × a range
 * of at most BI_KR columns and runs each register-tile row group of its dY block (L1-resident
 * across the panels) against every panel of its range (L2). */
#define BI_RC 192 // W rows per packed block: [192][32] panels, [192][mr] dY tiles
#define BI_KR 768 // dinp columns per task at most (a multiple of 32)
#define BI_PANEL 32
typedef struct {
    float *dinp;
    const float *dout;
    const char *w;
    int wtype, accumulate;
    int64_t T, K, N, rb, tb, kr, k_ranges, panels;
    float *bpk;                  // the current W block: panel p at bpk + p*BI_RC*32
    int64_t n0, nn, pack_rows;   // the current block's first row and size; W rows per pack task
    _Atomic int failed;
} bib_ctx;

#if CK_X86
static void bib_pack_task(void *vctx, int64_t task) {
    bib_ctx *c = vctx;
    const int64_t j0 = task * c->pack_rows, j1 = j0 + c->pack_rows < c->nn ? j0 + c->pack_rows : c->nn;
    const int f32 = c->wtype == CK_TYPE_F32;
    float *row = f32 ? NULL : ck_scratch((size_t)c->K);
    if (!f32 && !row) { c->failed = 1; return; }
    for (int64_t j = j0; j < j1; j++) {
        const float *src = (const float *)(c->w + (c->n0 + j) * c->rb);
        if (!f32) {
            if (ck_dequantize_row(c->wtype, c->w + (c->n0 + j) * c->rb, row, c->K) != 0) { c->failed = 1; return; }
            src = row;
        }
        for (int64_t p = 0; p < c->panels; p++)
            copy_row(c->bpk + p * BI_RC * BI_PANEL + j * BI_PANEL, src + p * BI_PANEL, c->K - p * BI_PANEL < BI_PANEL ? c->K - p * BI_PANEL : BI_PANEL);
    }
}

/* One register-tile pass of a W block onto dinp. The first block of a reduction (load 0) writes
 * its sums; every later one is summed from zero in the registers and then added to dinp (load_c 2),
 * so dinp's running total never enters a block's FMA chain: each rounding is relative to one
 * block's sum instead of to the total so far. Over the LM head's ~800 blocks (N = 151,936) the chained form
 * lost about ten times more, enough to move Qwen2.5's last-layer LoRA gradients by 2e-3 (relative
 * L2, against a float64 PEFT run) where PyTorch's float32 stays near 2e-4. Costs one add per
 * output element per block (C is loaded after the chain instead of before it). */
static void bib_block(float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar, const float *b, int64_t R,
                      int64_t rows, int64_t cols, int load) {
    ck_tile_gemm(c, ldc, a, sai, sar, b, BI_PANEL, R, rows, cols, load ? 2 : 0);
}

static void bib_task(void *vctx, int64_t task) {
    bib_ctx *c = vctx;
    const int64_t t0 = (task / c->k_ranges) * c->tb, k0 = (task % c->k_ranges) * c->kr;
    const int64_t tn = c->T - t0 < c->tb ? c->T - t0 : c->tb, kn = c->K - k0 < c->kr ? c->K - k0 : c->kr;
    const int64_t p0 = k0 / BI_PANEL, p1 = p0 + (kn + BI_PANEL - 1) / BI_PANEL, nn = c->nn, n0 = c->n0;
    const int load = n0 > 0 || c->accumulate;
    const int mr = ck_tile_mr();
    // dY is read in place, except for the LM head (N >= BIG_N) or rows a multiple of 4 KiB apart
    // (N = 49152 is both), whose tile rows would share one L1 set; each mr-row group's slice is packed
    // [BI_RC][mr] (ck_pack_a) first. (Packing for every N cost ~6 % in the 8×8 transposes and
    // bought nothing where rows do not alias.)
    const int pack = c->N >= BIG_N || c->N % 1024 == 0;
    const int panels_outer = !pack && (nn < 64 || p1 - p0 == 1); // a short reduction (LoRA's N = r) or one panel
    float *ap = pack ? ck_scratch((size_t)(BI_RC * mr)) : NULL;
    if (pack && !ap) { c->failed = 1; return; }
    if (panels_outer) {
        for (int64_t p = p0; p < p1; p++)
            bib_block(c->dinp + t0 * c->K + p * BI_PANEL, c->K, c->dout + t0 * c->N + n0, c->N, 1, c->bpk + p * BI_RC * BI_PANEL,
                      nn, tn, c->K - p * BI_PANEL < BI_PANEL ? c->K - p * BI_PANEL : BI_PANEL, load);
        return;
    }
    for (int64_t i0 = t0; i0 < t0 + tn; i0 += mr) {
        const int64_t m = t0 + tn - i0 < mr ? t0 + tn - i0 : mr;
        const float *a = c->dout + i0 * c->N + n0;
        int64_t sai = c->N, sar = 1;
        if (ap) {
            ck_pack_a(ap, a, c->N, 1, m, nn, mr);
            a = ap;
            sai = 1;
            sar = mr;
        }
        for (int64_t p = p0; p < p1; p++)
            bib_block(c->dinp + i0 * c->K + p * BI_PANEL, c->K, a, sai, sar, c->bpk + p * BI_RC * BI_PANEL,
                      nn, m, c->K - p * BI_PANEL < BI_PANEL ? c->K - p * BI_PANEL : BI_PANEL, load);
    }
}
#endif

/* Small K (<= SMALL_K, f32 W: LoRA's du = dY·B with K = r): W is transposed once to [K][N]
 * and blocks of dY rows go through the k-vectorized small-N kernel (reduction over N). */
#define SMALL_K 16
#define SMALL_ROWS 48
typedef struct { float *dinp; const float *dout, *wt; int64_t T, K, N; int accumulate; } bis_ctx;
#if CK_X86
static void bi_small_task(void *vctx, int64_t task) {
    const bis_ctx *c = vctx;
    const int64_t t0 = task * SMALL_ROWS, nt = c->T - t0 < SMALL_ROWS ? c->T - t0 : SMALL_ROWS;
    ck512_small_n(c->dinp + t0 * c->K, c->K, c->dout + t0 * c->N, c->N, c->wt, c->N, NULL, nt, c->N, c->K, c->accumulate);
}
#endif

int ck_matmul_backward_input(float *dinp, const float *dout, const void *w, int wtype,
                             int64_t T, int64_t K, int64_t N, int accumulate) {
#if CK_X86
    if (!ck_use_simd()) return ck_matmul_backward_input_ref(dinp, dout, w, wtype, T, K, N, accumulate);
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (T < 0 || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    if (T == 0) return 0;
    if (N == 0) {
        if (!accumulate) memset(dinp, 0, (size_t)(T * K) * sizeof(float));
        return 0;
    }
    if (ck_use_avx512() && wtype == CK_TYPE_F32 && K <= SMALL_K) {
        float *wt = ck_scratch_caller((size_t)(K * N));
        if (!wt) return -1;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) wt[k * N + n] = ((const float *)w)[n * K + k];
        bis_ctx sc = {dinp, dout, wt, T, K, N, accumulate};
        ck_parallel_for((T + SMALL_ROWS - 1) / SMALL_ROWS, bi_small_task, &sc);
        return 0;
    }
    {
        const int64_t threads = ck_get_threads(), panels = (K + BI_PANEL - 1) / BI_PANEL;
        bib_ctx c = {.dinp = dinp, .dout = dout, .w = w, .wtype = wtype, .accumulate = accumulate, .T = T, .K = K, .N = N,
                     .rb = rb, .panels = panels};
        c.bpk = ck_scratch_caller((size_t)(panels * BI_RC * BI_PANEL));
        if (!c.bpk) return -1;
        c.kr = K <= BI_KR ? K : BI_KR;
        c.k_ranges = (K + c.kr - 1) / c.kr;
        // W is packed once whatever the tasks, so there can be enough of them to balance load.
        const int64_t t_blocks = (4 * threads + c.k_ranges - 1) / c.k_ranges;
        int64_t tb = (T + t_blocks - 1) / t_blocks;
        tb = tb < 48 ? 48 : (tb + 11) / 12 * 12;
        c.tb = tb;
        const int64_t tasks = c.k_ranges * ((T + tb - 1) / tb);
        for (int64_t n0 = 0; n0 < N && !c.failed; n0 += BI_RC) {
            c.n0 = n0;
            c.nn = N - n0 < BI_RC ? N - n0 : BI_RC;
            c.pack_rows = (c.nn + 2 * threads - 1) / (2 * threads);
            ck_parallel_for((c.nn + c.pack_rows - 1) / c.pack_rows, bib_pack_task, &c);
            if (c.failed) break;
            ck_parallel_for(tasks, bib_task, &c);
        }
        return c.failed ? -1 : 0;
    }
#else
    return ck_matmul_backward_input_ref(dinp, dout, w, wtype, T, K, N, accumulate);
#endif
}

// ---- backward weight ---------------------------------------------------------------------

/* General path (GotoBLAS-style, both ISAs): inp is packed once per call into 32-column panels
 * [ceil(K/32)][T][32] (shared by all tasks); a task owns nn <= NBW rows of dw over a range of
 * panels, copies its dout columns once as [T][nn] (contiguous rows: read in place every reduction
 * step would touch a new page when N is large), and runs every register tile of its rows against
 * every panel, the reduction over T in chunks of up to TCH rows. Both operands are read as
 * contiguous streams, never with the row strides of dout or inp. */
#define NBW 96 // dw rows per task (multiple of 12)
#define BW_PANEL 32
#define TCH 1024 // reduction rows per chunk (dw tiles reloaded: the same fmaf chain)

typedef struct {
    float *dw;
    const float *dout, *inp;
    int64_t T, K, N, nbw, panels, k_groups, panels_per_group;
    float *ipack; // [panels][T][32]
} bw_ctx;

#if CK_X86
/* Pack task i: inp columns 32i.. as [T][32] (a short last panel keeps stride 32). */
static void bw_pack_task(void *vctx, int64_t i) {
    const bw_ctx *c = vctx;
    const int64_t k0 = i * BW_PANEL, kn = c->K - k0 < BW_PANEL ? c->K - k0 : BW_PANEL;
    float *dst = c->ipack + i * c->T * BW_PANEL;
    for (int64_t t = 0; t < c->T; t++) copy_row(dst + t * BW_PANEL, c->inp + t * c->K + k0, kn);
}

static void bw_task(void *vctx, int64_t task) {
    bw_ctx *c = vctx;
    const int64_t nb = task / c->k_groups, g = task % c->k_groups;
    const int64_t n0 = nb * c->nbw, nn = c->N - n0 < c->nbw ? c->N - n0 : c->nbw;
    const int64_t p0 = g * c->panels_per_group;
    const int64_t p1 = p0 + c->panels_per_group < c->panels ? p0 + c->panels_per_group : c->panels;
    const int mr = ck_tile_mr();
    const int64_t T = c->T, tiles = (nn + mr - 1) / mr;
    float *dpk = ck_scratch((size_t)(nn * T)); // NULL (out of memory): dout read in place, same arithmetic
    if (dpk) for (int64_t t = 0; t < T; t++) copy_row(dpk + t * nn, c->dout + t * c->N + n0, nn);
    for (int64_t t0 = 0; t0 < T; t0 += TCH) {
        const int64_t tn = T - t0 < TCH ? T - t0 : TCH;
        for (int64_t p = p0; p < p1; p++) {
            const int64_t k0 = p * BW_PANEL, kn = c->K - k0 < BW_PANEL ? c->K - k0 : BW_PANEL;
            const float *b = c->ipack + p * T * BW_PANEL + t0 * BW_PANEL;
            for (int64_t q = 0; q < tiles; q++) {
                const int64_t rows = nn - q * mr < mr ? nn - q * mr : mr;
                float *cc = c->dw + (n0 + q * mr) * c->K + k0;
                if (dpk) ck_tile_gemm(cc, c->K, dpk + t0 * nn + q * mr, 1, nn, b, BW_PANEL, tn, rows, kn, 1);
                else ck_tile_gemm(cc, c->K, c->dout + t0 * c->N + n0 + q * mr, 1, c->N, b, BW_PANEL, tn, rows, kn, 1);
            }
        }
    }
}
#endif

/* Small K (<= SMALL_K: LoRA's dB += dYᵀ·u with K = r) under AVX-512: the transposed product
 * dwᵀ[K, N] += uᵀ·dY runs on full 32-wide tiles (K rows × a 64-column stripe of N per task,
 * its dY columns packed [T][64]); dw's stripe is transposed in and out. Same per-element
 * order as the general path: initial value, then one fmaf per t in increasing order. */
#define SMALL_NC 64
#if CK_X86
static void bw_small_task(void *vctx, int64_t task) {
    const bw_ctx *c = vctx;
    const int64_t n0 = task * SMALL_NC, nn = c->N - n0 < SMALL_NC ? c->N - n0 : SMALL_NC, K = c->K;
    float *pack = ck_scratch((size_t)(c->T * SMALL_NC + SMALL_K * SMALL_NC));
    if (!pack) { // allocation failure: the general path for this stripe (same arithmetic)
        ck_tile_gemm(c->dw + n0 * K, K, c->dout + n0, 1, c->N, c->inp, K, c->T, nn, K, 1);
        return;
    }
    float *ct = pack + c->T * SMALL_NC;
    for (int64_t t = 0; t < c->T; t++) copy_row(pack + t * nn, c->dout + t * c->N + n0, nn);
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < nn; j++) ct[k * nn + j] = c->dw[(n0 + j) * K + k];
    ck512_tile_gemm(ct, nn, c->inp, 1, K, pack, nn, c->T, K, nn, 1);
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < nn; j++) c->dw[(n0 + j) * K + k] = ct[k * nn + j];
}
#endif

/* Small N (<= SMALL_NW: LoRA's dA += duᵀ·X with N = r): dw is only N rows, so packing inp (all
 * of T×K) for it costs as much as the product. Tasks are 64-column stripes of dw, each one
 * register-tile row (N ≤ 16 rows, broadcast from dout's short rows) swept over all T with inp
 * read in place. Same per-element order as the general path. */
#define SMALL_NW 16
#define SMALL_KC 64
#if CK_X86
static void bw_small_n_task(void *vctx, int64_t task) {
    const bw_ctx *c = vctx;
    const int64_t k0 = task * SMALL_KC, kn = c->K - k0 < SMALL_KC ? c->K - k0 : SMALL_KC;
    ck_tile_gemm(c->dw + k0, c->K, c->dout, 1, c->N, c->inp + k0, c->K, c->T, c->N, kn, 1);
}
#endif

void ck_matmul_backward_weight(float *dw, const float *dout, const float *inp,
                               int64_t T, int64_t K, int64_t N) {
#if CK_X86
    if (ck_use_simd()) {
        if (T <= 0 || K <= 0 || N <= 0) return;
        if (ck_use_avx512() && K <= SMALL_K) {
            bw_ctx c = {.dw = dw, .dout = dout, .inp = inp, .T = T, .K = K, .N = N};
            ck_parallel_for((N + SMALL_NC - 1) / SMALL_NC, bw_small_task, &c);
            return;
        }
        if (N <= SMALL_NW && K > SMALL_K) {
            bw_ctx c = {.dw = dw, .dout = dout, .inp = inp, .T = T, .K = K, .N = N};
            ck_parallel_for((K + SMALL_KC - 1) / SMALL_KC, bw_small_n_task, &c);
            return;
        }
        const int64_t nbw = NBW, n_blocks = (N + nbw - 1) / nbw;
        const int64_t panels = (K + BW_PANEL - 1) / BW_PANEL, want = 2 * (int64_t)ck_get_threads();
        int64_t groups = n_blocks >= want ? 1 : (want + n_blocks - 1) / n_blocks; // few row blocks: split K too
        if (groups > panels) groups = panels;
        const int64_t ppg = (panels + groups - 1) / groups;
        bw_ctx c = {.dw = dw, .dout = dout, .inp = inp, .T = T, .K = K, .N = N, .nbw = nbw, .panels = panels,
                    .k_groups = (panels + ppg - 1) / ppg, .panels_per_group = ppg};
        c.ipack = ck_scratch_caller((size_t)(panels * T * BW_PANEL));
        if (c.ipack) {
            ck_parallel_for(panels, bw_pack_task, &c);
            ck_parallel_for(n_blocks * c.k_groups, bw_task, &c);
            return;
        }
        // Out of memory for the packed inp: the reference
    }
#endif
    ck_matmul_backward_weight_ref(dw, dout, inp, T, K, N);
}
