// The engine against PyTorch, in the style of llm.c's test_gpt2: a 20-16-16-5 ReLU
// MLP, a batch of 8 and teacher logits from tests/data/reference.h5 (written by
// scripts/make_reference.py with Debian's python3-torch, expected values computed
// in float64). The engine, in float32, must reproduce the logits, the log-softmax
// at T, the distillation loss and every parameter gradient within 1e-5 relative:
// max |ours - torch| <= 1e-5 max |torch| for each tensor.
#include "support.h"

#include <catch2/catch.hpp>

#include <algorithm>
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

// max |ours - reference| / max |reference| over the dataset at path.
double relative_difference_at(const std::string &path, const float *ours, size_t count)
{
    std::vector<size_t> dims;
    std::vector<double> ref = kdtest::h5_read_doubles(kFile, path, dims);
    REQUIRE(ref.size() == count);
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < count; i++) {
        max_diff = std::max(max_diff, std::fabs((double)ours[i] - ref[i]));
        max_ref = std::max(max_ref, std::fabs(ref[i]));
    }
    double rel = max_diff / max_ref;
    std::printf("reference %-32s max |diff| %.3e  relative %.3e\n", path.c_str(), max_diff, rel);
    return rel;
}

double relative_difference(const std::string &name, const float *ours, size_t count)
{
    return relative_difference_at("expected/" + name, ours, count);
}

// The fixture's network on its batch: the inputs, teacher logits and parameters read
// from the file, a zeroed gradient buffer beside each parameter, and the forward pass
// (three linear layers, ReLU between) recorded on a tape by logits().
struct ReferenceNet {
    static const int B = 8;
    const int sizes[4] = {20, 16, 16, 5};
    std::vector<float> x, teacher, W[3], b[3], dW[3], db[3];
    ReferenceNet()
    {
        x = read_floats("inputs/x", B, sizes[0]);
        teacher = read_floats("inputs/teacher_logits", B, sizes[3]);
        for (int k = 0; k < 3; k++) {
            std::string layer = "params/layer" + std::to_string(k + 1);
            W[k] = read_floats(layer + "/W", sizes[k], sizes[k + 1]);
            b[k] = read_floats(layer + "/b", 1, sizes[k + 1]);
            dW[k].assign(W[k].size(), 0.0f);
            db[k].assign(b[k].size(), 0.0f);
        }
    }
    kd_tensor *logits(kd_tape *tape)
    {
        kd_tensor *h = kd_tape_view(tape, B, sizes[0], x.data(), nullptr);
        for (int k = 0; k < 3; k++)
            h = kd_op_linear(tape, h, kd_tape_view(tape, sizes[k], sizes[k + 1], W[k].data(), dW[k].data()),
                             kd_tape_view(tape, 1, sizes[k + 1], b[k].data(), db[k].data()),
                             k < 2 ? KD_ACT_RELU : KD_ACT_NONE);
        return h;
    }
    kd_tensor *teacher_logits(kd_tape *tape) { return kd_tape_view(tape, B, sizes[3], teacher.data(), nullptr); }
};

} // namespace

TEST_CASE("the engine reproduces PyTorch's logits, distillation loss and every gradient",
          "[reference]")
{
    const int B = ReferenceNet::B;
    const float T = (float)kdtest::h5_read_attr_double(kFile, "temperature");
    const float alpha = (float)kdtest::h5_read_attr_double(kFile, "alpha");
    REQUIRE(T == 4.0f);
    REQUIRE(alpha == 0.7f);

    ReferenceNet net;
    std::vector<int32_t> labels = kdtest::h5_read_ints(kFile, "inputs/labels");
    REQUIRE(labels.size() == (size_t)B);
    std::vector<float> *dW = net.dW, *db = net.db;

    kd_tape tape;
    kd_tape_init(&tape, 0);
    kd_tensor *logits = net.logits(&tape);
    kd_tensor *log_soft = kd_op_log_softmax(&tape, logits, T);
    kd_tensor *loss = kd_op_kd_loss(&tape, logits, net.teacher_logits(&tape), labels.data(), T, alpha);
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

// Every distill.loss against PyTorch (/losses in reference.h5: the same network and
// batch, rows 2 and 5 labelled -1, T = 4, alpha = 0.7, DKD weights 1 and 8), each
// written in the fixture with its paper's reference code in float64. The engine's
// loss, logits gradient and every parameter gradient must agree within 1e-5
// relative, as above (max |ours - torch| <= 1e-5 max |torch| for each tensor).
static void check_distill_loss_against_torch(const std::string &name, kd_distill_loss_kind kind)
{
    const int B = ReferenceNet::B;
    ReferenceNet net;
    std::vector<int32_t> labels = kdtest::h5_read_ints(kFile, "losses/labels");
    REQUIRE(labels.size() == (size_t)B);
    REQUIRE(std::count(labels.begin(), labels.end(), -1) == 2);
    kd_distill_loss settings = {kind, (float)kdtest::h5_read_attr_double(kFile, "losses/temperature"),
                                (float)kdtest::h5_read_attr_double(kFile, "losses/alpha"),
                                (float)kdtest::h5_read_attr_double(kFile, "losses/dkd_target_weight"),
                                (float)kdtest::h5_read_attr_double(kFile, "losses/dkd_nontarget_weight")};
    REQUIRE(settings.temperature == 4.0f);
    REQUIRE(settings.alpha == 0.7f);
    REQUIRE(settings.dkd_target_weight == 1.0f);
    REQUIRE(settings.dkd_nontarget_weight == 8.0f);
    std::vector<float> *dW = net.dW, *db = net.db;

    kd_tape tape;
    kd_tape_init(&tape, 0);
    kd_tensor *logits = net.logits(&tape);
    kd_tensor *loss = kd_op_distill_loss(&tape, logits, net.teacher_logits(&tape), labels.data(), &settings);
    kd_tape_backward(&tape, loss);

    const double tol = 1e-5;
    const std::string group = "losses/" + name + "/";
    CHECK(relative_difference_at(group + "loss", loss->data, 1) <= tol);
    CHECK(relative_difference_at(group + "grads/logits", logits->grad, B * 5) <= tol);
    for (int k = 0; k < 3; k++) {
        std::string layer = group + "grads/layer" + std::to_string(k + 1);
        CHECK(relative_difference_at(layer + "/W", dW[k].data(), dW[k].size()) <= tol);
        CHECK(relative_difference_at(layer + "/b", db[k].data(), db[k].size()) <= tol);
    }
    kd_tape_free(&tape);
}

TEST_CASE("the kl distillation loss with unlabelled rows reproduces PyTorch's value and gradients", "[reference]")
{
    check_distill_loss_against_torch("kl", KD_DISTILL_KL);
}

TEST_CASE("the reverse_kl distillation loss reproduces PyTorch's value and gradients", "[reference]")
{
    check_distill_loss_against_torch("reverse_kl", KD_DISTILL_REVERSE_KL);
}

TEST_CASE("the js distillation loss reproduces PyTorch's value and gradients", "[reference]")
{
    check_distill_loss_against_torch("js", KD_DISTILL_JS);
}

TEST_CASE("the dkd distillation loss reproduces mdistiller's value and gradients", "[reference]")
{
    check_distill_loss_against_torch("dkd", KD_DISTILL_DKD);
}

TEST_CASE("the lsk distillation loss reproduces the reference code's value and gradients", "[reference]")
{
    check_distill_loss_against_torch("lsk", KD_DISTILL_LSK);
}
