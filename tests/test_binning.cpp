// Non-parametric calibrators (histogram binning, isotonic regression, scaling-binning)
// and ensemble temperature scaling: against the sklearn/scipy/numpy reference in
// tests/data/calib-binning.h5 (scripts/make_reference_binning.py), and their properties
// on generated data.
#include "support.h"

extern "C" {
#include "calib/binning.h"
#include "calib/ensemble_temperature.h"
#include "calib/isotonic.h"
#include "core/threads.h"
}

#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

namespace {

const std::string kFile = std::string(KD_TEST_DATA_DIR) + "/calib-binning.h5";

struct Split {
    std::vector<float> logits; // (n, C)
    std::vector<int32_t> labels;
    int64_t n = 0;
};

struct Case {
    std::string name;
    int C = 0;
    Split fit, test;
};

Split read_split(const std::string &group)
{
    std::vector<size_t> dims;
    std::vector<double> z = kdtest::h5_read_doubles(kFile, group + "/logits", dims);
    Split s;
    s.logits.assign(z.begin(), z.end()); // float32 in the file: exact both ways
    s.labels = kdtest::h5_read_ints(kFile, group + "/labels");
    s.n = (int64_t)dims[0];
    return s;
}

Case read_case(const std::string &name)
{
    Case c;
    c.name = name;
    c.fit = read_split(name + "/fit");
    c.test = read_split(name + "/test");
    c.C = (int)(c.fit.logits.size() / (size_t)c.fit.n);
    return c;
}

std::vector<double> read(const std::string &name)
{
    std::vector<size_t> dims;
    return kdtest::h5_read_doubles(kFile, name, dims);
}

double max_abs_difference(const std::vector<double> &a, const std::vector<double> &b)
{
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, std::fabs(a[i] - b[i]));
    return worst;
}

// Fits kind on the case's fitting split and returns its test-set probabilities.
std::vector<double> fit_apply(const Case &c, kd_binning_kind kind, kd_binning *b, uint64_t seed = 7)
{
    kd_binning_options o;
    kd_binning_options_default(&o);
    o.seed = seed;
    kd_error err;
    INFO(c.name << " " << kd_binning_name(kind));
    REQUIRE(kd_binning_fit(b, kind, c.fit.logits.data(), c.fit.labels.data(), c.fit.n, c.C, &o, &err) == KD_OK);
    std::vector<double> probs((size_t)c.test.n * c.C);
    kd_binning_apply(b, c.test.logits.data(), c.test.n, probs.data());
    return probs;
}

// n rows of C classes, logits N(0, scale^2), labels drawn from softmax(z / true_T):
// a model whose best temperature is true_T (1: perfectly calibrated).
Split draw(int64_t n, int C, double scale, double true_T, uint64_t seed)
{
    Split s;
    s.n = n;
    s.logits = kdtest::random_normal((size_t)n * C, (float)scale, seed);
    s.labels = kdtest::labels_from_softmax(s.logits, n, C, true_T, seed + 1);
    return s;
}

// softmax(z / T) of one row in double.
std::vector<double> softmax(const float *z, int C, double T = 1.0)
{
    double max = *std::max_element(z, z + C), sum = 0;
    std::vector<double> p(C);
    for (int c = 0; c < C; c++) sum += (p[c] = std::exp((z[c] - max) / T));
    for (double &v : p) v /= sum;
    return p;
}

int first_largest(const double *v, int C) { return (int)(std::max_element(v, v + C) - v); }

// Sets the OpenMP thread count for one scope.
class Threads
{
  public:
    explicit Threads(int n) : before_(omp_get_max_threads()) { kd_threads_set(n); }
    ~Threads() { kd_threads_set(before_); }
    Threads(const Threads &) = delete;
    Threads &operator=(const Threads &) = delete;

  private:
    int before_;
};

const kd_binning_kind kKinds[] = {KD_BINNING_HISTOGRAM, KD_BINNING_ISOTONIC, KD_BINNING_SCALING_BINNING};

} // namespace

