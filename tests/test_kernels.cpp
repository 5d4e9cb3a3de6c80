// The threaded and vectorised kernels give the same numbers whatever the thread
// count and whichever variant (AVX-512 or generic, KD_SIMD=generic) runs, and they
// agree with references worked here independently: the products split over rows,
// the counter-based dropout mask, the blocked AdamW update and the row-parallel
// losses.
#include "support.h"

extern "C" {
#include "core/gemm.h"
#include "core/threads.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/simd.h"
#include "core/tape.h"
#include "nn/optim.h"
}

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <omp.h>
#include <string>

namespace {

// Sets the OpenMP thread count and, when generic is set, KD_SIMD=generic, for one
// scope; the previous values come back on the way out, also when a REQUIRE throws.
class Setting
{
  public:
    Setting(int threads, bool generic) : threads_before_(omp_get_max_threads())
    {
        const char *simd = std::getenv("KD_SIMD");
        had_simd_ = simd != nullptr;
        if (simd) simd_before_ = simd;
        kd_threads_set(threads);
        if (generic) setenv("KD_SIMD", "generic", 1);
    }
    ~Setting()
    {
        kd_threads_set(threads_before_);
        if (had_simd_)
            setenv("KD_SIMD", simd_before_.c_str(), 1);
        else
            unsetenv("KD_SIMD");
    }
    Setting(const Setting &) = delete;
    Setting &operator=(const Setting &) = delete;

  private:
    int threads_before_;
    bool had_simd_ = false;
    std::string simd_before_;
};

template <class F> auto with_setting(int threads, bool generic, F f)
{
    Setting setting(threads, generic);
    return f();
}

// Without AVX-512 (or with KD_SIMD=generic exported) both variants are the generic
// one, and the comparisons between them cannot fail: say so.
void warn_if_one_variant()
{
    if (!kd_cpu_has_avx512()) WARN("this CPU runs the generic variants only: the AVX-512 comparisons are vacuous here");
}

// run's result on 1, 2 and 3 threads and, on 2, with the generic variants: all must
// be equal, bit for bit; returns it.
template <class F> auto same_on_any_threads_and_variant(F run)
{
    warn_if_one_variant();
    auto reference = with_setting(2, false, run);
    REQUIRE(with_setting(1, false, run) == reference);
    REQUIRE(with_setting(3, false, run) == reference);
    REQUIRE(with_setting(2, true, run) == reference);
    return reference;
}

// SplitMix64 written out from Steele, Lea and Flood (2014): the state advances by
// the golden gamma, then the output mix.
uint64_t splitmix64_output(uint64_t seed, uint64_t n)
{
    uint64_t state = seed;
    for (uint64_t i = 0; i <= n; i++) state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

} // namespace

TEST_CASE("small products split over threads match the double reference and one thread, bit for bit", "[kernels]")
{
    // Under 1 MFLOP (67x13x29) kd_gemm makes one call on the calling thread; from 1 to
    // 16 MFLOP with M >= 32 it cuts the rows of C in halves (99 rows: unequal halves).
    // 256 rows with N in (100, 1200): where oneDNN's kernel choice depends on the
    // rows of a call (a single-threaded 256-row call and a 128-row one differ).
    struct Shape {
        int M, N, K;
    };
    for (Shape shape : {Shape{67, 13, 29}, Shape{99, 70, 80}, Shape{256, 150, 100}}) {
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (float beta : {0.0f, 1.0f, -0.5f}) {
                    const int M = shape.M, N = shape.N, K = shape.K, pad = 3;
                    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
                    auto A = kdtest::random_uniform((size_t)(ta ? K : M) * lda, -1, 1, 11);
                    auto B = kdtest::random_uniform((size_t)(tb ? N : K) * ldb, -1, 1, 12);
                    auto C0 = kdtest::random_uniform((size_t)M * ldc, -1, 1, 13);
                    std::vector<double> ref(C0.begin(), C0.end());
                    kdtest::gemm_reference(ta, tb, M, N, K, 0.75, A, lda, B, ldb, beta, ref, ldc);
                    auto product = [&] {
                        std::vector<float> C = C0;
                        kd_gemm(ta, tb, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
                        return C;
                    };
                    auto one = with_setting(1, false, product), two = with_setting(2, false, product),
                         three = with_setting(3, false, product);
                    INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb << " beta=" << beta);
                    for (size_t i = 0; i < ref.size(); i++)
                        REQUIRE(std::fabs(two[i] - ref[i]) <= 1e-5 * (1 + std::fabs(ref[i])));
                    REQUIRE(one == two);
                    REQUIRE(one == three);
                }
    }
}

TEST_CASE("dropout's mask is SplitMix64 from one key, the same on any thread count and variant", "[kernels]")
{
    const int N = 300, D = 200; // 60,000 elements: the threaded path
    const float p = 0.3f;
    auto x = kdtest::random_uniform((size_t)N * D, -2, 2, 5);
    auto run = [&] {
        kd_rng rng;
        kd_rng_seed(&rng, 42);
        kd_tape tape;
        kd_tape_init(&tape, 0);
        kd_tensor *in = kd_tape_view(&tape, N, D, x.data(), nullptr);
        kd_tensor *y = kd_op_dropout(&tape, in, p, &rng);
        std::vector<float> out(y->data, y->data + (size_t)N * D);
        kd_tape_free(&tape);
        return out;
    };
    auto reference = same_on_any_threads_and_variant(run);

    // The key is the seeded xoshiro256** stream's first output; element i is kept
    // when the top 32 bits of SplitMix64 output i reach p 2^32, rounded up.
    kd_rng rng;
    kd_rng_seed(&rng, 42);
    uint64_t key = kd_rng_next(&rng);
    double threshold = std::ceil((double)p * 4294967296.0);
    float scale = 1.0f / (1.0f - p);
    size_t kept = 0;
    for (size_t i = 0; i < reference.size(); i++) {
        bool keep = (double)(splitmix64_output(key, i) >> 32) >= threshold;
        kept += keep;
        REQUIRE(reference[i] == (keep ? x[i] * scale : 0.0f));
    }
    // Binomial(60000, 0.7): sd 112; 5 sd either side.
    REQUIRE(std::fabs((double)kept - 42000.0) < 5 * 112.3);
}

TEST_CASE("AdamW over 100,003 parameters follows torch's formula in double, same on any threads and variant",
          "[kernels]")
{
    const size_t n = 100003; // above the threaded size, not a multiple of 16
    auto p0 = kdtest::random_uniform(n, -1, 1, 7);
    std::vector<std::vector<float>> grads;
    for (int step = 0; step < 3; step++) grads.push_back(kdtest::random_uniform(n, -0.1f, 0.1f, 8 + step));
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
    kd_optim_config config = {};
    config.kind = KD_OPTIM_ADAMW;
    config.lr = lr;
    config.beta1 = b1;
    config.beta2 = b2;
    config.eps = eps;
    config.weight_decay = wd;
    auto run = [&] {
        std::vector<float> p = p0, g(n);
        kd_optim opt;
        kd_error err;
        REQUIRE(kd_optim_create(&opt, &config, n, &err) == KD_OK);
        for (int step = 0; step < 3; step++) {
            g = grads[step];
            kd_optim_step(&opt, p.data(), g.data());
            for (float v : g) REQUIRE(v == 0.0f); // consumed
        }
        kd_optim_free(&opt);
        return p;
    };
    auto ours = same_on_any_threads_and_variant(run);

    // torch.optim.AdamW: p *= 1 - lr wd; m, v moments; p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double p = p0[i], m = 0, v = 0;
        for (int t = 1; t <= 3; t++) {
            double g = grads[t - 1][i];
            p *= 1 - lr * wd;
            m = b1 * m + (1 - b1) * g;
            v = b2 * v + (1 - b2) * g * g;
            p -= lr / (1 - std::pow(b1, t)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(b2, t)) + eps);
        }
        worst = std::max(worst, std::fabs(ours[i] - p));
    }
    INFO("max |ours - double reference| " << worst);
    REQUIRE(worst <= 1e-6);
}

