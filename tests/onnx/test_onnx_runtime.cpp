// kdtrain export checked by a real runtime: the exported file run by onnxruntime
// (onnxruntime-node through node, CPU provider, one thread) on a test split gives what
// kdtrain's own forward pass gives (`kdtrain eval --logits`), and python3-onnx's checker
// accepts every variant. The model is written directly (12-20-16-5, two ReLU layers,
// non-zero biases, a fitted T of 2.371) with a uint8 data set whose x_scale is 1/255.
//
// Tolerances: both sides compute in float32 and differ only in the order of the sums
// (oneDNN's sgemm against onnxruntime's MLAS): with these inputs (at most 1) and
// weights the logits are of order 1 and every sum has at most 20 terms, so rounding
// differences stay far below 1e-5 (measured: see docs/EXPORT.md). Folding T adds one
// rounding of each last-layer parameter (a relative 6e-8). Probabilities are compared
// with the softmax of kdtrain's logits / T in double, to 1e-6.
#include "onnx_support.h"

#include "../support.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace {

constexpr int DIM = 12, CLASSES = 5, TEST_ROWS = 300;
constexpr double TEMPERATURE = 2.371, X_SCALE = 1.0 / 255.0;

struct Fixture {
    std::string dir, data, model;
    std::vector<double> raw;    // (TEST_ROWS, DIM) the stored uint8 values
    std::vector<double> logits; // (TEST_ROWS, CLASSES) kdtrain eval --logits, before any temperature

    Fixture()
    {
        dir = kdtest::temp_dir();
        data = dir + "/data.h5";
        model = dir + "/model.h5";
        kdtest::write_uint8_dataset(data, 5100, TEST_ROWS, DIM, CLASSES, X_SCALE, 31);
        kdtest::write_mlp_checkpoint(model, {DIM, 20, 16, CLASSES}, 7, TEMPERATURE);
        std::string out;
        int code = kdtest::run_kdtrain("eval --model " + model + " --data " + data + " --logits " + dir +
                                           "/logits.h5 --out " + dir + "/eval.json --no-temperature",
                                       &out);
        INFO(out);
        REQUIRE(code == 0);
        std::vector<size_t> dims;
        logits = kdtest::h5_read_doubles(dir + "/logits.h5", "logits", dims);
        REQUIRE(dims == std::vector<size_t>{TEST_ROWS, CLASSES});
        raw = kdtest::h5_read_doubles(data, "/test/x", dims);
        REQUIRE(dims == std::vector<size_t>{TEST_ROWS, DIM});
    }

    // The input the documentation promises: stored values times x_scale, in float32 as kdtrain forms it.
    std::vector<float> scaled_input() const
    {
        std::vector<float> x(raw.size());
        for (size_t i = 0; i < raw.size(); i++) x[i] = (float)raw[i] * (float)X_SCALE;
        return x;
    }

    std::vector<float> raw_input() const { return std::vector<float>(raw.begin(), raw.end()); }

    std::string export_model(const std::string &name, const std::string &options) const
    {
        std::string path = dir + "/" + name, out;
        int code = kdtest::run_kdtrain("export --model " + model + " --onnx " + path + " " + options, &out);
        INFO(out);
        REQUIRE(code == 0);
        return path;
    }
};

double max_abs_difference(const std::vector<float> &a, const std::vector<double> &b)
{
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, std::fabs((double)a[i] - b[i]));
    return worst;
}

std::vector<double> divided(const std::vector<double> &z, double T)
{
    std::vector<double> u(z);
    for (double &v : u) v /= T;
    return u;
}

// softmax(z / T) of each row, in double with the row's maximum subtracted.
std::vector<double> softmax(const std::vector<double> &z, int classes, double T)
{
    std::vector<double> p(z.size());
    for (size_t r = 0; r < z.size() / classes; r++) {
        const double *row = &z[r * classes];
        double top = *std::max_element(row, row + classes), sum = 0;
        for (int c = 0; c < classes; c++) sum += p[r * classes + c] = std::exp((row[c] - top) / T);
        for (int c = 0; c < classes; c++) p[r * classes + c] /= sum;
    }
    return p;
}

} // namespace

TEST_CASE("onnxruntime computes kdtrain eval's logits from the exported model to 1e-5", "[onnx]")
{
    Fixture f;
    std::string info;
    std::vector<float> y = kdonnx::run_onnxruntime(f.export_model("plain.onnx", ""), f.scaled_input(), TEST_ROWS, DIM,
                                                   &info);
    REQUIRE(info.find("\"output\":\"logits\",\"dims\":[300,5]") != std::string::npos);
    double diff = max_abs_difference(y, f.logits);
    WARN("onnxruntime against kdtrain eval, logits: max |difference| " << diff);
    REQUIRE(diff <= 1e-5);
}

