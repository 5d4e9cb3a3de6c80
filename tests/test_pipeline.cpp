// kdtrain run: a whole experiment on a tiny generated data set, its report, reuse of
// finished runs on a second start, and the statistics it prints.
#include "support.h"

extern "C" {
#include "train/stats.h"
}

#include <catch2/catch.hpp>

#include <cmath>

#include <fstream>
#include <sstream>

namespace {

std::string read_text(const std::string &path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace

TEST_CASE("statistics over seeds: mean, sample sd and paired differences, by hand", "[stats]")
{
    double a[4] = {1, 2, 3, 4}, b[4] = {2, 2, 5, 4};
    kd_stat s = kd_stat_of(a, 4);
    REQUIRE(s.mean == 2.5);
    REQUIRE(s.sd == Approx(std::sqrt(5.0 / 3.0)).epsilon(1e-12)); // sum of squares 5, n - 1 = 3
    kd_stat d = kd_stat_paired(a, b, 4);                          // differences 1, 0, 2, 0
    REQUIRE(d.mean == 0.75);
    REQUIRE(d.sd == Approx(std::sqrt((0.0625 + 0.5625 + 1.5625 + 0.5625) / 3)).epsilon(1e-12));
    REQUIRE(kd_stat_of(a, 1).sd == 0.0);
}

TEST_CASE("kdtrain run trains, evaluates and reports a whole experiment, and reuses finished runs",
          "[pipeline][smoke]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5", smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";
    kdtest::write_cluster_dataset(data, 500, 200, 16, 4, 5);
    std::string ini = dir + "/pipe.ini";
    std::ofstream(ini) << "[pipeline]\ntitle = Tiny\ndata = " << data << "\nruns = " << dir << "/runs\nout = " << dir
                       << "/out\nseeds = 1, 2\nteacher = " << smoke << " train.epochs=3\n\n"
                       << "[regime.tiny]\ntitle = Tiny students\nrun.alone = train " << smoke
                       << " model.layers=16,8,4\nrun.kd = distill " << smoke << " model.layers=16,8,4\ncompare = kd - alone\n";
    std::string out;
    REQUIRE(kdtest::run_kdtrain("run --quiet -c " + ini, &out) == 0);
    std::string md = read_text(dir + "/out/summary.md");
    INFO(md);
    REQUIRE(md.find("# Tiny") != std::string::npos);
    REQUIRE(md.find("seeds 1, 2") != std::string::npos);
    REQUIRE(md.find("| teacher | 16-32-4 |") != std::string::npos);
    REQUIRE(md.find("| alone (alone) | 16-8-4 |") != std::string::npos);
    REQUIRE(md.find("| kd (distilled) | 16-8-4 |") != std::string::npos);
    REQUIRE(md.find("| kd − alone |") != std::string::npos);
    std::string csv = read_text(dir + "/out/summary.csv");
    REQUIRE(std::count(csv.begin(), csv.end(), '\n') == 6); // header, teacher, 2 runs x 2 seeds
    REQUIRE(kdtest::file_exists(dir + "/runs/tiny-kd-s2/model.h5"));

    // A second start reuses every finished run and writes the same tables.
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 0);
    REQUIRE(out.find("[5/5] " + dir + "/runs/tiny-kd-s2: done before, reused") != std::string::npos);
    REQUIRE(out.find("training") == std::string::npos);
    REQUIRE(read_text(dir + "/out/summary.csv") == csv);

    // A run folder trained with another config is never overwritten.
    std::ofstream(ini, std::ios::app) << "run.other = train " << smoke << "\n";
    std::string changed = read_text(ini);
    size_t at = changed.find("model.layers=16,8,4\nrun.kd");
    changed.replace(at, std::string("model.layers=16,8,4").size(), "model.layers=16,9,4");
    std::ofstream(ini) << changed;
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find("tiny-alone-s1 exists with another config") != std::string::npos);
}

TEST_CASE("a pipeline config with a bad section, key or comparison is an error naming it", "[pipeline]")
{
    std::string dir = kdtest::temp_dir(), ini = dir + "/p.ini", out;
    std::ofstream(ini) << "[pipeline]\ndata = x.h5\nteacher = t.ini\n[regime.a]\nrun.x = train s.ini\ncompare = x - y\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find("regime.a.compare: no run named 'y'") != std::string::npos);
    std::ofstream(ini) << "[pipeline]\ndata = x.h5\nteacher = t.ini\nseed = 1\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find(":4: unknown key pipeline.seed") != std::string::npos);
    std::ofstream(ini) << "[pipeline]\ndata = x.h5\nteacher = t.ini\n[regime.a]\nrun.x = fit s.ini\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find("expected 'train CONFIG [k=v ...]'") != std::string::npos);
}
