// Checkpoints: a round trip restores every bit; a different architecture, a
// damaged or truncated file, a missing object, a wrong type and non-finite values
// are errors naming the file and object; a failed write leaves nothing behind
// and never touches an existing checkpoint.
#include "support.h"

extern "C" {
#include "io/checkpoint.h"
#include "io/h5util.h"
}

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

kd_mlp_config make_config(std::initializer_list<int> sizes)
{
    kd_mlp_config c;
    std::memset(&c, 0, sizeof c);
    c.n_layers = (int)sizes.size() - 1;
    int k = 0;
    for (int s : sizes) c.sizes[k++] = s;
    c.dropout = 0.25f;
    c.input_dropout = 0.125f;
    c.init = KD_INIT_GLOROT;
    return c;
}

struct Model {
    kd_mlp m;
    Model(const kd_mlp_config &config, uint64_t seed)
    {
        kd_error err;
        REQUIRE(kd_mlp_create(&m, &config, &err) == KD_OK);
        kd_mlp_init(&m, seed);
        for (int k = 0; k < config.n_layers; k++) // non-zero biases, so they are tested too
            for (int j = 0; j < m.bias[k].cols; j++) m.bias[k].data[j] = 0.01f * (float)(j + k + 1);
    }
    ~Model() { kd_mlp_free(&m); }
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;
    std::vector<float> params() const { return std::vector<float>(m.params, m.params + m.n_params); }
};

const char *const kConfigText = "[model]\nsizes = 12-9-7-4\ndropout = 0.25\n\n[train]\nlr = 0.001\n";

// An AdamW-like state, a training position whose RNG words use all 64 bits, and
// a calibration.
struct Run {
    Model model{make_config({12, 9, 7, 4}), 7};
    std::vector<float> m, v;
    kd_optim_state optim;
    kd_train_state train;
    kd_calibration calib;

    Run()
    {
        m = kdtest::random_normal(model.m.n_params, 0.1f, 11);
        v = kdtest::random_uniform(model.m.n_params, 0.0f, 1e-3f, 12);
        std::memset(&optim, 0, sizeof optim);
        std::strcpy(optim.kind, "adamw");
        optim.step = 123457;
        optim.n_slots = 2;
        std::strcpy(optim.slot_names[0], "m");
        std::strcpy(optim.slot_names[1], "v");
        optim.slots[0] = m.data();
        optim.slots[1] = v.data();
        const char *names[] = {"lr", "beta1", "beta2", "eps", "weight_decay"};
        const double values[] = {1e-3, 0.9, 0.999, 1e-8, 0.1 / 3.0};
        optim.n_hyper = 5;
        for (int h = 0; h < 5; h++) {
            std::strcpy(optim.hyper_names[h], names[h]);
            optim.hyper[h] = values[h];
        }
        std::memset(&train, 0, sizeof train);
        train.epoch = 17;
        train.step = 123457;
        train.seed = 0xF0E1D2C3B4A59687ull;
        kd_rng_seed(&train.rng, train.seed);
        for (int i = 0; i < 1000; i++) kd_rng_next(&train.rng);
        train.config_text = kConfigText;
        std::memset(&calib, 0, sizeof calib);
        calib.present = true;
        calib.temperature = 1.0 / 0.6180339887498949;
        std::strcpy(calib.split, "val");
        calib.nll_before = 0.4142135623730951;
        calib.nll_after = 0.3183098861837907;
    }

    int save(const std::string &path, kd_error *err)
    {
        return kd_checkpoint_save(path.c_str(), &model.m, &optim, &train, &calib, err);
    }
};

std::string read_bytes(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string &path, const std::string &bytes)
{
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), (std::streamsize)bytes.size());
    REQUIRE(out.good());
}

bool contains(const char *message, const std::string &part)
{
    return std::string(message).find(part) != std::string::npos;
}

