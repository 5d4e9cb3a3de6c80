/* pipeline.c - see pipeline.h. */
#define _POSIX_C_SOURCE 200809L
#include "train/pipeline.h"

#include "data/dataset.h"
#include "data/prepare.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/fileutil.h"
#include "io/ini.h"
#include "io/strbuf.h"
#include "train/evaluate.h"
#include "train/run_dir.h"
#include "train/stats.h"
#include "train/trainer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- parsing ------------------------------------------------------------------------------- */

static int set_text(char *dst, size_t size, const char *value, const char *where, kd_error *err)
{
    size_t len = strlen(value);
    if (len >= size) return kd_error_set(err, KD_ERR_CONFIG, "%sexpected at most %zu characters", where, size - 1);
    memcpy(dst, value, len + 1);
    return KD_OK;
}

/* "CONFIG [section.key=value ...]" (with a leading "train" or "distill" when want_kind). */
static int parse_spec(const char *where, const char *text, bool want_kind, kd_pipe_run *run, kd_error *err)
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
    if (set_text(run->config, sizeof run->config, tok, where, err)) return KD_ERR_CONFIG;
    while ((tok = strtok_r(NULL, " \t", &save))) {
        if (run->n_sets == KD_PIPE_MAX_SETS || !strchr(tok, '='))
            return kd_error_set(err, KD_ERR_CONFIG, "%sexpected section.key=value overrides (at most %d), found '%s'", where,
                                KD_PIPE_MAX_SETS, tok);
        if (set_text(run->sets[run->n_sets++], sizeof run->sets[0], tok, where, err)) return KD_ERR_CONFIG;
    }
    return KD_OK;
}

static int parse_seeds(const char *where, const char *text, kd_pipeline *p, kd_error *err)
{
    char buf[KD_INI_VALUE_MAX], *save = NULL;
    snprintf(buf, sizeof buf, "%s", text);
    p->n_seeds = 0;
    for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        char *end;
        unsigned long long v = strtoull(tok, &end, 10);
        if (*end || p->n_seeds == KD_PIPE_MAX_SEEDS || tok[0] == '-')
            return kd_error_set(err, KD_ERR_CONFIG, "%sexpected 1 to %d seeds separated by commas, found '%s'", where,
                                KD_PIPE_MAX_SEEDS, text);
        p->seeds[p->n_seeds++] = v;
    }
    if (!p->n_seeds) return kd_error_set(err, KD_ERR_CONFIG, "%sexpected at least one seed", where);
    return KD_OK;
}

static int parse_compare(const char *where, const char *text, kd_pipe_regime *r, kd_error *err)
{
    char buf[KD_INI_VALUE_MAX], *save = NULL;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char a[64], b[64];
        if (r->n_compare == KD_PIPE_MAX_COMPARE || sscanf(item, " %63[A-Za-z0-9_] - %63[A-Za-z0-9_] ", a, b) != 2)
            return kd_error_set(err, KD_ERR_CONFIG, "%sexpected 'RUN - RUN, ...', found '%s'", where, item);
        snprintf(r->compare[r->n_compare][0], 64, "%s", a);
        snprintf(r->compare[r->n_compare][1], 64, "%s", b);
        r->n_compare++;
    }
    return KD_OK;
}

