// The config module: defaults, parsing, --set, and the resolved text round trip.
#include "support.h"

extern "C" {
#include "workflows/config.h"
}

#include <catch2/catch.hpp>

#include <cstring>

TEST_CASE("the resolved config text reads back to the same config", "[config]")
{
    kd_config a, b;
    kd_error err;
    kd_config_defaults(&a);
    REQUIRE(kd_config_load_text(&a, "[data]\npath = d.h5  # comment\n[model]\nlayers = 784, 64 ,10\n"
                                    "[train]\nlr = 0.0003\nseed = 18446744073709551615\n",
                                "t.ini", &err) == KD_OK);
    REQUIRE(kd_config_set(&a, "distill.temperature=2.5", &err) == KD_OK);
    REQUIRE(a.model.n_layers == 2);
    REQUIRE(a.model.sizes[1] == 64);
    REQUIRE(std::string(a.data.path) == "d.h5");
    REQUIRE(a.train.seed == UINT64_MAX);
    std::vector<char> text(16384);
    size_t len = kd_config_format(&a, text.data(), text.size());
    REQUIRE(len < text.size());
    REQUIRE(std::string(text.data()).find("lr = 0.0003\n") != std::string::npos);
    kd_config_defaults(&b);
    REQUIRE(kd_config_load_text(&b, text.data(), "resolved", &err) == KD_OK);
    std::vector<char> again(16384);
    kd_config_format(&b, again.data(), again.size());
    REQUIRE(std::string(text.data()) == std::string(again.data()));
    REQUIRE(b.train.lr == 0.0003);
    REQUIRE(b.distill.temperature == 2.5);
}

