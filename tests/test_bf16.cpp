// bf16 mixed precision: the rounding, the products against double, their independence
// of the thread count, the linear layer against float32, and bf16 training runs as a
// user starts them (resume, threads, what summary.json records, auto's choice, and a
// CPU without bf16 products, simulated with oneDNN's DNNL_MAX_CPU_ISA).
#include "support.h"

extern "C" {
#include "core/bf16.h"
#include "core/matmul_bf16.h"
#include "core/ops.h"
#include "core/tape.h"
#include "nn/optim.h"
}

#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace {

uint32_t bits_of(float x)
{
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}

float float_of(uint32_t u)
{
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

// Whether oneDNN runs bf16 products natively here; the tests that train in bf16 say
// when they fall back to fp32.
bool bf16_native(std::string *impl = nullptr)
{
    char name[64];
    bool native = false;
    kd_error err;
    if (kd_mm_bf16_probe(128, 256, 256, name, sizeof name, &native, &err) != KD_OK) return false;
    if (impl) *impl = name;
    return native;
}

bool bf16_available()
{
    char name[64];
    bool native;
    kd_error err;
    return kd_mm_bf16_probe(16, 16, 16, name, sizeof name, &native, &err) == KD_OK;
}

std::vector<kd_bf16> rounded(const std::vector<float> &v)
{
    std::vector<kd_bf16> out(v.size());
    kd_bf16_from_floats(v.data(), out.data(), v.size());
    return out;
}

std::vector<float> widened(const std::vector<kd_bf16> &v)
{
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = kd_bf16_to_float(v[i]);
    return out;
}

} // namespace

TEST_CASE("bf16 rounding is to nearest with ties to even and keeps infinities and NaN", "[bf16]")
{
    // Worked out by hand from the bit patterns: bf16 keeps the top 16 bits of a float.
    REQUIRE(kd_bf16_round(1.0f) == 0x3f80);
    REQUIRE(kd_bf16_round(-2.0f) == 0xc000);
    REQUIRE(kd_bf16_round(float_of(0x3f808000u)) == 0x3f80); // 1 + 2^-8: a tie, to the even 0x3f80
    REQUIRE(kd_bf16_round(float_of(0x3f818000u)) == 0x3f82); // 1 + 3 2^-8: a tie, to the even 0x3f82
    REQUIRE(kd_bf16_round(float_of(0x3f808001u)) == 0x3f81); // just above the tie: up
    REQUIRE(kd_bf16_round(float_of(0x3f817fffu)) == 0x3f81); // just below the tie: down
    REQUIRE(kd_bf16_round(0.1f) == 0x3dcd);                 // 0x3dcccccd: the dropped half 0xcccd > 0x8000
    REQUIRE(kd_bf16_round(float_of(0x7f7fffffu)) == 0x7f80); // the largest float rounds to +inf
    REQUIRE(kd_bf16_round(INFINITY) == 0x7f80);
    REQUIRE(kd_bf16_round(-INFINITY) == 0xff80);
    REQUIRE(kd_bf16_round(-0.0f) == 0x8000);
    REQUIRE(kd_bf16_round(float_of(0x00000001u)) == 0x0000); // the smallest subnormal: down to 0
    REQUIRE(kd_bf16_round(float_of(0x7f800001u)) == 0x7fc0); // a signalling NaN: quiet, not infinity
    REQUIRE(kd_bf16_round(float_of(0xffffffffu)) == 0xffff); // a NaN whose payload would carry into the sign
    REQUIRE(kd_bf16_to_float(0x3f81) == 1.0078125f);
}

TEST_CASE("bf16 array conversion gives the scalar rounding in its AVX-512 and generic variants", "[bf16]")
{
    // 200,003 values: random floats, exact ties of both parities, and both signs.
    std::vector<float> v = kdtest::random_normal(200003, 10.0f, 5);
    for (size_t i = 0; i < v.size(); i += 7) v[i] = float_of((bits_of(v[i]) & 0xffff0000u) | 0x8000u);
    std::vector<kd_bf16> expected(v.size());
    for (size_t i = 0; i < v.size(); i++) expected[i] = kd_bf16_round(v[i]);
    REQUIRE(rounded(v) == expected);
    setenv("KD_SIMD", "generic", 1);
    std::vector<kd_bf16> generic = rounded(v);
    unsetenv("KD_SIMD");
    REQUIRE(generic == expected);
    // The transpose, against the definition.
    std::vector<kd_bf16> a(37 * 70), t(70 * 37);
    for (size_t i = 0; i < a.size(); i++) a[i] = (kd_bf16)i;
    kd_bf16_transpose(a.data(), 37, 70, t.data());
    for (int r = 0; r < 37; r++)
        for (int c = 0; c < 70; c++) REQUIRE(t[(size_t)c * 37 + r] == a[(size_t)r * 70 + c]);
}

