/*
 * gemm.c — out[T,N] = inp[T,K] · W[N,K]ᵀ (+ bias) for weights of any dequantizable type.
 *
 * Fast path (AVX2 and AVX-512): one task per tile of 32 weight rows (and, when there are few
 * tiles for the threads, per block of input rows too). A task packs its tile transposed into a
 * per-thread panel [K][32] (dequantized on the way; AVX-512 gathers, AVX2 8×8 register
 * transposes) and sweeps its input rows over it with the register-tile GEMM core: 12×32 zmm
 * tiles (gemm_avx512.c) or 6×16 ymm tiles (gemm_bwd.c). Large T reuses each packed tile
 * (L2-resident) for every input row. (AVX2 used 3×4 dot tiles with horizontal sums for all T
 * until these panels; it keeps them for N <= SMALL_N, where a 32-wide panel would be mostly
 * empty. Never chosen by T: the same row must give the same bits alone or in a batch.)
 *
 * AVX-512 with f32 weights and N <= 16 (LoRA rank r): blocks of input rows through the
 * k-vectorized small-N kernel (ck512_small_n), each output one 16-lane dot + ck_hsum16.
 *
 * Small T (<= CK_GEMV_MAX_T) with Q4_0/Q4_1/Q8_0/Q5_0/Q4_K/Q5_K/Q6_K weights goes to the fused kernels of
 * gemv_q.c instead (no dequantized tile buffer). T = 1 with those weights goes to the int8 path of
 * gemv_q8.c only while the calling thread has opted in (ck_set_fast_decode); never by default. While
 * it has, what would reach the tile stage with more than CK_GEMV_MAX_T rows runs with bf16 products (gemm_bf16.c) where
 * ck_fast_gemm_bf16 says that is faster: the fast path's prefill and batched decode steps.
 *
 * Reproducibility: every output of the small-T AVX2 dot path is one 8-lane accumulator over K,
 * ck_hsum8, then a scalar fmaf tail; every output of the tile path is one fmaf chain over K in increasing order
 * (both ISAs) — whatever the micro-kernel shape, tile or thread, so results are bit-identical
 * for any thread count, and equal to ck_matmul_forward_packed's.
 */
#include "ck_internal.h"
#include "ck_quant.h"
#include "ck_train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>


// ---- reference -------------------------------------------------------------------

/* out [T,N], inp [T,K], w [N,K] rows of wtype, bias [N] or NULL. Double accumulation. */
int ck_matmul_forward_ref(float *out, const float *inp, const void *w, int wtype,
                          const float *bias, int64_t T, int64_t K, int64_t N) {
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (T < 0 || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    float *row = malloc((size_t)K * sizeof(float));
    if (!row) return -1;
    for (int64_t n = 0; n < N; n++) {
        if (ck_dequantize_row_ref(wtype, (const char *)w + n * rb, row, K) != 0) { free(row); return -1; }
        for (int64_t t = 0; t < T; t++) {
            const float *x = inp + t * K;
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)x[k] * (double)row[k];
            out[t * N + n] = (float)s + (bias ? bias[n] : 0.0f);
        }
    }
    free(row);
    return 0;
}

// ---- AVX2 small-T dot kernels ---------------------------------------------------------
// Under AVX2, N <= SMALL_N (LoRA's u = x·Aᵀ) would leave a [K][32] panel mostly empty: 3×4 dot
// tiles on the weight rows in place.

#if CK_X86
/* res[i*4+j] = dot(x[i], w[j]) over K, for i < MR, j < 4 (MR is a compile-time constant
 * in each instantiation below, so acc stays in registers). */