TEST_CASE("set overrides reject malformed assignments and bad values with the key's name", "[config]")
{
    kd_config c;
    kd_error err;
    kd_config_defaults(&c);
    REQUIRE(kd_config_set(&c, "epochs=3", &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "--set epochs=3: expected section.key=value");
    REQUIRE(kd_config_set(&c, "train.batch_size=0", &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "--set train.batch_size: expected an integer in [1, 1048576], found '0'");
    REQUIRE(kd_config_set(&c, "train.nesterov=maybe", &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "--set train.nesterov: expected true or false, found 'maybe'");
    REQUIRE(kd_config_set(&c, "model.layers=784", &err) == KD_ERR_CONFIG);
    REQUIRE(kd_config_set(&c, "train.seed=-1", &err) == KD_ERR_CONFIG);
    REQUIRE(kd_config_set(&c, "destill.alpha=0.5", &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "--set: unknown section [destill]; did you mean [distill]?");
}

TEST_CASE("validation needs data.path and model.layers and a sensible cosine floor", "[config]")
{
    kd_config c;
    kd_error err;
    kd_config_defaults(&c);
    REQUIRE(kd_config_validate(&c, &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message).rfind("data.path: required", 0) == 0);
    REQUIRE(kd_config_set(&c, "data.path=x.h5", &err) == KD_OK);
    REQUIRE(kd_config_validate(&c, &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message).rfind("model.layers: required", 0) == 0);
    REQUIRE(kd_config_set(&c, "model.layers=4,2", &err) == KD_OK);
    REQUIRE(kd_config_validate(&c, &err) == KD_OK);
    REQUIRE(kd_config_set(&c, "train.schedule=cosine", &err) == KD_OK);
    REQUIRE(kd_config_set(&c, "train.min_lr=0.01", &err) == KD_OK);
    REQUIRE(kd_config_validate(&c, &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "train.min_lr: expected less than train.lr = 0.001, found 0.01");
}

TEST_CASE("choice keys hold the library's enum values and write back their names", "[config]")
{
    kd_config c;
    kd_error err;
    kd_config_defaults(&c);
    REQUIRE(c.train.optimizer == KD_OPTIM_ADAMW);
    REQUIRE(c.train.schedule == KD_SCHEDULE_CONSTANT);
    REQUIRE(c.train.last_batch == KD_LAST_BATCH_KEEP);
    REQUIRE(c.train.checkpoints == KD_CHECKPOINTS_LAST_BEST);
    REQUIRE(c.model.init == KD_INIT_HE);
    for (const char *set : {"train.optimizer=sgd", "train.schedule=step", "train.last_batch=drop",
                            "train.checkpoints=every", "model.init=glorot"})
        REQUIRE(kd_config_set(&c, set, &err) == KD_OK);
    REQUIRE(c.train.optimizer == KD_OPTIM_SGD);
    REQUIRE(c.train.schedule == KD_SCHEDULE_STEP);
    REQUIRE(c.train.last_batch == KD_LAST_BATCH_DROP);
    REQUIRE(c.train.checkpoints == KD_CHECKPOINTS_EVERY);
    REQUIRE(c.model.init == KD_INIT_GLOROT);
    std::vector<char> text(16384);
    kd_config_format(&c, text.data(), text.size());
    std::string t(text.data());
    for (const char *line : {"optimizer = sgd\n", "schedule = step\n", "last_batch = drop\n", "checkpoints = every\n",
                             "init = glorot\n"})
        REQUIRE(t.find(line) != std::string::npos);
    // An unknown value is an error that lists the values, and changes nothing.
    REQUIRE(kd_config_set(&c, "train.optimizer=adam", &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "--set train.optimizer: expected one of adamw|sgd, found 'adam'");
    REQUIRE(c.train.optimizer == KD_OPTIM_SGD);
    REQUIRE(std::string(kd_config_choice_name("train.schedule", KD_SCHEDULE_COSINE)) == "cosine");
}

TEST_CASE("distill.loss names the divergence and dkd is refused with fewer than 3 classes", "[config]")
{
    kd_config c;
    kd_error err;
    kd_config_defaults(&c);
    REQUIRE(c.distill.loss == KD_DISTILL_KL);
    REQUIRE(c.distill.dkd_target_weight == 1.0);
    REQUIRE(c.distill.dkd_nontarget_weight == 8.0);
    REQUIRE(kd_config_set(&c, "data.path=x.h5", &err) == KD_OK);
    REQUIRE(kd_config_set(&c, "model.layers=4,2", &err) == KD_OK);
    const char *names[] = {"kl", "reverse_kl", "js", "dkd", "lsk"};
    const kd_distill_loss_kind kinds[] = {KD_DISTILL_KL, KD_DISTILL_REVERSE_KL, KD_DISTILL_JS, KD_DISTILL_DKD,
                                          KD_DISTILL_LSK};
    for (int k = 0; k < 5; k++) {
        REQUIRE(kd_config_set(&c, (std::string("distill.loss=") + names[k]).c_str(), &err) == KD_OK);
        REQUIRE(c.distill.loss == kinds[k]);
        REQUIRE(std::string(kd_config_choice_name("distill.loss", c.distill.loss)) == names[k]);
        INFO(names[k]);
        REQUIRE(kd_config_validate(&c, &err) == (kinds[k] == KD_DISTILL_DKD ? KD_ERR_CONFIG : KD_OK));
    }
    REQUIRE(std::string(err.message) ==
            "distill.loss: dkd needs at least 3 classes (its non-target term is over the classes other than the "
            "label), found 2 in model.layers; use kl, reverse_kl, js or lsk");
    REQUIRE(kd_config_set(&c, "model.layers=4,3", &err) == KD_OK);
    REQUIRE(kd_config_set(&c, "distill.loss=dkd", &err) == KD_OK);
    REQUIRE(kd_config_validate(&c, &err) == KD_OK);

    // The weights go to the op as they are; their bounds are [0, 1e3].
    REQUIRE(kd_config_set(&c, "distill.dkd_target_weight=2", &err) == KD_OK);
    REQUIRE(kd_config_set(&c, "distill.dkd_nontarget_weight=0.5", &err) == KD_OK);
    REQUIRE(kd_config_set(&c, "distill.temperature=3", &err) == KD_OK);
    REQUIRE(kd_config_set(&c, "distill.alpha=0.25", &err) == KD_OK);
    kd_distill_loss dl;
    kd_config_distill_loss(&c, &dl);
    REQUIRE(dl.kind == KD_DISTILL_DKD);
    REQUIRE(dl.temperature == 3.0f);
    REQUIRE(dl.alpha == 0.25f);
    REQUIRE(dl.dkd_target_weight == 2.0f);
    REQUIRE(dl.dkd_nontarget_weight == 0.5f);
    REQUIRE(kd_config_set(&c, "distill.dkd_nontarget_weight=-1", &err) == KD_ERR_CONFIG);
    REQUIRE(kd_config_set(&c, "distill.dkd_target_weight=1001", &err) == KD_ERR_CONFIG);
    REQUIRE(kd_config_set(&c, "distill.loss=kd", &err) == KD_ERR_CONFIG);
    REQUIRE(std::string(err.message) == "--set distill.loss: expected one of kl|reverse_kl|js|dkd|lsk, found 'kd'");
}
