// kd_read_rows against HDF5's own H5Dread, byte for byte: the parallel path
// (chunks of whole rows, deflate with or without shuffle, the stored type) and the
// fallback for everything else, for unaligned ranges, several ranges at once, 1 and
// 2 threads, a chunk stored without its deflate step, and a corrupt chunk.
#include "support.h"

extern "C" {
#include "core/gemm.h"
#include "core/threads.h"
#include "data/rows.h"
}

#include <catch2/catch.hpp>

#include <hdf5.h>
#include <omp.h>
#include <zlib.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

struct Layout {
    std::string name;
    hid_t file_type, mem_type;
    std::vector<hsize_t> dims, chunk; // chunk empty: contiguous
    std::vector<std::string> filters; // in pipeline order: "shuffle", "deflate", "fletcher32"
    bool parallel;                    // expected to take the parallel path
};

size_t elem_size(hid_t type) { return H5Tget_size(type); }

// Writes dataset "x" with values v(i) = (i * 37 + 11) % 251 (scaled for floats).
void write_dataset(const std::string &path, const Layout &l, bool leave_chunk_unwritten = false)
{
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(file >= 0);
    hid_t space = H5Screate_simple((int)l.dims.size(), l.dims.data(), nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (!l.chunk.empty()) {
        REQUIRE(H5Pset_chunk(dcpl, (int)l.chunk.size(), l.chunk.data()) >= 0);
        for (const std::string &f : l.filters)
            REQUIRE((f == "shuffle" ? H5Pset_shuffle(dcpl) : f == "deflate" ? H5Pset_deflate(dcpl, 4) : H5Pset_fletcher32(dcpl)) >= 0);
    }
    hid_t dset = H5Dcreate2(file, "x", l.file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    REQUIRE(dset >= 0);
    size_t n = 1;
    for (hsize_t d : l.dims) n *= d;
    std::vector<double> values(n);
    for (size_t i = 0; i < n; i++) values[i] = (double)((i * 37 + 11) % 251) * (l.mem_type == H5T_NATIVE_UINT8 ? 1.0 : 0.37);
    if (leave_chunk_unwritten) { // rows of the first chunk only
        std::vector<hsize_t> count = l.dims, start(l.dims.size(), 0);
        count[0] = l.chunk[0];
        hid_t mem = H5Screate_simple((int)count.size(), count.data(), nullptr);
        REQUIRE(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) >= 0);
        REQUIRE(H5Dwrite(dset, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, values.data()) >= 0);
        H5Sclose(mem);
    } else {
        REQUIRE(H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0);
    }
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
}

std::vector<unsigned char> reference_rows(hid_t dset, hid_t mem_type, int64_t begin, int64_t count)
{
    hid_t space = H5Dget_space(dset);
    int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(rank), start(rank, 0);
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    size_t row = elem_size(mem_type);
    for (int i = 1; i < rank; i++) row *= dims[i];
    std::vector<hsize_t> n = dims;
    start[0] = (hsize_t)begin;
    n[0] = (hsize_t)count;
    std::vector<unsigned char> out((size_t)count * row);
    hid_t mem = H5Screate_simple(rank, n.data(), nullptr);
    REQUIRE(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, n.data(), nullptr) >= 0);
    REQUIRE(H5Dread(dset, mem_type, mem, space, H5P_DEFAULT, out.data()) >= 0);
    H5Sclose(mem);
    H5Sclose(space);
    return out;
}

// Data set "x" of a file, and a reader, for one test; closed on the way out.
struct Opened {
    hid_t file, dset;
    kd_row_reader reader;
    char why[320] = {0};
    Opened(const std::string &path, unsigned mode)
        : file(H5Fopen(path.c_str(), mode, H5P_DEFAULT)), dset(H5Dopen2(file, "x", H5P_DEFAULT))
    {
        REQUIRE(dset >= 0);
        kd_row_reader_init(&reader);
    }
    ~Opened()
    {
        kd_row_reader_free(&reader);
        H5Dclose(dset);
        H5Fclose(file);
    }
    int read(int64_t rows, size_t row, std::vector<unsigned char> &got)
    {
        got.assign((size_t)rows * row, 0xAB);
        return kd_read_rows(&reader, dset, 0, rows, H5T_NATIVE_UINT8, got.data(), why, sizeof why);
    }
};

size_t row_bytes(const Layout &l)
{
    size_t row = elem_size(l.mem_type);
    for (size_t i = 1; i < l.dims.size(); i++) row *= l.dims[i];
    return row;
}

} // namespace