TEST_CASE("the optimiser's pass writes the bf16 copy of what it wrote and the same float32 update", "[bf16]")
{
    // 20,011 parameters: the threaded pass's blocks and a ragged end. SGD with Nesterov
    // momentum and weight decay, and AdamW, three steps each.
    const size_t n = 20011;
    for (kd_optim_kind kind : {KD_OPTIM_SGD, KD_OPTIM_ADAMW}) {
        kd_optim_config oc = {};
        oc.kind = kind;
        oc.lr = 0.05;
        oc.momentum = 0.9;
        oc.nesterov = 1;
        oc.beta1 = 0.9;
        oc.beta2 = 0.999;
        oc.eps = 1e-8;
        oc.weight_decay = 0.01;
        std::vector<float> p_plain = kdtest::random_normal(n, 1.0f, 21), p_copy = p_plain;
        std::vector<kd_bf16> copy(n, 0);
        kd_optim plain, with_copy;
        kd_error err;
        REQUIRE(kd_optim_create(&plain, &oc, n, &err) == KD_OK);
        REQUIRE(kd_optim_create(&with_copy, &oc, n, &err) == KD_OK);
        for (int step = 0; step < 3; step++) {
            std::vector<float> g1 = kdtest::random_normal(n, 0.1f, 30 + (uint64_t)step), g2 = g1;
            kd_optim_step(&plain, p_plain.data(), g1.data());
            kd_optim_step_bf16(&with_copy, p_copy.data(), g2.data(), copy.data());
        }
        INFO("optimiser kind " << (int)kind);
        REQUIRE(std::memcmp(p_plain.data(), p_copy.data(), n * sizeof(float)) == 0);
        size_t wrong = 0;
        for (size_t i = 0; i < n; i++) wrong += copy[i] != kd_bf16_round(p_copy[i]);
        REQUIRE(wrong == 0);
        kd_optim_free(&plain);
        kd_optim_free(&with_copy);
    }
}

