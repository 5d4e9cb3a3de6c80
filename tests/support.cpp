// support.cpp - see support.h.
#include "support.h"

#include "io/checkpoint.h"
#include "nn/mlp.h"

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <random>
#include <sys/stat.h>
#include <sys/wait.h>

namespace kdtest {

std::vector<int32_t> labels_from_softmax(const std::vector<float> &logits, int64_t n, int classes, double T,
                                         uint64_t seed)
{
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<int32_t> labels;
    std::vector<double> p(classes);
    for (int64_t i = 0; i < n; i++) {
        double sum = 0;
        for (int c = 0; c < classes; c++) sum += (p[c] = std::exp(logits[(size_t)i * classes + c] / T));
        double r = u(gen) * sum;
        int y = 0;
        while (y < classes - 1 && (r -= p[y]) > 0) y++;
        labels.push_back(y);
    }
    return labels;
}

std::vector<float> random_uniform(size_t n, float lo, float hi, uint64_t seed)
{
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = dist(gen);
    return v;
}

std::vector<float> random_normal(size_t n, float stddev, uint64_t seed)
{
    std::mt19937_64 gen(seed);
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> v(n);
    for (auto &x : v) x = dist(gen);
    return v;
}

std::vector<float> random_away_from_zero(size_t n, float lo, float hi, uint64_t seed)
{
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = (gen() & 1) ? dist(gen) : -dist(gen);
    return v;
}

void gemm_reference(bool ta, bool tb, int M, int N, int K, double alpha, const std::vector<float> &A,
                    int lda, const std::vector<float> &B, int ldb, double beta, std::vector<double> &C,
                    int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                sum += a * b;
            }
            C[(size_t)i * ldc + j] = alpha * sum + beta * C[(size_t)i * ldc + j];
        }
}

static double weighted_sum(const kd_tensor *out, const std::vector<float> &weights)
{
    double sum = 0;
    for (size_t i = 0; i < kd_tensor_numel(out); i++) sum += (double)out->data[i] * weights[i];
    return sum;
}

GradCheckReport grad_check(std::vector<GradInput> &inputs, const Builder &build, double eps,
                           double rtol, double atol, const std::function<void()> &before_forward)
{
    kd_tape tape;
    kd_tape_init(&tape, 0);
    std::vector<std::vector<float>> grads(inputs.size());
    std::vector<kd_tensor *> views(inputs.size());
    auto make_views = [&](bool with_grad) {
        for (size_t k = 0; k < inputs.size(); k++) {
            GradInput &in = inputs[k];
            grads[k].assign(in.values.size(), 0.0f);
            float *g = with_grad && in.differentiate ? grads[k].data() : nullptr;
            views[k] = kd_tape_view(&tape, in.rows, in.cols, in.values.data(), g);
        }
    };

    // Analytic gradient of sum(out .* R).
    if (before_forward) before_forward();
    make_views(true);
    kd_tensor *out = build(&tape, views);
    std::vector<float> weights = random_normal(kd_tensor_numel(out), 1.0f, 12345);
    kd_tape_backward_seeded(&tape, out, weights.data());
    std::vector<std::vector<float>> analytic = grads;

    GradCheckReport report;
    kd_tape_set_grad_enabled(&tape, false);
    for (size_t k = 0; k < inputs.size(); k++) {
        if (!inputs[k].differentiate) continue;
        for (size_t i = 0; i < inputs[k].values.size(); i++) {
            float saved = inputs[k].values[i];
            double value[2];
            for (int side = 0; side < 2; side++) {
                inputs[k].values[i] = (float)(saved + (side ? -eps : eps));
                kd_tape_reset(&tape);
                if (before_forward) before_forward();
                make_views(false);
                value[side] = weighted_sum(build(&tape, views), weights);
            }
            inputs[k].values[i] = saved;
            // The step actually taken in float, not the nominal eps.
            double step = (double)(float)(saved + eps) - (double)(float)(saved - eps);
            double numeric = (value[0] - value[1]) / step;
            double a = analytic[k][i];
            double err = std::fabs(numeric - a);
            double scaled = err / (atol + rtol * std::fabs(a));
            if (err > report.max_abs_error) report.max_abs_error = err;
            if (scaled > report.max_scaled_error) report.max_scaled_error = scaled;
            report.checked++;
            if (scaled > 1.0)
                UNSCOPED_INFO("input " << k << " element " << i << ": numeric " << numeric
                                       << " analytic " << a);
        }
    }
    kd_tape_free(&tape);
    return report;
}

// Every directory handed out is removed when the test program exits.
static std::vector<std::string> &temp_dirs()
{
    static std::vector<std::string> dirs;
    return dirs;
}

static void remove_temp_dirs()
{
    std::error_code ignored;
    for (const auto &d : temp_dirs()) std::filesystem::remove_all(d, ignored);
}

