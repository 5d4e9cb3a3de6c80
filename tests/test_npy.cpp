// .npy files and logits specs: the reader of io/npy.h on the committed fixtures of
// scripts/make_npy_fixtures.py (numpy's own np.save output, and hand-made bad files),
// and kd_logits_read_spec over .npy and HDF5 sources. The fixtures hold formulas of
// their index, recomputed here: z[i, j] = (3 i + j - 7) * 0.375 (exact in float32),
// the integer tables of INTS, the probability rows of PROBS.
#include "support.h"

extern "C" {
#include "io/logits.h"
#include "io/npy.h"
}

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const std::string npy_dir = std::string(KD_TEST_DATA_DIR) + "/npy/";

double z_value(int i, int j) { return (3 * i + j - 7) * 0.375; }

const int64_t fixture_labels[5] = {2, 0, 1, 1, 0};

// The probability rows of probs.npy, as the script wrote them (float64).
const double probs[5][3] = {{0.5, 0.25, 0.25}, {0.1, 0.0, 0.9}, {0.2, 0.3, 0.5}, {1.0, 0.0, 0.0}, {0.125, 0.625, 0.25}};

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

std::string copy_fixture(const std::string &name, const std::string &dir, const std::string &as)
{
    fs::copy_file(npy_dir + name, dir + "/" + as, fs::copy_options::overwrite_existing);
    return dir + "/" + as;
}

// An HDF5 file of datasets given as doubles (HDF5 converts them to the file type).
struct H5Out {
    hid_t id;
    explicit H5Out(const std::string &path) : id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT))
    {
        REQUIRE(id >= 0);
    }
    ~H5Out() { H5Fclose(id); }
    void write(const std::string &name, hid_t file_type, std::vector<hsize_t> dims, const std::vector<double> &v)
    {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t space = H5Screate_simple((int)dims.size(), dims.data(), nullptr);
        hid_t d = H5Dcreate2(id, name.c_str(), file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(d >= 0);
        REQUIRE(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
        H5Dclose(d);
        H5Sclose(space);
        H5Pclose(lcpl);
    }
};

std::vector<double> z_doubles()
{
    std::vector<double> z;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) z.push_back(z_value(i, j));
    return z;
}

// Reads with kd_logits_read_spec; on failure returns the message (and "" on success).
std::string read_spec_error(const std::string &logits, const char *labels, kd_logits_read_options o = {})
{
    kd_logits l;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_logits_read_spec(&l, logits.c_str(), labels, &o, &err);
    if (rc == KD_OK) {
        kd_logits_free(&l);
        return "";
    }
    return err.message;
}

} // namespace

TEST_CASE("every valid npy float file reads to the same row-major values whatever its type, byte order, memory order or header version",
          "[npy]")
{
    struct File {
        const char *name;
        int version, item_size;
        bool big_endian, fortran;
    } files[] = {
        {"z_f4.npy", 1, 4, false, false},         {"z_f8.npy", 1, 8, false, false},
        {"z_f4_be.npy", 1, 4, true, false},       {"z_f8_be.npy", 1, 8, true, false},
        {"z_f4_fortran.npy", 1, 4, false, true},  {"z_f8_be_fortran.npy", 1, 8, true, true},
        {"z_f4_v2.npy", 2, 4, false, false},      {"z_f4_v3.npy", 3, 4, false, false},
        {"z_f4_header_reordered.npy", 1, 4, false, false}, {"z_f4_header_py2.npy", 1, 4, false, false},
    };
    for (const File &f : files) {
        INFO(f.name);
        kd_npy_header h;
        kd_error err;
        float *zf = nullptr;
        double *zd = nullptr;
        REQUIRE(kd_npy_read_float((npy_dir + f.name).c_str(), &zf, &h, &err) == KD_OK);
        REQUIRE(kd_npy_read_double((npy_dir + f.name).c_str(), &zd, &h, &err) == KD_OK);
        CHECK(h.version == f.version);
        CHECK(h.rank == 2);
        CHECK(h.dims[0] == 5);
        CHECK(h.dims[1] == 3);
        CHECK(h.kind == 'f');
        CHECK(h.item_size == f.item_size);
        CHECK(h.big_endian == f.big_endian);
        CHECK(h.fortran_order == f.fortran);
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 3; j++) {
                CHECK(zf[i * 3 + j] == (float)z_value(i, j));
                CHECK(zd[i * 3 + j] == z_value(i, j));
            }
        std::free(zf);
        std::free(zd);
    }
}

