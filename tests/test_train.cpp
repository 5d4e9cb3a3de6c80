// kdtrain train / distill / eval end to end on a tiny generated data set, as a
// user runs them: the run folder, determinism, bit-exact resume, and every bad
// config rejected with exit code 2, a message naming section.key, and nothing written.
#include "support.h"

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace {

const std::string kSmoke = kdtest::smoke_config();
using Fixture = kdtest::SmokeRuns;

std::vector<double> read_param(const std::string &file, const std::string &name)
{
    std::vector<size_t> dims;
    return kdtest::h5_read_doubles(file, name, dims);
}

bool same_parameters(const std::string &a, const std::string &b)
{
    return kdtest::model_parameters(a) == kdtest::model_parameters(b);
}

// An attribute of a checkpoint's /train group, as a double.
double train_attr(const std::string &file, const char *name)
{
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t a = H5Aopen_by_name(f, "/train", name, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(a >= 0);
    double v = 0;
    REQUIRE(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    return v;
}

// The double value after `"key": ` in a JSON text.
double json_number(const std::string &json, const std::string &key)
{
    size_t at = json.find("\"" + key + "\": ");
    REQUIRE(at != std::string::npos);
    return std::stod(json.substr(at + key.size() + 4));
}

} // namespace

TEST_CASE("a distillation step is the gradient of alpha T^2 KL + (1 - alpha) CE, worked out here in double",
          "[train][distill]")
{
    // A linear teacher and a linear student (16-4), plain SGD, one batch of all 400
    // training rows: epoch 2 takes exactly one step from epoch-001.h5's weights, which
    // this test recomputes from the data file and the teacher's weights. With
    // data.labelled = 150, rows 150.. are a transfer set: their alpha is 1.
    Fixture fx;
    const double T = 4, alpha = 0.7, lr = 0.5;
    const std::string linear = " --set model.layers=16,4 --set model.dropout=0";
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("t") + linear + " --set train.epochs=2") == 0);
    for (int labelled : {0, 150}) {
        char opts[320];
        std::snprintf(opts, sizeof opts,
                      " --set train.optimizer=sgd --set train.momentum=0 --set train.lr=%g --set train.schedule=constant"
                      " --set train.batch_size=400 --set train.epochs=2 --set train.checkpoints=every"
                      " --set distill.temperature=%g --set distill.alpha=%g --set data.labelled=%d",
                      lr, T, alpha, labelled);
        std::string name = "s" + std::to_string(labelled);
        REQUIRE(kdtest::run_kdtrain("distill " + fx.base(name) + linear + opts + " --teacher " + fx.runs + "/t") == 0);

        std::vector<size_t> dims;
        std::vector<double> x = kdtest::h5_read_doubles(fx.data, "/train/x", dims);
        std::vector<int32_t> y = kdtest::h5_read_ints(fx.data, "/train/y");
        const int n = 400, D = 16, C = 4; // the last 100 of the 500 rows are validation
        REQUIRE(dims[1] == (size_t)D);
        std::string e1 = fx.runs + "/" + name + "/epoch-001.h5", e2 = fx.runs + "/" + name + "/epoch-002.h5",
                    tm = fx.runs + "/t/model.h5";
        std::vector<double> W = read_param(e1, "/model/layer1/W"), b = read_param(e1, "/model/layer1/b");
        std::vector<double> Wt = read_param(tm, "/model/layer1/W"), bt = read_param(tm, "/model/layer1/b");
        std::vector<double> W2 = read_param(e2, "/model/layer1/W"), b2 = read_param(e2, "/model/layer1/b");
        auto softmax = [&](const double *z, double temp, double *p) {
            double m = *std::max_element(z, z + C), sum = 0;
            for (int c = 0; c < C; c++) sum += (p[c] = std::exp((z[c] - m) / temp));
            for (int c = 0; c < C; c++) p[c] /= sum;
        };
        // dL/dz = a T (softmax(z/T) - softmax(t/T)) + (1 - a)(softmax(z) - onehot(y)), over n,
        // a = alpha for a labelled row and 1 for a transfer row
        std::vector<double> gW((size_t)D * C, 0.0), gb(C, 0.0);
        for (int i = 0; i < n; i++) {
            double a = labelled && i >= labelled ? 1.0 : alpha;
            double z[C], t[C], ps[C], pt[C], p1[C];
            for (int c = 0; c < C; c++) {
                z[c] = b[c];
                t[c] = bt[c];
                for (int j = 0; j < D; j++) {
                    z[c] += x[(size_t)i * D + j] * W[(size_t)j * C + c];
                    t[c] += x[(size_t)i * D + j] * Wt[(size_t)j * C + c];
                }
            }
            softmax(z, T, ps);
            softmax(t, T, pt);
            softmax(z, 1.0, p1);
            for (int c = 0; c < C; c++) {
                double g = (a * T * (ps[c] - pt[c]) + (1 - a) * (p1[c] - (c == y[i]))) / n;
                gb[c] += g;
                for (int j = 0; j < D; j++) gW[(size_t)j * C + c] += x[(size_t)i * D + j] * g;
            }
        }
        double worst = 0, step = 0;
        for (size_t k = 0; k < gW.size(); k++) {
            worst = std::max(worst, std::fabs((W2[k] - W[k]) + lr * gW[k]));
            step = std::max(step, std::fabs(lr * gW[k]));
        }
        for (int c = 0; c < C; c++) worst = std::max(worst, std::fabs((b2[c] - b[c]) + lr * gb[c]));
        INFO("data.labelled = " << labelled << ": largest step " << step << ", largest |kdtrain - double| " << worst);
        REQUIRE(step > 1e-3);
        REQUIRE(worst <= 1e-4 * step);
    }
}

