// test_decode_host.cu — the weight decoders of the CUDA GEMM tile loaders and the embedding (common.cuh
// `tcu_wval`, every weight type libtunecuda decodes) run on the HOST against the CPU reference
// ck_dequantize_row_ref, bit for bit. It is the same source the GPU compiles (__host__ __device__; the
// device build rounds with __fmul_rn/__fadd_rn/__fsub_rn, this one is compiled with -ffp-contract=off), so
// the block layouts, scale unpacking and arithmetic order of every type — the K-quants a Q4_K_M / Q5_K_M /
// Q6_K file mixes included — are checked on every CI run, without a GPU. `make -C cuda check` then runs the
// GEMMs built on them on a GPU against the CPU GEMMs.
//
// Rows come from the CPU quantizers (real blocks) and, for the block types, from random bytes with finite
// fp16 scales (every bit pattern of the packed 6-bit scales/mins, the high bits, the signs).
// Exit status: 0 all equal, 1 a mismatch (the first few are printed).
#include "kernels/common.cuh"
#include "test_quantize.h"
#include <stdio.h>
#include <string.h>
#include <vector>

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint64_t next() { g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17; return g_rng; }
static float urand() { return (float)((next() >> 40) * (1.0 / 8388608.0)) - 1.0f; }

struct Layout { int type; int64_t halfOffsets[2]; int nHalves; };

// Where each block type keeps its fp16 scales (bytes from the block start), to make random blocks finite.
static Layout layout(int type) {
    switch (type) {
    case TCU_Q4_0: case TCU_Q5_0: case TCU_Q8_0: return {type, {0, 0}, 1};
    case TCU_Q4_1: case TCU_Q4_K: case TCU_Q5_K: return {type, {0, 2}, 2};
    case TCU_Q6_K: return {type, {208, 0}, 1};
    default: return {type, {0, 0}, 0};
    }
}

static int g_checked = 0, g_bad = 0;

template <int T>
static void check(const char *what, const std::vector<uint8_t> &rows, int64_t nrows, int64_t K) {
    const int64_t rb = tcu_row_bytes(T, K);
    if (rb != ck_type_row_bytes(T, K)) {
        printf("%s %s: row bytes %lld, CPU %lld\n", ck_type_name(T), what, (long long)rb, (long long)ck_type_row_bytes(T, K));
        g_bad++;
        return;
    }
    std::vector<float> want(K);
    int shown = 0;
    for (int64_t r = 0; r < nrows; r++) {
        ck_dequantize_row_ref(T, rows.data() + r * rb, want.data(), K);
        for (int64_t c = 0; c < K; c++) {
            const float got = tcu_wval<T>(rows.data(), rb, r, c);
            g_checked++;
            if (memcmp(&got, &want[c], 4) != 0 && !(got != got && want[c] != want[c])) {
                if (shown++ < 5) printf("%s %s: row %lld col %lld: %.9g, CPU %.9g\n", ck_type_name(T), what, (long long)r, (long long)c, got, want[c]);
                g_bad++;
            }
        }
    }
}

template <int T>
static void run(int64_t K) {
    const int64_t nrows = 7, rb = tcu_row_bytes(T, K);
    std::vector<float> x(nrows * K);
    for (auto &v : x) v = urand() * (next() % 4 == 0 ? 3.0f : 0.4f);
    std::vector<uint8_t> rows(nrows * rb);
    for (int64_t r = 0; r < nrows; r++) {
        if (tcu_test_quantize_row(T, &x[r * K], rows.data() + r * rb, K) != 0) { printf("%s: no CPU quantizer\n", ck_type_name(T)); g_bad++; return; }
    }
    check<T>("quantized rows", rows, nrows, K);
    const Layout l = layout(T);
    if (l.nHalves == 0) return;
    const int64_t bs = tcu_block_size(T), bb = rb / (K / bs);
    for (auto &b : rows) b = (uint8_t)next();
    for (int64_t off = 0; off < (int64_t)rows.size(); off += bb)
        for (int h = 0; h < l.nHalves; h++) {
            const uint16_t f = ck_fp32_to_fp16(urand() * 2.0f);
            memcpy(&rows[off + l.halfOffsets[h]], &f, 2);
        }
    check<T>("random blocks", rows, nrows, K);
}

int main() {
    run<TCU_F32>(96);
    run<TCU_F16>(96);
    run<TCU_BF16>(96);
    run<TCU_Q4_0>(96);
    run<TCU_Q4_1>(96);
    run<TCU_Q5_0>(96);
    run<TCU_Q8_0>(96);
    run<TCU_Q4_K>(512);
    run<TCU_Q5_K>(512);
    run<TCU_Q6_K>(512);
    printf("decoders vs ck_dequantize_row_ref: %d values, %d differ\n", g_checked, g_bad);
    return g_bad ? 1 : 0;
}
