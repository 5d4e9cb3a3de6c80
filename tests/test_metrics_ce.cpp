// The calibration metrics from probabilities (calib/reliability.h): every metric
// against a numpy reference, the bootstrap's exactness and behaviour, the paired
// bootstrap, the noise floors, thread-count independence and bad input.
#include "support.h"

extern "C" {
#include "calib/ce_estimators.h"
#include "calib/reliability.h"
#include "core/threads.h"
}

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>

namespace {

const std::string kFile = std::string(KD_TEST_DATA_DIR) + "/calib-metrics.h5";

struct Probs {
    std::vector<double> p; // (n, C)
    std::vector<int32_t> y;
    int n, C;
};

// Probabilities softmax(z) with z ~ N(0, scale^2), and labels drawn from softmax(z / label_T):
// label_T = 1 is a perfectly calibrated model, label_T > 1 an over-confident one.
Probs synthetic(int n, int C, double scale, double label_T, uint64_t seed)
{
    Probs s{std::vector<double>((size_t)n * C), std::vector<int32_t>(n), n, C};
    std::mt19937_64 gen(seed);
    std::normal_distribution<double> z(0, scale);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<double> zi(C), q(C);
    for (int i = 0; i < n; i++) {
        double sum = 0, sum_q = 0, top = -1e300;
        for (int c = 0; c < C; c++) top = std::max(top, zi[c] = z(gen));
        for (int c = 0; c < C; c++) sum += (s.p[(size_t)i * C + c] = std::exp(zi[c] - top));
        for (int c = 0; c < C; c++) s.p[(size_t)i * C + c] /= sum;
        for (int c = 0; c < C; c++) sum_q += (q[c] = std::exp((zi[c] - top) / label_T));
        double r = u(gen) * sum_q;
        int k = 0;
        while (k < C - 1 && (r -= q[k]) > 0) k++;
        s.y[i] = k;
    }
    return s;
}

// New labels for the same probabilities, drawn from them.
void redraw_labels(Probs &s, uint64_t seed)
{
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < s.n; i++) {
        double r = u(gen);
        int k = 0;
        while (k < s.C - 1 && (r -= s.p[(size_t)i * s.C + k]) > 0) k++;
        s.y[i] = k;
    }
}

kd_reliability_options options(int bins, int bootstrap, int noise_draws, uint64_t seed = 1)
{
    return kd_reliability_options{bins, bootstrap, noise_draws, seed};
}

std::unique_ptr<kd_reliability> measure(const Probs &s, const kd_reliability_options &o)
{
    auto r = std::make_unique<kd_reliability>();
    kd_error err;
    int rc = kd_reliability_from_probs(s.p.data(), s.y.data(), s.n, s.C, &o, r.get(), &err);
    INFO(err.message);
    REQUIRE(rc == KD_OK);
    return r;
}

const kd_metric kCalibrationErrors[] = {KD_METRIC_ECE, KD_METRIC_MCE, KD_METRIC_ECE_EQUAL_MASS,
                                        KD_METRIC_CLASSWISE_ECE, KD_METRIC_RMS_CE, KD_METRIC_DEBIASED_CE,
                                        KD_METRIC_KS_CE};

} // namespace

TEST_CASE("every metric from probabilities equals the numpy reference to 1e-12", "[metrics_ce]")
{
    for (const char *name : {"mixed", "quantised", "tiny", "binary"}) {
        std::vector<size_t> dims;
        std::string g = std::string("/") + name + "/";
        Probs s;
        s.p = kdtest::h5_read_doubles(kFile, g + "probs", dims);
        s.n = (int)dims[0];
        s.C = (int)dims[1];
        s.y = kdtest::h5_read_ints(kFile, g + "labels");
        int bins = kdtest::h5_read_ints(kFile, g + "bins")[0];
        auto r = measure(s, options(bins, 0, 0));
        for (int m = 0; m < KD_METRIC_COUNT; m++) {
            std::vector<size_t> d;
            double expected = kdtest::h5_read_doubles(kFile, g + "expected/" + kd_metric_name((kd_metric)m), d)[0];
            INFO(name << ": " << kd_metric_name((kd_metric)m) << " " << r->value[m] << " against " << expected);
            REQUIRE(std::fabs(r->value[m] - expected) <= 1e-12);
        }
        // the standalone equal-mass ECE of (confidence, correct) pairs agrees
        std::vector<double> conf(s.n);
        std::vector<unsigned char> right(s.n);
        for (int i = 0; i < s.n; i++) {
            const double *p = &s.p[(size_t)i * s.C];
            int top = (int)(std::max_element(p, p + s.C) - p);
            conf[i] = p[top];
            right[i] = top == s.y[i];
        }
        std::vector<size_t> d;
        double expected = kdtest::h5_read_doubles(kFile, g + "expected/ece_equal_mass", d)[0];
        REQUIRE(std::fabs(kd_ece_equal_mass(conf.data(), right.data(), s.n, bins) - expected) <= 1e-12);
    }
}