namespace {

struct ProductCase {
    int m, n, k;
};

// C from kd_mm_bf16_run against two double references: the product of the bf16-rounded
// inputs (what the kernel must compute, to float32 accumulation error) and of the float
// inputs (the bf16 tolerance a user sees). Returns the largest scaled errors.
void check_product(kd_mm_cache *cache, bool ta, bool tb, const ProductCase &p, int variant, uint64_t seed)
{
    // variant 0: C = AB; 1: C += AB; 2: C = relu(AB + b), float; 3: the same rounded to bf16
    int lda = (ta ? p.m : p.k) + 3, ldb = (tb ? p.k : p.n) + 5, ldc = p.n + 2; // padded rows
    std::vector<float> A = kdtest::random_normal((size_t)(ta ? p.k : p.m) * lda, 1.0f, seed),
                       B = kdtest::random_normal((size_t)(tb ? p.n : p.k) * ldb, 1.0f, seed + 1),
                       C0 = kdtest::random_normal((size_t)p.m * ldc, 1.0f, seed + 2),
                       bias = kdtest::random_normal((size_t)p.n, 1.0f, seed + 3);
    std::vector<kd_bf16> Ab = rounded(A), Bb = rounded(B);
    std::vector<float> Ar = widened(Ab), Br = widened(Bb);
    std::vector<double> exact((size_t)p.m * ldc, 0.0), plain((size_t)p.m * ldc, 0.0), magnitude((size_t)p.m * ldc, 0.0);
    kdtest::gemm_reference(ta, tb, p.m, p.n, p.k, 1.0, Ar, lda, Br, ldb, 0.0, exact, ldc);
    kdtest::gemm_reference(ta, tb, p.m, p.n, p.k, 1.0, A, lda, B, ldb, 0.0, plain, ldc);
    std::vector<float> absA(A.size()), absB(B.size());
    for (size_t i = 0; i < A.size(); i++) absA[i] = std::fabs(A[i]);
    for (size_t i = 0; i < B.size(); i++) absB[i] = std::fabs(B[i]);
    kdtest::gemm_reference(ta, tb, p.m, p.n, p.k, 1.0, absA, lda, absB, ldb, 0.0, magnitude, ldc);
    std::vector<float> C = C0;
    std::vector<kd_bf16> Cb((size_t)p.m * ldc, 0);
    kd_mm_bf16 q = {};
    q.trans_a = ta;
    q.trans_b = tb;
    q.m = p.m;
    q.n = p.n;
    q.k = p.k;
    q.a = Ab.data();
    q.lda = lda;
    q.b = Bb.data();
    q.ldb = ldb;
    q.c = variant == 3 ? (void *)Cb.data() : (void *)C.data();
    q.ldc = ldc;
    q.c_bf16 = variant == 3;
    q.accumulate = variant == 1;
    q.bias = variant >= 2 ? bias.data() : nullptr;
    q.relu = variant >= 2;
    kd_mm_bf16_run(cache, &q);
    double worst_kernel = 0, worst_user = 0, largest_gap = 0;
    for (int i = 0; i < p.m; i++)
        for (int j = 0; j < p.n; j++) {
            size_t at = (size_t)i * ldc + j;
            double e = exact[at], u = plain[at];
            if (variant == 1) e += C0[at], u += C0[at];
            if (variant >= 2) e = std::max(e + bias[j], 0.0), u = std::max(u + bias[j], 0.0);
            double got = variant == 3 ? kd_bf16_to_float(Cb[at]) : C[at];
            // float32 accumulation of k products (and a bias, and C): k 2^-23 of the magnitudes;
            // a bf16 result adds its own rounding, 2^-8 of the value.
            double scale = magnitude[at] + (variant >= 1 ? std::fabs(variant == 1 ? C0[at] : bias[j]) : 0.0);
            double kernel_bound = (p.k + 2) * std::ldexp(1.0, -23) * scale + (variant == 3 ? std::ldexp(std::fabs(e), -8) : 0.0);
            // Each input is within 2^-9 of its float: a product within about 2^-8 of the magnitude.
            double user_bound = std::ldexp(1.0, -7) * scale + (variant == 3 ? std::ldexp(std::fabs(u), -7) : 0.0);
            worst_kernel = std::max(worst_kernel, std::fabs(got - e) / (kernel_bound + 1e-30));
            worst_user = std::max(worst_user, std::fabs(got - u) / (user_bound + 1e-30));
            largest_gap = std::max(largest_gap, std::fabs(e - u));
            // Padding between rows is never written.
            for (int pad = p.n; pad < ldc && j == 0; pad++) {
                size_t q_at = (size_t)i * ldc + pad;
                if (variant == 3) REQUIRE(Cb[q_at] == 0);
                else REQUIRE(bits_of(C[q_at]) == bits_of(C0[q_at]));
            }
        }
    INFO("ta " << ta << " tb " << tb << " m " << p.m << " n " << p.n << " k " << p.k << " variant " << variant
               << ": kernel error / bound " << worst_kernel << ", against float inputs / bound " << worst_user);
    REQUIRE(worst_kernel <= 1.0);
    REQUIRE(worst_user <= 1.0);
    if (variant < 2) REQUIRE(largest_gap > 0.0); // the inputs really were rounded: the references differ
}

} // namespace

TEST_CASE("bf16 products match double references for every transpose and odd shapes", "[bf16]")
{
    if (!bf16_available()) {
        WARN("oneDNN has no bf16 product on this CPU: nothing to test here (training takes fp32)");
        return;
    }
    kd_mm_cache *cache;
    kd_error err;
    REQUIRE(kd_mm_cache_create(&cache, &err) == KD_OK);
    // Whole products (under 1 MFLOP), row halves (odd row counts), column halves
    // (wide and short, k >= 64), and a long reduction.
    const ProductCase cases[] = {{1, 1, 1}, {3, 5, 7}, {37, 13, 5}, {97, 130, 33}, {40, 300, 100}, {33, 17, 700}};
    uint64_t seed = 10;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const ProductCase &p : cases)
                for (int variant = 0; variant < 4; variant++) check_product(cache, ta, tb, p, variant, seed += 4);
    kd_mm_cache_free(cache);
}

