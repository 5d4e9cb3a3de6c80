// Calibration: the temperature fit against brute force, its edge cases, and the
// ECE family on constructed sets whose values are worked out by hand.
#include "support.h"

extern "C" {
#include "calib/reliability.h"
#include "calib/temperature.h"
}

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

namespace {

// n samples of C classes with logits z ~ N(0, scale^2) and labels drawn from
// softmax(z / true_T): a model whose best temperature is true_T.
struct Sample {
    std::vector<float> logits;
    std::vector<int32_t> labels;
};

Sample draw(int n, int C, double scale, double true_T, uint64_t seed)
{
    Sample s;
    s.logits = kdtest::random_normal((size_t)n * C, (float)scale, seed);
    s.labels = kdtest::labels_from_softmax(s.logits, n, C, true_T, seed + 1);
    return s;
}

// Options: bins, bootstrap resamples, seed; no noise draws.
const kd_reliability_options *opts(int bins, int bootstrap, uint64_t seed)
{
    static thread_local kd_reliability_options o;
    o = kd_reliability_options{bins, bootstrap, 0, seed};
    return &o;
}

double nll_at_T(const Sample &s, int C, double T)
{
    return kd_temperature_nll(s.logits.data(), s.labels.data(), (int64_t)s.labels.size(), C, 1.0 / T, nullptr, nullptr);
}

} // namespace

TEST_CASE("the fitted temperature agrees with a brute-force grid search and is a minimum", "[calibration]")
{
    for (double true_T : {0.5, 1.0, 2.5}) { // under-confident, calibrated, over-confident models
        const int n = 3000, C = 6;
        Sample s = draw(n, C, 3.0, true_T, 11);
        kd_temperature_fit fit;
        kd_error err;
        REQUIRE(kd_temperature_solve(s.logits.data(), s.labels.data(), n, C, &fit, &err) == KD_OK);
        // Grid: 0.01 steps over [0.1, 10], then 1e-5 steps around the best point.
        double best = 0.1, best_nll = INFINITY;
        for (double T = 0.1; T <= 10; T += 0.01)
            if (double v = nll_at_T(s, C, T); v < best_nll) best_nll = v, best = T;
        double lo = best - 0.01, hi = best + 0.01;
        for (double T = lo; T <= hi; T += 1e-5)
            if (double v = nll_at_T(s, C, T); v < best_nll) best_nll = v, best = T;
        INFO("true T " << true_T << ": fitted " << fit.temperature << " in " << fit.iterations << " steps, grid " << best);
        REQUIRE(std::fabs(fit.temperature - best) <= 1e-4);
        REQUIRE(fit.iterations <= 20);
        REQUIRE(std::fabs(fit.gradient) <= fit.tolerance);
        double at = nll_at_T(s, C, fit.temperature);
        REQUIRE(fit.nll_after == Approx(at).epsilon(1e-12));
        for (double delta : {1e-3, 1e-2}) { // NLL at T +- delta is not lower
            REQUIRE(nll_at_T(s, C, fit.temperature + delta) >= at);
            REQUIRE(nll_at_T(s, C, fit.temperature - delta) >= at);
        }
        REQUIRE(fit.nll_after <= fit.nll_before);
        REQUIRE(std::fabs(fit.temperature - true_T) < 0.15 * true_T); // and it finds the model's own T
    }
}

