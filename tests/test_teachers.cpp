// Distillation from any teacher (workflows/teacher.h): logits files in place of a kdtrain
// model, ensembles of teachers combined as T log mean_k softmax(z_k / (T_k T)), each
// teacher's own temperature with distill.calibrate_teachers, the checks on a teacher file,
// and the identity a resumed run compares. Expected ensembles are worked out here in
// double from the logits the test wrote; fitted temperatures come from calling the fit
// of calib/temperature.h directly on the rows it should see.
#include "support.h"

extern "C" {
#include "calib/temperature.h"
#include "workflows/config.h"
#include "workflows/run_data.h"
#include "workflows/teacher.h"
}

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::string kSmoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";
const int kTrain = 400, kVal = 100, kClasses = 4; // write_cluster_dataset(500, ...) with smoke's val_from_train = 100

struct Fixture {
    std::string dir, data, runs;
    Fixture() : dir(kdtest::temp_dir()), data(dir + "/clusters.h5"), runs(dir + "/runs")
    {
        kdtest::write_cluster_dataset(data, kTrain + kVal, 50, 16, kClasses, 3);
    }
    std::string base(const std::string &name) const
    {
        return "-c " + kSmoke + " --quiet --set data.path=" + data + " --set run.dir=" + runs + " --set run.name=" + name +
               " --set train.epochs=2";
    }
    // The data's labels of /train/y: the training rows, then the validation rows.
    std::vector<int32_t> labels() const { return kdtest::h5_read_ints(data, "/train/y"); }
};

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

bool same_parameters(const std::string &a, const std::string &b)
{
    return kdtest::model_parameters(a) == kdtest::model_parameters(b);
}

// numpy.save's format 1.0, little-endian float32, C order.
void write_npy(const std::string &path, const std::vector<float> &v, int rows, int cols)
{
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                         std::to_string(cols) + "), }";
    while ((10 + header.size() + 1) % 64) header += ' ';
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    uint16_t len = (uint16_t)header.size();
    out.write(reinterpret_cast<const char *>(&len), 2);
    out << header;
    out.write(reinterpret_cast<const char *>(v.data()), (std::streamsize)(v.size() * sizeof(float)));
}

// An HDF5 file with float32 logits at `name` and, when given, int32 labels at /labels.
void write_h5(const std::string &path, const std::string &name, const std::vector<float> &v, int rows, int cols,
              const std::vector<int32_t> &labels = {})
{
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t space = H5Screate_simple(2, dims, nullptr);
    hid_t d = H5Dcreate2(f, name.c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
    H5Dclose(d);
    H5Sclose(space);
    if (!labels.empty()) {
        hsize_t n = labels.size();
        space = H5Screate_simple(1, &n, nullptr);
        d = H5Dcreate2(f, "/labels", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data()) >= 0);
        H5Dclose(d);
        H5Sclose(space);
    }
    H5Pclose(lcpl);
    H5Fclose(f);
}

// Teacher logits that agree with the data's labels more often than not: a margin of
// `margin` on the label's class plus noise, rows x classes.
std::vector<float> plausible_logits(const std::vector<int32_t> &labels, int rows, double margin, uint64_t seed)
{
    std::vector<float> z = kdtest::random_normal((size_t)rows * kClasses, 1.5f, seed);
    for (int i = 0; i < rows; i++) z[(size_t)i * kClasses + labels[i]] += (float)margin;
    return z;
}

// log softmax(z / T) of one row, in double.
std::vector<double> log_softmax(const float *z, int classes, double T)
{
    std::vector<double> u(classes), l(classes);
    double m = -INFINITY, sum = 0;
    for (int c = 0; c < classes; c++) m = std::max(m, u[c] = (double)z[c] / T);
    for (int c = 0; c < classes; c++) sum += std::exp(u[c] - m);
    for (int c = 0; c < classes; c++) l[c] = u[c] - m - std::log(sum);
    return l;
}

