/* pipeline.c - see pipeline.h. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/pipeline.h"
#include "workflows/pipeline_internal.h"

#include "core/check.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "data/prepare.h"
#include "io/checkpoint.h"
#include "io/fileutil.h"
#include "io/ini.h"
#include "io/keys.h"
#include "io/strbuf.h"
#include "workflows/calibrate.h"
#include "workflows/config.h"
#include "workflows/evaluate.h"
#include "workflows/run_dir.h"
#include "workflows/stats.h"
#include "workflows/trainer.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- parsing ------------------------------------------------------------------------------- */

/* "CONFIG [section.key=value ...]" (with a leading "train" or "distill" when want_kind). */
static int parse_spec(const char *where, const char *text, bool want_kind, kd_pipeline_spec *run, kd_error *err)
{
    char buf[KD_INI_VALUE_MAX], *save = NULL;
    snprintf(buf, sizeof buf, "%s", text);
    char *tok = strtok_r(buf, " \t", &save);
    if (want_kind) {
        if (!tok || (strcmp(tok, "train") && strcmp(tok, "distill")))
            return kd_error_set(err, KD_ERR_CONFIG, "%sexpected 'train CONFIG [k=v ...]' or 'distill CONFIG [k=v ...]', found '%s'",
                                where, text);
        run->distill = strcmp(tok, "distill") == 0;
        tok = strtok_r(NULL, " \t", &save);
    }
    if (!tok) return kd_error_set(err, KD_ERR_CONFIG, "%sexpected a config file, found '%s'", where, text);
    if (strlen(tok) >= sizeof run->config)
        return kd_error_set(err, KD_ERR_CONFIG, "%sexpected a config path of at most %zu characters", where, sizeof run->config - 1);
    snprintf(run->config, sizeof run->config, "%s", tok);
    while ((tok = strtok_r(NULL, " \t", &save))) {
        if (run->n_sets == KD_PIPE_MAX_SETS || !strchr(tok, '=') || strlen(tok) >= sizeof run->sets[0])
            return kd_error_set(err, KD_ERR_CONFIG, "%sexpected section.key=value overrides (at most %d), found '%s'", where,
                                KD_PIPE_MAX_SETS, tok);
        snprintf(run->sets[run->n_sets++], sizeof run->sets[0], "%s", tok);
    }
    return KD_OK;
}

/* The custom keys of the table below: field is the key's field (for these, the
 * struct or the spec itself), display "section.key" as written. */
static int key_teacher(const kd_key *k, void *field, const char *display, const char *value, const char *where,
                       kd_error *err)
{
    char at[KD_PIPE_TEXT + 256];
    if (display)
        snprintf(at, sizeof at, "%s%s: ", where, display);
    else
        snprintf(at, sizeof at, "%s%s.%s: ", where, k->section, k->key);
    return parse_spec(at, value, false, field, err);
}

static int key_precision(const kd_key *k, void *field, const char *display, const char *value, const char *where,
                         kd_error *err)
{
    char *out = field;
    if (value[0] && strcmp(value, "fp32") && strcmp(value, "bf16") && strcmp(value, "auto"))
        return kd_keys_bad_value(k, display, where, value, "fp32, bf16 or auto (nothing: each run's own)", err);
    snprintf(out, sizeof ((kd_pipeline *)0)->precision, "%s", value);
    return KD_OK;
}

static int key_seeds(const kd_key *k, void *field, const char *display, const char *value, const char *where,
                     kd_error *err)
{
    kd_pipeline *p = field;
    char buf[KD_INI_VALUE_MAX], *save = NULL, expected[64];
    snprintf(buf, sizeof buf, "%s", value);
    snprintf(expected, sizeof expected, "1 to %d seeds separated by commas", KD_PIPE_MAX_SEEDS);
    p->n_seeds = 0;
    for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        char *end;
        unsigned long long v = strtoull(tok, &end, 10);
        if (*end || p->n_seeds == KD_PIPE_MAX_SEEDS || tok[0] == '-') return kd_keys_bad_value(k, display, where, value, expected, err);
        p->seeds[p->n_seeds++] = v;
    }
    return p->n_seeds ? KD_OK : kd_keys_bad_value(k, display, where, value, expected, err);
}

