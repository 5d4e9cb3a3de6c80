// A catalogue of bad inputs, as a user would make them: data files of every kind,
// foreign layouts, configs, command lines, damaged checkpoints, logits files, IDX
// sources and unsafe output paths. Every case asserts the exit code (a crash or an
// abort fails it), a message naming the file, key or value and what was expected,
// and that no file under the case's folder was created, changed or removed.
// The bad files are made here from a few lines of code, not committed blobs.
#include "support.h"

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

namespace {

namespace fs = std::filesystem;

std::string read_bytes(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_bytes(const std::string &path, const std::string &bytes)
{
    std::ofstream out(path, std::ios::binary);
    out << bytes;
    REQUIRE(out.good());
}

// Every file and folder under dir, with the contents of the files.
std::map<std::string, std::string> snapshot(const std::string &dir)
{
    std::map<std::string, std::string> files;
    for (const auto &e : fs::recursive_directory_iterator(dir)) {
        std::string rel = fs::relative(e.path(), dir).string();
        files[rel] = e.is_regular_file() ? read_bytes(e.path().string()) : std::string("<folder>");
    }
    return files;
}

// An HDF5 file written value by value: datasets from doubles (HDF5 converts them to
// the file type given), attributes, and groups.
struct H5Writer {
    hid_t id;
    explicit H5Writer(const std::string &path) : id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT))
    {
        REQUIRE(id >= 0);
    }
    ~H5Writer() { H5Fclose(id); }
    void dataset(const std::string &name, hid_t file_type, std::vector<hsize_t> dims, const std::vector<double> &v)
    {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t space = H5Screate_simple((int)dims.size(), dims.data(), nullptr);
        hid_t d = H5Dcreate2(id, name.c_str(), file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(d >= 0);
        if (!v.empty()) REQUIRE(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
        H5Dclose(d);
        H5Sclose(space);
        H5Pclose(lcpl);
    }
    void group(const std::string &name) { H5Gclose(H5Gcreate2(id, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)); }
    void attr(const std::string &name, hid_t file_type, double value)
    {
        hid_t space = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(id, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(a >= 0);
        REQUIRE(H5Awrite(a, H5T_NATIVE_DOUBLE, &value) >= 0);
        H5Aclose(a);
        H5Sclose(space);
    }
};

// Replaces (or creates) a scalar float64/int64 attribute of an object in an existing file.
[[maybe_unused]] void set_attr(const std::string &file, const std::string &object, const std::string &name, hid_t type, double value)
{
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t o = H5Oopen(f, object.c_str(), H5P_DEFAULT);
    REQUIRE(o >= 0);
    if (H5Aexists(o, name.c_str()) > 0) H5Adelete(o, name.c_str());
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(a >= 0);
    REQUIRE(H5Awrite(a, H5T_NATIVE_DOUBLE, &value) >= 0);
    H5Aclose(a);
    H5Sclose(space);
    H5Oclose(o);
    H5Fclose(f);
}

// Overwrites element `index` of a float dataset in an existing file.
void set_element(const std::string &file, const std::string &name, hsize_t index, double value)
{
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    REQUIRE(d >= 0);
    hid_t space = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[2] = {1, 1}, at[2] = {0, 0}, one[2] = {1, 1};
    H5Sget_simple_extent_dims(space, dims, nullptr);
    at[0] = rank == 2 ? index / dims[1] : index;
    at[1] = rank == 2 ? index % dims[1] : 0;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, at, nullptr, one, nullptr);
    hid_t mem = H5Screate_simple(rank, one, nullptr);
    REQUIRE(H5Dwrite(d, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, &value) >= 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
}

void remove_object(const std::string &file, const std::string &name)
{
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
    REQUIRE(H5Ldelete(f, name.c_str(), H5P_DEFAULT) >= 0);
    H5Fclose(f);
}

const std::string kSmoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";

// A case: make its bad input in dir, then run `kdtrain ARGS` (ARGS with every "@" read
// as dir) and expect the exit code and every one of the message parts.
struct Case {
    std::string name;
    std::function<void(const std::string &dir)> make;
    std::string args;
    int exit_code;
    std::vector<std::string> message;
};

std::string expand(std::string text, const std::string &dir)
{
    for (size_t at; (at = text.find('@')) != std::string::npos;) text.replace(at, 1, dir);
    return text;
}

// Runs each case in a folder of its own, prepared by `base` (the good files every
// case of a group shares) and then by the case.
int run_cases(const std::vector<Case> &cases, const std::function<void(const std::string &dir)> &base)
{
    int n = 0;
    for (const Case &c : cases) {
        std::string dir = kdtest::temp_dir();
        if (base) base(dir);
        if (c.make) c.make(dir);
        auto before = snapshot(dir);
        kdtest::Run run = kdtest::run_binary(expand(c.args, dir));
        INFO("case '" << c.name << "': kdtrain " << expand(c.args, dir) << "\n" << run.out);
        CHECK(run.exit_code == c.exit_code);
        for (const std::string &part : c.message) CHECK(run.out.find(expand(part, dir)) != std::string::npos);
        auto after = snapshot(dir);
        for (const auto &[path, bytes] : after)
            CHECK((before.count(path) ? (before[path] == bytes ? "same" : "changed: " + path) : "created: " + path) ==
                  std::string("same"));
        for (const auto &[path, bytes] : before) CHECK((after.count(path) ? "" : "removed: " + path) == std::string(""));
        n++;
    }
    return n;
}

// A data file with /train and /test of n rows each, D = 4, 3 classes, x float32 and
// y uint8, for the cases to spoil.
void small_data(const std::string &path, const std::function<void(H5Writer &)> &spoil, int n = 40)
{
    H5Writer w(path);
    std::vector<double> x((size_t)n * 4), y(n);
    for (int i = 0; i < n; i++) {
        y[i] = i % 3;
        for (int j = 0; j < 4; j++) x[(size_t)i * 4 + j] = (i % 3) * 2.0 + 0.1 * j;
    }
    w.dataset("/train/x", H5T_IEEE_F32LE, {(hsize_t)n, 4}, x);
    w.dataset("/train/y", H5T_STD_U8LE, {(hsize_t)n}, y);
    w.dataset("/test/x", H5T_IEEE_F32LE, {(hsize_t)n, 4}, x);
    w.dataset("/test/y", H5T_STD_U8LE, {(hsize_t)n}, y);
    if (spoil) spoil(w);
}

// A data file built from scratch by `build` (no good datasets to start from).
std::function<void(const std::string &)> data_file(const std::function<void(H5Writer &)> &build)
{
    return [build](const std::string &dir) {
        H5Writer w(dir + "/bad.h5");
        build(w);
    };
}

std::vector<double> rows(int n, int d, double v = 1.0) { return std::vector<double>((size_t)n * d, v); }
std::vector<double> labels(int n, int classes)
{
    std::vector<double> y(n);
    for (int i = 0; i < n; i++) y[i] = i % classes;
    return y;
}

// `train` on @/bad.h5, a run folder under @/runs: on failure no run folder may appear.
const std::string kTrainBad = "train -c " + kSmoke + " --quiet --set data.path=@/bad.h5 --set run.dir=@/runs"
                              " --set data.val_from_train=10 --set model.layers=4,8,3";

} // namespace

TEST_CASE("bad data files: each refused with exit 1, the file and dataset named, nothing written", "[bad-inputs]")
{
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    std::vector<Case> cases = {
        {"missing file", nullptr, kTrainBad, 1, {"@/bad.h5: cannot open: No such file or directory"}},
        {"empty file", [](const std::string &d) { write_bytes(d + "/bad.h5", ""); }, kTrainBad, 1,
         {"@/bad.h5", "expected an HDF5 file"}},
        {"a text file", [](const std::string &d) { write_bytes(d + "/bad.h5", "x,y\n1,2\n"); }, kTrainBad, 1,
         {"@/bad.h5", "expected an HDF5 file, found no HDF5 signature"}},
        {"truncated HDF5",
         [](const std::string &d) {
             small_data(d + "/full.h5", nullptr, 400);
             std::string bytes = read_bytes(d + "/full.h5");
             write_bytes(d + "/bad.h5", bytes.substr(0, bytes.size() / 2));
         },
         kTrainBad, 1, {"@/bad.h5", "damaged or truncated"}},
        {"no /train group", data_file([](H5Writer &w) { w.dataset("/foo", H5T_IEEE_F32LE, {4, 4}, rows(4, 4)); }),
         kTrainBad, 1, {"@/bad.h5:/train/x: expected a dataset, found none"}},
        {"/train/x of rank 1", data_file([](H5Writer &w) {
             w.dataset("/train/x", H5T_IEEE_F32LE, {40}, rows(40, 1));
             w.dataset("/train/y", H5T_STD_U8LE, {40}, labels(40, 3));
         }),
         kTrainBad, 1, {"@/bad.h5:/train/x: expected features of rank 2", "found rank 1"}},
        {"/train/x of int16", data_file([](H5Writer &w) {
             w.dataset("/train/x", H5T_STD_I16LE, {40, 4}, rows(40, 4));
             w.dataset("/train/y", H5T_STD_U8LE, {40}, labels(40, 3));
         }),
         kTrainBad, 1, {"@/bad.h5:/train/x", "expected uint8, float32 or float64 features, found int16"}},
        {"/train/y of floats", data_file([](H5Writer &w) {
             w.dataset("/train/x", H5T_IEEE_F32LE, {40, 4}, rows(40, 4));
             w.dataset("/train/y", H5T_IEEE_F32LE, {40}, labels(40, 3));
         }),
         kTrainBad, 1, {"@/bad.h5:/train/y", "expected integer class labels"}},
        {"/train/y shorter than /train/x", data_file([](H5Writer &w) {
             w.dataset("/train/x", H5T_IEEE_F32LE, {40, 4}, rows(40, 4));
             w.dataset("/train/y", H5T_STD_U8LE, {39}, labels(39, 3));
         }),
         kTrainBad, 1, {"@/bad.h5:/train/y: expected 40 labels (/train/x has 40 rows), found 39"}},
        {"/train/y of shape [N, 3]", data_file([](H5Writer &w) {
             w.dataset("/train/x", H5T_IEEE_F32LE, {40, 4}, rows(40, 4));
             w.dataset("/train/y", H5T_STD_U8LE, {40, 3}, rows(40, 3, 0));
         }),
         kTrainBad, 1, {"@/bad.h5:/train/y: expected labels of shape [N] or [N, 1]"}},
        {"a label above num_classes", [](const std::string &d) {
             small_data(d + "/bad.h5", [](H5Writer &w) { w.attr("num_classes", H5T_STD_I64LE, 3); });
             set_element(d + "/bad.h5", "/train/y", 13, 7);
         },
         kTrainBad, 1, {"@/bad.h5:/train/y: expected labels in 0..2 (num_classes = 3), found 7 at row 13"}},
        {"a negative label", data_file([](H5Writer &w) {
             std::vector<double> y = labels(40, 3);
             y[5] = -1;
             w.dataset("/train/x", H5T_IEEE_F32LE, {40, 4}, rows(40, 4));
             w.dataset("/train/y", H5T_STD_I8LE, {40}, y);
         }),
         kTrainBad, 1, {"@/bad.h5:/train/y", "found -1 at row 5"}},
        {"NaN in the features", [nan](const std::string &d) {
             small_data(d + "/bad.h5", nullptr);
             set_element(d + "/bad.h5", "/train/x", 17 * 4 + 2, nan);
         },
         kTrainBad, 1, {"@/bad.h5:/train/x: expected finite features, found NaN at row 17, column 2"}},
        {"Inf in the features", [inf](const std::string &d) {
             small_data(d + "/bad.h5", nullptr);
             set_element(d + "/bad.h5", "/train/x", 3 * 4 + 1, -inf);
         },
         kTrainBad, 1, {"@/bad.h5:/train/x: expected finite features, found Inf at row 3, column 1"}},
        {"num_classes = 0",
         [](const std::string &d) { small_data(d + "/bad.h5", [](H5Writer &w) { w.attr("num_classes", H5T_STD_I64LE, 0); }); },
         kTrainBad, 1, {"@/bad.h5: attribute num_classes: expected 2 or more, found 0"}},
        {"num_classes = 1",
         [](const std::string &d) { small_data(d + "/bad.h5", [](H5Writer &w) { w.attr("num_classes", H5T_STD_I64LE, 1); }); },
         kTrainBad, 1, {"@/bad.h5: attribute num_classes: expected 2 or more, found 1"}},
        {"x_scale = NaN",
         [nan](const std::string &d) { small_data(d + "/bad.h5", [nan](H5Writer &w) { w.attr("x_scale", H5T_IEEE_F64LE, nan); }); },
         kTrainBad, 1, {"@/bad.h5: attribute x_scale: expected a finite non-zero number, found nan"}},
        {"x_scale = 0",
         [](const std::string &d) { small_data(d + "/bad.h5", [](H5Writer &w) { w.attr("x_scale", H5T_IEEE_F64LE, 0); }); },
         kTrainBad, 1, {"@/bad.h5: attribute x_scale: expected a finite non-zero number, found 0"}},
        {"/train/x is a group", data_file([](H5Writer &w) {
             w.group("/train");
             w.group("/train/x");
             w.dataset("/train/y", H5T_STD_U8LE, {40}, labels(40, 3));
         }),
         kTrainBad, 1, {"@/bad.h5:/train/x: expected a dataset"}},
        {"an empty training split", data_file([](H5Writer &w) {
             w.dataset("/train/x", H5T_IEEE_F32LE, {0, 4}, {});
             w.dataset("/train/y", H5T_STD_U8LE, {0}, {});
         }),
         kTrainBad, 1, {"@/bad.h5:/train/x: expected a non-empty train split, found 0 rows"}},
        {"test features of another width", [](const std::string &d) {
             small_data(d + "/bad.h5", nullptr);
             remove_object(d + "/bad.h5", "/test/x");
             hid_t f = H5Fopen((d + "/bad.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
             hsize_t dims[2] = {40, 5};
             hid_t s = H5Screate_simple(2, dims, nullptr);
             hid_t x = H5Dcreate2(f, "/test/x", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
             std::vector<float> v(200, 1.0f);
             H5Dwrite(x, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
             H5Dclose(x);
             H5Sclose(s);
             H5Fclose(f);
         },
         "eval --model @/runs/r --data @/bad.h5", 1, {"@/bad.h5:/test/x: expected 4 features per row (as /train/x), found 5"}},
        {"val_from_train as large as the training split",
         [](const std::string &d) { small_data(d + "/bad.h5", nullptr); },
         "train -c " + kSmoke + " --quiet --set data.path=@/bad.h5 --set run.dir=@/runs --set data.val_from_train=40"
         " --set model.layers=4,8,3",
         1, {"@/bad.h5:/train/x: expected more than 40 training rows", "(data.val_from_train = 40), found 40"}},
        {"a foreign layout without data.* keys", data_file([](H5Writer &w) {
             w.dataset("/X_train", H5T_IEEE_F32LE, {40, 4}, rows(40, 4));
             w.dataset("/y_train", H5T_STD_I64LE, {40}, labels(40, 3));
         }),
         kTrainBad, 1, {"@/bad.h5:/train/x: expected a dataset, found none (for another layout set data.train_x", "`kdtrain info @/bad.h5`"}},
        {"data.train_x naming a dataset that is not there",
         [](const std::string &d) { small_data(d + "/bad.h5", nullptr); },
         kTrainBad + " --set data.train_x=/features", 1, {"@/bad.h5:/features: expected a dataset, found none"}},
        {"image_shape that does not match the features",
         [](const std::string &d) {
             small_data(d + "/bad.h5", nullptr);
             hid_t f = H5Fopen((d + "/bad.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
             hsize_t two = 2;
             hid_t s = H5Screate_simple(1, &two, nullptr);
             hid_t a = H5Acreate2(f, "image_shape", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
             int64_t hw[2] = {3, 3};
             H5Awrite(a, H5T_NATIVE_INT64, hw);
             H5Aclose(a);
             H5Sclose(s);
             H5Fclose(f);
         },
         kTrainBad, 1, {"@/bad.h5: attribute image_shape: expected [H, W] with H*W = 4 features, found [3, 3]"}},
    };
    // "test features of another width" evaluates a run trained on the good 4-feature file.
    int n = run_cases(cases, [](const std::string &dir) {
        small_data(dir + "/good.h5", nullptr);
        REQUIRE(kdtest::run_kdtrain("train -c " + kSmoke + " --quiet --set data.path=" + dir +
                                    "/good.h5 --set run.dir=" + dir + "/runs --set run.name=r --set data.val_from_train=10"
                                    " --set model.layers=4,8,3 --set train.epochs=1") == 0);
    });
    REQUIRE(n == (int)cases.size());
}
