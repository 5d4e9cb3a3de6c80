/* config.c - the key table, value parsing and the resolved text (see config.h). */
#define _POSIX_C_SOURCE 200809L
#include "workflows/config.h"

#include "io/fileutil.h"
#include "io/ini.h"
#include "io/keys.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int parse_sizes(const kd_key *k, void *field, const char *display, const char *value, const char *where,
                       kd_error *err);

static const kd_key_choice init_choices[] = {{"he", KD_INIT_HE}, {"glorot", KD_INIT_GLOROT}, {NULL, 0}};
static const kd_key_choice optimizer_choices[] = {{"adamw", KD_OPTIM_ADAMW}, {"sgd", KD_OPTIM_SGD}, {NULL, 0}};
static const kd_key_choice schedule_choices[] = {
    {"constant", KD_SCHEDULE_CONSTANT}, {"step", KD_SCHEDULE_STEP}, {"cosine", KD_SCHEDULE_COSINE}, {NULL, 0}};
static const kd_key_choice last_batch_choices[] = {{"keep", KD_LAST_BATCH_KEEP}, {"drop", KD_LAST_BATCH_DROP}, {NULL, 0}};
static const kd_key_choice checkpoint_choices[] = {
    {"last_best", KD_CHECKPOINTS_LAST_BEST}, {"every", KD_CHECKPOINTS_EVERY}, {NULL, 0}};
static const kd_key_choice precision_choices[] = {
    {"fp32", KD_PRECISION_FP32}, {"bf16", KD_PRECISION_BF16}, {"auto", KD_PRECISION_AUTO}, {NULL, 0}};
static const kd_key_choice distill_loss_choices[] = {{"kl", KD_DISTILL_KL},   {"reverse_kl", KD_DISTILL_REVERSE_KL},
                                                     {"js", KD_DISTILL_JS},   {"dkd", KD_DISTILL_DKD},
                                                     {"lsk", KD_DISTILL_LSK}, {NULL, 0}};

/* Choice fields are C enums, stored and read as int. */
_Static_assert(sizeof(kd_init) == sizeof(int) && sizeof(kd_optim_kind) == sizeof(int) &&
                   sizeof(kd_schedule) == sizeof(int) && sizeof(kd_last_batch) == sizeof(int) &&
                   sizeof(kd_checkpoint_policy) == sizeof(int) && sizeof(kd_distill_loss_kind) == sizeof(int) &&
                   sizeof(kd_precision) == sizeof(int),
               "choice enums are int-sized");

#define F(field) offsetof(kd_config, field), sizeof(((kd_config *)0)->field)
#define BIG KD_KEY_BIG