// The C API's view of a run: the smoke config on the fixture's data, with keys set.
struct Loaded {
    kd_config config;
    kd_dataset ds;
    kd_tape tape;
    kd_teacher_logits t;
    kd_error err;
    int rc = 0;
    Loaded(const Fixture &fx, const std::vector<std::string> &sets)
    {
        std::memset(&ds, 0, sizeof ds);
        std::memset(&t, 0, sizeof t);
        kd_error_clear(&err);
        kd_config_defaults(&config);
        REQUIRE(kd_config_load_file(&config, kSmoke.c_str(), &err) == KD_OK);
        REQUIRE(kd_config_set(&config, ("data.path=" + fx.data).c_str(), &err) == KD_OK);
        for (const std::string &s : sets) REQUIRE(kd_config_set(&config, s.c_str(), &err) == KD_OK);
        REQUIRE(kd_run_data_open(&config, fx.data.c_str(), false, &ds, &err) == KD_OK);
        REQUIRE(kd_dataset_load(&ds, KD_SPLIT_TRAIN, &err) == KD_OK);
        REQUIRE(kd_dataset_load(&ds, KD_SPLIT_VAL, &err) == KD_OK);
        kd_tape_init(&tape, 0);
        rc = kd_teacher_logits_load(&t, nullptr, &config, &ds, &tape, &err);
    }
    ~Loaded()
    {
        kd_teacher_logits_free(&t);
        kd_tape_free(&tape);
        kd_dataset_close(&ds);
    }
};

} // namespace

TEST_CASE("distilling from a logits file of a kdtrain teacher's training logits gives the weights of distilling from the teacher",
          "[teachers]")
{
    Fixture fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("t")) == 0);
    // The teacher's own cache, written by the C API (the logits kdtrain distils from).
    std::vector<float> z;
    {
        Loaded l(fx, {"distill.teacher=" + fx.runs + "/t"});
        REQUIRE(l.rc == KD_OK);
        REQUIRE(l.t.n_members == 1);
        REQUIRE(l.t.member[0].kind == KD_TEACHER_MODEL);
        z.assign(l.t.logits, l.t.logits + (size_t)kTrain * kClasses);
    }
    write_h5(fx.dir + "/t-train.h5", "/logits", z, kTrain, kClasses);
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("from-model") + " --teacher " + fx.runs + "/t") == 0);
    std::string out;
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("from-file") + " --teacher " + fx.dir + "/t-train.h5", &out) == 0);
    REQUIRE(same_parameters(fx.runs + "/from-model/model.h5", fx.runs + "/from-file/model.h5"));
    // --teacher FILE is recognised as logits (no /model group) and recorded as such.
    std::string config = kdtest::read_text(fx.runs + "/from-file/config.ini");
    REQUIRE(has(config, "teacher_logits = " + fx.dir + "/t-train.h5\n"));
    REQUIRE(has(config, "\nteacher = \n"));
    std::string log = kdtest::read_text(fx.runs + "/from-file/train.log");
    REQUIRE(has(log, "teacher " + fx.dir + "/t-train.h5 (logits [400 x 4] float32: 400 training rows, fnv1a64 "));
    REQUIRE(has(log, "logits of 400 training rows cached"));
    REQUIRE(has(kdtest::read_text(fx.runs + "/from-file/summary.json"), "\"teacher\": \"" + fx.dir + "/t-train.h5 [fnv1a64 "));
}

TEST_CASE("an npy file and an HDF5 dataset with the same logits, and a file with the validation rows after them, give the same weights",
          "[teachers]")
{
    Fixture fx;
    std::vector<int32_t> y = fx.labels();
    std::vector<float> z = plausible_logits(y, kTrain + kVal, 2.0, 11);
    std::vector<float> train(z.begin(), z.begin() + (size_t)kTrain * kClasses);
    write_npy(fx.dir + "/z.npy", train, kTrain, kClasses);
    write_h5(fx.dir + "/z.h5", "/teacher/z", train, kTrain, kClasses);
    write_h5(fx.dir + "/all.h5", "/logits", z, kTrain + kVal, kClasses, y); // labels beside: the row order checked
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("npy") + " --set distill.teacher_logits=" + fx.dir + "/z.npy") == 0);
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("h5") + " --set distill.teacher_logits=" + fx.dir + "/z.h5:/teacher/z") == 0);
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("all") + " --set distill.teacher_logits=" + fx.dir + "/all.h5") == 0);
    REQUIRE(same_parameters(fx.runs + "/npy/model.h5", fx.runs + "/h5/model.h5"));
    REQUIRE(same_parameters(fx.runs + "/npy/model.h5", fx.runs + "/all/model.h5"));
    REQUIRE(has(kdtest::read_text(fx.runs + "/all/train.log"), "400 training + 100 validation rows"));
}