static int on_entry(const kd_ini_entry *e, void *user, kd_error *err)
{
    kd_pipeline *p = user;
    char where[KD_PIPE_TEXT + 256];
    snprintf(where, sizeof where, "%s:%d: %s.%s: ", p->source, e->line, e->section, e->key);
    const char *v = e->value;
    if (!strcmp(e->section, "pipeline")) {
        if (!strcmp(e->key, "title")) return set_text(p->title, sizeof p->title, v, where, err);
        else if (!strcmp(e->key, "data")) return set_text(p->data, sizeof p->data, v, where, err);
        else if (!strcmp(e->key, "prepare")) {
            if (strcmp(v, "fashion-mnist") && strcmp(v, "none"))
                return kd_error_set(err, KD_ERR_CONFIG, "%sexpected fashion-mnist or none, found '%s'", where, v);
            return set_text(p->prepare, sizeof p->prepare, strcmp(v, "none") ? v : "", where, err);
        } else if (!strcmp(e->key, "runs")) return set_text(p->runs_dir, sizeof p->runs_dir, v, where, err);
        else if (!strcmp(e->key, "out")) return set_text(p->out_dir, sizeof p->out_dir, v, where, err);
        else if (!strcmp(e->key, "seeds")) return parse_seeds(where, v, p, err);
        else if (!strcmp(e->key, "teacher")) return parse_spec(where, v, false, &p->teacher, err);
        else if (!strcmp(e->key, "threads")) {
            p->threads = atoi(v);
            if (p->threads < 0 || p->threads > 1024)
                return kd_error_set(err, KD_ERR_CONFIG, "%sexpected 0 to 1024, found '%s'", where, v);
        } else
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: unknown key pipeline.%s (expected title, data, prepare, runs, out, seeds, teacher, threads)",
                                p->source, e->line, e->key);
        return KD_OK;
    }
    if (strncmp(e->section, "regime.", 7) != 0 || !e->section[7])
        return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: unknown section [%s] (expected [pipeline] or [regime.NAME])",
                            p->source, e->line, e->section);
    kd_pipe_regime *r = NULL;
    for (int i = 0; i < p->n_regimes; i++)
        if (!strcmp(p->regimes[i].id, e->section + 7)) r = &p->regimes[i];
    if (!r) {
        if (p->n_regimes == KD_PIPE_MAX_REGIMES)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: at most %d regimes", p->source, e->line, KD_PIPE_MAX_REGIMES);
        r = &p->regimes[p->n_regimes++];
        if (set_text(r->id, sizeof r->id, e->section + 7, where, err)) return KD_ERR_CONFIG;
    }
    if (!strcmp(e->key, "title")) return set_text(r->title, sizeof r->title, v, where, err);
    else if (!strcmp(e->key, "note")) return set_text(r->note, sizeof r->note, v, where, err);
    else if (!strcmp(e->key, "teacher")) return parse_spec(where, v, false, &r->teacher, err);
    else if (!strcmp(e->key, "compare")) return parse_compare(where, v, r, err);
    else if (!strncmp(e->key, "run.", 4) && e->key[4]) {
        if (r->n_runs == KD_PIPE_MAX_RUNS)
            return kd_error_set(err, KD_ERR_CONFIG, "%sat most %d runs a regime", where, KD_PIPE_MAX_RUNS);
        kd_pipe_run *run = &r->runs[r->n_runs++];
        if (set_text(run->name, sizeof run->name, e->key + 4, where, err)) return KD_ERR_CONFIG;
        return parse_spec(where, v, true, run, err);
    } else
        return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: unknown key %s.%s (expected title, note, teacher, run.NAME, compare)",
                            p->source, e->line, e->section, e->key);
    return KD_OK;
}

static int find_run(const kd_pipe_regime *r, const char *name)
{
    for (int i = 0; i < r->n_runs; i++)
        if (!strcmp(r->runs[i].name, name)) return i;
    return -1;
}

int kd_pipeline_load(kd_pipeline *p, const char *path, kd_error *err)
{
    memset(p, 0, sizeof *p);
    snprintf(p->source, sizeof p->source, "%s", path);
    snprintf(p->runs_dir, sizeof p->runs_dir, "runs");
    snprintf(p->out_dir, sizeof p->out_dir, "results");
    p->seeds[0] = 1;
    p->n_seeds = 1;
    char *text = kd_read_text_file(path, 1 << 20, err);
    if (!text) return err ? err->code : KD_ERR_IO;
    int rc = kd_ini_parse(text, path, on_entry, p, err);
    free(text);
    if (rc) return rc;
    if (!p->data[0]) return kd_error_set(err, KD_ERR_CONFIG, "%s: pipeline.data: required", path);
    if (!p->teacher.config[0]) return kd_error_set(err, KD_ERR_CONFIG, "%s: pipeline.teacher: required", path);
    for (int i = 0; i < p->n_regimes; i++) {
        const kd_pipe_regime *r = &p->regimes[i];
        if (!r->n_runs) return kd_error_set(err, KD_ERR_CONFIG, "%s: [regime.%s] lists no run.NAME", path, r->id);
        for (int k = 0; k < r->n_compare; k++)
            for (int j = 0; j < 2; j++)
                if (find_run(r, r->compare[k][j]) < 0)
                    return kd_error_set(err, KD_ERR_CONFIG, "%s: regime.%s.compare: no run named '%s'", path, r->id,
                                        r->compare[k][j]);
    }
    return KD_OK;
}

