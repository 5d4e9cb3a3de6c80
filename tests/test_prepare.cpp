// `kdtrain prepare fashion-mnist`: a tiny generated IDX set (50 training, 20 test
// images) goes through kd_prepare_fashion_mnist and comes back byte for byte from
// HDF5 with the right splits, attributes and filters; every bad input fails with
// a message naming the file and what was expected, leaving no output behind.
#include "support.h"

extern "C" {
#include "data/dataset.h"
#include "data/idx.h"
#include "data/prepare.h"
}

#include <catch2/catch.hpp>
#include <hdf5.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace {

const int kTrain = 50, kTest = 20, kVal = 10, kPixels = 28 * 28;
const char *const kTrainImages = "train-images-idx3-ubyte.gz";
const char *const kTrainLabels = "train-labels-idx1-ubyte.gz";
const char *const kTestImages = "t10k-images-idx3-ubyte.gz";
const char *const kTestLabels = "t10k-labels-idx1-ubyte.gz";

using Bytes = std::vector<uint8_t>;

void put_be32(Bytes &out, uint32_t v)
{
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back((uint8_t)(v >> shift));
}

// An IDX file: magic, dims, then the payload, all as given (no checks: tests
// use this to write broken files too).
Bytes idx_bytes(uint32_t magic, const std::vector<uint32_t> &dims, const Bytes &payload)
{
    Bytes out;
    put_be32(out, magic);
    for (uint32_t d : dims) put_be32(out, d);
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

void write_gz(const std::string &path, const Bytes &bytes)
{
    gzFile gz = gzopen(path.c_str(), "wb");
    REQUIRE(gz != nullptr);
    REQUIRE(gzwrite(gz, bytes.data(), (unsigned)bytes.size()) == (int)bytes.size());
    REQUIRE(gzclose(gz) == Z_OK);
}

Bytes read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string &path, const Bytes &bytes)
{
    std::ofstream out(path, std::ios::binary);
    out.write((const char *)bytes.data(), (std::streamsize)bytes.size());
    REQUIRE(out.good());
}

// Pixels from a fixed LCG (every byte value occurs); labels cycle through 0..9
// in an order that is not the row index.
struct Fixture {
    std::string dir;
    Bytes train_x, train_y, test_x, test_y;

    Fixture() : dir(kdtest::temp_dir())
    {
        uint32_t state = 12345;
        auto fill = [&state](Bytes &x, int n) {
            x.resize((size_t)n * kPixels);
            for (uint8_t &b : x) b = (uint8_t)((state = state * 1664525u + 1013904223u) >> 24);
        };
        fill(train_x, kTrain);
        fill(test_x, kTest);
        for (int i = 0; i < kTrain; i++) train_y.push_back((uint8_t)((i * 7 + 3) % 10));
        for (int i = 0; i < kTest; i++) test_y.push_back((uint8_t)((i * 3 + 1) % 10));
        write_images(kTrainImages, 0x803, kTrain, train_x);
        write_labels(kTrainLabels, kTrain, train_y);
        write_images(kTestImages, 0x803, kTest, test_x);
        write_labels(kTestLabels, kTest, test_y);
    }
    std::string path(const std::string &name) const { return dir + "/" + name; }
    void write_images(const char *name, uint32_t magic, uint32_t n, const Bytes &x) const
    {
        write_gz(path(name), idx_bytes(magic, {n, 28, 28}, x));
    }
    void write_labels(const char *name, uint32_t n, const Bytes &y) const
    {
        write_gz(path(name), idx_bytes(0x801, {n}, y));
    }
    std::string out() const { return path("fm.h5"); }
};

struct Result {
    int rc;
    std::string message;
};

Result prepare(const Fixture &f, int n_val = kVal)
{
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_prepare_fashion_mnist(f.dir.c_str(), f.out().c_str(), n_val, &err);
    return {rc, err.message};
}

// The shared contract of every failure: non-zero, a message naming the file and
// the expectation, no output and no temporary file.
void require_clean_failure(const Fixture &f, const Result &r, const std::string &file,
                           const std::string &expectation)
{
    INFO(r.message);
    REQUIRE(r.rc != 0);
    REQUIRE(r.message.find(file) != std::string::npos);
    REQUIRE(r.message.find(expectation) != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(f.out()));
    REQUIRE(kdtest::leftover_temporaries(f.dir).empty());
}

