// The kdtrain binary: --help, --version and exit codes, run as a user would.
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

struct Run {
    int exit_code;
    std::string out; // stdout and stderr together
};

Run run_kdtrain(const std::string &args)
{
    std::string command = std::string(KDTRAIN_BINARY) + " " + args + " 2>&1";
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

} // namespace

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
