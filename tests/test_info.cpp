// kdtrain info FILE as a newcomer uses it: what a data set, a checkpoint or a logits
// file holds, the keys that open a foreign layout, and the same errors as training.
// Expected values are counted or computed here, in double, never read off the code.
#include "support.h"

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct H5File {
    hid_t id;
    explicit H5File(const std::string &path) : id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT))
    {
        REQUIRE(id >= 0);
    }
    ~H5File() { H5Fclose(id); }
    template <typename T>
    void write(const std::string &name, hid_t file_type, hid_t mem_type, std::vector<hsize_t> dims, const std::vector<T> &v)
    {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t space = H5Screate_simple((int)dims.size(), dims.data(), nullptr);
        hid_t d = H5Dcreate2(id, name.c_str(), file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(d >= 0);
        REQUIRE(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
        H5Dclose(d);
        H5Sclose(space);
        H5Pclose(lcpl);
    }
};

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

// The whitespace-separated words of the line after `heading` that starts with `first`.
std::vector<std::string> row_after(const std::string &text, const std::string &heading, const std::string &first)
{
    std::stringstream ss(text.substr(text.find(heading)));
    for (std::string line; std::getline(ss, line);) {
        std::stringstream words(line);
        std::vector<std::string> w;
        for (std::string t; words >> t;) w.push_back(t);
        if (!w.empty() && w[0] == first) return w;
    }
    return {};
}

// Labels with known counts per class: class c appears counts[c] times.
std::vector<int64_t> labels_with(const std::vector<int> &counts)
{
    std::vector<int64_t> y;
    for (size_t c = 0; c < counts.size(); c++)
        for (int i = 0; i < counts[c]; i++) y.push_back((int64_t)c);
    return y;
}

} // namespace

using kdtest::Run;