CK_AVX2_INLINE void mk_dot(int MR, const float *const *x, const float *const *w, float *res, int64_t K) {
    __m256 acc[3][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv[3]; // 3 x + 1 w + 12 acc = 16 ymm registers
        for (int i = 0; i < MR; i++) xv[i] = _mm256_loadu_ps(x[i] + k);
        for (int j = 0; j < 4; j++) {
            const __m256 wv = _mm256_loadu_ps(w[j] + k);
            for (int i = 0; i < MR; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 4; j++) {
            float s = ck_hsum8(acc[i][j]);
            for (int64_t kk = k; kk < K; kk++) s = fmaf(x[i][kk], w[j][kk], s);
            res[i * 4 + j] = s;
        }
}

CK_AVX2 static void mk_dot3(const float *const *x, const float *const *w, float *res, int64_t K) { mk_dot(3, x, w, res, K); }
CK_AVX2 static void mk_dot2(const float *const *x, const float *const *w, float *res, int64_t K) { mk_dot(2, x, w, res, K); }
CK_AVX2 static void mk_dot1(const float *const *x, const float *const *w, float *res, int64_t K) { mk_dot(1, x, w, res, K); }
#endif

// ---- fast path ---------------------------------------------------------------------------

typedef struct {
    float *out;
    const float *inp;
    const char *w;
    const float *bias;
    int wtype;
    int64_t T, K, N, rb;
    int64_t t_block;  // input rows per task (a multiple of 12, or T)
    int64_t t_blocks; // tasks per weight tile
    _Atomic int failed;
} mm_ctx;


#if CK_X86
#define TILE_N 16 // weight rows per small-T task (multiple of 4)
static void mm_task(void *vctx, int64_t task) {
    mm_ctx *c = vctx;
    const int64_t K = c->K, N = c->N, tile = task / c->t_blocks;
    const int64_t t_begin = (task % c->t_blocks) * c->t_block;
    const int64_t T = t_begin + c->t_block < c->T ? t_begin + c->t_block : c->T;
    const int64_t n0 = tile * TILE_N;
    const int nn = (int)(N - n0 < TILE_N ? N - n0 : TILE_N);
    const float *wrow[TILE_N];
    if (c->wtype == CK_TYPE_F32) {
        for (int j = 0; j < nn; j++) wrow[j] = (const float *)(c->w + (n0 + j) * c->rb);
    } else {
        float *buf = ck_scratch((size_t)TILE_N * (size_t)K);
        if (!buf) { c->failed = 1; return; }
        for (int j = 0; j < nn; j++) {
            wrow[j] = buf + (int64_t)j * K;
            if (ck_dequantize_row(c->wtype, c->w + (n0 + j) * c->rb, buf + (int64_t)j * K, K) != 0) {
                c->failed = 1;
                return;
            }
        }
    }
    for (int j = nn; j < TILE_N; j++) wrow[j] = wrow[nn - 1]; // pad: computed, never stored
    float res[12];
    for (int64_t t = t_begin; t < T; t += 3) {
        const int mr = (int)(T - t < 3 ? T - t : 3);
        const float *xr[3];
        for (int i = 0; i < 3; i++) xr[i] = c->inp + (t + (i < mr ? i : mr - 1)) * K;
        for (int j = 0; j < nn; j += 4) {
            if (mr == 3) mk_dot3(xr, wrow + j, res, K);
            else if (mr == 2) mk_dot2(xr, wrow + j, res, K);
            else mk_dot1(xr, wrow + j, res, K);
            const int nj = nn - j < 4 ? nn - j : 4;
            for (int i = 0; i < mr; i++) {
                float *o = c->out + (t + i) * N + n0 + j;
                for (int jj = 0; jj < nj; jj++) o[jj] = res[i * 4 + jj] + (c->bias ? c->bias[n0 + j + jj] : 0.0f);
            }
        }
    }
}
#endif

/* Tile task: tile of TILE_N512 weight rows, packed transposed into a per-thread panel
 * P[K][TILE_N512] (dequantized on the way), then out[t, n0..] = X[t,:]·P for the task's input
 * rows with the 12×32 kernel of gemm_avx512.c (X broadcast, P rows loaded). Each output is
 * one fmaf chain over k in increasing order, so results do not depend on tiles or threads. */
#define TILE_N512 32
#if CK_X86
/* panel[k*32 + j] = rows[j*ld + k] for j < nn (<= 32), k < K; columns nn..31 are left as they are
 * (never stored by the masked tile kernel). Two 16-row gathers per k. */
CK_AVX512 static void pack_transposed(float *panel, const float *rows, int64_t ld, int nn, int64_t K) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)ld));
    const __mmask16 m0 = nn >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nn) - 1);
    const __mmask16 m1 = nn >= 32 ? (__mmask16)0xffff : nn <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nn - 16)) - 1);
    const float *hi = nn > 16 ? rows + 16 * ld : rows;
    for (int64_t k = 0; k < K; k++) {
        _mm512_storeu_ps(panel + k * TILE_N512, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, idx, rows + k, 4));
        if (m1) _mm512_storeu_ps(panel + k * TILE_N512 + 16, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, idx, hi + k, 4));
    }
}