TEST_CASE("a 1-D npy array reads with rank 1 and a second dimension of 1", "[npy]")
{
    kd_npy_header h;
    kd_error err;
    float *v = nullptr;
    REQUIRE(kd_npy_read_float((npy_dir + "vec_f4.npy").c_str(), &v, &h, &err) == KD_OK);
    REQUIRE(h.rank == 1);
    REQUIRE(h.dims[0] == 6);
    REQUIRE(h.dims[1] == 1);
    for (int k = 0; k < 6; k++) CHECK(v[k] == 0.5f * (float)k);
    std::free(v);
}

TEST_CASE("npy integers of every width, signedness and byte order read to int64 exactly", "[npy]")
{
    const int64_t lo64 = std::numeric_limits<int64_t>::min(), hi64 = std::numeric_limits<int64_t>::max();
    struct Ints {
        const char *kind;
        std::vector<int64_t> values;
    } table[] = {
        {"i1", {-128, -1, 0, 1, 127}},
        {"u1", {0, 1, 2, 128, 255}},
        {"i2", {-32768, -1, 0, 1, 32767}},
        {"u2", {0, 1, 2, 40000, 65535}},
        {"i4", {-2147483648LL, -1, 0, 1, 2147483647LL}},
        {"u4", {0, 1, 2, 3000000000LL, 4294967295LL}},
        {"i8", {lo64, -1, 0, 1, hi64}},
        {"u8", {0, 1, 2, 1LL << 40, hi64}},
    };
    for (const Ints &t : table) {
        std::vector<std::string> names = {std::string("int_") + t.kind + ".npy"};
        if (t.kind[1] != '1') names.push_back(std::string("int_") + t.kind + "_be.npy");
        for (const std::string &name : names) {
            INFO(name);
            kd_npy_header h;
            kd_error err;
            int64_t *v = nullptr;
            REQUIRE(kd_npy_read_int64((npy_dir + name).c_str(), &v, &h, &err) == KD_OK);
            CHECK(h.kind == t.kind[0]);
            CHECK(h.item_size == t.kind[1] - '0');
            CHECK(h.big_endian == has(name, "_be"));
            REQUIRE(h.dims[0] == 5);
            for (int k = 0; k < 5; k++) CHECK(v[k] == t.values[k]);
            std::free(v);
        }
    }
}

TEST_CASE("a Fortran-order integer matrix is transposed on read to numpy's row-major meaning", "[npy]")
{
    kd_npy_header h;
    kd_error err;
    int64_t *v = nullptr;
    REQUIRE(kd_npy_read_int64((npy_dir + "int_i4_fortran.npy").c_str(), &v, &h, &err) == KD_OK);
    REQUIRE(h.fortran_order);
    REQUIRE(h.dims[0] == 2);
    REQUIRE(h.dims[1] == 3);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) CHECK(v[i * 3 + j] == 10 * i + j);
    std::free(v);
}