TEST_CASE("the row-parallel losses match double references and do not depend on threads or variant", "[kernels]")
{
    const int B = 300, C = 10; // 3,000 logits: the threaded path
    auto s = kdtest::random_uniform((size_t)B * C, -6, 6, 31);
    auto t = kdtest::random_uniform((size_t)B * C, -6, 6, 32);
    std::vector<int32_t> y(B);
    for (int i = 0; i < B; i++) y[i] = i % 7 == 3 ? -1 : (i * 7) % C; // some unlabelled rows
    std::vector<int32_t> y_ce(B);
    for (int i = 0; i < B; i++) y_ce[i] = (i * 3) % C;
    const float T = 3.0f, alpha = 0.6f;
    auto run = [&] {
        std::vector<float> out;
        kd_tape tape;
        kd_tape_init(&tape, 0);
        std::vector<float> zs = s, gs((size_t)B * C, 0.0f);
        kd_tensor *student = kd_tape_view(&tape, B, C, zs.data(), gs.data());
        kd_tensor *teacher = kd_tape_view(&tape, B, C, t.data(), nullptr);
        kd_tensor *kd = kd_op_kd_loss(&tape, student, teacher, y.data(), T, alpha);
        kd_tape_backward(&tape, kd);
        out.push_back(kd->data[0]);
        out.insert(out.end(), gs.begin(), gs.end());
        kd_tape_reset(&tape);
        std::fill(gs.begin(), gs.end(), 0.0f);
        student = kd_tape_view(&tape, B, C, zs.data(), gs.data());
        kd_tensor *ce = kd_op_softmax_ce(&tape, student, y_ce.data());
        kd_tape_backward(&tape, ce);
        out.push_back(ce->data[0]);
        out.insert(out.end(), gs.begin(), gs.end());
        kd_tape_free(&tape);
        return out;
    };
    warn_if_one_variant();
    auto ours = with_setting(2, false, run);
    REQUIRE(with_setting(1, false, run) == ours);
    REQUIRE(with_setting(3, false, run) == ours);
    auto generic = with_setting(2, true, run);
    for (size_t i = 0; i < ours.size(); i++) REQUIRE(generic[i] == Approx(ours[i]).epsilon(1e-6).margin(1e-12));

    // Double references: KD = mean of a T^2 KL + (1 - a) CE, a = 1 for label -1.
    auto softmax = [](const float *z, double temp) {
        std::vector<double> p(C);
        double max = *std::max_element(z, z + C), sum = 0;
        for (int c = 0; c < C; c++) sum += p[c] = std::exp((z[c] - max) / temp);
        for (double &v : p) v /= sum;
        return p;
    };
    double kd_loss = 0, ce_loss = 0;
    std::vector<double> kd_grad((size_t)B * C), ce_grad((size_t)B * C);
    for (int i = 0; i < B; i++) {
        const float *zs = &s[(size_t)i * C], *zt = &t[(size_t)i * C];
        auto ps = softmax(zs, T), pt = softmax(zt, T), p1 = softmax(zs, 1.0);
        double a = y[i] >= 0 ? alpha : 1.0;
        for (int c = 0; c < C; c++) {
            kd_loss += a * T * T * pt[c] * std::log(pt[c] / ps[c]) / B;
            kd_grad[(size_t)i * C + c] = a * T * (ps[c] - pt[c]) / B;
            if (y[i] >= 0) kd_grad[(size_t)i * C + c] += (1 - a) * (p1[c] - (c == y[i])) / B;
            ce_grad[(size_t)i * C + c] = (p1[c] - (c == y_ce[i])) / B;
        }
        if (y[i] >= 0) kd_loss -= (1 - a) * std::log(p1[y[i]]) / B;
        ce_loss -= std::log(p1[y_ce[i]]) / B;
    }
    REQUIRE(ours[0] == Approx(kd_loss).epsilon(1e-6));
    REQUIRE(ours[1 + B * C] == Approx(ce_loss).epsilon(1e-6));
    for (size_t i = 0; i < (size_t)B * C; i++) {
        REQUIRE(ours[1 + i] == Approx(kd_grad[i]).epsilon(1e-5).margin(1e-9));
        REQUIRE(ours[2 + B * C + i] == Approx(ce_grad[i]).epsilon(1e-5).margin(1e-9));
    }
}

