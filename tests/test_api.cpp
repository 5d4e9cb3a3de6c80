// The public library (include/kdtrain/kdtrain.h, docs/API.md) as a user calls it: opening
// models and the errors that can meet it, predictions checked against what kdtrain eval
// writes for the same rows, the temperature fit against a case solved by hand, and the
// installed tree (cmake --install, pkg-config, the example program) checked end to end.
#include "support.h"

#include <kdtrain/kdtrain.h>

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

namespace {

// A data set of `classes` Gaussian clusters in `dim` dimensions stored as uint8 (128 +
// 30 x, clamped), with the root attribute x_scale (or none when x_scale <= 0), /train and
// /test only: the features the network sees are the stored bytes times x_scale.
void write_uint8_dataset(const std::string &path, int n_train, int n_test, int dim, int classes, double x_scale,
                         uint64_t seed)
{
    std::vector<float> centres = kdtest::random_normal((size_t)classes * dim, 1.5f, seed);
    std::vector<kdtest::DatasetSplit> splits(2);
    splits[0].name = "train";
    splits[1].name = "test";
    int sizes[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        int n = sizes[s];
        std::vector<float> noise = kdtest::random_normal((size_t)n * dim, 1.0f, seed + 10 + s);
        std::vector<uint8_t> &x = splits[s].x_uint8, &y = splits[s].y;
        x.resize((size_t)n * dim);
        y.resize(n);
        for (int i = 0; i < n; i++) {
            y[i] = (uint8_t)(i % classes);
            for (int j = 0; j < dim; j++) {
                double v = 128.0 + 30.0 * (centres[(size_t)y[i] * dim + j] + noise[(size_t)i * dim + j]);
                x[(size_t)i * dim + j] = (uint8_t)std::lround(std::min(255.0, std::max(0.0, v)));
            }
        }
    }
    kdtest::write_split_dataset(path, splits, dim, 0, x_scale); // no num_classes: taken from the labels
}

// A trained model on such data (configs/smoke.ini: 16-32-4, 600 training rows of which
// 100 validate, 300 test rows), calibrated when asked; its data set at dir/data.h5 and
// eval's logits of the test split at dir/logits.h5.
struct Trained {
    std::string dir, data, run, logits;
};

Trained train_model(bool calibrate, double x_scale = 1.0 / 64)
{
    Trained t;
    t.dir = kdtest::temp_dir();
    t.data = t.dir + "/data.h5";
    t.run = t.dir + "/m";
    t.logits = t.dir + "/logits.h5";
    write_uint8_dataset(t.data, 600, 300, 16, 4, x_scale, 5);
    std::string smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini", out;
    REQUIRE(kdtest::run_kdtrain("train -c " + smoke + " --quiet --set data.path=" + t.data + " --set run.dir=" + t.dir +
                                    " --set run.name=m --set train.epochs=3",
                                &out) == 0);
    if (calibrate) REQUIRE(kdtest::run_kdtrain("calibrate --model " + t.run + " --bootstrap 10 --noise-draws 10", &out) == 0);
    REQUIRE(kdtest::run_kdtrain("eval --model " + t.run + " --logits " + t.logits, &out) == 0);
    return t;
}

// The features kdtrain feeds the network, by the rule docs/API.md states: the stored
// value as float32 times x_scale as float32.
std::vector<float> scaled_test_features(const std::string &data, double x_scale, std::vector<size_t> &dims)
{
    std::vector<double> stored = kdtest::h5_read_doubles(data, "/test/x", dims);
    std::vector<float> x(stored.size());
    for (size_t i = 0; i < stored.size(); i++) x[i] = (float)stored[i] * (float)x_scale;
    return x;
}

std::vector<float> read_logits(const std::string &file, std::vector<size_t> &dims)
{
    std::vector<double> z = kdtest::h5_read_doubles(file, "/logits", dims); // float32 in the file: exact
    return std::vector<float>(z.begin(), z.end());
}

double stored_temperature(const std::string &checkpoint)
{
    hid_t f = H5Fopen(checkpoint.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t a = H5Aopen_by_name(f, "/calibration", "temperature", H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(a >= 0);
    double T = 0;
    REQUIRE(H5Aread(a, H5T_NATIVE_DOUBLE, &T) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    return T;
}

// softmax(z / T) of one row in long double, the reference for the library's double.
std::vector<double> softmax_reference(const float *z, int classes, double T)
{
    long double top = *std::max_element(z, z + classes), sum = 0;
    std::vector<double> p(classes);
    for (int c = 0; c < classes; c++) sum += std::exp(((long double)z[c] - top) / T);
    for (int c = 0; c < classes; c++) p[c] = (double)(std::exp(((long double)z[c] - top) / T) / sum);
    return p;
}

struct Shell {
    int exit_code;
    std::string out;
};

Shell run_shell(const std::string &command)
{
    FILE *pipe = popen((command + " 2>&1").c_str(), "r");
    REQUIRE(pipe != nullptr);
    Shell r{-1, ""};
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) r.out.append(buffer, n);
    int status = pclose(pipe);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

herr_t count_prints(hid_t, void *data)
{
    ++*static_cast<int *>(data);
    return 0;
}

} // namespace

// ---- opening ------------------------------------------------------------------------------

TEST_CASE("kdtrain_open of a missing file fails with an IO status naming it and no model", "[api]")
{
    char err[256];
    kdtrain_model *model = reinterpret_cast<kdtrain_model *>(&err); // any non-NULL value: it must be reset
    std::string path = kdtest::temp_dir() + "/absent.h5";
    REQUIRE(kdtrain_open(path.c_str(), &model, err, sizeof err) == KDTRAIN_ERR_IO);
    REQUIRE(model == nullptr);
    REQUIRE(std::string(err) == path + ": cannot open: No such file or directory");
}

TEST_CASE("kdtrain_open of a data set rather than a checkpoint fails with a DATA status naming the file", "[api]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5";
    kdtest::write_cluster_dataset(data, 20, 10, 4, 2, 1);
    char err[512];
    kdtrain_model *model = nullptr;
    int rc = kdtrain_open(data.c_str(), &model, err, sizeof err);
    INFO(err);
    REQUIRE(rc == KDTRAIN_ERR_DATA);
    REQUIRE(model == nullptr);
    REQUIRE(std::string(err).rfind(data + ":", 0) == 0);
}

TEST_CASE("kdtrain_open cuts its message to the caller's buffer and takes no buffer at all", "[api]")
{
    kdtrain_model *model = nullptr;
    char err[8];
    std::memset(err, 'x', sizeof err);
    REQUIRE(kdtrain_open("/nonexistent/model.h5", &model, err, sizeof err) == KDTRAIN_ERR_IO);
    REQUIRE(std::string(err) == "/nonexi"); // 7 characters and the NUL
    REQUIRE(kdtrain_open("/nonexistent/model.h5", &model, nullptr, 0) == KDTRAIN_ERR_IO);
    REQUIRE(kdtrain_open(nullptr, &model, err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    REQUIRE(kdtrain_open("/nonexistent/model.h5", nullptr, nullptr, 0) == KDTRAIN_ERR_ARGUMENT);
    kdtrain_close(nullptr); // does nothing
}

TEST_CASE("kdtrain_open leaves the caller's HDF5 error printing as it found it", "[api]")
{
    std::string dir = kdtest::temp_dir(), junk = dir + "/junk.h5";
    FILE *f = std::fopen(junk.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fputs("\x89HDF\r\n\x1a\n but cut short", f);
    std::fclose(f);
    H5E_auto2_t before = nullptr;
    void *before_data = nullptr;
    REQUIRE(H5Eget_auto2(H5E_DEFAULT, &before, &before_data) >= 0);
    int prints = 0;
    REQUIRE(H5Eset_auto2(H5E_DEFAULT, count_prints, &prints) >= 0);
    kdtrain_model *model = nullptr;
    char err[512];
    REQUIRE(kdtrain_open(junk.c_str(), &model, err, sizeof err) == KDTRAIN_ERR_DATA);
    H5E_auto2_t after = nullptr;
    void *after_data = nullptr;
    REQUIRE(H5Eget_auto2(H5E_DEFAULT, &after, &after_data) >= 0);
    REQUIRE(after == &count_prints);
    REQUIRE(after_data == &prints);
    REQUIRE(prints == 0); // and nothing was printed on the way
    H5Eset_auto2(H5E_DEFAULT, before, before_data);
}

// ---- predicting ---------------------------------------------------------------------------

TEST_CASE("kdtrain_predict_logits gives kdtrain eval's logits bit for bit from features scaled as documented", "[api]")
{
    Trained t = train_model(false);
    kdtrain_model *model = nullptr;
    char err[1024];
    REQUIRE(kdtrain_open(t.run.c_str(), &model, err, sizeof err) == KDTRAIN_OK);
    REQUIRE(kdtrain_inputs(model) == 16);
    REQUIRE(kdtrain_classes(model) == 4);
    std::vector<size_t> dx, dz;
    std::vector<float> x = scaled_test_features(t.data, 1.0 / 64, dx), expected = read_logits(t.logits, dz);
    REQUIRE(dx[0] == 300);
    std::vector<float> z(300 * 4, NAN);
    REQUIRE(kdtrain_predict_logits(model, x.data(), 300, z.data(), err, sizeof err) == KDTRAIN_OK);
    REQUIRE(std::string(err).empty());
    size_t differ = 0;
    for (size_t i = 0; i < z.size(); i++) differ += z[i] != expected[i];
    REQUIRE(differ == 0);
    kdtrain_close(model);
}

// A row's logits are sums of products in float, and oneDNN picks its kernel (and so the
// order of those sums) from the shape of the batch: one row at a time goes another way than
// 256 (measured: 927 of 1200 logits differ, by at most 6.5e-7 of the row's largest |logit|).
// The same rows in the same batches give the same bits (eval's, tested above).
TEST_CASE("kdtrain_predict_logits gives a row the same logits to float rounding whatever rows come with it", "[api]")
{
    Trained t = train_model(false);
    kdtrain_model *model = nullptr;
    REQUIRE(kdtrain_open(t.run.c_str(), &model, nullptr, 0) == KDTRAIN_OK);
    std::vector<size_t> dx;
    std::vector<float> x = scaled_test_features(t.data, 1.0 / 64, dx);
    std::vector<float> all(300 * 4), one(300 * 4);
    REQUIRE(kdtrain_predict_logits(model, x.data(), 300, all.data(), nullptr, 0) == KDTRAIN_OK);
    for (int i = 0; i < 300; i++)
        REQUIRE(kdtrain_predict_logits(model, x.data() + i * 16, 1, one.data() + i * 4, nullptr, 0) == KDTRAIN_OK);
    double worst = 0;
    for (int i = 0; i < 300; i++) {
        double scale = 0;
        for (int c = 0; c < 4; c++) scale = std::max(scale, (double)std::fabs(all[i * 4 + c]));
        for (int c = 0; c < 4; c++) worst = std::max(worst, std::fabs(all[i * 4 + c] - one[i * 4 + c]) / scale);
    }
    INFO("largest difference, one row at a time against 300 rows: " << worst << " of the row's largest logit");
    REQUIRE(worst <= 1e-5); // about a hundred float ulps of the largest logit
    REQUIRE(kdtrain_predict_logits(model, nullptr, 0, nullptr, nullptr, 0) == KDTRAIN_OK); // no rows: nothing to do
    kdtrain_close(model);
}

TEST_CASE("kdtrain_predict_probabilities is softmax of eval's logits at the stored temperature, or at 1 uncalibrated",
          "[api]")
{
    Trained t = train_model(true);
    double T = stored_temperature(t.run + "/model.h5");
    REQUIRE(std::fabs(T - 1.0) > 0.01); // the calibrated and the raw probabilities differ
    kdtrain_model *model = nullptr;
    REQUIRE(kdtrain_open(t.run.c_str(), &model, nullptr, 0) == KDTRAIN_OK);
    REQUIRE(kdtrain_temperature(model) == T);
    std::vector<size_t> dx, dz;
    std::vector<float> x = scaled_test_features(t.data, 1.0 / 64, dx), z = read_logits(t.logits, dz);
    std::vector<float> calibrated(300 * 4), raw(300 * 4);
    REQUIRE(kdtrain_predict_probabilities(model, x.data(), 300, true, calibrated.data(), nullptr, 0) == KDTRAIN_OK);
    REQUIRE(kdtrain_predict_probabilities(model, x.data(), 300, false, raw.data(), nullptr, 0) == KDTRAIN_OK);
    // Each probability is a double rounded to float: within half an ulp of the exact value
    // (2^-25 below 1), and the double within 1e-12 of it.
    double worst = 0, moved = 0;
    for (int i = 0; i < 300; i++) {
        std::vector<double> pc = softmax_reference(&z[i * 4], 4, T), pr = softmax_reference(&z[i * 4], 4, 1.0);
        for (int c = 0; c < 4; c++) {
            worst = std::max({worst, std::fabs(calibrated[i * 4 + c] - pc[c]), std::fabs(raw[i * 4 + c] - pr[c])});
            moved = std::max(moved, std::fabs(pc[c] - pr[c]));
        }
    }
    INFO("largest difference from the reference " << worst << ", largest change by T " << moved);
    REQUIRE(worst <= std::ldexp(1.0, -25) + 1e-12);
    REQUIRE(moved > 1e-3);
    kdtrain_close(model);
}

TEST_CASE("an uncalibrated model has temperature 1 and the same calibrated and raw probabilities", "[api]")
{
    Trained t = train_model(false);
    kdtrain_model *model = nullptr;
    REQUIRE(kdtrain_open((t.run + "/model.h5").c_str(), &model, nullptr, 0) == KDTRAIN_OK); // the checkpoint itself
    REQUIRE(kdtrain_temperature(model) == 1.0);
    std::vector<size_t> dx;
    std::vector<float> x = scaled_test_features(t.data, 1.0 / 64, dx);
    std::vector<float> a(300 * 4), b(300 * 4);
    REQUIRE(kdtrain_predict_probabilities(model, x.data(), 300, true, a.data(), nullptr, 0) == KDTRAIN_OK);
    REQUIRE(kdtrain_predict_probabilities(model, x.data(), 300, false, b.data(), nullptr, 0) == KDTRAIN_OK);
    REQUIRE(a == b);
    kdtrain_close(model);
}

TEST_CASE("predictions on one model from several threads at once equal those of one thread", "[api]")
{
    Trained t = train_model(true);
    kdtrain_model *model = nullptr;
    REQUIRE(kdtrain_open(t.run.c_str(), &model, nullptr, 0) == KDTRAIN_OK);
    std::vector<size_t> dx;
    std::vector<float> x = scaled_test_features(t.data, 1.0 / 64, dx);
    std::vector<float> expected(300 * 4);
    REQUIRE(kdtrain_predict_probabilities(model, x.data(), 300, true, expected.data(), nullptr, 0) == KDTRAIN_OK);
    const int n_threads = 4, repeats = 20;
    std::vector<std::vector<float>> got(n_threads, std::vector<float>(300 * 4));
    std::vector<int> failures(n_threads, 0);
    std::vector<std::thread> threads;
    for (int k = 0; k < n_threads; k++)
        threads.emplace_back([&, k] {
            for (int r = 0; r < repeats; r++) {
                if (kdtrain_predict_probabilities(model, x.data(), 300, true, got[k].data(), nullptr, 0) != KDTRAIN_OK ||
                    got[k] != expected)
                    failures[k]++;
            }
        });
    for (auto &th : threads) th.join();
    for (int k = 0; k < n_threads; k++) REQUIRE(failures[k] == 0);
    kdtrain_close(model);
}

TEST_CASE("predict refuses bad arguments and non-finite features with a status and a message, never an abort", "[api]")
{
    Trained t = train_model(false);
    kdtrain_model *model = nullptr;
    REQUIRE(kdtrain_open(t.run.c_str(), &model, nullptr, 0) == KDTRAIN_OK);
    std::vector<float> x(3 * 16, 0.5f), z(3 * 4);
    char err[512];
    REQUIRE(kdtrain_predict_logits(model, nullptr, 3, z.data(), err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    REQUIRE(std::string(err) == "kdtrain_predict_logits: x: expected an array, found NULL");
    REQUIRE(kdtrain_predict_logits(model, x.data(), -1, z.data(), err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    REQUIRE(std::string(err) == "kdtrain_predict_logits: rows: expected >= 0, found -1");
    REQUIRE(kdtrain_predict_probabilities(model, x.data(), 3, true, nullptr, err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    REQUIRE(std::string(err) == "kdtrain_predict_probabilities: output: expected an array, found NULL");
    REQUIRE(kdtrain_predict_logits(nullptr, x.data(), 3, z.data(), err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    x[2 * 16 + 5] = NAN;
    REQUIRE(kdtrain_predict_logits(model, x.data(), 3, z.data(), err, sizeof err) == KDTRAIN_ERR_DATA);
    REQUIRE(std::string(err) == "kdtrain_predict_logits: x: expected finite features, found NaN at row 2, column 5");
    x[2 * 16 + 5] = INFINITY;
    REQUIRE(kdtrain_predict_probabilities(model, x.data(), 3, false, z.data(), err, sizeof err) == KDTRAIN_ERR_DATA);
    REQUIRE(std::string(err) == "kdtrain_predict_probabilities: x: expected finite features, found Inf at row 2, column 5");
    kdtrain_close(model);
}

// ---- calibrating logits -------------------------------------------------------------------

// Two classes, logits (2, 0) in every row, label 0 in three rows of four: the NLL
// -[3 log s(2b) + log(1 - s(2b))] / 4 is least where s(2b) = 3/4, b = ln(3) / 2, so
// T = 2 / ln 3. The fit stops at |NLL'(b)| <= 1e-6 times the logit range 2, and NLL'' =
// 4 s (1 - s) = 3/4 there, so b is within 2.7e-6 of the optimum: T within 5e-6 relative.
TEST_CASE("kdtrain_fit_temperature finds T = 2 over ln 3 for logits 2 and 0 with the first class in 3 rows of 4", "[api]")
{
    std::vector<float> logits = {2, 0, 2, 0, 2, 0, 2, 0};
    std::vector<int32_t> labels = {0, 1, 0, 0};
    double T = 0;
    char err[256];
    REQUIRE(kdtrain_fit_temperature(logits.data(), labels.data(), 4, 2, &T, err, sizeof err) == KDTRAIN_OK);
    REQUIRE(T == Approx(2.0 / std::log(3.0)).epsilon(5e-6));
}

TEST_CASE("kdtrain_fit_temperature gives 0.001 for separable logits and 1 when every logit of a row is equal", "[api]")
{
    std::vector<float> separable = {3, 1, 0, 0, 2, 1}, flat = {0.5f, 0.5f, 0.5f, -1, -1, -1};
    std::vector<int32_t> labels = {0, 1};
    double T = 0;
    REQUIRE(kdtrain_fit_temperature(separable.data(), labels.data(), 2, 3, &T, nullptr, 0) == KDTRAIN_OK);
    REQUIRE(T == 1e-3);
    REQUIRE(kdtrain_fit_temperature(flat.data(), labels.data(), 2, 3, &T, nullptr, 0) == KDTRAIN_OK);
    REQUIRE(T == 1.0);
}

TEST_CASE("kdtrain_fit_temperature refuses bad labels, logits and sizes with a message", "[api]")
{
    std::vector<float> logits = {1, 0, 0, 1};
    std::vector<int32_t> labels = {0, 2};
    double T = 7;
    char err[256];
    REQUIRE(kdtrain_fit_temperature(logits.data(), labels.data(), 2, 2, &T, err, sizeof err) == KDTRAIN_ERR_DATA);
    REQUIRE(std::string(err) == "temperature fit: label 2 of sample 1 is outside 0..1");
    labels[1] = 1;
    logits[3] = NAN;
    REQUIRE(kdtrain_fit_temperature(logits.data(), labels.data(), 2, 2, &T, err, sizeof err) == KDTRAIN_ERR_DATA);
    REQUIRE(std::string(err) == "temperature fit: expected finite logits, found NaN or Inf");
    REQUIRE(kdtrain_fit_temperature(logits.data(), labels.data(), 0, 2, &T, err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    REQUIRE(std::string(err) == "kdtrain_fit_temperature: rows: expected >= 1, found 0");
    REQUIRE(kdtrain_fit_temperature(logits.data(), labels.data(), 4, 1, &T, err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    REQUIRE(std::string(err) == "kdtrain_fit_temperature: classes: expected >= 2, found 1");
    REQUIRE(kdtrain_fit_temperature(logits.data(), nullptr, 2, 2, &T, err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    REQUIRE(T == 7); // untouched on failure
}

TEST_CASE("kdtrain_softmax is softmax of logits over T in double, finite for logits of a thousand", "[api]")
{
    // Row 0 by hand: logits (ln 1, ln 2, ln 3) = log of (1, 2, 3) at T = 1 give (1, 2, 3) / 6;
    // at T = 0.5 the odds square, (1, 4, 9) / 14. Row 1: exp(1000) would overflow without
    // the row's largest logit subtracted.
    std::vector<float> z = {0.0f, (float)std::log(2.0), (float)std::log(3.0), 1000, -1000, 999};
    std::vector<float> p(6);
    REQUIRE(kdtrain_softmax(z.data(), 2, 3, 1.0, p.data(), nullptr, 0) == KDTRAIN_OK);
    const double tol = std::ldexp(1.0, -24); // the float logits of ln 2 and ln 3, then rounding to float
    REQUIRE(std::fabs(p[0] - 1.0 / 6) <= tol);
    REQUIRE(std::fabs(p[1] - 2.0 / 6) <= tol);
    REQUIRE(std::fabs(p[2] - 3.0 / 6) <= tol);
    std::vector<double> r = softmax_reference(&z[3], 3, 1.0);
    for (int c = 0; c < 3; c++) REQUIRE(std::fabs(p[3 + c] - r[c]) <= std::ldexp(1.0, -25) + 1e-12);
    REQUIRE(p[4] == 0.0f);
    REQUIRE(kdtrain_softmax(z.data(), 1, 3, 0.5, z.data(), nullptr, 0) == KDTRAIN_OK); // in place
    REQUIRE(std::fabs(z[0] - 1.0 / 14) <= tol);
    REQUIRE(std::fabs(z[1] - 4.0 / 14) <= tol);
    REQUIRE(std::fabs(z[2] - 9.0 / 14) <= tol);
    char err[256];
    REQUIRE(kdtrain_softmax(z.data(), 1, 3, 0.0, p.data(), err, sizeof err) == KDTRAIN_ERR_ARGUMENT);
    REQUIRE(std::string(err) == "kdtrain_softmax: temperature: expected a finite value > 0, found 0");
}

// ---- the installed library ----------------------------------------------------------------

// cmake --install into a new prefix, then the example built by examples/Makefile with what
// pkg-config says, run on a trained, calibrated model; its printed probabilities are
// compared with eval's logits of the same rows softmaxed here at the checkpoint's T.
TEST_CASE("the installed library builds the example through pkg-config and it prints eval's calibrated probabilities",
          "[api][install]")
{
    Trained t = train_model(true);
    double T = stored_temperature(t.run + "/model.h5");
    std::string prefix = t.dir + "/prefix";
    Shell r = run_shell("'" KD_CMAKE_COMMAND "' --install '" KD_BINARY_DIR "' --prefix '" + prefix + "'");
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    Shell pc = run_shell("find '" + prefix + "' -name kdtrain.pc");
    REQUIRE(pc.exit_code == 0);
    std::string pc_dir = pc.out.substr(0, pc.out.rfind('/'));
    REQUIRE(!pc_dir.empty());
    std::string env = "PKG_CONFIG_PATH='" + pc_dir + "' ";
    r = run_shell(env + "pkg-config --modversion kdtrain");
    REQUIRE(r.out == std::string(kdtrain_version()) + "\n");
    r = run_shell(env + "make -s -C '" + t.dir + "' -f '" KD_SOURCE_DIR "/examples/Makefile' CC='" KD_C_COMPILER
                  "' CFLAGS='-O2 -std=c11 -Wall -Wextra -Wpedantic -Werror " KD_EXAMPLE_CFLAGS "'");
    INFO(r.out);
    REQUIRE(r.exit_code == 0);

    r = run_shell("'" + t.dir + "/predict' '" + t.run + "' '" + t.data + "' /test/x 40");
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    std::vector<size_t> dz;
    std::vector<float> z = read_logits(t.logits, dz);
    std::istringstream lines(r.out);
    std::string line;
    std::getline(lines, line);
    REQUIRE(line.find("4 classes, temperature " ) != std::string::npos);
    REQUIRE(line.find("(calibrated)") != std::string::npos);
    std::getline(lines, line); // the column names
    int rows = 0;
    double worst = 0;
    while (std::getline(lines, line)) {
        std::istringstream in(line);
        int row = -1, top = -1;
        double p[4];
        in >> row >> top >> p[0] >> p[1] >> p[2] >> p[3];
        REQUIRE(!in.fail());
        REQUIRE(row == rows);
        std::vector<double> ref = softmax_reference(&z[row * 4], 4, T);
        for (int c = 0; c < 4; c++) worst = std::max(worst, std::fabs(p[c] - ref[c]));
        REQUIRE(top == (int)(std::max_element(ref.begin(), ref.end()) - ref.begin()));
        rows++;
    }
    INFO("largest difference from eval's logits softmaxed at T = " << T << ": " << worst);
    REQUIRE(rows == 40);
    // float rounding (half an ulp, 2^-25 below 1) and 9 printed digits (5e-10 at most below 1)
    REQUIRE(worst <= std::ldexp(1.0, -25) + 1e-9);

    // Errors: a message naming what is wrong and exit status 1.
    r = run_shell("'" + t.dir + "/predict' '" + t.dir + "/absent' '" + t.data + "'");
    REQUIRE(r.exit_code == 1);
    REQUIRE(r.out == "predict: " + t.dir + "/absent: cannot open: No such file or directory\n");
    r = run_shell("'" + t.dir + "/predict' '" + t.run + "' '" + t.data + "' /test/nothing");
    REQUIRE(r.exit_code == 1);
    REQUIRE(r.out == "predict: " + t.data + ":/test/nothing: expected a dataset, found none\n");
}

TEST_CASE("the install holds kdtrain, libkd, its header and kdtrain.pc only, and libkd exports only kdtrain_ functions",
          "[api][install]")
{
    std::string prefix = kdtest::temp_dir() + "/prefix";
    Shell r = run_shell("'" KD_CMAKE_COMMAND "' --install '" KD_BINARY_DIR "' --prefix '" + prefix + "'");
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    r = run_shell("cd '" + prefix + "' && find . -type f -o -type l | sort");
    std::string libdir = r.out.find("./lib/x86_64-linux-gnu/") != std::string::npos ? "lib/x86_64-linux-gnu" : "lib";
    std::string v = kdtrain_version();
    REQUIRE(r.out == "./bin/kdtrain\n./include/kdtrain/kdtrain.h\n./" + libdir + "/libkd.so\n./" + libdir + "/libkd.so." +
                         v.substr(0, v.find('.')) + "\n./" + libdir + "/libkd.so." + v + "\n./" + libdir +
                         "/pkgconfig/kdtrain.pc\n");
    // Defined dynamic symbols: the API, and the locks of OpenMP's named critical sections,
    // which libgomp shares between libraries by name.
    r = run_shell("nm -D --defined-only '" + prefix + "/" + libdir + "/libkd.so' | awk '{print $3}'");
    REQUIRE(r.exit_code == 0);
    std::istringstream names(r.out);
    std::string name;
    int api = 0;
    while (names >> name) {
        INFO(name);
        REQUIRE((name.rfind("kdtrain_", 0) == 0 || name.rfind(".gomp_critical_user_", 0) == 0));
        api += name.rfind("kdtrain_", 0) == 0;
    }
    REQUIRE(api == 10);
}