// The reference: tests/data/calib-binning.h5, cases "main" (general position) and
// "ties" (logits in halves: p repeats and falls on bin edges).

TEST_CASE("isotonic calibration gives scikit-learn's IsotonicRegression probabilities to 1e-12", "[binning]")
{
    // sklearn's ties, PAV, clip and interpolation are followed step by step, and p is
    // the same double on both sides: only the order of a few sums differs.
    for (const char *name : {"main", "ties"}) {
        Case c = read_case(name);
        kd_binning b;
        std::vector<double> probs = fit_apply(c, KD_BINNING_ISOTONIC, &b);
        INFO(name);
        REQUIRE(max_abs_difference(probs, read(c.name + "/isotonic/test_probs")) <= 1e-12);
        REQUIRE(b.objective == Approx(read(c.name + "/isotonic/objective")[0]).epsilon(1e-12));
        kd_binning_free(&b);
    }
}

TEST_CASE("histogram binning gives the values and probabilities of the definition to 1e-12", "[binning]")
{
    for (const char *name : {"main", "ties"}) {
        Case c = read_case(name);
        kd_binning b;
        std::vector<double> probs = fit_apply(c, KD_BINNING_HISTOGRAM, &b);
        INFO(name);
        REQUIRE(b.bins == 15);
        REQUIRE(max_abs_difference(std::vector<double>(b.value, b.value + (size_t)c.C * 15),
                                   read(c.name + "/histogram/values")) <= 1e-15); // the same divisions
        REQUIRE(max_abs_difference(probs, read(c.name + "/histogram/test_probs")) <= 1e-12);
        REQUIRE(b.objective == Approx(read(c.name + "/histogram/objective")[0]).epsilon(1e-12));
        kd_binning_free(&b);
    }
}

TEST_CASE("the scaling-binning split is the Fisher-Yates permutation the fixture script reproduces", "[binning]")
{
    Case c = read_case("main");
    std::vector<int32_t> want = kdtest::h5_read_ints(kFile, "main/scaling_binning/order");
    std::vector<int64_t> order((size_t)c.fit.n);
    kd_binning_split(c.fit.n, 7, order.data());
    REQUIRE(std::equal(order.begin(), order.end(), want.begin(), want.end()));
    kd_binning_split(c.fit.n, 8, order.data()); // another seed, another split
    REQUIRE(!std::equal(order.begin(), order.end(), want.begin(), want.end()));
}

TEST_CASE("scaling-binning gives the reference Platt parameters and probabilities to 1e-9", "[binning]")
{
    // Both Platt fits stop at a gradient below 1e-12 (scipy's at 1e-13): the parameters
    // then differ by about |gradient| / (smallest Hessian eigenvalue, ~0.01), 1e-10,
    // and g, the bin edges and the bin means move as much. A test p within 1e-10 of an
    // edge could change bins; none is.
    for (const char *name : {"main", "ties"}) {
        Case c = read_case(name);
        kd_binning b;
        std::vector<double> probs = fit_apply(c, KD_BINNING_SCALING_BINNING, &b, 7);
        INFO(name);
        REQUIRE(b.platt_unconverged == 0);
        REQUIRE(max_abs_difference(std::vector<double>(b.platt, b.platt + 2 * c.C),
                                   read(c.name + "/scaling_binning/platt")) <= 1e-9);
        REQUIRE(max_abs_difference(probs, read(c.name + "/scaling_binning/test_probs")) <= 1e-9);
        REQUIRE(b.objective == Approx(read(c.name + "/scaling_binning/objective")[0]).epsilon(1e-9));
        kd_binning_free(&b);
    }
}

