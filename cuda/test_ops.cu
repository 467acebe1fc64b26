// test_ops.cu — every CUDA op against its CPU `_ref` twin (Sources/CKernels, linked as-is) on random
// inputs, with a per-op NMSE tolerance (docs/cuda.md). One line per check, then "N passed, N failed".
// Exit status: 0 all passed, 1 a check failed, 2 no usable GPU (the reason is printed).
// Inputs go through the library's own tcu_malloc/tcu_memcpy, as the Engine uses them.
#include "ckernels.h"
#include "tunecuda.h"
#include "test_quantize.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>

static int g_pass = 0, g_fail = 0;
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float urand() { // uniform [-1, 1)
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static std::vector<float> rnd(size_t n, float s = 1.0f) { std::vector<float> v(n); for (auto &x : v) x = urand() * s; return v; }

// ---- device buffers --------------------------------------------------------------------------
struct Dev {
    void *p = nullptr; size_t bytes = 0;
    Dev(const void *host, size_t b) : bytes(b) { p = tcu_malloc(b); if (host) tcu_memcpy(p, host, b, 0); }
    template <class T> explicit Dev(const std::vector<T> &v) : Dev(v.data(), v.size() * sizeof(T)) {}
    ~Dev() { tcu_free(p); }
    template <class T> T *as() const { return (T *)p; }
    float *f() const { return (float *)p; }
    template <class T> std::vector<T> get() const { std::vector<T> v(bytes / sizeof(T)); tcu_memcpy(v.data(), p, bytes, 1); return v; }
};

static double nmse(const std::vector<float> &got, const std::vector<float> &want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); i++) {
        if (!std::isfinite(got[i])) return INFINITY;
        const double d = (double)got[i] - want[i];
        num += d * d; den += (double)want[i] * want[i];
    }
    return den > 0 ? num / den : num;
}

static void report(const std::string &name, double err, double tol) {
    char why[256];
    const int e = tcu_sync(why, sizeof why);
    const bool ok = e == 0 && err <= tol;
    ok ? g_pass++ : g_fail++;
    printf("%-44s nmse %-10.3g tol %-8.1g %s%s%s\n", name.c_str(), err, tol, ok ? "ok" : "FAIL",
           e ? "  (CUDA error: " : "", e ? (std::string(why) + ")").c_str() : "");
}
static void check(const std::string &name, const Dev &d, const std::vector<float> &want, double tol) {
    report(name, nmse(d.get<float>(), want), tol);
}

// Tolerances (NMSE = Σ(got−want)² / Σwant²). f32 ops differ from the CPU only in summation order
// and libm ulps; the bf16-product GEMMs round operands to bf16 like the CPU's bf16 path.
static const double TOL_EXACT = 0, TOL_F32 = 1e-10, TOL_GEMM = 1e-9, TOL_BF16_SAME = 1e-6, TOL_BF16_VS_F32 = 1e-4;

// ---- GEMM --------------------------------------------------------------------------------------
static std::vector<uint8_t> quant(int type, const std::vector<float> &w, int64_t rows, int64_t K) {
    const int64_t rb = ck_type_row_bytes(type, K);
    std::vector<uint8_t> q((size_t)(rb * rows));
    for (int64_t r = 0; r < rows; r++) tcu_test_quantize_row(type, &w[r * K], &q[r * rb], K);
    return q;
}

