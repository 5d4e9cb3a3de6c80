// The distillation losses of distill.loss (kd_op_distill_loss): their gradients by
// central differences over T and alpha with unlabelled rows, finite values at extreme
// temperatures, a decoupled-KD value and gradient worked out by hand, the properties
// each divergence must have (zero when student and teacher agree; DKD's target for an
// unlabelled row is the teacher's top class), kl being kd_op_kd_loss bit for bit, and
// dkd refused below 3 classes. Values against PyTorch are in test_reference.cpp.
//
// Gradient-check tolerance, as test_gradcheck.cpp: |numeric - analytic| <= 5e-5 +
// 1e-3 |analytic| per element of d(sum(out .* R))/dx (here out is the (1, 1) loss).
// The forward pass is float32, so a central difference of step eps carries noise of
// about ulp(loss) / eps; eps = 1e-2 keeps that near 1e-5 for the losses here (logits
// in [-3, 3]; DKD with weights 0.5 and 2, not the default 8, which makes the loss, and
// its float noise, four times larger). The truncation error, eps^2 D''' / (6 T) in the
// student logits, is of the same order at T = 0.5.
#include "support.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <sys/wait.h>
#include <unistd.h>

namespace {

const kd_distill_loss_kind kKinds[] = {KD_DISTILL_KL, KD_DISTILL_REVERSE_KL, KD_DISTILL_JS, KD_DISTILL_DKD,
                                       KD_DISTILL_LSK};
const char *const kNames[] = {"kl", "reverse_kl", "js", "dkd", "lsk"};
const double kRtol = 1e-3, kAtol = 5e-5;

kd_distill_loss settings(kd_distill_loss_kind kind, float T, float alpha, float wa = 1.0f, float wb = 8.0f)
{
    return kd_distill_loss{kind, T, alpha, wa, wb};
}

struct LossRun {
    float loss;
    std::vector<float> grad; // d(loss)/d(student logits)
};

LossRun run_loss(const kd_distill_loss &dl, std::vector<float> student, std::vector<float> teacher,
                 const std::vector<int32_t> &labels, int B, int C)
{
    kd_tape tape;
    kd_tape_init(&tape, 0);
    std::vector<float> grad(student.size(), 0.0f);
    kd_tensor *s = kd_tape_view(&tape, B, C, student.data(), grad.data());
    kd_tensor *t = kd_tape_view(&tape, B, C, teacher.data(), nullptr);
    kd_tensor *loss = kd_op_distill_loss(&tape, s, t, labels.empty() ? nullptr : labels.data(), &dl);
    kd_tape_backward(&tape, loss);
    LossRun run{loss->data[0], grad};
    kd_tape_free(&tape);
    return run;
}

bool all_finite(const std::vector<float> &v)
{
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

void report(const char *what, const kdtest::GradCheckReport &r)
{
    std::printf("gradcheck %-44s max |err| %.3g, max err/tol %.3f over %zu elements\n", what, r.max_abs_error,
                r.max_scaled_error, r.checked);
}

// The gradient check of one loss over T in {0.5, 1, 4, 20} and alpha in {0, 0.5, 1},
// 6 rows of 5 classes, two of them unlabelled.
void check_gradient_over_T_and_alpha(kd_distill_loss_kind kind, const char *name)
{
    const int B = 6, C = 5;
    std::vector<int32_t> labels = {1, -1, 3, 2, -1, 0};
    double worst = 0;
    for (float T : {0.5f, 1.0f, 4.0f, 20.0f})
        for (float alpha : {0.0f, 0.5f, 1.0f}) {
            std::vector<kdtest::GradInput> in = {{B, C, kdtest::random_uniform(B * C, -3, 3, 91), true},
                                                 {B, C, kdtest::random_uniform(B * C, -3, 3, 92), false}};
            kd_distill_loss dl = settings(kind, T, alpha, 0.5f, 2.0f);
            auto r = kdtest::grad_check(
                in,
                [&](kd_tape *t, std::vector<kd_tensor *> &v) {
                    return kd_op_distill_loss(t, v[0], v[1], labels.data(), &dl);
                },
                1e-2, kRtol, kAtol);
            INFO(name << ": T = " << T << ", alpha = " << alpha << ": max |err| " << r.max_abs_error
                      << ", max err/tol " << r.max_scaled_error);
            REQUIRE(r.checked == (size_t)B * C);
            REQUIRE(r.max_scaled_error <= 1.0);
            worst = std::max(worst, r.max_scaled_error);
        }
    std::printf("gradcheck %-12s over T and alpha: max err/tol %.3f\n", name, worst);
}

} // namespace

TEST_CASE("the kl loss gradient matches central differences over T and alpha with unlabelled rows",
          "[distill-loss][gradcheck]")
{
    check_gradient_over_T_and_alpha(KD_DISTILL_KL, "kl");
}

TEST_CASE("the reverse_kl loss gradient matches central differences over T and alpha with unlabelled rows",
          "[distill-loss][gradcheck]")
{
    check_gradient_over_T_and_alpha(KD_DISTILL_REVERSE_KL, "reverse_kl");
}

TEST_CASE("the js loss gradient matches central differences over T and alpha with unlabelled rows",
          "[distill-loss][gradcheck]")
{
    check_gradient_over_T_and_alpha(KD_DISTILL_JS, "js");
}

TEST_CASE("the dkd loss gradient matches central differences over T and alpha with unlabelled rows",
          "[distill-loss][gradcheck]")
{
    check_gradient_over_T_and_alpha(KD_DISTILL_DKD, "dkd");
}

TEST_CASE("the lsk loss gradient matches central differences over T and alpha with unlabelled rows",
          "[distill-loss][gradcheck]")
{
    check_gradient_over_T_and_alpha(KD_DISTILL_LSK, "lsk");
}

TEST_CASE("the lsk gradient through the standardisation holds for nearly constant student rows",
          "[distill-loss][gradcheck]")
{
    // Rows spread by +-0.05 around 0.3 and -2 (std about 0.03): the gradient is about
    // 1/std times that of the standardised logits, and the step is cut to 3e-4 (1 % of
    // the std) so that the difference stays in the quadratic range. The float noise of
    // the difference, ulp(loss) |R| / (2 eps) with a loss below 2, is up to 2e-4: atol.
    const int B = 2, C = 6;
    std::vector<float> s = kdtest::random_uniform(B * C, -0.05f, 0.05f, 201);
    for (int c = 0; c < C; c++) {
        s[c] += 0.3f;
        s[C + c] -= 2.0f;
    }
    std::vector<int32_t> labels = {2, -1};
    for (float T : {1.0f, 4.0f}) {
        std::vector<kdtest::GradInput> in = {{B, C, s, true}, {B, C, kdtest::random_uniform(B * C, -3, 3, 202), false}};
        kd_distill_loss dl = settings(KD_DISTILL_LSK, T, 0.5f);
        auto r = kdtest::grad_check(
            in,
            [&](kd_tape *t, std::vector<kd_tensor *> &v) { return kd_op_distill_loss(t, v[0], v[1], labels.data(), &dl); },
            3e-4, kRtol, 2e-4);
        report(T == 1.0f ? "lsk near-constant rows, T = 1" : "lsk near-constant rows, T = 4", r);
        INFO("T = " << T);
        REQUIRE(r.checked == (size_t)B * C);
        REQUIRE(r.max_scaled_error <= 1.0);
    }
}

TEST_CASE("a constant student row under lsk gives a finite loss and the gradient of the limit std -> 0",
          "[distill-loss][numerics]")
{
    // s' = 0 for a constant row, so q is uniform; the std term of the gradient is taken
    // as its limit 0, leaving alpha T (q - p - mean(q - p)) / (1e-7 B) with mean(q - p) = 0:
    // worked out here in double from the teacher's standardised row.
    const int C = 4;
    std::vector<float> s = {1.5f, 1.5f, 1.5f, 1.5f}, t = {2.0f, -1.0f, 0.5f, 0.0f};
    const double T = 2.0;
    double mean = (2.0 - 1.0 + 0.5 + 0.0) / 4, ss = 0;
    for (float v : t) ss += (v - mean) * (v - mean);
    double sd = std::sqrt(ss / 3), p[C], sum = 0, loss = 0;
    for (int c = 0; c < C; c++) sum += p[c] = std::exp((t[c] - mean) / (1e-7 + sd) / T);
    for (int c = 0; c < C; c++) {
        p[c] /= sum;
        loss += T * T * p[c] * std::log(p[c] / 0.25);
    }
    LossRun run = run_loss(settings(KD_DISTILL_LSK, (float)T, 1.0f), s, t, {}, 1, C);
    REQUIRE(run.loss == Approx(loss).epsilon(1e-6));
    REQUIRE(all_finite(run.grad));
    for (int c = 0; c < C; c++) REQUIRE(run.grad[c] == Approx(T * (0.25 - p[c]) / 1e-7).epsilon(1e-6));
}

TEST_CASE("every loss is finite with its gradient at T = 0.05 with logits of 1e3 and at T = 100",
          "[distill-loss][numerics]")
{
    const int B = 4, C = 10;
    auto s = kdtest::random_away_from_zero(B * C, 500, 1000, 4); // logits of magnitude up to 1e3
    auto t = kdtest::random_away_from_zero(B * C, 500, 1000, 5);
    s[0] = 1000.0f;
    t[1] = -1000.0f;
    t[C + 3] = 1000.0f; // row 1's label is the teacher's top class, far above the rest
    std::vector<int32_t> y = {1, 3, -1, 4};
    for (size_t k = 0; k < 5; k++)
        for (float T : {0.05f, 100.0f})
            for (float alpha : {0.0f, 0.5f, 1.0f}) {
                LossRun run = run_loss(settings(kKinds[k], T, alpha), s, t, y, B, C);
                INFO(kNames[k] << ": T = " << T << ", alpha = " << alpha << ", loss " << run.loss);
                REQUIRE(std::isfinite(run.loss));
                REQUIRE(run.loss >= 0.0f);
                REQUIRE(all_finite(run.grad));
            }
}

TEST_CASE("decoupled KD on one row of 3 classes equals the value worked out by hand", "[distill-loss][numerics]")
{
    // T = 2, s = (0, 2 ln 2, 0), t = (2 ln 2, 0, 0), label 0: q = softmax(s/T) = (1/4, 1/2, 1/4),
    // p = (1/2, 1/4, 1/4). TCKD = KL([1/2, 1/2] || [1/4, 3/4]) = ln(4/3)/2; qhat = (2/3, 1/3),
    // phat = (1/2, 1/2), NCKD = ln(9/8)/2. With a = 1, b = 8: D = ln(4/3)/2 + 4 ln(9/8) and the
    // loss T^2 D. dD/du = (q_y - p_y, qhat_1 (p_y - q_y) + 8 (qhat_1 - phat_1), ...)
    // = (-1/4, 1/6 + 4/3, 1/12 - 4/3) = (-1/4, 3/2, -5/4), and d/ds = T dD/du.
    const float l2 = (float)(2.0 * std::log(2.0));
    std::vector<float> s = {0.0f, l2, 0.0f}, t = {l2, 0.0f, 0.0f};
    const double D = std::log(4.0 / 3.0) / 2 + 4 * std::log(9.0 / 8.0);
    const double g[3] = {-0.25, 1.5, -1.25};
    LossRun soft = run_loss(settings(KD_DISTILL_DKD, 2.0f, 1.0f), s, t, {0}, 1, 3);
    REQUIRE(soft.loss == Approx(4 * D).epsilon(1e-6));
    for (int c = 0; c < 3; c++) REQUIRE(soft.grad[c] == Approx(2 * g[c]).epsilon(1e-6));

    // alpha = 0.5 adds half the cross-entropy at T = 1: softmax(s) = (1/6, 4/6, 1/6), CE = ln 6.
    LossRun mixed = run_loss(settings(KD_DISTILL_DKD, 2.0f, 0.5f), s, t, {0}, 1, 3);
    REQUIRE(mixed.loss == Approx(0.5 * 4 * D + 0.5 * std::log(6.0)).epsilon(1e-6));
    const double ce_grad[3] = {1.0 / 6 - 1, 4.0 / 6, 1.0 / 6};
    for (int c = 0; c < 3; c++) REQUIRE(mixed.grad[c] == Approx(0.5 * 2 * g[c] + 0.5 * ce_grad[c]).epsilon(1e-6));
}

TEST_CASE("every divergence and its gradient vanish when the student's logits are the teacher's",
          "[distill-loss][numerics]")
{
    auto z = kdtest::random_uniform(4 * 7, -10, 10, 3);
    for (size_t k = 0; k < 5; k++)
        for (float T : {0.05f, 1.0f, 4.0f, 100.0f}) {
            LossRun run = run_loss(settings(kKinds[k], T, 1.0f), z, z, {2, -1, 0, 6}, 4, 7);
            INFO(kNames[k] << ": T = " << T);
            REQUIRE(std::fabs(run.loss) <= 1e-6f);
            for (float g : run.grad) REQUIRE(std::fabs(g) <= 1e-12f);
        }
}

TEST_CASE("dkd takes the teacher's top class as the target of an unlabelled row", "[distill-loss][numerics]")
{
    const int B = 3, C = 5;
    auto s = kdtest::random_uniform(B * C, -3, 3, 11), t = kdtest::random_uniform(B * C, -3, 3, 12);
    std::vector<int32_t> top(B), unlabelled(B, -1), other(B);
    for (int i = 0; i < B; i++) {
        top[i] = (int32_t)(std::max_element(&t[(size_t)i * C], &t[(size_t)i * C] + C) - &t[(size_t)i * C]);
        other[i] = (top[i] + 1) % C;
    }
    kd_distill_loss dl = settings(KD_DISTILL_DKD, 3.0f, 1.0f);
    LossRun a = run_loss(dl, s, t, unlabelled, B, C), b = run_loss(dl, s, t, top, B, C),
            c = run_loss(dl, s, t, other, B, C);
    REQUIRE(a.loss == b.loss);
    REQUIRE(a.grad == b.grad);
    REQUIRE(a.loss != c.loss); // the target matters: the test could fail
}

TEST_CASE("distill loss kl is kd_op_kd_loss, the same node and the same bits", "[distill-loss]")
{
    const int B = 5, C = 6;
    auto s = kdtest::random_uniform(B * C, -5, 5, 21), t = kdtest::random_uniform(B * C, -5, 5, 22);
    std::vector<int32_t> y = {0, -1, 5, 2, -1};
    LossRun ours = run_loss(settings(KD_DISTILL_KL, 3.0f, 0.7f), s, t, y, B, C);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    std::vector<float> grad(s.size(), 0.0f);
    kd_tensor *st = kd_tape_view(&tape, B, C, s.data(), grad.data());
    kd_tensor *loss = kd_op_kd_loss(&tape, st, kd_tape_view(&tape, B, C, t.data(), nullptr), y.data(), 3.0f, 0.7f);
    REQUIRE(tape.last->op == KD_OP_KD_LOSS);
    kd_tape_backward(&tape, loss);
    REQUIRE(ours.loss == loss->data[0]);
    REQUIRE(ours.grad == grad);
    kd_tape_free(&tape);

    kd_tape_init(&tape, 0);
    kd_distill_loss dl = settings(KD_DISTILL_KL, 3.0f, 0.7f);
    st = kd_tape_view(&tape, B, C, s.data(), grad.data());
    kd_op_distill_loss(&tape, st, kd_tape_view(&tape, B, C, t.data(), nullptr), y.data(), &dl);
    REQUIRE(tape.last->op == KD_OP_KD_LOSS);
    kd_tape_free(&tape);
}

TEST_CASE("the op asserts that dkd has at least 3 classes", "[distill-loss]")
{
    // A programmer error (the config refuses it first, test_config.cpp): the child aborts.
    std::fflush(nullptr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::signal(SIGABRT, SIG_DFL); // Catch's handler would report a failure from the child
        if (!std::freopen("/dev/null", "w", stderr)) _exit(2);
        std::vector<float> s = {1, 2}, t = {2, 1};
        std::vector<int32_t> y = {0};
        run_loss(settings(KD_DISTILL_DKD, 1.0f, 0.5f), s, t, y, 1, 2);
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGABRT);
}
