/* config.c - the key table, value parsing and the resolved text (see config.h). */
#define _POSIX_C_SOURCE 200809L
#include "workflows/config.h"

#include "io/fileutil.h"
#include "io/ini.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_STR, T_INT, T_U64, T_FLOAT, T_BOOL, T_CHOICE, T_SIZES } key_type;

typedef struct key_spec {
    const char *section, *key;
    key_type type;
    size_t offset, size;     /* field in kd_config; size for strings */
    const char *def;         /* default as text; "" for required strings */
    double min, max;         /* bounds for numbers */
    bool min_open;           /* min is exclusive (value must be > min) */
    const struct kd_choice *choices; /* T_CHOICE: the names and enum values, ending with {NULL} */
} key_spec;

/* A T_CHOICE key's values: each name with the enum value stored in kd_config. */
typedef struct kd_choice {
    const char *name;
    int value;
} kd_choice;

static const kd_choice init_choices[] = {{"he", KD_INIT_HE}, {"glorot", KD_INIT_GLOROT}, {NULL, 0}};
static const kd_choice optimizer_choices[] = {{"adamw", KD_OPTIM_ADAMW}, {"sgd", KD_OPTIM_SGD}, {NULL, 0}};
static const kd_choice schedule_choices[] = {
    {"constant", KD_SCHEDULE_CONSTANT}, {"step", KD_SCHEDULE_STEP}, {"cosine", KD_SCHEDULE_COSINE}, {NULL, 0}};
static const kd_choice last_batch_choices[] = {{"keep", KD_LAST_BATCH_KEEP}, {"drop", KD_LAST_BATCH_DROP}, {NULL, 0}};
static const kd_choice checkpoint_choices[] = {
    {"last_best", KD_CHECKPOINTS_LAST_BEST}, {"every", KD_CHECKPOINTS_EVERY}, {NULL, 0}};

/* Choice fields are C enums, stored and read as int. */
_Static_assert(sizeof(kd_init) == sizeof(int) && sizeof(kd_optim_kind) == sizeof(int) &&
                   sizeof(kd_schedule) == sizeof(int) && sizeof(kd_last_batch) == sizeof(int) &&
                   sizeof(kd_checkpoint_policy) == sizeof(int),
               "choice enums are int-sized");

#define F(field) offsetof(kd_config, field), sizeof(((kd_config *)0)->field)
#define BIG 1e18