TEST_CASE("a fitted T above 1 reads as overconfident: mean confidence above accuracy, and below 1 the reverse",
          "[calibration]")
{
    // Labels drawn from softmax(z / 2.5) make softmax(z) too sharp for them, from
    // softmax(z / 0.5) too flat; confidence and accuracy are measured here in double.
    for (double true_T : {2.5, 0.5}) {
        const int n = 4000, C = 6;
        Sample s = draw(n, C, 3.0, true_T, 5);
        double confidence = 0, correct = 0;
        for (int i = 0; i < n; i++) {
            const float *z = &s.logits[(size_t)i * C];
            int top = (int)(std::max_element(z, z + C) - z);
            double sum = 0;
            for (int c = 0; c < C; c++) sum += std::exp((double)z[c] - z[top]);
            confidence += 1 / sum;
            correct += top == s.labels[i];
        }
        confidence /= n, correct /= n;
        kd_temperature_fit fit;
        kd_error err;
        REQUIRE(kd_temperature_solve(s.logits.data(), s.labels.data(), n, C, &fit, &err) == KD_OK);
        INFO("true T " << true_T << ": fitted " << fit.temperature << ", confidence " << confidence << ", accuracy " << correct);
        if (true_T > 1) {
            REQUIRE(fit.temperature > 1);
            REQUIRE(confidence > correct + 0.05);
            REQUIRE(std::string(kd_temperature_describe(fit.temperature)) == "overconfident");
        } else {
            REQUIRE(fit.temperature < 1);
            REQUIRE(confidence < correct - 0.05);
            REQUIRE(std::string(kd_temperature_describe(fit.temperature)) == "underconfident");
        }
    }
    REQUIRE(std::string(kd_temperature_describe(1.0)) == "calibrated");
    REQUIRE(std::string(kd_temperature_describe(NAN)) == "not fitted");
}

TEST_CASE("separable data stop at the documented bound and say so", "[calibration]")
{
    const int n = 200, C = 3;
    std::vector<float> z(n * C, 0.0f);
    std::vector<int32_t> y(n);
    for (int i = 0; i < n; i++) {
        y[i] = i % C;
        z[i * C + y[i]] = 2.0f; // every sample right, by a margin
    }
    kd_temperature_fit fit;
    kd_error err;
    REQUIRE(kd_temperature_solve(z.data(), y.data(), n, C, &fit, &err) == KD_OK);
    REQUIRE(fit.at_lower_bound);
    REQUIRE(fit.temperature == Approx(1.0 / KD_BETA_MAX));
    REQUIRE(fit.nll_after < fit.nll_before);
}

TEST_CASE("one class or constant logits: any temperature fits and T = 1 is kept", "[calibration]")
{
    std::vector<float> z1 = {0.3f, -2.0f, 5.0f};
    std::vector<int32_t> y1 = {0, 0, 0};
    kd_temperature_fit fit;
    kd_error err;
    REQUIRE(kd_temperature_solve(z1.data(), y1.data(), 3, 1, &fit, &err) == KD_OK);
    REQUIRE(fit.degenerate);
    REQUIRE(fit.temperature == 1.0);
    std::vector<float> z2(12, 1.5f);
    std::vector<int32_t> y2 = {0, 1, 2, 0};
    REQUIRE(kd_temperature_solve(z2.data(), y2.data(), 4, 3, &fit, &err) == KD_OK);
    REQUIRE(fit.degenerate);
    REQUIRE(fit.temperature == 1.0);
}

TEST_CASE("NaN or Inf logits and bad labels are errors", "[calibration]")
{
    std::vector<float> z = {1, 2, NAN, 0};
    std::vector<int32_t> y = {0, 1};
    kd_temperature_fit fit;
    kd_error err;
    REQUIRE(kd_temperature_solve(z.data(), y.data(), 2, 2, &fit, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message) == "temperature fit: expected finite logits, found NaN or Inf");
    z[2] = INFINITY;
    REQUIRE(kd_temperature_solve(z.data(), y.data(), 2, 2, &fit, &err) == KD_ERR_DATA);
    z[2] = 0;
    y[1] = 2;
    REQUIRE(kd_temperature_solve(z.data(), y.data(), 2, 2, &fit, &err) == KD_ERR_DATA);
}

TEST_CASE("ECE of a constructed set equals the value worked out by hand", "[calibration]")
{
    // 5 bins of width 0.2: 0.1 -> bin 1; 0.3, 0.35 -> bin 2; 0.9, 0.95 -> bin 5.
    // ECE = (|1 - 0.1| + |1 - 0.65| + |1 - 1.85|) / 5 = 2.1 / 5 = 0.42.
    std::vector<double> conf = {0.1, 0.3, 0.35, 0.9, 0.95};
    std::vector<unsigned char> right = {1, 0, 1, 1, 0};
    REQUIRE(kd_ece(conf.data(), right.data(), 5, 5) == Approx(0.42).epsilon(1e-12));
    // One bin: |3 - 2.6| / 5.
    REQUIRE(kd_ece(conf.data(), right.data(), 5, 1) == Approx(0.08).epsilon(1e-12));
}