TEST_CASE("rows read through inflating chunks on all threads equal H5Dread's, byte for byte", "[rows]")
{
    std::string dir = kdtest::temp_dir();
    std::vector<Layout> layouts = {
        {"uint8 shuffle+deflate", H5T_STD_U8LE, H5T_NATIVE_UINT8, {23, 5}, {7, 5}, {"shuffle", "deflate"}, true},
        {"float32 shuffle+deflate", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {30, 6}, {4, 6}, {"shuffle", "deflate"}, true},
        {"float32 deflate", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {30, 6}, {4, 6}, {"deflate"}, true},
        {"uint8 [N, H, W] shuffle+deflate", H5T_STD_U8LE, H5T_NATIVE_UINT8, {19, 3, 4}, {5, 3, 4}, {"shuffle", "deflate"}, true},
        {"float32 fletcher32+deflate", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {30, 6}, {4, 6}, {"fletcher32", "deflate"}, false},
        {"float32 deflate then shuffle", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {30, 6}, {4, 6}, {"deflate", "shuffle"}, false},
        {"float32 deflate twice", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {30, 6}, {4, 6}, {"deflate", "deflate"}, false},
        {"big-endian float32", H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, {30, 6}, {4, 6}, {"shuffle", "deflate"}, false},
        {"float64 read as float", H5T_IEEE_F64LE, H5T_NATIVE_FLOAT, {30, 6}, {4, 6}, {"shuffle", "deflate"}, false},
        {"chunks of part rows", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {30, 6}, {4, 3}, {"deflate"}, false},
        {"chunked, no filter", H5T_STD_U8LE, H5T_NATIVE_UINT8, {23, 5}, {7, 5}, {}, false},
        {"contiguous", H5T_STD_U8LE, H5T_NATIVE_UINT8, {23, 5}, {}, {}, false},
    };
    int threads_before = omp_get_max_threads();
    for (const Layout &l : layouts) {
        INFO(l.name);
        std::string path = dir + "/rows.h5";
        write_dataset(path, l);
        hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t dset = H5Dopen2(file, "x", H5P_DEFAULT);
        REQUIRE(dset >= 0);
        int64_t rows = (int64_t)l.dims[0];
        for (int threads : {1, 2}) {
            kd_threads_set(threads);
            kd_row_reader reader;
            kd_row_reader_init(&reader);
            char why[320];
            for (auto range : std::vector<std::pair<int64_t, int64_t>>{{0, rows}, {3, 11}, {rows - 1, 1}, {5, 2}, {0, 1}}) {
                INFO("rows " << range.first << " + " << range.second << ", " << threads << " threads");
                std::vector<unsigned char> got((size_t)range.second * row_bytes(l), 0xAB);
                REQUIRE(kd_read_rows(&reader, dset, range.first, range.second, l.mem_type, got.data(), why, sizeof why) == 0);
                REQUIRE(got == reference_rows(dset, l.mem_type, range.first, range.second));
            }
            // several ranges in one read, out of order, one empty, two in one chunk
            std::vector<unsigned char> a(9 * row_bytes(l)), b(1 * row_bytes(l)), c(1), d(2 * row_bytes(l));
            kd_row_range ranges[4] = {{rows - 9, 9, a.data()}, {1, 1, b.data()}, {2, 0, c.data()}, {3, 2, d.data()}};
            REQUIRE(kd_read_row_ranges(&reader, dset, ranges, 4, l.mem_type, why, sizeof why) == 0);
            REQUIRE(a == reference_rows(dset, l.mem_type, rows - 9, 9));
            REQUIRE(b == reference_rows(dset, l.mem_type, 1, 1));
            REQUIRE(d == reference_rows(dset, l.mem_type, 3, 2));
            REQUIRE((reader.chunks_inflated > 0) == l.parallel);
            kd_row_reader_free(&reader);
        }
        H5Dclose(dset);
        H5Fclose(file);
    }
    kd_threads_set(threads_before);
}