TEST_CASE("bad teacher files are refused with a message naming the file and leave no run folder", "[teachers]")
{
    Fixture fx;
    std::vector<int32_t> y = fx.labels();
    std::vector<float> z = plausible_logits(y, kTrain + kVal, 2.0, 12);
    std::vector<float> train(z.begin(), z.begin() + (size_t)kTrain * kClasses);
    const std::string d = fx.dir + "/";
    write_npy(d + "rows.npy", std::vector<float>(z.begin(), z.begin() + 450 * kClasses), 450, kClasses);
    write_npy(d + "classes.npy", std::vector<float>((size_t)kTrain * 5, 0.5f), kTrain, 5);
    std::vector<float> nan = train;
    nan[7 * kClasses + 2] = NAN;
    write_npy(d + "nan.npy", nan, kTrain, kClasses);
    write_h5(d + "named.h5", "/teacher/z", train, kTrain, kClasses);
    write_npy(d + "whole.npy", train, kTrain, kClasses);
    {
        std::string bytes = kdtest::read_text(d + "whole.npy");
        std::ofstream(d + "truncated.npy", std::ios::binary) << bytes.substr(0, bytes.size() - 100);
    }
    std::vector<float> probs((size_t)kTrain * kClasses, 0.25f);
    write_npy(d + "probs.npy", probs, kTrain, kClasses);
    std::vector<int32_t> shuffled = y;
    std::swap(shuffled[3], shuffled[300]);
    REQUIRE(shuffled[3] != y[3]);
    write_h5(d + "order.h5", "/logits", z, kTrain + kVal, kClasses, shuffled);
    struct Case {
        std::string spec, message;
        std::vector<std::string> more = {};
    };
    std::vector<Case> cases = {
        {d + "rows.npy", d + "rows.npy: expected a row for each training row of " + fx.data + " in its order (400), "
                         "optionally followed by the validation rows (500 in all), found 450"},
        {d + "classes.npy", d + "classes.npy: expected 4 classes like " + fx.data + ", found 5"},
        {d + "nan.npy", d + "nan.npy: expected finite logits, found NaN at row 7, column 2"},
        {d + "named.h5:/teacher/y", d + "named.h5:/teacher/y: expected a dataset, found none"},
        {d + "truncated.npy", d + "truncated.npy: expected ", {"the file is truncated"}},
        {d + "probs.npy", d + "probs.npy: expected logits, found rows that all lie in [0, 1] and sum to 1"},
        {d + "order.h5", d + "order.h5:/logits: row 3 is labelled " + std::to_string(shuffled[3]) + " in " + d +
                             "order.h5:/labels but the data's training row 3 is " + std::to_string(y[3])},
    };
    for (const Case &c : cases) {
        std::string out;
        INFO(c.spec);
        REQUIRE(kdtest::run_kdtrain("distill " + fx.base("x") + " --set distill.teacher_logits=" + c.spec, &out) != 0);
        INFO(out);
        REQUIRE(has(out, "distill.teacher_logits: " + c.message));
        for (const std::string &m : c.more) REQUIRE(has(out, m));
        REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/x"));
    }
    // A teacher's own temperature needs its validation rows.
    std::string out;
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("x") + " --set distill.teacher_logits=" + d +
                                    "whole.npy --set distill.calibrate_teachers=true",
                                &out) != 0);
    REQUIRE(has(out, "distill.teacher_logits: " + d + "whole.npy: distill.calibrate_teachers fits its T on its validation rows, "
                     "but the file has only the 400 training rows; expected the training rows followed by the 100 "
                     "validation rows (500 in all)"));
    REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/x"));
}