TEST_CASE("bin edges: (m-1)/M < c <= m/M, with 0 in the first bin and 1 in the last", "[calibration]")
{
    REQUIRE(kd_ece_bin(0.0, 15) == 0);
    REQUIRE(kd_ece_bin(1.0, 15) == 14);
    REQUIRE(kd_ece_bin(1e-300, 15) == 0);
    REQUIRE(kd_ece_bin(std::nextafter(1.0, 0.0), 15) == 14);
    REQUIRE(kd_ece_bin(0.2, 5) == 0);  // exactly on an edge: the lower bin
    REQUIRE(kd_ece_bin(std::nextafter(0.2, 1.0), 5) == 1);
    REQUIRE(kd_ece_bin(0.6, 5) == 2);  // 0.6 = 3/5 in double rounds below 3/5? either way <= 3/5 in double
    // Every edge m/M (as a double) lands in bin m (0-based m - 1), for every M up to 100:
    // for some, such as 7/25, c * M rounds above m (7.000000000000001), which a plain
    // ceil(c M) - 1 would put in the bin above.
    for (int bins = 1; bins <= 100; bins++)
        for (int m = 1; m <= bins; m++) {
            double edge = (double)m / bins;
            INFO(m << "/" << bins);
            REQUIRE(kd_ece_bin(edge, bins) == m - 1);
            if (m < bins) REQUIRE(kd_ece_bin(std::nextafter(edge, 2.0), bins) == m);
        }
    // Confidences 0 and 1 counted in the first and last bins of the report.
    std::vector<float> z = {0, 0, 100, -100};   // p = (0.5, 0.5) and (1, 0)
    std::vector<int32_t> y = {0, 0};
    kd_reliability r;
    kd_error err;
    REQUIRE(kd_reliability_compute(z.data(), y.data(), 2, 2, 1.0, opts(15, 0, 0), &r, &err) == KD_OK);
    REQUIRE(r.bins[14].count == 1);
    REQUIRE(r.bins[7].count == 1); // 0.5 = 7.5/15: bin 8
}

TEST_CASE("ECE on equal-mass bins and classwise ECE on constructed sets", "[calibration]")
{
    // Equal mass, 2 bins: {0.2 wrong, 0.4 right} and {0.6 right, 0.8 wrong}:
    // (|1 - 0.6| + |1 - 1.4|) / 4 = 0.2.
    std::vector<double> conf = {0.8, 0.2, 0.6, 0.4};
    std::vector<unsigned char> right = {0, 0, 1, 1};
    REQUIRE(kd_ece_equal_mass(conf.data(), right.data(), 4, 2) == Approx(0.2).epsilon(1e-12));
    // Classwise: p = (0.75, 0.25) with y = 0 and p = (0.5, 0.5) with y = 1, 2 bins.
    // class 0: 0.5 -> bin 1 (y != 0): |0 - 0.5|; 0.75 -> bin 2 (y = 0): |1 - 0.75| -> 0.75 / 2
    // class 1: 0.25 and 0.5 -> bin 1, one y = 1: |1 - 0.75| -> 0.25 / 2; mean 0.25.
    std::vector<float> z = {(float)std::log(3.0), 0, 0, 0};
    std::vector<int32_t> y = {0, 1};
    kd_reliability r;
    kd_error err;
    REQUIRE(kd_reliability_compute(z.data(), y.data(), 2, 2, 1.0, opts(2, 0, 0), &r, &err) == KD_OK);
    REQUIRE(r.value[KD_METRIC_CLASSWISE_ECE] == Approx(0.25).epsilon(1e-6));
    REQUIRE(r.value[KD_METRIC_ACCURACY] == 0.5); // a tie predicts the first class
    REQUIRE(r.value[KD_METRIC_NLL] == Approx(-(std::log(0.75) + std::log(0.5)) / 2).epsilon(1e-6));
    REQUIRE(r.value[KD_METRIC_BRIER] == Approx((0.0625 * 2 + 0.5) / 2).epsilon(1e-6)); // (0.25^2 + 0.25^2 + 0.5^2 + 0.5^2) / 2
}

