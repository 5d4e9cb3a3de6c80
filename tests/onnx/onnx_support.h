// onnx_support.h - what the ONNX tests run besides kdtrain: onnxruntime-node through
// node (tests/onnx/run_onnx.js) and python3-onnx's checker (tests/onnx/check_onnx.py).
#ifndef KD_TEST_ONNX_SUPPORT_H
#define KD_TEST_ONNX_SUPPORT_H

#include <string>
#include <vector>

namespace kdonnx {

// The exit code ctest reads as "skipped" (tests/CMakeLists.txt sets SKIP_RETURN_CODE).
constexpr int SKIP_EXIT_CODE = 77;

// "" when node, onnxruntime-node (in KD_ONNXRUNTIME_DIR or the project's
// .cache/onnxruntime) and python3-onnx are all there; else what is missing, in words.
std::string missing_prerequisites();

// Runs the model with onnxruntime's CPU provider on rows x cols float32 inputs; the
// output, row-major. The runner's JSON line (output name, shape, version) into *info.
std::vector<float> run_onnxruntime(const std::string &model, const std::vector<float> &input, int rows, int cols,
                                   std::string *info);

// onnx.checker.check_model(full_check=True) and a summary of the model as JSON;
// a model the checker refuses fails the test.
std::string check_with_onnx(const std::string &model);

} // namespace kdonnx

#endif