// Edits a saved file directly with HDF5, to make the damage a test describes.
struct Editor {
    hid_t file;
    explicit Editor(const std::string &path) : file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT))
    {
        REQUIRE(file >= 0);
    }
    ~Editor() { H5Fclose(file); }
    void remove(const char *name) { REQUIRE(H5Ldelete(file, name, H5P_DEFAULT) >= 0); }
    void replace(const char *name, hid_t type, std::vector<hsize_t> dims, const void *data)
    {
        remove(name);
        kd_error err;
        REQUIRE(kd_h5_write_dataset(file, name, type, type, (int)dims.size(), dims.data(), data, nullptr,
                                    -1, false, "edit", &err) == KD_OK);
    }
};

int load_model_only(const std::string &path, kd_mlp *model, kd_error *err)
{
    return kd_checkpoint_load(path.c_str(), model, nullptr, nullptr, nullptr, 0, nullptr, err);
}

} // namespace

TEST_CASE("a checkpoint round trip restores parameters, optimizer, RNG, position, config and "
          "calibration bit for bit",
          "[checkpoint]")
{
    const std::string path = kdtest::temp_dir() + "/model.h5";
    Run run;
    bool top_bit = false, beyond_double = false; // int64 or double storage would lose these
    for (uint64_t w : run.train.rng.s) {
        top_bit = top_bit || (w >> 63) != 0;
        beyond_double = beyond_double || (uint64_t)(double)w != w;
    }
    REQUIRE(top_bit);
    REQUIRE(beyond_double);
    REQUIRE((run.train.seed >> 63) != 0);
    kd_error err;
    REQUIRE(run.save(path, &err) == KD_OK);

    Model loaded(make_config({12, 9, 7, 4}), 99);
    std::vector<float> m(loaded.m.n_params), v(loaded.m.n_params);
    kd_optim_state optim;
    std::memset(&optim, 0, sizeof optim);
    std::strcpy(optim.kind, "adamw");
    optim.slots[0] = m.data();
    optim.slots[1] = v.data();
    kd_train_state train;
    kd_calibration calib;
    char config[256];
    INFO(err.message);
    REQUIRE(kd_checkpoint_load(path.c_str(), &loaded.m, &optim, &train, config, sizeof config, &calib,
                               &err) == KD_OK);

    size_t bytes = run.model.m.n_params * sizeof(float);
    CHECK(std::memcmp(loaded.m.params, run.model.m.params, bytes) == 0);
    CHECK(std::memcmp(m.data(), run.m.data(), bytes) == 0);
    CHECK(std::memcmp(v.data(), run.v.data(), bytes) == 0);
    CHECK(optim.slots[0] == m.data());
    CHECK(std::string(optim.kind) == "adamw");
    CHECK(optim.step == 123457);
    REQUIRE(optim.n_slots == 2);
    CHECK(std::string(optim.slot_names[0]) == "m");
    CHECK(std::string(optim.slot_names[1]) == "v");
    REQUIRE(optim.n_hyper == 5);
    for (int h = 0; h < run.optim.n_hyper; h++) { // they come back in name order
        int found = -1;
        for (int g = 0; g < optim.n_hyper; g++)
            if (std::string(optim.hyper_names[g]) == run.optim.hyper_names[h]) found = g;
        REQUIRE(found >= 0);
        CHECK(std::memcmp(&optim.hyper[found], &run.optim.hyper[h], sizeof(double)) == 0);
    }
    CHECK(std::memcmp(train.rng.s, run.train.rng.s, sizeof train.rng.s) == 0);
    CHECK(train.seed == run.train.seed);
    CHECK(train.epoch == 17);
    CHECK(train.step == 123457);
    CHECK(train.config_text == config);
    CHECK(std::string(config) == kConfigText);
    CHECK(calib.present);
    CHECK(std::memcmp(&calib.temperature, &run.calib.temperature, sizeof(double)) == 0);
    CHECK(std::memcmp(&calib.nll_before, &run.calib.nll_before, sizeof(double)) == 0);
    CHECK(std::memcmp(&calib.nll_after, &run.calib.nll_after, sizeof(double)) == 0);
    CHECK(std::string(calib.split) == "val");
}