TEST_CASE("train, distill and eval run end to end and fill the run folder", "[train][smoke]")
{
    Fixture fx;
    std::string out;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("teacher"), &out) == 0);
    std::string run = fx.runs + "/teacher";
    for (const char *f : {"config.ini", "metrics.csv", "train.log", "model.h5", "best.h5", "summary.json"})
        REQUIRE(kdtest::file_exists(run + "/" + f));
    std::string csv = kdtest::read_text(run + "/metrics.csv");
    REQUIRE(std::count(csv.begin(), csv.end(), '\n') == 5); // header + 4 epochs
    REQUIRE(json_number(kdtest::read_text(run + "/summary.json"), "final_val_accuracy") > 0.8); // chance is 0.25
    REQUIRE(kdtest::read_text(run + "/config.ini").find("path = " + fx.data) != std::string::npos);

    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("student") + " --set model.layers=16,8,4 --teacher " + run, &out) == 0);
    std::string student = fx.runs + "/student";
    REQUIRE(kdtest::read_text(student + "/train.log").find("logits of 400 training rows cached") != std::string::npos);
    REQUIRE(json_number(kdtest::read_text(student + "/summary.json"), "final_val_accuracy") > 0.5); // chance is 0.25

    REQUIRE(kdtest::run_kdtrain("eval --model " + student + " --logits " + fx.dir + "/logits.h5", &out) == 0);
    std::string report = kdtest::read_text(student + "/eval-test.json");
    REQUIRE(json_number(report, "samples") == 200);
    REQUIRE(json_number(report, "accuracy") > 0.5);
    REQUIRE(report.find("\"confusion\"") != std::string::npos);
    std::vector<size_t> dims;
    kdtest::h5_read_doubles(fx.dir + "/logits.h5", "logits", dims);
    REQUIRE(dims == std::vector<size_t>{200, 4});
}

TEST_CASE("a taken run name gets a suffix instead of overwriting", "[train]")
{
    Fixture fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("same") + " --set train.epochs=1") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("same") + " --set train.epochs=1") == 0);
    REQUIRE(kdtest::file_exists(fx.runs + "/same/model.h5"));
    REQUIRE(kdtest::file_exists(fx.runs + "/same-2/model.h5"));
}

TEST_CASE("the same seed gives the same weights, and another seed does not", "[train]")
{
    Fixture fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("a")) == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("b")) == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("c") + " --set train.seed=8") == 0);
    REQUIRE(same_parameters(fx.runs + "/a/model.h5", fx.runs + "/b/model.h5"));
    REQUIRE_FALSE(same_parameters(fx.runs + "/a/model.h5", fx.runs + "/c/model.h5"));
}