TEST_CASE("ensemble temperature scaling gives the scipy temperature weights and NLL to 1e-7", "[binning]")
{
    // kd_temperature_solve stops at |dNLL/dbeta| <= 1e-6 x the mean logit range, and
    // scipy's bounded Brent at xatol 1e-12: T agrees to ~1e-8 relative, and the
    // weights (solved to the rounding of the sums on each side) follow T.
    for (const char *name : {"main", "ties"}) {
        Case c = read_case(name);
        kd_ets e;
        kd_error err;
        REQUIRE(kd_ets_fit(&e, c.fit.logits.data(), c.fit.labels.data(), c.fit.n, c.C, &err) == KD_OK);
        INFO(name);
        REQUIRE(e.temperature == Approx(read(c.name + "/ets/temperature")[0]).epsilon(1e-7));
        REQUIRE(max_abs_difference(std::vector<double>(e.weight, e.weight + 3), read(c.name + "/ets/weights")) <= 1e-7);
        REQUIRE(e.nll == Approx(read(c.name + "/ets/nll")[0]).epsilon(1e-9));
        REQUIRE(e.nll_temperature_only == Approx(read(c.name + "/ets/nll_temperature_only")[0]).epsilon(1e-7));
        REQUIRE(e.nll <= e.nll_temperature_only);
        std::vector<double> probs((size_t)c.test.n * c.C);
        kd_ets_apply(&e, c.test.logits.data(), c.test.n, c.C, probs.data());
        REQUIRE(max_abs_difference(probs, read(c.name + "/ets/test_probs")) <= 1e-7);
    }
}

TEST_CASE("ensemble temperature weights meet the KKT conditions and no simplex grid point has a lower NLL", "[binning]")
{
    Case ref = read_case("main");
    std::vector<Split> sets = {ref.fit, draw(2000, 4, 3.0, 2.0, 21), draw(2000, 6, 1.0, 0.5, 22)};
    std::vector<int> classes = {ref.C, 4, 6};
    for (size_t s = 0; s < sets.size(); s++) {
        const Split &d = sets[s];
        int C = classes[s];
        kd_ets e;
        kd_error err;
        REQUIRE(kd_ets_fit(&e, d.logits.data(), d.labels.data(), d.n, C, &err) == KD_OK);
        // q_i = (softmax(z / T)_y, softmax(z)_y, 1 / C), worked here
        std::vector<std::array<double, 3>> q((size_t)d.n);
        for (int64_t i = 0; i < d.n; i++) {
            const float *z = d.logits.data() + i * C;
            q[i] = {softmax(z, C, e.temperature)[d.labels[i]], softmax(z, C)[d.labels[i]], 1.0 / C};
        }
        auto nll = [&](const double w[3]) {
            double f = 0;
            for (const auto &qi : q) f -= std::log(w[0] * qi[0] + w[1] * qi[1] + w[2] * qi[2]);
            return f / (double)d.n;
        };
        INFO("set " << s << ": T " << e.temperature << ", w " << e.weight[0] << " " << e.weight[1] << " "
                    << e.weight[2] << ", " << e.iterations << " steps");
        REQUIRE(e.weight[0] >= 0);
        REQUIRE(e.weight[1] >= 0);
        REQUIRE(e.weight[2] >= 0);
        REQUIRE(e.weight[0] + e.weight[1] + e.weight[2] == Approx(1.0).epsilon(1e-15));
        REQUIRE(nll(e.weight) == Approx(e.nll).epsilon(1e-12));
        // KKT: dNLL/dw_j = -mean q_ij / p_i is -1 on the support and >= -1 off it
        double g[3] = {0, 0, 0};
        for (const auto &qi : q) {
            double p = e.weight[0] * qi[0] + e.weight[1] * qi[1] + e.weight[2] * qi[2];
            for (int j = 0; j < 3; j++) g[j] -= qi[j] / p / (double)d.n;
        }
        for (int j = 0; j < 3; j++) {
            if (e.weight[j] > 0) REQUIRE(std::fabs(g[j] + 1) <= 1e-9);
            else REQUIRE(g[j] >= -1 - 1e-9);
        }
        REQUIRE(e.kkt <= 1e-9);
        for (int a = 0; a <= 50; a++)
            for (int b = 0; a + b <= 50; b++) {
                double w[3] = {a / 50.0, b / 50.0, (50 - a - b) / 50.0};
                REQUIRE(nll(w) >= e.nll - 1e-12);
            }
        REQUIRE(e.nll <= e.nll_temperature_only);
    }
}

