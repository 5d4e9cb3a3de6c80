// kdtrain run: a whole experiment on a tiny generated data set, its report, reuse of
// finished runs on a second start, and the statistics it prints.
#include "support.h"

extern "C" {
#include "kd_build_commit.h"
#include "workflows/pipeline_internal.h"
#include "workflows/stats.h"
}

#include <catch2/catch.hpp>

#include <cmath>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

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

TEST_CASE("a paired difference is beyond seed noise only when its t exceeds the 95 percent critical value", "[stats]")
{
    // 3 seeds: 2 degrees of freedom, t_0.975 = 4.303 (scipy.stats.t.ppf(0.975, 2) = 4.3027).
    REQUIRE(kd_stat_t_critical(2) == 4.303);
    double t = 0;
    kd_stat beyond = {3, 1.0, 0.4}; // t = 1 / (0.4 / sqrt 3) = 4.330
    REQUIRE(std::string(kd_stat_verdict(beyond, &t)) == "beyond seed noise");
    REQUIRE(t == Approx(std::sqrt(3.0) / 0.4).epsilon(1e-12));
    REQUIRE(kd_stat_beyond_noise(beyond));
    kd_stat within = {3, -1.0, 0.41}; // t = -4.225
    REQUIRE(std::string(kd_stat_verdict(within, &t)) == "within seed noise");
    REQUIRE(t == Approx(-std::sqrt(3.0) / 0.41).epsilon(1e-12));
    REQUIRE_FALSE(kd_stat_beyond_noise(within));
    kd_stat one = {1, 5.0, 0.0};
    REQUIRE(std::string(kd_stat_verdict(one, &t)) == "not tested (needs 2 to 16 seeds)");
    REQUIRE(std::isnan(t));
    REQUIRE_FALSE(kd_stat_beyond_noise(one));
}

TEST_CASE("the answer to distillation or one temperature follows the sign and the t-test of each measure", "[pipeline]")
{
    // Differences are the distilled student minus the student alone at its T: positive
    // means the student alone at T has the lower value.
    char answer[512];
    kd_stat lower = {3, 0.03, 0.002}, higher = {3, -1.0, 0.1}, noise = {3, 0.05, 0.2};
    kd_pipeline_answer(lower, lower, answer, sizeof answer);
    REQUIRE(std::string(answer) == "against the distilled student without a temperature, the student alone with one temperature fitted "
                                   "on validation has lower test NLL and lower test ECE. By both measures one temperature did better "
                                   "than distillation here.");
    kd_pipeline_answer(higher, higher, answer, sizeof answer);
    REQUIRE(std::string(answer).find("has higher test NLL and higher test ECE. By both measures distillation did better") !=
            std::string::npos);
    kd_pipeline_answer(lower, higher, answer, sizeof answer);
    REQUIRE(std::string(answer).find("has lower test NLL and higher test ECE.") != std::string::npos);
    REQUIRE(std::string(answer).find("did better") == std::string::npos);
    kd_pipeline_answer(noise, lower, answer, sizeof answer);
    REQUIRE(std::string(answer).find("has equal (within seed noise) test NLL and lower test ECE.") != std::string::npos);
    REQUIRE(std::string(answer).find("did better") == std::string::npos);
}