TEST_CASE("bf16 products give the same bits on one, two and three threads", "[bf16]")
{
    if (!bf16_available()) {
        WARN("oneDNN has no bf16 product on this CPU: nothing to test here");
        return;
    }
    // 128 x 1200 x 1200 got other bits from oneDNN's own threading on 1 and 2 threads;
    // kdtrain's split must not. Also a column-split, a row-split and a small product.
    const ProductCase cases[] = {{128, 1200, 1200}, {64, 400, 300}, {300, 100, 64}, {20, 10, 30}};
    int saved = omp_get_max_threads();
    for (const ProductCase &p : cases) {
        std::vector<kd_bf16> A = rounded(kdtest::random_normal((size_t)p.m * p.k, 1.0f, 3)),
                             B = rounded(kdtest::random_normal((size_t)p.k * p.n, 1.0f, 4));
        std::vector<std::vector<float>> results;
        for (int threads : {1, 2, 3}) {
            omp_set_num_threads(threads);
            kd_mm_cache *cache; // a cache per thread count: primitives created on it
            kd_error err;
            REQUIRE(kd_mm_cache_create(&cache, &err) == KD_OK);
            std::vector<float> C((size_t)p.m * p.n);
            kd_mm_bf16 q = {};
            q.m = p.m, q.n = p.n, q.k = p.k, q.a = A.data(), q.lda = p.k, q.b = B.data(), q.ldb = p.n;
            q.c = C.data(), q.ldc = p.n;
            kd_mm_bf16_run(cache, &q);
            results.push_back(C);
            kd_mm_cache_free(cache);
        }
        INFO(p.m << " x " << p.n << " x " << p.k);
        REQUIRE(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)) == 0);
        REQUIRE(std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(float)) == 0);
    }
    omp_set_num_threads(saved);
}

TEST_CASE("a bf16 linear layer's output and gradients agree with float32 within bf16 tolerance", "[bf16]")
{
    if (!bf16_available()) {
        WARN("oneDNN has no bf16 product on this CPU: nothing to test here");
        return;
    }
    const int B = 48, in = 40, out = 70;
    for (bool hidden : {true, false}) {
        std::vector<float> x = kdtest::random_normal((size_t)B * in, 1.0f, 7), w = kdtest::random_normal((size_t)in * out, 0.2f, 8),
                           b = kdtest::random_normal(out, 0.5f, 9), seed = kdtest::random_normal((size_t)B * out, 1.0f, 10);
        std::vector<kd_bf16> wb = rounded(w);
        std::vector<float> grads[2][3]; // [bf16?][x, w, b]
        std::vector<float> outputs[2];
        kd_mm_cache *cache;
        kd_error err;
        REQUIRE(kd_mm_cache_create(&cache, &err) == KD_OK);
        for (int bf16 = 0; bf16 < 2; bf16++) {
            std::vector<float> gx(x.size(), 0.0f), gw(w.size(), 0.0f), gb(b.size(), 0.0f);
            kd_tape tape;
            kd_tape_init(&tape, 0);
            kd_tensor *tx = kd_tape_view(&tape, B, in, x.data(), gx.data());
            kd_tensor *tw = kd_tape_view(&tape, in, out, w.data(), gw.data());
            kd_tensor *tb = kd_tape_view(&tape, 1, out, b.data(), gb.data());
            tw->bf16 = wb.data();
            kd_activation act = hidden ? KD_ACT_RELU : KD_ACT_NONE;
            kd_tensor *y = bf16 ? kd_op_linear_bf16(&tape, cache, tx, tw, tb, act, hidden) : kd_op_linear(&tape, tx, tw, tb, act);
            std::vector<float> yv((size_t)B * out);
            for (size_t i = 0; i < yv.size(); i++) yv[i] = y->data ? y->data[i] : kd_bf16_to_float(y->bf16[i]);
            outputs[bf16] = yv;
            kd_tape_backward_seeded(&tape, y, seed.data());
            grads[bf16][0] = gx, grads[bf16][1] = gw, grads[bf16][2] = gb;
            kd_tape_free(&tape);
        }
        kd_mm_cache_free(cache);
        // bf16 keeps 8 significant bits: each result within 2^-6 of the largest float32 one
        // (a wrong transpose or a missing ReLU mask is off by the values themselves).
        auto close = [](const std::vector<float> &got, const std::vector<float> &want, const char *what,
                        bool must_differ = true) {
            double largest = 0, worst = 0;
            for (float v : want) largest = std::max(largest, (double)std::fabs(v));
            for (size_t i = 0; i < want.size(); i++) worst = std::max(worst, (double)std::fabs(got[i] - want[i]));
            INFO(what << ": largest |difference| " << worst << " against largest |value| " << largest);
            REQUIRE(largest > 0.1);
            REQUIRE(worst <= std::ldexp(largest, -6));
            if (must_differ) REQUIRE(worst > 0.0); // bf16 really ran
        };
        close(outputs[1], outputs[0], "Y");
        close(grads[1][0], grads[0][0], "dX");
        close(grads[1][1], grads[0][1], "dW");
        // db sums dY in float32 in both: equal without a ReLU (whose mask reads the rounded Y).
        close(grads[1][2], grads[0][2], "db", false);
        if (!hidden) REQUIRE(grads[1][2] == grads[0][2]);
    }
}