static const key_spec keys[] = {
    {"data", "path", T_STR, F(data.path), "", 0, 0, false, NULL},
    {"data", "train_x", T_STR, F(data.train_x), "/train/x", 0, 0, false, NULL},
    {"data", "train_y", T_STR, F(data.train_y), "/train/y", 0, 0, false, NULL},
    {"data", "val_x", T_STR, F(data.val_x), "/val/x", 0, 0, false, NULL},
    {"data", "val_y", T_STR, F(data.val_y), "/val/y", 0, 0, false, NULL},
    {"data", "test_x", T_STR, F(data.test_x), "/test/x", 0, 0, false, NULL},
    {"data", "test_y", T_STR, F(data.test_y), "/test/y", 0, 0, false, NULL},
    {"data", "val_from_train", T_INT, F(data.val_from_train), "5000", 0, BIG, false, NULL},
    {"data", "streaming", T_BOOL, F(data.streaming), "false", 0, 0, false, NULL},
    {"data", "buffer_rows", T_INT, F(data.buffer_rows), "16384", 1, BIG, false, NULL},
    {"data", "labelled", T_INT, F(data.labelled), "0", 0, BIG, false, NULL},
    {"model", "layers", T_SIZES, F(model), "", 0, 0, false, NULL},
    {"model", "dropout", T_FLOAT, F(model.dropout), "0", 0, 0.99, false, NULL},
    {"model", "input_dropout", T_FLOAT, F(model.input_dropout), "0", 0, 0.99, false, NULL},
    {"model", "init", T_CHOICE, F(model.init), "he", 0, 0, false, init_choices},
    {"train", "epochs", T_INT, F(train.epochs), "10", 1, 1e6, false, NULL},
    {"train", "batch_size", T_INT, F(train.batch_size), "128", 1, 1 << 20, false, NULL},
    {"train", "seed", T_U64, F(train.seed), "1", 0, 0, false, NULL},
    {"train", "threads", T_INT, F(train.threads), "0", 0, 1024, false, NULL},
    {"train", "jitter", T_INT, F(train.jitter), "0", 0, 64, false, NULL},
    {"train", "optimizer", T_CHOICE, F(train.optimizer), "adamw", 0, 0, false, optimizer_choices},
    {"train", "lr", T_FLOAT, F(train.lr), "0.001", 0, 1e3, true, NULL},
    {"train", "momentum", T_FLOAT, F(train.momentum), "0.9", 0, 0.999999, false, NULL},
    {"train", "nesterov", T_BOOL, F(train.nesterov), "false", 0, 0, false, NULL},
    {"train", "beta1", T_FLOAT, F(train.beta1), "0.9", 0, 0.999999, false, NULL},
    {"train", "beta2", T_FLOAT, F(train.beta2), "0.999", 0, 0.99999999, false, NULL},
    {"train", "eps", T_FLOAT, F(train.eps), "1e-8", 0, 1, true, NULL},
    {"train", "weight_decay", T_FLOAT, F(train.weight_decay), "0", 0, 10, false, NULL},
    {"train", "schedule", T_CHOICE, F(train.schedule), "constant", 0, 0, false, schedule_choices},
    {"train", "warmup_epochs", T_INT, F(train.warmup_epochs), "0", 0, 1e6, false, NULL},
    {"train", "step_epochs", T_INT, F(train.step_epochs), "10", 1, 1e6, false, NULL},
    {"train", "gamma", T_FLOAT, F(train.gamma), "0.1", 0, 1, true, NULL},
    {"train", "min_lr", T_FLOAT, F(train.min_lr), "0", 0, 1e3, false, NULL},
    {"train", "clip_norm", T_FLOAT, F(train.clip_norm), "0", 0, 1e9, false, NULL},
    {"train", "last_batch", T_CHOICE, F(train.last_batch), "keep", 0, 0, false, last_batch_choices},
    {"train", "checkpoints", T_CHOICE, F(train.checkpoints), "last_best", 0, 0, false, checkpoint_choices},
    {"train", "temperature_every", T_INT, F(train.temperature_every), "0", 0, 1e6, false, NULL},
    {"train", "train_eval_rows", T_INT, F(train.train_eval_rows), "10000", 1, BIG, false, NULL},
    {"distill", "temperature", T_FLOAT, F(distill.temperature), "4", 0, 1e4, true, NULL},
    {"distill", "alpha", T_FLOAT, F(distill.alpha), "0.9", 0, 1, false, NULL},
    {"distill", "teacher", T_STR, F(distill.teacher), "", 0, 0, false, NULL},
    {"run", "dir", T_STR, F(run.dir), "runs", 0, 0, false, NULL},
    {"run", "name", T_STR, F(run.name), "", 0, 0, false, NULL},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

static const char *choice_name(const key_spec *k, int value)
{
    for (const kd_choice *ch = k->choices; ch->name; ch++)
        if (ch->value == value) return ch->name;
    KD_ASSERT(false, "%s.%s holds %d, not one of its choices", k->section, k->key, value);
    return "";
}

const char *kd_config_choice_name(const char *name, int value)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s.%s", keys[i].section, keys[i].key);
        if (keys[i].type == T_CHOICE && !strcmp(full, name)) return choice_name(&keys[i], value);
    }
    KD_ASSERT(false, "%s is not a choice key", name);
    return "";
}

/* ---- suggestions ------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[128];
    if (la >= 127 || lb >= 127) return 99;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The nearest "section.key" (or "section" when want_section) to name, or NULL. */
static const char *nearest(const char *name, bool want_section, char *buf, size_t size)
{
    size_t best = 99;
    for (size_t i = 0; i < N_KEYS; i++) {
        char candidate[160];
        if (want_section)
            snprintf(candidate, sizeof candidate, "%s", keys[i].section);
        else
            snprintf(candidate, sizeof candidate, "%s.%s", keys[i].section, keys[i].key);
        size_t d = edit_distance(name, candidate);
        if (d < best) {
            best = d;
            snprintf(buf, size, "%s", candidate);
        }
    }
    size_t limit = strlen(name) / 3 + 1;
    return best <= (limit < 3 ? limit : 3) ? buf : NULL;
}

const char *kd_config_nearest_name(const char *name, const char *const *names, int n)
{
    size_t best = 99;
    const char *found = NULL;
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(name, names[i]);
        if (d < best) {
            best = d;
            found = names[i];
        }
    }
    size_t limit = strlen(name) / 3 + 1;
    return best <= (limit < 3 ? limit : 3) ? found : NULL;
}

/* ---- values ---------------------------------------------------------------------------- */