static int key_prepare(const kd_key *k, void *field, const char *display, const char *value, const char *where,
                       kd_error *err)
{
    kd_pipeline *p = field;
    if (strcmp(value, "fashion-mnist") && strcmp(value, "none"))
        return kd_keys_bad_value(k, display, where, value, "fashion-mnist or none", err);
    snprintf(p->prepare, sizeof p->prepare, "%s", strcmp(value, "none") ? value : "");
    return KD_OK;
}

static int key_compare(const kd_key *k, void *field, const char *display, const char *value, const char *where,
                       kd_error *err)
{
    kd_pipeline_regime *r = field;
    char buf[KD_INI_VALUE_MAX], *save = NULL;
    snprintf(buf, sizeof buf, "%s", value);
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char a[64], b[64];
        if (r->n_compare == KD_PIPE_MAX_COMPARE || sscanf(item, " %63[A-Za-z0-9_] - %63[A-Za-z0-9_] ", a, b) != 2)
            return kd_keys_bad_value(k, display, where, item, "'RUN - RUN, ...'", err);
        snprintf(r->compare[r->n_compare][0], 64, "%s", a);
        snprintf(r->compare[r->n_compare][1], 64, "%s", b);
        r->n_compare++;
    }
    return KD_OK;
}

static int key_vs_temperature(const kd_key *k, void *field, const char *display, const char *value, const char *where,
                              kd_error *err)
{
    kd_pipeline_regime *r = field;
    if (sscanf(value, " %63[A-Za-z0-9_] - %63[A-Za-z0-9_] ", r->vs_temperature[0], r->vs_temperature[1]) != 2)
        return kd_keys_bad_value(k, display, where, value, "'DISTILLED - ALONE'", err);
    return KD_OK;
}

#define P(field) offsetof(kd_pipeline, field), sizeof(((kd_pipeline *)0)->field)
#define R(field) offsetof(kd_pipeline_regime, field), sizeof(((kd_pipeline_regime *)0)->field)

/* Every key of a pipeline file: [pipeline] keys fill the kd_pipeline, [regime.NAME]
 * keys (section "regime") its regime NAME; run.NAME lines are read apart. */