static const kd_key keys[] = {
    {"data", "path", KD_KEY_TEXT, F(data.path), "", 0, 0, false, NULL, NULL},
    {"data", "train_x", KD_KEY_TEXT, F(data.train_x), "/train/x", 0, 0, false, NULL, NULL},
    {"data", "train_y", KD_KEY_TEXT, F(data.train_y), "/train/y", 0, 0, false, NULL, NULL},
    {"data", "val_x", KD_KEY_TEXT, F(data.val_x), "/val/x", 0, 0, false, NULL, NULL},
    {"data", "val_y", KD_KEY_TEXT, F(data.val_y), "/val/y", 0, 0, false, NULL, NULL},
    {"data", "test_x", KD_KEY_TEXT, F(data.test_x), "/test/x", 0, 0, false, NULL, NULL},
    {"data", "test_y", KD_KEY_TEXT, F(data.test_y), "/test/y", 0, 0, false, NULL, NULL},
    {"data", "val_from_train", KD_KEY_INT, F(data.val_from_train), "5000", 0, BIG, false, NULL, NULL},
    {"data", "streaming", KD_KEY_BOOL, F(data.streaming), "false", 0, 0, false, NULL, NULL},
    {"data", "buffer_rows", KD_KEY_INT, F(data.buffer_rows), "16384", 1, BIG, false, NULL, NULL},
    {"data", "labelled", KD_KEY_INT, F(data.labelled), "0", 0, BIG, false, NULL, NULL},
    {"model", "layers", KD_KEY_CUSTOM, F(model), "", 0, 0, false, NULL, parse_sizes},
    {"model", "dropout", KD_KEY_FLOAT, F(model.dropout), "0", 0, 0.99, false, NULL, NULL},
    {"model", "input_dropout", KD_KEY_FLOAT, F(model.input_dropout), "0", 0, 0.99, false, NULL, NULL},
    {"model", "init", KD_KEY_CHOICE, F(model.init), "he", 0, 0, false, init_choices, NULL},
    {"train", "epochs", KD_KEY_INT, F(train.epochs), "10", 1, 1e6, false, NULL, NULL},
    {"train", "batch_size", KD_KEY_INT, F(train.batch_size), "128", 1, 1 << 20, false, NULL, NULL},
    {"train", "seed", KD_KEY_U64, F(train.seed), "1", 0, 0, false, NULL, NULL},
    {"train", "threads", KD_KEY_INT, F(train.threads), "0", 0, 1024, false, NULL, NULL},
    {"train", "shards", KD_KEY_INT, F(train.shards), "1", 1, 4096, false, NULL, NULL},
    {"train", "jitter", KD_KEY_INT, F(train.jitter), "0", 0, 64, false, NULL, NULL},
    {"train", "optimizer", KD_KEY_CHOICE, F(train.optimizer), "adamw", 0, 0, false, optimizer_choices, NULL},
    {"train", "precision", KD_KEY_CHOICE, F(train.precision), "fp32", 0, 0, false, precision_choices, NULL},
    {"train", "lr", KD_KEY_FLOAT, F(train.lr), "0.001", 0, 1e3, true, NULL, NULL},
    {"train", "momentum", KD_KEY_FLOAT, F(train.momentum), "0.9", 0, 0.999999, false, NULL, NULL},
    {"train", "nesterov", KD_KEY_BOOL, F(train.nesterov), "false", 0, 0, false, NULL, NULL},
    {"train", "beta1", KD_KEY_FLOAT, F(train.beta1), "0.9", 0, 0.999999, false, NULL, NULL},
    {"train", "beta2", KD_KEY_FLOAT, F(train.beta2), "0.999", 0, 0.99999999, false, NULL, NULL},
    {"train", "eps", KD_KEY_FLOAT, F(train.eps), "1e-8", 0, 1, true, NULL, NULL},
    {"train", "weight_decay", KD_KEY_FLOAT, F(train.weight_decay), "0", 0, 10, false, NULL, NULL},
    {"train", "schedule", KD_KEY_CHOICE, F(train.schedule), "constant", 0, 0, false, schedule_choices, NULL},
    {"train", "warmup_epochs", KD_KEY_INT, F(train.warmup_epochs), "0", 0, 1e6, false, NULL, NULL},
    {"train", "step_epochs", KD_KEY_INT, F(train.step_epochs), "10", 1, 1e6, false, NULL, NULL},
    {"train", "gamma", KD_KEY_FLOAT, F(train.gamma), "0.1", 0, 1, true, NULL, NULL},
    {"train", "min_lr", KD_KEY_FLOAT, F(train.min_lr), "0", 0, 1e3, false, NULL, NULL},
    {"train", "clip_norm", KD_KEY_FLOAT, F(train.clip_norm), "0", 0, 1e9, false, NULL, NULL},
    {"train", "last_batch", KD_KEY_CHOICE, F(train.last_batch), "keep", 0, 0, false, last_batch_choices, NULL},
    {"train", "checkpoints", KD_KEY_CHOICE, F(train.checkpoints), "last_best", 0, 0, false, checkpoint_choices, NULL},
    {"train", "temperature_every", KD_KEY_INT, F(train.temperature_every), "0", 0, 1e6, false, NULL, NULL},
    {"train", "train_eval_rows", KD_KEY_INT, F(train.train_eval_rows), "10000", 1, BIG, false, NULL, NULL},
    {"distill", "temperature", KD_KEY_FLOAT, F(distill.temperature), "4", 0, 1e4, true, NULL, NULL},
    {"distill", "alpha", KD_KEY_FLOAT, F(distill.alpha), "0.9", 0, 1, false, NULL, NULL},
    {"distill", "loss", KD_KEY_CHOICE, F(distill.loss), "kl", 0, 0, false, distill_loss_choices, NULL},
    {"distill", "dkd_target_weight", KD_KEY_FLOAT, F(distill.dkd_target_weight), "1", 0, 1e3, false, NULL, NULL},
    {"distill", "dkd_nontarget_weight", KD_KEY_FLOAT, F(distill.dkd_nontarget_weight), "8", 0, 1e3, false, NULL, NULL},
    {"distill", "teacher", KD_KEY_TEXT, F(distill.teacher), "", 0, 0, false, NULL, NULL},
    {"distill", "teacher_logits", KD_KEY_TEXT, F(distill.teacher_logits), "", 0, 0, false, NULL, NULL},
    {"distill", "teachers", KD_KEY_TEXT, F(distill.teachers), "", 0, 0, false, NULL, NULL},
    {"distill", "calibrate_teachers", KD_KEY_BOOL, F(distill.calibrate_teachers), "false", 0, 0, false, NULL, NULL},
    {"run", "dir", KD_KEY_TEXT, F(run.dir), "runs", 0, 0, false, NULL, NULL},
    {"run", "name", KD_KEY_TEXT, F(run.name), "", 0, 0, false, NULL, NULL},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

const char *kd_config_choice_name(const char *name, int value)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s.%s", keys[i].section, keys[i].key);
        if (keys[i].type == KD_KEY_CHOICE && !strcmp(full, name)) return kd_keys_choice_name(&keys[i], value);
    }
    KD_ASSERT(false, "%s is not a choice key", name);
    return "";
}

