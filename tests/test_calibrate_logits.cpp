// kdtrain calibrate --logits as a user runs it on another framework's logits: HDF5
// files as h5py writes them and .npy pairs as numpy.save writes them, every
// calibrator compared in one report, probabilities refused or logged, and failures
// that write nothing.
#include "support.h"

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Overconfident logits of a C-class problem: the true class's logit is raised by a
// class-dependent margin, everything scaled by 4 (so the fitted T is well above 1).
struct Logits {
    int n, classes;
    std::vector<float> z;    // (n, classes)
    std::vector<int64_t> y;  // (n)
};

Logits make_logits(int n, int classes, uint64_t seed)
{
    Logits l{n, classes, {}, {}};
    std::vector<float> noise = kdtest::random_normal((size_t)n * classes, 1.0f, seed);
    std::vector<float> u = kdtest::random_uniform((size_t)n, 0.0f, 1.0f, seed + 1);
    l.z.resize((size_t)n * classes);
    l.y.resize(n);
    for (int i = 0; i < n; i++) {
        int y = std::min(classes - 1, (int)(u[i] * classes));
        l.y[i] = y;
        for (int k = 0; k < classes; k++)
            l.z[(size_t)i * classes + k] = 4.0f * (noise[(size_t)i * classes + k] + (k == y ? 1.2f : 0.0f));
    }
    return l;
}

// What h5py writes for f["logits"] = float32 array, f["labels"] = int64 array.
void write_h5(const std::string &path, const Logits &l, const char *logits_name = "logits",
              const char *labels_name = "labels", bool as_probabilities = false)
{
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hsize_t dz[2] = {(hsize_t)l.n, (hsize_t)l.classes}, dy[1] = {(hsize_t)l.n};
    std::vector<float> values = l.z;
    if (as_probabilities)
        for (int i = 0; i < l.n; i++) {
            float *z = &values[(size_t)i * l.classes];
            double top = *std::max_element(z, z + l.classes), sum = 0;
            for (int k = 0; k < l.classes; k++) sum += std::exp((double)z[k] - top);
            for (int k = 0; k < l.classes; k++) z[k] = (float)(std::exp((double)z[k] - top) / sum);
        }
    hid_t sz = H5Screate_simple(2, dz, nullptr), sy = H5Screate_simple(1, dy, nullptr);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, logits_name, H5T_IEEE_F32LE, sz, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0);
    H5Dclose(d);
    d = H5Dcreate2(f, labels_name, H5T_STD_I64LE, sy, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, l.y.data()) >= 0);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sz);
    H5Sclose(sy);
    H5Fclose(f);
}

// numpy.save's format 1.0: magic, version, header length, a dict padded with spaces
// to a multiple of 64 bytes ending in a newline, then the data in C order.
void write_npy(const std::string &path, const std::string &descr, const std::string &shape, const void *data,
               size_t bytes)
{
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header.push_back('\n');
    std::ofstream out(path, std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    uint16_t len = (uint16_t)header.size();
    out.write(reinterpret_cast<const char *>(&len), 2);
    out.write(header.data(), (std::streamsize)header.size());
    out.write(static_cast<const char *>(data), (std::streamsize)bytes);
}

void write_npy_pair(const std::string &stem, const Logits &l)
{
    write_npy(stem + "-logits.npy", "<f4", "(" + std::to_string(l.n) + ", " + std::to_string(l.classes) + ")",
              l.z.data(), l.z.size() * sizeof(float));
    write_npy(stem + "-labels.npy", "<i8", "(" + std::to_string(l.n) + ",)", l.y.data(), l.y.size() * sizeof(int64_t));
}

// NLL of softmax(z / T) in double, and the T that minimises it by golden-section
// search on log T: an independent check of the fit.
double nll_at(const Logits &l, double T)
{
    double total = 0;
    for (int i = 0; i < l.n; i++) {
        const float *z = &l.z[(size_t)i * l.classes];
        double top = *std::max_element(z, z + l.classes) / T, sum = 0;
        for (int k = 0; k < l.classes; k++) sum += std::exp(z[k] / T - top);
        total += top + std::log(sum) - z[l.y[i]] / T;
    }
    return total / l.n;
}

double best_temperature(const Logits &l)
{
    double a = std::log(0.05), b = std::log(50.0), g = (std::sqrt(5.0) - 1) / 2;
    for (int it = 0; it < 200; it++) {
        double c = b - g * (b - a), d = a + g * (b - a);
        if (nll_at(l, std::exp(c)) < nll_at(l, std::exp(d))) b = d;
        else a = c;
    }
    return std::exp((a + b) / 2);
}

double json_number_after(const std::string &json, const std::string &key, size_t from = 0)
{
    size_t at = json.find("\"" + key + "\": ", from);
    REQUIRE(at != std::string::npos);
    return std::stod(json.substr(at + key.size() + 4));
}

// The fitted T in calibration.json: the temperature calibrator's own field.
double fitted_temperature(const std::string &json)
{
    size_t method = json.find("\"method\": \"temperature\"");
    REQUIRE(method != std::string::npos);
    return json_number_after(json, "temperature", method);
}

} // namespace