struct H5File {
    hid_t id;
    explicit H5File(const std::string &path) : id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT))
    {
        REQUIRE(id >= 0);
    }
    ~H5File() { H5Fclose(id); }
};

Bytes read_u8(hid_t file, const char *name, std::vector<hsize_t> &dims)
{
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    REQUIRE(dset >= 0);
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
    REQUIRE(H5Tequal(type, H5T_STD_U8LE) > 0);
    dims.assign((size_t)H5Sget_simple_extent_ndims(space), 0);
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    Bytes data((size_t)H5Sget_simple_extent_npoints(space));
    REQUIRE(H5Dread(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) >= 0);
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(dset);
    return data;
}

void require_split(hid_t file, const char *group, const Bytes &x, const Bytes &y, size_t first,
                   size_t rows)
{
    std::vector<hsize_t> dims;
    Bytes got_x = read_u8(file, (std::string("/") + group + "/x").c_str(), dims);
    REQUIRE(dims == std::vector<hsize_t>{rows, (hsize_t)kPixels});
    REQUIRE(got_x == Bytes(x.begin() + (long)(first * kPixels), x.begin() + (long)((first + rows) * kPixels)));
    Bytes got_y = read_u8(file, (std::string("/") + group + "/y").c_str(), dims);
    REQUIRE(dims == std::vector<hsize_t>{rows});
    REQUIRE(got_y == Bytes(y.begin() + (long)first, y.begin() + (long)(first + rows)));
}

// Reads a numeric attribute of the root group as int64 or double, checking its
// stored class and element count.
template <typename T>
std::vector<T> read_attr(hid_t file, const char *name, H5T_class_t cls, hid_t mem_type)
{
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    REQUIRE(attr >= 0);
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    REQUIRE(H5Tget_class(type) == cls);
    REQUIRE(H5Tget_size(type) == 8);
    std::vector<T> values((size_t)H5Sget_simple_extent_npoints(space));
    REQUIRE(H5Aread(attr, mem_type, values.data()) >= 0);
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
    return values;
}

std::vector<std::string> read_string_attr(hid_t file, const char *name)
{
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    REQUIRE(attr >= 0);
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    REQUIRE(H5Tis_variable_str(type) > 0);
    REQUIRE(H5Tget_cset(type) == H5T_CSET_UTF8);
    std::vector<char *> raw((size_t)H5Sget_simple_extent_npoints(space));
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5T_CSET_UTF8);
    REQUIRE(H5Aread(attr, mem, raw.data()) >= 0);
    std::vector<std::string> out;
    for (char *s : raw) {
        out.push_back(s ? s : "");
        H5free_memory(s);
    }
    H5Tclose(mem);
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
    return out;
}

struct Filters {
    bool chunked = false;
    std::vector<hsize_t> chunk;
    std::vector<H5Z_filter_t> ids;
    std::vector<unsigned> first_values; // each filter's cd_values[0] (deflate: the level)
};

Filters read_filters(hid_t file, const char *name)
{
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    REQUIRE(dset >= 0);
    hid_t dcpl = H5Dget_create_plist(dset);
    Filters f;
    f.chunked = H5Pget_layout(dcpl) == H5D_CHUNKED;
    if (f.chunked) {
        hsize_t chunk[2] = {0, 0};
        int rank = H5Pget_chunk(dcpl, 2, chunk);
        f.chunk.assign(chunk, chunk + rank);
    }
    for (int i = 0; i < H5Pget_nfilters(dcpl); i++) {
        unsigned flags = 0, values[4] = {0, 0, 0, 0};
        size_t n_values = 4;
        char fname[64];
        f.ids.push_back(H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values, values, sizeof fname, fname,
                                       nullptr));
        f.first_values.push_back(n_values > 0 ? values[0] : 0);
    }
    H5Pclose(dcpl);
    H5Dclose(dset);
    return f;
}

using kdtest::Run;

Run run_kdtrain(const std::string &args) { return kdtest::run_binary(args); }

} // namespace