TEST_CASE("kdtrain run trains, evaluates and reports a whole experiment, and reuses finished runs",
          "[pipeline][smoke]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5", smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";
    kdtest::write_cluster_dataset(data, 500, 200, 16, 4, 5);
    std::string ini = dir + "/pipe.ini";
    std::ofstream(ini) << "[pipeline]\ntitle = Tiny\ndata = " << data << "\nruns = " << dir << "/runs\nout = " << dir
                       << "/out\nseeds = 1, 2\nteacher = " << smoke << " train.epochs=3\n\n"
                       << "[regime.tiny]\ntitle = Tiny students\nplot_x = distill.temperature\nplot_series = distill.alpha\n"
                       << "run.alone = train " << smoke << " model.layers=16,8,4\nrun.kd = distill " << smoke
                       << " model.layers=16,8,4\nrun.kd4 = distill " << smoke
                       << " model.layers=16,8,4 distill.temperature=4\ncompare = kd - alone\nvs_temperature = kd - alone\n";
    std::string out;
    REQUIRE(kdtest::run_kdtrain("run --quiet -c " + ini, &out) == 0);
    std::string md = kdtest::read_text(dir + "/out/summary.md");
    INFO(md);
    REQUIRE(md.find("# Tiny") != std::string::npos);
    REQUIRE(md.find("seeds 1, 2") != std::string::npos);
    REQUIRE(md.find("| teacher | 16-32-4 |") != std::string::npos);
    REQUIRE(md.find("| alone (alone) | 16-8-4 |") != std::string::npos);
    REQUIRE(md.find("| kd (distilled) | 16-8-4 |") != std::string::npos);
    REQUIRE(md.find("| kd − alone |") != std::string::npos);
    REQUIRE(md.find("### Distillation or one temperature?") != std::string::npos);
    REQUIRE(md.find("| alone + one temperature |") != std::string::npos);
    REQUIRE(md.find("**Answer:** against the distilled student without a temperature") != std::string::npos);
    REQUIRE(md.find("Verdicts: a two-sided paired t-test of the mean difference at 95 %, beyond seed noise when |t| > 12.706 "
                    "(1 degree of freedom)") != std::string::npos);
    std::string csv = kdtest::read_text(dir + "/out/summary.csv");
    // The word for each run follows the sign of T - 1 of its seeds, as summary.csv has them.
    for (std::string run : {"alone", "kd", "kd4"}) {
        int over = 0, under = 0;
        std::istringstream rows(csv);
        for (std::string row; std::getline(rows, row);) {
            if (row.rfind("tiny," + run + ",", 0) != 0) continue;
            std::vector<std::string> cell;
            std::istringstream cells(row);
            for (std::string c; std::getline(cells, c, ',');) cell.push_back(c);
            double temperature = std::stod(cell.at(13)); // the temperature column
            over += temperature > 1;
            under += temperature < 1;
        }
        REQUIRE(over + under == 2);
        std::string word = over == 2 ? "overconfident" : under == 2 ? "underconfident" : "mixed";
        INFO(run);
        REQUIRE(md.find(" " + run + " " + word + " (T > 1 for " + std::to_string(over) + " of 2 seeds)") != std::string::npos);
    }
    REQUIRE(std::count(csv.begin(), csv.end(), '\n') == 8); // header, teacher, 3 runs x 2 seeds
    for (const char *plot : {"tiny-val-accuracy.svg", "tiny-test-accuracy.svg", "tiny-test-nll.svg", "tiny-test-ece.svg"})
        REQUIRE(kdtest::read_text(dir + "/out/" + plot).find("distill.alpha = 0.5") != std::string::npos);
    REQUIRE(kdtest::file_exists(dir + "/runs/tiny-kd-s2/model.h5"));

    // A second start reuses every finished run and writes the same tables.
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 0);
    REQUIRE(out.find("[5/7] " + dir + "/runs/tiny-kd-s2: done before, reused") != std::string::npos);
    REQUIRE(out.find("training") == std::string::npos);
    REQUIRE(kdtest::read_text(dir + "/out/summary.csv") == csv);

    // The report names the commits that trained its runs, as their summary.json say.
    std::string summary_file = dir + "/runs/tiny-kd-s2/summary.json", summary = kdtest::read_text(summary_file);
    size_t key = summary.find("\"commit\": \"");
    REQUIRE(key != std::string::npos);
    size_t value = key + std::string("\"commit\": \"").size();
    std::string trained = summary.substr(value, summary.find('"', value) - value);
    REQUIRE(trained == KD_BUILD_COMMIT); // the commit the binary was built from
    REQUIRE(kdtest::read_text(dir + "/out/summary.md").find("from runs trained at commit " + trained + ";") != std::string::npos);
    std::ofstream(summary_file) << summary.substr(0, value) << "feedbee" << summary.substr(summary.find('"', value));
    REQUIRE(kdtest::run_kdtrain("run --quiet -c " + ini, &out) == 0);
    REQUIRE(kdtest::read_text(dir + "/out/summary.md").find("from runs trained at commit " + trained + ", feedbee;") != std::string::npos);

    // A run folder trained with another config is never overwritten.
    std::ofstream(ini, std::ios::app) << "run.other = train " << smoke << "\n";
    std::string changed = kdtest::read_text(ini);
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

TEST_CASE("correlations by hand: Pearson and Spearman with ties", "[stats]")
{
    double x[5] = {1, 2, 3, 4, 5}, y[5] = {2, 4, 6, 8, 10}, z[5] = {5, 4, 3, 2, 1};
    REQUIRE(kd_pearson(x, y, 5) == Approx(1.0).epsilon(1e-12));
    REQUIRE(kd_pearson(x, z, 5) == Approx(-1.0).epsilon(1e-12));
    double a[4] = {1, 2, 3, 4}, b[4] = {1, 3, 2, 4}; // sxy = 4, sxx = syy = 5: r = 0.8
    REQUIRE(kd_pearson(a, b, 4) == Approx(0.8).epsilon(1e-12));
    double c[4] = {10, 20, 20, 40}; // ranks 1, 2.5, 2.5, 4
    double rc[4] = {1, 2.5, 2.5, 4};
    REQUIRE(kd_spearman(a, c, 4) == Approx(kd_pearson(a, rc, 4)).epsilon(1e-12));
    double e[4] = {1, 100, 1000, 1e6}; // monotone but not linear: rho = 1
    REQUIRE(kd_spearman(a, e, 4) == Approx(1.0).epsilon(1e-12));
    double flat[3] = {1, 1, 1};
    REQUIRE(std::isnan(kd_pearson(a, flat, 3)));
}