static const kd_key keys[] = {
    {"pipeline", "title", KD_KEY_TEXT, P(title), "", 0, 0, false, NULL, NULL},
    {"pipeline", "data", KD_KEY_TEXT, P(data), "", 0, 0, false, NULL, NULL},
    {"pipeline", "prepare", KD_KEY_CUSTOM, 0, 0, "none", 0, 0, false, NULL, key_prepare},
    {"pipeline", "runs", KD_KEY_TEXT, P(runs_dir), "runs", 0, 0, false, NULL, NULL},
    {"pipeline", "out", KD_KEY_TEXT, P(out_dir), "results", 0, 0, false, NULL, NULL},
    {"pipeline", "seeds", KD_KEY_CUSTOM, 0, 0, "1", 0, 0, false, NULL, key_seeds},
    {"pipeline", "teacher", KD_KEY_CUSTOM, P(teacher), "", 0, 0, false, NULL, key_teacher},
    {"pipeline", "threads", KD_KEY_INT, P(threads), "0", 0, 1024, false, NULL, NULL},
    {"pipeline", "precision", KD_KEY_CUSTOM, P(precision), "", 0, 0, false, NULL, key_precision},
    {"regime", "title", KD_KEY_TEXT, R(title), "", 0, 0, false, NULL, NULL},
    {"regime", "note", KD_KEY_TEXT, R(note), "", 0, 0, false, NULL, NULL},
    {"regime", "teacher", KD_KEY_CUSTOM, R(teacher), "", 0, 0, false, NULL, key_teacher},
    {"regime", "run.NAME", KD_KEY_CUSTOM, 0, 0, "", 0, 0, false, NULL, NULL}, /* read apart, listed for suggestions */
    {"regime", "compare", KD_KEY_CUSTOM, 0, 0, "", 0, 0, false, NULL, key_compare},
    {"regime", "plot_x", KD_KEY_TEXT, R(plot_x), "", 0, 0, false, NULL, NULL},
    {"regime", "plot_series", KD_KEY_TEXT, R(plot_series), "", 0, 0, false, NULL, NULL},
    {"regime", "vs_temperature", KD_KEY_CUSTOM, 0, 0, "", 0, 0, false, NULL, key_vs_temperature},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* The [pipeline] keys lead the table. */
static size_t n_pipeline_keys(void)
{
    size_t n = 0;
    while (n < N_KEYS && strcmp(keys[n].section, "pipeline") == 0) n++;
    return n;
}

static kd_pipeline_regime *find_regime(kd_pipeline *p, const char *id, int line, kd_error *err)
{
    for (int i = 0; i < p->n_regimes; i++)
        if (!strcmp(p->regimes[i].id, id)) return &p->regimes[i];
    if (p->n_regimes == KD_PIPE_MAX_REGIMES) {
        kd_error_set(err, KD_ERR_CONFIG, "%s:%d: at most %d regimes", p->source, line, KD_PIPE_MAX_REGIMES);
        return NULL;
    }
    if (strlen(id) >= sizeof p->regimes[0].id) {
        kd_error_set(err, KD_ERR_CONFIG, "%s:%d: [regime.%s]: expected a name of at most %zu characters", p->source, line, id,
                     sizeof p->regimes[0].id - 1);
        return NULL;
    }
    kd_pipeline_regime *r = &p->regimes[p->n_regimes++];
    snprintf(r->id, sizeof r->id, "%s", id);
    return r;
}

static int on_entry(const kd_ini_entry *e, void *user, kd_error *err)
{
    kd_pipeline *p = user;
    char where[KD_PIPE_TEXT + 32], display[256];
    snprintf(where, sizeof where, "%s:%d: ", p->source, e->line);
    bool regime = strncmp(e->section, "regime.", 7) == 0 && e->section[7];
    void *target = p;
    if (regime) {
        kd_pipeline_regime *r = find_regime(p, e->section + 7, e->line, err);
        if (!r) return KD_ERR_CONFIG;
        target = r;
        if (!strncmp(e->key, "run.", 4) && e->key[4]) {
            if (r->n_runs == KD_PIPE_MAX_RUNS)
                return kd_error_set(err, KD_ERR_CONFIG, "%s%s.%s: at most %d runs a regime", where, e->section, e->key,
                                    KD_PIPE_MAX_RUNS);
            kd_pipeline_spec *run = &r->runs[r->n_runs++];
            if (strlen(e->key + 4) >= sizeof run->name)
                return kd_error_set(err, KD_ERR_CONFIG, "%s%s.%s: expected a run name of at most %zu characters", where,
                                    e->section, e->key, sizeof run->name - 1);
            snprintf(run->name, sizeof run->name, "%s", e->key + 4);
            char at[KD_PIPE_TEXT + 300];
            snprintf(at, sizeof at, "%s%s.%s: ", where, e->section, e->key);
            return parse_spec(at, e->value, true, run, err);
        }
    }
    if (!regime && !strncmp(e->section, "regime", 6))
        return kd_error_set(err, KD_ERR_CONFIG, "%sunknown section [%s]: a regime needs a name, [regime.NAME]", where,
                            e->section);
    const kd_key *k = kd_keys_find(keys, N_KEYS, regime ? "regime" : e->section, regime ? e->section : NULL, e->key,
                                   where, err);
    if (!k) return KD_ERR_CONFIG;
    KD_ASSERT(k->type != KD_KEY_CUSTOM || k->parse, "%s.%s is read apart", k->section, k->key); /* run.NAME */
    snprintf(display, sizeof display, "%s.%s", e->section, e->key);
    return kd_keys_assign(k, target, display, e->value, where, err);
}

/* A run's config file with its overrides, as build_request will load it (the
 * pipeline's data path stands in for data.path, which validation requires). */
/* pipeline.precision, when set, overrides every run's train.precision (the teachers' too). */
static int apply_precision(const kd_pipeline *p, kd_config *c, kd_error *err)
{
    if (!p->precision[0]) return KD_OK;
    char set[64];
    snprintf(set, sizeof set, "train.precision=%s", p->precision);
    return kd_config_set(c, set, err);
}

static int check_spec(const kd_pipeline *p, const char *where, const kd_pipeline_spec *spec, kd_error *err)
{
    kd_config *c = malloc(sizeof *c);
    if (!c) return kd_error_set(err, KD_ERR_IO, "out of memory");
    kd_config_defaults(c);
    int rc = kd_config_load_file(c, spec->config, err);
    for (int i = 0; !rc && i < spec->n_sets; i++) rc = kd_config_set(c, spec->sets[i], err);
    if (!rc) rc = apply_precision(p, c, err);
    if (!rc) {
        snprintf(c->data.path, sizeof c->data.path, "%s", p->data);
        rc = kd_config_validate(c, err);
    }
    free(c);
    if (rc && err) {
        char inner[sizeof err->message];
        memcpy(inner, err->message, sizeof inner);
        if (snprintf(err->message, sizeof err->message, "%s: %s: %s", p->source, where, inner) >= (int)sizeof err->message)
            err->message[sizeof err->message - 1] = '\0'; /* a cut message still names the run first */
    }
    return rc;
}

int kd_pipeline_load(kd_pipeline *p, const char *path, kd_error *err)
{
    memset(p, 0, sizeof *p);
    snprintf(p->source, sizeof p->source, "%s", path);
    kd_keys_defaults(keys, n_pipeline_keys(), p); /* the [pipeline] keys' defaults */
    char *text = kd_file_read_text(path, 1 << 20, err);
    if (!text) return err ? err->code : KD_ERR_IO;
    int rc = kd_ini_parse(text, path, on_entry, p, err);
    free(text);
    if (rc) return rc;
    if (!p->data[0]) return kd_error_set(err, KD_ERR_CONFIG, "%s: pipeline.data: required", path);
    bool distills = false;
    for (int i = 0; i < p->n_regimes; i++)
        for (int k = 0; k < p->regimes[i].n_runs; k++) distills |= p->regimes[i].runs[k].distill;
    if (distills && !p->teacher.config[0])
        return kd_error_set(err, KD_ERR_CONFIG, "%s: pipeline.teacher: required by the distill runs", path);
    for (int i = 0; i < p->n_regimes; i++) {
        const kd_pipeline_regime *r = &p->regimes[i];
        if (!r->n_runs) return kd_error_set(err, KD_ERR_CONFIG, "%s: [regime.%s] lists no run.NAME", path, r->id);
        for (int j = 0; j < 2 && r->vs_temperature[0][0]; j++)
            if (kd_pipeline_find_run(r, r->vs_temperature[j]) < 0)
                return kd_error_set(err, KD_ERR_CONFIG, "%s: regime.%s.vs_temperature: no run named '%s'", path, r->id,
                                    r->vs_temperature[j]);
        for (int k = 0; k < r->n_compare; k++)
            for (int j = 0; j < 2; j++)
                if (kd_pipeline_find_run(r, r->compare[k][j]) < 0)
                    return kd_error_set(err, KD_ERR_CONFIG, "%s: regime.%s.compare: no run named '%s'", path, r->id,
                                        r->compare[k][j]);
    }
    /* Every run's config and overrides are checked now, not when its turn comes:
     * a typo in the last run must not wait for the teacher to train. */
    if (p->teacher.config[0] && (rc = check_spec(p, "pipeline.teacher", &p->teacher, err))) return rc;
    for (int i = 0; i < p->n_regimes; i++) {
        const kd_pipeline_regime *r = &p->regimes[i];
        char where[256];
        snprintf(where, sizeof where, "regime.%s.teacher", r->id);
        if (r->teacher.config[0] && (rc = check_spec(p, where, &r->teacher, err))) return rc;
        for (int k = 0; k < r->n_runs; k++) {
            snprintf(where, sizeof where, "regime.%s.run.%s", r->id, r->runs[k].name);
            if ((rc = check_spec(p, where, &r->runs[k], err))) return rc;
        }
    }
    return KD_OK;
}

/* ---- running -------------------------------------------------------------------------------- */

void kd_pipeline_run_name(const kd_pipeline *p, int ri, int k, int i, bool sweep, char *out, size_t size)
{
    const kd_pipeline_regime *r = &p->regimes[ri];
    if (sweep && p->n_seeds == 1)
        snprintf(out, size, "%s-%s", r->id, r->runs[k].name);
    else
        snprintf(out, size, "%s-%s-s%llu", r->id, r->runs[k].name, (unsigned long long)p->seeds[i]);
}

int kd_pipeline_run_config(const pipe_state *s, const kd_pipeline_spec *spec, const char *name, const uint64_t *seed,
                           kd_config *c, kd_error *err)
{
    const kd_pipeline *p = s->p;
    kd_config_defaults(c);
    int rc = kd_config_load_file(c, spec->config, err);
    for (int i = 0; !rc && i < spec->n_sets; i++) rc = kd_config_set(c, spec->sets[i], err);
    if (!rc) rc = apply_precision(p, c, err);
    if (rc) return rc;
    snprintf(c->data.path, sizeof c->data.path, "%s", p->data);
    snprintf(c->run.dir, sizeof c->run.dir, "%s", p->runs_dir);
    snprintf(c->run.name, sizeof c->run.name, "%s", name);
    if (seed) c->train.seed = *seed;
    return kd_config_validate(c, err);
}

static int build_request(const pipe_state *s, const kd_pipeline_spec *spec, const char *name, const uint64_t *seed,
                         kd_train_request *req, kd_error *err)
{
    return kd_pipeline_run_config(s, spec, name, seed, &req->config, err);
}

/* Trains (or reuses, or resumes) the run `name`; its folder goes to result->path. */
int kd_pipeline_ensure_run(pipe_state *s, const kd_pipeline_spec *spec, const char *name, const uint64_t *seed,
                      const char *teacher, model_result *result, kd_error *err)
{
    kd_train_request *req = calloc(1, sizeof *req);
    if (!req) return kd_error_set(err, KD_ERR_IO, "out of memory");
    int rc = build_request(s, spec, name, seed, req, err);
    char dir[KD_PIPE_TEXT + 128], file[KD_PIPE_TEXT + 160];
    snprintf(dir, sizeof dir, "%s/%s", s->p->runs_dir, name);
    snprintf(result->path, sizeof result->path, "%s", dir);
    s->done++;
    if (!rc && kd_file_is_directory(dir)) {
        snprintf(file, sizeof file, "%s/config.ini", dir);
        char *existing = kd_file_read_text(file, 1 << 20, NULL);
        bool same = existing && kd_config_matches(existing, &req->config);
        free(existing);
        if (!same)
            rc = kd_error_set(err, KD_ERR_CONFIG, "%s exists with another config: remove it, or set pipeline.runs elsewhere", dir);
        snprintf(file, sizeof file, "%s/summary.json", dir);
        if (!rc && kd_file_exists(file)) {
            if (s->rank < 0) fprintf(stderr, "[%d/%d] %s: done before, reused\n", s->done, s->total, dir);
            kd_commit_set_add_run(&s->trained, dir);
            s->runs_reused++;
            free(req);
            return KD_OK;
        }
        if (!rc) req->resume = dir;
    }
    if (!rc) {
        const char *doing = req->resume ? "resuming" : spec->distill ? "distilling" : "training";
        if (s->rank >= 0)
            fprintf(stderr, "[rank %d, run %d of %d] %s %s\n", s->rank, s->done, s->total, doing, dir);
        else
            fprintf(stderr, "[%d/%d] %s %s\n", s->done, s->total, doing, dir);
        /* A distill run whose line (or config) names distill.teacher_logits or
         * distill.teachers distils from those; the others from the pipeline's teacher. */
        const kd_config *c = &req->config;
        bool own = c->distill.teacher_logits[0] || c->distill.teachers[0];
        req->distill = spec->distill;
        req->teacher = spec->distill && !own ? teacher : NULL;
        req->quiet = s->quiet;
        req->threads_override = s->threads > 0 ? s->threads : req->config.train.threads == 0 ? s->rank_cores : 0;
        char out[KD_PIPE_TEXT + 128];
        double t0 = kd_now_seconds();
        rc = kd_train(req, out, sizeof out, err);
        s->train_seconds += kd_now_seconds() - t0;
        s->runs_trained++;
        if (!rc) snprintf(result->path, sizeof result->path, "%s", out); /* where it really went */
        if (!rc) kd_commit_set_add_run(&s->trained, result->path);
    }
    free(req);
    return rc;
}

/* Test metrics before and after a temperature fitted on validation (kdtrain
 * calibrate: reports in the run folder, T stored in its checkpoint), the
 * architecture and the mean training time of an epoch. */
static int evaluate_run(pipe_state *s, model_result *r, kd_error *err)
{
    (void)s;
    char path[KD_PIPE_TEXT + 160];
    snprintf(path, sizeof path, "%s/model.h5", r->path);
    kd_mlp_config mc;
    int rc = kd_checkpoint_read_config(path, &mc, err);
    if (rc) return rc;
    kd_mlp_describe(&mc, r->arch, sizeof r->arch);
    r->params = 0;
    for (int k = 0; k < mc.n_layers; k++) r->params += (size_t)mc.sizes[k] * mc.sizes[k + 1] + (size_t)mc.sizes[k + 1];
    kd_calibrate_options o;
    kd_calibrate_options_default(&o);
    o.model = path;
    o.data = s->p->data;
    kd_calibrate_result *c = malloc(sizeof *c);
    if (!c) return kd_error_set(err, KD_ERR_IO, "out of memory");
    rc = kd_calibrate(&o, c, err);
    if (!rc && !c->has_test) rc = kd_error_set(err, KD_ERR_DATA, "%s: expected a test split, found none", s->p->data);
    if (!rc) {
        r->acc = c->test_before.value[KD_METRIC_ACCURACY];
        r->nll = c->test_before.value[KD_METRIC_NLL];
        r->ece = c->test_before.value[KD_METRIC_ECE];
        r->brier = c->test_before.value[KD_METRIC_BRIER];
        r->ece_low = c->test_before.low[KD_METRIC_ECE];
        r->ece_high = c->test_before.high[KD_METRIC_ECE];
        r->temperature = c->fit.temperature;
        r->val_acc = c->fit_before.value[KD_METRIC_ACCURACY];
        r->val_nll = c->fit_before.value[KD_METRIC_NLL];
        r->val_ece = c->fit_before.value[KD_METRIC_ECE];
        r->nll_scaled = c->test_after.value[KD_METRIC_NLL];
        r->ece_scaled = c->test_after.value[KD_METRIC_ECE];
        r->ece_scaled_low = c->test_after.low[KD_METRIC_ECE];
        r->ece_scaled_high = c->test_after.high[KD_METRIC_ECE];
    }
    free(c);
    kd_run_dir run;
    memset(&run, 0, sizeof run);
    run.quiet = true;
    if (!rc && kd_run_dir_read(&run, r->path, err) == KD_OK && run.n_rows) {
        double total = 0;
        for (int64_t i = 0; i < run.n_rows; i++) total += run.rows[i].epoch_seconds;
        r->epoch_seconds = total / (double)run.n_rows;
    }
    kd_run_dir_close(&run);
    return rc;
}

int kd_pipeline_open_data(pipe_state *s, kd_error *err)
{
    const kd_pipeline *p = s->p;
    int rc = KD_OK;
    if (!kd_file_exists(p->data)) {
        if (!p->prepare[0])
            return kd_error_set(err, KD_ERR_IO, "%s: no such file (set pipeline.prepare = fashion-mnist to import it)", p->data);
        fprintf(stderr, "importing Fashion-MNIST into %s\n", p->data);
        if ((rc = kd_prepare_fashion_mnist(KD_FASHION_MNIST_DEFAULT_SRC, p->data, KD_FASHION_MNIST_DEFAULT_VAL, err))) return rc;
    }
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    o.val_from_train = 0; /* only the test split is evaluated here */
    if ((rc = kd_dataset_open(&s->ds, p->data, &o, err))) return rc;
    return KD_OK;
}

static int run_all(pipe_state *s, kd_error *err)
{
    const kd_pipeline *p = s->p;
    int rc = kd_pipeline_open_data(s, err);
    if (rc) return rc;
    s->total = 1;
    for (int ri = 0; ri < p->n_regimes; ri++)
        s->total += (p->regimes[ri].teacher.config[0] ? 1 : 0) + p->regimes[ri].n_runs * p->n_seeds;
    char name[160], teacher_path[KD_PIPE_TEXT + 160];
    if ((rc = kd_pipeline_ensure_run(s, &p->teacher, "teacher", NULL, NULL, &s->teacher, err)) || (rc = evaluate_run(s, &s->teacher, err)))
        return rc;
    for (int ri = 0; ri < p->n_regimes && !rc; ri++) {
        const kd_pipeline_regime *r = &p->regimes[ri];
        snprintf(teacher_path, sizeof teacher_path, "%s", s->teacher.path);
        if (r->teacher.config[0]) {
            snprintf(name, sizeof name, "%s-teacher", r->id);
            if ((rc = kd_pipeline_ensure_run(s, &r->teacher, name, NULL, NULL, &s->regime_teacher[ri], err)) ||
                (rc = evaluate_run(s, &s->regime_teacher[ri], err)))
                return rc;
            snprintf(teacher_path, sizeof teacher_path, "%s", s->regime_teacher[ri].path);
        }
        for (int k = 0; k < r->n_runs && !rc; k++)
            for (int i = 0; i < p->n_seeds && !rc; i++) {
                model_result *m = &s->results[ri][k][i];
                kd_pipeline_run_name(p, ri, k, i, false, name, sizeof name);
                rc = kd_pipeline_ensure_run(s, &r->runs[k], name, &p->seeds[i], r->runs[k].distill ? teacher_path : NULL, m, err);
                if (!rc) rc = evaluate_run(s, m, err);
                if (!rc)
                    fprintf(stderr, "      %s: test accuracy %.2f%%, NLL %.4f, ECE %.2f%%; at T = %.3f: NLL %.4f, ECE %.2f%%\n",
                            name, 100 * m->acc, m->nll, 100 * m->ece, m->temperature, m->nll_scaled, 100 * m->ece_scaled);
            }
    }
    return rc;
}

int kd_pipeline_run(const kd_pipeline *p, bool quiet, kd_comm *comm, kd_error *err)
{
    if (!p->teacher.config[0]) return kd_error_set(err, KD_ERR_CONFIG, "%s: pipeline.teacher: required by kdtrain run", p->source);
    pipe_state *s = calloc(1, sizeof *s);
    if (!s) return kd_error_set(err, KD_ERR_IO, "out of memory");
    s->p = p;
    s->quiet = quiet;
    s->started = kd_now_seconds();
    s->threads = (int)p->threads;
    s->rank = -1;
    s->ranks = 1;
    int rc = KD_OK;
    /* A parallel job trains every run over the ranks first; rank 0 then goes through
     * the pipeline as one process would, every run found finished, and reports. */
    if (kd_comm_parallel(comm)) rc = kd_pipeline_train_over_ranks(s, comm, false, err);
    if (!rc && kd_comm_rank(comm) != 0) {
        free(s);
        return KD_OK;
    }
    if (!rc) rc = run_all(s, err);
    if (s->ranks > 1) s->runs_reused -= s->runs_trained; /* the pass found the ranks' runs finished */
    if (!rc) {
        char command[KD_PIPE_TEXT + 32];
        snprintf(command, sizeof command, "kdtrain run -c %s", p->source);
        rc = kd_pipeline_write_reports(s, command, err);
    }
    if (!rc) {
        double wall = kd_now_seconds() - s->started;
        fprintf(stderr, "kdtrain run: %.1f s wall clock: %.1f s on the %d runs trained now%s (%d reused), %.1f s evaluating, "
                        "calibrating and reporting\n", wall, s->train_seconds, s->runs_trained,
                s->ranks > 1 ? " over the ranks" : "", s->runs_reused, wall - s->train_seconds);
    }
    kd_dataset_close(&s->ds);
    free(s);
    return rc;
}