TEST_CASE("metrics of a resample given as counts equal those of the resample written out row by row", "[metrics_ce]")
{
    // Counts with zeros, ones and large multiplicities, so that copies straddle the
    // equal-mass bin edges; ties in confidence from repeated rows.
    Probs s = synthetic(97, 5, 2.0, 1.5, 3);
    for (int i = 20; i < 30; i++) std::copy_n(&s.p[0], 5, &s.p[(size_t)i * 5]);
    std::vector<int32_t> w(s.n);
    std::mt19937_64 gen(5);
    for (int j = 0; j < s.n; j++) w[std::uniform_int_distribution<int>(0, s.n / 3)(gen)]++; // n draws, lopsided
    Probs e{{}, {}, 0, s.C};
    for (int i = 0; i < s.n; i++)
        for (int k = 0; k < w[i]; k++) {
            e.p.insert(e.p.end(), &s.p[(size_t)i * s.C], &s.p[(size_t)(i + 1) * s.C]);
            e.y.push_back(s.y[i]);
            e.n++;
        }
    REQUIRE(e.n == s.n);
    const int bins = 10;
    auto expanded = measure(e, options(bins, 0, 0));
    kd_ce_sample sample;
    kd_ce_outcome outcome;
    kd_ce_scratch scratch;
    REQUIRE(kd_ce_sample_prepare(&sample, s.p.data(), s.n, s.C, bins) == 0);
    REQUIRE(kd_ce_outcome_prepare(&outcome, &sample, s.y.data(), nullptr) == 0);
    REQUIRE(kd_ce_scratch_init(&scratch, &sample) == 0);
    std::vector<double> mass(s.C), v(KD_METRIC_COUNT);
    const int32_t *rows[1] = {w.data()};
    kd_ce_low_mass(&sample, rows, 1, mass.data());
    kd_ce_evaluate(&sample, &outcome, w.data(), mass.data(), &scratch, v.data());
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        INFO(kd_metric_name((kd_metric)m));
        REQUIRE(std::fabs(v[m] - expanded->value[m]) <= 1e-12);
    }
    kd_ce_scratch_free(&scratch);
    kd_ce_outcome_free(&outcome);
    kd_ce_sample_free(&sample);
}

TEST_CASE("bootstrap intervals contain the point estimate and shrink with the sample size", "[metrics_ce]")
{
    // An over-confident model (labels from softmax(z / 2)): every calibration error
    // is far from zero, where the percentile interval is about centred on it.
    auto small = measure(synthetic(2000, 5, 2.5, 2.0, 11), options(15, 300, 0));
    auto large = measure(synthetic(8000, 5, 2.5, 2.0, 12), options(15, 300, 0));
    REQUIRE(small->bootstrap == 300);
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        INFO(kd_metric_name((kd_metric)m) << ": " << small->low[m] << " " << small->value[m] << " " << small->high[m]
                                          << ", at 4x the samples " << large->low[m] << " " << large->high[m]);
        REQUIRE(small->low[m] <= small->value[m]);
        REQUIRE(small->value[m] <= small->high[m]);
        REQUIRE(large->low[m] <= large->value[m]);
        REQUIRE(large->value[m] <= large->high[m]);
        // the width goes as 1/sqrt(n): half at 4x the samples, within resampling noise;
        // not for MCE, the worst bin, whose width follows the sparsest bin's count
        if (m == KD_METRIC_MCE) continue;
        double ratio = (large->high[m] - large->low[m]) / (small->high[m] - small->low[m]);
        REQUIRE(ratio > 0.3);
        REQUIRE(ratio < 0.75);
    }
}