TEST_CASE("temperature scaling never changes accuracy, and T = 1 is the identity", "[calibration]")
{
    const int n = 500, C = 4;
    Sample s = draw(n, C, 2.0, 1.5, 21);
    kd_reliability a, b, c;
    kd_error err;
    REQUIRE(kd_reliability_compute(s.logits.data(), s.labels.data(), n, C, 1.0, opts(15, 0, 0), &a, &err) == KD_OK);
    REQUIRE(kd_reliability_compute(s.logits.data(), s.labels.data(), n, C, 0.3, opts(15, 0, 0), &b, &err) == KD_OK);
    REQUIRE(kd_reliability_compute(s.logits.data(), s.labels.data(), n, C, 3.0, opts(15, 0, 0), &c, &err) == KD_OK);
    REQUIRE(a.value[KD_METRIC_ACCURACY] == b.value[KD_METRIC_ACCURACY]);
    REQUIRE(a.value[KD_METRIC_ACCURACY] == c.value[KD_METRIC_ACCURACY]);
    REQUIRE(a.value[KD_METRIC_NLL] == Approx(nll_at_T(s, C, 1.0)).epsilon(1e-12)); // T = 1: plain softmax NLL
}

TEST_CASE("every metric is taken at the temperature given: T = 2.5 against softmax(z / 2.5) in double", "[calibration]")
{
    // 600 samples, 3 classes, 10 bins (600 / 10 = 60 a bin for the equal-mass ECE).
    const int n = 600, C = 3, M = 10;
    const double T = 2.5;
    Sample s = draw(n, C, 3.0, 1.0, 41);
    std::vector<double> conf(n), p((size_t)n * C);
    std::vector<int> hit(n);
    double nll = 0, brier = 0, acc = 0;
    for (int i = 0; i < n; i++) {
        double top = -1e300, sum = 0;
        int arg = 0;
        for (int c = 0; c < C; c++)
            if (s.logits[i * C + c] > top) top = s.logits[i * C + c], arg = c;
        for (int c = 0; c < C; c++) sum += (p[i * C + c] = std::exp((s.logits[i * C + c] - top) / T));
        for (int c = 0; c < C; c++) p[i * C + c] /= sum;
        conf[i] = p[i * C + arg];
        hit[i] = arg == s.labels[i];
        acc += hit[i];
        nll -= std::log(p[i * C + s.labels[i]]);
        for (int c = 0; c < C; c++) brier += std::pow(p[i * C + c] - (c == s.labels[i]), 2);
    }
    auto bin_of = [&](double c) { return std::min(M - 1, std::max(0, (int)std::ceil(c * M) - 1)); };
    auto ece_of = [&](const std::vector<double> &c, const std::vector<int> &y) {
        std::vector<double> gap(M, 0.0);
        for (size_t i = 0; i < c.size(); i++) gap[bin_of(c[i])] += y[i] - c[i];
        double e = 0;
        for (double g : gap) e += std::fabs(g);
        return e / (double)c.size();
    };
    double ece = ece_of(conf, hit);
    std::vector<int> order(n);
    for (int i = 0; i < n; i++) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return conf[a] < conf[b]; });
    double equal_mass = 0;
    for (int b = 0; b < M; b++) {
        double g = 0;
        for (int k = b * (n / M); k < (b + 1) * (n / M); k++) g += hit[order[k]] - conf[order[k]];
        equal_mass += std::fabs(g) / n;
    }
    double classwise = 0;
    for (int k = 0; k < C; k++) {
        std::vector<double> pk(n);
        std::vector<int> yk(n);
        for (int i = 0; i < n; i++) pk[i] = p[i * C + k], yk[i] = s.labels[i] == k;
        classwise += ece_of(pk, yk) / C;
    }
    kd_reliability r;
    kd_error err;
    REQUIRE(kd_reliability_compute(s.logits.data(), s.labels.data(), n, C, T, opts(M, 0, 0), &r, &err) == KD_OK);
    REQUIRE(r.value[KD_METRIC_ACCURACY] == Approx(acc / n).epsilon(1e-12));
    REQUIRE(r.value[KD_METRIC_NLL] == Approx(nll / n).epsilon(1e-9));
    REQUIRE(r.value[KD_METRIC_BRIER] == Approx(brier / n).epsilon(1e-9));
    REQUIRE(r.value[KD_METRIC_ECE] == Approx(ece).epsilon(1e-9));
    REQUIRE(r.value[KD_METRIC_ECE_EQUAL_MASS] == Approx(equal_mass).epsilon(1e-9));
    REQUIRE(r.value[KD_METRIC_CLASSWISE_ECE] == Approx(classwise).epsilon(1e-9));
    // and the same set at T = 1 is measurably different (the temperature matters here)
    kd_reliability one;
    REQUIRE(kd_reliability_compute(s.logits.data(), s.labels.data(), n, C, 1.0, opts(M, 0, 0), &one, &err) == KD_OK);
    REQUIRE(std::fabs(one.value[KD_METRIC_ECE] - ece) > 0.01);
    REQUIRE(std::fabs(one.value[KD_METRIC_ECE_EQUAL_MASS] - equal_mass) > 0.01);
    REQUIRE(std::fabs(one.value[KD_METRIC_CLASSWISE_ECE] - classwise) > 0.01);
}