TEST_CASE("a resumed run ends with the weights of an uninterrupted one, bit for bit", "[train]")
{
    Fixture fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("whole")) == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("parts") + " --stop-after 2") == 0);
    REQUIRE_FALSE(same_parameters(fx.runs + "/whole/model.h5", fx.runs + "/parts/model.h5"));
    REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/parts/summary.json")); // not finished: not reusable
    std::string out;
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + fx.runs + "/parts", &out) == 0);
    REQUIRE(same_parameters(fx.runs + "/whole/model.h5", fx.runs + "/parts/model.h5"));
    // The best epoch is carried across the resume exactly (not from metrics.csv's 9 digits).
    REQUIRE(same_parameters(fx.runs + "/whole/best.h5", fx.runs + "/parts/best.h5"));
    for (const char *attr : {"best_epoch", "best_val_accuracy", "best_val_nll", "best_val_ece"})
        REQUIRE(train_attr(fx.runs + "/whole/model.h5", attr) == train_attr(fx.runs + "/parts/model.h5", attr));
    REQUIRE(kdtest::file_exists(fx.runs + "/parts/summary.json"));
    std::string csv = kdtest::read_text(fx.runs + "/parts/metrics.csv");
    REQUIRE(std::count(csv.begin(), csv.end(), '\n') == 5);
    // The distilled student resumes exactly too (its teacher logits are recomputed).
    std::string teacher = " --teacher " + fx.runs + "/whole";
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d1") + teacher) == 0);
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d2") + teacher + " --stop-after 1") == 0);
    // The same teacher spelled another way (its checkpoint, not its folder) is accepted.
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/d2 --teacher " + fx.runs + "/./whole/model.h5") == 0);
    REQUIRE(same_parameters(fx.runs + "/d1/model.h5", fx.runs + "/d2/model.h5"));
    // --teacher is recorded in config.ini: the resume finds the teacher without it.
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d3") + teacher + " --stop-after 1") == 0);
    REQUIRE(kdtest::read_text(fx.runs + "/d3/config.ini").find("teacher = " + fx.runs + "/whole\n") != std::string::npos);
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/d3", &out) == 0);
    REQUIRE(same_parameters(fx.runs + "/d1/model.h5", fx.runs + "/d3/model.h5"));
    // A resume of the other kind would train something else: refused, naming the right command.
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d4") + teacher + " --stop-after 1") == 0);
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + fx.runs + "/d4", &out) == 2);
    REQUIRE(out.find("was distilled from " + fx.runs + "/whole: resume it with kdtrain distill --resume " + fx.runs +
                     "/d4 --teacher " + fx.runs + "/whole") != std::string::npos);
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/d4 --teacher " + fx.runs + "/parts", &out) == 2);
    REQUIRE(out.find("was distilled from " + fx.runs + "/whole, not " + fx.runs + "/parts") != std::string::npos);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("p1") + " --stop-after 1") == 0);
    REQUIRE(kdtest::run_kdtrain("distill --quiet --resume " + fx.runs + "/p1" + teacher, &out) == 2);
    REQUIRE(out.find("was trained without a teacher: resume it with kdtrain train --resume") != std::string::npos);
}

TEST_CASE("the trained weights do not depend on the thread count, bit for bit", "[train]")
{
    Fixture fx;
    // Batch 64, 16-512-128-4: the first dropout mask (32,768 elements) and the AdamW
    // update (74,884 parameters) take their threaded paths; the second layer's three
    // products (8.4 MFLOP, 64 and 512 rows) are cut in halves, the last layer's run on
    // one thread, the first layer's weight gradient (16 rows) is threaded by oneDNN.
    std::string model =
        " --set model.layers=16,512,128,4 --set model.dropout=0.3 --set train.batch_size=64 --set train.epochs=2";
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("one") + model + " --set train.threads=1") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("three") + model + " --set train.threads=3") == 0);
    REQUIRE(same_parameters(fx.runs + "/one/model.h5", fx.runs + "/three/model.h5"));
}