TEST_CASE("the bootstrap and the noise floor do not depend on the thread count", "[metrics_ce]")
{
    Probs s = synthetic(3000, 7, 2.0, 1.3, 21);
    int before = kd_threads_count();
    kd_threads_set(1);
    auto one = measure(s, options(15, 64, 40, 9));
    kd_threads_set(2);
    auto two = measure(s, options(15, 64, 40, 9));
    kd_threads_set(before);
    REQUIRE(std::memcmp(one.get(), two.get(), sizeof(kd_reliability)) == 0);
    REQUIRE(std::isfinite(one->low[KD_METRIC_ECE]));
    REQUIRE(std::isfinite(one->floor_mean[KD_METRIC_ECE]));
    // and the seed matters
    auto other = measure(s, options(15, 64, 40, 10));
    REQUIRE(other->low[KD_METRIC_ECE] != one->low[KD_METRIC_ECE]);
    REQUIRE(other->floor_mean[KD_METRIC_ECE] != one->floor_mean[KD_METRIC_ECE]);
}

TEST_CASE("the paired difference of a matrix with itself is exactly zero with a zero-width interval", "[metrics_ce]")
{
    Probs s = synthetic(1500, 4, 2.0, 1.5, 31);
    kd_reliability_options o = options(15, 100, 0);
    kd_paired_difference d;
    kd_error err;
    REQUIRE(kd_reliability_paired(s.p.data(), s.p.data(), s.y.data(), s.n, s.C, &o, &d, &err) == KD_OK);
    REQUIRE(d.bootstrap == 100);
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        INFO(kd_metric_name((kd_metric)m));
        REQUIRE(d.value[m] == 0.0);
        REQUIRE(d.low[m] == 0.0);
        REQUIRE(d.high[m] == 0.0);
    }
}

TEST_CASE("a paired difference is B minus A and its interval is narrower than the unpaired one", "[metrics_ce]")
{
    // B: the same model at temperature 1.5 (a better calibration of over-confident logits).
    Probs a = synthetic(3000, 5, 2.5, 1.5, 41), b = a;
    for (int i = 0; i < a.n; i++) {
        double *p = &b.p[(size_t)i * b.C], sum = 0;
        for (int c = 0; c < b.C; c++) sum += (p[c] = std::pow(p[c], 1 / 1.5));
        for (int c = 0; c < b.C; c++) p[c] /= sum;
    }
    kd_reliability_options o = options(15, 200, 0);
    kd_paired_difference d;
    kd_error err;
    REQUIRE(kd_reliability_paired(a.p.data(), b.p.data(), a.y.data(), a.n, a.C, &o, &d, &err) == KD_OK);
    auto ra = measure(a, o), rb = measure(b, o);
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        INFO(kd_metric_name((kd_metric)m) << ": " << d.low[m] << " " << d.value[m] << " " << d.high[m]);
        REQUIRE(d.value[m] == rb->value[m] - ra->value[m]);
        REQUIRE(d.low[m] <= d.high[m]);
    }
    REQUIRE(d.value[KD_METRIC_ACCURACY] == 0.0); // a temperature keeps the arg max
    REQUIRE(d.high[KD_METRIC_ACCURACY] == 0.0);
    REQUIRE(d.high[KD_METRIC_ECE] < 0.0); // B is better, surely
    REQUIRE(d.high[KD_METRIC_NLL] < 0.0);
    // the shared resamples cancel the variation common to both
    double paired = d.high[KD_METRIC_NLL] - d.low[KD_METRIC_NLL];
    double unpaired = std::hypot(ra->high[KD_METRIC_NLL] - ra->low[KD_METRIC_NLL], rb->high[KD_METRIC_NLL] - rb->low[KD_METRIC_NLL]);
    REQUIRE(paired < 0.5 * unpaired);
}