TEST_CASE("an ensemble's cached logits are T log of the mean of its teachers' softmax at T, worked out here in double",
          "[teachers]")
{
    Fixture fx;
    std::vector<int32_t> y = fx.labels();
    std::vector<float> a = plausible_logits(y, kTrain, 2.0, 21), b = plausible_logits(y, kTrain, 0.5, 22),
                       c = kdtest::random_normal((size_t)kTrain * kClasses, 4.0f, 23);
    write_npy(fx.dir + "/a.npy", a, kTrain, kClasses);
    write_h5(fx.dir + "/b.h5", "/logits", b, kTrain, kClasses);
    write_npy(fx.dir + "/c.npy", c, kTrain, kClasses);
    const double T = 2.5;
    Loaded l(fx, {"distill.temperature=2.5", "distill.teachers=" + fx.dir + "/a.npy, " + fx.dir + "/b.h5," + fx.dir + "/c.npy"});
    INFO(l.err.message);
    REQUIRE(l.rc == KD_OK);
    REQUIRE(l.t.n_members == 3);
    double worst = 0, worst_p = 0;
    int correct = 0;
    for (int i = 0; i < kTrain; i++) {
        const float *z[3] = {&a[(size_t)i * kClasses], &b[(size_t)i * kClasses], &c[(size_t)i * kClasses]};
        std::vector<double> pbar(kClasses, 0.0);
        for (const float *zk : z) {
            std::vector<double> lk = log_softmax(zk, kClasses, T);
            for (int k = 0; k < kClasses; k++) pbar[k] += std::exp(lk[k]) / 3;
        }
        const float *cache = l.t.logits + (size_t)i * kClasses;
        std::vector<double> p = log_softmax(cache, kClasses, T);
        int top = 0;
        for (int k = 0; k < kClasses; k++) {
            double want = T * std::log(pbar[k]);
            worst = std::max(worst, std::fabs(cache[k] - want) / std::max(1.0, std::fabs(want)));
            worst_p = std::max(worst_p, std::fabs(std::exp(p[k]) - pbar[k]));
            if (pbar[k] > pbar[top]) top = k;
        }
        correct += top == y[i];
    }
    INFO("largest relative |cache - T log pbar| " << worst << ", largest |softmax(cache / T) - pbar| " << worst_p);
    REQUIRE(worst <= 1e-6); // float32 rounding of the stored logits
    REQUIRE(worst_p <= 1e-6);
    REQUIRE(l.t.train_accuracy == Approx((double)correct / kTrain).margin(1e-12));
    // The identity names each file with its fingerprint, in order.
    REQUIRE(has(l.t.identity, fx.dir + "/a.npy [fnv1a64 "));
    REQUIRE(has(l.t.identity, "], " + fx.dir + "/b.h5 [fnv1a64 "));
}

TEST_CASE("an ensemble of a teacher with itself has that teacher's probabilities", "[teachers]")
{
    Fixture fx;
    std::vector<float> a = plausible_logits(fx.labels(), kTrain, 3.0, 31);
    write_npy(fx.dir + "/a.npy", a, kTrain, kClasses);
    const double T = 3;
    Loaded l(fx, {"distill.temperature=3", "distill.teachers=" + fx.dir + "/a.npy, " + fx.dir + "/a.npy"});
    REQUIRE(l.rc == KD_OK);
    double worst = 0;
    for (int i = 0; i < kTrain; i++) {
        std::vector<double> want = log_softmax(&a[(size_t)i * kClasses], kClasses, T),
                            got = log_softmax(l.t.logits + (size_t)i * kClasses, kClasses, T);
        for (int k = 0; k < kClasses; k++) worst = std::max(worst, std::fabs(std::exp(got[k]) - std::exp(want[k])));
    }
    INFO("largest probability difference " << worst);
    REQUIRE(worst <= 1e-6);
    REQUIRE(l.t.train_accuracy == l.t.member[0].train_accuracy);
}