TEST_CASE("the float reader refuses integer arrays and the integer reader float arrays, naming the file and type", "[npy]")
{
    kd_npy_header h;
    kd_error err;
    float *f = nullptr;
    int64_t *i = nullptr;
    std::string ints = npy_dir + "int_i4.npy", floats = npy_dir + "z_f8.npy";
    REQUIRE(kd_npy_read_float(ints.c_str(), &f, &h, &err) == KD_ERR_DATA);
    REQUIRE(f == nullptr);
    REQUIRE(has(err.message, ints + ": expected float32 or float64 values, found int32 ('<i4')"));
    REQUIRE(kd_npy_read_int64(floats.c_str(), &i, &h, &err) == KD_ERR_DATA);
    REQUIRE(i == nullptr);
    REQUIRE(has(err.message, floats + ": expected integer values, found float64 ('<f8')"));
}

TEST_CASE("every bad npy file is refused with a message naming the file and the problem", "[npy]")
{
    struct Bad {
        const char *name;
        const char *message;
        bool as_int;
    } bad[] = {
        {"bad_magic.npy", "expected a .npy file (starting with \\x93NUMPY), found other bytes", false},
        {"bad_truncated_header.npy", "expected a .npy header of 118 bytes, found 30: the file is truncated", false},
        {"bad_truncated_data.npy", "expected 60 bytes of data for shape (5, 3) of float32, found 56: the file is truncated",
         false},
        {"bad_two_arrays.npy", "found 248: more than one array in the file?", false},
        {"bad_object.npy", "found Python objects (pickled, which is never read) ('|O')", false},
        {"bad_complex.npy", "found complex numbers ('<c8')", false},
        {"bad_str.npy", "found strings ('<U2')", false},
        {"bad_float16.npy", "found float16 (convert with .astype(np.float32)) ('<f2')", false},
        {"bad_bool.npy", "found bool (store labels as integers: .astype(np.int64)) ('|b1')", true},
        {"bad_structured.npy", "expected a type string (a list of fields is a structured type, not read) at byte 10", false},
        {"bad_rank3.npy", "expected an array of rank 1 or 2, found rank 3", false},
        {"bad_rank0.npy", "expected an array of rank 1 or 2, found rank 0", false},
        {"bad_shape_overflow.npy", "expected a shape whose size fits 64 bits, found (4611686018427387904, 8)", false},
        {"bad_shape_absurd.npy", "expected 40000000000000 bytes of data for shape (1000000000000, 10) of float32, found 60",
         false},
        {"bad_header_missing_key.npy", "expected a 'fortran_order' key at byte 34 of the .npy header, found '}'", false},
        {"bad_header_unknown_key.npy", "expected only the keys 'descr', 'fortran_order' and 'shape' at byte 58", false},
        {"bad_header_syntax.npy", "expected ',' or ')' in the shape at byte 55 of the .npy header, found '}'", false},
        {"bad_u8_too_large.npy", "expected values that fit int64, found 18446744073709551615 at row 1, column 0", true},
    };
    for (const Bad &b : bad) {
        std::string path = npy_dir + b.name;
        INFO(b.name);
        kd_npy_header h;
        kd_error err;
        kd_error_clear(&err);
        int rc;
        if (b.as_int) {
            int64_t *v = nullptr;
            rc = kd_npy_read_int64(path.c_str(), &v, &h, &err);
            CHECK(v == nullptr);
        } else {
            float *v = nullptr;
            rc = kd_npy_read_float(path.c_str(), &v, &h, &err);
            CHECK(v == nullptr);
        }
        CHECK(rc != KD_OK);
        INFO(err.message);
        CHECK(has(err.message, path + ": "));
        CHECK(has(err.message, b.message));
    }
}

TEST_CASE("a missing npy file is an error naming it", "[npy]")
{
    std::string path = kdtest::temp_dir() + "/none.npy";
    kd_npy_header h;
    kd_error err;
    float *v = nullptr;
    REQUIRE(kd_npy_read_float(path.c_str(), &v, &h, &err) == KD_ERR_IO);
    REQUIRE(has(err.message, path + ": cannot open: No such file or directory"));
}

