// Gradient checks of every op by central differences (support.cpp: grad_check).
//
// Tolerance: each element must satisfy |numeric - analytic| <= atol + rtol |analytic|
// with rtol = 1e-3 and atol = 5e-5 (per element of d(sum(out .* R))/dx, R ~ N(0, 1)).
// The forward pass is float32, so the numeric derivative carries rounding noise of
// about ulp(out) |R| / eps; with eps = 1e-2 (1e-2 T for log-softmax) that is ~1e-5, and the
// O(eps^2) truncation error is of the same order. Piecewise-linear ops (ReLU,
// linear+ReLU) use points at least 0.05 from a kink, so no step crosses one.
#include "support.h"

#include <catch2/catch.hpp>

#include <cstdio>

using kdtest::GradInput;
using kdtest::grad_check;

static const double kRtol = 1e-3, kAtol = 5e-5;

static void require_passes(const kdtest::GradCheckReport &r)
{
    std::printf("gradcheck %-70s max |err| %.3g, max err/tol %.3f over %zu elements\n",
                Catch::getResultCapture().getCurrentTestName().c_str(), r.max_abs_error,
                r.max_scaled_error, r.checked);
    INFO("checked " << r.checked << " elements, max |err| " << r.max_abs_error
                    << ", max err/(atol + rtol|g|) " << r.max_scaled_error);
    REQUIRE(r.checked > 0);
    REQUIRE(r.max_scaled_error <= 1.0);
}

TEST_CASE("matmul gradient matches central differences for every transpose", "[gradcheck]")
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            const int M = 4, K = 5, N = 3;
            std::vector<GradInput> in = {
                {ta ? K : M, ta ? M : K, kdtest::random_uniform(M * K, -1, 1, 1 + ta), true},
                {tb ? N : K, tb ? K : N, kdtest::random_uniform(K * N, -1, 1, 3 + tb), true}};
            auto r = grad_check(
                in,
                [&](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_matmul(t, v[0], v[1], ta, tb); },
                1e-2, kRtol, kAtol);
            INFO("trans_a " << ta << " trans_b " << tb);
            require_passes(r);
        }
}

TEST_CASE("linear gradient matches central differences, with and without ReLU", "[gradcheck]")
{
    for (int act = 0; act < 2; act++) {
        const int B = 6, IN = 5, OUT = 4;
        // Bias magnitudes in [0.4, 1] dominate |X W| <= 5 * 0.05: pre-activations
        // stay away from the ReLU kink under every step.
        std::vector<GradInput> in = {
            {B, IN, kdtest::random_uniform(B * IN, -1, 1, 11), true},
            {IN, OUT, kdtest::random_uniform(IN * OUT, -0.05f, 0.05f, 12), true},
            {1, OUT, kdtest::random_away_from_zero(OUT, 0.4f, 1.0f, 13), true}};
        auto r = grad_check(
            in,
            [&](kd_tape *t, std::vector<kd_tensor *> &v) {
                return kd_op_linear(t, v[0], v[1], v[2], act ? KD_ACT_RELU : KD_ACT_NONE);
            },
            1e-2, kRtol, kAtol);
        INFO("activation " << act);
        require_passes(r);
    }
}

TEST_CASE("bias_add gradient matches central differences", "[gradcheck]")
{
    std::vector<GradInput> in = {{5, 3, kdtest::random_uniform(15, -1, 1, 21), true},
                                 {1, 3, kdtest::random_uniform(3, -1, 1, 22), true}};
    require_passes(grad_check(
        in, [](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_bias_add(t, v[0], v[1]); }, 1e-2,
        kRtol, kAtol));
}

TEST_CASE("relu gradient matches central differences away from the kink", "[gradcheck]")
{
    std::vector<GradInput> in = {{4, 7, kdtest::random_away_from_zero(28, 0.05f, 1.0f, 31), true}};
    require_passes(grad_check(
        in, [](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_relu(t, v[0]); }, 1e-2, kRtol,
        kAtol));
}

TEST_CASE("dropout gradient matches central differences with the mask held fixed", "[gradcheck]")
{
    kd_rng rng;
    std::vector<GradInput> in = {{6, 8, kdtest::random_uniform(48, -1, 1, 41), true}};
    require_passes(grad_check(
        in, [&](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_dropout(t, v[0], 0.3f, &rng); },
        1e-2, kRtol, kAtol, [&] { kd_rng_seed(&rng, 99); }));
}

TEST_CASE("scale gradient matches central differences", "[gradcheck]")
{
    std::vector<GradInput> in = {{3, 4, kdtest::random_uniform(12, -1, 1, 51), true}};
    require_passes(grad_check(
        in, [](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_scale(t, v[0], -2.5f); }, 1e-2,
        kRtol, kAtol));
}

TEST_CASE("mean gradient matches central differences", "[gradcheck]")
{
    std::vector<GradInput> in = {{3, 5, kdtest::random_uniform(15, -1, 1, 61), true}};
    require_passes(grad_check(
        in, [](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_mean(t, v[0]); }, 1e-2, kRtol,
        kAtol));
}

