// kdtrain under mpirun on loopback (Open MPI, allowed to run as root below):
// data-parallel training whose weights do not depend on the number of ranks, resumes
// across rank counts, the checks at the start, a killed or stalled rank, and sweeps
// and pipelines whose runs are handed out over the ranks. Every command runs under
// `timeout`, so no test can hang.
#include "support.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

const std::string kSmoke = kdtest::smoke_config();

// Open MPI's mpirun refuses root unless both are set (the CI machine runs as root). In the
// sanitizer build, LeakSanitizer in every rank skips what Open MPI keeps until exit
// (tests/mpi/lsan-openmpi.supp), which it can name only with whole allocation stacks (the
// slow unwinder: Open MPI has no frame pointers) and Open MPI's plugins kept loaded to the
// end (disable_dlclose); the ranks inherit the environment.
const bool kRootAllowed = setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1) == 0 && setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1) == 0 &&
                          setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1) == 0 &&
                          setenv("PMIX_MCA_mca_base_component_disable_dlclose", "1", 1) == 0 &&
                          setenv("ASAN_OPTIONS", "fast_unwind_on_malloc=0", 1) == 0 &&
                          setenv("LSAN_OPTIONS", "suppressions=" KD_SOURCE_DIR "/tests/mpi/lsan-openmpi.supp", 1) == 0;

// A command under `timeout`, so that no test can hang.
kdtest::Run run_shell(const std::string &command) { return kdtest::run_command("timeout -k 10 240 " + command); }

// mpirun -np N kdtrain ARGS (--oversubscribe: more ranks than cores are allowed, on any
// machine the tests run on).
std::string mpirun(int ranks, const std::string &args)
{
    REQUIRE(kRootAllowed);
    return std::string(MPIEXEC) + " -np " + std::to_string(ranks) + " --oversubscribe " + KDTRAIN_BINARY + " " + args;
}

// The AdamW state of every layer, /optimizer/{m,v}/layerK/{W,b}.
std::vector<double> optimizer_state(const std::string &checkpoint, size_t layers)
{
    std::vector<double> all;
    for (const char *slot : {"m", "v"})
        for (size_t k = 1; k <= layers; k++)
            for (const char *part : {"/W", "/b"}) {
                std::vector<size_t> dims;
                std::vector<double> v = kdtest::h5_read_doubles(
                    checkpoint, std::string("/optimizer/") + slot + "/layer" + std::to_string(k) + part, dims);
                all.insert(all.end(), v.begin(), v.end());
            }
    return all;
}

// metrics.csv without its two timing columns (epoch_seconds, samples_per_second).
std::string metrics_without_timings(const std::string &run)
{
    std::istringstream in(kdtest::read_text(run + "/metrics.csv"));
    std::string line, out;
    while (std::getline(in, line)) {
        std::vector<std::string> cells;
        std::stringstream ss(line);
        std::string cell;
        while (std::getline(ss, cell, ',')) cells.push_back(cell);
        REQUIRE(cells.size() == 16);
        for (size_t i = 0; i < cells.size(); i++)
            if (i != 9 && i != 10) out += cells[i] + ",";
        out += "\n";
    }
    return out;
}

// Everything a run's result is: weights, optimiser state, metrics.
void require_same_run(const std::string &a, const std::string &b)
{
    INFO(a << " against " << b);
    REQUIRE(kdtest::model_parameters(a + "/model.h5") == kdtest::model_parameters(b + "/model.h5"));
    REQUIRE(optimizer_state(a + "/model.h5", 2) == optimizer_state(b + "/model.h5", 2));
    std::string ma = metrics_without_timings(a);
    REQUIRE(std::count(ma.begin(), ma.end(), '\n') == 5); // the header and 4 epochs
    REQUIRE(ma == metrics_without_timings(b));
}