TEST_CASE("the folded model computes the logits divided by the fitted temperature to 1e-5", "[onnx]")
{
    Fixture f;
    std::vector<double> expected = divided(f.logits, TEMPERATURE);
    // The test can fail: the unfolded logits are far from logits / T.
    REQUIRE(max_abs_difference(std::vector<float>(f.logits.begin(), f.logits.end()), expected) > 0.1);
    std::vector<float> y =
        kdonnx::run_onnxruntime(f.export_model("folded.onnx", "--fold-temperature"), f.scaled_input(), TEST_ROWS, DIM,
                                nullptr);
    double diff = max_abs_difference(y, expected);
    WARN("onnxruntime against kdtrain eval, logits / T: max |difference| " << diff);
    REQUIRE(diff <= 1e-5);
}

TEST_CASE("the probabilities model computes the softmax of the logits over the fitted temperature to 1e-6", "[onnx]")
{
    Fixture f;
    std::string info;
    std::vector<float> y = kdonnx::run_onnxruntime(f.export_model("probabilities.onnx", "--fold-temperature --probabilities"),
                                                   f.scaled_input(), TEST_ROWS, DIM, &info);
    REQUIRE(info.find("\"output\":\"probabilities\",\"dims\":[300,5]") != std::string::npos);
    std::vector<double> expected = softmax(f.logits, CLASSES, TEMPERATURE);
    // softmax(z) alone (no temperature) is another answer, by more than the tolerance.
    REQUIRE(max_abs_difference(y, softmax(f.logits, CLASSES, 1.0)) > 1e-2);
    double diff = max_abs_difference(y, expected);
    WARN("onnxruntime against kdtrain eval, softmax(logits / T): max |difference| " << diff);
    REQUIRE(diff <= 1e-6);
}

TEST_CASE("the probabilities model without folding computes the softmax of the logits", "[onnx]")
{
    Fixture f;
    std::vector<float> y = kdonnx::run_onnxruntime(f.export_model("softmax.onnx", "--probabilities"), f.scaled_input(),
                                                   TEST_ROWS, DIM, nullptr);
    REQUIRE(max_abs_difference(y, softmax(f.logits, CLASSES, 1.0)) <= 1e-6);
}

TEST_CASE("with --raw-input the model takes the stored values and gives kdtrain's logits", "[onnx]")
{
    Fixture f;
    std::string model = f.export_model("raw.onnx", "--raw-input --data " + f.data);
    std::vector<float> y = kdonnx::run_onnxruntime(model, f.raw_input(), TEST_ROWS, DIM, nullptr);
    double diff = max_abs_difference(y, f.logits);
    WARN("onnxruntime against kdtrain eval, raw input: max |difference| " << diff);
    REQUIRE(diff <= 1e-5);
    // Without the Mul in front, the same stored values give something else entirely.
    std::vector<float> unscaled = kdonnx::run_onnxruntime(f.export_model("plain.onnx", ""), f.raw_input(), TEST_ROWS,
                                                          DIM, nullptr);
    REQUIRE(max_abs_difference(unscaled, f.logits) > 0.1);
}

TEST_CASE("every exported variant passes the onnx checker in full and records what it holds", "[onnx]")
{
    Fixture f;
    struct Variant {
        const char *name, *options, *output, *folded, *ops;
    };
    std::string raw = "--raw-input --data " + f.data;
    const Variant variants[] = {
        {"plain.onnx", "", "logits", "false", "[\"Gemm\", \"Relu\", \"Gemm\", \"Relu\", \"Gemm\"]"},
        {"folded.onnx", "--fold-temperature", "logits", "true", "[\"Gemm\", \"Relu\", \"Gemm\", \"Relu\", \"Gemm\"]"},
        {"probabilities.onnx", "--fold-temperature --probabilities", "probabilities", "true",
         "[\"Gemm\", \"Relu\", \"Gemm\", \"Relu\", \"Gemm\", \"Softmax\"]"},
        {"raw.onnx", raw.c_str(), "logits", "false", "[\"Mul\", \"Gemm\", \"Relu\", \"Gemm\", \"Relu\", \"Gemm\"]"},
    };
    for (const Variant &v : variants) {
        std::string summary = kdonnx::check_with_onnx(f.export_model(v.name, v.options));
        INFO(v.name << ": " << summary);
        REQUIRE(summary.find("\"checker\": \"passed\"") != std::string::npos);
        REQUIRE(summary.find("\"ir_version\": 8") != std::string::npos);
        REQUIRE(summary.find("\"opset\": {\"ai.onnx\": 13}") != std::string::npos);
        REQUIRE(summary.find("\"producer\": \"kdtrain 0.") != std::string::npos);
        REQUIRE(summary.find("\"inputs\": {\"input\": [\"N\", 12]}") != std::string::npos);
        REQUIRE(summary.find("\"outputs\": {\"" + std::string(v.output) + "\": [\"N\", 5]}") != std::string::npos);
        REQUIRE(summary.find("\"ops\": " + std::string(v.ops)) != std::string::npos);
        REQUIRE(summary.find("\"kdtrain.temperature_folded\": \"" + std::string(v.folded) + "\"") != std::string::npos);
        REQUIRE(summary.find("\"kdtrain.temperature\": \"2.371\"") != std::string::npos);
        REQUIRE(summary.find("\"kdtrain.source\": \"" + f.model + "\"") != std::string::npos);
    }
}