TEST_CASE("kd_idx_read returns the dims and the payload of an images file", "[prepare]")
{
    Fixture f;
    kd_idx idx;
    kd_error err;
    kd_error_clear(&err);
    REQUIRE(kd_idx_read(f.path(kTestImages).c_str(), 3, &idx, &err) == 0);
    REQUIRE(idx.ndims == 3);
    REQUIRE((idx.dims[0] == (uint32_t)kTest && idx.dims[1] == 28 && idx.dims[2] == 28));
    REQUIRE(Bytes(idx.data, idx.data + idx.size) == f.test_x);
    kd_idx_free(&idx);
    REQUIRE(idx.data == nullptr);
}

TEST_CASE("prepare keeps every pixel and label and splits val off the end of train", "[prepare]")
{
    Fixture f;
    Result r = prepare(f);
    INFO(r.message);
    REQUIRE(r.rc == 0);
    REQUIRE(kdtest::leftover_temporaries(f.dir).empty());
    H5File file(f.out());
    require_split(file.id, "train", f.train_x, f.train_y, 0, kTrain - kVal);
    require_split(file.id, "val", f.train_x, f.train_y, kTrain - kVal, kVal);
    require_split(file.id, "test", f.test_x, f.test_y, 0, kTest);
}

TEST_CASE("prepare writes the root attributes the training code reads", "[prepare]")
{
    Fixture f;
    REQUIRE(prepare(f).rc == 0);
    H5File file(f.out());
    REQUIRE(read_attr<int64_t>(file.id, "num_classes", H5T_INTEGER, H5T_NATIVE_INT64) ==
            std::vector<int64_t>{10});
    REQUIRE(read_attr<double>(file.id, "x_scale", H5T_FLOAT, H5T_NATIVE_DOUBLE) ==
            std::vector<double>{1.0 / 255.0});
    REQUIRE(read_attr<int64_t>(file.id, "image_shape", H5T_INTEGER, H5T_NATIVE_INT64) ==
            std::vector<int64_t>{28, 28});
    REQUIRE(read_attr<int64_t>(file.id, "val_from_train", H5T_INTEGER, H5T_NATIVE_INT64) ==
            std::vector<int64_t>{kVal});
    REQUIRE(read_string_attr(file.id, "class_names") ==
            std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                     "Shirt", "Sneaker", "Bag", "Ankle boot"});
    REQUIRE(read_string_attr(file.id, "source") ==
            std::vector<std::string>{"Fashion-MNIST IDX files from " + f.dir});
}

TEST_CASE("prepare chunks x with shuffle + deflate 4 and y with deflate", "[prepare]")
{
    Fixture f;
    REQUIRE(prepare(f).rc == 0);
    H5File file(f.out());
    Filters x = read_filters(file.id, "/train/x");
    REQUIRE(x.chunked);
    REQUIRE(x.chunk == std::vector<hsize_t>{kTrain - kVal, (hsize_t)kPixels}); // split < 1024 rows
    REQUIRE(x.ids == std::vector<H5Z_filter_t>{H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE});
    REQUIRE(x.first_values[1] == 4);
    Filters y = read_filters(file.id, "/test/y");
    REQUIRE(y.chunked);
    REQUIRE(y.chunk == std::vector<hsize_t>{kTest});
    REQUIRE(y.ids == std::vector<H5Z_filter_t>{H5Z_FILTER_DEFLATE});
    REQUIRE(y.first_values[0] == 4);
}

TEST_CASE("a prepared file opens with kd_dataset_open as a 10-class 28x28 image set", "[prepare]")
{
    Fixture f;
    REQUIRE(prepare(f).rc == 0);
    kd_dataset_options options;
    kd_dataset_options_default(&options);
    kd_dataset ds;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_dataset_open(&ds, f.out().c_str(), &options, &err);
    INFO(err.message);
    REQUIRE(rc == 0);
    CHECK(ds.dim == kPixels);
    CHECK(ds.num_classes == 10);
    CHECK(ds.x_scale == 1.0 / 255.0);
    CHECK((ds.image_shape[0] == 28 && ds.image_shape[1] == 28));
    CHECK(ds.n_class_names == 10);
    CHECK(ds.split[KD_SPLIT_TRAIN].rows == kTrain - kVal);
    CHECK(ds.split[KD_SPLIT_VAL].rows == kVal);
    CHECK(ds.split[KD_SPLIT_TEST].rows == kTest);
    CHECK(ds.split[KD_SPLIT_TRAIN].stored_type == KD_FEATURE_UINT8);
    CHECK(ds.split[KD_SPLIT_TRAIN].chunk_rows == kTrain - kVal);
    CHECK(std::string(ds.notes).empty()); // no default had to be applied
    kd_dataset_close(&ds);
}