TEST_CASE("read_config returns the saved architecture", "[checkpoint]")
{
    const std::string path = kdtest::temp_dir() + "/model.h5";
    Run run;
    kd_error err;
    REQUIRE(run.save(path, &err) == KD_OK);
    kd_mlp_config config;
    REQUIRE(kd_checkpoint_read_config(path.c_str(), &config, &err) == KD_OK);
    const kd_mlp_config &want = run.model.m.config;
    CHECK(config.n_layers == want.n_layers);
    for (int k = 0; k <= want.n_layers; k++) CHECK(config.sizes[k] == want.sizes[k]);
    CHECK(config.dropout == want.dropout);
    CHECK(config.input_dropout == want.input_dropout);
    CHECK(config.init == want.init);
}

TEST_CASE("a model-only checkpoint loads for evaluation and reports no calibration", "[checkpoint]")
{
    const std::string path = kdtest::temp_dir() + "/model.h5";
    Model model(make_config({12, 9, 7, 4}), 3);
    kd_error err;
    REQUIRE(kd_checkpoint_save(path.c_str(), &model.m, nullptr, nullptr, nullptr, &err) == KD_OK);
    Model loaded(make_config({12, 9, 7, 4}), 4);
    kd_calibration calib;
    calib.present = true;
    REQUIRE(kd_checkpoint_load(path.c_str(), &loaded.m, nullptr, nullptr, nullptr, 0, &calib, &err) == KD_OK);
    CHECK(loaded.params() == model.params());
    CHECK_FALSE(calib.present);

    kd_train_state train;
    REQUIRE(kd_checkpoint_load(path.c_str(), &loaded.m, nullptr, &train, nullptr, 0, nullptr, &err) ==
            KD_ERR_DATA);
    CHECK(contains(err.message, path + ": expected group /train, found none"));
}

TEST_CASE("loading into a different architecture names both and changes nothing", "[checkpoint]")
{
    const std::string path = kdtest::temp_dir() + "/model.h5";
    Run run;
    kd_error err;
    REQUIRE(run.save(path, &err) == KD_OK);
    Model other(make_config({12, 5, 4}), 5);
    std::vector<float> before = other.params();
    REQUIRE(load_model_only(path, &other.m, &err) == KD_ERR_DATA);
    INFO(err.message);
    CHECK(contains(err.message, path + ": checkpoint has 12-9-7-4, model is 12-5-4"));
    CHECK(other.params() == before);
}

TEST_CASE("a truncated checkpoint is an error saying so", "[checkpoint]")
{
    const std::string dir = kdtest::temp_dir();
    Run run;
    kd_error err;
    REQUIRE(run.save(dir + "/model.h5", &err) == KD_OK);
    std::string bytes = read_bytes(dir + "/model.h5");
    write_bytes(dir + "/half.h5", bytes.substr(0, bytes.size() / 2));
    Model model(make_config({12, 9, 7, 4}), 1);
    REQUIRE(load_model_only(dir + "/half.h5", &model.m, &err) == KD_ERR_DATA);
    INFO(err.message);
    CHECK(contains(err.message, dir + "/half.h5: cannot open as HDF5, the file is damaged or truncated"));
}

TEST_CASE("a missing file and a file that is not HDF5 are errors naming the file", "[checkpoint]")
{
    const std::string dir = kdtest::temp_dir();
    kd_mlp_config config;
    kd_error err;
    CHECK(kd_checkpoint_read_config((dir + "/none.h5").c_str(), &config, &err) == KD_ERR_IO);
    CHECK(contains(err.message, dir + "/none.h5: cannot open"));
    write_bytes(dir + "/text.h5", "[model]\nsizes = 1-2\n");
    CHECK(kd_checkpoint_read_config((dir + "/text.h5").c_str(), &config, &err) == KD_ERR_DATA);
    CHECK(contains(err.message, dir + "/text.h5: expected an HDF5 file"));
}