TEST_CASE("ensemble temperature scaling never changes the arg max", "[binning]")
{
    Split d = draw(3000, 7, 2.0, 1.5, 31);
    kd_ets e;
    kd_error err;
    REQUIRE(kd_ets_fit(&e, d.logits.data(), d.labels.data(), d.n, 7, &err) == KD_OK);
    REQUIRE(e.weight[2] < 1); // else every class ties
    std::vector<double> probs((size_t)d.n * 7);
    kd_ets_apply(&e, d.logits.data(), d.n, 7, probs.data());
    REQUIRE(kd_binning_argmax_changes(d.logits.data(), probs.data(), d.n, 7) == 0);
    for (int64_t i = 0; i < d.n; i++) {
        double sum = 0;
        for (int c = 0; c < 7; c++) sum += probs[i * 7 + c];
        REQUIRE(sum == Approx(1.0).epsilon(1e-14));
    }
}

TEST_CASE("binning can change the arg max and the changed rows are counted", "[binning]")
{
    Case c = read_case("main");
    for (kd_binning_kind kind : kKinds) {
        kd_binning b;
        std::vector<double> probs = fit_apply(c, kind, &b);
        int64_t changed = 0; // counted here: the first largest probability against the first largest logit
        for (int64_t i = 0; i < c.test.n; i++) {
            std::vector<double> z(c.test.logits.begin() + i * c.C, c.test.logits.begin() + (i + 1) * c.C);
            changed += first_largest(probs.data() + i * c.C, c.C) != first_largest(z.data(), c.C);
        }
        INFO(kd_binning_name(kind) << ": " << changed << " of " << c.test.n << " predictions changed");
        REQUIRE(kd_binning_argmax_changes(c.test.logits.data(), probs.data(), c.test.n, c.C) == changed);
        REQUIRE(changed > 0);
        kd_binning_free(&b);
    }
}

TEST_CASE("isotonic fitted values are non-decreasing in p for every class", "[binning]")
{
    Split d = draw(4000, 5, 2.5, 0.7, 41);
    kd_binning b;
    kd_error err;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_ISOTONIC, d.logits.data(), d.labels.data(), d.n, 5, nullptr, &err) == KD_OK);
    for (int k = 0; k < 5; k++) {
        int64_t first = b.offset[k], last = b.offset[k + 1];
        INFO("class " << k << ": " << last - first << " thresholds");
        REQUIRE(last - first >= 2);
        for (int64_t t = first + 1; t < last; t++) {
            REQUIRE(b.x[t] > b.x[t - 1]);
            REQUIRE(b.y[t] >= b.y[t - 1]);
        }
        REQUIRE(b.y[first] >= 0);
        REQUIRE(b.y[last - 1] <= 1);
    }
    // and so is the fitted function over a sweep of p in [0, 1]
    for (int k = 0; k < 5; k++) {
        int64_t first = b.offset[k], count = b.offset[k + 1] - first;
        double previous = -1;
        for (int i = 0; i <= 2000; i++) {
            double v = kd_isotonic_predict(b.x + first, b.y + first, count, i / 2000.0);
            REQUIRE(v >= previous);
            previous = v;
        }
    }
    kd_binning_free(&b);
}