TEST_CASE("the ensemble stays finite and exact at T = 0.05 with logits of 1e3", "[teachers]")
{
    // Row 0: the teachers disagree by 2000 logits; row 1: one class far below in both.
    std::vector<float> a = {1000, -1000, 0, 1000, -1000, 0}, b = {-1000, 1000, 0, 1000, 1000, -1000};
    const float *z[2] = {a.data(), b.data()};
    double scale[2] = {1, 1};
    std::vector<float> out(6);
    kd_error err;
    REQUIRE(kd_teacher_combine(out.data(), z, scale, 2, 2, 3, 0.05, &err) == KD_OK);
    // In double from the definition, each logsumexp about its largest term.
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 3; c++) {
            std::vector<double> la = log_softmax(&a[(size_t)i * 3], 3, 0.05), lb = log_softmax(&b[(size_t)i * 3], 3, 0.05);
            double m = std::max(la[c], lb[c]);
            double want = 0.05 * (m + std::log(std::exp(la[c] - m) + std::exp(lb[c] - m)) - std::log(2.0));
            INFO("row " << i << ", class " << c << ": " << out[(size_t)i * 3 + c] << " against " << want);
            REQUIRE(std::isfinite(out[(size_t)i * 3 + c]));
            REQUIRE(std::fabs(out[(size_t)i * 3 + c] - want) <= 1e-6 * std::max(1.0, std::fabs(want)));
        }
    // By hand: at T = 0.05 each softmax is one-hot to within e^-40000. Row 0's teachers
    // pick classes 0 and 1: pbar = (1/2, 1/2, e^-20000), class 2's logit 1000 below both
    // winners, so T log pbar = (0.05 log 1/2, 0.05 log 1/2, 0.05 (-20000)).
    REQUIRE(out[0] == Approx(0.05 * std::log(0.5)).epsilon(1e-6));
    REQUIRE(out[1] == Approx(0.05 * std::log(0.5)).epsilon(1e-6));
    REQUIRE(out[2] == Approx(-1000.0).epsilon(1e-6));
}