TEST_CASE("a missing dataset, a wrong shape, a wrong type or a NaN in the file is an error "
          "naming the object",
          "[checkpoint]")
{
    const std::string path = kdtest::temp_dir() + "/model.h5";
    const std::string pristine = path + ".orig";
    Run run;
    kd_error err;
    REQUIRE(run.save(path, &err) == KD_OK);
    write_bytes(pristine, read_bytes(path));
    Model model(make_config({12, 9, 7, 4}), 1);
    std::vector<float> before = model.params();
    std::string expected;
    SECTION("missing dataset")
    {
        Editor(path).remove("/model/layer2/b");
        expected = path + ":/model/layer2/b: expected a dataset, found none";
    }
    SECTION("wrong shape")
    {
        std::vector<float> w(9 * 8, 0.5f);
        Editor(path).replace("/model/layer2/W", H5T_NATIVE_FLOAT, {9, 8}, w.data());
        expected = path + ":/model/layer2/W: expected shape [9, 7], found [9, 8]";
    }
    SECTION("wrong type")
    {
        std::vector<int32_t> b(4, 1);
        Editor(path).replace("/model/layer3/b", H5T_NATIVE_INT32, {4}, b.data());
        expected = path + ":/model/layer3/b: expected float32 values, found integers";
    }
    SECTION("NaN")
    {
        std::vector<float> b(7, 0.0f);
        b[3] = std::numeric_limits<float>::quiet_NaN();
        Editor(path).replace("/model/layer2/b", H5T_NATIVE_FLOAT, {7}, b.data());
        expected = path + ":/model/layer2/b: element 3 is NaN";
    }
    SECTION("missing group")
    {
        Editor(path).remove("/model");
        expected = path + ": expected group /model, found none";
    }
    REQUIRE(load_model_only(path, &model.m, &err) == KD_ERR_DATA);
    INFO(err.message);
    CHECK(contains(err.message, expected));
    CHECK(model.params() == before);
}

TEST_CASE("a save into a missing directory fails and leaves nothing behind", "[checkpoint]")
{
    const std::string dir = kdtest::temp_dir();
    Run run;
    kd_error err;
    REQUIRE(run.save(dir + "/no/such/dir/model.h5", &err) == KD_ERR_IO);
    CHECK(contains(err.message, dir + "/no/such/dir/model.h5"));
    CHECK_FALSE(kdtest::file_exists(dir + "/no"));
    CHECK(kdtest::leftover_temporaries(dir).empty());
}

TEST_CASE("a save that fails after writing (the path is a directory) leaves no temporary",
          "[checkpoint]")
{
    const std::string dir = kdtest::temp_dir();
    const std::string path = dir + "/taken";
    REQUIRE(mkdir(path.c_str(), 0700) == 0);
    write_bytes(path + "/keep", "x"); // rename() cannot replace a non-empty directory
    Run run;
    kd_error err;
    REQUIRE(run.save(path, &err) == KD_ERR_IO);
    INFO(err.message);
    CHECK(contains(err.message, path + ": cannot rename into place"));
    CHECK(read_bytes(path + "/keep") == "x");
    CHECK(kdtest::leftover_temporaries(dir).empty());
}