std::string temp_dir()
{
    if (temp_dirs().empty()) std::atexit(remove_temp_dirs);
    const char *base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/kdtest-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) FAIL("mkdtemp failed for " << pattern);
    temp_dirs().push_back(buf.data());
    return std::string(buf.data());
}

bool file_exists(const std::string &path)
{
    struct stat st;
    return stat(path.c_str(), &st) == 0;
}

std::vector<std::string> leftover_temporaries(const std::string &dir)
{
    std::vector<std::string> found;
    DIR *d = opendir(dir.c_str());
    if (!d) return found;
    while (struct dirent *e = readdir(d))
        if (std::string(e->d_name).find(".tmp") != std::string::npos) found.push_back(e->d_name);
    closedir(d);
    return found;
}

void write_split_dataset(const std::string &path, const std::vector<DatasetSplit> &splits, int dim, int classes,
                         double x_scale)
{
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    for (const DatasetSplit &split : splits) {
        bool u8 = split.x_float.empty();
        hsize_t n = split.y.size();
        REQUIRE((u8 ? split.x_uint8.size() : split.x_float.size()) == (size_t)n * (size_t)dim);
        hsize_t dx[2] = {n, (hsize_t)dim}, dy[1] = {n};
        hid_t sx = H5Screate_simple(2, dx, nullptr), sy = H5Screate_simple(1, dy, nullptr);
        std::string base = "/" + split.name;
        hid_t a = H5Dcreate2(f, (base + "/x").c_str(), u8 ? H5T_STD_U8LE : H5T_IEEE_F32LE, sx, lcpl, H5P_DEFAULT,
                             H5P_DEFAULT);
        hid_t b = H5Dcreate2(f, (base + "/y").c_str(), H5T_STD_U8LE, sy, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(H5Dwrite(a, u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                         u8 ? (const void *)split.x_uint8.data() : (const void *)split.x_float.data()) >= 0);
        REQUIRE(H5Dwrite(b, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, split.y.data()) >= 0);
        H5Dclose(a);
        H5Dclose(b);
        H5Sclose(sx);
        H5Sclose(sy);
    }
    auto scalar_attribute = [f](const char *name, hid_t file_type, hid_t mem_type, const void *value) {
        hid_t space = H5Screate(H5S_SCALAR);
        hid_t attr = H5Acreate2(f, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(attr >= 0);
        REQUIRE(H5Awrite(attr, mem_type, value) >= 0);
        H5Aclose(attr);
        H5Sclose(space);
    };
    int64_t c = classes;
    if (classes > 0) scalar_attribute("num_classes", H5T_STD_I64LE, H5T_NATIVE_INT64, &c);
    if (x_scale > 0) scalar_attribute("x_scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &x_scale);
    H5Pclose(lcpl);
    H5Fclose(f);
}

void write_cluster_dataset(const std::string &path, int n_train, int n_test, int dim, int classes,
                           uint64_t seed)
{
    std::vector<float> centres = random_normal((size_t)classes * dim, 1.5f, seed);
    std::vector<DatasetSplit> splits(2);
    splits[0].name = "train";
    splits[1].name = "test";
    int sizes[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        int n = sizes[s];
        std::vector<float> noise = random_normal((size_t)n * dim, 1.0f, seed + 10 + s);
        std::vector<float> &x = splits[s].x_float;
        std::vector<uint8_t> &y = splits[s].y;
        x.resize((size_t)n * dim);
        y.resize(n);
        for (int i = 0; i < n; i++) {
            y[i] = (uint8_t)(i % classes);
            for (int j = 0; j < dim; j++) x[(size_t)i * dim + j] = centres[(size_t)y[i] * dim + j] + noise[(size_t)i * dim + j];
        }
    }
    write_split_dataset(path, splits, dim, classes, 0.0);
}

void write_uint8_dataset(const std::string &path, int n_train, int n_test, int dim, int classes, double x_scale,
                         uint64_t seed)
{
    std::vector<DatasetSplit> splits(2);
    splits[0].name = "train";
    splits[1].name = "test";
    int sizes[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        int n = sizes[s];
        std::vector<float> u = random_uniform((size_t)n * dim, 0.0f, 256.0f, seed + (uint64_t)s);
        std::vector<uint8_t> &x = splits[s].x_uint8, &y = splits[s].y;
        x.resize((size_t)n * dim);
        y.resize(n);
        for (size_t i = 0; i < x.size(); i++) x[i] = (uint8_t)std::min(255.0f, std::floor(u[i]));
        for (int i = 0; i < n; i++) y[i] = (uint8_t)(i % classes);
    }
    write_split_dataset(path, splits, dim, classes, x_scale);
}

void write_mlp_checkpoint(const std::string &path, const std::vector<int> &sizes, uint64_t seed, double temperature)
{
    kd_mlp_config config{};
    config.n_layers = (int)sizes.size() - 1;
    for (size_t k = 0; k < sizes.size(); k++) config.sizes[k] = sizes[k];
    kd_mlp mlp;
    kd_error err;
    REQUIRE(kd_mlp_create(&mlp, &config, &err) == KD_OK);
    kd_mlp_init(&mlp, seed);
    for (int k = 0; k < config.n_layers; k++) {
        std::vector<float> b = random_uniform((size_t)sizes[k + 1], -0.5f, 0.5f, seed + 100 + (uint64_t)k);
        std::copy(b.begin(), b.end(), mlp.bias[k].data);
    }
    kd_calibration calib{};
    calib.present = temperature > 0;
    calib.temperature = temperature;
    snprintf(calib.split, sizeof calib.split, "val");
    calib.nll_before = 1.0;
    calib.nll_after = 0.9;
    int rc = kd_checkpoint_save(path.c_str(), &mlp, nullptr, nullptr, calib.present ? &calib : nullptr, &err);
    kd_mlp_free(&mlp);
    INFO(err.message);
    REQUIRE(rc == KD_OK);
}

Run run_binary(const std::string &args) { return run_program(KDTRAIN_BINARY, args); }

Run run_program(const std::string &program, const std::string &args) { return run_command(program + " " + args); }

Run run_command(const std::string &command_line)
{
    std::string command = command_line + " 2>&1";
    FILE *pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    Run run{-1, ""};
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
    int status = pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

int run_kdtrain(const std::string &args, std::string *output)
{
    Run run = run_binary(args);
    if (output) *output = run.out;
    return run.exit_code;
}

static hid_t open_or_fail(const std::string &file)
{
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) FAIL("cannot open " << file);
    return f;
}

std::vector<double> h5_read_doubles(const std::string &file, const std::string &name,
                                    std::vector<size_t> &dims)
{
    hid_t f = open_or_fail(file);
    hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    if (d < 0) {
        H5Fclose(f);
        FAIL(file << ": no dataset " << name);
    }
    hid_t space = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> hd(rank > 0 ? rank : 1, 1);
    H5Sget_simple_extent_dims(space, hd.data(), nullptr);
    dims.assign(hd.begin(), hd.begin() + (rank > 0 ? rank : 0));
    size_t count = 1;
    for (int i = 0; i < rank; i++) count *= hd[i];
    std::vector<double> out(count);
    herr_t status = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
    if (status < 0) FAIL(file << ": cannot read " << name);
    return out;
}

std::vector<double> model_parameters(const std::string &checkpoint)
{
    std::vector<double> all;
    hid_t f = open_or_fail(checkpoint);
    int layers = 0;
    while (H5Lexists(f, ("/model/layer" + std::to_string(layers + 1)).c_str(), H5P_DEFAULT) > 0) layers++;
    H5Fclose(f);
    if (layers == 0) FAIL(checkpoint << ": no /model/layer1");
    for (int k = 1; k <= layers; k++)
        for (const char *part : {"/W", "/b"}) {
            std::vector<size_t> dims;
            std::vector<double> v = h5_read_doubles(checkpoint, "/model/layer" + std::to_string(k) + part, dims);
            all.insert(all.end(), v.begin(), v.end());
        }
    return all;
}

std::string smoke_config() { return std::string(KD_SOURCE_DIR) + "/configs/smoke.ini"; }

SmokeRuns::SmokeRuns() : dir(temp_dir()), data(dir + "/clusters.h5"), runs(dir + "/runs")
{
    write_cluster_dataset(data, 500, 200, 16, 4, 3);
}

std::string SmokeRuns::base(const std::string &name) const
{
    return "-c " + smoke_config() + " --quiet --set data.path=" + data + " --set run.dir=" + runs + " --set run.name=" + name;
}

std::string read_text(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<int32_t> h5_read_ints(const std::string &file, const std::string &name)
{
    hid_t f = open_or_fail(file);
    hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    if (d < 0) {
        H5Fclose(f);
        FAIL(file << ": no dataset " << name);
    }
    hid_t space = H5Dget_space(d);
    std::vector<int32_t> out((size_t)H5Sget_simple_extent_npoints(space));
    herr_t status = H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
    if (status < 0) FAIL(file << ": cannot read " << name);
    return out;
}

double h5_read_attr_double(const std::string &file, const std::string &name)
{
    hid_t f = open_or_fail(file);
    // "group/attr" names an attribute of a group, "attr" one of the root.
    size_t slash = name.rfind('/');
    std::string object = slash == std::string::npos ? "." : name.substr(0, slash);
    std::string attr = slash == std::string::npos ? name : name.substr(slash + 1);
    hid_t a = H5Aopen_by_name(f, object.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) {
        H5Fclose(f);
        FAIL(file << ": no attribute " << name);
    }
    double value = 0;
    herr_t status = H5Aread(a, H5T_NATIVE_DOUBLE, &value);
    H5Aclose(a);
    H5Fclose(f);
    if (status < 0) FAIL(file << ": cannot read attribute " << name);
    return value;
}

} // namespace kdtest