TEST_CASE("calibrate_teachers divides each teacher's logits by its own temperature", "[teachers]")
{
    Fixture fx;
    std::vector<int32_t> y = fx.labels();
    // Overconfident logits (plausible ones made three times as large): their T is above 1.
    std::vector<float> z = plausible_logits(y, kTrain + kVal, 1.5, 41);
    for (float &v : z) v *= 3;
    write_npy(fx.dir + "/z.npy", z, kTrain + kVal, kClasses);
    kd_temperature_fit fit;
    kd_error err;
    REQUIRE(kd_temperature_solve(z.data() + (size_t)kTrain * kClasses, y.data() + kTrain, kVal, kClasses, &fit, &err) == KD_OK);
    REQUIRE(fit.temperature > 1.2);
    {
        Loaded l(fx, {"distill.teacher_logits=" + fx.dir + "/z.npy", "distill.calibrate_teachers=true"});
        INFO(l.err.message);
        REQUIRE(l.rc == KD_OK);
        REQUIRE(l.t.member[0].temperature == fit.temperature);
        REQUIRE(std::string(l.t.member[0].temperature_from) == "fitted on validation");
        for (size_t i = 0; i < (size_t)kTrain * kClasses; i++) REQUIRE(l.t.logits[i] == (float)((double)z[i] / fit.temperature));
    }
    // A kdtrain teacher: its stored calibration when it has one, else the same fit on its
    // validation logits (which kdtrain calibrate, fitting on the same split, then stores).
    // One epoch: a teacher whose validation rows are not separable (after four its fit and
    // calibrate's both stopped at the bound 0.001, and their agreement proved nothing).
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("t") + " --set train.epochs=1 --set model.dropout=0") == 0);
    double fitted = 0;
    {
        Loaded l(fx, {"distill.teacher=" + fx.runs + "/t", "distill.calibrate_teachers=true"});
        REQUIRE(l.rc == KD_OK);
        REQUIRE(std::string(l.t.member[0].temperature_from) == "fitted on validation");
        fitted = l.t.member[0].temperature;
    }
    INFO("the teacher's fitted T " << fitted);
    REQUIRE(fitted > 0.01);
    REQUIRE(fitted < 100);
    REQUIRE(kdtest::run_kdtrain("calibrate --model " + fx.runs + "/t") == 0);
    double stored = 0;
    {
        hid_t f = H5Fopen((fx.runs + "/t/model.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        REQUIRE(f >= 0);
        hid_t a = H5Aopen_by_name(f, "/calibration", "temperature", H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(a >= 0);
        REQUIRE(H5Aread(a, H5T_NATIVE_DOUBLE, &stored) >= 0);
        H5Aclose(a);
        H5Fclose(f);
    }
    REQUIRE(fitted == Approx(stored).epsilon(1e-5)); // the same rows, evaluated in other batches
    {
        // And in an ensemble with the file: each divided by its own T before the mean.
        Loaded l(fx, {"distill.teachers=" + fx.runs + "/t, " + fx.dir + "/z.npy", "distill.calibrate_teachers=true",
                      "distill.temperature=2"});
        INFO(l.err.message);
        REQUIRE(l.rc == KD_OK);
        REQUIRE(l.t.member[0].temperature == stored);
        REQUIRE(std::string(l.t.member[0].temperature_from) == "its checkpoint's calibration");
        REQUIRE(l.t.member[1].temperature == fit.temperature);
        REQUIRE(!std::isnan(l.t.member[0].val_accuracy));
    }
}

TEST_CASE("calibrate_teachers says when a teacher's fitted temperature is at the fit's lower bound", "[teachers]")
{
    // Every validation label's logit 20 above the others': separable rows, whose NLL falls
    // as T falls, so the fit stops at its bound 0.001 and the teacher's softmax at T is
    // one-hot. The log must say so, not pass it as an ordinary fit.
    Fixture fx;
    std::vector<int32_t> y = fx.labels();
    std::vector<float> z((size_t)(kTrain + kVal) * kClasses, 0.0f);
    for (int i = 0; i < kTrain + kVal; i++) z[(size_t)i * kClasses + y[i]] = 20.0f;
    write_npy(fx.dir + "/z.npy", z, kTrain + kVal, kClasses);
    Loaded l(fx, {"distill.teacher_logits=" + fx.dir + "/z.npy", "distill.calibrate_teachers=true"});
    INFO(l.err.message);
    REQUIRE(l.rc == KD_OK);
    REQUIRE(l.t.member[0].temperature == 1e-3);
    REQUIRE(has(l.t.member[0].temperature_from, "at the fit's lower bound"));
}

TEST_CASE("a resumed distillation refuses a teacher file whose logits changed and accepts a moved copy", "[teachers]")
{
    Fixture fx;
    std::vector<int32_t> y = fx.labels();
    std::vector<float> z = plausible_logits(y, kTrain, 2.0, 51), other = plausible_logits(y, kTrain, 2.0, 52);
    write_npy(fx.dir + "/z.npy", z, kTrain, kClasses);
    std::string file = " --set distill.teacher_logits=" + fx.dir + "/z.npy";
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("whole") + file) == 0);
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("parts") + file + " --stop-after 1") == 0);
    std::string log = kdtest::read_text(fx.runs + "/parts/train.log");
    write_npy(fx.dir + "/z.npy", other, kTrain, kClasses);
    std::string out;
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/parts", &out) == 2);
    INFO(out);
    REQUIRE(has(out, fx.runs + "/parts was distilled from " + fx.dir + "/z.npy [fnv1a64 "));
    REQUIRE(has(out, "], not " + fx.dir + "/z.npy [fnv1a64 "));
    REQUIRE(kdtest::read_text(fx.runs + "/parts/train.log") == log); // a refused resume leaves the log alone
    // train --resume of it would drop the teacher: refused, naming distill --resume.
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + fx.runs + "/parts", &out) == 2);
    REQUIRE(has(out, "resume it with kdtrain distill --resume " + fx.runs + "/parts"));
    // The same content elsewhere is the same teacher: the run ends as an uninterrupted one.
    write_npy(fx.dir + "/copy.npy", z, kTrain, kClasses);
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/parts --teacher " + fx.dir + "/copy.npy", &out) == 0);
    REQUIRE(same_parameters(fx.runs + "/whole/model.h5", fx.runs + "/parts/model.h5"));
}

TEST_CASE("train --resume of a run distilled from a logits file named by distill.teacher names distill --resume alone",
          "[teachers]")
{
    // The recorded teacher of a file is "SPEC [fnv1a64 HEX]", no path to give --teacher;
    // config.ini names the file, so `distill --resume RUN` alone finds it again.
    Fixture fx;
    write_npy(fx.dir + "/z.npy", plausible_logits(fx.labels(), kTrain, 2.0, 55), kTrain, kClasses);
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("p") + " --set distill.teacher=" + fx.dir + "/z.npy --stop-after 1") == 0);
    std::string out;
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + fx.runs + "/p", &out) == 2);
    INFO(out);
    REQUIRE(has(out, "resume it with kdtrain distill --resume " + fx.runs + "/p\n"));
    REQUIRE_FALSE(has(out, "--teacher"));
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/p", &out) == 0);
}