static void mm512_task(void *vctx, int64_t task) {
    mm_ctx *c = vctx;
    const int64_t K = c->K, N = c->N, tile = task / c->t_blocks;
    const int64_t t_begin = (task % c->t_blocks) * c->t_block;
    const int64_t T = t_begin + c->t_block < c->T ? t_begin + c->t_block : c->T;
    const int64_t n0 = tile * TILE_N512;
    const int nn = (int)(N - n0 < TILE_N512 ? N - n0 : TILE_N512);
    const int f32 = c->wtype == CK_TYPE_F32;
    float *panel = ck_scratch((size_t)(f32 ? TILE_N512 : 2 * TILE_N512) * (size_t)K);
    if (!panel) { c->failed = 1; return; }
    // Rows to transpose: the f32 weight rows in place, or the tile dequantized into rows [nn][K].
    const float *rows = (const float *)(c->w + n0 * c->rb);
    int64_t ld = c->rb / (int64_t)sizeof(float);
    if (!f32) {
        float *tmp = panel + (size_t)TILE_N512 * (size_t)K;
        for (int j = 0; j < nn; j++)
            if (ck_dequantize_row(c->wtype, c->w + (n0 + j) * c->rb, tmp + (int64_t)j * K, K) != 0) { c->failed = 1; return; }
        rows = tmp;
        ld = K;
    }
    if (ck_use_avx512()) pack_transposed(panel, rows, ld, nn, K);
    else ck_pack_a(panel, rows, ld, 1, nn, K, TILE_N512); // 8×8 register transposes (AVX2)
    ck_tile_gemm(c->out + t_begin * N + n0, N, c->inp + t_begin * K, K, 1, panel, TILE_N512, K, T - t_begin, nn, 0);
    if (c->bias)
        for (int64_t t = t_begin; t < T; t++)
            for (int j = 0; j < nn; j++) c->out[t * N + n0 + j] += c->bias[n0 + j];
}
#endif

/* Small N (<= SMALL_N, f32 weights: LoRA's u = x·Aᵀ with N = r): a 32-wide weight tile would
 * be mostly empty, so tasks are blocks of input rows run through the k-vectorized dot kernel. */
#define SMALL_N 16
#define SMALL_ROWS 48
#if CK_X86
static void small_n_task(void *vctx, int64_t task) {
    const mm_ctx *c = vctx;
    const int64_t t0 = task * SMALL_ROWS, nt = c->T - t0 < SMALL_ROWS ? c->T - t0 : SMALL_ROWS;
    ck512_small_n(c->out + t0 * c->N, c->N, c->inp + t0 * c->K, c->K, (const float *)c->w, c->K, c->bias, nt, c->K, c->N, 0);
}
#endif

/* TUNE_GEMV=0 (read once) routes small T through the tile path too: a benchmark switch to
 * measure the fused kernels against the path they replace. */
static int gemv_disabled(void) {
    static _Atomic int v = -1;
    if (v < 0) { const char *e = getenv("TUNE_GEMV"); v = e && !strcmp(e, "0"); }
    return v;
}

/* 1 when ck_matmul_forward reaches its tile stage for these shapes (not int8, fused small-T, small-N
 * or reference); there the fast path takes bf16 products instead when ck_fast_gemm_bf16 says so. */
static int tile_stage(int wtype, int64_t T, int64_t K, int64_t N) {
#if CK_X86
    if (!ck_use_simd() || T < 1 || N < 1 || K <= 0 || !ck_type_can_dequantize(wtype)) return 0;
    if (T == 1 && ck_get_fast_decode() && ck_gemv_q8_supported(wtype, K)) return 0;
    if (!gemv_disabled() && ck_gemv_q_supported(wtype, T, K)) return 0;
    if (N <= SMALL_N && (!ck_use_avx512() || wtype == CK_TYPE_F32)) return 0;
    return 1;
#else
    (void)wtype; (void)T; (void)K; (void)N;
    return 0;
#endif
}