TEST_CASE("bad configs exit with 2, name section.key, and write nothing", "[train][config]")
{
    Fixture fx;
    struct Case {
        std::string args, message;
    };
    std::string teacher_dir = fx.dir + "/teacher5";
    {
        // a 5-class teacher, for the class-count mismatch
        std::string other = fx.dir + "/five.h5";
        kdtest::write_cluster_dataset(other, 100, 20, 16, 5, 4);
        REQUIRE(kdtest::run_kdtrain("train -c " + kSmoke + " --quiet --set data.path=" + other +
                                    " --set model.layers=16,5 --set train.epochs=1 --set data.val_from_train=20 --set run.dir=" +
                                    fx.dir + " --set run.name=teacher5") == 0);
    }
    std::vector<Case> cases = {
        {"train " + fx.base("x") + " --set trian.epochs=3", "unknown section [trian]; did you mean [train]?"},
        {"train " + fx.base("x") + " --set train.epoch=3", "unknown key train.epoch; did you mean train.epochs?"},
        {"train " + fx.base("x") + " --set train.lr=0", "train.lr: expected a number in (0, 1000], found '0'"},
        {"train " + fx.base("x") + " --set train.lr=abc", "train.lr: expected a number in (0, 1000], found 'abc'"},
        {"train " + fx.base("x") + " --set distill.temperature=-1", "distill.temperature: expected a number in (0, 10000], found '-1'"},
        {"train " + fx.base("x") + " --set distill.alpha=1.5", "distill.alpha: expected a number in [0, 1], found '1.5'"},
        {"train " + fx.base("x") + " --set train.optimizer=adam", "train.optimizer: expected one of adamw|sgd, found 'adam'"},
        {"train " + fx.base("x") + " --set model.layers=17,32,4", "model.layers: expected the first size to be 16"},
        {"train " + fx.base("x") + " --set model.layers=16,32,5", "model.layers: expected the last size to be 4"},
        {"train " + fx.base("x") + " --set data.path=", "data.path: required"},
        {"distill " + fx.base("x"), "distill.teacher: required"},
        {"distill " + fx.base("x") + " --teacher " + teacher_dir, "expected 16 inputs and 4 classes like the data, found a 16-5 model"},
        {"train " + fx.base("x") + " --set train.jitter=1", "train.jitter: needs image data"},
        {"train " + fx.base("x") + " --set data.labelled=20 --set train.last_batch=drop",
         "train.batch_size: expected at most 20 (the training rows) with train.last_batch = drop, found 32"},
    };
    for (const Case &c : cases) {
        std::string out;
        INFO(c.args);
        int code = kdtest::run_kdtrain(c.args, &out);
        INFO(out);
        REQUIRE(code == 2);
        REQUIRE(out.find(c.message) != std::string::npos);
        REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/x"));
    }
}

TEST_CASE("config files: unknown keys point at the line, and the resolved text reads back", "[config]")
{
    Fixture fx;
    std::string bad = fx.dir + "/bad.ini";
    std::ofstream(bad) << "[data]\npath = x.h5\n\n[model]\nlayers = 16,4\ndropuot = 0.1\n";
    std::string out;
    REQUIRE(kdtest::run_kdtrain("train -c " + bad, &out) == 2);
    REQUIRE(out.find(bad + ":6: unknown key model.dropuot; did you mean model.dropout?") != std::string::npos);
    std::ofstream(bad) << "[data]\npath = x.h5\n[model]\nlayers\n";
    REQUIRE(kdtest::run_kdtrain("train -c " + bad, &out) == 2);
    REQUIRE(out.find(bad + ":4: expected key = value, found 'layers'") != std::string::npos);
    REQUIRE(kdtest::run_kdtrain("train -c " + fx.dir + "/missing.ini", &out) == 1);
    REQUIRE(out.find("missing.ini: cannot open") != std::string::npos);
}

TEST_CASE("a run stopped inside its first epoch starts again when resumed", "[train]")
{
    Fixture fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("whole")) == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("early") + " --stop-after 1") == 0);
    std::remove((fx.runs + "/early/model.h5").c_str()); // as if killed before the first checkpoint
    std::remove((fx.runs + "/early/best.h5").c_str());
    std::string out;
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + fx.runs + "/early", &out) == 0);
    REQUIRE(same_parameters(fx.runs + "/whole/model.h5", fx.runs + "/early/model.h5"));
}