/* ---- running -------------------------------------------------------------------------------- */

typedef struct model_result {
    char path[KD_PIPE_TEXT + 128];
    char arch[128];
    size_t params;
    double acc, nll, ece, brier, epoch_seconds;
} model_result;

typedef struct pipe_state {
    const kd_pipeline *p;
    bool quiet;
    kd_dataset ds;              /* the test split, loaded once */
    kd_tape tape;
    model_result teacher;
    model_result regime_teacher[KD_PIPE_MAX_REGIMES];
    model_result results[KD_PIPE_MAX_REGIMES][KD_PIPE_MAX_RUNS][KD_PIPE_MAX_SEEDS];
    int done, total;
} pipe_state;

static int build_request(const pipe_state *s, const kd_pipe_run *spec, const char *name, const uint64_t *seed,
                         kd_train_request *req, kd_error *err)
{
    const kd_pipeline *p = s->p;
    kd_config_defaults(&req->config);
    int rc = kd_config_load_file(&req->config, spec->config, err);
    for (int i = 0; !rc && i < spec->n_sets; i++) rc = kd_config_set(&req->config, spec->sets[i], err);
    if (rc) return rc;
    kd_config *c = &req->config;
    snprintf(c->data.path, sizeof c->data.path, "%s", p->data);
    snprintf(c->run.dir, sizeof c->run.dir, "%s", p->runs_dir);
    snprintf(c->run.name, sizeof c->run.name, "%s", name);
    if (seed) c->train.seed = *seed;
    if (p->threads > 0) c->train.threads = p->threads;
    return kd_config_validate(c, err);
}

/* Trains (or reuses, or resumes) the run `name`; its folder goes to result->path. */
static int ensure_run(pipe_state *s, const kd_pipe_run *spec, const char *name, const uint64_t *seed,
                      const char *teacher, model_result *result, kd_error *err)
{
    kd_train_request *req = calloc(1, sizeof *req);
    if (!req) return kd_error_set(err, KD_ERR_IO, "out of memory");
    int rc = build_request(s, spec, name, seed, req, err);
    char dir[KD_PIPE_TEXT + 128], file[KD_PIPE_TEXT + 160];
    snprintf(dir, sizeof dir, "%s/%s", s->p->runs_dir, name);
    snprintf(result->path, sizeof result->path, "%s", dir);
    s->done++;
    if (!rc && kd_is_directory(dir)) {
        static char resolved[16384];
        kd_config_format(&req->config, resolved, sizeof resolved);
        snprintf(file, sizeof file, "%s/config.ini", dir);
        char *existing = kd_read_text_file(file, 1 << 20, NULL);
        bool same = existing && !strcmp(existing, resolved);
        free(existing);
        if (!same)
            rc = kd_error_set(err, KD_ERR_CONFIG, "%s exists with another config: remove it, or set pipeline.runs elsewhere", dir);
        snprintf(file, sizeof file, "%s/summary.json", dir);
        if (!rc && kd_path_exists(file)) {
            fprintf(stderr, "[%d/%d] %s: done before, reused\n", s->done, s->total, dir);
            free(req);
            return KD_OK;
        }
        if (!rc) req->resume = dir;
    }
    if (!rc) {
        fprintf(stderr, "[%d/%d] %s %s%s\n", s->done, s->total, req->resume ? "resuming" : spec->distill ? "distilling" : "training",
                dir, teacher ? "" : "");
        req->teacher = teacher;
        req->quiet = s->quiet;
        char out[KD_PIPE_TEXT + 128];
        rc = kd_train(req, out, sizeof out, err);
    }
    free(req);
    return rc;
}

