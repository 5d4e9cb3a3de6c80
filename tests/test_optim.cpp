// Optimisers against torch.optim (three steps of AdamW and Nesterov SGD on fixed
// gradients, tests/data/reference.h5), schedules and clipping worked by hand.
#include "support.h"

extern "C" {
#include "nn/optim.h"
}

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

namespace {

const std::string kFile = std::string(KD_TEST_DATA_DIR) + "/reference.h5";

void replay(kd_optim_config config, const std::string &name)
{
    std::vector<size_t> dims;
    std::vector<double> p0 = kdtest::h5_read_doubles(kFile, "optim/p0", dims);
    std::vector<double> grads = kdtest::h5_read_doubles(kFile, "optim/grads", dims);
    std::vector<double> expected = kdtest::h5_read_doubles(kFile, "optim/" + name, dims);
    const size_t n = p0.size();
    REQUIRE(grads.size() == 3 * n);
    std::vector<float> p(p0.begin(), p0.end()), g(n);
    kd_optim opt;
    kd_error err;
    REQUIRE(kd_optim_create(&opt, &config, n, &err) == KD_OK);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++) g[i] = (float)grads[step * n + i];
        kd_optim_step(&opt, p.data(), g.data());
        double worst = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            worst = std::max(worst, std::fabs(p[i] - expected[step * n + i]));
            scale = std::max(scale, std::fabs(expected[step * n + i]));
        }
        INFO(name << " step " << step + 1 << ": max |ours - torch| " << worst);
        REQUIRE(worst <= 1e-6 * scale);
    }
    kd_optim_free(&opt);
}

kd_optim_config base(kd_optim_kind kind, double lr)
{
    kd_optim_config c;
    std::memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = lr;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.gamma = 0.1;
    return c;
}

} // namespace

TEST_CASE("AdamW matches torch.optim.AdamW step for step", "[optim]")
{
    kd_optim_config c = base(KD_OPTIM_ADAMW, 0.01);
    c.weight_decay = 0.1;
    replay(c, "adamw");
}

TEST_CASE("SGD with Nesterov momentum and weight decay matches torch.optim.SGD", "[optim]")
{
    kd_optim_config c = base(KD_OPTIM_SGD, 0.1);
    c.momentum = 0.9;
    c.nesterov = 1;
    c.weight_decay = 0.01;
    replay(c, "sgd");
}

TEST_CASE("SGD with plain (heavy-ball) momentum follows torch's update, computed here in double", "[optim]")
{
    // torch.optim.SGD, nesterov=False: d = g + wd p; buf = d on the first step, else
    // mu buf + d; p -= lr buf. Three steps on the fixture's gradients.
    std::vector<size_t> dims;
    std::vector<double> p0 = kdtest::h5_read_doubles(kFile, "optim/p0", dims);
    std::vector<double> grads = kdtest::h5_read_doubles(kFile, "optim/grads", dims);
    const size_t n = p0.size();
    const double lr = 0.1, mu = 0.9, wd = 0.01;
    kd_optim_config c = base(KD_OPTIM_SGD, lr);
    c.momentum = mu;
    c.weight_decay = wd;
    std::vector<float> p(p0.begin(), p0.end()), g(n);
    std::vector<double> want(p0), buf(n, 0.0);
    kd_optim opt;
    kd_error err;
    REQUIRE(kd_optim_create(&opt, &c, n, &err) == KD_OK);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++) {
            g[i] = (float)grads[step * n + i];
            double d = (double)g[i] + wd * want[i];
            buf[i] = step == 0 ? d : mu * buf[i] + d;
            want[i] -= lr * buf[i];
        }
        kd_optim_step(&opt, p.data(), g.data());
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = std::max(worst, std::fabs(p[i] - want[i]));
        INFO("step " << step + 1 << ": max |ours - double| " << worst);
        REQUIRE(worst <= 1e-6);
    }
    kd_optim_free(&opt);
}

TEST_CASE("learning-rate schedules follow their formulas", "[optim]")
{
    kd_optim_config c = base(KD_OPTIM_SGD, 0.1);
    REQUIRE(kd_optim_lr(&c, 0) == 0.1);
    REQUIRE(kd_optim_lr(&c, 12345) == 0.1);

    c.schedule = KD_SCHEDULE_STEP;
    c.step_size = 10;
    REQUIRE(kd_optim_lr(&c, 9) == Approx(0.1));
    REQUIRE(kd_optim_lr(&c, 10) == Approx(0.01));
    REQUIRE(kd_optim_lr(&c, 25) == Approx(0.001));

    c.schedule = KD_SCHEDULE_COSINE;
    c.total_steps = 100;
    c.min_lr = 0.0;
    REQUIRE(kd_optim_lr(&c, 0) == Approx(0.1));
    REQUIRE(kd_optim_lr(&c, 50) == Approx(0.05));                                 // cos(pi/2) = 0
    REQUIRE(kd_optim_lr(&c, 25) == Approx(0.05 * (1 + std::cos(M_PI / 4))));
    REQUIRE(kd_optim_lr(&c, 100) == Approx(0.0).margin(1e-15));

    c.warmup_steps = 10; // linear warm-up, then the cosine over the remaining 90 steps
    REQUIRE(kd_optim_lr(&c, 0) == Approx(0.01));
    REQUIRE(kd_optim_lr(&c, 4) == Approx(0.05));
    REQUIRE(kd_optim_lr(&c, 10) == Approx(0.1));
    REQUIRE(kd_optim_lr(&c, 55) == Approx(0.05));
}

TEST_CASE("gradient clipping rescales to the global norm and reports the norm before", "[optim]")
{
    kd_optim_config c = base(KD_OPTIM_SGD, 1.0);
    c.clip_norm = 1.0;
    std::vector<float> p = {0, 0}, g = {3, 4}; // norm 5
    kd_optim opt;
    kd_error err;
    REQUIRE(kd_optim_create(&opt, &c, 2, &err) == KD_OK);
    kd_optim_step(&opt, p.data(), g.data());
    REQUIRE(opt.last_grad_norm == Approx(5.0));
    REQUIRE(p[0] == Approx(-0.6).epsilon(1e-5)); // plain SGD, lr 1, gradient scaled to norm 1
    REQUIRE(p[1] == Approx(-0.8).epsilon(1e-5));
    kd_optim_free(&opt);
}