TEST_CASE("histogram binning of perfectly calibrated data stays near the identity", "[binning]")
{
    // labels drawn from softmax(z): in every bin the positive fraction estimates the
    // mean p of the bin, within 4 standard errors
    const int C = 4, M = 15;
    Split d = draw(40000, C, 1.5, 1.0, 51);
    kd_binning b;
    kd_error err;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_HISTOGRAM, d.logits.data(), d.labels.data(), d.n, C, nullptr, &err) == KD_OK);
    int checked = 0;
    for (int k = 0; k < C; k++) {
        std::vector<double> sum(M, 0.0);
        std::vector<int64_t> count(M, 0);
        for (int64_t i = 0; i < d.n; i++) {
            double p = softmax(d.logits.data() + i * C, C)[k];
            int m = std::min(M - 1, std::max(0, (int)std::ceil(p * M) - 1)); // an edge case off by one changes nothing here
            sum[m] += p;
            count[m]++;
        }
        for (int m = 0; m < M; m++) {
            if (count[m] < 200) continue;
            double mean = sum[m] / count[m], v = b.value[k * M + m];
            double se = std::sqrt(mean * (1 - mean) / count[m]);
            INFO("class " << k << " bin " << m << ": " << count[m] << " samples, mean p " << mean << ", value " << v);
            REQUIRE(std::fabs(v - mean) <= 4 * se);
            REQUIRE(std::fabs(v - (m + 0.5) / M) <= 1.0 / M); // within its bin's reach of the identity
            checked++;
        }
    }
    REQUIRE(checked >= 30);
    kd_binning_free(&b);
}

TEST_CASE("scaling-binning bin values are means of Platt outputs lying inside their bins", "[binning]")
{
    Split d = draw(6000, 3, 2.5, 0.6, 61);
    kd_binning b;
    kd_binning_options o;
    kd_binning_options_default(&o);
    o.bins = 10;
    kd_error err;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_SCALING_BINNING, d.logits.data(), d.labels.data(), d.n, 3, &o, &err) ==
            KD_OK);
    REQUIRE(b.platt_unconverged == 0);
    for (int k = 0; k < 3; k++) {
        REQUIRE(b.used[k] == 10); // no ties in g here
        REQUIRE(b.platt[2 * k] > 1); // under-confident logits (labels from softmax(z / 0.6)): a > 1
        for (int j = 0; j < b.used[k]; j++) {
            double lower = j ? b.edge[k * 10 + j - 1] : 0.0, upper = b.edge[k * 10 + j], v = b.value[k * 10 + j];
            INFO("class " << k << " bin " << j << ": (" << lower << ", " << upper << "] value " << v);
            REQUIRE(v > lower);
            REQUIRE(v <= upper);
        }
        REQUIRE(b.edge[k * 10 + 9] == 1.0);
    }
    kd_binning_free(&b);
}

TEST_CASE("a row whose calibrated values are all zero becomes uniform", "[binning]")
{
    // Fitting rows p = (0.56, 0.22, 0.22) label 0, (0.22, 0.56, 0.22) label 1 and
    // (0.37, 0.07, 0.56) label 0, 15 bins: class 0's bin of 0.22 (3), class 1's of 0.22
    // (3) and class 2's of 0.56 (8) hold negatives only, so p = (0.22, 0.22, 0.56) maps
    // to (0, 0, 0) and then to (1/3, 1/3, 1/3).
    auto logits_of = [](double a, double b, double c) {
        return std::vector<float>{(float)std::log(a), (float)std::log(b), (float)std::log(c)};
    };
    std::vector<float> z;
    for (auto row : {logits_of(0.56, 0.22, 0.22), logits_of(0.22, 0.56, 0.22), logits_of(0.37, 0.07, 0.56)})
        z.insert(z.end(), row.begin(), row.end());
    std::vector<int32_t> y = {0, 1, 0};
    kd_binning b;
    kd_error err;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_HISTOGRAM, z.data(), y.data(), 3, 3, nullptr, &err) == KD_OK);
    std::vector<float> t = logits_of(0.22, 0.22, 0.56);
    double probs[3];
    kd_binning_apply(&b, t.data(), 1, probs);
    REQUIRE(probs[0] == 1.0 / 3);
    REQUIRE(probs[1] == 1.0 / 3);
    REQUIRE(probs[2] == 1.0 / 3);
    kd_binning_free(&b);
}