static void test_gemm(int type, int64_t T, int64_t K, int64_t N) {
    const std::string tn = ck_type_name(type), shape = " " + tn + " T=" + std::to_string(T) + " K=" + std::to_string(K) + " N=" + std::to_string(N);
    auto x = rnd(T * K), w = rnd(N * K, 0.5f), bias = rnd(N), dy = rnd(T * N);
    auto wq = quant(type, w, N, K);
    Dev dx(x), dwq(wq), dbias(bias), ddy(dy);
    { // forward (+bias)
        std::vector<float> want(T * N); Dev out(nullptr, want.size() * 4);
        ck_matmul_forward_ref(want.data(), x.data(), wq.data(), type, bias.data(), T, K, N);
        tcu_matmul_forward(out.f(), dx.f(), dwq.p, type, dbias.f(), T, K, N);
        check("matmul_forward" + shape, out, want, TOL_GEMM);
        ck_matmul_forward_bf16_ref(want.data(), x.data(), wq.data(), type, bias.data(), T, K, N);
        tcu_matmul_forward_bf16(out.f(), dx.f(), dwq.p, type, dbias.f(), T, K, N);
        check("matmul_forward_bf16" + shape, out, want, TOL_BF16_SAME);
    }
    for (int acc = 0; acc < 2; acc++) { // dX = dY·W, overwrite and accumulate
        auto init = rnd(T * K);
        std::vector<float> want = init; Dev out(init);
        ck_matmul_backward_input_ref(want.data(), dy.data(), wq.data(), type, T, K, N, acc);
        tcu_matmul_backward_input(out.f(), ddy.f(), dwq.p, type, T, K, N, acc);
        check(std::string("matmul_backward_input") + (acc ? "+=" : "") + shape, out, want, TOL_GEMM);
        want = init; Dev out2(init);
        ck_matmul_backward_input_bf16_ref(want.data(), dy.data(), wq.data(), type, T, K, N, acc);
        tcu_matmul_backward_input_bf16(out2.f(), ddy.f(), dwq.p, type, T, K, N, acc);
        check(std::string("matmul_backward_input_bf16") + (acc ? "+=" : "") + shape, out2, want, TOL_BF16_SAME);
    }
}

static void test_gemm_weight(int64_t T, int64_t K, int64_t N) {
    const std::string shape = " T=" + std::to_string(T) + " K=" + std::to_string(K) + " N=" + std::to_string(N);
    auto x = rnd(T * K), dy = rnd(T * N), init = rnd(N * K);
    Dev dx(x), ddy(dy);
    std::vector<float> want = init;
    ck_matmul_backward_weight_ref(want.data(), dy.data(), x.data(), T, K, N);
    Dev dw(init), dw2(init);
    tcu_matmul_backward_weight(dw.f(), ddy.f(), dx.f(), T, K, N);
    check("matmul_backward_weight +=" + shape, dw, want, TOL_GEMM);
    tcu_matmul_backward_weight_bf16(dw2.f(), ddy.f(), dx.f(), T, K, N);
    check("matmul_backward_weight_bf16 += (vs f32)" + shape, dw2, want, TOL_BF16_VS_F32);
}

// ---- ops -----------------------------------------------------------------------------------------
static void test_embedding(int type, int64_t C) {
    const int64_t V = 50, T = 13;
    auto table = quant(type, rnd(V * C), V, C);
    std::vector<int32_t> ids(T); for (auto &i : ids) i = (int32_t)((urand() + 1) * 0.5f * V) % V;
    std::vector<float> want(T * C);
    ck_embedding_forward_ref(want.data(), ids.data(), table.data(), type, T, C);
    Dev dt(table), di(ids), out(nullptr, want.size() * 4);
    tcu_embedding_forward(out.f(), di.as<int32_t>(), dt.p, type, T, C);
    check(std::string("embedding_forward ") + ck_type_name(type), out, want, TOL_EXACT);
}

static void test_rmsnorm() {
    const int64_t T = 37, C = 576;
    auto x = rnd(T * C), w = rnd(C), dy = rnd(T * C), dw0 = rnd(C);
    std::vector<float> out(T * C), rstd(T), dx(T * C), dw = dw0;
    ck_rmsnorm_forward_ref(out.data(), rstd.data(), x.data(), w.data(), 1e-5f, T, C);
    ck_rmsnorm_backward_ref(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), T, C);
    Dev gx(x), gw(w), gdy(dy), gout(nullptr, out.size() * 4), grstd(nullptr, T * 4), gdx(nullptr, dx.size() * 4), gdw(dw0);
    tcu_rmsnorm_forward(gout.f(), grstd.f(), gx.f(), gw.f(), 1e-5f, T, C);
    check("rmsnorm_forward out", gout, out, TOL_F32);
    check("rmsnorm_forward rstd", grstd, rstd, TOL_F32);
    Dev cpu_rstd(rstd); // backward from the CPU's rstd so the two backward passes see the same input
    tcu_rmsnorm_backward(gdx.f(), gdw.f(), gdy.f(), gx.f(), gw.f(), cpu_rstd.f(), T, C);
    check("rmsnorm_backward dinp", gdx, dx, TOL_F32);
    check("rmsnorm_backward dweight +=", gdw, dw, TOL_F32);
}