TEST_CASE("npy logits find their labels beside them by the last logits in the file name replaced by labels", "[npy][logits]")
{
    std::string dir = kdtest::temp_dir();
    struct Pair {
        const char *logits, *labels;
    } pairs[] = {{"val_logits.npy", "val_labels.npy"},
                 {"val-logits.npy", "val-labels.npy"},
                 {"logits.npy", "labels.npy"},
                 {"logits-run-logits.npy", "logits-run-labels.npy"}};
    for (const Pair &p : pairs) {
        INFO(p.logits);
        std::string z = copy_fixture("z_f8_be_fortran.npy", dir, p.logits);
        copy_fixture("labels.npy", dir, p.labels);
        kd_logits l;
        kd_error err;
        REQUIRE(kd_logits_read_spec(&l, z.c_str(), nullptr, nullptr, &err) == KD_OK);
        CHECK(l.source == KD_LOGITS_NPY);
        CHECK(l.labels_source == KD_LOGITS_NPY);
        CHECK(std::string(l.labels_file) == dir + "/" + p.labels);
        CHECK(std::string(l.dataset).empty());
        CHECK(l.stored_double);
        REQUIRE(l.rows == 5);
        REQUIRE(l.classes == 3);
        for (int i = 0; i < 5; i++) {
            CHECK(l.labels[i] == fixture_labels[i]);
            for (int j = 0; j < 3; j++) CHECK(l.logits[i * 3 + j] == (float)z_value(i, j));
        }
        kd_logits_free(&l);
    }
}

TEST_CASE("npy logits without labels beside them are refused asking for the labels to be named", "[npy][logits]")
{
    std::string dir = kdtest::temp_dir();
    fs::create_directory(dir + "/logits");
    std::string alone = copy_fixture("z_f4.npy", dir, "val_logits.npy");
    std::string unnamed = copy_fixture("z_f4.npy", dir + "/logits", "val.npy"); // a folder's name does not count
    std::string e = read_spec_error(alone, nullptr);
    REQUIRE(has(e, alone + ": no labels named, and " + dir + "/val_labels.npy (the name with its last \"logits\""));
    REQUIRE(has(e, "--labels"));
    e = read_spec_error(unnamed, nullptr);
    REQUIRE(has(e, unnamed + ": no labels named, and the file name has no \"logits\" to find them by"));
    REQUIRE(has(e, "--labels"));
}

TEST_CASE("with labels optional npy logits without labels read with none", "[npy][logits]")
{
    std::string z = copy_fixture("z_f4.npy", kdtest::temp_dir(), "teacher.npy");
    kd_logits l;
    kd_error err;
    kd_logits_read_options o = {};
    o.labels_optional = true;
    REQUIRE(kd_logits_read_spec(&l, z.c_str(), nullptr, &o, &err) == KD_OK);
    REQUIRE(l.rows == 5);
    REQUIRE(l.labels == nullptr);
    REQUIRE(std::string(l.labels_file).empty());
    kd_logits_free(&l);
}

TEST_CASE("labels named as npy files of any integer type and of shape N or N by 1 are read", "[npy][logits]")
{
    std::string z = npy_dir + "z_f4.npy";
    for (const char *name : {"labels.npy", "labels_u1.npy", "labels_column.npy"}) {
        INFO(name);
        std::string y = npy_dir + name;
        kd_logits l;
        kd_error err;
        REQUIRE(kd_logits_read_spec(&l, z.c_str(), y.c_str(), nullptr, &err) == KD_OK);
        for (int i = 0; i < 5; i++) CHECK(l.labels[i] == fixture_labels[i]);
        kd_logits_free(&l);
    }
}