namespace {

// The smoke runs with two hidden layers (bf16 hidden activations feeding a bf16 product),
// dropout on them, and batches of 48 that leave a short last batch (a second set of shapes).
struct RunFixture : kdtest::SmokeRuns {
    std::string base(const std::string &name) const
    {
        return SmokeRuns::base(name) + " --set model.layers=16,96,64,4 --set model.dropout=0.2 --set train.batch_size=48";
    }
};

// The precision a test run should ask for: bf16 where oneDNN runs it natively, else
// fp32, said in the test's output.
std::string precision_for_tests()
{
    std::string impl;
    if (bf16_native(&impl)) return "bf16";
    WARN("no native bf16 product on this CPU (oneDNN: " << (impl.empty() ? "none" : impl) << "): testing fp32 instead");
    return "fp32";
}

} // namespace

TEST_CASE("a bf16 run resumes bit for bit and does not depend on the thread count", "[bf16][train]")
{
    RunFixture fx;
    std::string p = " --set train.precision=" + precision_for_tests();
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("whole") + p + " --set train.threads=1") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("three") + p + " --set train.threads=3") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("parts") + p + " --set train.threads=2 --stop-after 2") == 0);
    REQUIRE(kdtest::model_parameters(fx.runs + "/whole/model.h5") != kdtest::model_parameters(fx.runs + "/parts/model.h5"));
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + fx.runs + "/parts") == 0);
    REQUIRE(kdtest::model_parameters(fx.runs + "/whole/model.h5") == kdtest::model_parameters(fx.runs + "/parts/model.h5"));
    REQUIRE(kdtest::model_parameters(fx.runs + "/whole/model.h5") == kdtest::model_parameters(fx.runs + "/three/model.h5"));
    // And a distilled student from it, in the same precision.
    std::string teacher = " --teacher " + fx.runs + "/whole";
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d1") + p + teacher) == 0);
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d2") + p + teacher + " --stop-after 1") == 0);
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/d2" + teacher) == 0);
    REQUIRE(kdtest::model_parameters(fx.runs + "/d1/model.h5") == kdtest::model_parameters(fx.runs + "/d2/model.h5"));
}