TEST_CASE("non-finite parameters or optimizer state are refused and an existing checkpoint is "
          "untouched",
          "[checkpoint]")
{
    const std::string dir = kdtest::temp_dir();
    const std::string path = dir + "/model.h5";
    Run run;
    kd_error err;
    REQUIRE(run.save(path, &err) == KD_OK);
    const std::string before = read_bytes(path);
    std::string expected;
    SECTION("NaN parameter")
    {
        run.model.m.weight[1].data[5] = std::numeric_limits<float>::quiet_NaN();
        expected = path + ":/model/layer2/W: element 5 is NaN";
    }
    SECTION("Inf optimizer state")
    {
        run.v[run.v.size() - 1] = std::numeric_limits<float>::infinity();
        expected = path + ":/optimizer/v/layer3/b: element 3 is Inf";
    }
    REQUIRE(run.save(path, &err) == KD_ERR_DATA);
    INFO(err.message);
    CHECK(contains(err.message, expected));
    CHECK(read_bytes(path) == before);
    CHECK(kdtest::leftover_temporaries(dir).empty());
    CHECK(run.save(dir + "/fresh.h5", &err) == KD_ERR_DATA);
    CHECK_FALSE(kdtest::file_exists(dir + "/fresh.h5"));
}

TEST_CASE("write_calibration replaces only the calibration", "[checkpoint]")
{
    const std::string dir = kdtest::temp_dir();
    const std::string path = dir + "/model.h5";
    Run run;
    kd_error err;
    REQUIRE(run.save(path, &err) == KD_OK);

    kd_calibration fitted;
    std::memset(&fitted, 0, sizeof fitted);
    fitted.present = true;
    fitted.temperature = 2.718281828459045;
    std::strcpy(fitted.split, "holdout");
    fitted.nll_before = 0.75;
    fitted.nll_after = 0.5;
    REQUIRE(kd_checkpoint_write_calibration(path.c_str(), &fitted, &err) == KD_OK);
    CHECK(kdtest::leftover_temporaries(dir).empty());

    Model loaded(make_config({12, 9, 7, 4}), 2);
    std::vector<float> m(loaded.m.n_params), v(loaded.m.n_params);
    kd_optim_state optim;
    std::memset(&optim, 0, sizeof optim);
    optim.slots[0] = m.data();
    optim.slots[1] = v.data();
    kd_train_state train;
    kd_calibration calib;
    char config[256];
    REQUIRE(kd_checkpoint_load(path.c_str(), &loaded.m, &optim, &train, config, sizeof config, &calib,
                               &err) == KD_OK);
    CHECK(calib.present);
    CHECK(calib.temperature == fitted.temperature);
    CHECK(std::string(calib.split) == "holdout");
    CHECK(calib.nll_before == 0.75);
    CHECK(calib.nll_after == 0.5);
    size_t bytes = loaded.m.n_params * sizeof(float);
    CHECK(std::memcmp(loaded.m.params, run.model.m.params, bytes) == 0);
    CHECK(std::memcmp(m.data(), run.m.data(), bytes) == 0);
    CHECK(std::memcmp(v.data(), run.v.data(), bytes) == 0);
    CHECK(optim.n_hyper == 5);
    CHECK(std::memcmp(train.rng.s, run.train.rng.s, sizeof train.rng.s) == 0);
    CHECK(train.step == run.train.step);
    CHECK(std::string(config) == kConfigText);

    fitted.present = false; // removes the group
    REQUIRE(kd_checkpoint_write_calibration(path.c_str(), &fitted, &err) == KD_OK);
    REQUIRE(kd_checkpoint_load(path.c_str(), &loaded.m, nullptr, nullptr, nullptr, 0, &calib, &err) == KD_OK);
    CHECK_FALSE(calib.present);
}

TEST_CASE("write_calibration on a file that is not a checkpoint fails and leaves it untouched",
          "[checkpoint]")
{
    const std::string dir = kdtest::temp_dir();
    const std::string path = dir + "/other.h5";
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(f >= 0);
    H5Fclose(f);
    const std::string before = read_bytes(path);
    kd_calibration calib;
    std::memset(&calib, 0, sizeof calib);
    calib.present = true;
    calib.temperature = 1.5;
    kd_error err;
    REQUIRE(kd_checkpoint_write_calibration(path.c_str(), &calib, &err) == KD_ERR_DATA);
    CHECK(contains(err.message, path + ": expected group /model, found none"));
    CHECK(read_bytes(path) == before);
    CHECK(kdtest::leftover_temporaries(dir).empty());
}

