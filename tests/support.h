// support.h - helpers shared by the tests: seeded random fills, a double-precision
// reference matrix product, central-difference gradient checks and HDF5 reads.
#ifndef KD_TEST_SUPPORT_H
#define KD_TEST_SUPPORT_H

extern "C" {
#include "core/ops.h"
#include "core/tape.h"
}

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kdtest {

std::vector<float> random_uniform(size_t n, float lo, float hi, uint64_t seed);
std::vector<float> random_normal(size_t n, float stddev, uint64_t seed);
// Values of magnitude in [lo, hi] with random signs: keeps points off ReLU kinks.
std::vector<float> random_away_from_zero(size_t n, float lo, float hi, uint64_t seed);

// Labels drawn from softmax(z_i / T) of each row of logits (n, classes), the draw taken by
// std::mt19937_64 seeded with `seed`: data whose best temperature is T.
std::vector<int32_t> labels_from_softmax(const std::vector<float> &logits, int64_t n, int classes, double T,
                                         uint64_t seed);

// C (M, N) = alpha op(A) op(B) + beta C in double, the naive triple loop.
void gemm_reference(bool ta, bool tb, int M, int N, int K, double alpha, const std::vector<float> &A,
                    int lda, const std::vector<float> &B, int ldb, double beta, std::vector<double> &C,
                    int ldc);

struct GradInput {
    int rows, cols;
    std::vector<float> values;
    bool differentiate = true; // false: a constant input (data, teacher logits)
};

// Builds the expression under test on a tape from views of the inputs.
using Builder = std::function<kd_tensor *(kd_tape *, std::vector<kd_tensor *> &)>;

struct GradCheckReport {
    double max_abs_error = 0;  // largest |numeric - analytic|
    double max_scaled_error = 0; // largest |numeric - analytic| / (atol + rtol |analytic|)
    size_t checked = 0;
};

// Checks d(sum(out .* R))/d(input) for a fixed random R by central differences
// of step eps, the sum taken in double, against kd_tape_backward_seeded. Every
// element must satisfy |numeric - analytic| <= atol + rtol |analytic|.
GradCheckReport grad_check(std::vector<GradInput> &inputs, const Builder &build, double eps,
                           double rtol, double atol, const std::function<void()> &before_forward = {});

// A new empty directory under $TMPDIR (or /tmp), unique to this call.
std::string temp_dir();
bool file_exists(const std::string &path);
// Every entry of a directory whose name contains ".tmp" (leftover temporary files).
std::vector<std::string> leftover_temporaries(const std::string &dir);

// One split of a data set in the HDF5 schema: /NAME/x (rows, dim), float32 features when
// x_float is set, else uint8 ones from x_uint8, and /NAME/y, uint8 labels.
struct DatasetSplit {
    std::string name;
    std::vector<float> x_float;
    std::vector<uint8_t> x_uint8;
    std::vector<uint8_t> y;
};

// A data file holding the splits, with the root attributes num_classes (when classes > 0)
// and x_scale (when x_scale > 0).
void write_split_dataset(const std::string &path, const std::vector<DatasetSplit> &splits, int dim, int classes,
                         double x_scale);

// A small classification data set in the HDF5 schema: `classes` Gaussian clusters
// in `dim` dimensions (float32 features, uint8 labels), /train and /test only.
void write_cluster_dataset(const std::string &path, int n_train, int n_test, int dim, int classes,
                           uint64_t seed);

// The same layout with uint8 features (uniform in 0..255, labels i % classes) and the
// attribute x_scale: what kdtrain prepare writes for images.
void write_uint8_dataset(const std::string &path, int n_train, int n_test, int dim, int classes, double x_scale,
                         uint64_t seed);

// A checkpoint with /model alone (no run config: its data set must be named), or with
// /calibration too when temperature > 0: an MLP of the given layer sizes, seeded
// initialisation and biases drawn uniform in [-0.5, 0.5] (the initialisation's are 0).
void write_mlp_checkpoint(const std::string &path, const std::vector<int> &sizes, uint64_t seed, double temperature);

// Runs `kdtrain ARGS`: its exit code and its stdout and stderr together.
struct Run {
    int exit_code;
    std::string out;
};
Run run_binary(const std::string &args);
// Another program with arguments, the same way.
Run run_program(const std::string &program, const std::string &args);
// A shell command line, the same way (stderr with stdout).
Run run_command(const std::string &command_line);
// The same, returning the exit code and filling *output when given.
int run_kdtrain(const std::string &args, std::string *output = nullptr);

// Reads a whole dataset as doubles or int32 (HDF5 converts); a failure fails the test.
std::vector<double> h5_read_doubles(const std::string &file, const std::string &name,
                                    std::vector<size_t> &dims);
std::vector<int32_t> h5_read_ints(const std::string &file, const std::string &name);
// name: "attr" of the root or "group/attr".
double h5_read_attr_double(const std::string &file, const std::string &name);
// Every parameter of a checkpoint, /model/layer1/W, /model/layer1/b, layer2 ... in
// order, as doubles: two runs have the same weights when these are equal.
std::vector<double> model_parameters(const std::string &checkpoint);
// A whole file as text ("" when it cannot be read).
std::string read_text(const std::string &path);

// configs/smoke.ini, the tiny training config the command-line tests start from.
std::string smoke_config();

// A temporary folder with a tiny data set (4 Gaussian clusters of 16 features: 500
// training rows, 200 test rows) and a runs folder: base(NAME) is the arguments that
// train run NAME on it from configs/smoke.ini, quietly.
struct SmokeRuns {
    std::string dir, data, runs;
    SmokeRuns();
    std::string base(const std::string &name) const;
};

} // namespace kdtest

#endif