/* ---- values ---------------------------------------------------------------------------- */

/* model.layers: "784,1200,1200,10" into the model's n_layers and sizes. */
static int parse_sizes(const kd_key *k, void *field, const char *display, const char *value, const char *where,
                       kd_error *err)
{
    kd_config *c = (kd_config *)((char *)field - offsetof(kd_config, model));
    int sizes[KD_MLP_MAX_LAYERS + 2], n = 0;
    const char *p = value;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > (1 << 24) || n > KD_MLP_MAX_LAYERS)
            return kd_keys_bad_value(k, display, where, value, "2 to 17 positive sizes separated by commas, e.g. 784,1200,1200,10", err);
        sizes[n++] = (int)v;
        while (isspace((unsigned char)*end)) end++;
        if (*end == ',') end++;
        else if (*end) return kd_keys_bad_value(k, display, where, value, "sizes separated by commas, e.g. 784,64,10", err);
        while (isspace((unsigned char)*end)) end++;
        p = end;
    }
    if (n < 2) return kd_keys_bad_value(k, display, where, value, "at least an input and an output size, e.g. 784,10", err);
    c->model.n_layers = n - 1;
    memcpy(c->model.sizes, sizes, (size_t)n * sizeof(int));
    return KD_OK;
}

static int assign(const kd_key *k, const char *where, const char *value, kd_config *c, kd_error *err)
{
    return kd_keys_assign(k, c, NULL, value, where, err);
}

static const kd_key *find_key(const char *section, const char *key, const char *where, kd_error *err)
{
    return kd_keys_find(keys, N_KEYS, section, NULL, key, where, err);
}

/* ---- public ------------------------------------------------------------------------------- */

void kd_config_defaults(kd_config *config)
{
    memset(config, 0, sizeof *config);
    kd_keys_defaults(keys, N_KEYS, config);
}

typedef struct load_state {
    kd_config *config;
    const char *source;
} load_state;

static int on_entry(const kd_ini_entry *e, void *user, kd_error *err)
{
    load_state *state = user;
    char where[KD_CONFIG_STR + 32];
    snprintf(where, sizeof where, "%s:%d: ", state->source, e->line);
    const kd_key *k = find_key(e->section, e->key, where, err);
    if (!k) return KD_ERR_CONFIG;
    return assign(k, where, e->value, state->config, err);
}

int kd_config_load_text(kd_config *config, const char *text, const char *source, kd_error *err)
{
    load_state state = {config, source};
    return kd_ini_parse(text, source, on_entry, &state, err);
}

int kd_config_load_file(kd_config *config, const char *path, kd_error *err)
{
    char *text = kd_file_read_text(path, 1 << 20, err);
    if (!text) return err ? err->code : KD_ERR_IO;
    int rc = kd_config_load_text(config, text, path, err);
    free(text);
    return rc;
}

int kd_config_set(kd_config *config, const char *assignment, kd_error *err)
{
    const char *dot = strchr(assignment, '.'), *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq)
        return kd_error_set(err, KD_ERR_CONFIG, "--set %s: expected section.key=value", assignment);
    char section[64], key[64], value[KD_CONFIG_STR];
    size_t ls = (size_t)(dot - assignment), lk = (size_t)(eq - dot - 1);
    if (ls == 0 || ls >= sizeof section || lk == 0 || lk >= sizeof key)
        return kd_error_set(err, KD_ERR_CONFIG, "--set %.200s: expected section.key=value", assignment);
    if (strlen(eq + 1) >= sizeof value)
        return kd_error_set(err, KD_ERR_CONFIG, "--set %.*s: expected a value of at most %zu characters, found %zu",
                            (int)(eq - assignment), assignment, sizeof value - 1, strlen(eq + 1));
    memcpy(section, assignment, ls);
    section[ls] = '\0';
    memcpy(key, dot + 1, lk);
    key[lk] = '\0';
    snprintf(value, sizeof value, "%s", eq + 1);
    const kd_key *k = find_key(section, key, "--set: ", err);
    if (!k) return KD_ERR_CONFIG;
    return assign(k, "--set ", value, config, err);
}