static int evaluate_run(pipe_state *s, model_result *r, kd_error *err)
{
    char path[KD_PIPE_TEXT + 160];
    snprintf(path, sizeof path, "%s/model.h5", r->path);
    kd_mlp_config mc;
    kd_mlp mlp;
    int rc = kd_checkpoint_read_config(path, &mc, err);
    if (rc || (rc = kd_mlp_create(&mlp, &mc, err))) return rc;
    rc = kd_checkpoint_load(path, &mlp, NULL, NULL, NULL, 0, NULL, err);
    kd_metrics *m = malloc(sizeof *m);
    if (!rc && !m) rc = kd_error_set(err, KD_ERR_IO, "out of memory");
    if (!rc) {
        kd_eval_options eo = {256, false, 1.0, 15, 0};
        rc = kd_evaluate(&mlp, &s->tape, &s->ds, KD_SPLIT_TEST, &eo, NULL, NULL, m, err);
    }
    if (!rc) {
        kd_metrics_summary sum = kd_metrics_summarize(m);
        r->acc = sum.accuracy;
        r->nll = sum.nll;
        r->ece = sum.ece;
        r->brier = sum.brier;
        r->params = mlp.n_params;
        kd_mlp_describe(&mc, r->arch, sizeof r->arch);
        kd_run_dir run;
        memset(&run, 0, sizeof run);
        run.quiet = true;
        if (kd_run_dir_open(&run, r->path, INT64_MAX, err) == KD_OK && run.n_rows) {
            double total = 0;
            for (int64_t i = 0; i < run.n_rows; i++) total += run.rows[i].epoch_seconds;
            r->epoch_seconds = total / (double)run.n_rows;
        }
        kd_run_dir_close(&run);
    }
    free(m);
    kd_mlp_free(&mlp);
    return rc;
}

/* ---- the report ----------------------------------------------------------------------------- */

static void git_commit(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (!f) return;
    if (fgets(buf, (int)size, f)) buf[strcspn(buf, "\n")] = '\0';
    pclose(f);
    f = popen("git status --porcelain --untracked-files=no 2>/dev/null", "r");
    char line[8];
    if (f && fgets(line, sizeof line, f)) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, " (with uncommitted changes)");
    }
    if (f) pclose(f);
}

static void model_row(kd_strbuf *t, const char *label, const model_result *r)
{
    kd_strbuf_printf(t, "| %s | %s | %zu | %.2f | %.4f | %.2f | %.2f |\n", label, r->arch, r->params, 100 * r->acc, r->nll, 100 * r->ece,
        r->epoch_seconds);
}

static void regime_report(kd_strbuf *t, const pipe_state *s, int ri)
{
    const kd_pipeline *p = s->p;
    const kd_pipe_regime *r = &p->regimes[ri];
    int n = p->n_seeds;
    kd_strbuf_printf(t, "\n## %s\n\n", r->title[0] ? r->title : r->id);
    if (r->note[0]) kd_strbuf_printf(t, "%s\n\n", r->note);
    if (r->teacher.config[0]) {
        kd_strbuf_printf(t, "Teacher of this regime (`%s`):\n\n| model | architecture | parameters | test accuracy %% | NLL | ECE %% | s/epoch |\n|---|---|---|---|---|---|---|\n",
            r->teacher.config);
        model_row(t, "teacher", &s->regime_teacher[ri]);
        kd_strbuf_printf(t, "\n");
    }
    kd_strbuf_printf(t, "| run | architecture | parameters | test accuracy %% (mean ± sd) | per seed | NLL | ECE %% | s/epoch |\n"
           "|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < r->n_runs; k++) {
        double acc[KD_PIPE_MAX_SEEDS], nll[KD_PIPE_MAX_SEEDS], ece[KD_PIPE_MAX_SEEDS], sec[KD_PIPE_MAX_SEEDS];
        for (int i = 0; i < n; i++) {
            const model_result *m = &s->results[ri][k][i];
            acc[i] = 100 * m->acc;
            nll[i] = m->nll;
            ece[i] = 100 * m->ece;
            sec[i] = m->epoch_seconds;
        }
        kd_stat a = kd_stat_of(acc, n), l = kd_stat_of(nll, n), e = kd_stat_of(ece, n), tm = kd_stat_of(sec, n);
        kd_strbuf_printf(t, "| %s (%s) | %s | %zu | %.2f ± %.2f | ", r->runs[k].name, r->runs[k].distill ? "distilled" : "alone",
            s->results[ri][k][0].arch, s->results[ri][k][0].params, a.mean, a.sd);
        for (int i = 0; i < n; i++) kd_strbuf_printf(t, "%s%.2f", i ? " / " : "", acc[i]);
        kd_strbuf_printf(t, " | %.4f ± %.4f | %.2f ± %.2f | %.2f |\n", l.mean, l.sd, e.mean, e.sd, tm.mean);
    }
    if (!r->n_compare) return;
    kd_strbuf_printf(t, "\nPaired by seed (same initial weights and batch order), B − A:\n\n"
           "| B − A | Δ accuracy, points (mean ± sd) | per seed | Δ NLL | Δ ECE, points |\n|---|---|---|---|---|\n");
    for (int k = 0; k < r->n_compare; k++) {
        int b = find_run(r, r->compare[k][0]), a = find_run(r, r->compare[k][1]);
        double xa[KD_PIPE_MAX_SEEDS], xb[KD_PIPE_MAX_SEEDS], la[KD_PIPE_MAX_SEEDS], lb[KD_PIPE_MAX_SEEDS],
            ea[KD_PIPE_MAX_SEEDS], eb[KD_PIPE_MAX_SEEDS];
        for (int i = 0; i < n; i++) {
            xa[i] = 100 * s->results[ri][a][i].acc;
            xb[i] = 100 * s->results[ri][b][i].acc;
            la[i] = s->results[ri][a][i].nll;
            lb[i] = s->results[ri][b][i].nll;
            ea[i] = 100 * s->results[ri][a][i].ece;
            eb[i] = 100 * s->results[ri][b][i].ece;
        }
        kd_stat d = kd_stat_paired(xa, xb, n), dl = kd_stat_paired(la, lb, n), de = kd_stat_paired(ea, eb, n);
        kd_strbuf_printf(t, "| %s − %s | %+.2f ± %.2f | ", r->compare[k][0], r->compare[k][1], d.mean, d.sd);
        for (int i = 0; i < n; i++) kd_strbuf_printf(t, "%s%+.2f", i ? " / " : "", xb[i] - xa[i]);
        kd_strbuf_printf(t, " | %+.4f ± %.4f | %+.2f ± %.2f |\n", dl.mean, dl.sd, de.mean, de.sd);
    }
}