/* The fast path's bf16 GEMM takes tile-stage matmuls of more than CK_GEMV_MAX_T rows: prompts and
 * batched steps. Fewer rows stay f32 (a GEMV-sized call would spend its time rounding W to bf16). */
static int fast_bf16_now(int64_t T) { return T > CK_GEMV_MAX_T && ck_get_fast_decode() && ck_fast_gemm_bf16(); }

int ck_matmul_forward_is_tiled(int wtype, int64_t T, int64_t K, int64_t N) {
    return tile_stage(wtype, T, K, N) && !fast_bf16_now(T);
}

int ck_matmul_forward_is_bf16(int wtype, int64_t T, int64_t K, int64_t N) {
    return tile_stage(wtype, T, K, N) && fast_bf16_now(T);
}

int ck_matmul_forward(float *out, const float *inp, const void *w, int wtype,
                      const float *bias, int64_t T, int64_t K, int64_t N) {
    // opt-in int8 decode (thread-local switch, off by default): gemv_q8.c
    if (T == 1 && N >= 0 && ck_get_fast_decode() && ck_gemv_q8_supported(wtype, K))
        return ck_gemv_q8(out, inp, w, wtype, bias, K, N);
#if CK_X86
    if (!ck_use_simd()) return ck_matmul_forward_ref(out, inp, w, wtype, bias, T, K, N);
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (T < 0 || N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    if (T == 0 || N == 0) return 0;
    if (!gemv_disabled() && ck_gemv_q_supported(wtype, T, K)) return ck_gemv_q(out, inp, w, wtype, bias, T, K, N); // gemv_q.c
    mm_ctx c = {.out = out, .inp = inp, .w = w, .bias = bias, .wtype = wtype, .T = T, .K = K, .N = N, .rb = rb,
                .t_block = T, .t_blocks = 1};
    if (ck_use_avx512() && wtype == CK_TYPE_F32 && N <= SMALL_N) {
        ck_parallel_for((T + SMALL_ROWS - 1) / SMALL_ROWS, small_n_task, &c);
        return 0;
    }
    if (!ck_use_avx512() && N <= SMALL_N) { // AVX2, LoRA's N = r (never by T: batching must not change bits)
        ck_parallel_for((N + TILE_N - 1) / TILE_N, mm_task, &c);
        return c.failed ? -1 : 0;
    }
    if (fast_bf16_now(T)) return ck_matmul_forward_bf16(out, inp, w, wtype, bias, T, K, N); // opt-in: gemm_bf16.c
    {
        const int64_t tiles = (N + TILE_N512 - 1) / TILE_N512, want = 4 * (int64_t)ck_get_threads();
        if (tiles < want && T >= 96) { // few weight tiles for many threads: also split the rows of inp
            int64_t tb = (T * tiles + want - 1) / want;
            tb = tb < 48 ? 48 : (tb + 11) / 12 * 12; // each extra split re-packs the tile
            c.t_block = tb;
            c.t_blocks = (T + tb - 1) / tb;
        }
        ck_parallel_for(tiles * c.t_blocks, mm512_task, &c);
        return c.failed ? -1 : 0;
    }
#else
    return ck_matmul_forward_ref(out, inp, w, wtype, bias, T, K, N);
#endif
}

// ---- packed weights ------------------------------------------------------------------------
// For one W used by many forward calls (the LM head over a training step's row chunks): W is
// dequantized and transposed once into panels [ceil(N/32)][K][32] (zero past N), and each call
// only runs the tile GEMM. Under avx512 each output is the same fmaf chain as
// ck_matmul_forward's, so results are bit-identical to it.

#define PANEL 32

int64_t ck_matmul_packed_size(int64_t K, int64_t N) {
    return K <= 0 || N < 0 ? 0 : (N + PANEL - 1) / PANEL * PANEL * K;
}

typedef struct { float *packed; const char *w; int wtype; int64_t K, N, rb; _Atomic int failed; } pack_ctx;

static void pack_task(void *vctx, int64_t tile) {
    pack_ctx *c = vctx;
    const int64_t K = c->K, n0 = tile * PANEL;
    const int nn = (int)(c->N - n0 < PANEL ? c->N - n0 : PANEL);
    float *panel = c->packed + tile * PANEL * K;
    float *rows = ck_scratch((size_t)PANEL * (size_t)K);
    if (!rows) { c->failed = 1; return; }
    for (int j = 0; j < nn; j++)
        if (ck_dequantize_row(c->wtype, c->w + (n0 + j) * c->rb, rows + (int64_t)j * K, K) != 0) { c->failed = 1; return; }
#if CK_X86
    if (ck_use_avx512()) {
        for (int64_t k = 0; k < K; k++)
            for (int j = nn; j < PANEL; j++) panel[k * PANEL + j] = 0.0f;
        pack_transposed(panel, rows, K, nn, K); // writes columns < nn
        return;
    }
#endif
    for (int64_t k = 0; k < K; k++)
        for (int j = 0; j < PANEL; j++) panel[k * PANEL + j] = j < nn ? rows[(int64_t)j * K + k] : 0.0f;
}

int ck_matmul_pack(float *packed, const void *w, int wtype, int64_t K, int64_t N) {
    const int64_t rb = ck_type_row_bytes(wtype, K);
    if (N < 0 || K <= 0 || rb == 0 || !ck_type_can_dequantize(wtype)) return -1;
    pack_ctx c = {.packed = packed, .w = w, .wtype = wtype, .K = K, .N = N, .rb = rb};
    ck_parallel_for((N + PANEL - 1) / PANEL, pack_task, &c);
    return c.failed ? -1 : 0;
}

int ck_matmul_forward_packed_ref(float *out, const float *inp, const float *packed, const float *bias,
                                 int64_t T, int64_t K, int64_t N) {
    if (T < 0 || N < 0 || K <= 0) return -1;
    for (int64_t n = 0; n < N; n++) {
        const float *col = packed + (n / PANEL) * PANEL * K + n % PANEL;
        for (int64_t t = 0; t < T; t++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)inp[t * K + k] * (double)col[k * PANEL];
            out[t * N + n] = (float)s + (bias ? bias[n] : 0.0f);
        }
    }
    return 0;
}