int kd_config_validate(const kd_config *c, kd_error *err)
{
    /* run.name is one folder inside run.dir: ../x or a/b would put the run elsewhere. */
    if (strchr(c->run.name, '/') || !strcmp(c->run.name, ".") || !strcmp(c->run.name, ".."))
        return kd_error_set(err, KD_ERR_CONFIG, "run.name: expected a folder name without '/' (the run goes into run.dir), "
                                                "found '%s'",
                            c->run.name);
    if (!c->data.path[0])
        return kd_error_set(err, KD_ERR_CONFIG, "data.path: required, e.g. data/fashion-mnist.h5");
    if (c->model.n_layers < 1)
        return kd_error_set(err, KD_ERR_CONFIG, "model.layers: required, e.g. 784,1200,1200,10");
    if (c->model.sizes[c->model.n_layers] < 2)
        return kd_error_set(err, KD_ERR_CONFIG, "model.layers: expected at least 2 output classes, found %d",
                            c->model.sizes[c->model.n_layers]);
    /* DKD's non-target term is a distribution over the C - 1 other classes: none with 2. */
    if (c->distill.loss == KD_DISTILL_DKD && c->model.sizes[c->model.n_layers] < 3)
        return kd_error_set(err, KD_ERR_CONFIG,
                            "distill.loss: dkd needs at least 3 classes (its non-target term is over the classes "
                            "other than the label), found %d in model.layers; use kl, reverse_kl, js or lsk",
                            c->model.sizes[c->model.n_layers]);
    /* One way to name distillation's teacher (workflows/teacher.h). */
    int named = !!c->distill.teacher[0] + !!c->distill.teacher_logits[0] + !!c->distill.teachers[0];
    if (named > 1)
        return kd_error_set(err, KD_ERR_CONFIG,
                            "distill.teachers: expected one of distill.teacher, distill.teacher_logits and distill.teachers, "
                            "found %d set (teacher = '%.100s', teacher_logits = '%.100s', teachers = '%.100s')",
                            named, c->distill.teacher, c->distill.teacher_logits, c->distill.teachers);
    if (c->train.schedule == KD_SCHEDULE_COSINE && c->train.min_lr >= c->train.lr)
        return kd_error_set(err, KD_ERR_CONFIG, "train.min_lr: expected less than train.lr = %g, found %g",
                            c->train.lr, c->train.min_lr);
    if (c->train.shards > c->train.batch_size)
        return kd_error_set(err, KD_ERR_CONFIG, "train.shards: expected at most train.batch_size = %lld (a shard is at "
                                                "least one row of the batch), found %lld",
                            (long long)c->train.batch_size, (long long)c->train.shards);
    if (c->train.warmup_epochs >= c->train.epochs && c->train.warmup_epochs > 0)
        return kd_error_set(err, KD_ERR_CONFIG, "train.warmup_epochs: expected fewer than train.epochs = %lld, found %lld",
                            (long long)c->train.epochs, (long long)c->train.warmup_epochs);
    return KD_OK;
}

size_t kd_config_format(const kd_config *c, char *buf, size_t size)
{
    size_t used = 0;
    const char *section = "";
#define EMIT(...) used += (size_t)snprintf(buf + (used < size ? used : size), used < size ? size - used : 0, __VA_ARGS__)
    for (size_t i = 0; i < N_KEYS; i++) {
        const kd_key *k = &keys[i];
        if (strcmp(section, k->section) != 0) {
            EMIT("%s[%s]\n", used ? "\n" : "", k->section);
            section = k->section;
        }
        char value[KD_CONFIG_STR];
        if (k->type == KD_KEY_CUSTOM) { /* model.layers, the one custom key */
            size_t n = 0;
            value[0] = '\0';
            for (int j = 0; j <= c->model.n_layers && c->model.n_layers > 0; j++)
                n += (size_t)snprintf(value + n, sizeof value - n, j ? ",%d" : "%d", c->model.sizes[j]);
        } else {
            kd_keys_format(k, c, value, sizeof value);
        }
        EMIT("%s = %s\n", k->key, value);
    }
#undef EMIT
    return used;
}