TEST_CASE("HDF5 specs name a dataset after the last colon-slash, and its labels are found by the same rule", "[npy][logits]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/all.h5";
    std::vector<double> z = z_doubles(), minus_z;
    for (double v : z) minus_z.push_back(-v);
    {
        H5Out f(path);
        f.write("/val/logits", H5T_IEEE_F32LE, {5, 3}, z);
        f.write("/val/labels", H5T_STD_U8LE, {5}, {2, 0, 1, 1, 0});
        f.write("/test/logits", H5T_IEEE_F64LE, {5, 3}, minus_z);
        f.write("/labels", H5T_STD_I64LE, {5}, {0, 0, 0, 0, 0});
        f.write("/other/y", H5T_STD_I32BE, {5}, {1, 1, 1, 1, 1});
    }
    kd_logits l;
    kd_error err;
    // /val/logits: labels from /val/labels beside it
    REQUIRE(kd_logits_read_spec(&l, (path + ":/val/logits").c_str(), nullptr, nullptr, &err) == KD_OK);
    CHECK(l.source == KD_LOGITS_HDF5);
    CHECK(std::string(l.file) == path);
    CHECK(std::string(l.dataset) == "/val/logits");
    CHECK(std::string(l.labels_dataset) == "/val/labels");
    for (int i = 0; i < 5; i++) CHECK(l.labels[i] == fixture_labels[i]);
    CHECK(l.logits[4] == (float)z_value(1, 1));
    kd_logits_free(&l);
    // /test/logits: no /test/labels, so the file's /labels
    REQUIRE(kd_logits_read_spec(&l, (path + ":/test/logits").c_str(), nullptr, nullptr, &err) == KD_OK);
    CHECK(std::string(l.labels_dataset) == "/labels");
    CHECK(l.logits[4] == -(float)z_value(1, 1));
    CHECK(l.stored_double);
    kd_logits_free(&l);
    // labels of the same file by :/path, of another file by FILE:/path, and a .npy
    REQUIRE(kd_logits_read_spec(&l, (path + ":/val/logits").c_str(), ":/other/y", nullptr, &err) == KD_OK);
    CHECK(std::string(l.labels_file) == path);
    CHECK(l.labels[0] == 1);
    kd_logits_free(&l);
    REQUIRE(kd_logits_read_spec(&l, (npy_dir + "z_f4.npy").c_str(), (path + ":/other/y").c_str(), nullptr, &err) == KD_OK);
    CHECK(l.labels_source == KD_LOGITS_HDF5);
    CHECK(std::string(l.labels_dataset) == "/other/y");
    CHECK(l.labels[4] == 1);
    kd_logits_free(&l);
    REQUIRE(kd_logits_read_spec(&l, (path + ":/test/logits").c_str(), (npy_dir + "labels.npy").c_str(), nullptr, &err) ==
            KD_OK);
    CHECK(l.labels_source == KD_LOGITS_NPY);
    CHECK(l.labels[0] == 2);
    kd_logits_free(&l);
    // a missing dataset is named
    std::string e = read_spec_error(path + ":/val/nothing", nullptr);
    REQUIRE(has(e, path + ":/val/nothing: expected a dataset, found none"));
}

TEST_CASE("a path holding a colon-slash is a file when it exists as one", "[npy][logits]")
{
    std::string dir = kdtest::temp_dir() + "/run:";
    fs::create_directory(dir);
    std::string path = dir + "/z.h5";
    {
        H5Out f(path);
        f.write("/logits", H5T_IEEE_F32LE, {5, 3}, z_doubles());
        f.write("/labels", H5T_STD_U8LE, {5}, {2, 0, 1, 1, 0});
    }
    for (const std::string &spec : {path, path + ":/logits"}) {
        INFO(spec);
        kd_logits l;
        kd_error err;
        REQUIRE(kd_logits_read_spec(&l, spec.c_str(), nullptr, nullptr, &err) == KD_OK);
        CHECK(std::string(l.file) == path);
        CHECK(std::string(l.dataset) == "/logits");
        kd_logits_free(&l);
    }
}