// Shards of 57-row batches over 400 rows: the last batch has 1 row, in shard 5 alone,
// so shards 0 to 4 of it are empty and on 3 ranks ranks 0 and 1 hold no row of it.
// One thread a process: fp32 products large enough for oneDNN's threading give other
// bits on other thread counts (docs/ARCHITECTURE.md), whatever the ranks.
const std::string kSharded = " --set train.shards=6 --set train.batch_size=57 --set model.dropout=0.3"
                             " --set model.layers=16,64,4 --set train.threads=1";

} // namespace

TEST_CASE("the ordered sum of shards over 1, 2 and 3 ranks equals one process's sum bit for bit", "[mpi]")
{
    for (int ranks : {1, 2, 3}) {
        std::string command = std::string(MPIEXEC) + " -np " + std::to_string(ranks) + " --oversubscribe " + COMM_CHECK_BINARY;
        kdtest::Run run = run_shell(command);
        INFO(run.out);
        REQUIRE(run.exit_code == 0);
        REQUIRE(run.out.find("comm_check: " + std::to_string(ranks) + " ranks: ok") != std::string::npos);
    }
}

TEST_CASE("data-parallel training gives the same weights, optimiser state and metrics on 1, 2 and 3 ranks", "[mpi]")
{
    kdtest::SmokeRuns fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("one") + kSharded) == 0);
    kdtest::Run two = run_shell(mpirun(2, "train " + fx.base("two") + kSharded));
    INFO(two.out);
    REQUIRE(two.exit_code == 0);
    // rank 0 alone prints the run folder
    REQUIRE(two.out.find(fx.runs + "/two\n") != std::string::npos);
    REQUIRE(two.out.find(fx.runs + "/two\n") == two.out.rfind(fx.runs + "/two\n"));
    kdtest::Run three = run_shell(mpirun(3, "train " + fx.base("three") + kSharded));
    INFO(three.out);
    REQUIRE(three.exit_code == 0);
    require_same_run(fx.runs + "/one", fx.runs + "/two");
    require_same_run(fx.runs + "/one", fx.runs + "/three");
    std::string log = kdtest::read_text(fx.runs + "/three/train.log");
    REQUIRE(log.find("parallel: 3 ranks, 6 shards of each batch (2 a rank), 1 threads a rank") != std::string::npos);
    // A distilled student too: teacher rows and labels taken per shard, on each rank.
    std::string distill = " --teacher " + fx.runs + "/one --set model.layers=16,8,4 --set data.labelled=200"
                          " --set train.shards=6 --set train.batch_size=57 --set train.threads=1";
    REQUIRE(kdtest::run_kdtrain("distill " + fx.base("d1") + distill) == 0);
    for (int ranks : {2, 3}) {
        std::string name = "d" + std::to_string(ranks);
        kdtest::Run d = run_shell(mpirun(ranks, "distill " + fx.base(name) + distill));
        INFO(d.out);
        REQUIRE(d.exit_code == 0);
        require_same_run(fx.runs + "/d1", fx.runs + "/" + name);
    }
}

TEST_CASE("a run stopped on 2 ranks resumes on 3 ranks or one process to the uninterrupted weights", "[mpi]")
{
    kdtest::SmokeRuns fx;
    REQUIRE(kdtest::run_kdtrain("train " + fx.base("whole") + kSharded) == 0);
    for (const char *name : {"to3", "to1"})
        REQUIRE(run_shell(mpirun(2, "train " + fx.base(name) + kSharded + " --stop-after 2")).exit_code == 0);
    REQUIRE(run_shell(mpirun(3, "train --quiet --resume " + fx.runs + "/to3")).exit_code == 0);
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + fx.runs + "/to1") == 0);
    require_same_run(fx.runs + "/whole", fx.runs + "/to3");
    require_same_run(fx.runs + "/whole", fx.runs + "/to1");
}

