/*
 * gemm_bwd.c — the two backward GEMM layouts of out = inp · Wᵀ:
 *   ck_matmul_backward_input : dinp[T,K] (+)= dout[T,N] · W[N,K]   (W any dequantizable type)
 *   ck_matmul_backward_weight: dw[N,K]   +=  dout[T,N]ᵀ · inp[T,K]  (f32)
 *
 * Fast path (AVX2/FMA): one generic register-blocked micro-kernel C[6,16] (+)= A[6,R]·B[R,16]
 * with arbitrary strides for A (12 ymm accumulators, B rows loaded as 2 ymm, A broadcast);
 * with AVX-512 the same tiling runs the 12×32 zmm kernel of gemm_avx512.c.
 *  - backward_input: a task owns a tile of dinp (TB rows × KC columns). It walks W in
 *    panels of NB rows, dequantizing the [NB, KC] slice of W into a per-thread buffer (the
 *    full f32 W is never materialized), and accumulates the panel's contribution in place.
 *  - backward_weight: a task owns NBW rows of dw (all of K, or one KC tile when there are
 *    few row blocks) and reduces over all T in registers; its dout columns and each inp
 *    column tile are packed contiguously first (strided in place, they are TLB-bound).
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

#define KC 64    // dinp columns per task (multiple of 16; raised to the block size if larger)
#define TB 384   // dinp rows per task at most (multiple of 12; fewer when tasks would be scarce)
#define NB 128   // W rows per dequantized panel
#define KC512 32  // AVX-512: dinp columns per task (one 32-wide stripe)
#define TB512 1536
#define NB512 256 // AVX-512: W rows per panel ([256][32] floats = 32 KiB)
// Large N (the LM head, N = 49152): dY's rows are N floats apart, and when that is a multiple of
// 4 KiB the 6/12 rows a register tile broadcasts from share one L1 set. dY blocks are then packed
// (ck_pack_a), and a task covers up to KC_BIG columns so each packed block serves many stripes.
#define BIG_N 4096
#define KC_BIG 576
#define TB_BIG 384
#define NB_BIG 256
#define NBW 48  // dw rows per task (multiple of 6)
#define TCH_AVX2 128 // AVX2 dW: reduction rows per register-tile pass

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
 * load_c: start from C (else 0). FULL: nc == 16 (unmasked loads). */
