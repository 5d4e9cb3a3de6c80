// Numerics that must hold (DESIGN.md): extreme temperatures stay finite, the
// distillation gradient has its closed form, the losses equal values worked out
// by hand or by a plain double-precision formula written here, and softmax(z/T)
// has the right limits.
#include "support.h"

#include <catch2/catch.hpp>

#include <cmath>

namespace {

struct LossRun {
    float loss;
    std::vector<float> grad; // d(loss)/d(student logits)
};

LossRun run_kd(std::vector<float> student, std::vector<float> teacher, const std::vector<int32_t> &labels,
               int B, int C, float T, float alpha)
{
    kd_tape tape;
    kd_tape_init(&tape, 0);
    std::vector<float> grad(student.size(), 0.0f);
    kd_tensor *s = kd_tape_view(&tape, B, C, student.data(), grad.data());
    kd_tensor *t = kd_tape_view(&tape, B, C, teacher.data(), nullptr);
    kd_tensor *loss = kd_op_kd_loss(&tape, s, t, labels.empty() ? nullptr : labels.data(), T, alpha);
    kd_tape_backward(&tape, loss);
    LossRun run{loss->data[0], grad};
    kd_tape_free(&tape);
    return run;
}

// softmax(z / T) of one row in double, straight from the definition with the
// maximum subtracted (the only trick needed for finite values).
std::vector<double> softmax_double(const float *z, int C, double T)
{
    double m = z[0];
    for (int c = 1; c < C; c++) m = std::max(m, (double)z[c]);
    std::vector<double> p(C);
    double sum = 0;
    for (int c = 0; c < C; c++) sum += (p[c] = std::exp((z[c] - m) / T));
    for (auto &x : p) x /= sum;
    return p;
}

bool all_finite(const std::vector<float> &v)
{
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

} // namespace

TEST_CASE("distillation loss equals the value worked out by hand", "[numerics]")
{
    // s = (0, 0), t = (ln 3, 0): p_t = (3/4, 1/4), p_s = (1/2, 1/2) at T = 1, so
    // KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.1308120674...
    std::vector<float> s = {0.0f, 0.0f}, t = {(float)std::log(3.0), 0.0f};
    double expected = 0.75 * std::log(1.5) + 0.25 * std::log(0.5);
    REQUIRE(run_kd(s, t, {}, 1, 2, 1.0f, 1.0f).loss == Approx(expected).epsilon(1e-6));
    // Cross-entropy alone (alpha = 0) of s = (0, 0) is ln 2 whatever the label.
    REQUIRE(run_kd(s, t, {1}, 1, 2, 1.0f, 0.0f).loss == Approx(std::log(2.0)).epsilon(1e-6));
    // Mixed, at T = 2: alpha T^2 KL + (1 - alpha) ln 2 with p_t = (sqrt3, 1)/(1 + sqrt3).
    double pt0 = std::sqrt(3.0) / (1 + std::sqrt(3.0)), pt1 = 1 - pt0;
    double kl = pt0 * std::log(pt0 / 0.5) + pt1 * std::log(pt1 / 0.5);
    REQUIRE(run_kd(s, t, {0}, 1, 2, 2.0f, 0.25f).loss ==
            Approx(0.25 * 4 * kl + 0.75 * std::log(2.0)).epsilon(1e-6));
}

TEST_CASE("distillation gradient equals alpha T (softmax(s/T) - softmax(t/T)) / B plus the CE term",
          "[numerics]")
{
    const int B = 6, C = 5;
    auto s = kdtest::random_uniform(B * C, -5, 5, 1);
    auto t = kdtest::random_uniform(B * C, -5, 5, 2);
    std::vector<int32_t> y = {0, 4, 2, 1, 3, 0};
    for (float T : {0.5f, 1.0f, 3.0f, 10.0f})
        for (float alpha : {0.0f, 0.4f, 1.0f}) {
            LossRun run = run_kd(s, t, y, B, C, T, alpha);
            double loss = 0;
            for (int i = 0; i < B; i++) {
                auto ps = softmax_double(&s[i * C], C, T), pt = softmax_double(&t[i * C], C, T);
                auto p1 = softmax_double(&s[i * C], C, 1.0);
                double kl = 0;
                for (int c = 0; c < C; c++) kl += pt[c] * std::log(pt[c] / ps[c]);
                loss += (alpha * T * T * kl - (1 - alpha) * std::log(p1[y[i]])) / B;
                for (int c = 0; c < C; c++) {
                    double g = alpha * T * (ps[c] - pt[c]) / B +
                               (1 - alpha) * (p1[c] - (c == y[i] ? 1.0 : 0.0)) / B;
                    INFO("T=" << T << " alpha=" << alpha << " row " << i << " class " << c);
                    REQUIRE(run.grad[i * C + c] == Approx(g).margin(1e-7).epsilon(1e-5));
                }
            }
            INFO("T=" << T << " alpha=" << alpha);
            REQUIRE(run.loss == Approx(loss).epsilon(1e-6));
        }
}

TEST_CASE("distillation loss and gradient are zero when student and teacher agree", "[numerics]")
{
    auto z = kdtest::random_uniform(4 * 7, -10, 10, 3);
    for (float T : {0.05f, 1.0f, 4.0f, 100.0f}) {
        LossRun run = run_kd(z, z, {}, 4, 7, T, 1.0f);
        INFO("T=" << T);
        REQUIRE(std::fabs(run.loss) <= 1e-6f);
        for (float g : run.grad) REQUIRE(g == 0.0f);
    }
}

TEST_CASE("extreme temperatures give finite losses and gradients", "[numerics]")
{
    const int B = 4, C = 10;
    auto s = kdtest::random_away_from_zero(B * C, 500, 1000, 4); // logits of magnitude up to 1e3
    auto t = kdtest::random_away_from_zero(B * C, 500, 1000, 5);
    s[0] = 1000.0f;
    t[1] = -1000.0f;
    std::vector<int32_t> y = {1, 2, 3, 4};
    for (float T : {0.05f, 100.0f})
        for (float alpha : {0.0f, 0.5f, 1.0f}) {
            LossRun run = run_kd(s, t, y, B, C, T, alpha);
            INFO("T=" << T << " alpha=" << alpha << " loss " << run.loss);
            REQUIRE(std::isfinite(run.loss));
            REQUIRE(run.loss >= 0.0f);
            REQUIRE(all_finite(run.grad));
        }
    for (float T : {0.05f, 100.0f}) {
        kd_tape tape;
        kd_tape_init(&tape, 0);
        std::vector<float> grad(s.size(), 0.0f);
        kd_tensor *x = kd_tape_view(&tape, B, C, s.data(), grad.data());
        kd_tensor *logp = kd_op_log_softmax(&tape, x, T);
        std::vector<float> values(logp->data, logp->data + B * C);
        kd_tape_backward(&tape, kd_op_mean(&tape, logp));
        INFO("log_softmax at T=" << T);
        REQUIRE(all_finite(values));
        REQUIRE(all_finite(grad));
        kd_tape_free(&tape);
    }
}

TEST_CASE("softmax(z/T) tends to one-hot as T -> 0 and to uniform as T -> infinity", "[numerics]")
{
    std::vector<float> z = {1.0f, 3.0f, 2.0f, -1.0f}; // the arg max is class 1
    auto probs = [&](float T) {
        kd_tape tape;
        kd_tape_init(&tape, 0);
        kd_tensor *x = kd_tape_view(&tape, 1, 4, z.data(), nullptr);
        kd_tensor *logp = kd_op_log_softmax(&tape, x, T);
        std::vector<double> p(4);
        for (int c = 0; c < 4; c++) p[c] = std::exp((double)logp->data[c]);
        kd_tape_free(&tape);
        return p;
    };
    double prev_gap = 1.0;
    for (float T : {1.0f, 0.1f, 0.01f, 0.001f}) { // the gap to one-hot shrinks monotonically
        auto p = probs(T);
        double gap = p[0] + p[2] + p[3]; // mass off the arg max
        REQUIRE((gap < prev_gap || gap == 0.0));
        prev_gap = gap;
    }
    REQUIRE(prev_gap < 1e-30);
    auto cold = probs(0.001f);
    REQUIRE(cold[0] == 0.0);
    REQUIRE(cold[1] == 1.0);
    double prev_spread = 1.0;
    for (float T : {1.0f, 10.0f, 1e3f, 1e6f}) { // max |p - 1/4| shrinks like 1/T
        auto p = probs(T);
        double spread = 0;
        for (double x : p) spread = std::max(spread, std::fabs(x - 0.25));
        REQUIRE(spread < prev_spread);
        prev_spread = spread;
    }
    REQUIRE(prev_spread < 1e-6);
}

TEST_CASE("cross-entropy equals -log softmax of the label, worked in double", "[numerics]")
{
    const int B = 5, C = 3;
    auto z = kdtest::random_uniform(B * C, -4, 4, 6);
    std::vector<int32_t> y = {2, 0, 1, 1, 2};
    double expected = 0;
    for (int i = 0; i < B; i++) expected -= std::log(softmax_double(&z[i * C], C, 1.0)[y[i]]) / B;
    kd_tape tape;
    kd_tape_init(&tape, 0);
    kd_tensor *x = kd_tape_view(&tape, B, C, z.data(), nullptr);
    REQUIRE(kd_op_softmax_ce(&tape, x, y.data())->data[0] == Approx(expected).epsilon(1e-6));
    // Hand value: logits (0, 0, 0) give ln 3 for any label.
    std::vector<float> zeros(3, 0.0f);
    kd_tensor *u = kd_tape_view(&tape, 1, 3, zeros.data(), nullptr);
    REQUIRE(kd_op_softmax_ce(&tape, u, y.data())->data[0] == Approx(std::log(3.0)).epsilon(1e-7));
    kd_tape_free(&tape);
}

TEST_CASE("dropout keeps about 1 - p of the elements, scales them by 1/(1 - p), and is seeded",
          "[numerics]")
{
    const int N = 200, D = 100;
    std::vector<float> ones(N * D, 1.0f);
    kd_rng rng;
    auto draw = [&](uint64_t seed) {
        kd_rng_seed(&rng, seed);
        kd_tape tape;
        kd_tape_init(&tape, 0);
        kd_tensor *x = kd_tape_view(&tape, N, D, ones.data(), nullptr);
        kd_tensor *y = kd_op_dropout(&tape, x, 0.3f, &rng);
        std::vector<float> out(y->data, y->data + N * D);
        kd_tape_free(&tape);
        return out;
    };
    auto a = draw(1), b = draw(1), c = draw(2);
    REQUIRE(a == b);
    REQUIRE(a != c);
    size_t kept = 0;
    for (float v : a) {
        REQUIRE((v == 0.0f || v == Approx(1.0f / 0.7f).epsilon(1e-7)));
        kept += v != 0.0f;
    }
    // Binomial(20000, 0.7): mean 14000, sd 65; 5 sd either side.
    REQUIRE(kept > 14000 - 325);
    REQUIRE(kept < 14000 + 325);
}

TEST_CASE("unlabelled rows (label -1) contribute only T^2 KL to the distillation loss", "[numerics]")
{
    const int B = 4, C = 3;
    auto s = kdtest::random_uniform(B * C, -3, 3, 21);
    auto t = kdtest::random_uniform(B * C, -3, 3, 22);
    std::vector<int32_t> y = {2, -1, 0, -1};
    const float T = 2.0f, alpha = 0.3f;
    LossRun run = run_kd(s, t, y, B, C, T, alpha);
    double loss = 0;
    for (int i = 0; i < B; i++) {
        double a = y[i] >= 0 ? alpha : 1.0;
        auto ps = softmax_double(&s[i * C], C, T), pt = softmax_double(&t[i * C], C, T);
        auto p1 = softmax_double(&s[i * C], C, 1.0);
        double kl = 0;
        for (int c = 0; c < C; c++) kl += pt[c] * std::log(pt[c] / ps[c]);
        loss += (a * T * T * kl - (y[i] >= 0 ? (1 - a) * std::log(p1[y[i]]) : 0.0)) / B;
        for (int c = 0; c < C; c++) {
            double g = a * T * (ps[c] - pt[c]) / B;
            if (y[i] >= 0) g += (1 - a) * (p1[c] - (c == y[i] ? 1.0 : 0.0)) / B;
            INFO("row " << i << " class " << c);
            REQUIRE(run.grad[i * C + c] == Approx(g).margin(1e-7).epsilon(1e-5));
        }
    }
    REQUIRE(run.loss == Approx(loss).epsilon(1e-6));
}