TEST_CASE("prepare reads plain (not gzipped) IDX files too", "[prepare]")
{
    Fixture f;
    write_file(f.path(kTestLabels), idx_bytes(0x801, {kTest}, f.test_y)); // the .gz name, raw bytes
    REQUIRE(prepare(f).rc == 0);
    H5File file(f.out());
    require_split(file.id, "test", f.test_x, f.test_y, 0, kTest);
}

TEST_CASE("prepare fails cleanly when a source file is missing", "[prepare]")
{
    Fixture f;
    REQUIRE(std::remove(f.path(kTestLabels).c_str()) == 0);
    require_clean_failure(f, prepare(f), f.path(kTestLabels), "cannot open: No such file or directory");
}

TEST_CASE("prepare fails cleanly on a bad magic number", "[prepare]")
{
    Fixture f;
    f.write_images(kTrainImages, 0x801, kTrain, f.train_x);
    require_clean_failure(f, prepare(f), f.path(kTrainImages),
                          "expected magic 0x00000803 (uint8 images), found 0x00000801");
}

TEST_CASE("prepare fails cleanly on a truncated images file", "[prepare]")
{
    Fixture f;
    f.write_images(kTrainImages, 0x803, kTrain, Bytes(f.train_x.begin(), f.train_x.begin() + 1000));
    require_clean_failure(f, prepare(f), f.path(kTrainImages),
                          "truncated: expected 39200 pixel bytes, found 1000");
}

TEST_CASE("prepare fails cleanly on a gzip stream cut short", "[prepare]")
{
    Fixture f;
    Bytes gz = read_file(f.path(kTestImages));
    gz.resize(gz.size() / 2);
    write_file(f.path(kTestImages), gz);
    require_clean_failure(f, prepare(f), f.path(kTestImages), "truncated: expected 15680 pixel bytes");
}

TEST_CASE("prepare fails cleanly on a gzip stream with a bad checksum", "[prepare]")
{
    Fixture f;
    Bytes gz = read_file(f.path(kTrainLabels));
    gz[gz.size() - 6] ^= 0xff; // inside the CRC-32 of the gzip trailer
    write_file(f.path(kTrainLabels), gz);
    require_clean_failure(f, prepare(f), f.path(kTrainLabels),
                          "expected a valid gzip stream, found a damaged one (incorrect data check)");
}

TEST_CASE("prepare fails cleanly on bytes after the payload", "[prepare]")
{
    Fixture f;
    Bytes y = f.train_y;
    y.push_back(0);
    f.write_labels(kTrainLabels, kTrain, y);
    require_clean_failure(f, prepare(f), f.path(kTrainLabels),
                          "expected 50 label bytes, found 1 more after them");
}

TEST_CASE("prepare fails cleanly when image and label counts differ", "[prepare]")
{
    Fixture f;
    f.write_labels(kTrainLabels, kTrain - 1, Bytes(f.train_y.begin(), f.train_y.end() - 1));
    require_clean_failure(f, prepare(f), f.path(kTrainLabels), "expected 50 labels (one per image in");
}

TEST_CASE("prepare fails cleanly on images that are not 28x28", "[prepare]")
{
    Fixture f;
    write_gz(f.path(kTestImages), idx_bytes(0x803, {kTest, 28, 27}, Bytes((size_t)kTest * 28 * 27)));
    require_clean_failure(f, prepare(f), f.path(kTestImages), "expected 28x28 images, found 28x27");
}

TEST_CASE("prepare fails cleanly on a label out of 0..9", "[prepare]")
{
    Fixture f;
    f.test_y[7] = 10;
    f.write_labels(kTestLabels, kTest, f.test_y);
    require_clean_failure(f, prepare(f), f.path(kTestLabels), "expected labels in 0..9, found 10 at index 7");
}