static int write_reports(const pipe_state *s, const char *command, kd_error *err)
{
    const kd_pipeline *p = s->p;
    kd_strbuf md = {0}, csv = {0};
    char commit[128], date[64];
    git_commit(commit, sizeof commit);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    kd_strbuf_printf(&md, "# %s\n\nProduced by `%s` at commit %s on %s; seeds", p->title[0] ? p->title : "Results", command, commit, date);
    for (int i = 0; i < p->n_seeds; i++) kd_strbuf_printf(&md, "%s %llu", i ? "," : "", (unsigned long long)p->seeds[i]);
    kd_strbuf_printf(&md, ". Metrics on the test split (%lld samples) of `%s`; ECE with 15 equal-width bins; s/epoch is the training time "
             "of one epoch on this machine. Run folders: `%s/`.\n\n",
        (long long)s->ds.split[KD_SPLIT_TEST].rows, p->data, p->runs_dir);
    kd_strbuf_printf(&md, "| model | architecture | parameters | test accuracy %% | NLL | ECE %% | s/epoch |\n|---|---|---|---|---|---|---|\n");
    model_row(&md, "teacher", &s->teacher);
    kd_strbuf_printf(&csv, "regime,run,kind,seed,architecture,parameters,test_accuracy,test_nll,test_ece,test_brier,epoch_seconds,run_folder\n");
    kd_strbuf_printf(&csv, "teacher,teacher,train,,%s,%zu,%.6f,%.6f,%.6f,%.6f,%.4f,%s\n", s->teacher.arch, s->teacher.params, s->teacher.acc,
        s->teacher.nll, s->teacher.ece, s->teacher.brier, s->teacher.epoch_seconds, s->teacher.path);
    for (int ri = 0; ri < p->n_regimes; ri++) {
        regime_report(&md, s, ri);
        const kd_pipe_regime *r = &p->regimes[ri];
        for (int k = 0; k < r->n_runs; k++)
            for (int i = 0; i < p->n_seeds; i++) {
                const model_result *m = &s->results[ri][k][i];
                kd_strbuf_printf(&csv, "%s,%s,%s,%llu,%s,%zu,%.6f,%.6f,%.6f,%.6f,%.4f,%s\n", r->id, r->runs[k].name,
                    r->runs[k].distill ? "distill" : "train", (unsigned long long)p->seeds[i], m->arch, m->params, m->acc,
                    m->nll, m->ece, m->brier, m->epoch_seconds, m->path);
            }
    }
    int rc = (md.failed || csv.failed) ? kd_error_set(err, KD_ERR_IO, "out of memory for the report") : kd_mkdir_p(p->out_dir, err);
    char path[KD_PIPE_TEXT + 32];
    if (!rc) {
        snprintf(path, sizeof path, "%s/summary.md", p->out_dir);
        rc = kd_write_file_atomic(path, md.text, md.length, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/summary.csv", p->out_dir);
        rc = kd_write_file_atomic(path, csv.text, csv.length, err);
    }
    if (!rc) fprintf(stderr, "wrote %s/summary.md and summary.csv\n", p->out_dir);
    kd_strbuf_free(&md);
    kd_strbuf_free(&csv);
    return rc;
}

static int run_all(pipe_state *s, kd_error *err)
{
    const kd_pipeline *p = s->p;
    int rc = KD_OK;
    if (!kd_path_exists(p->data)) {
        if (!p->prepare[0])
            return kd_error_set(err, KD_ERR_IO, "%s: no such file (set pipeline.prepare = fashion-mnist to import it)", p->data);
        fprintf(stderr, "importing Fashion-MNIST into %s\n", p->data);
        if ((rc = kd_prepare_fashion_mnist(KD_FASHION_MNIST_DEFAULT_SRC, p->data, KD_FASHION_MNIST_DEFAULT_VAL, err))) return rc;
    }
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    o.val_from_train = 0; /* only the test split is evaluated here */
    if ((rc = kd_dataset_open(&s->ds, p->data, &o, err)) || (rc = kd_dataset_load(&s->ds, KD_SPLIT_TEST, err))) return rc;
    s->total = 1;
    for (int ri = 0; ri < p->n_regimes; ri++)
        s->total += (p->regimes[ri].teacher.config[0] ? 1 : 0) + p->regimes[ri].n_runs * p->n_seeds;
    char name[160], teacher_path[KD_PIPE_TEXT + 160];
    if ((rc = ensure_run(s, &p->teacher, "teacher", NULL, NULL, &s->teacher, err)) || (rc = evaluate_run(s, &s->teacher, err)))
        return rc;
    for (int ri = 0; ri < p->n_regimes && !rc; ri++) {
        const kd_pipe_regime *r = &p->regimes[ri];
        snprintf(teacher_path, sizeof teacher_path, "%s", s->teacher.path);
        if (r->teacher.config[0]) {
            snprintf(name, sizeof name, "%s-teacher", r->id);
            if ((rc = ensure_run(s, &r->teacher, name, NULL, NULL, &s->regime_teacher[ri], err)) ||
                (rc = evaluate_run(s, &s->regime_teacher[ri], err)))
                return rc;
            snprintf(teacher_path, sizeof teacher_path, "%s", s->regime_teacher[ri].path);
        }
        for (int k = 0; k < r->n_runs && !rc; k++)
            for (int i = 0; i < p->n_seeds && !rc; i++) {
                model_result *m = &s->results[ri][k][i];
                snprintf(name, sizeof name, "%s-%s-s%llu", r->id, r->runs[k].name, (unsigned long long)p->seeds[i]);
                rc = ensure_run(s, &r->runs[k], name, &p->seeds[i], r->runs[k].distill ? teacher_path : NULL, m, err);
                if (!rc) rc = evaluate_run(s, m, err);
                if (!rc)
                    fprintf(stderr, "      %s: test accuracy %.2f%%, NLL %.4f, ECE %.2f%%\n", name, 100 * m->acc, m->nll,
                            100 * m->ece);
            }
    }
    return rc;
}

int kd_pipeline_run(const kd_pipeline *p, bool quiet, kd_error *err)
{
    pipe_state *s = calloc(1, sizeof *s);
    if (!s) return kd_error_set(err, KD_ERR_IO, "out of memory");
    s->p = p;
    s->quiet = quiet;
    kd_tape_init(&s->tape, 0);
    int rc = run_all(s, err);
    if (!rc) {
        char command[KD_PIPE_TEXT + 32];
        snprintf(command, sizeof command, "kdtrain run -c %s", p->source);
        rc = write_reports(s, command, err);
    }
    kd_tape_free(&s->tape);
    kd_dataset_close(&s->ds);
    free(s);
    return rc;
}
