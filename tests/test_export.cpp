// kdtrain export as a user runs it, without an ONNX runtime: what it refuses and that
// a refusal writes nothing. What the file computes is checked by onnxruntime in
// tests/onnx/test_onnx_runtime.cpp (its own binary, skipped when the runtime is missing).
#include "support.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

using kdtest::Run;

namespace {

std::string read_bytes(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A folder with a 6-10-3 checkpoint: calibrated (T = 1.7) or not.
std::string model_in(const std::string &dir, bool calibrated)
{
    std::string path = dir + (calibrated ? "/calibrated.h5" : "/plain.h5");
    kdtest::write_mlp_checkpoint(path, {6, 10, 3}, 5, calibrated ? 1.7 : 0.0);
    return path;
}

} // namespace

TEST_CASE("export refuses a missing model and writes nothing", "[export]")
{
    std::string dir = kdtest::temp_dir();
    Run run = kdtest::run_binary("export --model " + dir + "/absent.h5 --onnx " + dir + "/m.onnx");
    INFO(run.out);
    REQUIRE(run.exit_code == 1);
    REQUIRE(run.out.find("kdtrain export: " + dir + "/absent.h5") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/m.onnx"));
    REQUIRE(kdtest::leftover_temporaries(dir).empty());
}

TEST_CASE("export refuses an output in a missing folder and names the folder", "[export]")
{
    std::string dir = kdtest::temp_dir(), model = model_in(dir, false);
    Run run = kdtest::run_binary("export --model " + model + " --onnx " + dir + "/no/such/m.onnx");
    INFO(run.out);
    REQUIRE(run.exit_code == 1);
    REQUIRE(run.out.find("--onnx " + dir + "/no/such/m.onnx: the folder " + dir + "/no/such does not exist") !=
            std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/no"));
}

TEST_CASE("export --fold-temperature refuses a model without a fitted temperature and says to calibrate", "[export]")
{
    std::string dir = kdtest::temp_dir(), model = model_in(dir, false);
    Run run = kdtest::run_binary("export --model " + model + " --onnx " + dir + "/m.onnx --fold-temperature");
    INFO(run.out);
    REQUIRE(run.exit_code == 1);
    REQUIRE(run.out.find("has no fitted temperature") != std::string::npos);
    REQUIRE(run.out.find("run `kdtrain calibrate --model " + model + "` first") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/m.onnx"));
    REQUIRE(kdtest::leftover_temporaries(dir).empty());
}

TEST_CASE("export replaces an existing file only with --force", "[export]")
{
    std::string dir = kdtest::temp_dir(), model = model_in(dir, true), out = dir + "/m.onnx";
    { std::ofstream(out) << "precious"; }
    Run run = kdtest::run_binary("export --model " + model + " --onnx " + out);
    INFO(run.out);
    REQUIRE(run.exit_code == 2);
    REQUIRE(run.out.find("--onnx " + out + ": exists; pass --force to replace it") != std::string::npos);
    REQUIRE(read_bytes(out) == "precious");
    REQUIRE(kdtest::run_kdtrain("export --model " + model + " --onnx " + out + " --force") == 0);
    REQUIRE(read_bytes(out) != "precious");
}

TEST_CASE("export never writes over the checkpoint it reads, even with --force", "[export]")
{
    std::string dir = kdtest::temp_dir(), model = model_in(dir, true);
    std::string before = read_bytes(model);
    // The same file spelled another way.
    Run run = kdtest::run_binary("export --model " + model + " --onnx " + dir + "/./calibrated.h5 --force");
    INFO(run.out);
    REQUIRE(run.exit_code == 2);
    REQUIRE(run.out.find("which this command reads") != std::string::npos);
    REQUIRE(read_bytes(model) == before);
}

TEST_CASE("export --raw-input needs a data set for x_scale and names the way to give one", "[export]")
{
    std::string dir = kdtest::temp_dir(), model = model_in(dir, false);
    // A checkpoint with /model alone has no config naming its data set.
    Run run = kdtest::run_binary("export --model " + model + " --onnx " + dir + "/m.onnx --raw-input");
    INFO(run.out);
    REQUIRE(run.exit_code == 2);
    REQUIRE(run.out.find("names no data set; pass --data FILE") != std::string::npos);
    // A data set of another shape is refused too.
    kdtest::write_uint8_dataset(dir + "/other.h5", 5010, 10, 7, 3, 0.5, 1); // 5000 rows go to validation
    run = kdtest::run_binary("export --model " + model + " --onnx " + dir + "/m.onnx --raw-input --data " + dir +
                             "/other.h5");
    INFO(run.out);
    REQUIRE(run.exit_code == 1);
    REQUIRE(run.out.find("expected 6 features and 3 classes for the 6-10-3 model, found 7 and 3") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/m.onnx"));
}

TEST_CASE("export gives the same bytes for the same model and options", "[export]")
{
    std::string dir = kdtest::temp_dir(), model = model_in(dir, true);
    for (const char *options : {"", " --fold-temperature --probabilities"}) {
        REQUIRE(kdtest::run_kdtrain("export --model " + model + " --onnx " + dir + "/a.onnx --force" + options) == 0);
        REQUIRE(kdtest::run_kdtrain("export --model " + model + " --onnx " + dir + "/b.onnx --force" + options) == 0);
        std::string a = read_bytes(dir + "/a.onnx");
        REQUIRE(a.size() > 4 * (6 * 10 + 10 + 10 * 3 + 3));
        REQUIRE(a == read_bytes(dir + "/b.onnx"));
    }
}