TEST_CASE("bf16 training learns what fp32 learns and records its precision and why", "[bf16][train]")
{
    if (!bf16_native()) {
        WARN("no native bf16 product on this CPU: train.precision = auto takes fp32 (the next test checks it)");
        return;
    }
    RunFixture fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("fp32") + " --set train.precision=fp32") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("default")) == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("bf16") + " --set train.precision=bf16") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("auto") + " --set train.precision=auto") == 0);
    // fp32 is the default, and bf16 is another computation whose accuracy is the same here.
    REQUIRE(kdtest::model_parameters(fx.runs + "/fp32/model.h5") == kdtest::model_parameters(fx.runs + "/default/model.h5"));
    REQUIRE(kdtest::model_parameters(fx.runs + "/fp32/model.h5") != kdtest::model_parameters(fx.runs + "/bf16/model.h5"));
    REQUIRE(kdtest::model_parameters(fx.runs + "/bf16/model.h5") == kdtest::model_parameters(fx.runs + "/auto/model.h5"));
    std::string fp32 = kdtest::read_text(fx.runs + "/fp32/summary.json"), bf16 = kdtest::read_text(fx.runs + "/bf16/summary.json"),
                autos = kdtest::read_text(fx.runs + "/auto/summary.json");
    REQUIRE(fp32.find("\"precision\": \"fp32\"") != std::string::npos);
    REQUIRE(fp32.find("\"precision_reason\": \"train.precision = fp32\"") != std::string::npos);
    REQUIRE(bf16.find("\"precision\": \"bf16\"") != std::string::npos);
    REQUIRE(autos.find("\"precision\": \"bf16\"") != std::string::npos);
    REQUIRE(autos.find("train.precision = auto: oneDNN runs bf16 natively here (") != std::string::npos);
    REQUIRE(kdtest::read_text(fx.runs + "/auto/train.log").find("precision: bf16 (train.precision = auto") != std::string::npos);
    auto accuracy = [](const std::string &json) {
        size_t at = json.find("\"final_val_accuracy\": ");
        REQUIRE(at != std::string::npos);
        return std::stod(json.substr(at + 22));
    };
    INFO("final validation accuracy fp32 " << accuracy(fp32) << ", bf16 " << accuracy(bf16));
    REQUIRE(accuracy(fp32) > 0.8);
    REQUIRE(std::fabs(accuracy(bf16) - accuracy(fp32)) <= 0.03);
}

TEST_CASE("on a CPU without native bf16, auto takes fp32 and says why, and bf16 without any product is refused",
          "[bf16][train]")
{
    RunFixture fx;
    const char *outer = std::getenv("DNNL_MAX_CPU_ISA"); // ctest may run this file capped already
    std::string outer_value = outer ? outer : "";
    // oneDNN capped at AVX-512 without bf16 runs bf16 products by emulation (gemm:jit).
    setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE", 1);
    int emulated = kdtest::run_kdtrain("train " + fx.base("emulated") + " --set train.precision=auto --set train.epochs=1");
    // Capped at AVX2, it has none at all.
    setenv("DNNL_MAX_CPU_ISA", "AVX2", 1);
    std::string out;
    int refused = kdtest::run_kdtrain("train " + fx.base("refused") + " --set train.precision=bf16", &out);
    int fallback = kdtest::run_kdtrain("train " + fx.base("avx2") + " --set train.precision=auto --set train.epochs=1");
    std::string info_avx2;
    REQUIRE(kdtest::run_kdtrain("info", &info_avx2) == 0);
    setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE", 1);
    std::string info_emulated;
    REQUIRE(kdtest::run_kdtrain("info", &info_emulated) == 0);
    if (outer) setenv("DNNL_MAX_CPU_ISA", outer_value.c_str(), 1);
    else unsetenv("DNNL_MAX_CPU_ISA");
    REQUIRE(emulated == 0);
    std::string summary = kdtest::read_text(fx.runs + "/emulated/summary.json");
    INFO(summary);
    REQUIRE(summary.find("\"precision\": \"fp32\"") != std::string::npos);
    REQUIRE(summary.find("an emulation slower than fp32") != std::string::npos);
    REQUIRE(refused == 2);
    REQUIRE(out.find("train.precision = bf16: bf16 products: oneDNN has no bfloat16 matrix product on this CPU") !=
            std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/refused"));
    REQUIRE(fallback == 0);
    REQUIRE(kdtest::read_text(fx.runs + "/avx2/summary.json").find("train.precision = auto: no bf16 product on this CPU") !=
            std::string::npos);
    // kdtrain info says what auto would take.
    REQUIRE(info_avx2.find("bf16      no bf16 product: train.precision = auto takes fp32") != std::string::npos);
    REQUIRE(info_emulated.find("bf16      gemm:jit: train.precision = auto takes fp32") != std::string::npos);
}
