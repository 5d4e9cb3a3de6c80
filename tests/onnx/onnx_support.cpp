// onnx_support.cpp - see onnx_support.h.
#include "onnx_support.h"

#include "../support.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sys/wait.h>

namespace kdonnx {

static std::string runtime_dir()
{
    const char *dir = std::getenv("KD_ONNXRUNTIME_DIR");
    return dir && *dir ? dir : std::string(KD_SOURCE_DIR) + "/.cache/onnxruntime";
}

static bool succeeds(const std::string &command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

std::string missing_prerequisites()
{
    std::string missing;
    auto add = [&](const std::string &what) { missing += (missing.empty() ? "" : ", ") + what; };
    if (!succeeds("command -v node")) add("node (Debian's nodejs) on PATH");
    std::ifstream package(runtime_dir() + "/node_modules/onnxruntime-node/package.json");
    if (!package) add("the npm package onnxruntime-node in " + runtime_dir());
    if (!succeeds("/usr/bin/python3 -c 'import onnx'")) add("python3-onnx (import onnx in /usr/bin/python3)");
    return missing;
}

static std::string shell_quote(const std::string &s)
{
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

static std::string run_command(const std::string &command, int *exit_code)
{
    FILE *pipe = popen((command + " 2>&1").c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string out;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    int status = pclose(pipe);
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

std::vector<float> run_onnxruntime(const std::string &model, const std::vector<float> &input, int rows, int cols,
                                   std::string *info)
{
    REQUIRE(input.size() == (size_t)rows * (size_t)cols);
    std::string dir = kdtest::temp_dir(), in = dir + "/input.f32", out = dir + "/output.f32";
    {
        // Little-endian float32, as run_onnx.js reads them (this host is little-endian: x86-64).
        std::ofstream f(in, std::ios::binary);
        f.write(reinterpret_cast<const char *>(input.data()), (std::streamsize)(input.size() * sizeof(float)));
        REQUIRE(f.good());
    }
    std::string script = std::string(KD_SOURCE_DIR) + "/tests/onnx/run_onnx.js";
    int code = -1;
    std::string text = run_command("KD_ONNXRUNTIME_DIR=" + shell_quote(runtime_dir()) + " node " + shell_quote(script) +
                                       " " + shell_quote(model) + " " + shell_quote(in) + " " + std::to_string(rows) +
                                       " " + std::to_string(cols) + " " + shell_quote(out),
                                   &code);
    INFO(text);
    REQUIRE(code == 0);
    if (info) *info = text;
    std::ifstream f(out, std::ios::binary | std::ios::ate);
    REQUIRE(f.good());
    std::streamsize bytes = f.tellg();
    REQUIRE(bytes % 4 == 0);
    std::vector<float> y((size_t)bytes / 4);
    f.seekg(0);
    f.read(reinterpret_cast<char *>(y.data()), bytes);
    REQUIRE(f.good());
    return y;
}

std::string check_with_onnx(const std::string &model)
{
    std::string script = std::string(KD_SOURCE_DIR) + "/tests/onnx/check_onnx.py";
    int code = -1;
    std::string text = run_command("/usr/bin/python3 " + shell_quote(script) + " " + shell_quote(model), &code);
    INFO(text);
    REQUIRE(code == 0);
    return text;
}

} // namespace kdonnx