TEST_CASE("prepare fails cleanly when n_val is not below the training count", "[prepare]")
{
    Fixture f;
    require_clean_failure(f, prepare(f, kTrain), f.path(kTrainImages), "expected a validation split (--val) of 1 to 49 rows");
    require_clean_failure(f, prepare(f, 0), f.path(kTrainImages), "found 0");
}

TEST_CASE("a failed prepare leaves an existing output file byte-identical", "[prepare]")
{
    Fixture f;
    REQUIRE(prepare(f).rc == 0);
    Bytes before = read_file(f.out());
    REQUIRE(!before.empty());
    f.test_y[0] = 10;
    f.write_labels(kTestLabels, kTest, f.test_y);
    Result r = prepare(f);
    REQUIRE(r.rc != 0);
    REQUIRE(read_file(f.out()) == before);
    REQUIRE(kdtest::leftover_temporaries(f.dir).empty());
}

TEST_CASE("prepare creates missing folders of the output only after the inputs pass", "[prepare]")
{
    Fixture f;
    kd_error err;
    kd_error_clear(&err);
    std::string nested = f.dir + "/a/b/fm.h5";
    REQUIRE(kd_prepare_fashion_mnist((f.dir + "/nowhere").c_str(), nested.c_str(), kVal, &err) != 0);
    REQUIRE_FALSE(kdtest::file_exists(f.dir + "/a")); // a failed read creates nothing
    REQUIRE(kd_prepare_fashion_mnist(f.dir.c_str(), nested.c_str(), kVal, &err) == 0);
    REQUIRE(kdtest::file_exists(nested));

    write_file(f.dir + "/blocker", Bytes{'x'}); // a file where a folder should be
    kd_error_clear(&err);
    std::string blocked = f.dir + "/blocker/fm.h5";
    REQUIRE(kd_prepare_fashion_mnist(f.dir.c_str(), blocked.c_str(), kVal, &err) != 0);
    INFO(err.message);
    REQUIRE(std::string(err.message).find(f.dir + "/blocker: expected a directory, found a file") !=
            std::string::npos);
}

TEST_CASE("kdtrain prepare fashion-mnist writes the file and reports the splits", "[prepare][cli]")
{
    Fixture f;
    std::string out = f.dir + "/sub/dir/x.h5"; // missing folders are created
    Run run = run_kdtrain("prepare fashion-mnist --src " + f.dir + " --out " + out + " --val 10");
    INFO(run.out);
    REQUIRE(run.exit_code == 0);
    REQUIRE(run.out.find("train 40, val 10, test 20") != std::string::npos);
    REQUIRE(kdtest::file_exists(out));
}

TEST_CASE("kdtrain prepare rejects bad usage with exit 2, naming the option", "[prepare][cli]")
{
    Fixture f;
    std::string base = "prepare fashion-mnist --src " + f.dir + " --out " + f.out();
    // --val 50: as many as the fixture's training images, none would be left to train on
    for (const char *bad : {" --val abc", " --val 0", " --val -3", " --val", " --bogus 1", " --val 50"}) {
        Run run = run_kdtrain(base + bad);
        INFO(bad << ": " << run.out);
        REQUIRE(run.exit_code == 2);
        std::string option = std::string(bad).substr(1, std::string(bad).find(' ', 1) - 1);
        REQUIRE(run.out.find(option) != std::string::npos);
    }
    Run unknown = run_kdtrain("prepare mnist");
    REQUIRE(unknown.exit_code == 2);
    REQUIRE(unknown.out.find("unknown data set 'mnist'") != std::string::npos);
    REQUIRE(run_kdtrain("prepare").exit_code == 2);
    REQUIRE_FALSE(kdtest::file_exists(f.out()));
}

TEST_CASE("kdtrain prepare exits 1 on a data error and 0 on --help", "[prepare][cli]")
{
    Fixture f;
    Run run = run_kdtrain("prepare fashion-mnist --src " + f.dir + "/nowhere --out " + f.out());
    REQUIRE(run.exit_code == 1);
    REQUIRE(run.out.find("kdtrain prepare: " + f.dir + "/nowhere/train-images-idx3-ubyte.gz") !=
            std::string::npos);
    Run help = run_kdtrain("prepare --help");
    REQUIRE(help.exit_code == 0);
    REQUIRE(help.out.find("dpkg -L dataset-fashion-mnist") != std::string::npos);
}