static bool parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return *text && *end == '\0' && errno == 0 && isfinite(*out);
}

static bool parse_int(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    *out = v;
    return *text && *end == '\0' && errno == 0;
}

static int bad_value(const key_spec *k, const char *where, const char *value, const char *expected, kd_error *err)
{
    return kd_error_set(err, KD_ERR_CONFIG, "%s%s.%s: expected %s, found '%s'", where, k->section, k->key, expected,
                        value);
}

static void describe_range(const key_spec *k, bool integer, char *buf, size_t size)
{
    const char *kind = integer ? "an integer" : "a number";
    if (k->max >= BIG)
        snprintf(buf, size, "%s %s %.15g", kind, k->min_open ? ">" : ">=", k->min);
    else
        snprintf(buf, size, "%s in %s%.15g, %.15g]", kind, k->min_open ? "(" : "[", k->min, k->max);
}

static bool in_range(const key_spec *k, double v)
{
    return (k->min_open ? v > k->min : v >= k->min) && v <= k->max;
}

static int parse_sizes(const key_spec *k, const char *where, const char *value, kd_config *c, kd_error *err)
{
    int sizes[KD_MLP_MAX_LAYERS + 2], n = 0;
    const char *p = value;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > (1 << 24) || n > KD_MLP_MAX_LAYERS)
            return bad_value(k, where, value, "2 to 17 positive sizes separated by commas, e.g. 784,1200,1200,10", err);
        sizes[n++] = (int)v;
        while (isspace((unsigned char)*end)) end++;
        if (*end == ',') end++;
        else if (*end) return bad_value(k, where, value, "sizes separated by commas, e.g. 784,64,10", err);
        while (isspace((unsigned char)*end)) end++;
        p = end;
    }
    if (n < 2) return bad_value(k, where, value, "at least an input and an output size, e.g. 784,10", err);
    c->model.n_layers = n - 1;
    memcpy(c->model.sizes, sizes, (size_t)n * sizeof(int));
    return KD_OK;
}

static int assign(const key_spec *k, const char *where, const char *value, kd_config *c, kd_error *err)
{
    char *field = (char *)c + k->offset;
    char expected[128];
    switch (k->type) {
    case T_STR:
        if (strlen(value) >= k->size) return bad_value(k, where, value, "a shorter text", err);
        snprintf(field, k->size, "%s", value);
        return KD_OK;
    case T_CHOICE: {
        size_t used = (size_t)snprintf(expected, sizeof expected, "one of ");
        for (const kd_choice *ch = k->choices; ch->name; ch++) {
            if (!strcmp(ch->name, value)) {
                *(int *)field = ch->value;
                return KD_OK;
            }
            if (used < sizeof expected)
                used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s", ch == k->choices ? "" : "|", ch->name);
        }
        return bad_value(k, where, value, expected, err);
    }
    case T_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1")) *(bool *)field = true;
        else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "0")) *(bool *)field = false;
        else return bad_value(k, where, value, "true or false", err);
        return KD_OK;
    case T_INT: {
        int64_t v;
        describe_range(k, true, expected, sizeof expected);
        if (!parse_int(value, &v) || !in_range(k, (double)v)) return bad_value(k, where, value, expected, err);
        *(int64_t *)field = v;
        return KD_OK;
    }
    case T_U64: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (!*value || *end || errno || value[0] == '-')
            return bad_value(k, where, value, "a non-negative integer", err);
        *(uint64_t *)field = v;
        return KD_OK;
    }
    case T_FLOAT: {
        double v;
        describe_range(k, false, expected, sizeof expected);
        if (!parse_double(value, &v) || !in_range(k, v)) return bad_value(k, where, value, expected, err);
        *(double *)field = v;
        return KD_OK;
    }
    case T_SIZES:
        return parse_sizes(k, where, value, c, err);
    }
    return KD_OK;
}