TEST_CASE("ranks started with different configs or data stop at the start naming the difference", "[mpi]")
{
    kdtest::SmokeRuns fx;
    std::string other = fx.dir + "/other.h5";
    kdtest::write_cluster_dataset(other, 500, 200, 16, 4, 99); // same shape, other rows
    std::string config = std::string(MPIEXEC) + " --oversubscribe -np 1 " + KDTRAIN_BINARY + " train " + fx.base("cfg") + kSharded + " : -np 1 " +
                         KDTRAIN_BINARY + " train " + fx.base("cfg") + kSharded + " --set train.lr=0.02";
    kdtest::Run run = run_shell(config);
    INFO(run.out);
    REQUIRE(run.exit_code == 2);
    REQUIRE(run.out.find("kdtrain train (rank 0 of 2): rank 1 of 2 has another config than rank 0: `train.lr = 0.02` "
                         "where rank 0 has `train.lr = 0.01`") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/cfg"));
    // One config text, data.path relative: the ranks start in two folders holding two
    // files of that name (as two machines would), one with other rows.
    for (const char *sub : {"/a", "/b"}) REQUIRE(mkdir((fx.dir + sub).c_str(), 0755) == 0);
    kdtest::write_cluster_dataset(fx.dir + "/a/clusters.h5", 500, 200, 16, 4, 3);
    kdtest::write_cluster_dataset(fx.dir + "/b/clusters.h5", 500, 200, 16, 4, 99);
    std::string args = " train -c " + kSmoke + " --quiet --set data.path=clusters.h5 --set run.dir=" + fx.runs +
                       " --set run.name=data" + kSharded;
    run = run_shell(std::string(MPIEXEC) + " --oversubscribe -np 1 --wdir " + fx.dir + "/a " + KDTRAIN_BINARY + args + " : -np 1 --wdir " +
                    fx.dir + "/b " + KDTRAIN_BINARY + args);
    INFO(run.out);
    REQUIRE(run.exit_code != 0);
    REQUIRE(run.out.find("rank 1 of 2 read other data than rank 0 from clusters.h5 (shapes, labels or features differ); "
                         "every rank needs the same data file") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/data"));
    // A shard count the ranks do not divide.
    run = run_shell(mpirun(2, "train " + fx.base("odd") + " --set train.shards=3"));
    REQUIRE(run.exit_code == 2);
    REQUIRE(run.out.find("train.shards: expected a multiple of the 2 ranks the job runs on") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(fx.runs + "/odd"));
}

TEST_CASE("commands that run as one process refuse to start as several", "[mpi]")
{
    kdtest::SmokeRuns fx;
    kdtest::Run run = run_shell(mpirun(2, "eval --model " + fx.runs + "/none/model.h5"));
    REQUIRE(run.exit_code != 0);
    REQUIRE(run.out.find("kdtrain eval: started as one of 2 processes by an MPI launcher, but eval runs as one process") !=
            std::string::npos);
}

namespace {

// Starts `command` in the background (its own process group); returns the pid.
pid_t start(const std::string &command, const std::string &output)
{
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", (command + " > " + output + " 2>&1").c_str(), (char *)nullptr);
        _exit(127);
    }
    return pid;
}

// Waits up to `seconds` for pid; its exit status, or -1 when it was still running
// (then the whole group is killed).
int finish_within(pid_t pid, double seconds)
{
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    int status = 0;
    while (std::chrono::steady_clock::now() < end) {
        if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

// The pids of the kdtrain processes (the ranks) training run folder `name` of this
// test's own runs folder.
std::vector<pid_t> ranks_of(const kdtest::SmokeRuns &fx, const std::string &name)
{
    std::vector<pid_t> pids;
    DIR *proc = opendir("/proc");
    REQUIRE(proc != nullptr);
    while (struct dirent *e = readdir(proc)) {
        char *end;
        long pid = std::strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        std::string comm = kdtest::read_text("/proc/" + std::string(e->d_name) + "/comm");
        std::string cmdline = kdtest::read_text("/proc/" + std::string(e->d_name) + "/cmdline");
        for (char &c : cmdline)
            if (c == '\0') c = ' ';
        if (comm == "kdtrain\n" && cmdline.find("run.dir=" + fx.runs + " --set run.name=" + name + " ") != std::string::npos)
            pids.push_back((pid_t)pid);
    }
    closedir(proc);
    return pids;
}

void wait_for_file(const std::string &path, double seconds)
{
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!kdtest::file_exists(path) && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(kdtest::file_exists(path));
}

// A run long enough to be caught in the middle: 40 epochs of a wide model.
const std::string kLong = " --set train.shards=2 --set model.layers=16,1024,1024,4 --set train.epochs=40 --set train.threads=1";

} // namespace

TEST_CASE("a killed rank ends the job within seconds, the checkpoint stays whole and a resume finishes the run", "[mpi][faults]")
{
    kdtest::SmokeRuns fx;
    std::string out = fx.dir + "/kill.txt";
    pid_t job = start(mpirun(2, "train " + fx.base("kill") + kLong), out);
    wait_for_file(fx.runs + "/kill/model.h5", 120);
    std::vector<pid_t> ranks = ranks_of(fx, "kill");
    REQUIRE(ranks.size() == 2);
    kill(ranks.back(), SIGKILL);
    int status = finish_within(job, 60); // the launcher notices and ends the other rank
    std::string said = kdtest::read_text(out);
    INFO(said);
    REQUIRE(status != -1);
    REQUIRE(status != 0);
    REQUIRE(said.find("stopped by the launcher") != std::string::npos);
    // The checkpoint is a whole file from some finished epoch, and a resume ends the run.
    std::string info;
    REQUIRE(kdtest::run_kdtrain("info " + fx.runs + "/kill/model.h5", &info) == 0);
    REQUIRE(info.find("unfinished: --resume continues it") != std::string::npos);
    REQUIRE(kdtest::leftover_temporaries(fx.runs + "/kill").empty());
    kdtest::Run resumed = run_shell(mpirun(2, "train --quiet --resume " + fx.runs + "/kill"));
    INFO(resumed.out);
    REQUIRE(resumed.exit_code == 0);
    REQUIRE(kdtest::file_exists(fx.runs + "/kill/summary.json"));
}

TEST_CASE("a stalled rank makes the others stop after KDTRAIN_MPI_TIMEOUT with an error naming the wait", "[mpi][faults]")
{
    kdtest::SmokeRuns fx;
    std::string out = fx.dir + "/stall.txt";
    pid_t job = start("KDTRAIN_MPI_TIMEOUT=5 " + std::string(MPIEXEC) + " -x KDTRAIN_MPI_TIMEOUT --oversubscribe -np 2 " + KDTRAIN_BINARY +
                          " train " + fx.base("stall") + kLong,
                      out);
    wait_for_file(fx.runs + "/stall/model.h5", 120);
    std::vector<pid_t> ranks = ranks_of(fx, "stall");
    REQUIRE(ranks.size() == 2);
    kill(ranks.back(), SIGSTOP);
    int status = finish_within(job, 60);
    for (pid_t r : ranks) kill(r, SIGKILL);
    std::string said = kdtest::read_text(out);
    INFO(said);
    REQUIRE(status != -1);
    REQUIRE(status != 0);
    // the all-to-all or the gather after it, whichever the stop caught
    REQUIRE(said.find("no answer from the other ranks in the gradients' exchange") != std::string::npos);
    REQUIRE(said.find(" for 5 s (a rank died, stalled or failed alone)") != std::string::npos);
    std::string info;
    REQUIRE(kdtest::run_kdtrain("info " + fx.runs + "/stall/model.h5", &info) == 0);
}

TEST_CASE("a sweep over 2 and 3 ranks writes the report a serial sweep writes", "[mpi][sweep]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5";
    kdtest::write_cluster_dataset(data, 500, 100, 16, 4, 6);
    for (const char *name : {"serial", "two", "three"})
        std::ofstream(dir + "/" + name + ".ini")
            << "[pipeline]\ntitle = Tiny sweep\ndata = " << data << "\nruns = " << dir << "/" << name << "/runs\nout = " << dir
            << "/" << name << "/out\nseeds = 1, 2\nthreads = 1\nteacher = " << kSmoke << " model.layers=16,64,4\n\n"
            << "[regime.w]\nrun.narrow = train " << kSmoke << " model.layers=16,4,4 train.temperature_every=1\n"
            << "run.wide = train " << kSmoke << " model.layers=16,64,4 model.dropout=0 train.temperature_every=1 train.epochs=6\n"
            << "run.kd = distill " << kSmoke << " model.layers=16,8,4 train.temperature_every=1\n";
    REQUIRE(kdtest::run_kdtrain("sweep --quiet -c " + dir + "/serial.ini") == 0);
    kdtest::Run two = run_shell(mpirun(2, "sweep --quiet -c " + dir + "/two.ini"));
    INFO(two.out);
    REQUIRE(two.exit_code == 0);
    REQUIRE(two.out.find("[rank 1, run ") != std::string::npos); // rank 1 trained some of the runs
    kdtest::Run three = run_shell(mpirun(3, "sweep --quiet -c " + dir + "/three.ini"));
    INFO(three.out);
    REQUIRE(three.exit_code == 0);
    auto report = [&](const std::string &name) {
        std::string md = kdtest::read_text(dir + "/" + name + "/out/summary.md");
        md = md.substr(md.find('\n', md.find("Produced by"))); // the line with the date and the folders
        for (size_t at; (at = md.find(dir + "/" + name)) != std::string::npos;) md.replace(at, dir.size() + 1 + name.size(), "DIR");
        return md;
    };
    for (const char *name : {"two", "three"}) {
        INFO(name);
        REQUIRE(kdtest::read_text(dir + "/serial/out/sweep.csv") == kdtest::read_text(dir + "/" + name + "/out/sweep.csv"));
        REQUIRE(report("serial") == report(name));
        for (const char *plot : {"/out/temperature.svg", "/out/val_nll.svg", "/out/gap.svg"})
            REQUIRE(kdtest::read_text(dir + "/serial" + plot) == kdtest::read_text(dir + "/" + name + plot));
    }
}

TEST_CASE("kdtrain run over 2 ranks trains the teachers first, then every run, and reports as one process does", "[mpi][pipeline]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/clusters.h5";
    kdtest::write_cluster_dataset(data, 500, 100, 16, 4, 6);
    for (const char *name : {"serial", "two"})
        std::ofstream(dir + "/" + name + ".ini")
            << "[pipeline]\ndata = " << data << "\nruns = " << dir << "/" << name << "/runs\nout = " << dir << "/" << name
            << "/out\nseeds = 1, 2\nthreads = 1\nteacher = " << kSmoke << " model.layers=16,64,4\n\n"
            << "[regime.a]\nteacher = " << kSmoke << " model.layers=16,32,4\nrun.alone = train " << kSmoke
            << " model.layers=16,8,4\nrun.kd = distill " << kSmoke << " model.layers=16,8,4\ncompare = kd - alone\n";
    REQUIRE(kdtest::run_kdtrain("run --quiet -c " + dir + "/serial.ini") == 0);
    kdtest::Run two = run_shell(mpirun(2, "run --quiet -c " + dir + "/two.ini"));
    INFO(two.out);
    REQUIRE(two.exit_code == 0);
    // Both teachers in the first stage, the runs (distilled from a-teacher) in the second.
    REQUIRE(two.out.find("of 2] training " + dir + "/two/runs/a-teacher") != std::string::npos);
    REQUIRE(two.out.find("of 4] distilling " + dir + "/two/runs/a-kd-s1") != std::string::npos);
    // summary.csv: every column but the epoch time and the run folder is the same.
    auto rows = [&](const std::string &name) {
        std::istringstream in(kdtest::read_text(dir + "/" + name + "/out/summary.csv"));
        std::string line, out;
        while (std::getline(in, line)) {
            size_t cut = line.rfind(',');
            cut = line.rfind(',', cut - 1);
            out += line.substr(0, cut) + "\n";
        }
        return out;
    };
    std::string serial = rows("serial");
    REQUIRE(std::count(serial.begin(), serial.end(), '\n') >= 7);
    REQUIRE(serial == rows("two"));
    REQUIRE(kdtest::model_parameters(dir + "/serial/runs/a-kd-s2/model.h5") ==
            kdtest::model_parameters(dir + "/two/runs/a-kd-s2/model.h5"));
}