TEST_CASE("a chunk stored without its deflate step is read as stored, and a corrupt chunk is an error", "[rows]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/chunks.h5";
    Layout l = {"uint8", H5T_STD_U8LE, H5T_NATIVE_UINT8, {21, 5}, {7, 5}, {"shuffle", "deflate"}, true};
    write_dataset(path, l);
    Opened x(path, H5F_ACC_RDWR);
    // Chunk 1 (rows 7..13) stored raw: filter 1 (deflate) marked as skipped.
    std::vector<unsigned char> raw(7 * 5), got;
    for (size_t i = 0; i < raw.size(); i++) raw[i] = (unsigned char)(200 - i);
    hsize_t offset[2] = {7, 0};
    REQUIRE(H5Dwrite_chunk(x.dset, H5P_DEFAULT, 0x2, offset, raw.size(), raw.data()) >= 0);
    REQUIRE(x.read(21, 5, got) == 0);
    REQUIRE(x.reader.chunks_inflated == 3);
    REQUIRE(got == reference_rows(x.dset, H5T_NATIVE_UINT8, 0, 21));
    REQUIRE(std::memcmp(got.data() + 7 * 5, raw.data(), raw.size()) == 0);
    // Chunk 2 (rows 14..20): bytes that claim to be deflated but are not.
    hsize_t last[2] = {14, 0};
    std::vector<unsigned char> garbage(40, 0x5A);
    REQUIRE(H5Dwrite_chunk(x.dset, H5P_DEFAULT, 0, last, garbage.size(), garbage.data()) >= 0);
    REQUIRE(x.read(21, 5, got) == -1);
    REQUIRE(std::string(x.why).find("the chunk at row 14 does not inflate to 35 bytes") != std::string::npos);
    // A raw chunk of the wrong size.
    REQUIRE(H5Dwrite_chunk(x.dset, H5P_DEFAULT, 0x2, last, 34, garbage.data()) >= 0);
    REQUIRE(x.read(21, 5, got) == -1);
    REQUIRE(std::string(x.why).find("the chunk at row 14, stored without deflate, has 34 bytes, not 35") != std::string::npos);
}

TEST_CASE("float chunks with the deflate or the shuffle step skipped are undone step by step", "[rows]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/skips.h5";
    Layout l = {"float32", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {12, 3}, {4, 3}, {"shuffle", "deflate"}, true};
    write_dataset(path, l);
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "x", H5P_DEFAULT);
    std::vector<float> plain(12);
    for (int i = 0; i < 12; i++) plain[i] = 1.5f * (float)i - 7.25f;
    const unsigned char *bytes = reinterpret_cast<const unsigned char *>(plain.data());
    // Chunk 1: shuffled (byte k of value j at k * 12 + j), deflate skipped (filter 1).
    std::vector<unsigned char> shuffled(48);
    for (int j = 0; j < 12; j++)
        for (int k = 0; k < 4; k++) shuffled[(size_t)k * 12 + j] = bytes[j * 4 + k];
    hsize_t at4[2] = {4, 0}, at8[2] = {8, 0};
    REQUIRE(H5Dwrite_chunk(dset, H5P_DEFAULT, 0x2, at4, shuffled.size(), shuffled.data()) >= 0);
    // Chunk 2: not shuffled (filter 0 skipped), deflated with zlib.
    std::vector<unsigned char> deflated(128);
    uLongf size = (uLongf)deflated.size();
    REQUIRE(compress(deflated.data(), &size, bytes, 48) == Z_OK);
    REQUIRE(H5Dwrite_chunk(dset, H5P_DEFAULT, 0x1, at8, size, deflated.data()) >= 0);
    kd_row_reader reader;
    kd_row_reader_init(&reader);
    char why[320];
    std::vector<float> got(36);
    REQUIRE(kd_read_rows(&reader, dset, 0, 12, H5T_NATIVE_FLOAT, got.data(), why, sizeof why) == 0);
    REQUIRE(reader.chunks_inflated == 3);
    auto reference = reference_rows(dset, H5T_NATIVE_FLOAT, 0, 12);
    REQUIRE(std::memcmp(got.data(), reference.data(), reference.size()) == 0);
    REQUIRE(std::vector<float>(got.begin() + 12, got.begin() + 24) == plain);
    REQUIRE(std::vector<float>(got.begin() + 24, got.end()) == plain);
    kd_row_reader_free(&reader);
    H5Dclose(dset);
    H5Fclose(file);
}

TEST_CASE("a data set with chunks never written is read through H5Dread, fill values included", "[rows]")
{
    std::string dir = kdtest::temp_dir(), path = dir + "/sparse.h5";
    Layout l = {"uint8", H5T_STD_U8LE, H5T_NATIVE_UINT8, {21, 5}, {7, 5}, {"shuffle", "deflate"}, false};
    write_dataset(path, l, true);
    Opened x(path, H5F_ACC_RDONLY);
    std::vector<unsigned char> got;
    REQUIRE(x.read(21, 5, got) == 0);
    REQUIRE(x.reader.chunks_inflated == 0);
    REQUIRE(got == reference_rows(x.dset, H5T_NATIVE_UINT8, 0, 21));
    REQUIRE(got[20 * 5] == 0); // fill value
}