TEST_CASE("the teacher keys are mutually exclusive and a run names its teacher one way", "[teachers][config]")
{
    Fixture fx;
    write_npy(fx.dir + "/z.npy", plausible_logits(fx.labels(), kTrain, 2.0, 61), kTrain, kClasses);
    struct Case {
        std::string args, message;
    };
    std::vector<Case> cases = {
        {" --set distill.teacher=" + fx.runs + "/t --set distill.teachers=" + fx.dir + "/z.npy",
         "distill.teachers: expected one of distill.teacher, distill.teacher_logits and distill.teachers, found 2 set"},
        {" --set distill.teacher_logits=" + fx.dir + "/z.npy --set distill.teacher=" + fx.runs + "/t",
         "found 2 set"},
        {" --set distill.teachers=" + fx.dir + "/z.npy --teacher " + fx.dir + "/z.npy",
         "--teacher " + fx.dir + "/z.npy: cannot be combined with distill.teachers"},
        {" --set distill.teachers=" + fx.dir + "/z.npy,,", "distill.teachers: expected run folders, checkpoints or logits files "
                                                            "separated by commas, found an empty item"},
    };
    for (const Case &c : cases) {
        std::string out;
        INFO(c.args);
        REQUIRE(kdtest::run_kdtrain("distill " + fx.base("x") + c.args, &out) == 2);
        INFO(out);
        REQUIRE(has(out, c.message));
        REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/x"));
    }
}

TEST_CASE("an ensemble run logs each teacher and records them all", "[teachers]")
{
    Fixture fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("t")) == 0);
    write_npy(fx.dir + "/z.npy", plausible_logits(fx.labels(), kTrain, 2.0, 71), kTrain, kClasses);
    std::string teachers = " --set distill.teachers=" + fx.runs + "/t," + fx.dir + "/z.npy";
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("ens") + teachers) == 0);
    std::string log = kdtest::read_text(fx.runs + "/ens/train.log");
    INFO(log);
    REQUIRE(has(log, "teacher 1/2 " + fx.runs + "/t/model.h5 (16-32-4): T = 1.0000, train accuracy "));
    REQUIRE(has(log, "teacher 2/2 " + fx.dir + "/z.npy (logits [400 x 4] float32: 400 training rows, fnv1a64 "));
    REQUIRE(has(log, "teacher ensemble of 2 teachers (distill.teachers) (T log mean_k softmax(z_k / (T_k T)), T = 2): "
                     "logits of 400 training rows cached"));
    std::string summary = kdtest::read_text(fx.runs + "/ens/summary.json");
    REQUIRE(has(summary, "\"teacher\": \"" + fx.runs + "/t, " + fx.dir + "/z.npy [fnv1a64 "));
    // Resumed with the same teachers from config.ini alone.
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("ens2") + teachers + " --stop-after 1") == 0);
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/ens2") == 0);
    REQUIRE(same_parameters(fx.runs + "/ens/model.h5", fx.runs + "/ens2/model.h5"));
}

TEST_CASE("a pipeline run line that names a teacher file distils from it, not from the pipeline's teacher", "[teachers][pipeline]")
{
    Fixture fx;
    write_npy(fx.dir + "/z.npy", plausible_logits(fx.labels(), kTrain, 2.0, 81), kTrain, kClasses);
    std::string ini = fx.dir + "/pipe.ini";
    std::ofstream(ini) << "[pipeline]\ntitle = Files\ndata = " << fx.data << "\nruns = " << fx.runs << "\nout = " << fx.dir
                       << "/out\nseeds = 1\nteacher = " << kSmoke << " train.epochs=2\n\n"
                       << "[regime.r]\nrun.kd = distill " << kSmoke << " model.layers=16,8,4 train.epochs=2\n"
                       << "run.file = distill " << kSmoke << " model.layers=16,8,4 train.epochs=2 distill.teacher_logits="
                       << fx.dir << "/z.npy\n";
    std::string out;
    REQUIRE(kdtest::run_kdtrain("run --quiet -c " + ini, &out) == 0);
    INFO(out);
    REQUIRE(has(kdtest::read_text(fx.runs + "/r-kd-s1/summary.json"), "\"teacher\": \"" + fx.runs + "/teacher\""));
    REQUIRE(has(kdtest::read_text(fx.runs + "/r-file-s1/summary.json"), "\"teacher\": \"" + fx.dir + "/z.npy [fnv1a64 "));
}
