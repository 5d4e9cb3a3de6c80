// The engine against PyTorch, in the style of llm.c's test_gpt2: a 20-16-16-5 ReLU
// MLP, a batch of 8 and teacher logits from tests/data/reference.h5 (written by
// scripts/make_reference.py with Debian's python3-torch, expected values computed
// in float64). The engine, in float32, must reproduce the logits, the log-softmax
// at T, the distillation loss and every parameter gradient within 1e-5 relative:
// max |ours - torch| <= 1e-5 max |torch| for each tensor.
#include "support.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <string>

namespace {

const std::string kFile = std::string(KD_TEST_DATA_DIR) + "/reference.h5";

std::vector<float> read_floats(const std::string &name, int rows, int cols)
{
    std::vector<size_t> dims;
    std::vector<double> v = kdtest::h5_read_doubles(kFile, name, dims);
    REQUIRE(dims.size() == 2);
    REQUIRE(dims[0] == (size_t)rows);
    REQUIRE(dims[1] == (size_t)cols);
    return std::vector<float>(v.begin(), v.end()); // stored as float32: exact
}

double relative_difference(const std::string &name, const float *ours, size_t count)
{
    std::vector<size_t> dims;
    std::vector<double> ref = kdtest::h5_read_doubles(kFile, "expected/" + name, dims);
    REQUIRE(ref.size() == count);
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < count; i++) {
        max_diff = std::max(max_diff, std::fabs((double)ours[i] - ref[i]));
        max_ref = std::max(max_ref, std::fabs(ref[i]));
    }
    double rel = max_diff / max_ref;
    std::printf("reference %-22s max |diff| %.3e  relative %.3e\n", name.c_str(), max_diff, rel);
    return rel;
}

} // namespace

TEST_CASE("the engine reproduces PyTorch's logits, distillation loss and every gradient",
          "[reference]")
{
    const int sizes[4] = {20, 16, 16, 5};
    const int B = 8;
    const float T = (float)kdtest::h5_read_attr_double(kFile, "temperature");
    const float alpha = (float)kdtest::h5_read_attr_double(kFile, "alpha");
    REQUIRE(T == 4.0f);
    REQUIRE(alpha == 0.7f);

    std::vector<float> x = read_floats("inputs/x", B, sizes[0]);
    std::vector<float> teacher = read_floats("inputs/teacher_logits", B, sizes[3]);
    std::vector<int32_t> labels = kdtest::h5_read_ints(kFile, "inputs/labels");
    REQUIRE(labels.size() == (size_t)B);
    std::vector<float> W[3], b[3], dW[3], db[3];
    for (int k = 0; k < 3; k++) {
        std::string layer = "params/layer" + std::to_string(k + 1);
        W[k] = read_floats(layer + "/W", sizes[k], sizes[k + 1]);
        b[k] = read_floats(layer + "/b", 1, sizes[k + 1]);
        dW[k].assign(W[k].size(), 0.0f);
        db[k].assign(b[k].size(), 0.0f);
    }

    kd_tape tape;
    kd_tape_init(&tape, 0);
    kd_tensor *h = kd_tape_view(&tape, B, sizes[0], x.data(), nullptr);
    for (int k = 0; k < 3; k++)
        h = kd_op_linear(&tape, h, kd_tape_view(&tape, sizes[k], sizes[k + 1], W[k].data(), dW[k].data()),
                         kd_tape_view(&tape, 1, sizes[k + 1], b[k].data(), db[k].data()),
                         k < 2 ? KD_ACT_RELU : KD_ACT_NONE);
    kd_tensor *logits = h;
    kd_tensor *log_soft = kd_op_log_softmax(&tape, logits, T);
    kd_tensor *t = kd_tape_view(&tape, B, sizes[3], teacher.data(), nullptr);
    kd_tensor *loss = kd_op_kd_loss(&tape, logits, t, labels.data(), T, alpha);
    kd_tape_backward(&tape, loss);

    const double tol = 1e-5;
    CHECK(relative_difference("logits", logits->data, B * 5) <= tol);
    CHECK(relative_difference("log_softmax_T", log_soft->data, B * 5) <= tol);
    CHECK(relative_difference("loss", loss->data, 1) <= tol);
    CHECK(relative_difference("grads/logits", logits->grad, B * 5) <= tol);
    for (int k = 0; k < 3; k++) {
        std::string layer = "grads/layer" + std::to_string(k + 1);
        CHECK(relative_difference(layer + "/W", dW[k].data(), dW[k].size()) <= tol);
        CHECK(relative_difference(layer + "/b", db[k].data(), db[k].size()) <= tol);
    }
    kd_tape_free(&tape);
}
