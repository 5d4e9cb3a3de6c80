// kdtrain calibrate as a user runs it: the reports, the temperature stored in the
// checkpoint and applied by eval, and a failed run that changes nothing.
#include "support.h"

#include "io/checkpoint.h"

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>

namespace {

} // namespace

TEST_CASE("calibrate writes its reports, stores T, and eval applies it", "[calibrate][smoke]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5";
    kdtest::write_cluster_dataset(data, 600, 300, 16, 4, 9);
    std::string smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini", out;
    REQUIRE(kdtest::run_kdtrain("train -c " + smoke + " --quiet --set data.path=" + data + " --set run.dir=" + dir +
                                " --set run.name=m --set train.epochs=8 --set model.dropout=0",
                                &out) == 0);
    std::string run = dir + "/m";
    std::string before = kdtest::read_text(run + "/model.h5");

    // A failing calibration (a data set of another shape) writes nothing and leaves the checkpoint alone.
    std::string other = dir + "/other.h5";
    kdtest::write_cluster_dataset(other, 300, 50, 12, 4, 1);
    REQUIRE(kdtest::run_kdtrain("calibrate --model " + run + " --data " + other, &out) == 1);
    REQUIRE(out.find("expected 16 features and 4 classes for the 16-32-4 model, found 12 and 4") != std::string::npos);
    REQUIRE(kdtest::read_text(run + "/model.h5") == before);
    REQUIRE_FALSE(kdtest::file_exists(run + "/calibration.json"));

    REQUIRE(kdtest::run_kdtrain("calibrate --model " + run + " --bootstrap 100", &out) == 0);
    INFO(out);
    for (const char *f : {"calibration.json", "calibration.md", "reliability-val-before.svg", "reliability-val-after.svg",
                          "reliability-test-before.svg", "reliability-test-after.svg"})
        REQUIRE(kdtest::file_exists(run + "/" + f));
    REQUIRE(kdtest::read_text(run + "/reliability-test-after.svg").rfind("<svg", 0) == 0);
    // every metric a row, with its interval and its resample count, calibration errors with their noise floor
    std::string md = kdtest::read_text(run + "/calibration.md");
    for (const char *row : {"| accuracy %", "| NLL |", "| ECE, equal-width bins %", "| ECE, equal-mass bins %",
                            "| debiased L2 calibration error, equal-mass bins %", "| KS calibration error %",
                            "95 % CI, 100 resamples", "over 200 draws of the labels", " (floor "})
        REQUIRE(md.find(row) != std::string::npos);
    REQUIRE(md.find("adaptive") == std::string::npos);
    std::string json = kdtest::read_text(run + "/calibration.json");
    for (const char *key : {"\"ece_equal_mass\": ", "\"rms_ce_ci_low\": ", "\"ks_ce_floor_p95\": ", "\"noise_draws\": 200"})
        REQUIRE(json.find(key) != std::string::npos);
    size_t at = json.find("\"temperature\": ");
    REQUIRE(at != std::string::npos);
    double T = std::stod(json.substr(at + 15));
    REQUIRE(T > 0);
    REQUIRE(T != 1.0);

    hid_t f = H5Fopen((run + "/model.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t g = H5Gopen2(f, "/calibration", H5P_DEFAULT);
    REQUIRE(g >= 0);
    double stored = 0;
    hid_t a = H5Aopen(g, "temperature", H5P_DEFAULT);
    REQUIRE(H5Aread(a, H5T_NATIVE_DOUBLE, &stored) >= 0);
    H5Aclose(a);
    H5Gclose(g);
    H5Fclose(f);
    REQUIRE(stored == T);

    REQUIRE(kdtest::run_kdtrain("eval --model " + run + " --out " + dir + "/scaled.json", &out) == 0);
    REQUIRE(kdtest::read_text(dir + "/scaled.json").find("\"temperature_applied\": true") != std::string::npos);
    REQUIRE(kdtest::run_kdtrain("eval --no-temperature --model " + run + " --out " + dir + "/raw.json", &out) == 0);
    std::string raw = kdtest::read_text(dir + "/raw.json"), scaled = kdtest::read_text(dir + "/scaled.json");
    REQUIRE(raw.find("\"temperature\": 1,") != std::string::npos);
    auto number = [](const std::string &j, const std::string &key) {
        return std::stod(j.substr(j.find("\"" + key + "\": ") + key.size() + 4));
    };
    REQUIRE(number(raw, "accuracy") == number(scaled, "accuracy"));
    REQUIRE(number(raw, "nll") != number(scaled, "nll"));
}

TEST_CASE("calibrate fits T on the validation split: the NLL minimum worked out here in double", "[calibrate]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5", out;
    kdtest::write_cluster_dataset(data, 600, 300, 16, 4, 9);
    std::string smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";
    // A linear model (16-4), so this test computes its logits itself.
    REQUIRE(kdtest::run_kdtrain("train -c " + smoke + " --quiet --set data.path=" + data + " --set run.dir=" + dir +
                                    " --set run.name=m --set model.layers=16,4 --set model.dropout=0",
                                &out) == 0);
    REQUIRE(kdtest::run_kdtrain("calibrate --model " + dir + "/m", &out) == 0);
    std::string json = kdtest::read_text(dir + "/m/calibration.json");
    double fitted = std::stod(json.substr(json.find("\"temperature\": ") + 15));

    std::vector<size_t> dims;
    std::vector<double> W = kdtest::h5_read_doubles(dir + "/m/model.h5", "/model/layer1/W", dims);
    std::vector<double> b = kdtest::h5_read_doubles(dir + "/m/model.h5", "/model/layer1/b", dims);
    static constexpr int D = 16, C = 4;
    // The NLL at beta = 1/T of rows [first, first + n) of a split, in double.
    auto nll_of = [&](const std::string &split, int first, int n) {
        std::vector<double> x = kdtest::h5_read_doubles(data, "/" + split + "/x", dims);
        std::vector<int32_t> y = kdtest::h5_read_ints(data, "/" + split + "/y");
        std::vector<double> z((size_t)n * C);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < C; c++) {
                double v = b[c];
                for (int j = 0; j < D; j++) v += x[(size_t)(first + i) * D + j] * W[(size_t)j * C + c];
                z[(size_t)i * C + c] = v;
            }
        return [z, y, first, n](double beta) {
            double total = 0;
            for (int i = 0; i < n; i++) {
                const double *r = &z[(size_t)i * C];
                double m = *std::max_element(r, r + C), s = 0;
                for (int c = 0; c < C; c++) s += std::exp(beta * (r[c] - m));
                total += std::log(s) - beta * (r[y[first + i]] - m);
            }
            return total / n;
        };
    };
    // Its minimum over the fit's range T in [1e-3, 1e3], by golden section on beta (the
    // NLL is convex in beta).
    auto best_T = [&](const std::function<double(double)> &nll) {
        double lo = 1e-3, hi = 1e3, g = (std::sqrt(5.0) - 1) / 2;
        for (int it = 0; it < 300; it++) {
            double a = hi - g * (hi - lo), c = lo + g * (hi - lo);
            (nll(a) < nll(c) ? hi : lo) = nll(a) < nll(c) ? c : a;
        }
        return 2 / (lo + hi);
    };
    auto val_nll = nll_of("train", 500, 100); // smoke.ini: the last 100 training rows are validation
    auto test_nll = nll_of("test", 0, 300);
    double on_val = best_T(val_nll), on_test = best_T(test_nll);
    INFO("calibrate: T = " << fitted << "; in double: on val " << on_val << ", on test " << on_test);
    REQUIRE(std::fabs(on_val - on_test) > 1e-2 * on_val); // the split makes a difference here
    REQUIRE(fitted == Approx(on_val).epsilon(1e-4));
    // The report's test rows: NLL at T = 1 before, at the fitted T after.
    auto report_nll = [&](const std::string &key) {
        size_t at = json.find("\"" + key + "\"");
        REQUIRE(at != std::string::npos);
        size_t n = json.find("\"nll\": ", at);
        return std::stod(json.substr(n + 7));
    };
    REQUIRE(report_nll("test_before") == Approx(test_nll(1.0)).epsilon(1e-6));
    REQUIRE(report_nll("test_after") == Approx(test_nll(1.0 / fitted)).epsilon(1e-6));
    REQUIRE(report_nll("fit_split_after") == Approx(val_nll(1.0 / fitted)).epsilon(1e-6));
}

TEST_CASE("a checkpoint with only /model (written by hand, as docs/CHECKPOINT.md allows) is evaluated given --data",
          "[eval]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5", out;
    kdtest::write_cluster_dataset(data, 5600, 300, 16, 4, 9); // 5000 validation rows: the default a bare checkpoint gets
    std::string smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";
    REQUIRE(kdtest::run_kdtrain("train -c " + smoke + " --quiet --set data.path=" + data + " --set run.dir=" + dir +
                                    " --set run.name=m",
                                &out) == 0);
    // The same weights in a file with /model alone.
    kd_mlp_config mc;
    kd_error err;
    REQUIRE(kd_checkpoint_read_config((dir + "/m/model.h5").c_str(), &mc, &err) == KD_OK);
    kd_mlp mlp;
    REQUIRE(kd_mlp_create(&mlp, &mc, &err) == KD_OK);
    REQUIRE(kd_checkpoint_load((dir + "/m/model.h5").c_str(), &mlp, nullptr, nullptr, nullptr, 0, nullptr, &err) == KD_OK);
    std::string bare = dir + "/bare.h5";
    REQUIRE(kd_checkpoint_save(bare.c_str(), &mlp, nullptr, nullptr, nullptr, &err) == KD_OK);
    kd_mlp_free(&mlp);

    REQUIRE(kdtest::run_kdtrain("eval --model " + bare, &out) == 2);
    REQUIRE(out.find("it has no /train group (no run config), so it names no data set; pass --data FILE") != std::string::npos);
    std::string json_bare = dir + "/bare.json", json_run = dir + "/run.json";
    REQUIRE(kdtest::run_kdtrain("eval --model " + bare + " --data " + data + " --out " + json_bare, &out) == 0);
    REQUIRE(kdtest::run_kdtrain("eval --model " + dir + "/m --out " + json_run, &out) == 0);
    // Same weights, same test split: the same metrics (the reports differ only in the model path).
    std::string a = kdtest::read_text(json_bare), b = kdtest::read_text(json_run);
    REQUIRE(a.substr(a.find("\"accuracy\"")) == b.substr(b.find("\"accuracy\"")));
}