static const key_spec *find_key(const char *section, const char *key, const char *where, kd_error *err)
{
    bool section_known = false;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].section, section) != 0) continue;
        section_known = true;
        if (strcmp(keys[i].key, key) == 0) return &keys[i];
    }
    char hint[160], full[160];
    if (!section_known) {
        const char *s = nearest(section, true, hint, sizeof hint);
        kd_error_set(err, KD_ERR_CONFIG, "%sunknown section [%s]%s%s%s", where, section, s ? "; did you mean [" : "",
                     s ? s : "", s ? "]?" : "");
    } else {
        snprintf(full, sizeof full, "%s.%s", section, key);
        const char *s = nearest(full, false, hint, sizeof hint);
        kd_error_set(err, KD_ERR_CONFIG, "%sunknown key %s%s%s%s", where, full, s ? "; did you mean " : "", s ? s : "",
                     s ? "?" : "");
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------- */

void kd_config_defaults(kd_config *config)
{
    memset(config, 0, sizeof *config);
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].def[0]) {
            int rc = assign(&keys[i], "", keys[i].def, config, NULL);
            KD_ASSERT(rc == KD_OK, "default of %s.%s does not parse", keys[i].section, keys[i].key);
        }
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
    const key_spec *k = find_key(e->section, e->key, where, err);
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
    if (ls == 0 || ls >= sizeof section || lk == 0 || lk >= sizeof key || strlen(eq + 1) >= sizeof value)
        return kd_error_set(err, KD_ERR_CONFIG, "--set %s: expected section.key=value", assignment);
    memcpy(section, assignment, ls);
    section[ls] = '\0';
    memcpy(key, dot + 1, lk);
    key[lk] = '\0';
    snprintf(value, sizeof value, "%s", eq + 1);
    const key_spec *k = find_key(section, key, "--set: ", err);
    if (!k) return KD_ERR_CONFIG;
    return assign(k, "--set ", value, config, err);
}

int kd_config_validate(const kd_config *c, kd_error *err)
{
    if (!c->data.path[0])
        return kd_error_set(err, KD_ERR_CONFIG, "data.path: required, e.g. data/fashion-mnist.h5");
    if (c->model.n_layers < 1)
        return kd_error_set(err, KD_ERR_CONFIG, "model.layers: required, e.g. 784,1200,1200,10");
    if (c->model.sizes[c->model.n_layers] < 2)
        return kd_error_set(err, KD_ERR_CONFIG, "model.layers: expected at least 2 output classes, found %d",
                            c->model.sizes[c->model.n_layers]);
    if (c->train.schedule == KD_SCHEDULE_COSINE && c->train.min_lr >= c->train.lr)
        return kd_error_set(err, KD_ERR_CONFIG, "train.min_lr: expected less than train.lr = %g, found %g",
                            c->train.lr, c->train.min_lr);
    if (c->train.warmup_epochs >= c->train.epochs && c->train.warmup_epochs > 0)
        return kd_error_set(err, KD_ERR_CONFIG, "train.warmup_epochs: expected fewer than train.epochs = %lld, found %lld",
                            (long long)c->train.epochs, (long long)c->train.warmup_epochs);
    return KD_OK;
}

static void format_double(double v, char *buf, size_t size)
{
    /* The shortest text that reads back as the same double. */
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, v);
        if (strtod(buf, NULL) == v) return;
    }
}

size_t kd_config_format(const kd_config *c, char *buf, size_t size)
{
    size_t used = 0;
    const char *section = "";
#define EMIT(...) used += (size_t)snprintf(buf + (used < size ? used : size), used < size ? size - used : 0, __VA_ARGS__)
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_spec *k = &keys[i];
        const char *field = (const char *)c + k->offset;
        if (strcmp(section, k->section) != 0) {
            EMIT("%s[%s]\n", used ? "\n" : "", k->section);
            section = k->section;
        }
        char value[KD_CONFIG_STR];
        switch (k->type) {
        case T_STR: snprintf(value, sizeof value, "%s", field); break;
        case T_CHOICE: snprintf(value, sizeof value, "%s", choice_name(k, *(const int *)field)); break;
        case T_BOOL: snprintf(value, sizeof value, "%s", *(const bool *)field ? "true" : "false"); break;
        case T_INT: snprintf(value, sizeof value, "%lld", (long long)*(const int64_t *)field); break;
        case T_U64: snprintf(value, sizeof value, "%llu", (unsigned long long)*(const uint64_t *)field); break;
        case T_FLOAT: format_double(*(const double *)field, value, sizeof value); break;
        case T_SIZES: {
            size_t n = 0;
            value[0] = '\0';
            for (int j = 0; j <= c->model.n_layers && c->model.n_layers > 0; j++)
                n += (size_t)snprintf(value + n, sizeof value - n, j ? ",%d" : "%d", c->model.sizes[j]);
            break;
        }
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
        case T_FLOAT: *value = *(const double *)field; return true;
        case T_INT: *value = (double)*(const int64_t *)field; return true;
        case T_U64: *value = (double)*(const uint64_t *)field; return true;
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