static void test_rope() {
    const int64_t T = 17, H = 3, D = 64;
    auto x = rnd(T * H * D);
    std::vector<int32_t> pos(T); for (auto &p : pos) p = (int32_t)((urand() + 1) * 500);
    Dev gp(pos);
    std::vector<float> want = x; Dev g(x);
    ck_rope_forward_ref(want.data(), pos.data(), T, H, D, 10000.0f);
    tcu_rope_forward(g.f(), gp.as<int32_t>(), T, H, D, 10000.0f);
    check("rope_forward", g, want, TOL_F32);
    want = x; Dev g2(x);
    ck_rope_backward_ref(want.data(), pos.data(), T, H, D, 10000.0f);
    tcu_rope_backward(g2.f(), gp.as<int32_t>(), T, H, D, 10000.0f);
    check("rope_backward", g2, want, TOL_F32);
}

static void test_attention(int64_t D) {
    const std::string sd = " D=" + std::to_string(D);
    { // inference: T new queries at pos0 over Tkv cached keys
        const int64_t T = 5, pos0 = 40, Tkv = 45, H = 6, Hkv = 2;
        auto q = rnd(T * H * D), k = rnd(Tkv * Hkv * D), v = rnd(Tkv * Hkv * D);
        std::vector<float> want(T * H * D);
        ck_attention_forward_ref(want.data(), q.data(), k.data(), v.data(), T, Tkv, pos0, H, Hkv, D);
        Dev gq(q), gk(k), gv(v), out(nullptr, want.size() * 4);
        tcu_attention_forward(out.f(), gq.f(), gk.f(), gv.f(), T, Tkv, pos0, H, Hkv, D);
        check("attention_forward (pos0=40)" + sd, out, want, TOL_F32);
    }
    const int64_t T = 70, H = 6, Hkv = 2;
    auto q = rnd(T * H * D), k = rnd(T * Hkv * D), v = rnd(T * Hkv * D), dout = rnd(T * H * D);
    std::vector<float> out(T * H * D), lse(T * H), dq(q.size()), dk(k.size()), dv(v.size());
    ck_attention_forward_train_ref(out.data(), lse.data(), q.data(), k.data(), v.data(), T, H, Hkv, D);
    ck_attention_backward_ref(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(), T, H, Hkv, D);
    Dev gq(q), gk(k), gv(v), gdout(dout), gout(nullptr, out.size() * 4), glse(nullptr, lse.size() * 4);
    tcu_attention_forward_train(gout.f(), glse.f(), gq.f(), gk.f(), gv.f(), T, H, Hkv, D);
    check("attention_forward_train out" + sd, gout, out, TOL_F32);
    check("attention_forward_train lse" + sd, glse, lse, TOL_F32);
    Dev cout_(out), clse(lse), gdq(nullptr, dq.size() * 4), gdk(nullptr, dk.size() * 4), gdv(nullptr, dv.size() * 4);
    tcu_attention_backward(gdq.f(), gdk.f(), gdv.f(), gdout.f(), gq.f(), gk.f(), gv.f(), cout_.f(), clse.f(), T, H, Hkv, D);
    check("attention_backward dq" + sd, gdq, dq, TOL_F32);
    check("attention_backward dk" + sd, gdk, dk, TOL_F32);
    check("attention_backward dv" + sd, gdv, dv, TOL_F32);
}

static void test_elementwise() {
    const int64_t n = 100003;
    auto a = rnd(n, 4.0f), b = rnd(n), dy = rnd(n);
    Dev ga(a), gb(b), gdy(dy), out(nullptr, n * 4), d1(nullptr, n * 4), d2(nullptr, n * 4);
    std::vector<float> want(n), w2(n);
    ck_swiglu_forward_ref(want.data(), a.data(), b.data(), n);
    tcu_swiglu_forward(out.f(), ga.f(), gb.f(), n);
    check("swiglu_forward", out, want, TOL_F32);
    ck_swiglu_backward_ref(want.data(), w2.data(), dy.data(), a.data(), b.data(), n);
    tcu_swiglu_backward(d1.f(), d2.f(), gdy.f(), ga.f(), gb.f(), n);
    check("swiglu_backward dgate", d1, want, TOL_F32);
    check("swiglu_backward dup", d2, w2, TOL_F32);
    want = a; ck_add_inplace_ref(want.data(), b.data(), n);
    { Dev x(a); tcu_add_inplace(x.f(), gb.f(), n); check("add_inplace", x, want, TOL_EXACT); }
    want = a; ck_axpy_ref(want.data(), b.data(), 0.37f, n);
    { Dev x(a); tcu_axpy(x.f(), gb.f(), 0.37f, n); check("axpy", x, want, TOL_EXACT); }
    want = a; ck_scale_ref(want.data(), 0.37f, n);
    { Dev x(a); tcu_scale(x.f(), 0.37f, n); check("scale", x, want, TOL_EXACT); }
    want = a; ck_mul_inplace_ref(want.data(), b.data(), n);
    { Dev x(a); tcu_mul_inplace(x.f(), gb.f(), n); check("mul_inplace", x, want, TOL_EXACT); }
    const double s_cpu = ck_sumsq_ref(a.data(), n), s_gpu = tcu_sumsq(ga.f(), n);
    report("sumsq", (s_gpu - s_cpu) * (s_gpu - s_cpu) / (s_cpu * s_cpu), 1e-20);
}