TEST_CASE("the noise floor matches the calibration errors of data drawn from the model's own probabilities",
          "[metrics_ce]")
{
    // The floor's draws and the observed errors of 40 label sets drawn from p are
    // independent samples of one distribution: their means differ by less than 4
    // standard errors (sd sqrt(1/40 + 1/400); a chance failure 6e-5 for a fixed seed).
    Probs s = synthetic(2000, 5, 2.0, 1.0, 51);
    auto r = measure(s, options(15, 0, 400, 3));
    REQUIRE(r->noise_draws == 400);
    const int sets = 40;
    std::vector<std::vector<double>> observed(KD_METRIC_COUNT);
    for (int k = 0; k < sets; k++) {
        redraw_labels(s, 100 + k);
        auto o = measure(s, options(15, 0, 0));
        for (kd_metric m : kCalibrationErrors) observed[m].push_back(o->value[m]);
    }
    for (kd_metric m : kCalibrationErrors) {
        double mean = 0, var = 0;
        for (double v : observed[m]) mean += v / sets;
        for (double v : observed[m]) var += (v - mean) * (v - mean) / (sets - 1);
        INFO(kd_metric_name(m) << ": observed mean " << mean << " sd " << std::sqrt(var) << ", floor " << r->floor_mean[m]
                               << " p95 " << r->floor_high[m]);
        REQUIRE(std::fabs(mean - r->floor_mean[m]) < 4 * std::sqrt(var * (1.0 / sets + 1.0 / 400)) + 1e-12);
        REQUIRE(r->floor_high[m] >= r->floor_mean[m]);
    }
    REQUIRE(r->floor_mean[KD_METRIC_ECE] > 0.005); // not a trivial zero at this size
    REQUIRE(std::isnan(r->floor_mean[KD_METRIC_ACCURACY]));
    REQUIRE(std::isnan(r->floor_mean[KD_METRIC_NLL]));
}

TEST_CASE("the noise floor shrinks like one over the square root of the sample size", "[metrics_ce]")
{
    // 16 times the samples: the floors of the binned errors and of KS fall 4 times
    // (each bin's mean error is an average of n_b terms), within 20 %.
    auto small = measure(synthetic(1000, 5, 2.0, 1.0, 61), options(15, 0, 200, 4));
    auto large = measure(synthetic(16000, 5, 2.0, 1.0, 62), options(15, 0, 200, 4));
    for (kd_metric m : {KD_METRIC_ECE, KD_METRIC_ECE_EQUAL_MASS, KD_METRIC_CLASSWISE_ECE, KD_METRIC_RMS_CE, KD_METRIC_KS_CE}) {
        double ratio = small->floor_mean[m] / large->floor_mean[m];
        INFO(kd_metric_name(m) << ": " << small->floor_mean[m] << " / " << large->floor_mean[m] << " = " << ratio);
        REQUIRE(ratio > 3.2);
        REQUIRE(ratio < 4.8);
    }
}

TEST_CASE("the debiased calibration error is about zero for calibrated data where the plug-in errors are not",
          "[metrics_ce]")
{
    // Over 40 label sets drawn from the probabilities: the plug-in RMS error is its
    // noise (about sqrt(M var / n)); the debiased estimate removes that bias, and what
    // is left (the positive part of a zero-mean sum) is much smaller.
    Probs s = synthetic(3000, 5, 2.0, 1.0, 71);
    double debiased = 0, rms = 0, ece = 0;
    for (int k = 0; k < 40; k++) {
        redraw_labels(s, 200 + k);
        auto r = measure(s, options(15, 0, 0));
        debiased += r->value[KD_METRIC_DEBIASED_CE] * r->value[KD_METRIC_DEBIASED_CE] / 40;
        rms += r->value[KD_METRIC_RMS_CE] * r->value[KD_METRIC_RMS_CE] / 40;
        ece += r->value[KD_METRIC_ECE_EQUAL_MASS] / 40;
    }
    INFO("mean squared debiased " << debiased << ", mean squared RMS " << rms << ", mean ECE " << ece);
    REQUIRE(ece > 0.01);
    REQUIRE(debiased < 0.25 * rms);
    // and on a miscalibrated model it stays near the plug-in value (the bias is small next to the error)
    auto r = measure(synthetic(3000, 5, 2.0, 2.0, 72), options(15, 0, 0));
    REQUIRE(r->value[KD_METRIC_DEBIASED_CE] == Approx(r->value[KD_METRIC_RMS_CE]).epsilon(0.1));
}