TEST_CASE("kdtrain sweep fits T every epoch and reports its correlation with the gap", "[pipeline][sweep]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5", smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";
    kdtest::write_cluster_dataset(data, 500, 100, 16, 4, 6);
    std::string ini = dir + "/sweep.ini";
    std::ofstream(ini) << "[pipeline]\ntitle = Tiny sweep\ndata = " << data << "\nruns = " << dir << "/runs\nout = " << dir
                       << "/out\nseeds = 1\n\n[regime.w]\nrun.narrow = train " << smoke
                       << " model.layers=16,4,4 train.temperature_every=1\nrun.wide = train " << smoke
                       << " model.layers=16,64,4 model.dropout=0 train.temperature_every=1 train.epochs=6\n";
    std::string out;
    REQUIRE(kdtest::run_kdtrain("sweep --quiet -c " + ini, &out) == 0);
    std::string csv = kdtest::read_text(dir + "/out/sweep.csv");
    REQUIRE(std::count(csv.begin(), csv.end(), '\n') == 1 + 4 + 6); // a row per run and epoch
    REQUIRE(csv.find("\nwide,6,") != std::string::npos);
    std::string md = kdtest::read_text(dir + "/out/summary.md");
    REQUIRE(md.find("Pearson r = ") != std::string::npos);
    REQUIRE(md.find("| narrow | 4 |") != std::string::npos);
    for (const char *f : {"temperature.svg", "val_nll.svg", "gap.svg"})
        REQUIRE(kdtest::read_text(dir + "/out/" + f).rfind("<svg", 0) == 0);
    // A run without the diagnostic is an error naming the fix.
    std::ofstream(ini, std::ios::app) << "run.plain = train " << smoke << "\n";
    REQUIRE(kdtest::run_kdtrain("sweep --quiet -c " + ini, &out) == 2);
    REQUIRE(out.find("set train.temperature_every = 1") != std::string::npos);
}

TEST_CASE("a pipeline's run configs and overrides are checked when it loads, before anything trains", "[pipeline]")
{
    std::string dir = kdtest::temp_dir(), ini = dir + "/p.ini", out;
    std::string smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";
    // The typo is in the last run; the teacher would train first if runs were checked in turn.
    std::ofstream(ini) << "[pipeline]\ndata = " << dir << "/none.h5\nruns = " << dir << "/runs\nteacher = " << smoke
                       << "\n[regime.a]\nrun.x = train " << smoke << "\nrun.y = train " << smoke << " train.epoch=2\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    INFO(out);
    REQUIRE(out.find("regime.a.run.y: --set: unknown key train.epoch; did you mean train.epochs?") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/runs"));
    // Unknown pipeline keys get the same suggestions as a training config's.
    std::ofstream(ini) << "[pipeline]\ndata = x.h5\nseeeds = 1\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find(":3: unknown key pipeline.seeeds; did you mean pipeline.seeds?") != std::string::npos);
    std::ofstream(ini) << "[pipeline]\ndata = x.h5\n[regime.small]\nplotx = train.epochs\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find(":4: unknown key regime.small.plotx; did you mean regime.small.plot_x?") != std::string::npos);
    std::ofstream(ini) << "[pipeline]\ndata = x.h5\nthreads = -1\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find(":3: pipeline.threads: expected an integer in [0, 1024], found '-1'") != std::string::npos);
    std::ofstream(ini) << "[pipeline]\ndata = x.h5\nprecision = fp16\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find(":3: pipeline.precision: expected fp32, bf16 or auto (nothing: each run's own), found 'fp16'") !=
            std::string::npos);
    std::ofstream(ini) << "[pipelin]\ndata = x.h5\n";
    REQUIRE(kdtest::run_kdtrain("run -c " + ini, &out) == 2);
    REQUIRE(out.find("unknown section [pipelin]; did you mean [pipeline]?") != std::string::npos);
}

TEST_CASE("pipeline.precision sets every run's and teacher's train.precision", "[pipeline][bf16]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5", smoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";
    kdtest::write_cluster_dataset(data, 300, 100, 16, 4, 5);
    std::string ini = dir + "/pipe.ini", out;
    // fp32 asked of every run, over a run line that says bf16: the pipeline's key wins.
    std::ofstream(ini) << "[pipeline]\ndata = " << data << "\nruns = " << dir << "/runs\nout = " << dir
                       << "/out\nprecision = fp32\nteacher = " << smoke << " train.epochs=2\n\n[regime.r]\nrun.alone = train "
                       << smoke << " model.layers=16,8,4 train.epochs=2 train.precision=bf16\nrun.kd = distill " << smoke
                       << " model.layers=16,8,4 train.epochs=2\n";
    REQUIRE(kdtest::run_kdtrain("run --quiet -c " + ini, &out) == 0);
    for (const char *run : {"teacher", "r-alone-s1", "r-kd-s1"}) {
        INFO(run);
        REQUIRE(kdtest::read_text(dir + "/runs/" + run + "/config.ini").find("precision = fp32\n") != std::string::npos);
        REQUIRE(kdtest::read_text(dir + "/runs/" + run + "/summary.json").find("\"precision\": \"fp32\"") != std::string::npos);
    }
}
