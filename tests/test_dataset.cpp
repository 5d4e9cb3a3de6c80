// Data sets in HDF5: the schema, h5py-style layouts, every bad input named in
// its error, and the minibatch loader in memory and streaming.
#include "support.h"

extern "C" {
#include "data/dataset.h"
#include "data/loader.h"
}

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace {

// A tiny writer for test files: datasets of any type, optional chunking.
struct H5Writer {
    hid_t file;
    explicit H5Writer(const std::string &path)
    {
        file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(file >= 0);
    }
    ~H5Writer() { H5Fclose(file); }
    void dataset(const std::string &name, hid_t type, std::vector<hsize_t> dims, const void *data,
                 hsize_t chunk_rows = 0)
    {
        hid_t space = H5Screate_simple((int)dims.size(), dims.data(), nullptr);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        if (chunk_rows) {
            std::vector<hsize_t> chunk = dims;
            chunk[0] = chunk_rows;
            H5Pset_chunk(dcpl, (int)chunk.size(), chunk.data());
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 4);
        }
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t d = H5Dcreate2(file, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
        REQUIRE(d >= 0);
        if (dims[0] > 0) REQUIRE(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
        H5Dclose(d);
        H5Pclose(lcpl);
        H5Pclose(dcpl);
        H5Sclose(space);
    }
    void attr_int(const std::string &name, int64_t v)
    {
        hid_t s = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(file, name.c_str(), H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT64, &v);
        H5Aclose(a);
        H5Sclose(s);
    }
    void attr_double(const std::string &name, double v)
    {
        hid_t s = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(file, name.c_str(), H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
        H5Aclose(a);
        H5Sclose(s);
    }
};

struct Split {
    std::vector<uint8_t> x;
    std::vector<uint8_t> y;
};

Split make_split(int n, int d, int classes, uint64_t seed)
{
    Split s;
    auto u = kdtest::random_uniform((size_t)n * d + n, 0, 1, seed);
    for (int i = 0; i < n * d; i++) s.x.push_back((uint8_t)(u[i] * 255.99f));
    for (int i = 0; i < n; i++) s.y.push_back((uint8_t)(u[(size_t)n * d + i] * classes * 0.999f));
    s.y[0] = (uint8_t)(classes - 1); // every class count check sees the top class
    return s;
}

// A file in DESIGN.md's schema: uint8 pixels, train/val/test, root attributes.
std::string write_schema_file(const std::string &dir, int n_train, int d, hsize_t chunk_rows,
                              const std::string &name = "data.h5")
{
    std::string path = dir + "/" + name;
    H5Writer w(path);
    Split tr = make_split(n_train, d, 4, 1), va = make_split(9, d, 4, 2), te = make_split(11, d, 4, 3);
    w.dataset("/train/x", H5T_NATIVE_UINT8, {(hsize_t)n_train, (hsize_t)d}, tr.x.data(), chunk_rows);
    w.dataset("/train/y", H5T_NATIVE_UINT8, {(hsize_t)n_train}, tr.y.data());
    w.dataset("/val/x", H5T_NATIVE_UINT8, {9, (hsize_t)d}, va.x.data());
    w.dataset("/val/y", H5T_NATIVE_UINT8, {9}, va.y.data());
    w.dataset("/test/x", H5T_NATIVE_UINT8, {11, (hsize_t)d}, te.x.data());
    w.dataset("/test/y", H5T_NATIVE_UINT8, {11}, te.y.data());
    w.attr_int("num_classes", 4);
    w.attr_double("x_scale", 1.0 / 255.0);
    return path;
}

std::string open_error(const std::string &path, kd_dataset_options *opts = nullptr)
{
    kd_dataset_options defaults;
    kd_dataset_options_default(&defaults);
    defaults.val_from_train = 5; // the test files are tiny
    kd_dataset ds;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_dataset_open(&ds, path.c_str(), opts ? opts : &defaults, &err);
    if (rc == KD_OK) {
        kd_dataset_close(&ds);
        return "";
    }
    REQUIRE(err.code == rc);
    return err.message;
}

std::vector<int64_t> epoch_order(const kd_dataset *ds, kd_split split, bool streaming, uint64_t seed, int64_t epoch,
                                 int batch = 5, int64_t buffer_rows = 0)
{
    kd_loader_options o;
    kd_loader_options_default(&o);
    o.batch_size = batch;
    o.seed = seed;
    o.streaming = streaming;
    o.buffer_rows = buffer_rows;
    kd_loader l;
    kd_error err;
    REQUIRE(kd_loader_open(&l, ds, split, &o, &err) == KD_OK);
    kd_loader_start_epoch(&l, epoch);
    std::vector<int64_t> order;
    kd_batch b;
    while (true) {
        REQUIRE(kd_loader_next(&l, &b, &err) == KD_OK);
        if (b.rows == 0) break;
        for (int i = 0; i < b.rows; i++) order.push_back(b.index[i]);
    }
    kd_loader_close(&l);
    return order;
}

bool is_permutation_of_rows(std::vector<int64_t> order, int64_t n)
{
    std::sort(order.begin(), order.end());
    for (int64_t i = 0; i < n; i++)
        if ((int64_t)order.size() != n || order[i] != i) return false;
    return true;
}

} // namespace

TEST_CASE("a file in the schema opens with its splits, attributes and exact pixel values", "[dataset]")
{
    std::string dir = kdtest::temp_dir();
    std::string path = write_schema_file(dir, 50, 6, 8);
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    REQUIRE(ds.dim == 6);
    REQUIRE(ds.num_classes == 4);
    REQUIRE(ds.split[KD_SPLIT_TRAIN].rows == 50);
    REQUIRE(ds.split[KD_SPLIT_VAL].rows == 9);
    REQUIRE(ds.split[KD_SPLIT_TEST].rows == 11);
    REQUIRE(ds.split[KD_SPLIT_TRAIN].chunk_rows == 8);
    REQUIRE(std::string(ds.notes).empty());
    REQUIRE(kd_dataset_load(&ds, KD_SPLIT_TEST, &err) == KD_OK);
    Split te = make_split(11, 6, 4, 3);
    std::vector<float> row(6);
    for (int r = 0; r < 11; r++) {
        kd_dataset_row(&ds, KD_SPLIT_TEST, r, row.data());
        REQUIRE(ds.split[KD_SPLIT_TEST].labels[r] == te.y[r]);
        for (int j = 0; j < 6; j++) REQUIRE(row[j] == (float)te.x[r * 6 + j] * (float)(1.0 / 255.0));
    }
    kd_dataset_close(&ds);
}

TEST_CASE("an h5py-style file just works: float64 [N, H, W], int64 [N, 1] labels, no attributes",
          "[dataset]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/h5py.h5";
    const int N = 30, H = 3, W = 4;
    auto xf = kdtest::random_uniform(N * H * W, -2, 2, 7);
    std::vector<double> x(xf.begin(), xf.end());
    std::vector<int64_t> y(N);
    for (int i = 0; i < N; i++) y[i] = i % 3;
    {
        H5Writer w(path);
        w.dataset("/train/x", H5T_NATIVE_DOUBLE, {N, H, W}, x.data(), 16);
        w.dataset("/train/y", H5T_NATIVE_INT64, {N, 1}, y.data());
        w.dataset("/test/x", H5T_NATIVE_DOUBLE, {N, H, W}, x.data());
        w.dataset("/test/y", H5T_NATIVE_INT64, {N}, y.data());
    }
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    o.val_from_train = 10;
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    REQUIRE(ds.dim == H * W);
    REQUIRE(ds.image_shape[0] == H);
    REQUIRE(ds.image_shape[1] == W);
    REQUIRE(ds.num_classes == 3);
    REQUIRE(ds.x_scale == 1.0);
    REQUIRE(ds.split[KD_SPLIT_TRAIN].rows == 20);
    REQUIRE(ds.split[KD_SPLIT_VAL].rows == 10);
    REQUIRE(ds.split[KD_SPLIT_VAL].row_begin == 20);
    std::string notes = ds.notes;
    REQUIRE(notes.find("num_classes attribute absent") != std::string::npos);
    REQUIRE(notes.find("validation = the last 10 rows of /train/x") != std::string::npos);
    REQUIRE(kd_dataset_load(&ds, KD_SPLIT_VAL, &err) == KD_OK);
    std::vector<float> row(H * W);
    kd_dataset_row(&ds, KD_SPLIT_VAL, 0, row.data()); // file row 20
    for (int j = 0; j < H * W; j++) REQUIRE(row[j] == (float)x[20 * H * W + j]);
    REQUIRE(ds.split[KD_SPLIT_VAL].labels[0] == 20 % 3);
    kd_dataset_close(&ds);
}

TEST_CASE("other layouts are read by naming their dataset paths", "[dataset]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/custom.h5";
    Split s = make_split(12, 5, 3, 9);
    std::vector<int16_t> y(s.y.begin(), s.y.end());
    {
        H5Writer w(path);
        w.dataset("/features/all", H5T_NATIVE_UINT8, {12, 5}, s.x.data());
        w.dataset("/targets/all", H5T_NATIVE_INT16, {12}, y.data());
    }
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    snprintf(o.x_path[KD_SPLIT_TRAIN], KD_DATASET_PATH_MAX, "/features/all");
    snprintf(o.y_path[KD_SPLIT_TRAIN], KD_DATASET_PATH_MAX, "/targets/all");
    o.val_from_train = 4;
    o.require_test = false;
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    REQUIRE(ds.split[KD_SPLIT_TRAIN].rows == 8);
    REQUIRE_FALSE(ds.split[KD_SPLIT_TEST].present);
    REQUIRE(ds.x_scale == Approx(1.0 / 255.0));
    kd_dataset_close(&ds);
}

TEST_CASE("bad data files give errors naming the file, the dataset and the expectation", "[dataset]")
{
    std::string dir = kdtest::temp_dir();
    std::string good = write_schema_file(dir, 20, 4, 0);
    Split s = make_split(20, 4, 4, 1);

    SECTION("a missing file")
    {
        std::string msg = open_error(dir + "/nope.h5");
        REQUIRE(msg.find(dir + "/nope.h5: cannot open: No such file") != std::string::npos);
    }
    SECTION("a file that is not HDF5")
    {
        std::ofstream(dir + "/text.h5") << "x,y\n1,2\n";
        REQUIRE(open_error(dir + "/text.h5").find("expected an HDF5 file, found no HDF5 signature") !=
                std::string::npos);
    }
    SECTION("a truncated file")
    {
        std::ifstream in(good, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::ofstream(dir + "/cut.h5", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
        REQUIRE(open_error(dir + "/cut.h5").find("damaged or truncated") != std::string::npos);
    }
    SECTION("a missing dataset")
    {
        {
            H5Writer w(dir + "/m.h5");
            w.dataset("/train/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_UINT8, {20}, s.y.data());
            w.dataset("/test/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
        }
        REQUIRE(open_error(dir + "/m.h5") == dir + "/m.h5:/test/y: expected a dataset, found none");
    }
    SECTION("x and y of different lengths")
    {
        {
            H5Writer w(dir + "/l.h5");
            w.dataset("/train/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_UINT8, {19}, s.y.data());
        }
        REQUIRE(open_error(dir + "/l.h5") ==
                dir + "/l.h5:/train/y: expected 20 labels (/train/x has 20 rows), found 19");
    }
    SECTION("features of the wrong rank")
    {
        {
            H5Writer w(dir + "/r.h5");
            w.dataset("/train/x", H5T_NATIVE_UINT8, {80}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_UINT8, {20}, s.y.data());
        }
        REQUIRE(open_error(dir + "/r.h5").find("/train/x: expected features of rank 2 [N, D] (or [N, H, W]), found rank 1") !=
                std::string::npos);
    }
    SECTION("labels outside 0..C-1")
    {
        {
            H5Writer w(dir + "/o.h5");
            std::vector<uint8_t> y = s.y;
            y[13] = 7;
            w.dataset("/train/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_UINT8, {20}, y.data());
            w.dataset("/test/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/test/y", H5T_NATIVE_UINT8, {20}, s.y.data());
            w.attr_int("num_classes", 4);
        }
        kd_dataset_options o;
        kd_dataset_options_default(&o);
        o.val_from_train = 5;
        REQUIRE(open_error(dir + "/o.h5", &o) ==
                dir + "/o.h5:/train/y: expected labels in 0..3 (num_classes = 4), found 7 at row 13");
    }
    SECTION("negative labels")
    {
        {
            H5Writer w(dir + "/n.h5");
            std::vector<int32_t> y(20, 1);
            y[3] = -1;
            w.dataset("/train/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_INT32, {20}, y.data());
        }
        REQUIRE(open_error(dir + "/n.h5").find("/train/y: expected labels in 0..C-1, found -1 at row 3") !=
                std::string::npos);
    }
    SECTION("num_classes inconsistent with the labels")
    {
        {
            H5Writer w(dir + "/c.h5");
            w.dataset("/train/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_UINT8, {20}, s.y.data()); // has label 3
            w.dataset("/test/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/test/y", H5T_NATIVE_UINT8, {20}, s.y.data());
            w.attr_int("num_classes", 3);
        }
        REQUIRE(open_error(dir + "/c.h5").find("expected labels in 0..2 (num_classes = 3), found 3 at row 0") !=
                std::string::npos);
    }
    SECTION("an empty split")
    {
        {
            H5Writer w(dir + "/e.h5");
            w.dataset("/train/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_UINT8, {20}, s.y.data());
            w.dataset("/test/x", H5T_NATIVE_UINT8, {0, 4}, nullptr);
            w.dataset("/test/y", H5T_NATIVE_UINT8, {0}, nullptr);
        }
        REQUIRE(open_error(dir + "/e.h5") ==
                dir + "/e.h5:/test/x: expected a non-empty test split, found 0 rows");
    }
    SECTION("float labels and int16 features")
    {
        {
            H5Writer w(dir + "/t.h5");
            std::vector<float> y(20, 1.0f);
            w.dataset("/train/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_FLOAT, {20}, y.data());
        }
        REQUIRE(open_error(dir + "/t.h5").find("/train/y: expected integer class labels, found float32") !=
                std::string::npos);
        {
            H5Writer w(dir + "/i.h5");
            std::vector<int16_t> x(80, 1);
            w.dataset("/train/x", H5T_NATIVE_INT16, {20, 4}, x.data());
            w.dataset("/train/y", H5T_NATIVE_UINT8, {20}, s.y.data());
        }
        REQUIRE(open_error(dir + "/i.h5").find("/train/x: expected uint8, float32 or float64 features, found int16") !=
                std::string::npos);
    }
    SECTION("a validation split larger than train")
    {
        kd_dataset_options o;
        kd_dataset_options_default(&o); // 5000 rows off a 20-row train set
        {
            H5Writer w(dir + "/v.h5");
            w.dataset("/train/x", H5T_NATIVE_UINT8, {20, 4}, s.x.data());
            w.dataset("/train/y", H5T_NATIVE_UINT8, {20}, s.y.data());
        }
        REQUIRE(open_error(dir + "/v.h5", &o).find("expected more than 5000 training rows to split off a validation set (data.val_from_train = 5000), found 20") !=
                std::string::npos);
    }
}

TEST_CASE("NaN or Inf features are errors naming the row, in memory and streaming", "[dataset]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/nan.h5";
    auto x = kdtest::random_uniform(40 * 3, -1, 1, 5);
    x[17 * 3 + 2] = NAN;
    x[30 * 3 + 1] = INFINITY;
    std::vector<uint8_t> y(40, 1);
    y[0] = 0;
    {
        H5Writer w(path);
        w.dataset("/train/x", H5T_NATIVE_FLOAT, {40, 3}, x.data(), 8);
        w.dataset("/train/y", H5T_NATIVE_UINT8, {40}, y.data());
    }
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    o.val_from_train = 0;
    o.require_test = false;
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    REQUIRE(kd_dataset_load(&ds, KD_SPLIT_TRAIN, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message) == path + ":/train/x: expected finite features, found NaN at row 17, column 2");

    kd_loader_options lo;
    kd_loader_options_default(&lo);
    lo.streaming = true;
    lo.shuffle = false;
    lo.batch_size = 40;
    kd_loader l;
    REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_TRAIN, &lo, &err) == KD_OK);
    kd_batch b;
    REQUIRE(kd_loader_next(&l, &b, &err) == KD_ERR_DATA);
    REQUIRE(std::string(err.message).find("found NaN at row 17, column 2") != std::string::npos);
    kd_loader_close(&l);
    kd_dataset_close(&ds);
}

TEST_CASE("the in-memory loader visits every sample once per epoch in a seeded order", "[loader]")
{
    std::string dir = kdtest::temp_dir();
    std::string path = write_schema_file(dir, 53, 4, 8);
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    REQUIRE(kd_dataset_load(&ds, KD_SPLIT_TRAIN, &err) == KD_OK);
    auto a = epoch_order(&ds, KD_SPLIT_TRAIN, false, 42, 0);
    REQUIRE(is_permutation_of_rows(a, 53));
    REQUIRE(a == epoch_order(&ds, KD_SPLIT_TRAIN, false, 42, 0)); // the same on every run
    REQUIRE(a != epoch_order(&ds, KD_SPLIT_TRAIN, false, 42, 1)); // a new order each epoch
    REQUIRE(a != epoch_order(&ds, KD_SPLIT_TRAIN, false, 43, 0)); // and for each seed
    REQUIRE(is_permutation_of_rows(epoch_order(&ds, KD_SPLIT_TRAIN, false, 42, 1), 53));

    // Batches carry the rows and labels of their indices; the last batch holds 53 % 5 = 3.
    kd_loader_options lo;
    kd_loader_options_default(&lo);
    lo.batch_size = 5;
    kd_loader l;
    REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_TRAIN, &lo, &err) == KD_OK);
    REQUIRE(kd_loader_batches_per_epoch(&l) == 11);
    kd_batch b;
    std::vector<float> row(4);
    int batches = 0, last_rows = 0;
    while (kd_loader_next(&l, &b, &err) == KD_OK && b.rows > 0) {
        batches++;
        last_rows = b.rows;
        for (int i = 0; i < b.rows; i++) {
            kd_dataset_row(&ds, KD_SPLIT_TRAIN, b.index[i], row.data());
            REQUIRE(std::equal(row.begin(), row.end(), b.x + i * 4));
            REQUIRE(b.y[i] == ds.split[KD_SPLIT_TRAIN].labels[b.index[i]]);
        }
    }
    REQUIRE(batches == 11);
    REQUIRE(last_rows == 3);
    kd_loader_close(&l);

    lo.last_batch = KD_LAST_BATCH_DROP;
    REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_TRAIN, &lo, &err) == KD_OK);
    REQUIRE(kd_loader_batches_per_epoch(&l) == 10);
    batches = 0;
    while (kd_loader_next(&l, &b, &err) == KD_OK && b.rows > 0) {
        REQUIRE(b.rows == 5);
        batches++;
    }
    REQUIRE(batches == 10);
    kd_loader_close(&l);
    kd_dataset_close(&ds);
}

TEST_CASE("a file cut short while it is streamed is an error at the next read, not rows of zeros", "[loader]")
{
    std::string dir = kdtest::temp_dir();
    std::string path = write_schema_file(dir, 4000, 16, 256); // 16 chunks of 256 rows
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    kd_loader_options lo;
    kd_loader_options_default(&lo);
    lo.streaming = true;
    lo.batch_size = 100;
    lo.buffer_rows = 512;
    kd_loader l;
    REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_TRAIN, &lo, &err) == KD_OK);
    kd_batch b;
    REQUIRE(kd_loader_next(&l, &b, &err) == KD_OK); // the first fill is read whole
    REQUIRE(b.rows == 100);
    auto size = std::filesystem::file_size(path);
    std::filesystem::resize_file(path, size / 2);
    int rc = KD_OK;
    for (int i = 0; i < 40 && rc == KD_OK; i++) rc = kd_loader_next(&l, &b, &err); // on to the next fill
    REQUIRE(rc == KD_ERR_DATA);
    INFO(err.message);
    REQUIRE(std::string(err.message).find(path + ": the file is " + std::to_string(size / 2) + " bytes") !=
            std::string::npos);
    REQUIRE(std::string(err.message).find("it was cut short while being read") != std::string::npos);
    kd_loader_close(&l);
    kd_dataset_close(&ds);
}

TEST_CASE("the epoch orders are uniform permutations: each of the 24 orders of 4 rows about equally often", "[loader]")
{
    // 2400 epochs of 4 rows: every one of the 4! = 24 orders is expected 100 times
    // (binomial, sd 9.8), row 0 stays first in a quarter of them (600, sd 21). An
    // off-by-one Fisher-Yates (Sattolo's cycles) never leaves a row in place.
    std::string dir = kdtest::temp_dir();
    std::string path = write_schema_file(dir, 4, 2, 2);
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    o.val_from_train = 0;
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    REQUIRE(kd_dataset_load(&ds, KD_SPLIT_TRAIN, &err) == KD_OK);
    std::map<std::vector<int64_t>, int> seen;
    int first_stays = 0;
    for (int64_t epoch = 0; epoch < 2400; epoch++) {
        std::vector<int64_t> order = epoch_order(&ds, KD_SPLIT_TRAIN, false, 9, epoch, 4);
        REQUIRE(is_permutation_of_rows(order, 4));
        seen[order]++;
        first_stays += order[0] == 0;
    }
    REQUIRE(seen.size() == 24);
    for (const auto &[order, count] : seen) {
        INFO("an order seen " << count << " times");
        REQUIRE(count >= 60); // 4 sd below 100
        REQUIRE(count <= 140);
    }
    REQUIRE(first_stays >= 515); // 4 sd around 600
    REQUIRE(first_stays <= 685);
    kd_dataset_close(&ds);
}

TEST_CASE("the in-memory order does not depend on how the file is chunked", "[loader]")
{
    std::string dir = kdtest::temp_dir();
    std::vector<std::vector<int64_t>> orders;
    int k = 0;
    for (hsize_t chunk : {0, 7, 64}) {
        std::string path = write_schema_file(dir, 64, 4, chunk, "c" + std::to_string(k++) + ".h5");
        kd_dataset_options o;
        kd_dataset_options_default(&o);
        kd_dataset ds;
        kd_error err;
        REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
        REQUIRE(kd_dataset_load(&ds, KD_SPLIT_TRAIN, &err) == KD_OK);
        orders.push_back(epoch_order(&ds, KD_SPLIT_TRAIN, false, 9, 3));
        kd_dataset_close(&ds);
    }
    REQUIRE(orders[0] == orders[1]);
    REQUIRE(orders[0] == orders[2]);
}

// 100 training rows of 5 uint8 features (4 classes) in chunks of 8, written to `path` and
// opened with the last val_from_train rows as validation; the training split loaded.
static Split open_chunked_rows(const std::string &path, uint64_t seed, int64_t val_from_train, kd_dataset *ds)
{
    Split s = make_split(100, 5, 4, seed);
    {
        H5Writer w(path);
        w.dataset("/train/x", H5T_NATIVE_UINT8, {100, 5}, s.x.data(), 8);
        w.dataset("/train/y", H5T_NATIVE_UINT8, {100}, s.y.data());
    }
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    o.val_from_train = val_from_train;
    o.require_test = false;
    kd_error err;
    REQUIRE(kd_dataset_open(ds, path.c_str(), &o, &err) == KD_OK);
    REQUIRE(kd_dataset_load(ds, KD_SPLIT_TRAIN, &err) == KD_OK);
    return s;
}

TEST_CASE("the streaming loader visits every sample once per epoch, stably, with the right rows", "[loader]")
{
    // 100 train rows in chunks of 8; validation = the last 30 rows, starting mid-chunk.
    kd_dataset ds;
    kd_error err;
    Split s = open_chunked_rows(kdtest::temp_dir() + "/s.h5", 11, 30, &ds);
    REQUIRE(kd_dataset_load(&ds, KD_SPLIT_VAL, &err) == KD_OK);
    for (kd_split split : {KD_SPLIT_TRAIN, KD_SPLIT_VAL})
        for (int64_t buffer : {1, 16, 24, 1000}) { // 1 is clamped up to one block
            INFO("split " << kd_split_name(split) << " buffer " << buffer);
            int64_t n = ds.split[split].rows;
            auto a = epoch_order(&ds, split, true, 5, 0, 7, buffer);
            REQUIRE(is_permutation_of_rows(a, n));
            REQUIRE(a == epoch_order(&ds, split, true, 5, 0, 7, buffer));
            auto b = epoch_order(&ds, split, true, 5, 1, 7, buffer);
            REQUIRE(is_permutation_of_rows(b, n));
            REQUIRE(a != b);
        }
    // Streamed rows equal the in-memory rows of the same index.
    kd_loader_options lo;
    kd_loader_options_default(&lo);
    lo.streaming = true;
    lo.batch_size = 9;
    lo.buffer_rows = 16;
    kd_loader l;
    REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_VAL, &lo, &err) == KD_OK);
    kd_batch b;
    std::vector<float> row(5);
    int seen = 0;
    while (kd_loader_next(&l, &b, &err) == KD_OK && b.rows > 0)
        for (int i = 0; i < b.rows; i++, seen++) {
            kd_dataset_row(&ds, KD_SPLIT_VAL, b.index[i], row.data());
            REQUIRE(std::equal(row.begin(), row.end(), b.x + i * 5));
            REQUIRE(b.y[i] == s.y[70 + b.index[i]]);
        }
    REQUIRE(seen == 30);
    kd_loader_close(&l);
    kd_dataset_close(&ds);
}

TEST_CASE("a loader serving parts of each batch gives exactly those rows of the whole batches, in memory and streamed", "[loader]")
{
    // A data-parallel rank's loader (parts [first, end) of `parts`): the batches and their
    // order are the whole loader's, and each batch's rows p B / parts to ... are served.
    kd_dataset ds;
    kd_error err;
    Split s = open_chunked_rows(kdtest::temp_dir() + "/p.h5", 13, 0, &ds);
    for (bool streaming : {false, true}) {
        kd_loader_options lo;
        kd_loader_options_default(&lo);
        lo.streaming = streaming;
        lo.batch_size = 33; // 100 rows: batches of 33, 33, 33 and 1
        lo.buffer_rows = 16;
        std::vector<std::vector<int64_t>> whole;
        kd_loader l;
        kd_batch b;
        REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_TRAIN, &lo, &err) == KD_OK);
        kd_loader_start_epoch(&l, 1);
        while (kd_loader_next(&l, &b, &err) == KD_OK && b.batch_rows > 0) {
            REQUIRE(b.rows == b.batch_rows);
            whole.emplace_back(b.index, b.index + b.rows);
        }
        kd_loader_close(&l);
        REQUIRE(whole.size() == 4);
        lo.parts = 6;
        for (auto [first, end] : {std::pair<int, int>{0, 2}, {2, 4}, {4, 6}, {5, 6}}) {
            INFO((streaming ? "streamed" : "in memory") << ", parts " << first << " to " << end);
            lo.part_first = first;
            lo.part_end = end;
            REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_TRAIN, &lo, &err) == KD_OK);
            kd_loader_start_epoch(&l, 1);
            size_t k = 0;
            std::vector<float> row(5);
            while (kd_loader_next(&l, &b, &err) == KD_OK && b.batch_rows > 0) {
                REQUIRE(k < whole.size());
                int64_t B = (int64_t)whole[k].size(), lo_row = first * B / 6, hi_row = end * B / 6;
                REQUIRE(b.batch_rows == B);
                REQUIRE(b.offset == lo_row);
                REQUIRE(b.rows == hi_row - lo_row); // the last batch's one row is part 5's alone
                for (int i = 0; i < b.rows; i++) {
                    REQUIRE(b.index[i] == whole[k][(size_t)(lo_row + i)]);
                    kd_dataset_row(&ds, KD_SPLIT_TRAIN, b.index[i], row.data());
                    REQUIRE(std::equal(row.begin(), row.end(), b.x + i * 5));
                    REQUIRE(b.y[i] == s.y[(size_t)b.index[i]]);
                }
                k++;
            }
            REQUIRE(k == whole.size());
            kd_loader_close(&l);
        }
    }
    kd_loader_options bad;
    kd_loader_options_default(&bad);
    bad.parts = 4;
    bad.part_first = 3;
    bad.part_end = 3;
    kd_loader l;
    REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_TRAIN, &bad, &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "batch parts: expected 0 <= first < end <= 4, found 3 and 3");
    kd_dataset_close(&ds);
}

TEST_CASE("streaming a contiguous dataset and without shuffling gives file order", "[loader]")
{
    std::string dir = kdtest::temp_dir();
    std::string path = write_schema_file(dir, 50, 3, 0);
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    kd_loader_options lo;
    kd_loader_options_default(&lo);
    lo.streaming = true;
    lo.shuffle = false;
    lo.batch_size = 6;
    kd_loader l;
    REQUIRE(kd_loader_open(&l, &ds, KD_SPLIT_TRAIN, &lo, &err) == KD_OK);
    REQUIRE(kd_loader_block_rows(&l) == 1024);
    kd_batch b;
    int64_t expect = 0;
    while (kd_loader_next(&l, &b, &err) == KD_OK && b.rows > 0)
        for (int i = 0; i < b.rows; i++) REQUIRE(b.index[i] == expect++);
    REQUIRE(expect == 50);
    kd_loader_close(&l);
    kd_dataset_close(&ds);
}