TEST_CASE("a class absent from the fitting labels calibrates to zero under isotonic and scaling-binning", "[binning]")
{
    Split d = draw(600, 4, 2.0, 1.0, 71);
    for (int32_t &y : d.labels)
        if (y == 3) y = 0;
    for (kd_binning_kind kind : {KD_BINNING_ISOTONIC, KD_BINNING_SCALING_BINNING}) {
        kd_binning b;
        kd_error err;
        REQUIRE(kd_binning_fit(&b, kind, d.logits.data(), d.labels.data(), d.n, 4, nullptr, &err) == KD_OK);
        std::vector<double> probs((size_t)d.n * 4);
        kd_binning_apply(&b, d.logits.data(), d.n, probs.data());
        INFO(kd_binning_name(kind));
        for (int64_t i = 0; i < d.n; i++) REQUIRE(probs[i * 4 + 3] == 0.0);
        kd_binning_free(&b);
    }
}

TEST_CASE("bad inputs to the calibrators are errors naming what is wrong", "[binning]")
{
    std::vector<float> z = {1, 2, 0.5f, 0, 3, 1, 0, 0, -1, 2, 2, 1};
    std::vector<int32_t> y = {0, 1, 2, 0};
    kd_binning b;
    kd_error err;
    kd_binning_options o;
    kd_binning_options_default(&o);
    o.bins = 2;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_ISOTONIC, z.data(), y.data(), 4, 3, &o, &err) == KD_OK);
    kd_binning_free(&b);
    REQUIRE(kd_binning_fit(&b, KD_BINNING_SCALING_BINNING, z.data(), y.data(), 4, 3, &o, &err) == KD_OK);
    kd_binning_free(&b);
    o.bins = 3; // scaling-binning needs 2 x 3 rows
    REQUIRE(kd_binning_fit(&b, KD_BINNING_SCALING_BINNING, z.data(), y.data(), 4, 3, &o, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message) == "scaling-binning calibration: expected at least 6 rows (half fit Platt "
                                        "scaling, half fill 3 bins), found 4");
    REQUIRE(kd_binning_fit(&b, KD_BINNING_HISTOGRAM, z.data(), y.data(), 0, 3, &o, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message) == "histogram calibration: expected at least 1 row, found 0");
    o.bins = 0;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_HISTOGRAM, z.data(), y.data(), 4, 3, &o, &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "histogram calibration: bins: expected 1 to 1000, found 0");
    o.bins = 2;
    y[3] = 3;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_ISOTONIC, z.data(), y.data(), 4, 3, &o, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message) == "isotonic calibration: label 3 of row 3 is outside 0..2");
    y[3] = -1;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_HISTOGRAM, z.data(), y.data(), 4, 3, &o, &err) == KD_ERR_DATA);
    y[3] = 0;
    z[7] = NAN;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_ISOTONIC, z.data(), y.data(), 4, 3, &o, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message) == "isotonic calibration: expected finite logits, found NaN in row 2, class 1");
    z[7] = -INFINITY;
    REQUIRE(kd_binning_fit(&b, KD_BINNING_SCALING_BINNING, z.data(), y.data(), 4, 3, &o, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message) ==
            "scaling-binning calibration: expected finite logits, found Inf in row 2, class 1");
    REQUIRE(b.value == nullptr); // a failed fit leaves nothing to free
    kd_ets e;
    REQUIRE(kd_ets_fit(&e, z.data(), y.data(), 4, 3, &err) == KD_ERR_DATA);
    z[7] = 0;
    y[0] = 5;
    REQUIRE(kd_ets_fit(&e, z.data(), y.data(), 4, 3, &err) == KD_ERR_DATA);
}