TEST_CASE("the logits entry point is softmax in double then the probabilities path", "[metrics_ce]")
{
    const int n = 500, C = 6;
    const double T = 1.7;
    std::vector<float> z = kdtest::random_normal((size_t)n * C, 2.0f, 81);
    Probs s{std::vector<double>((size_t)n * C), std::vector<int32_t>(n), n, C};
    for (int i = 0; i < n; i++) {
        double top = *std::max_element(&z[(size_t)i * C], &z[(size_t)(i + 1) * C]), sum = 0;
        for (int c = 0; c < C; c++) sum += (s.p[(size_t)i * C + c] = std::exp((z[(size_t)i * C + c] - top) / T));
        for (int c = 0; c < C; c++) s.p[(size_t)i * C + c] /= sum;
        s.y[i] = i % C;
    }
    kd_reliability_options o = options(15, 50, 20);
    auto from_probs = measure(s, o);
    auto from_logits = std::make_unique<kd_reliability>();
    kd_error err;
    REQUIRE(kd_reliability_compute(z.data(), s.y.data(), n, C, T, &o, from_logits.get(), &err) == KD_OK);
    REQUIRE(from_logits->temperature == T);
    REQUIRE(std::isnan(from_probs->temperature));
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        INFO(kd_metric_name((kd_metric)m));
        REQUIRE(std::fabs(from_logits->value[m] - from_probs->value[m]) <= 1e-12);
        REQUIRE(std::fabs(from_logits->low[m] - from_probs->low[m]) <= 1e-12);
    }
}

TEST_CASE("bad probabilities, labels and options are errors naming the row or option", "[metrics_ce]")
{
    std::vector<double> p = {0.5, 0.5, 0.9, 0.1};
    std::vector<int32_t> y = {0, 1};
    kd_reliability_options o = options(15, 0, 0);
    auto r = std::make_unique<kd_reliability>();
    kd_error err;
    auto fails = [&](int code, const std::string &text) {
        int rc = kd_reliability_from_probs(p.data(), y.data(), 2, 2, &o, r.get(), &err);
        INFO(err.message);
        REQUIRE(rc == code);
        REQUIRE(std::string(err.message).find(text) != std::string::npos);
    };
    REQUIRE(kd_reliability_from_probs(p.data(), y.data(), 2, 2, &o, r.get(), &err) == KD_OK);
    REQUIRE(kd_reliability_from_probs(p.data(), y.data(), 0, 2, &o, r.get(), &err) == KD_ERR_DATA);
    p[3] = 0.2;
    fails(KD_ERR_DATA, "row 1: expected probabilities summing to 1 (within 1e-6), found 1.1");
    p[3] = NAN;
    fails(KD_ERR_DATA, "row 1, class 1: expected a probability in [0, 1], found nan");
    p[2] = 1.1, p[3] = -0.1;
    fails(KD_ERR_DATA, "row 1, class 0: expected a probability in [0, 1], found 1.1");
    p[2] = 0.9, p[3] = 0.1;
    y[1] = 2;
    fails(KD_ERR_DATA, "row 1: expected a label in 0..1, found 2");
    y[1] = -1;
    fails(KD_ERR_DATA, "row 1: expected a label in 0..1, found -1");
    y[1] = 1;
    o.bins = 0;
    fails(KD_ERR_CONFIG, "--bins: expected 1 to 1000, found 0");
    o.bins = 15, o.bootstrap = -1;
    fails(KD_ERR_CONFIG, "--bootstrap");
    o.bootstrap = 0, o.noise_draws = -2;
    fails(KD_ERR_CONFIG, "--noise-draws");
    o.noise_draws = 0;
    kd_paired_difference d;
    std::vector<double> bad = {0.5, 0.5, 0.9, 0.2};
    REQUIRE(kd_reliability_paired(p.data(), bad.data(), y.data(), 2, 2, &o, &d, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message).find("B: row 1") != std::string::npos);
}