CK_AVX2_INLINE void mk(int MR, int FULL, float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar,
                       const float *b, int64_t ldb, int64_t R, int nc, int load_c) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), idx);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc - 8), idx);
    __m256 acc[6][2];
    for (int i = 0; i < MR; i++) {
        if (load_c) {
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

void ck_tile_gemm_pa(float *c, int64_t ldc, const float *ap, int mr, const float *b, int64_t ldb, int64_t R,
                     int64_t rows, int64_t cols, int load_c) {
    const int64_t nr = mr == 12 ? 32 : 16;
    for (int64_t j = 0; j < cols; j += nr)
        for (int64_t i0 = 0; i0 < rows; i0 += mr)
            ck_tile_gemm(c + i0 * ldc + j, ldc, ap + i0 * R, 1, mr, b + j, ldb, R, rows - i0 < mr ? rows - i0 : mr, cols - j < nr ? cols - j : nr, load_c);
}
#endif

// ---- backward input ----------------------------------------------------------------------

typedef struct {
    float *dinp;
    const float *dout;
    const char *w;
    int wtype, accumulate;
    int64_t T, K, N, rb, kc, bs, bbytes, k_tiles, tb, nb;
    int pack_a; // pack dY blocks in register-tile rows (large N)
    _Atomic int failed;
} bi_ctx;

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

static void bi_task(void *vctx, int64_t task) {
    bi_ctx *c = vctx;
    const int64_t k0 = (task % c->k_tiles) * c->kc, t0 = (task / c->k_tiles) * c->tb;
    const int64_t kn = c->K - k0 < c->kc ? c->K - k0 : c->kc, tn = c->T - t0 < c->tb ? c->T - t0 : c->tb;
    const int mr = ck_tile_mr();
    const int64_t tbr = (c->tb + mr - 1) / mr * mr;
    float *panel = ck_scratch((size_t)(c->nb * c->kc + (c->pack_a ? tbr * c->nb : 0)));
    if (!panel) { c->failed = 1; return; }
    float *ap = panel + c->nb * c->kc; // dout[t0.., n0..] packed in mr-row tiles
    float *out = c->dinp + t0 * c->K + k0;
    for (int64_t n0 = 0; n0 < c->N; n0 += c->nb) {
        const int64_t nn = c->N - n0 < c->nb ? c->N - n0 : c->nb;
        for (int64_t j = 0; j < nn; j++) {
            if (c->wtype == CK_TYPE_F32) { // contiguous copy (read in place, the strided rows are slower)
                copy_row(panel + j * c->kc, (const float *)(c->w + (n0 + j) * c->rb) + k0, kn);
                continue;
            }
            const char *src = c->w + (n0 + j) * c->rb + (k0 / c->bs) * c->bbytes;
            if (ck_dequantize_row(c->wtype, src, panel + j * c->kc, kn) != 0) { c->failed = 1; return; }
        }
        if (c->pack_a) {
            ck_pack_a(ap, c->dout + t0 * c->N + n0, c->N, 1, tn, nn, mr);
            ck_tile_gemm_pa(out, c->K, ap, mr, panel, c->kc, nn, tn, kn, n0 > 0 || c->accumulate);
        } else {
            ck_tile_gemm(out, c->K, c->dout + t0 * c->N + n0, c->N, 1, panel, c->kc, nn, tn, kn, n0 > 0 || c->accumulate);
        }
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
    const int64_t bs = ck_type_block_size(wtype);
    const int avx512 = ck_use_avx512(), big = N >= BIG_N;
    const int64_t kcw = big ? KC_BIG : avx512 ? KC512 : KC;
    const int64_t kc = (kcw + bs - 1) / bs * bs; // a multiple of the block size (bs is 1, 32 or 256)
    bi_ctx c = {.dinp = dinp, .dout = dout, .w = w, .wtype = wtype, .accumulate = accumulate,
                .T = T, .K = K, .N = N, .rb = rb, .kc = kc, .bs = bs, .bbytes = ck_type_block_bytes(wtype),
                .k_tiles = (K + kc - 1) / kc, .tb = big ? TB_BIG : avx512 ? TB512 : TB,
                .nb = big ? NB_BIG : avx512 ? NB512 : NB, .pack_a = big};
    // Each row block re-dequantizes W, so blocks are large unless that starves the threads.
    // (Tiling never changes an element's arithmetic: any choice gives identical results.)
    while (c.tb > 48 && c.k_tiles * ((T + c.tb - 1) / c.tb) < 4 * (int64_t)ck_get_threads()) c.tb = (c.tb / 2 + 11) / 12 * 12;
    ck_parallel_for(c.k_tiles * ((T + c.tb - 1) / c.tb), bi_task, &c);
    return c.failed ? -1 : 0;
#else
    return ck_matmul_backward_input_ref(dinp, dout, w, wtype, T, K, N, accumulate);
#endif
}

// ---- backward weight ---------------------------------------------------------------------

typedef struct {
    float *dw;
    const float *dout, *inp;
    int64_t T, K, N, k_tiles;
    int k_split; // 1: one task per (n block, k tile); 0: one task per n block
    float *ipack; // inp packed once per call: k tile kt is [T][kn] at ipack + kt*T*KC (or NULL)
    float *dpack; // dout packed once per call (k_split only): n block b is [T][nn] at dpack + b*T*NBW (or NULL)
} bw_ctx;

#if CK_X86
/* Task = (n block, k tile), or a whole n block (all k tiles) when c->k_split == 0. The dout
 * columns of the n block are packed contiguously ([T][nn]) first: read in place, every
 * reduction step would touch a new page when N is large (TLB-bound). */
static void bw_task(void *vctx, int64_t task) {
    const bw_ctx *c = vctx;
    const int64_t per = c->k_split ? 1 : c->k_tiles;
    const int64_t n0 = (task / (c->k_split ? c->k_tiles : 1)) * NBW, nn = c->N - n0 < NBW ? c->N - n0 : NBW;
    const int64_t kt0 = c->k_split ? task % c->k_tiles : 0;
    const float *a = c->dout + n0;
    int64_t sar = c->N;
    const int big = c->T * nn > 1024;
    // AVX2: the reduction over T runs in chunks of TCH_AVX2 so a 6-row tile's dout slab and a
    // 16-column inp stripe stay in L1 across the tile's stripes (0.51–0.64× → 0.62–0.73× OpenBLAS).
    const int64_t tch = ck_use_avx512() ? c->T : TCH_AVX2;
    float *pack = big && !c->dpack ? ck_scratch((size_t)(c->T * (nn + KC))) : NULL, *bpack = pack && !c->ipack ? pack + c->T * nn : NULL;
    if (c->dpack) {
        a = c->dpack + (n0 / NBW) * c->T * NBW;
        sar = nn;
    } else if (pack) { // inline copies: rows are short (nn, kn <= 64), a memcpy call each costs more than the copy
        for (int64_t t = 0; t < c->T; t++) copy_row(pack + t * nn, c->dout + t * c->N + n0, nn);
        a = pack;
        sar = nn;
    }
    for (int64_t kt = kt0; kt < kt0 + per; kt++) {
        const int64_t k0 = kt * KC, kn = c->K - k0 < KC ? c->K - k0 : KC;
        const float *b = c->inp + k0;
        int64_t ldb = c->K;
        if (c->ipack) {
            b = c->ipack + kt * c->T * KC;
            ldb = kn;
        } else if (bpack) { // inp columns k0..k0+kn as [T][kn]: same TLB reason as dout
            for (int64_t t = 0; t < c->T; t++) copy_row(bpack + t * kn, c->inp + t * c->K + k0, kn);
            b = bpack;
            ldb = kn;
        }
        for (int64_t t0 = 0; t0 < c->T; t0 += tch) // reduction chunks (dw tile reloaded: same fmaf chain)
            ck_tile_gemm(c->dw + n0 * c->K + k0, c->K, a + t0 * sar, 1, sar, b + t0 * ldb, ldb, c->T - t0 < tch ? c->T - t0 : tch, nn, kn, 1);
    }
}

/* Pack task: i < k_tiles packs inp's k tile i; the rest pack dout's n blocks (k_split only). */
static void bw_pack_task(void *vctx, int64_t i) {
    const bw_ctx *c = vctx;
    if (i < c->k_tiles) {
        const int64_t k0 = i * KC, kn = c->K - k0 < KC ? c->K - k0 : KC;
        float *dst = c->ipack + i * c->T * KC;
        for (int64_t t = 0; t < c->T; t++) copy_row(dst + t * kn, c->inp + t * c->K + k0, kn);
        return;
    }
    const int64_t n0 = (i - c->k_tiles) * NBW, nn = c->N - n0 < NBW ? c->N - n0 : NBW;
    float *dst = c->dpack + (n0 / NBW) * c->T * NBW;
    for (int64_t t = 0; t < c->T; t++) copy_row(dst + t * nn, c->dout + t * c->N + n0, nn);
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
            bw_ctx c = {dw, dout, inp, T, K, N, 1, 0, NULL, NULL};
            ck_parallel_for((N + SMALL_NC - 1) / SMALL_NC, bw_small_task, &c);
            return;
        }
        if (N <= SMALL_NW && K > SMALL_K) {
            bw_ctx c = {dw, dout, inp, T, K, N, 1, 0, NULL, NULL};
            ck_parallel_for((K + SMALL_KC - 1) / SMALL_KC, bw_small_n_task, &c);
            return;
        }
        const int64_t n_blocks = (N + NBW - 1) / NBW;
        bw_ctx c = {dw, dout, inp, T, K, N, (K + KC - 1) / KC, n_blocks < 4 * (int64_t)ck_get_threads(), NULL, NULL};
        // Pack inp (and, when tasks split k, dout) once for all tasks instead of once per task;
        // without the memory the tasks pack their own slices (same results either way).
        float *buf = T * K > 4096 ? ck_scratch_caller((size_t)(c.k_tiles * T * KC + (c.k_split ? n_blocks * T * NBW : 0))) : NULL;
        if (buf) {
            c.ipack = buf;
            c.dpack = c.k_split ? buf + c.k_tiles * T * KC : NULL;
            ck_parallel_for(c.k_tiles + (c.k_split ? n_blocks : 0), bw_pack_task, &c);
        }
        ck_parallel_for(c.k_split ? c.k_tiles * n_blocks : n_blocks, bw_task, &c);
        return;
    }
#endif
    ck_matmul_backward_weight_ref(dw, dout, inp, T, K, N);
}