TEST_CASE("calibrated probabilities do not depend on the thread count", "[binning]")
{
    // classes are fitted independently and rows applied independently: bit for bit
    Split d = draw(5000, 12, 2.0, 0.8, 81);
    for (kd_binning_kind kind : kKinds) {
        std::vector<double> out[2];
        double objective[2];
        for (int t = 0; t < 2; t++) {
            Threads threads(t == 0 ? 1 : 3);
            kd_binning b;
            kd_error err;
            REQUIRE(kd_binning_fit(&b, kind, d.logits.data(), d.labels.data(), d.n, 12, nullptr, &err) == KD_OK);
            out[t].resize((size_t)d.n * 12);
            kd_binning_apply(&b, d.logits.data(), d.n, out[t].data());
            objective[t] = b.objective;
            kd_binning_free(&b);
        }
        INFO(kd_binning_name(kind));
        REQUIRE(out[0] == out[1]);
        REQUIRE(objective[0] == objective[1]);
    }
    // ETS's T comes from kd_temperature_solve, whose sums are an OpenMP reduction: equal
    // to the rounding of those sums
    kd_ets e[2];
    for (int t = 0; t < 2; t++) {
        Threads threads(t == 0 ? 1 : 3);
        kd_error err;
        REQUIRE(kd_ets_fit(&e[t], d.logits.data(), d.labels.data(), d.n, 12, &err) == KD_OK);
    }
    REQUIRE(e[0].temperature == Approx(e[1].temperature).epsilon(1e-12));
    for (int j = 0; j < 3; j++) REQUIRE(std::fabs(e[0].weight[j] - e[1].weight[j]) <= 1e-9);
}

TEST_CASE("histogram binning bins the exact softmax even where p lies on a bin edge", "[binning]")
{
    // The fit works p with a vector exp (a few ulp from libm's) and redoes a row exactly
    // when some p M is within 1e-9 of an edge: the bins must be those of libm's p, here
    // recomputed from the definition ((m - 1)/M < p <= m/M) on logits in halves, where
    // rows of tied logits put p exactly on edges (1/4, 1/2, 1/3 = 5/15, ...). On both
    // SIMD variants, on one and three threads (40,000 values: the threaded path).
    const int C = 4;
    const int64_t n = 10000;
    Split d = draw(n, C, 1.0, 1.0, 91);
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < C; c++) {
            float &z = d.logits[(size_t)i * C + c];
            z = i % 3 == 0 ? 0.5f : std::round(2 * z) / 2; // a third of the rows all tied
        }
    for (int bins : {4, 12}) { // p = 1/4 on an edge of both
        std::vector<double> count((size_t)C * bins), hits((size_t)C * bins), want((size_t)C * bins);
        int64_t on_edge = 0;
        for (int64_t i = 0; i < n; i++) {
            std::vector<double> p = softmax(&d.logits[(size_t)i * C], C);
            for (int k = 0; k < C; k++) {
                int m = 0;
                while (m < bins - 1 && p[k] > (double)(m + 1) / bins) m++;
                on_edge += p[k] == (double)(m + 1) / bins && m < bins - 1;
                count[(size_t)k * bins + m] += 1;
                hits[(size_t)k * bins + m] += d.labels[i] == k;
            }
        }
        REQUIRE(on_edge > n / 3);
        for (size_t j = 0; j < want.size(); j++)
            want[j] = count[j] > 0 ? hits[j] / count[j] : ((double)(j % bins) + 0.5) / bins;
        for (const char *simd : {"", "generic"}) {
            for (int threads : {1, 3}) {
                Threads scope(threads);
                std::string before = std::getenv("KD_SIMD") ? std::getenv("KD_SIMD") : "";
                setenv("KD_SIMD", simd, 1);
                kd_binning b;
                kd_binning_options o;
                kd_binning_options_default(&o);
                o.bins = bins;
                kd_error err;
                int rc = kd_binning_fit(&b, KD_BINNING_HISTOGRAM, d.logits.data(), d.labels.data(), n, C, &o, &err);
                setenv("KD_SIMD", before.c_str(), 1);
                INFO(bins << " bins, KD_SIMD='" << simd << "', " << threads << " threads");
                REQUIRE(rc == KD_OK);
                REQUIRE(std::vector<double>(b.value, b.value + want.size()) == want);
                kd_binning_free(&b);
            }
        }
    }
}
