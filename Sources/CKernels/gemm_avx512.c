/*
 * gemm_avx512.c — the AVX-512 GEMM core shared by the forward and backward matmuls:
 *   C[rows, cols] (+)= A[rows, R] · B[R, cols],  A[i, r] = a[i*sai + r*sar] (any strides),
 *   B[r, j] = b[r*ldb + j] (rows contiguous).
 * Micro-kernel: MR×32 register tile (MR <= 12: 24 zmm accumulators + 2 for the B row; A is
 * broadcast from memory). Per reduction step 2 B loads + MR broadcasts feed 2·MR FMAs, so
 * the kernel is FMA-bound on Zen 4 (one zmm FMA per cycle) rather than load-bound like the
 * 16-register AVX2 tiles. Column stripes narrower than 32 use one zmm (nc <= 16) and masks.
 * Reproducibility: every C element is its initial value (or 0) followed by one fmaf per r in
 * increasing order, whatever tile it falls in, so any caller tiling gives identical results.
 */
#include "ck_internal.h"

#if CK_X86

#define MAXMR 12

/* One MR × (16·NV) tile; FULL: all 16·NV columns valid (unmasked loads/stores). */
CK_AVX512_INLINE void mk512(int MR, int NV, int FULL, float *c, int64_t ldc, const float *a, int64_t sai,
                            int64_t sar, const float *b, int64_t ldb, int64_t R, int nc, int load_c) {
    const __mmask16 m0 = FULL || nc >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nc) - 1);
    const __mmask16 m1 = FULL || nc >= 32 ? (__mmask16)0xffff : nc <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nc - 16)) - 1);
    __m512 acc[MAXMR][2];
    for (int i = 0; i < MR; i++) {
        if (load_c == 1) {
            acc[i][0] = FULL ? _mm512_loadu_ps(c + i * ldc) : _mm512_maskz_loadu_ps(m0, c + i * ldc);
            if (NV == 2) acc[i][1] = FULL ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
        } else {
            acc[i][0] = _mm512_setzero_ps();
            if (NV == 2) acc[i][1] = _mm512_setzero_ps();
        }
    }
    for (int64_t r = 0; r < R; r++) {
        const float *br = b + r * ldb;
        const __m512 b0 = FULL ? _mm512_loadu_ps(br) : _mm512_maskz_loadu_ps(m0, br);
        __m512 b1 = b0;
        if (NV == 2) b1 = FULL ? _mm512_loadu_ps(br + 16) : _mm512_maskz_loadu_ps(m1, br + 16);
        const float *ar = a + r * sar;
        for (int i = 0; i < MR; i++) {
            const __m512 av = _mm512_set1_ps(ar[i * sai]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            if (NV == 2) acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    if (load_c == 2) // the block's sum, then C: rounding relative to this block, not the running total
        for (int i = 0; i < MR; i++) {
            acc[i][0] = _mm512_add_ps(acc[i][0], FULL ? _mm512_loadu_ps(c + i * ldc) : _mm512_maskz_loadu_ps(m0, c + i * ldc));
            if (NV == 2) acc[i][1] = _mm512_add_ps(acc[i][1], FULL ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_maskz_loadu_ps(m1, c + i * ldc + 16));
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

#define MK_ARGS float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar, const float *b, int64_t ldb, int64_t R, int nc, int load_c
#define MK_PASS c, ldc, a, sai, sar, b, ldb, R, nc, load_c
typedef void (*mk_fn)(MK_ARGS);

#define MK_DEF(MR)                                                                                       \
    CK_AVX512 static void mk##MR##_2f(MK_ARGS) { mk512(MR, 2, 1, MK_PASS); }                               \
    CK_AVX512 static void mk##MR##_2m(MK_ARGS) { mk512(MR, 2, 0, MK_PASS); }                               \
    CK_AVX512 static void mk##MR##_1f(MK_ARGS) { mk512(MR, 1, 1, MK_PASS); }                               \
    CK_AVX512 static void mk##MR##_1m(MK_ARGS) { mk512(MR, 1, 0, MK_PASS); }
MK_DEF(1) MK_DEF(2) MK_DEF(3) MK_DEF(4) MK_DEF(5) MK_DEF(6)
MK_DEF(7) MK_DEF(8) MK_DEF(9) MK_DEF(10) MK_DEF(11) MK_DEF(12)

#define MK_ROW(MR) {mk##MR##_1m, mk##MR##_1f, mk##MR##_2m, mk##MR##_2f}
/* kernels[MR][2*(NV-1) + FULL] */
static const mk_fn kernels[MAXMR + 1][4] = {
    {0, 0, 0, 0}, MK_ROW(1), MK_ROW(2), MK_ROW(3), MK_ROW(4), MK_ROW(5), MK_ROW(6),
    MK_ROW(7), MK_ROW(8), MK_ROW(9), MK_ROW(10), MK_ROW(11), MK_ROW(12)};

void ck512_tile_gemm(float *c, int64_t ldc, const float *a, int64_t sai, int64_t sar,
                     const float *b, int64_t ldb, int64_t R, int64_t rows, int64_t cols, int load_c) {
    for (int64_t j = 0; j < cols; j += 32) {
        const int nc = (int)(cols - j < 32 ? cols - j : 32);
        const int nv = nc > 16 ? 2 : 1, full = nc == 16 * nv;
        const mk_fn *row = NULL;
        for (int64_t i = 0; i < rows;) {
            const int mr = (int)(rows - i < MAXMR ? rows - i : MAXMR);
            row = kernels[mr];
            row[2 * (nv - 1) + full](c + i * ldc + j, ldc, a + i * sai, sai, sar, b + j, ldb, R, nc, load_c);
            i += mr;
        }
    }
}

// ---- small-N dot kernel ----------------------------------------------------------------------

/* res[i*8 + j] = Σ_k x[i*ldx + k] · w[j][k] for i < MR, j < 8: one 16-lane accumulator per
 * (i, j) over k in steps of 16 (masked tail), then ck_hsum16. 3×8 = 24 zmm accumulators. */
CK_AVX512_INLINE void dot_small(int MR, const float *x, int64_t ldx, const float *const *w, int64_t K, float *res) {
    __m512 acc[3][8];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 8; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 m = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        __m512 xv[3];
        for (int i = 0; i < MR; i++) xv[i] = _mm512_maskz_loadu_ps(m, x + i * ldx + k);
        for (int j = 0; j < 8; j++) {
            const __m512 wv = _mm512_maskz_loadu_ps(m, w[j] + k);
            for (int i = 0; i < MR; i++) acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 8; j++) res[i * 8 + j] = ck_hsum16(acc[i][j]);
}

CK_AVX512 static void dot_small3(const float *x, int64_t ldx, const float *const *w, int64_t K, float *res) { dot_small(3, x, ldx, w, K, res); }
CK_AVX512 static void dot_small1(const float *x, int64_t ldx, const float *const *w, int64_t K, float *res) { dot_small(1, x, ldx, w, K, res); }

void ck512_small_n(float *out, int64_t ldo, const float *x, int64_t ldx, const float *w, int64_t ldw,
                   const float *bias, int64_t rows, int64_t K, int64_t N, int accumulate) {
    float res[24];
    for (int64_t n0 = 0; n0 < N; n0 += 8) {
        const int nn = (int)(N - n0 < 8 ? N - n0 : 8);
        const float *wr[8];
        for (int j = 0; j < 8; j++) wr[j] = w + (n0 + (j < nn ? j : nn - 1)) * ldw; // pad: computed, never stored
        for (int64_t i = 0; i < rows;) {
            const int mr = rows - i >= 3 ? 3 : 1;
            (mr == 3 ? dot_small3 : dot_small1)(x + i * ldx, ldx, wr, K, res);
            for (int r = 0; r < mr; r++) {
                float *o = out + (i + r) * ldo + n0;
                for (int j = 0; j < nn; j++) {
                    const float v = res[r * 8 + j] + (bias ? bias[n0 + j] : 0.0f);
                    o[j] = accumulate ? o[j] + v : v;
                }
            }
            i += mr;
        }
    }
}

#endif