TEST_CASE("the bootstrap interval is seeded and brackets the ECE", "[calibration]")
{
    const int n = 2000, C = 5;
    Sample s = draw(n, C, 3.0, 2.0, 31);
    kd_reliability a, b, c;
    kd_error err;
    REQUIRE(kd_reliability_compute(s.logits.data(), s.labels.data(), n, C, 1.0, opts(15, 200, 7), &a, &err) == KD_OK);
    REQUIRE(kd_reliability_compute(s.logits.data(), s.labels.data(), n, C, 1.0, opts(15, 200, 7), &b, &err) == KD_OK);
    REQUIRE(kd_reliability_compute(s.logits.data(), s.labels.data(), n, C, 1.0, opts(15, 200, 8), &c, &err) == KD_OK);
    REQUIRE(a.low[KD_METRIC_ECE] == b.low[KD_METRIC_ECE]);
    REQUIRE(a.high[KD_METRIC_ECE] == b.high[KD_METRIC_ECE]);
    REQUIRE(a.low[KD_METRIC_ECE] != c.low[KD_METRIC_ECE]);
    REQUIRE(a.low[KD_METRIC_ECE] < a.value[KD_METRIC_ECE]);
    REQUIRE(a.value[KD_METRIC_ECE] < a.high[KD_METRIC_ECE]);
}

extern "C" {
#include "workflows/gaussian.h"
}

TEST_CASE("a distance-softmax classifier learns tau = 1/(2 sigma^2) of Gaussian clusters within 5 %",
          "[calibration][gaussian]")
{
    kd_gaussian_options o;
    kd_gaussian_options_default(&o); // 8 clusters in 2 dimensions: tau is identifiable (K > d + 1)
    o.sigma = 1.0;
    o.train_samples = 20000;
    kd_gaussian_result r;
    kd_error err;
    REQUIRE(kd_gaussian_run(&o, &r, &err) == KD_OK);
    INFO("learned tau " << r.tau_learned << " against " << r.tau_true);
    REQUIRE(r.tau_true == 0.5);
    REQUIRE(std::fabs(r.relative_error) < 0.05);
    REQUIRE(r.test_accuracy > r.test_accuracy_bayes - 0.01); // as good as the Bayes classifier
    REQUIRE(r.centre_rmse < 0.1);
}
