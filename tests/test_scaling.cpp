// The scaling family (vector, matrix, Dirichlet with ODIR) against scipy: the optima
// in tests/data/calib-scaling.h5 (scripts/make_reference_scaling.py: L-BFGS-B from the
// identity, polished by Newton steps to max |gradient| < 1e-12, in float64), the
// cross-validation on the folds the script derives from kd_scaling_folds' documented
// rule, and the solver's own properties (thread count, L-BFGS against Newton, bad input).
//
// Tolerances. The C fit stops at max |gradient| <= 1e-9; near the optimum a parameter
// error e moves the gradient by H e, so with the smallest Hessian eigenvalue of these
// problems (about 1e-3) the parameters are within about 1e-6 of the reference, and the
// objective, quadratic in e, within 1e-12 of it: the objective is checked to 1e-10
// relative (and never more than 1e-12 above scipy's), the parameters to 1e-6 absolute,
// and the test probabilities, within a few parameter errors times |x|, to 1e-6.
#include "support.h"

extern "C" {
#include "calib/scaling.h"
#include "core/threads.h"
}

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

const std::string kFile = std::string(KD_TEST_DATA_DIR) + "/calib-scaling.h5";

double attr(const std::string &object, const std::string &name)
{
    hid_t f = H5Fopen(kFile.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t a = H5Aopen_by_name(f, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    double v = NAN;
    bool ok = a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Fclose(f);
    REQUIRE(ok);
    return v;
}

std::vector<double> doubles(const std::string &name)
{
    std::vector<size_t> dims;
    return kdtest::h5_read_doubles(kFile, name, dims);
}

struct Case {
    std::string name;
    int C;
    int64_t n, n_test;
    std::vector<float> logits, test_logits;
    std::vector<int32_t> labels;
};

Case load(const std::string &name)
{
    Case c;
    c.name = name;
    std::vector<size_t> dims;
    std::vector<double> z = kdtest::h5_read_doubles(kFile, name + "/logits", dims);
    c.n = (int64_t)dims[0];
    c.C = (int)dims[1];
    c.logits.assign(z.begin(), z.end()); // float32 in the file: exact
    std::vector<double> zt = kdtest::h5_read_doubles(kFile, name + "/test_logits", dims);
    c.n_test = (int64_t)dims[0];
    c.test_logits.assign(zt.begin(), zt.end());
    c.labels = kdtest::h5_read_ints(kFile, name + "/labels");
    return c;
}

kd_scaling_options fixed(double lambda, double mu)
{
    kd_scaling_options o;
    kd_scaling_options_default(&o);
    o.folds = 0;
    o.lambda = lambda;
    o.mu = mu;
    return o;
}

double max_diff(const double *a, const std::vector<double> &b)
{
    double m = 0;
    for (size_t i = 0; i < b.size(); i++) m = std::max(m, std::fabs(a[i] - b[i]));
    return m;
}

std::vector<double> probabilities(const kd_scaling &s, const Case &c)
{
    std::vector<double> u((size_t)c.n_test * c.C);
    kd_scaling_apply(&s, c.test_logits.data(), c.n_test, u.data());
    for (int64_t i = 0; i < c.n_test; i++) {
        double *r = &u[(size_t)i * c.C], m = *std::max_element(r, r + c.C), sum = 0;
        for (int k = 0; k < c.C; k++) sum += (r[k] = std::exp(r[k] - m));
        for (int k = 0; k < c.C; k++) r[k] /= sum;
    }
    return u;
}

// Every fixed-strength reference of one method, on both cases.
void check_method(kd_scaling_kind kind, int strengths)
{
    for (const char *name : {"case4", "case7"}) {
        Case c = load(name);
        for (int i = 0; i < strengths; i++) {
            std::string g = std::string(name) + "/" + kd_scaling_name(kind) + "/" + std::to_string(i);
            double lambda = attr(g, "lambda"), mu = attr(g, "mu"), objective = attr(g, "objective");
            kd_scaling_options o = fixed(lambda, mu);
            kd_scaling s;
            kd_error err;
            REQUIRE(kd_scaling_fit(&s, kind, c.logits.data(), c.labels.data(), c.n, c.C, &o, &err) == KD_OK);
            double dw = max_diff(s.weight, doubles(g + "/weight")), db = max_diff(s.bias, doubles(g + "/bias"));
            double dp = max_diff(probabilities(s, c).data(), doubles(g + "/test_probabilities"));
            std::printf("scaling %-28s objective %.15f (scipy %.15f) |g| %.1e in %d, weight %.1e bias %.1e p %.1e\n",
                        g.c_str(), s.objective, objective, s.gradient_norm, s.iterations, dw, db, dp);
            CHECK(s.converged);
            CHECK(s.newton);
            CHECK(s.gradient_norm <= 1e-9);
            CHECK(s.objective == Approx(objective).epsilon(1e-10));
            CHECK(s.objective <= objective + 1e-12);
            CHECK(s.nll == Approx(attr(g, "nll")).epsilon(1e-9));
            CHECK(dw <= 1e-6);
            CHECK(db <= 1e-6);
            CHECK(dp <= 1e-6);
            kd_scaling_free(&s);
        }
    }
}

struct Threads {
    int before = kd_threads_count();
    ~Threads() { kd_threads_set(before); }
};

} // namespace

TEST_CASE("vector scaling reaches scipy's optimum and its test probabilities", "[scaling]")
{
    check_method(KD_SCALING_VECTOR, 1);
}

TEST_CASE("matrix scaling with ODIR reaches scipy's optimum at every strength, unpenalised included", "[scaling]")
{
    check_method(KD_SCALING_MATRIX, 3);
}

TEST_CASE("Dirichlet calibration reaches scipy's optimum at every strength", "[scaling]")
{
    check_method(KD_SCALING_DIRICHLET, 2);
}

TEST_CASE("the folds follow the documented rule the reference reimplements", "[scaling]")
{
    Case c = load("case4");
    std::vector<int32_t> fold((size_t)c.n), expected = kdtest::h5_read_ints(kFile, "cv/folds");
    kd_error err;
    REQUIRE(kd_scaling_folds(c.n, (int)attr("/", "cv_folds"), (uint64_t)attr("/", "cv_seed"), fold.data(), &err) == KD_OK);
    REQUIRE(fold == expected);
    // and they are balanced: sizes differ by at most one
    std::vector<int> size(5);
    for (int32_t f : fold) size[(size_t)f]++;
    REQUIRE(*std::max_element(size.begin(), size.end()) - *std::min_element(size.begin(), size.end()) <= 1);
}

TEST_CASE("cross-validation reproduces the reference curve and picks its strength", "[scaling]")
{
    Case c = load("case4");
    kd_scaling_options o;
    kd_scaling_options_default(&o);
    o.folds = (int)attr("/", "cv_folds");
    o.seed = (uint64_t)attr("/", "cv_seed");
    kd_scaling s;
    kd_error err;
    REQUIRE(kd_scaling_fit(&s, KD_SCALING_DIRICHLET, c.logits.data(), c.labels.data(), c.n, c.C, &o, &err) == KD_OK);
    std::vector<double> grid = doubles("cv/grid"), curve = doubles("cv/cv_nll");
    REQUIRE(s.n_grid == (int)grid.size());
    for (int g = 0; g < s.n_grid; g++) {
        INFO("strength " << grid[g]);
        CHECK(s.grid[g] == grid[(size_t)g]);
        CHECK(s.cv_nll[g] == Approx(curve[(size_t)g]).epsilon(1e-9));
    }
    CHECK(attr("cv", "margin") > 1e-4); // the reference's choice is not a near tie
    CHECK(s.lambda == attr("cv", "chosen"));
    CHECK(s.mu == s.lambda);
    CHECK(s.converged);
    kd_scaling_free(&s);
}

// n rows of C classes, labels from the logits plus noise so that the data are not separable
static Case noisy_case(int C, int64_t n)
{
    Case c;
    c.C = C;
    c.n = n;
    c.logits = kdtest::random_normal((size_t)c.n * c.C, 2.0f, 77);
    std::vector<float> noise = kdtest::random_normal((size_t)c.n * c.C, 2.0f, 78);
    for (int64_t i = 0; i < c.n; i++) {
        int best = 0;
        for (int k = 1; k < c.C; k++)
            if (c.logits[i * c.C + k] + noise[i * c.C + k] > c.logits[i * c.C + best] + noise[i * c.C + best]) best = k;
        c.labels.push_back(best);
    }
    return c;
}

TEST_CASE("the fit is bit for bit the same on 1 and 2 threads", "[scaling]")
{
    Threads keep;
    // large enough for the threaded paths (n P >= 2e5): Newton and L-BFGS on 4000 rows of
    // 7 classes, and L-BFGS with its Kronecker preconditioner on 37 classes (odd: every
    // tile of the double products has ragged edges)
    struct Run {
        kd_scaling_kind kind;
        int C, newton_max;
    };
    for (Run run : {Run{KD_SCALING_MATRIX, 7, 1500}, Run{KD_SCALING_MATRIX, 7, 0}, Run{KD_SCALING_DIRICHLET, 37, 0}}) {
        Case c = noisy_case(run.C, 4000);
        std::vector<double> w[2], b[2];
        double objective[2];
        bool newton[2];
        for (int t = 0; t < 2; t++) {
            kd_threads_set(t + 1);
            kd_scaling_options o = fixed(1e-2, 1e-2);
            o.newton_max_parameters = run.newton_max;
            kd_scaling s;
            kd_error err;
            REQUIRE(kd_scaling_fit(&s, run.kind, c.logits.data(), c.labels.data(), c.n, c.C, &o, &err) == KD_OK);
            w[t].assign(s.weight, s.weight + c.C * c.C);
            b[t].assign(s.bias, s.bias + c.C);
            objective[t] = s.objective;
            newton[t] = s.newton;
            kd_scaling_free(&s);
        }
        INFO(kd_scaling_name(run.kind) << " scaling, " << run.C << " classes, Newton up to " << run.newton_max
                                       << " parameters");
        CHECK(newton[0] == (run.newton_max > 0));
        CHECK(w[0] == w[1]);
        CHECK(b[0] == b[1]);
        CHECK(objective[0] == objective[1]);
    }
}

TEST_CASE("L-BFGS reaches the optimum Newton reaches", "[scaling]")
{
    Case c = load("case7");
    for (kd_scaling_kind kind : {KD_SCALING_MATRIX, KD_SCALING_DIRICHLET}) {
        kd_scaling fit[2];
        for (int i = 0; i < 2; i++) {
            kd_scaling_options o = fixed(1e-2, 1e-2);
            o.newton_max_parameters = i == 0 ? 1500 : 0;
            kd_error err;
            REQUIRE(kd_scaling_fit(&fit[i], kind, c.logits.data(), c.labels.data(), c.n, c.C, &o, &err) == KD_OK);
        }
        INFO(kd_scaling_name(kind) << ": Newton " << fit[0].iterations << " iterations, L-BFGS " << fit[1].iterations);
        CHECK(fit[0].newton);
        CHECK_FALSE(fit[1].newton);
        CHECK(fit[1].converged);
        CHECK(fit[1].gradient_norm <= 1e-9);
        CHECK(fit[1].objective == Approx(fit[0].objective).epsilon(1e-12));
        // both stop at max |gradient| <= 1e-9; at lambda = 1e-2 the smallest Hessian
        // eigenvalue is about 1e-4, so the two optima may differ by 1e-5
        std::vector<double> w0(fit[0].weight, fit[0].weight + c.C * c.C);
        CHECK(max_diff(fit[1].weight, w0) <= 1e-5);
        kd_scaling_free(&fit[0]);
        kd_scaling_free(&fit[1]);
    }
}

TEST_CASE("matrix scaling with a huge off-diagonal penalty and a free bias becomes vector scaling", "[scaling]")
{
    // lambda -> infinity forces W to its diagonal, and mu = 0 leaves b free: the model
    // is then vector scaling's, and so is the optimum (off-diagonals of order 1/lambda).
    Case c = load("case7");
    kd_scaling_options o = fixed(1e8, 0.0);
    kd_scaling m, v;
    kd_error err;
    REQUIRE(kd_scaling_fit(&m, KD_SCALING_MATRIX, c.logits.data(), c.labels.data(), c.n, c.C, &o, &err) == KD_OK);
    REQUIRE(kd_scaling_fit(&v, KD_SCALING_VECTOR, c.logits.data(), c.labels.data(), c.n, c.C, &o, &err) == KD_OK);
    CHECK(m.converged);
    double off = 0, diag = 0, bias = 0;
    for (int k = 0; k < c.C; k++) {
        for (int j = 0; j < c.C; j++)
            if (j != k) off = std::max(off, std::fabs(m.weight[k * c.C + j]));
        diag = std::max(diag, std::fabs(m.weight[k * c.C + k] - v.weight[k]));
        bias = std::max(bias, std::fabs(m.bias[k] - v.bias[k]));
    }
    CHECK(off <= 1e-6);
    CHECK(diag <= 1e-5);
    CHECK(bias <= 1e-5);
    // the off-diagonals W_kj ~ g_kj C (C-1) / (2 lambda) lower the NLL at first order,
    // by about sum g_kj W_kj ~ 1e-6 here
    CHECK(std::fabs(m.nll - v.nll) <= 1e-5);
    CHECK(m.objective >= v.nll - 1e-5);
    kd_scaling_free(&m);
    kd_scaling_free(&v);
}

TEST_CASE("bad inputs are errors that name what is wrong", "[scaling]")
{
    Case c = load("case4");
    kd_scaling s;
    kd_error err;
    kd_scaling_options o;
    kd_scaling_options_default(&o);
    auto fails = [&](kd_scaling_kind kind, const float *z, const int32_t *y, int64_t n, int C, const char *words) {
        int rc = kd_scaling_fit(&s, kind, z, y, n, C, &o, &err);
        INFO(err.message);
        CHECK(rc != KD_OK);
        CHECK(std::string(err.message).find(words) != std::string::npos);
        CHECK(s.weight == nullptr);
    };
    fails(KD_SCALING_MATRIX, c.logits.data(), c.labels.data(), 1, c.C, "at least 2 samples");
    fails(KD_SCALING_MATRIX, c.logits.data(), c.labels.data(), 4, c.C, "5-fold");
    std::vector<float> z = c.logits;
    z[7] = NAN;
    fails(KD_SCALING_DIRICHLET, z.data(), c.labels.data(), c.n, c.C, "finite logits");
    z[7] = INFINITY;
    fails(KD_SCALING_VECTOR, z.data(), c.labels.data(), c.n, c.C, "finite logits");
    std::vector<int32_t> y = c.labels;
    y[3] = c.C;
    fails(KD_SCALING_MATRIX, c.logits.data(), y.data(), c.n, c.C, "label 4 of sample 3");
    y[3] = -1;
    fails(KD_SCALING_VECTOR, c.logits.data(), y.data(), c.n, c.C, "label -1 of sample 3");
    fails(KD_SCALING_MATRIX, c.logits.data(), c.labels.data(), c.n, 1, "at least 2 classes");
    o.folds = 0;
    o.lambda = -1;
    fails(KD_SCALING_MATRIX, c.logits.data(), c.labels.data(), c.n, c.C, "lambda, mu >= 0");
}

TEST_CASE("a fit cut short by max_iterations says it did not converge", "[scaling]")
{
    Case c = load("case7");
    kd_scaling_options o = fixed(0.0, 0.0);
    o.max_iterations = 1;
    kd_scaling s;
    kd_error err;
    REQUIRE(kd_scaling_fit(&s, KD_SCALING_MATRIX, c.logits.data(), c.labels.data(), c.n, c.C, &o, &err) == KD_OK);
    CHECK(s.iterations == 1);
    CHECK_FALSE(s.converged);
    CHECK(s.gradient_norm > o.tolerance);
    kd_scaling_free(&s);
}
