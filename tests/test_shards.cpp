// train.shards: the batch cut into fixed row ranges whose gradients add up, in shard
// order, to the batch's; the ground data parallelism across processes stands on (each
// shard draws its dropout and jitter from its own key, so any process can compute it).
#include "support.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace {

const std::string kSmoke = kdtest::smoke_config();
using ShardFixture = kdtest::SmokeRuns;

} // namespace

TEST_CASE("the gradients of the shards add up to the whole batch's gradient", "[train][shards]")
{
    ShardFixture fx;
    // One plain SGD step on the whole training split (400 rows, one batch), no dropout:
    // the weights move by lr times the gradient, so sharded and whole agree to float
    // rounding of the gradient. A shard's missing rows/batch factor would make its
    // gradient 3 or 7 times too large and the step far off.
    std::string one_step = " --set model.dropout=0 --set train.batch_size=400 --set train.epochs=1"
                           " --set train.optimizer=sgd --set train.momentum=0 --set train.lr=0.5"
                           " --set train.schedule=constant";
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("whole") + one_step) == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("three") + one_step + " --set train.shards=3") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("seven") + one_step + " --set train.shards=7") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("none") + one_step + " --set train.lr=1e-30") == 0);
    std::vector<double> whole = kdtest::model_parameters(fx.runs + "/whole/model.h5"), start = kdtest::model_parameters(fx.runs + "/none/model.h5");
    for (const char *run : {"three", "seven"}) {
        std::vector<double> sharded = kdtest::model_parameters(fx.runs + "/" + run + "/model.h5");
        double worst = 0, moved = 0;
        for (size_t i = 0; i < whole.size(); i++) {
            worst = std::max(worst, std::fabs(sharded[i] - whole[i]));
            moved = std::max(moved, std::fabs(whole[i] - start[i]));
        }
        INFO(run << ": largest difference from the whole batch's step " << worst << ", largest step " << moved);
        REQUIRE(moved > 1e-3);               // the step is real
        REQUIRE(worst <= 1e-5 * moved + 1e-7); // and the sharded one is the same step
    }
}

TEST_CASE("a sharded run is bit for bit the same on any thread count and after a resume", "[train][shards]")
{
    ShardFixture fx;
    // Dropout and jitter draw per shard; the shards accumulate in order.
    std::string sharded = " --set train.shards=6 --set model.dropout=0.3 --set model.layers=16,64,4";
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("one") + sharded + " --set train.threads=1") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("three") + sharded + " --set train.threads=3") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("parts") + sharded + " --set train.threads=2 --stop-after 2") == 0);
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + fx.runs + "/parts") == 0);
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("whole") + " --set model.dropout=0.3 --set model.layers=16,64,4") == 0);
    std::vector<double> one = kdtest::model_parameters(fx.runs + "/one/model.h5");
    REQUIRE(one == kdtest::model_parameters(fx.runs + "/three/model.h5"));
    REQUIRE(one == kdtest::model_parameters(fx.runs + "/parts/model.h5"));
    REQUIRE(one != kdtest::model_parameters(fx.runs + "/whole/model.h5")); // other dropout masks: another run
    // A distilled student in shards (teacher rows and labels taken per shard).
    std::string distill = " --teacher " + fx.runs + "/whole --set train.shards=4"
                          " --set data.labelled=200";
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d1") + distill + " --set train.threads=1") == 0);
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d3") + distill + " --set train.threads=3") == 0);
    REQUIRE(kdtest::model_parameters(fx.runs + "/d1/model.h5") == kdtest::model_parameters(fx.runs + "/d3/model.h5"));
}

TEST_CASE("train.shards above the batch size is refused naming the key", "[train][shards][config]")
{
    ShardFixture fx;
    std::string out;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("bad") + " --set train.shards=33", &out) == 2);
    REQUIRE(out.find("train.shards: expected at most train.batch_size = 32 (a shard is at least one row of the batch), "
                     "found 33") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/bad"));
}

TEST_CASE("started as several processes by an MPI launcher, a kdtrain without MPI refuses and says why", "[shards][cli]")
{
    // KDTRAIN_WITHOUT_MPI: kdtrain itself when the build has no MPI, else the same
    // program built without it (tests/CMakeLists.txt).
    ShardFixture fx;
    auto run = [](const std::string &args, std::string *out = nullptr) {
        kdtest::Run r = kdtest::run_program(KDTRAIN_WITHOUT_MPI, args);
        if (out) *out = r.out;
        return r.exit_code;
    };
    std::string out, info;
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1); // what Open MPI's mpirun sets in each process
    int refused = run("train " + fx.base("mpi"), &out);
    int info_rc = run("info", &info);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1); // one process: runs as usual
    int single = run("train " + fx.base("single") + " --set train.epochs=1");
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("PMI_SIZE", "3", 1); // MPICH's and Slurm's launchers
    std::string out_pmi, out_eval;
    int refused_pmi = run("run -c " + kSmoke, &out_pmi);
    int refused_eval = run("eval --model x.h5", &out_eval);
    unsetenv("PMI_SIZE");
    REQUIRE(refused == 2);
    REQUIRE(out.find("kdtrain train: started as one of 2 processes by an MPI launcher, but this kdtrain is built "
                     "without MPI") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/mpi"));
    REQUIRE(info_rc == 0); // info writes nothing: allowed
    REQUIRE(single == 0);
    REQUIRE(refused_pmi == 2);
    REQUIRE(out_pmi.find("kdtrain run: started as one of 3 processes") != std::string::npos);
    REQUIRE(refused_eval == 2); // a one-process command, with or without MPI
    REQUIRE(out_eval.find("kdtrain eval: started as one of 3 processes by an MPI launcher, but eval runs as one process") !=
            std::string::npos);
}