typedef struct { float *out; const float *inp, *packed, *bias; int64_t T, K, N, t_block, t_blocks; } fp_ctx;

#if CK_X86
static void fp_task(void *vctx, int64_t task) {
    const fp_ctx *c = vctx;
    const int64_t tile = task / c->t_blocks, t0 = (task % c->t_blocks) * c->t_block;
    const int64_t t1 = t0 + c->t_block < c->T ? t0 + c->t_block : c->T, n0 = tile * PANEL;
    const int64_t nn = c->N - n0 < PANEL ? c->N - n0 : PANEL;
    ck_tile_gemm(c->out + t0 * c->N + n0, c->N, c->inp + t0 * c->K, c->K, 1, c->packed + tile * PANEL * c->K, PANEL,
                 c->K, t1 - t0, nn, 0);
    if (c->bias)
        for (int64_t t = t0; t < t1; t++)
            for (int64_t j = 0; j < nn; j++) c->out[t * c->N + n0 + j] += c->bias[n0 + j];
}
#endif

int ck_matmul_forward_packed(float *out, const float *inp, const float *packed, const float *bias,
                             int64_t T, int64_t K, int64_t N) {
#if CK_X86
    if (!ck_use_simd()) return ck_matmul_forward_packed_ref(out, inp, packed, bias, T, K, N);
    if (T < 0 || N < 0 || K <= 0) return -1;
    if (T == 0 || N == 0) return 0;
    const int64_t tiles = (N + PANEL - 1) / PANEL, want = 4 * (int64_t)ck_get_threads();
    fp_ctx c = {out, inp, packed, bias, T, K, N, T, 1};
    if (tiles < want && T >= 96) { // nothing to re-pack: split rows freely
        int64_t tb = (T * tiles + want - 1) / want;
        tb = (tb + 11) / 12 * 12;
        c.t_block = tb;
        c.t_blocks = (T + tb - 1) / tb;
    }
    ck_parallel_for(tiles * c.t_blocks, fp_task, &c);
    return 0;
#else
    return ck_matmul_forward_packed_ref(out, inp, packed, bias, T, K, N);
#endif
}