bool kd_config_get_number(const kd_config *c, const char *name, double *value)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s.%s", keys[i].section, keys[i].key);
        if (strcmp(full, name) != 0) continue;
        const char *field = (const char *)c + keys[i].offset;
        switch (keys[i].type) {
        case KD_KEY_FLOAT: *value = *(const double *)field; return true;
        case KD_KEY_INT: *value = (double)*(const int64_t *)field; return true;
        case KD_KEY_U64: *value = (double)*(const uint64_t *)field; return true;
        default: return false;
        }
    }
    return false;
}

int kd_config_normalize(const char *text, char *out, size_t size, kd_error *err)
{
    kd_config *c = malloc(sizeof *c);
    if (!c) return kd_error_set(err, KD_ERR_IO, "out of memory");
    kd_config_defaults(c);
    int rc = kd_config_load_text(c, text, "a stored config", err);
    if (!rc && kd_config_format(c, out, size) >= size) rc = kd_error_set(err, KD_ERR_CONFIG, "a stored config is too long");
    free(c);
    return rc;
}

bool kd_config_matches(const char *stored_text, const kd_config *config)
{
    /* train.threads is left out: weights do not depend on the thread count */
    const size_t size = KD_CONFIG_TEXT_MAX;
    char *a = malloc(size), *b = malloc(size);
    kd_config *stored = malloc(sizeof *stored), *given = malloc(sizeof *given);
    bool same = a && b && stored && given;
    if (same) {
        kd_config_defaults(stored);
        *given = *config;
        same = kd_config_load_text(stored, stored_text, "a stored config", NULL) == KD_OK;
        stored->train.threads = given->train.threads = 0;
        same = same && kd_config_format(stored, a, size) < size && kd_config_format(given, b, size) < size && strcmp(a, b) == 0;
    }
    free(a);
    free(b);
    free(stored);
    free(given);
    return same;
}

int kd_config_model(const kd_config *c, kd_mlp_config *mlp, kd_error *err)
{
    memset(mlp, 0, sizeof *mlp);
    mlp->n_layers = c->model.n_layers;
    memcpy(mlp->sizes, c->model.sizes, sizeof mlp->sizes);
    mlp->dropout = (float)c->model.dropout;
    mlp->input_dropout = (float)c->model.input_dropout;
    mlp->init = c->model.init;
    if (mlp->n_layers < 1) return kd_error_set(err, KD_ERR_CONFIG, "model.layers: required, e.g. 784,64,10");
    return KD_OK;
}

void kd_config_optim(const kd_config *c, int64_t batches_per_epoch, kd_optim_config *o)
{
    memset(o, 0, sizeof *o);
    o->kind = c->train.optimizer;
    o->lr = c->train.lr;
    o->momentum = c->train.momentum;
    o->nesterov = c->train.nesterov;
    o->beta1 = c->train.beta1;
    o->beta2 = c->train.beta2;
    o->eps = c->train.eps;
    o->weight_decay = c->train.weight_decay;
    o->clip_norm = c->train.clip_norm;
    o->schedule = c->train.schedule;
    o->warmup_steps = c->train.warmup_epochs * batches_per_epoch;
    o->step_size = c->train.step_epochs * batches_per_epoch;
    o->gamma = c->train.gamma;
    o->min_lr = c->train.min_lr;
    o->total_steps = c->train.epochs * batches_per_epoch;
}

void kd_config_loader(const kd_config *c, kd_loader_options *lo)
{
    kd_loader_options_default(lo);
    lo->batch_size = (int)c->train.batch_size;
    lo->seed = c->train.seed;
    lo->last_batch = c->train.last_batch;
    lo->streaming = c->data.streaming;
    lo->buffer_rows = c->data.buffer_rows;
}

void kd_config_distill_loss(const kd_config *c, kd_distill_loss *loss)
{
    /* float, as the op (and kd_op_kd_loss before it) always took T and alpha */
    *loss = (kd_distill_loss){.kind = c->distill.loss,
                              .temperature = (float)c->distill.temperature,
                              .alpha = (float)c->distill.alpha,
                              .dkd_target_weight = (float)c->distill.dkd_target_weight,
                              .dkd_nontarget_weight = (float)c->distill.dkd_nontarget_weight};
}