TEST_CASE("info on a data set in the schema reports splits, storage and class counts per split", "[info]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/images.h5";
    {
        H5File f(path);
        // 2 x 3 images; labels with the counts per class below
        std::vector<int64_t> ytr = labels_with({4, 3, 2}), yva = labels_with({1, 0, 2}), yte = labels_with({2, 2, 1});
        f.write("/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, {9, 2, 3}, std::vector<uint8_t>(54, 7));
        f.write("/train/y", H5T_STD_I16LE, H5T_NATIVE_INT64, {9}, ytr);
        f.write("/val/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, {3, 2, 3}, std::vector<uint8_t>(18, 1));
        f.write("/val/y", H5T_STD_I16LE, H5T_NATIVE_INT64, {3}, yva);
        f.write("/test/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, {5, 2, 3}, std::vector<uint8_t>(30, 2));
        f.write("/test/y", H5T_STD_I16LE, H5T_NATIVE_INT64, {5}, yte);
    }
    Run run = kdtest::run_binary("info " + path);
    INFO(run.out);
    REQUIRE(run.exit_code == 0);
    REQUIRE(has(run.out, "a data set in kdtrain's schema"));
    REQUIRE(has(run.out, "6 per row (images 2 x 3)"));
    REQUIRE(has(run.out, "classes      3"));
    REQUIRE(has(run.out, "[9, 2, 3] uint8"));
    // class, then its train, val and test counts
    REQUIRE(row_after(run.out, "class counts", "0") == std::vector<std::string>{"0", "4", "1", "2"});
    REQUIRE(row_after(run.out, "class counts", "1") == std::vector<std::string>{"1", "3", "0", "2"});
    REQUIRE(row_after(run.out, "class counts", "2") == std::vector<std::string>{"2", "2", "2", "1"});
}

TEST_CASE("info on a file of another layout lists its datasets and the data.* keys that open it", "[info]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/sklearn.h5";
    {
        H5File f(path);
        f.write("/X_train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {40, 4}, kdtest::random_normal(160, 1, 1));
        f.write("/y_train", H5T_STD_I64LE, H5T_NATIVE_INT64, {40}, labels_with({20, 20}));
        f.write("/X_test", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {10, 4}, kdtest::random_normal(40, 1, 2));
        f.write("/y_test", H5T_STD_I64LE, H5T_NATIVE_INT64, {10}, labels_with({5, 5}));
        f.write("/meta/ids", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {3}, std::vector<double>{1, 2, 3});
    }
    Run run = kdtest::run_binary("info " + path + " --set data.val_from_train=10");
    INFO(run.out);
    REQUIRE(run.exit_code == 1);
    REQUIRE(has(run.out, "it holds 5 datasets"));
    REQUIRE(has(run.out, "/meta/ids"));
    REQUIRE(has(run.out, "--set data.train_x=/X_train --set data.train_y=/y_train --set data.test_x=/X_test "
                         "--set data.test_y=/y_test"));
    // the error itself is the one training gives, and points to the keys
    REQUIRE(has(run.out, ":/train/x: expected a dataset, found none"));

    std::string keys = " --set data.train_x=/X_train --set data.train_y=/y_train --set data.test_x=/X_test"
                       " --set data.test_y=/y_test --set data.val_from_train=10";
    Run opened = kdtest::run_binary("info " + path + keys);
    INFO(opened.out);
    REQUIRE(opened.exit_code == 0);
    REQUIRE(has(opened.out, "opened with the data.* keys given"));
    REQUIRE(has(opened.out, "train  30 "));
    REQUIRE(has(opened.out, "val    10 "));
    REQUIRE(has(opened.out, "/X_train rows 30..39"));
    REQUIRE(has(opened.out, "train: every feature finite"));

    // training on the foreign file names the keys and info
    std::string smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini", out;
    REQUIRE(kdtest::run_kdtrain("train -c " + smoke + " --quiet --set data.path=" + path + " --set run.dir=" + dir, &out) != 0);
    REQUIRE(has(out, "set data.train_x, data.train_y"));
    REQUIRE(has(out, "kdtrain info " + path));
}

TEST_CASE("info on a data set with bad values gives training's error and exit 1", "[info]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/nan.h5";
    {
        H5File f(path);
        std::vector<float> x(40, 0.5f);
        x[2 * 4 + 3] = NAN;
        f.write("/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {10, 4}, x);
        f.write("/train/y", H5T_STD_U8LE, H5T_NATIVE_INT64, {10}, labels_with({5, 5}));
    }
    Run run = kdtest::run_binary("info " + path + " --set data.val_from_train=2");
    INFO(run.out);
    REQUIRE(run.exit_code == 1);
    REQUIRE(has(run.out, ":/train/x: expected finite features, found NaN at row 2, column 3"));

    Run missing = kdtest::run_binary("info " + dir + "/none.h5");
    REQUIRE(missing.exit_code == 1);
    REQUIRE(has(missing.out, "none.h5: cannot open: No such file or directory"));
    std::string text = dir + "/notes.txt";
    std::ofstream(text) << "not an HDF5 file\n";
    Run foreign = kdtest::run_binary("info " + text);
    REQUIRE(foreign.exit_code == 1);
    REQUIRE(has(foreign.out, "expected an HDF5 file"));
    Run bad_key = kdtest::run_binary("info " + path + " --set train.epochs=3");
    REQUIRE(bad_key.exit_code == 2);
    Run unknown_key = kdtest::run_binary("info " + path + " --set data.train_xx=/a");
    REQUIRE(unknown_key.exit_code == 2);
    REQUIRE(has(unknown_key.out, "did you mean data.train_x"));
}

TEST_CASE("info on a run reports architecture, parameters, epochs, validation metrics, T and commit", "[info][smoke]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5";
    kdtest::write_cluster_dataset(data, 600, 300, 16, 4, 9);
    std::string smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini", out;
    REQUIRE(kdtest::run_kdtrain("train -c " + smoke + " --quiet --set data.path=" + data + " --set run.dir=" + dir +
                                    " --set run.name=m",
                                &out) == 0);
    std::string run_dir = dir + "/m";
    Run run = kdtest::run_binary("info " + run_dir);
    INFO(run.out);
    REQUIRE(run.exit_code == 0);
    REQUIRE(has(run.out, "a kdtrain checkpoint"));
    // smoke.ini: 16-32-4; 16*32 + 32 + 32*4 + 4 parameters
    REQUIRE(has(run.out, "16-32-4 MLP"));
    REQUIRE(has(run.out, std::to_string(16 * 32 + 32 + 32 * 4 + 4) + " parameters"));
    REQUIRE(has(run.out, "4 of 4 epochs"));
    REQUIRE(has(run.out, "none stored"));
    REQUIRE(has(run.out, "distilled    no"));
    REQUIRE_FALSE(has(run.out, "commit       not recorded"));

    // The last row of metrics.csv is what the checkpoint's validation line says.
    std::string csv = kdtest::read_text(run_dir + "/metrics.csv");
    std::vector<std::string> lines;
    std::stringstream ss(csv);
    for (std::string line; std::getline(ss, line);) lines.push_back(line);
    std::vector<std::string> header, last;
    for (auto *v : {&header, &last}) {
        std::stringstream row(v == &header ? lines.front() : lines.back());
        for (std::string cell; std::getline(row, cell, ',');) v->push_back(cell);
    }
    double val_acc = NAN, val_nll = NAN;
    for (size_t i = 0; i < header.size(); i++) {
        if (header[i] == "val_acc") val_acc = std::stod(last[i]);
        if (header[i] == "val_nll") val_nll = std::stod(last[i]);
    }
    char expected[128];
    std::snprintf(expected, sizeof expected, "epoch 4: accuracy %.2f%%, NLL %.4f", 100 * val_acc, val_nll);
    REQUIRE(has(run.out, expected));

    REQUIRE(kdtest::run_kdtrain("calibrate --model " + run_dir, &out) == 0);
    std::string json = kdtest::read_text(run_dir + "/calibration.json");
    size_t at = json.find("\"temperature\": ");
    REQUIRE(at != std::string::npos);
    double T = std::stod(json.substr(at + 15));
    Run after = kdtest::run_binary("info " + run_dir + "/model.h5");
    INFO(after.out);
    REQUIRE(after.exit_code == 0);
    std::snprintf(expected, sizeof expected, "T = %.4f, fitted on val", T);
    REQUIRE(has(after.out, expected));
    REQUIRE(has(after.out, T > 1 ? "overconfident" : "underconfident"));

    REQUIRE(kdtest::run_kdtrain("distill -c " + smoke + " --quiet --set data.path=" + data + " --set run.dir=" + dir +
                                    " --set run.name=d --teacher " + run_dir,
                                &out) == 0);
    Run student = kdtest::run_binary("info " + dir + "/d");
    INFO(student.out);
    REQUIRE(student.exit_code == 0);
    REQUIRE(has(student.out, "distilled    from " + run_dir + " at T = 2, alpha = 0.5, loss kl\n")); // smoke.ini's [distill]

    // A stopped run's model.h5 is what --resume continues; an epoch snapshot is not.
    REQUIRE(kdtest::run_kdtrain("train -c " + smoke + " --quiet --set data.path=" + data + " --set run.dir=" + dir +
                                    " --set run.name=s --set train.checkpoints=every --stop-after 2",
                                &out) == 0);
    Run stopped = kdtest::run_binary("info " + dir + "/s");
    INFO(stopped.out);
    REQUIRE(has(stopped.out, "2 of 4 epochs"));
    REQUIRE(has(stopped.out, "unfinished: --resume continues it"));
    Run snapshot = kdtest::run_binary("info " + dir + "/s/epoch-001.h5");
    INFO(snapshot.out);
    REQUIRE(has(snapshot.out, "1 of 4 epochs"));
    REQUIRE(has(snapshot.out, "a snapshot taken before the last epoch"));
    REQUIRE_FALSE(has(snapshot.out, "--resume"));
}

TEST_CASE("info on a logits file reports rows, classes, accuracy and NLL at T = 1", "[info]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/logits.h5";
    // 4 rows, 3 classes; rows 0..2 right, row 3 wrong: accuracy 75 %
    std::vector<double> z = {2, 0, 0, 0, 3, 1, -1, 0, 1, 0.5, 0.4, 0.1};
    std::vector<int64_t> y = {0, 1, 2, 2};
    {
        H5File f(path);
        f.write("/logits", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {4, 3}, z);
        f.write("/labels", H5T_STD_U8LE, H5T_NATIVE_INT64, {4}, y);
    }
    double nll = 0;
    for (int i = 0; i < 4; i++) {
        double m = std::max(z[3 * i], std::max(z[3 * i + 1], z[3 * i + 2])), s = 0;
        for (int c = 0; c < 3; c++) s += std::exp(z[3 * i + c] - m);
        nll += m + std::log(s) - z[3 * i + y[i]];
    }
    nll /= 4;
    Run run = kdtest::run_binary("info " + path);
    INFO(run.out);
    REQUIRE(run.exit_code == 0);
    REQUIRE(has(run.out, "a logits file"));
    REQUIRE(has(run.out, "/logits [4, 3] float64"));
    REQUIRE(has(run.out, "accuracy 75.00%"));
    char expected[64];
    std::snprintf(expected, sizeof expected, "NLL %.4f", nll);
    REQUIRE(has(run.out, expected));
    REQUIRE(has(run.out, "0: 1, 1: 1, 2: 2"));
    REQUIRE_FALSE(has(run.out, "look like probabilities"));

    std::string probs = dir + "/probs.h5";
    {
        H5File f(probs);
        f.write("/logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {2, 2}, std::vector<float>{0.9f, 0.1f, 0.25f, 0.75f});
        f.write("/labels", H5T_STD_I32LE, H5T_NATIVE_INT64, {2}, std::vector<int64_t>{0, 1});
    }
    Run p = kdtest::run_binary("info " + probs);
    REQUIRE(p.exit_code == 0);
    REQUIRE(has(p.out, "look like probabilities, not logits"));
}

TEST_CASE("info refuses a logits file with NaN, labels out of range or mismatched rows, naming the dataset", "[info]")
{
    std::string dir = kdtest::temp_dir();
    struct Case {
        std::vector<float> z;
        std::vector<int64_t> y;
        const char *expected;
    } cases[] = {
        {{1, 2, NAN, 0}, {0, 1}, ":/logits: expected finite logits, found NaN at row 1, column 0"},
        {{1, 2, 3, 0}, {0, 2}, ":/labels: expected labels in 0..1 (/logits has 2 classes), found 2 at row 1"},
        {{1, 2, 3, 0}, {0, 1, 1}, ":/labels: expected 2 labels (/logits has 2 rows), found 3"},
    };
    int i = 0;
    for (const Case &c : cases) {
        std::string path = dir + "/bad" + std::to_string(i++) + ".h5";
        {
            H5File f(path);
            f.write("/logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {2, 2}, c.z);
            f.write("/labels", H5T_STD_I64LE, H5T_NATIVE_INT64, {(hsize_t)c.y.size()}, c.y);
        }
        Run run = kdtest::run_binary("info " + path);
        INFO(run.out);
        REQUIRE(run.exit_code == 1);
        REQUIRE(has(run.out, c.expected));
    }
}