static void test_xent() {
    const int64_t T = 9, V = 1000;
    auto logits = rnd(T * V, 8.0f);
    std::vector<int32_t> tg = {3, -1, 999, 0, 1000, 17, 500, -100, 42}; // 3 ignored
    std::vector<float> want = logits, loss(T);
    const int64_t n_cpu = ck_xent_forward_backward_ref(loss.data(), want.data(), tg.data(), 1.0f / 6, T, V);
    Dev gl(logits), gt(tg), gloss(nullptr, T * 4);
    const int64_t n_gpu = tcu_xent_forward_backward(gloss.f(), gl.f(), gt.as<int32_t>(), 1.0f / 6, T, V);
    check("xent_forward_backward losses", gloss, loss, TOL_F32);
    check("xent_forward_backward dlogits", gl, want, TOL_F32);
    report("xent_forward_backward count (" + std::to_string(n_gpu) + " vs " + std::to_string(n_cpu) + ")", n_gpu == n_cpu ? 0 : 1, 0);
}

static void test_adamw() {
    const int64_t n = 70001;
    auto p = rnd(n), g = rnd(n), m = rnd(n, 0.1f), v = rnd(n, 0.1f);
    for (auto &x : v) x = fabsf(x);
    std::vector<float> pw = p, mw = m, vw = v;
    ck_adamw_step_ref(pw.data(), g.data(), mw.data(), vw.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3);
    Dev gp(p), gg(g), gm(m), gv(v);
    tcu_adamw_step(gp.f(), gg.f(), gm.f(), gv.f(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3);
    check("adamw_step param", gp, pw, 1e-12);
    check("adamw_step m", gm, mw, TOL_EXACT);
    check("adamw_step v", gv, vw, TOL_EXACT);
}

int main() {
    char why[256] = {0};
    if (tunecuda_abi_version() != TUNECUDA_ABI_VERSION) {
        printf("libtunecuda.so ABI %d, header %d\n", tunecuda_abi_version(), TUNECUDA_ABI_VERSION); return 1;
    }
    if (tunecuda_init(why, sizeof why) != 0) { printf("no usable GPU: %s\n", why); return 2; }
    char info[256]; tunecuda_device_info(info, sizeof info);
    printf("device: %s\n", info);
    const int types[] = {CK_TYPE_F32, CK_TYPE_F16, CK_TYPE_BF16, CK_TYPE_Q4_0, CK_TYPE_Q4_1, CK_TYPE_Q8_0};
    for (int t : types) test_gemm(t, 77, 128, 130);      // ragged tiles in M and N
    test_gemm(CK_TYPE_F32, 200, 77, 19);                  // K not a multiple of the tile
    test_gemm(CK_TYPE_Q4_1, 300, 576, 192);               // SmolLM2 k/v projection
    // The types a Q4_K_M / Q5_K_M / Q6_K file mixes (super-blocks of 256: K a multiple of 256).
    const int ktypes[] = {CK_TYPE_Q5_0, CK_TYPE_Q4_K, CK_TYPE_Q5_K, CK_TYPE_Q6_K};
    for (int t : ktypes) test_gemm(t, 77, 256, 130);
    test_gemm(CK_TYPE_Q4_K, 130, 896, 128);               // Qwen2.5-0.5B hidden size
    test_gemm(CK_TYPE_Q6_K, 67, 512, 200);
    test_gemm_weight(77, 128, 130);
    test_gemm_weight(333, 96, 50);
    for (int t : types) test_embedding(t, 96);
    for (int t : ktypes) test_embedding(t, 256);
    test_rmsnorm();
    test_rope();
    test_attention(64);
    test_attention(48);
    test_attention(128);
    test_elementwise();
    test_xent();
    test_adamw();
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