TEST_CASE("calibrate --logits fits every method on h5py-style files and writes one report", "[calibrate][logits]")
{
    std::string dir = kdtest::temp_dir();
    Logits val = make_logits(1500, 5, 11), test = make_logits(1000, 5, 12);
    write_h5(dir + "/val.h5", val);
    write_h5(dir + "/test.h5", test);
    std::string out;
    int code = kdtest::run_kdtrain("calibrate --logits " + dir + "/val.h5 --test " + dir + "/test.h5 --out " + dir +
                                       "/report --method all --bootstrap 100 --noise-draws 50",
                                   &out);
    INFO(out);
    REQUIRE(code == 0);
    for (const char *f : {"calibration.json", "calibration.md", "calibrated-test.h5", "reliability-fit-before.svg",
                          "reliability-test-before.svg", "reliability-test-temperature.svg",
                          "reliability-test-matrix.svg", "reliability-test-isotonic.svg"})
        REQUIRE(kdtest::file_exists(dir + "/report/" + f));
    REQUIRE(kdtest::leftover_temporaries(dir + "/report").empty());
    std::string md = kdtest::read_text(dir + "/report/calibration.md");
    for (const char *method : {"| temperature |", "| vector |", "| matrix |", "| dirichlet |", "| histogram |",
                               "| isotonic |", "| scaling-binning |", "| ets |"})
        REQUIRE(md.find(method) != std::string::npos);
    REQUIRE(md.find("Against temperature scaling") != std::string::npos);
    REQUIRE(md.find("100 resamples") != std::string::npos);

    // T against an independent golden-section minimum of the NLL in double.
    std::string json = kdtest::read_text(dir + "/report/calibration.json");
    double T = fitted_temperature(json);
    double reference = best_temperature(val);
    REQUIRE(reference > 1.5); // the data are overconfident, as made
    REQUIRE(T == Approx(reference).epsilon(1e-5));

    // The calibrated test probabilities are softmax(z / T) of the test logits.
    std::vector<size_t> dims;
    std::vector<double> p = kdtest::h5_read_doubles(dir + "/report/calibrated-test.h5", "/temperature/probabilities", dims);
    REQUIRE(dims == std::vector<size_t>{1000, 5});
    double worst = 0;
    for (int i = 0; i < test.n; i++) {
        const float *z = &test.z[(size_t)i * 5];
        double top = *std::max_element(z, z + 5) / reference, sum = 0;
        for (int k = 0; k < 5; k++) sum += std::exp(z[k] / reference - top);
        for (int k = 0; k < 5; k++) worst = std::max(worst, std::fabs(p[(size_t)i * 5 + k] - std::exp(z[k] / reference - top) / sum));
    }
    REQUIRE(worst < 1e-6);
    REQUIRE(kdtest::h5_read_ints(dir + "/report/calibrated-test.h5", "/labels").size() == 1000);
    // logit-space methods also give their logits; binning methods only probabilities
    kdtest::h5_read_doubles(dir + "/report/calibrated-test.h5", "/matrix/logits", dims);
    REQUIRE(dims == std::vector<size_t>{1000, 5});
}

TEST_CASE("calibrate --logits reads a numpy.save pair and finds the labels beside the logits", "[calibrate][logits]")
{
    std::string dir = kdtest::temp_dir();
    Logits val = make_logits(800, 3, 21), test = make_logits(500, 3, 22);
    write_npy_pair(dir + "/val", val);
    write_npy_pair(dir + "/test", test);
    std::string out;
    int code = kdtest::run_kdtrain("calibrate --logits " + dir + "/val-logits.npy --test " + dir + "/test-logits.npy --out " +
                                       dir + "/r --bootstrap 20 --noise-draws 10",
                                   &out);
    INFO(out);
    REQUIRE(code == 0);
    std::string json = kdtest::read_text(dir + "/r/calibration.json");
    REQUIRE(fitted_temperature(json) == Approx(best_temperature(val)).epsilon(1e-5));
}

TEST_CASE("calibrate --logits refuses probabilities unless told, then fits the same T as on the logits", "[calibrate][logits]")
{
    std::string dir = kdtest::temp_dir();
    Logits val = make_logits(600, 4, 31);
    write_h5(dir + "/val.h5", val);
    write_h5(dir + "/probs.h5", val, "logits", "labels", true);
    std::string out;
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/probs.h5 --out " + dir + "/a", &out) == 1);
    REQUIRE(out.find("probabilities") != std::string::npos);
    REQUIRE(out.find("--probabilities") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/a"));
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/probs.h5 --probabilities --out " + dir +
                                    "/b --bootstrap 0 --noise-draws 0",
                                &out) == 0);
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/val.h5 --out " + dir + "/c --bootstrap 0 --noise-draws 0",
                                &out) == 0);
    // log softmax(z) differs from z by a constant a row: the same T, up to float rounding of the probabilities
    double from_probs = fitted_temperature(kdtest::read_text(dir + "/b/calibration.json"));
    double from_logits = fitted_temperature(kdtest::read_text(dir + "/c/calibration.json"));
    REQUIRE(from_probs == Approx(from_logits).epsilon(1e-4));
}