TEST_CASE("calibrate and eval read the dataset paths the run was trained with", "[train][calibrate]")
{
    Fixture fx;
    std::string custom = fx.dir + "/custom.h5";
    {   // the cluster data moved to other paths, with a /val split of its own
        kdtest::write_cluster_dataset(fx.dir + "/src.h5", 500, 200, 16, 4, 3);
        std::vector<size_t> dims;
        auto x = kdtest::h5_read_doubles(fx.dir + "/src.h5", "/train/x", dims);
        auto y = kdtest::h5_read_ints(fx.dir + "/src.h5", "/train/y");
        auto tx = kdtest::h5_read_doubles(fx.dir + "/src.h5", "/test/x", dims);
        auto ty = kdtest::h5_read_ints(fx.dir + "/src.h5", "/test/y");
        hid_t f = H5Fcreate(custom.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        auto put = [&](const char *name, const void *data, hid_t type, std::vector<hsize_t> d) {
            hid_t sp = H5Screate_simple((int)d.size(), d.data(), nullptr);
            hid_t ds = H5Dcreate2(f, name, type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            REQUIRE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
            H5Dclose(ds);
            H5Sclose(sp);
        };
        put("/a/fit_x", x.data(), H5T_NATIVE_DOUBLE, {400, 16});
        put("/a/fit_y", y.data(), H5T_NATIVE_INT32, {400});
        put("/a/check_x", x.data() + 400 * 16, H5T_NATIVE_DOUBLE, {100, 16});
        put("/a/check_y", y.data() + 400, H5T_NATIVE_INT32, {100});
        put("/a/final_x", tx.data(), H5T_NATIVE_DOUBLE, {200, 16});
        put("/a/final_y", ty.data(), H5T_NATIVE_INT32, {200});
        H5Pclose(lcpl);
        H5Fclose(f);
    }
    std::string paths = " --set data.path=" + custom + " --set data.train_x=/a/fit_x --set data.train_y=/a/fit_y" +
                        " --set data.val_x=/a/check_x --set data.val_y=/a/check_y --set data.test_x=/a/final_x" +
                        " --set data.test_y=/a/final_y";
    std::string out;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("named") + paths, &out) == 0);
    REQUIRE(kdtest::run_kdtrain("calibrate --bootstrap 0 --model " + fx.runs + "/named", &out) == 0);
    INFO(out);
    REQUIRE(kdtest::read_text(fx.runs + "/named/calibration.json").find("\"samples\": 100,") != std::string::npos); // /a/check_x
    REQUIRE(kdtest::run_kdtrain("eval --model " + fx.runs + "/named", &out) == 0);
    REQUIRE(out.find("(200 samples") != std::string::npos); // /a/final_x
}

TEST_CASE("distillation trains with every distill.loss, and kl gives the weights of a config without the key",
          "[train][distill]")
{
    // The smoke model (16-32-4) distilled for 4 epochs from a 16-32-4 teacher, a third of
    // the rows unlabelled: each loss must lower its own training loss, stay finite and
    // beat chance (0.25) on validation. distill.loss = kl is the loss every run had
    // before the key existed: the same weights, bit for bit.
    Fixture fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("t")) == 0);
    const std::string teacher = " --set data.labelled=270 --teacher " + fx.runs + "/t";
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("before") + teacher) == 0);
    for (const char *loss : {"kl", "reverse_kl", "js", "dkd", "lsk"}) {
        std::string name = std::string("s-") + loss;
        REQUIRE(kdtest::run_kdtrain("distill " + fx.base(name) + teacher + " --set distill.loss=" + loss) == 0);
        std::string run = fx.runs + "/" + name;
        std::ifstream csv(run + "/metrics.csv");
        std::string line;
        std::vector<double> train_loss;
        std::getline(csv, line); // header: epoch,lr,train_loss,...
        while (std::getline(csv, line)) {
            std::stringstream row(line);
            std::string epoch, lr, value;
            std::getline(row, epoch, ',');
            std::getline(row, lr, ',');
            std::getline(row, value, ',');
            train_loss.push_back(std::stod(value));
        }
        INFO(loss << ": training loss by epoch " << train_loss[0] << " ... " << train_loss.back());
        REQUIRE(train_loss.size() == 4);
        std::printf("distill.loss = %-10s training loss %.4f -> %.4f, validation accuracy %.3f\n", loss, train_loss[0],
                    train_loss[3], json_number(kdtest::read_text(run + "/summary.json"), "final_val_accuracy"));
        for (double v : train_loss) REQUIRE(std::isfinite(v));
        REQUIRE(train_loss.back() < 0.9 * train_loss.front());
        std::string summary = kdtest::read_text(run + "/summary.json");
        REQUIRE(summary.find(std::string("\"loss\": \"") + loss + "\"") != std::string::npos);
        REQUIRE(json_number(summary, "final_val_accuracy") > 0.5);
        REQUIRE(kdtest::read_text(run + "/config.ini").find(std::string("loss = ") + loss + "\n") != std::string::npos);
    }
    REQUIRE(same_parameters(fx.runs + "/before/model.h5", fx.runs + "/s-kl/model.h5"));
    REQUIRE_FALSE(same_parameters(fx.runs + "/s-kl/model.h5", fx.runs + "/s-js/model.h5"));
}
