// Faults as tests: a full disk (a small tmpfs, when the suite runs as root) during
// train, resume, calibrate, eval and prepare; kill -9 at 20 random points of a tiny
// training and of a calibration, each resumed or retried, ending bit-identical to
// an uninterrupted run; and a second writer of a run folder refused.
#include "support.h"

#include <catch2/catch.hpp>
#include <hdf5.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <sys/wait.h>

namespace {

namespace fs = std::filesystem;

const std::string kSmoke = std::string(KD_SOURCE_DIR) + "/configs/smoke.ini";

std::string read_bytes(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<double> param(const std::string &file, const std::string &name)
{
    std::vector<size_t> dims;
    return kdtest::h5_read_doubles(file, name, dims);
}

bool same_model(const std::string &a, const std::string &b)
{
    for (const char *name : {"/model/layer1/W", "/model/layer1/b", "/model/layer2/W", "/model/layer2/b"})
        if (param(a, name) != param(b, name)) return false;
    return true;
}

// Every file under dir whose name holds ".tmp-" (a temporary left behind).
std::vector<std::string> temporaries(const std::string &dir)
{
    std::vector<std::string> found;
    for (const auto &e : fs::recursive_directory_iterator(dir))
        if (e.path().filename().string().find(".tmp-") != std::string::npos) found.push_back(e.path().string());
    return found;
}

// A tmpfs of `kib` KiB mounted on a new folder while this object lives. Only root
// may mount; `ok` says whether it worked.
struct SmallDisk {
    std::string dir;
    bool ok = false;
    explicit SmallDisk(int kib) : dir(kdtest::temp_dir())
    {
        if (geteuid() != 0) return;
        ok = std::system(("mount -t tmpfs -o size=" + std::to_string(kib) + "k tmpfs " + dir + " 2>/dev/null").c_str()) == 0;
    }
    void resize(int kib) const
    {
        REQUIRE(std::system(("mount -o remount,size=" + std::to_string(kib) + "k " + dir).c_str()) == 0);
    }
    ~SmallDisk()
    {
        if (ok) (void)std::system(("umount " + dir).c_str());
    }
};

#define REQUIRE_SMALL_DISK(disk)                                                                                       \
    if (!(disk).ok) {                                                                                                  \
        WARN("skipped: mounting a small tmpfs needs root (this suite runs as uid " << geteuid() << ")");              \
        return;                                                                                                        \
    }

// 16 features, 4 classes: 2000 training rows (the last 200 validation), 400 test rows.
std::string write_data(const std::string &dir)
{
    std::string data = dir + "/data.h5";
    kdtest::write_cluster_dataset(data, 2000, 400, 16, 4, 11);
    return data;
}

std::string train_args(const std::string &data, const std::string &runs, const std::string &name)
{
    return "train -c " + kSmoke + " --quiet --set data.path=" + data + " --set run.dir=" + runs + " --set run.name=" + name +
           " --set data.val_from_train=200 --set model.layers=16,256,4 --set train.checkpoints=every";
}

// Starts `kdtrain ARGS` and sends it SIGKILL after `seconds`; true when it was killed,
// false when it had already finished.
bool kill_after(const std::string &args, double seconds)
{
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::string cmd = "exec " + std::string(KDTRAIN_BINARY) + " " + args + " >/dev/null 2>&1";
        execl("/bin/sh", "sh", "-c", cmd.c_str(), (char *)nullptr);
        _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    int status = 0;
    bool running = waitpid(pid, &status, WNOHANG) == 0;
    if (running) kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return running;
}

} // namespace

TEST_CASE("a full disk during training: exit 1 with the reason, checkpoints whole, and a resume ends as if nothing happened",
          "[faults]")
{
    std::string dir = kdtest::temp_dir(), data = write_data(dir);
    REQUIRE(kdtest::run_kdtrain(train_args(data, dir + "/runs", "whole") + " --set train.epochs=6") == 0);
    SmallDisk disk(300); // a 16-256-4 checkpoint with AdamW state is about 60 KB: full after a few
    REQUIRE_SMALL_DISK(disk);
    kdtest::Run run = kdtest::run_binary(train_args(data, disk.dir, "r") + " --set train.epochs=6");
    INFO(run.out);
    REQUIRE(run.exit_code == 1);
    REQUIRE(run.out.find("No space left on device") != std::string::npos);
    REQUIRE(temporaries(disk.dir).empty());
    for (const auto &e : fs::directory_iterator(disk.dir + "/r"))
        if (e.path().extension() == ".h5") // every checkpoint on disk is whole
            REQUIRE(kdtest::run_kdtrain("info " + e.path().string()) == 0);

    // Resuming on the still-full disk fails the same way and changes nothing...
    std::string before = kdtest::file_exists(disk.dir + "/r/model.h5") ? read_bytes(disk.dir + "/r/model.h5") : "";
    kdtest::Run again = kdtest::run_binary("train --quiet --resume " + disk.dir + "/r");
    INFO(again.out);
    REQUIRE(again.exit_code == 1);
    REQUIRE(temporaries(disk.dir).empty());
    if (!before.empty()) REQUIRE(read_bytes(disk.dir + "/r/model.h5") == before);
    // ...and with room again it ends with the uninterrupted run's weights, bit for bit.
    disk.resize(4096);
    kdtest::Run resumed = kdtest::run_binary("train --quiet --resume " + disk.dir + "/r");
    INFO(resumed.out);
    REQUIRE(resumed.exit_code == 0);
    REQUIRE(same_model(dir + "/runs/whole/model.h5", disk.dir + "/r/model.h5"));
}

TEST_CASE("a full disk during calibrate, eval and prepare: exit 1, the checkpoint unchanged, no file half-written",
          "[faults]")
{
    std::string dir = kdtest::temp_dir(), data = write_data(dir);
    REQUIRE(kdtest::run_kdtrain(train_args(data, dir + "/runs", "r") + " --set train.epochs=2") == 0);
    std::string model = dir + "/runs/r/model.h5";
    // A disk that holds the run's checkpoint and config and 8 KiB more: calibrate can
    // write neither its reports beside them nor the new checkpoint.
    SmallDisk disk((int)(fs::file_size(model) / 1024) + 12);
    REQUIRE_SMALL_DISK(disk);
    fs::create_directory(disk.dir + "/r");
    fs::copy(model, disk.dir + "/r/model.h5");
    fs::copy(dir + "/runs/r/config.ini", disk.dir + "/r/config.ini");
    std::string before = read_bytes(disk.dir + "/r/model.h5");
    kdtest::Run cal = kdtest::run_binary("calibrate --model " + disk.dir + "/r --data " + data);
    INFO(cal.out);
    REQUIRE(cal.exit_code == 1);
    REQUIRE(cal.out.find("No space left on device") != std::string::npos);
    REQUIRE(read_bytes(disk.dir + "/r/model.h5") == before);
    REQUIRE_FALSE(kdtest::file_exists(disk.dir + "/r/calibration.json"));
    REQUIRE_FALSE(kdtest::file_exists(disk.dir + "/r/calibration.md"));
    REQUIRE(temporaries(disk.dir).empty());

    // eval's report and logits, and prepare's output, onto the full disk.
    kdtest::Run ev = kdtest::run_binary("eval --model " + model + " --data " + data + " --out " + disk.dir +
                                        "/e.json --logits " + disk.dir + "/z.h5");
    INFO(ev.out);
    REQUIRE(ev.exit_code == 1);
    REQUIRE_FALSE(kdtest::file_exists(disk.dir + "/e.json"));
    REQUIRE_FALSE(kdtest::file_exists(disk.dir + "/z.h5"));
    REQUIRE(temporaries(disk.dir).empty());

    // prepare: 50 random (incompressible) training images, more than the disk has left.
    std::string src = dir + "/src";
    fs::create_directory(src);
    auto be32 = [](uint32_t v) { return std::string{(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v}; };
    auto write = [](const std::string &path, const std::string &bytes) { std::ofstream(path, std::ios::binary) << bytes; };
    std::mt19937 gen(3);
    for (auto [name, n] : {std::pair<const char *, uint32_t>{"train", 50}, {"t10k", 10}}) {
        std::string pixels((size_t)n * 784, '\0'), labels(n, '\0');
        for (char &p : pixels) p = (char)(gen() & 0xff);
        for (uint32_t i = 0; i < n; i++) labels[i] = (char)(i % 10);
        write(src + "/" + name + "-images-idx3-ubyte.gz", be32(0x803) + be32(n) + be32(28) + be32(28) + pixels);
        write(src + "/" + name + "-labels-idx1-ubyte.gz", be32(0x801) + be32(n) + labels);
    }
    kdtest::Run prep = kdtest::run_binary("prepare fashion-mnist --src " + src + " --val 5 --out " + disk.dir + "/fm.h5");
    INFO(prep.out);
    REQUIRE(prep.exit_code == 1);
    REQUIRE(prep.out.find("No space left on device") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(disk.dir + "/fm.h5"));
    REQUIRE(temporaries(disk.dir).empty());
}

TEST_CASE("kill -9 at 20 random points of a training: each resumed run ends bit-identical to an uninterrupted one",
          "[faults]")
{
    std::string dir = kdtest::temp_dir(), data = write_data(dir);
    const std::string epochs = " --set train.epochs=8";
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(kdtest::run_kdtrain(train_args(data, dir + "/runs", "whole") + epochs) == 0);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::mt19937_64 gen(2026);
    std::uniform_real_distribution<double> fraction(0.0, 1.0);
    // 20 kills at random moments: a run that finished first still has its result
    // checked, and narrows the window (the machine may be faster than at the start).
    double window = seconds;
    int killed = 0;
    for (int k = 0; killed < 20 && k < 80; k++) {
        std::string name = "k" + std::to_string(k), run = dir + "/runs/" + name;
        double at = fraction(gen) * window;
        if (kill_after(train_args(data, dir + "/runs", name) + epochs, at))
            killed++;
        else
            window *= 0.8;
        // Retry as a user would: resume the folder if it holds a config, else start
        // again (a kill between mkdir and config.ini leaves a folder with no run in it).
        bool resumable = kdtest::file_exists(run + "/config.ini");
        if (!resumable) fs::remove_all(run);
        int rc = resumable ? kdtest::run_kdtrain("train --quiet --resume " + run)
                           : kdtest::run_kdtrain(train_args(data, dir + "/runs", name) + epochs);
        INFO("kill " << k << " after " << at << " s of " << seconds << " s");
        REQUIRE(rc == 0);
        REQUIRE(same_model(dir + "/runs/whole/model.h5", run + "/model.h5"));
        REQUIRE(temporaries(run).empty());
    }
    REQUIRE(killed == 20);
}

TEST_CASE("kill -9 at 20 random points of a calibration: the checkpoint and reports agree, and a retry matches", "[faults]")
{
    std::string dir = kdtest::temp_dir(), data = dir + "/data.h5";
    // Many validation rows make calibrate take long enough to be killed inside it.
    kdtest::write_cluster_dataset(data, 22000, 400, 16, 4, 11);
    REQUIRE(kdtest::run_kdtrain(train_args(data, dir + "/runs", "r") + " --set data.val_from_train=20000"
                                " --set train.epochs=1 --set train.checkpoints=last_best") == 0);
    fs::copy(dir + "/runs/r", dir + "/reference");
    const std::string calibrate = "calibrate --bootstrap 100 --model ";
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(kdtest::run_kdtrain(calibrate + dir + "/reference") == 0);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string calibrated = read_bytes(dir + "/reference/model.h5");
    std::string original = read_bytes(dir + "/runs/r/model.h5");
    std::mt19937_64 gen(7);
    std::uniform_real_distribution<double> fraction(0.0, 1.0);
    double window = seconds;
    int killed = 0;
    for (int k = 0; killed < 20 && k < 80; k++) {
        std::string run = dir + "/c" + std::to_string(k);
        fs::copy(dir + "/runs/r", run);
        double at = fraction(gen) * window;
        if (kill_after(calibrate + run, at))
            killed++;
        else
            window *= 0.8;
        INFO("kill " << k << " after " << at << " s of " << seconds << " s");
        // Whatever the moment, the checkpoint is the old one or the calibrated one.
        std::string now = read_bytes(run + "/model.h5");
        REQUIRE((now == original || now == calibrated));
        // A retry (its stale temporaries are not in the way) gives the same file.
        REQUIRE(kdtest::run_kdtrain(calibrate + run) == 0);
        REQUIRE(read_bytes(run + "/model.h5") == calibrated);
        REQUIRE(read_bytes(run + "/calibration.json").find("\"temperature\"") != std::string::npos);
    }
    REQUIRE(killed == 20);
}

TEST_CASE("one writer per run folder: a second train --resume or a calibrate is refused while a training runs",
          "[faults]")
{
    std::string dir = kdtest::temp_dir(), data = write_data(dir);
    // A long run stopped after one epoch, resumed in the background.
    REQUIRE(kdtest::run_kdtrain(train_args(data, dir + "/runs", "long") + " --set train.epochs=400 --stop-after 1") == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::string cmd = std::string(KDTRAIN_BINARY) + " train --quiet --resume " + dir + "/runs/long >/dev/null 2>&1";
        execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char *)nullptr);
        _exit(127);
    }
    // Wait until it holds the lock (its train.log says it resumed).
    for (int i = 0; i < 200 && read_bytes(dir + "/runs/long/train.log").find("resuming") == std::string::npos; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    kdtest::Run second = kdtest::run_binary("train --quiet --resume " + dir + "/runs/long");
    kdtest::Run cal = kdtest::run_binary("calibrate --model " + dir + "/runs/long");
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    INFO(second.out << cal.out);
    REQUIRE(second.exit_code == 1);
    REQUIRE(second.out.find(dir + "/runs/long: another kdtrain is writing this run folder") != std::string::npos);
    REQUIRE(second.out.find("(pid " + std::to_string(pid)) != std::string::npos);
    REQUIRE(cal.exit_code == 1);
    REQUIRE(cal.out.find("another kdtrain is writing this run folder") != std::string::npos);
    // The kill released the lock: the folder resumes again.
    REQUIRE(kdtest::run_kdtrain("train --quiet --resume " + dir + "/runs/long --stop-after 3") == 0);
}

TEST_CASE("a model too large for the memory there is: exit 1 with a message, no abort and no run folder", "[faults]")
{
#if defined(__SANITIZE_ADDRESS__)
    WARN("skipped: AddressSanitizer reserves more address space than the ulimit this test sets");
    return;
#endif
    std::string dir = kdtest::temp_dir(), data = dir + "/data.h5";
    kdtest::write_cluster_dataset(data, 40, 10, 4, 3, 1);
    // 8 million hidden units: the parameters fit in 2 GB of address space, a step does not.
    std::string cmd = "sh -c 'ulimit -v 2000000; exec " + std::string(KDTRAIN_BINARY) + " train -c " + kSmoke +
                      " --quiet --set data.path=" + data + " --set run.dir=" + dir + "/runs --set data.val_from_train=10"
                      " --set model.layers=4,8000000,3 --set train.epochs=1' 2>&1";
    FILE *pipe = popen(cmd.c_str(), "r");
    REQUIRE(pipe);
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    int status = pclose(pipe);
    INFO(out);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 1);
    REQUIRE(out.find("out of memory") != std::string::npos);
    REQUIRE_FALSE(kdtest::file_exists(dir + "/runs/smoke"));
}
