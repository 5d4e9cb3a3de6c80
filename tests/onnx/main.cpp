// main.cpp - the ONNX tests' entry point: Catch2's session, run only when what the
// tests need is installed. Otherwise it says what is missing and how to install it,
// and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE in tests/CMakeLists.txt)
// rather than passed. Listing the tests (ctest's discovery, scripts/check-test-names.sh)
// needs nothing.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "onnx_support.h"

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char **argv)
{
    bool listing = false;
    for (int i = 1; i < argc; i++)
        if (std::strncmp(argv[i], "--list", 6) == 0 || std::strcmp(argv[i], "--help") == 0 ||
            std::strcmp(argv[i], "-h") == 0)
            listing = true;
    if (!listing) {
        std::string missing = kdonnx::missing_prerequisites();
        if (!missing.empty()) {
            std::printf("SKIPPED: the ONNX export tests need %s; install them with scripts/bootstrap.sh --onnx\n",
                        missing.c_str());
            return kdonnx::SKIP_EXIT_CODE;
        }
    }
    return Catch::Session().run(argc, argv);
}