TEST_CASE("an optimizer of another kind, missing slot buffers or a small config buffer are errors",
          "[checkpoint]")
{
    const std::string path = kdtest::temp_dir() + "/model.h5";
    Run run;
    kd_error err;
    REQUIRE(run.save(path, &err) == KD_OK);
    Model loaded(make_config({12, 9, 7, 4}), 2);
    std::vector<float> m(loaded.m.n_params);
    kd_optim_state optim;
    std::memset(&optim, 0, sizeof optim);
    optim.slots[0] = m.data();
    SECTION("another kind")
    {
        std::strcpy(optim.kind, "sgd");
        REQUIRE(kd_checkpoint_load(path.c_str(), &loaded.m, &optim, nullptr, nullptr, 0, nullptr, &err) ==
                KD_ERR_DATA);
        CHECK(contains(err.message, path + ":/optimizer: checkpoint holds adamw state, optimizer is sgd"));
    }
    SECTION("one buffer for two slots")
    {
        REQUIRE(kd_checkpoint_load(path.c_str(), &loaded.m, &optim, nullptr, nullptr, 0, nullptr, &err) ==
                KD_ERR_DATA);
        CHECK(contains(err.message, path + ":/optimizer: checkpoint holds 2 state arrays, slot 1 has no buffer"));
    }
    SECTION("config buffer too small")
    {
        char config[16];
        REQUIRE(kd_checkpoint_load(path.c_str(), &loaded.m, nullptr, nullptr, config, sizeof config, nullptr,
                                   &err) == KD_ERR_DATA);
        CHECK(contains(err.message, path + ":/train: attribute config: expected at most 15 characters"));
    }
    INFO(err.message);
    CHECK(std::all_of(m.begin(), m.end(), [](float x) { return x == 0.0f; }));
}

TEST_CASE("a checkpoint keeps the commit and validation metrics it was given, and files without them still load",
          "[checkpoint]")
{
    std::string dir = kdtest::temp_dir(), with = dir + "/with.h5", without = dir + "/without.h5";
    Run run;
    kd_error err;
    REQUIRE(run.save(without, &err) == KD_OK); // no commit, has_metrics false: nothing stored
    std::strcpy(run.train.commit, "0123abc (with uncommitted changes)");
    run.train.has_metrics = true;
    run.train.val_accuracy = 0.875;
    run.train.val_nll = 0.3125;
    run.train.val_ece = 0.0625;
    run.train.best_epoch = 12;
    run.train.best_val_accuracy = 0.90625;
    run.train.best_val_nll = 0.28125;
    run.train.best_val_ece = 0.03125;
    REQUIRE(run.save(with, &err) == KD_OK);

    Model loaded(make_config({12, 9, 7, 4}), 99);
    kd_train_state t;
    std::memset(&t, 0xAB, sizeof t);
    char config[256];
    REQUIRE(kd_checkpoint_load(with.c_str(), &loaded.m, nullptr, &t, config, sizeof config, nullptr, &err) == KD_OK);
    CHECK(std::string(t.commit) == "0123abc (with uncommitted changes)");
    REQUIRE(t.has_metrics);
    CHECK(t.val_accuracy == 0.875);
    CHECK(t.val_nll == 0.3125);
    CHECK(t.val_ece == 0.0625);
    CHECK(t.best_epoch == 12);
    CHECK(t.best_val_accuracy == 0.90625);
    CHECK(t.best_val_nll == 0.28125);
    CHECK(t.best_val_ece == 0.03125);

    std::memset(&t, 0xAB, sizeof t);
    REQUIRE(kd_checkpoint_load(without.c_str(), &loaded.m, nullptr, &t, config, sizeof config, nullptr, &err) == KD_OK);
    CHECK(t.commit[0] == '\0');
    CHECK_FALSE(t.has_metrics);
    CHECK(t.epoch == 17);
}