TEST_CASE("every distill.loss gives the same bits on any thread count and agrees across variants", "[kernels]")
{
    const int B = 300, C = 10; // 3,000 logits: the threaded path
    auto s = kdtest::random_uniform((size_t)B * C, -6, 6, 41);
    auto t = kdtest::random_uniform((size_t)B * C, -6, 6, 42);
    std::vector<int32_t> y(B);
    for (int i = 0; i < B; i++) y[i] = i % 7 == 3 ? -1 : (i * 7) % C;
    for (kd_distill_loss_kind kind : {KD_DISTILL_REVERSE_KL, KD_DISTILL_JS, KD_DISTILL_DKD, KD_DISTILL_LSK}) {
        kd_distill_loss dl = {kind, 3.0f, 0.6f, 1.0f, 8.0f};
        auto run = [&] {
            kd_tape tape;
            kd_tape_init(&tape, 0);
            std::vector<float> zs = s, gs((size_t)B * C, 0.0f);
            kd_tensor *student = kd_tape_view(&tape, B, C, zs.data(), gs.data());
            kd_tensor *loss = kd_op_distill_loss(&tape, student, kd_tape_view(&tape, B, C, t.data(), nullptr), y.data(), &dl);
            kd_tape_backward(&tape, loss);
            std::vector<float> out = {loss->data[0]};
            out.insert(out.end(), gs.begin(), gs.end());
            kd_tape_free(&tape);
            return out;
        };
        INFO("kind " << (int)kind);
        warn_if_one_variant();
        auto ours = with_setting(2, false, run);
        REQUIRE(with_setting(1, false, run) == ours);
        REQUIRE(with_setting(3, false, run) == ours);
        auto generic = with_setting(2, true, run);
        for (size_t i = 0; i < ours.size(); i++) REQUIRE(generic[i] == Approx(ours[i]).epsilon(1e-6).margin(1e-12));
    }
}

TEST_CASE("a product on the calling thread leaves OpenMP's thread count as it was", "[kernels]")
{
    Setting two(2, false);
    std::vector<float> A(64 * 8, 0.5f), B(8 * 4, 0.25f), C(64 * 4, 0.0f);
    kd_gemm(false, false, 64, 4, 8, 1.0f, A.data(), 8, B.data(), 4, 0.0f, C.data(), 4); // 4 KFLOP: one thread
    REQUIRE(omp_get_max_threads() == 2);
    REQUIRE(C[0] == 8 * 0.5f * 0.25f);
}