TEST_CASE("calibrate --logits reads other dataset names and refuses bad files, writing nothing", "[calibrate][logits]")
{
    std::string dir = kdtest::temp_dir();
    Logits val = make_logits(400, 4, 41), five = make_logits(300, 5, 42);
    write_h5(dir + "/named.h5", val, "/val/z", "/val/y");
    write_h5(dir + "/five.h5", five);
    std::string out;
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/named.h5:/val/z --labels :/val/y --out " + dir +
                                    "/ok --bootstrap 0 --noise-draws 0",
                                &out) == 0);
    // test file with another class count
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/named.h5:/val/z --labels :/val/y --test " + dir +
                                    "/five.h5 --out " + dir + "/bad",
                                &out) == 1);
    REQUIRE(out.find("five.h5: expected 4 classes") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/bad"));
    // missing dataset
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/named.h5 --out " + dir + "/bad", &out) == 1);
    REQUIRE(out.find("named.h5:/logits") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/bad"));
    // an unknown method, a missing --out, --model with --logits: usage errors
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/five.h5 --out " + dir + "/bad --method temprature", &out) == 2);
    REQUIRE(out.find("temprature") != std::string::npos);
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/five.h5", &out) == 2);
    REQUIRE(out.find("--out") != std::string::npos);
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/five.h5 --model x --out " + dir + "/bad", &out) == 2);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/bad"));
}

TEST_CASE("calibrate --logits does not replace an earlier report without --force", "[calibrate][logits]")
{
    std::string dir = kdtest::temp_dir();
    Logits val = make_logits(300, 3, 51);
    write_h5(dir + "/val.h5", val);
    std::string out, args = "calibrate --logits " + dir + "/val.h5 --out " + dir + "/r --bootstrap 0 --noise-draws 0";
    REQUIRE(kdtest::run_kdtrain(args, &out) == 0);
    std::string first = kdtest::read_text(dir + "/r/calibration.md");
    REQUIRE(kdtest::run_kdtrain(args + " --method vector", &out) == 2);
    REQUIRE(out.find("--force") != std::string::npos);
    REQUIRE(kdtest::read_text(dir + "/r/calibration.md") == first);
    REQUIRE(kdtest::run_kdtrain(args + " --method vector --force", &out) == 0);
    REQUIRE(kdtest::read_text(dir + "/r/calibration.md").find("| vector |") != std::string::npos);
}

TEST_CASE("calibrate --logits exits 1 naming the row on NaN, Inf, labels out of range and mismatched rows",
          "[calibrate][logits]")
{
    std::string dir = kdtest::temp_dir(), out;
    Logits good = make_logits(200, 4, 61);
    struct Case {
        const char *name, *expected;
        std::function<void(Logits &)> spoil;
    };
    std::vector<Case> cases = {
        {"nan", "expected finite logits, found NaN at row 17, column 2", [](Logits &l) { l.z[17 * 4 + 2] = NAN; }},
        {"inf", "found Inf at row 3, column 0", [](Logits &l) { l.z[3 * 4] = INFINITY; }},
        {"label", "found 4 at row 9", [](Logits &l) { l.y[9] = 4; }},
        {"negative", "found -1 at row 0", [](Logits &l) { l.y[0] = -1; }},
    };
    for (const Case &c : cases) {
        Logits bad = good;
        c.spoil(bad);
        std::string path = dir + "/" + c.name + ".h5";
        write_h5(path, bad);
        INFO(c.name);
        REQUIRE(kdtest::run_kdtrain("calibrate --logits " + path + " --out " + dir + "/r", &out) == 1);
        INFO(out);
        REQUIRE(out.find(path) != std::string::npos);
        REQUIRE(out.find(c.expected) != std::string::npos);
        REQUIRE_FALSE(kdtest::file_exists(dir + "/r"));
    }
    // labels from another file with fewer rows
    Logits shorter = make_logits(150, 4, 62);
    write_npy_pair(dir + "/short", shorter);
    write_h5(dir + "/good.h5", good);
    REQUIRE(kdtest::run_kdtrain("calibrate --logits " + dir + "/good.h5 --labels " + dir + "/short-labels.npy --out " + dir +
                                    "/r",
                                &out) == 1);
    INFO(out);
    REQUIRE(out.find("short-labels.npy") != std::string::npos);
    REQUIRE(out.find("200") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/r"));
}