TEST_CASE("log_softmax gradient matches central differences at several temperatures", "[gradcheck]")
{
    for (float T : {0.5f, 1.0f, 4.0f}) {
        std::vector<GradInput> in = {{4, 6, kdtest::random_uniform(24, -3, 3, 71), true}};
        auto r = grad_check(
            in, [&](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_log_softmax(t, v[0], T); },
            1e-2 * T, kRtol, kAtol);
        INFO("T = " << T);
        require_passes(r);
    }
}

TEST_CASE("softmax cross-entropy gradient matches central differences", "[gradcheck]")
{
    std::vector<int32_t> labels = {0, 3, 2, 4, 1};
    std::vector<GradInput> in = {{5, 5, kdtest::random_uniform(25, -3, 3, 81), true}};
    require_passes(grad_check(
        in, [&](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_softmax_ce(t, v[0], labels.data()); },
        1e-2, kRtol, kAtol));
}

TEST_CASE("distillation loss gradient matches central differences over T and alpha", "[gradcheck]")
{
    std::vector<int32_t> labels = {1, 0, 3, 2};
    for (float T : {1.0f, 2.0f, 5.0f})
        for (float alpha : {0.0f, 0.3f, 1.0f}) {
            std::vector<GradInput> in = {{4, 4, kdtest::random_uniform(16, -4, 4, 91), true},
                                         {4, 4, kdtest::random_uniform(16, -4, 4, 92), false}};
            auto r = grad_check(
                in,
                [&](kd_tape *t, std::vector<kd_tensor *> &v) {
                    return kd_op_kd_loss(t, v[0], v[1], labels.data(), T, alpha);
                },
                1e-2, kRtol, kAtol);
            INFO("T = " << T << ", alpha = " << alpha);
            require_passes(r);
        }
}

TEST_CASE("a two-layer network with dropout and the distillation loss passes the gradient check",
          "[gradcheck]")
{
    // Composition: shared tensors, in-place ReLU masking and accumulation across ops.
    const int B = 5, IN = 6, H = 7, C = 4;
    std::vector<int32_t> labels = {0, 1, 2, 3, 1};
    kd_rng rng;
    std::vector<GradInput> in = {
        {B, IN, kdtest::random_uniform(B * IN, -1, 1, 101), false},
        {IN, H, kdtest::random_uniform(IN * H, -0.05f, 0.05f, 102), true},
        {1, H, kdtest::random_away_from_zero(H, 0.4f, 1.0f, 103), true},
        {H, C, kdtest::random_uniform(H * C, -1, 1, 104), true},
        {1, C, kdtest::random_uniform(C, -1, 1, 105), true},
        {B, C, kdtest::random_uniform(B * C, -3, 3, 106), false}};
    auto r = grad_check(
        in,
        [&](kd_tape *t, std::vector<kd_tensor *> &v) {
            kd_tensor *h = kd_op_linear(t, v[0], v[1], v[2], KD_ACT_RELU);
            h = kd_op_dropout(t, h, 0.25f, &rng);
            kd_tensor *logits = kd_op_linear(t, h, v[3], v[4], KD_ACT_NONE);
            kd_tensor *kd = kd_op_kd_loss(t, logits, v[5], labels.data(), 3.0f, 0.6f);
            kd_tensor *extra = kd_op_mean(t, kd_op_log_softmax(t, logits, 2.0f));
            return kd_op_bias_add(t, kd, kd_op_scale(t, extra, 0.5f));
        },
        1e-2, kRtol, kAtol, [&] { kd_rng_seed(&rng, 7); });
    require_passes(r);
}

TEST_CASE("sqdist gradient matches central differences for points and centres", "[gradcheck]")
{
    std::vector<GradInput> in = {{5, 3, kdtest::random_uniform(15, -2, 2, 111), true},
                                 {4, 3, kdtest::random_uniform(12, -2, 2, 112), true}};
    require_passes(grad_check(
        in, [](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_sqdist(t, v[0], v[1]); }, 1e-2, kRtol, kAtol));
}

TEST_CASE("mul_scalar gradient matches central differences for the tensor and the scalar", "[gradcheck]")
{
    std::vector<GradInput> in = {{3, 4, kdtest::random_uniform(12, -1, 1, 121), true}, {1, 1, {0.7f}, true}};
    require_passes(grad_check(
        in, [](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_mul_scalar(t, v[0], v[1]); }, 1e-2, kRtol,
        kAtol));
}

TEST_CASE("a distance-softmax classifier passes the gradient check end to end", "[gradcheck]")
{
    std::vector<int32_t> labels = {0, 2, 1, 1, 0, 2};
    std::vector<GradInput> in = {{6, 2, kdtest::random_uniform(12, -1, 1, 131), false},
                                 {3, 2, kdtest::random_uniform(6, -1, 1, 132), true},
                                 {1, 1, {1.3f}, true}};
    require_passes(grad_check(
        in,
        [&](kd_tape *t, std::vector<kd_tensor *> &v) {
            kd_tensor *logits = kd_op_scale(t, kd_op_mul_scalar(t, kd_op_sqdist(t, v[0], v[1]), v[2]), -1.0f);
            return kd_op_softmax_ce(t, logits, labels.data());
        },
        1e-2, kRtol, kAtol));
}
