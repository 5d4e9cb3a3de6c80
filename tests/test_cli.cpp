// The kdtrain binary: --help, --version and exit codes, run as a user would.
#include "support.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <sys/wait.h>

using kdtest::Run;

static Run run_kdtrain(const std::string &args) { return kdtest::run_binary(args); }

TEST_CASE("kdtrain --help lists the commands and exits 0", "[cli]")
{
    Run run = run_kdtrain("--help");
    REQUIRE(run.exit_code == 0);
    REQUIRE(run.out.find("usage: kdtrain") != std::string::npos);
    REQUIRE(run.out.find("info") != std::string::npos);
}

TEST_CASE("kdtrain --version prints the version and exits 0", "[cli]")
{
    Run run = run_kdtrain("--version");
    REQUIRE(run.exit_code == 0);
    REQUIRE(run.out.rfind("kdtrain 0.", 0) == 0);
}

TEST_CASE("kdtrain info names oneDNN and HDF5", "[cli]")
{
    Run run = run_kdtrain("info");
    REQUIRE(run.exit_code == 0);
    REQUIRE(run.out.find("oneDNN    2.") != std::string::npos);
    REQUIRE(run.out.find("HDF5      1.") != std::string::npos);
}

TEST_CASE("kdtrain with an unknown command or no command exits 2 and says why", "[cli]")
{
    Run unknown = run_kdtrain("trian");
    REQUIRE(unknown.exit_code == 2);
    REQUIRE(unknown.out.find("unknown command 'trian'") != std::string::npos);
    Run none = run_kdtrain("");
    REQUIRE(none.exit_code == 2);
    REQUIRE(none.out.find("usage") != std::string::npos);
    Run extra = run_kdtrain("info --bogus");
    REQUIRE(extra.exit_code == 2);
}