TEST_CASE("a dataset after a npy file and a same-file labels spec with npy logits are refused", "[npy][logits]")
{
    std::string z = npy_dir + "z_f4.npy";
    REQUIRE(has(read_spec_error(z + ":/logits", nullptr), z + ":/logits: a .npy file holds one array"));
    REQUIRE(has(read_spec_error(z, ":/labels"), "labels :/labels: names a dataset of the logits' own file, but the logits are a .npy file"));
    std::string npz = kdtest::temp_dir() + "/a.npz";
    REQUIRE(has(read_spec_error(npz, nullptr), npz + ": expected a .npy file or HDF5, found a .npz archive"));
}

TEST_CASE("rows that all look like probabilities are refused unless the probabilities option is given", "[npy][logits]")
{
    std::string p = npy_dir + "probs.npy", y = npy_dir + "labels.npy";
    std::string e = read_spec_error(p, y.c_str());
    REQUIRE(has(e, p + ": expected logits, found rows that all lie in [0, 1] and sum to 1"));
    REQUIRE(has(e, "pass --probabilities to take their log"));
    kd_logits_read_options keep = {};
    keep.allow_probability_rows = true;
    REQUIRE(read_spec_error(p, y.c_str(), keep).empty());
}

TEST_CASE("rows of which only some look like probabilities are read as logits", "[npy][logits]")
{
    std::string path = kdtest::temp_dir() + "/mixed.h5";
    {
        H5Out f(path);
        f.write("/logits", H5T_IEEE_F32LE, {3, 3}, {0.5, 0.25, 0.25, 0.2, 0.3, 0.5, 2.0, -1.0, 0.5});
        f.write("/labels", H5T_STD_U8LE, {3}, {0, 1, 2});
    }
    REQUIRE(read_spec_error(path, nullptr).empty());
}

TEST_CASE("with the probabilities option the logits are the log of the probabilities with zeros floored at 1e-30",
          "[npy][logits]")
{
    std::string p = npy_dir + "probs.npy", y = npy_dir + "labels.npy";
    kd_logits l;
    kd_error err;
    kd_logits_read_options o = {};
    o.probabilities = true;
    REQUIRE(kd_logits_read_spec(&l, p.c_str(), y.c_str(), &o, &err) == KD_OK);
    REQUIRE(l.from_probabilities);
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        double sum = 0;
        for (int j = 0; j < 3; j++) sum += std::exp((double)l.logits[i * 3 + j]);
        for (int j = 0; j < 3; j++) {
            double expected = std::log(std::max(probs[i][j], 1e-30));
            // float rounding of the stored probability (relative 6e-8) and of its log
            double err_ij = std::fabs((double)l.logits[i * 3 + j] - expected) / std::max(1.0, std::fabs(expected));
            worst = std::max(worst, err_ij);
            // softmax of the logits gives the probabilities back
            CHECK(std::fabs(std::exp((double)l.logits[i * 3 + j]) / sum - probs[i][j]) < 1e-6);
        }
    }
    REQUIRE(l.logits[1 * 3 + 1] == (float)std::log(1e-30));
    REQUIRE(worst < 2e-7);
    kd_logits_free(&l);
}

TEST_CASE("with the probabilities option a negative value or a row not summing to 1 is refused naming the row",
          "[npy][logits]")
{
    kd_logits_read_options o = {};
    o.probabilities = true;
    std::string y = npy_dir + "labels.npy", sum = npy_dir + "bad_probs_sum.npy", neg = npy_dir + "bad_probs_negative.npy";
    REQUIRE(has(read_spec_error(sum, y.c_str(), o),
                sum + ": expected probabilities (rows summing to 1 within 0.001), found row 2 summing to 0.9"));
    REQUIRE(has(read_spec_error(neg, y.c_str(), o),
                neg + ": expected probabilities (non-negative, rows summing to 1), found -0.125 at row 4, column 0"));
    std::string z = npy_dir + "z_f4.npy";
    REQUIRE(has(read_spec_error(z, y.c_str(), o), "found -2.625 at row 0, column 0"));
}

TEST_CASE("npy logits and labels of different row counts are refused naming both files", "[npy][logits]")
{
    std::string z = npy_dir + "int_i4_fortran.npy", y = npy_dir + "labels.npy";
    REQUIRE(has(read_spec_error(z, y.c_str()), z + ": expected float32 or float64 logits, found int32 ('<i4')"));
    std::string vec = npy_dir + "vec_f4.npy";
    REQUIRE(has(read_spec_error(vec, y.c_str()), vec + ": expected logits of rank 2 [N, C], found rank 1"));
    std::string dir = kdtest::temp_dir();
    std::string z6 = dir + "/six.h5";
    {
        H5Out f(z6);
        f.write("/logits", H5T_IEEE_F32LE, {6, 2}, {2, 0, 0, 2, 2, 0, 0, 2, 2, 0, 0, 2});
    }
    REQUIRE(has(read_spec_error(z6, y.c_str()), y + ": expected 6 labels (" + z6 + ":/logits has 6 rows), found 5"));
}

TEST_CASE("npy labels out of range or of a float type are refused naming the value and the row", "[npy][logits]")
{
    std::string z = npy_dir + "z_f4.npy";
    std::string i1 = npy_dir + "int_i1.npy", u1 = npy_dir + "int_u1.npy", f = npy_dir + "z_f8.npy";
    REQUIRE(has(read_spec_error(z, i1.c_str()), i1 + ": expected labels in 0..2 (" + z + " has 3 classes), found -128 at row 0"));
    REQUIRE(has(read_spec_error(z, u1.c_str()), u1 + ": expected labels in 0..2 (" + z + " has 3 classes), found 128 at row 3"));
    REQUIRE(has(read_spec_error(z, f.c_str()), f + ": expected integer class labels, found float64 ('<f8')"));
}

TEST_CASE("NaN and float64 values beyond float32 in npy logits are refused naming the row and column", "[npy][logits]")
{
    std::string y = npy_dir + "labels.npy", nan = npy_dir + "bad_nan.npy", big = npy_dir + "bad_beyond_float.npy";
    REQUIRE(has(read_spec_error(nan, y.c_str()), nan + ": expected finite logits, found NaN at row 1, column 2"));
    REQUIRE(has(read_spec_error(big, y.c_str()),
                big + ": expected finite logits, found Inf at row 3, column 0 (or a float64 beyond float32's range)"));
}

TEST_CASE("info describes a npy file and reports logits with their labels beside them", "[npy][info]")
{
    std::string dir = kdtest::temp_dir();
    std::string z = copy_fixture("z_f8_be_fortran.npy", dir, "val_logits.npy");
    kdtest::Run run = kdtest::run_binary("info " + z);
    INFO(run.out);
    REQUIRE(run.exit_code == 0);
    REQUIRE(has(run.out, "shape (5, 3), float64 ('>f8'), big-endian, Fortran (column-major) order"));
    REQUIRE(has(run.out, "5 rows, 3 classes; no labels found"));
    copy_fixture("labels.npy", dir, "val_labels.npy");
    run = kdtest::run_binary("info " + z);
    REQUIRE(run.exit_code == 0);
    // every row of z rises with j, so class 2 is predicted everywhere: only row 0 (label 2) is right
    REQUIRE(has(run.out, "accuracy 20.00%"));
    REQUIRE(has(run.out, "0: 2, 1: 2, 2: 1"));
    kdtest::Run probs = kdtest::run_binary("info " + npy_dir + "probs.npy");
    REQUIRE(probs.exit_code == 0);
    REQUIRE(has(probs.out, "look like probabilities"));
    kdtest::Run labels = kdtest::run_binary("info " + npy_dir + "int_i2_be.npy");
    REQUIRE(has(labels.out, "shape (5,), int16 ('>i2'), big-endian"));
    REQUIRE(has(labels.out, "5 values from -32768 to 32767"));
}
