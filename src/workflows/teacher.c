/* teacher.c - distillation's teachers: named (the list), opened one by one into their
 * logits on the training (and validation) rows, calibrated when asked, and combined
 * into the cache (see teacher.h; the combination is teacher_ensemble.c). */
#define _POSIX_C_SOURCE 200809L
#include "core/hash.h"
#include "core/timer.h"
#include "workflows/teacher.h"

#include "calib/temperature.h"
#include "io/h5util.h"
#include "io/logits.h"
#include "io/npy.h"
#include "workflows/evaluate.h"
#include "workflows/model.h"

#include <ctype.h>
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- naming ----------------------------------------------------------------------------- */

bool kd_teacher_is_logits(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return false;
        if (kd_npy_is_npy(path)) return true;
        hid_t file = kd_h5_open_read(path, NULL);
        if (file < 0) return false; /* neither: opening it as a model says what it is */
        bool model = kd_h5_link_exists(file, "/model");
        H5Fclose(file);
        return !model;
    }
    if (kd_npy_is_npy(path)) return true;
    const char *split = strstr(path, ":/");
    return split && split > path;
}

static int add_item(kd_teacher_list *l, const char *text, size_t len, bool logits, kd_error *err)
{
    while (len && isspace((unsigned char)*text)) text++, len--;
    while (len && isspace((unsigned char)text[len - 1])) len--;
    if (!len)
        return kd_error_set(err, KD_ERR_CONFIG, "%s: expected run folders, checkpoints or logits files separated by commas, "
                                                "found an empty item", l->key);
    if (l->n == KD_TEACHERS_MAX)
        return kd_error_set(err, KD_ERR_CONFIG, "%s: expected at most %d teachers", l->key, KD_TEACHERS_MAX);
    if (len >= sizeof l->path[0])
        return kd_error_set(err, KD_ERR_CONFIG, "%s: expected a path of at most %zu characters", l->key, sizeof l->path[0] - 1);
    memcpy(l->path[l->n], text, len);
    l->path[l->n][len] = '\0';
    l->kind[l->n] = logits || kd_teacher_is_logits(l->path[l->n]) ? KD_TEACHER_LOGITS : KD_TEACHER_MODEL;
    l->n++;
    return KD_OK;
}

int kd_teacher_list_resolve(kd_teacher_list *l, const char *given, const kd_config *c, kd_error *err)
{
    memset(l, 0, sizeof *l);
    const char *text = NULL;
    bool logits = false;
    if (given && given[0]) {
        if (c->distill.teachers[0])
            return kd_error_set(err, KD_ERR_CONFIG,
                                "--teacher %s: cannot be combined with distill.teachers = %s (name every teacher there)", given,
                                c->distill.teachers);
        snprintf(l->key, sizeof l->key, "--teacher");
        return add_item(l, given, strlen(given), false, err);
    }
    if (c->distill.teachers[0]) {
        snprintf(l->key, sizeof l->key, "distill.teachers");
        for (const char *p = c->distill.teachers;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            int rc = add_item(l, p, len, false, err);
            if (rc) return rc;
            if (!comma) return KD_OK;
            p = comma + 1;
        }
    }
    if (c->distill.teacher_logits[0]) {
        snprintf(l->key, sizeof l->key, "distill.teacher_logits");
        text = c->distill.teacher_logits;
        logits = true;
    } else if (c->distill.teacher[0]) {
        snprintf(l->key, sizeof l->key, "distill.teacher");
        text = c->distill.teacher;
    } else {
        return kd_error_set(err, KD_ERR_CONFIG, "distill.teacher: required (or --teacher RUN_OR_CHECKPOINT); or "
                                                "distill.teacher_logits = FILE, or distill.teachers = A, B, ...");
    }
    return add_item(l, text, strlen(text), logits, err);
}

/* ---- one teacher's logits ---------------------------------------------------------------- */

typedef struct member_logits {
    float *train; /* (train rows, classes), owned */
    float *val;   /* (val rows, classes) or NULL: inside train's block for a file, owned for a model */
    bool val_owned;
} member_logits;

static void member_free(member_logits *m)
{
    if (m->val_owned) free(m->val);
    free(m->train);
    memset(m, 0, sizeof *m);
}

/* The message in err, prefixed with "KEY: ". */
static int prefixed(kd_error *err, int rc, const char *key)
{
    if (!err) return rc;
    char inner[sizeof err->message];
    memcpy(inner, err->message, sizeof inner);
    if (snprintf(err->message, sizeof err->message, "%s: %s", key, inner) >= (int)sizeof err->message)
        err->message[sizeof err->message - 1] = '\0';
    return rc;
}

static double accuracy(const float *z, const int32_t *labels, int64_t rows, int classes)
{
    int64_t correct = 0;
    for (int64_t i = 0; i < rows; i++) {
        const float *r = z + (size_t)i * (size_t)classes;
        int top = 0;
        for (int c = 1; c < classes; c++)
            if (r[c] > r[top]) top = c;
        correct += top == labels[i];
    }
    return rows ? (double)correct / (double)rows : NAN;
}


static int open_model(kd_teacher_member *m, member_logits *ml, const char *key, const char *path, bool want_val,
                      bool calibrate, const kd_config *cfg, const kd_dataset *ds, kd_tape *tape, kd_error *err)
{
    kd_model model;
    int rc = kd_model_open(&model, path, err);
    if (rc) return prefixed(err, rc, key);
    const kd_mlp_config *tc = &model.mlp.config;
    kd_mlp_describe(tc, m->description, sizeof m->description);
    snprintf(m->source, sizeof m->source, "%s", model.checkpoint);
    const kd_split_info *tr = &ds->split[KD_SPLIT_TRAIN], *va = &ds->split[KD_SPLIT_VAL];
    size_t c = (size_t)ds->num_classes;
    if (kd_model_classes(&model) != ds->num_classes || tc->sizes[0] != ds->dim)
        rc = kd_error_set(err, KD_ERR_CONFIG, "%s %s: expected %d inputs and %d classes like the data, found a %s model", key,
                          model.checkpoint, ds->dim, ds->num_classes, m->description);
    want_val = want_val && va->present && va->rows > 0;
    if (!rc && calibrate && !model.calibration.present && !want_val)
        rc = kd_error_set(err, KD_ERR_CONFIG, "%s %s: distill.calibrate_teachers fits its T on the validation split, "
                                              "but %s has none", key, model.checkpoint, ds->path);
    if (!rc) {
        ml->train = malloc((size_t)tr->rows * c * sizeof(float));
        ml->val = want_val ? malloc((size_t)va->rows * c * sizeof(float)) : NULL;
        ml->val_owned = true;
        if (!ml->train || (want_val && !ml->val)) rc = kd_error_set(err, KD_ERR_IO, "out of memory for the teacher logits");
    }
    kd_eval_options eo = {.batch_size = (int)cfg->train.batch_size, .streaming = cfg->data.streaming, .temperature = 1.0,
                          .n_bins = 15};
    if (!rc) rc = kd_evaluate(&model.mlp, tape, ds, KD_SPLIT_TRAIN, &eo, ml->train, NULL, NULL, err);
    if (!rc && ml->val) rc = kd_evaluate(&model.mlp, tape, ds, KD_SPLIT_VAL, &eo, ml->val, NULL, NULL, err);
    if (!rc && calibrate && model.calibration.present) {
        m->temperature = model.calibration.temperature;
        m->temperature_from = "its checkpoint's calibration";
    }
    kd_model_close(&model);
    return rc;
}

static int open_file(kd_teacher_member *m, member_logits *ml, const char *key, const char *spec, const kd_dataset *ds,
                     kd_error *err)
{
    kd_logits_read_options o = {.labels_optional = true};
    kd_logits L;
    int rc = kd_logits_read_spec(&L, spec, NULL, &o, err);
    if (rc) return prefixed(err, rc, key);
    char name[KD_PATH_MAX + 300];
    snprintf(name, sizeof name, "%s%s%s", L.file, L.dataset[0] ? ":" : "", L.dataset);
    const kd_split_info *tr = &ds->split[KD_SPLIT_TRAIN], *va = &ds->split[KD_SPLIT_VAL];
    int64_t n_val = va->present ? va->rows : 0;
    if (L.classes != ds->num_classes)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: %s: expected %d classes like %s, found %d", key, name, ds->num_classes,
                          ds->path, L.classes);
    else if (L.rows != tr->rows && (n_val == 0 || L.rows != tr->rows + n_val))
        rc = kd_error_set(err, KD_ERR_DATA,
                          "%s: %s: expected a row for each training row of %s in its order (%lld), optionally followed by "
                          "the validation rows (%lld in all), found %lld",
                          key, name, ds->path, (long long)tr->rows, (long long)(tr->rows + n_val), (long long)L.rows);
    /* Labels beside the logits are a check of the row order. */
    for (int64_t i = 0; !rc && L.labels && i < L.rows; i++) {
        bool train = i < tr->rows;
        int64_t r = train ? i : i - tr->rows;
        int32_t want = train ? tr->labels[r] : va->labels[r];
        if (L.labels[i] != want)
            rc = kd_error_set(err, KD_ERR_DATA,
                              "%s: %s: row %lld is labelled %d in %s%s%s but the data's %s row %lld is %d: the rows must "
                              "follow the data set's order",
                              key, name, (long long)i, L.labels[i], L.labels_file, L.labels_dataset[0] ? ":" : "",
                              L.labels_dataset, train ? "training" : "validation", (long long)r, want);
    }
    if (!rc) {
        m->fingerprint = kd_fnv1a64(KD_FNV1A64_BASIS, L.logits, (size_t)L.rows * (size_t)L.classes * sizeof(float));
        snprintf(m->source, sizeof m->source, "%s", spec);
        char val[48] = "";
        if (L.rows > tr->rows) snprintf(val, sizeof val, " + %lld validation", (long long)(L.rows - tr->rows));
        snprintf(m->description, sizeof m->description, "logits [%lld x %d] %s: %lld training%s rows, fnv1a64 %016" PRIx64,
                 (long long)L.rows, L.classes, L.stored_double ? "float64" : "float32", (long long)tr->rows, val,
                 m->fingerprint);
        ml->train = L.logits; /* the training rows lead: the block is the cache as it is */
        ml->val = L.rows > tr->rows ? L.logits + (size_t)tr->rows * (size_t)L.classes : NULL;
        ml->val_owned = false;
        L.logits = NULL;
    }
    kd_logits_free(&L);
    return rc;
}

/* ---- the cache ------------------------------------------------------------------------------ */

static void append_identity(kd_teacher_logits *out, const kd_teacher_member *m, const char *as_given)
{
    size_t used = strlen(out->identity);
    char item[KD_CONFIG_STR + 64];
    if (m->kind == KD_TEACHER_MODEL)
        snprintf(item, sizeof item, "%s", as_given);
    else
        snprintf(item, sizeof item, "%s [fnv1a64 %016" PRIx64 "]", as_given, m->fingerprint);
    snprintf(out->identity + used, sizeof out->identity - used, "%s%s", used ? ", " : "", item);
}

static int load_members(kd_teacher_logits *out, member_logits *ml, const kd_teacher_list *list, const kd_config *cfg,
                        const kd_dataset *ds, kd_tape *tape, kd_error *err)
{
    bool calibrate = cfg->distill.calibrate_teachers, want_val = calibrate || list->n > 1;
    const kd_split_info *tr = &ds->split[KD_SPLIT_TRAIN], *va = &ds->split[KD_SPLIT_VAL];
    int rc = KD_OK;
    for (int k = 0; k < list->n && !rc; k++) {
        kd_teacher_member *m = &out->member[k];
        m->kind = list->kind[k];
        m->temperature = 1.0;
        m->temperature_from = "";
        m->val_accuracy = NAN;
        rc = m->kind == KD_TEACHER_MODEL
                 ? open_model(m, &ml[k], list->key, list->path[k], want_val, calibrate, cfg, ds, tape, err)
                 : open_file(m, &ml[k], list->key, list->path[k], ds, err);
        out->n_members = k + 1;
        if (rc) break;
        append_identity(out, m, list->path[k]);
        m->train_accuracy = accuracy(ml[k].train, tr->labels, tr->rows, ds->num_classes);
        if (ml[k].val) m->val_accuracy = accuracy(ml[k].val, va->labels, va->rows, ds->num_classes);
        if (!calibrate || m->temperature_from[0]) continue;
        if (!ml[k].val)
            return kd_error_set(err, KD_ERR_DATA,
                                "%s: %s: distill.calibrate_teachers fits its T on its validation rows, but the file has only "
                                "the %lld training rows; expected the training rows followed by the %lld validation rows "
                                "(%lld in all)",
                                list->key, list->path[k], (long long)tr->rows, (long long)va->rows,
                                (long long)(tr->rows + va->rows));
        kd_temperature_fit fit;
        if ((rc = kd_temperature_solve(ml[k].val, va->labels, va->rows, ds->num_classes, &fit, err)))
            return prefixed(err, rc, list->path[k]);
        m->temperature = fit.temperature;
        /* At a bound the fit is no calibration: separable rows push T to 0.001, and the
         * teacher divided by it teaches one-hot labels; the log must say so. */
        m->temperature_from = fit.at_lower_bound ? "fitted on validation, at the fit's lower bound: its validation "
                                                   "rows are separable, so it teaches one-hot labels"
                              : fit.at_upper_bound ? "fitted on validation, at the fit's upper bound: its validation "
                                                     "logits do worse than uniform"
                                                   : "fitted on validation";
    }
    return rc;
}

int kd_teacher_logits_load(kd_teacher_logits *out, const char *given, const kd_config *cfg, const kd_dataset *ds,
                           kd_tape *tape, kd_error *err)
{
    memset(out, 0, sizeof *out);
    kd_teacher_list list;
    int rc = kd_teacher_list_resolve(&list, given, cfg, err);
    if (rc) return rc;
    double t0 = kd_now_seconds();
    member_logits ml[KD_TEACHERS_MAX];
    memset(ml, 0, sizeof ml);
    out->rows = ds->split[KD_SPLIT_TRAIN].rows;
    out->classes = ds->num_classes;
    size_t n = (size_t)out->rows * (size_t)out->classes;
    rc = load_members(out, ml, &list, cfg, ds, tape, err);
    if (!rc && list.n == 1) {
        /* One teacher: its logits are the cache (divided by its T when calibrated). */
        out->logits = ml[0].train;
        ml[0].train = NULL;
        double t = out->member[0].temperature;
        if (t != 1.0)
            for (size_t i = 0; i < n; i++) out->logits[i] = (float)((double)out->logits[i] / t);
        snprintf(out->source, sizeof out->source, "%s", out->member[0].source);
        snprintf(out->description, sizeof out->description, "%s", out->member[0].description);
    } else if (!rc) {
        const float *z[KD_TEACHERS_MAX];
        double scale[KD_TEACHERS_MAX];
        for (int k = 0; k < list.n; k++) {
            z[k] = ml[k].train;
            scale[k] = out->member[k].temperature;
        }
        out->logits = malloc(n * sizeof(float));
        rc = out->logits ? kd_teacher_combine(out->logits, z, scale, list.n, out->rows, out->classes,
                                              cfg->distill.temperature, err)
                         : kd_error_set(err, KD_ERR_IO, "out of memory for the teacher logits");
        snprintf(out->source, sizeof out->source, "ensemble of %d teachers (%s)", list.n, list.key);
        snprintf(out->description, sizeof out->description, "T log mean_k softmax(z_k / (T_k T)), T = %g",
                 cfg->distill.temperature);
    }
    for (int k = 0; k < KD_TEACHERS_MAX; k++) member_free(&ml[k]);
    if (!rc) out->train_accuracy = accuracy(out->logits, ds->split[KD_SPLIT_TRAIN].labels, out->rows, out->classes);
    out->seconds = kd_now_seconds() - t0;
    if (rc) kd_teacher_logits_free(out);
    return rc;
}

void kd_teacher_logits_free(kd_teacher_logits *l)
{
    free(l->logits);
    l->logits = NULL;
}

/* ---- identity --------------------------------------------------------------------------------- */

static bool same_member(const char *recorded, size_t len, const kd_teacher_member *m)
{
    char item[KD_TEACHER_IDENTITY_MAX];
    snprintf(item, sizeof item, "%.*s", (int)len, recorded);
    if (m->kind == KD_TEACHER_MODEL) {
        char path[KD_PATH_MAX];
        return kd_file_same(kd_model_checkpoint_path(item, path, sizeof path), m->source);
    }
    const char *tag = NULL;
    for (const char *p = strstr(item, " [fnv1a64 "); p; p = strstr(p + 1, " [fnv1a64 ")) tag = p;
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, m->fingerprint);
    return tag && strncmp(tag + 10, hex, 16) == 0 && strcmp(tag + 26, "]") == 0;
}

bool kd_teacher_same(const char *recorded, const kd_teacher_logits *t)
{
    if (strcmp(recorded, t->identity) == 0) return true;
    if (t->n_members == 1) return same_member(recorded, strlen(recorded), &t->member[0]);
    const char *p = recorded;
    for (int k = 0; k < t->n_members; k++) {
        const char *sep = strstr(p, ", ");
        bool last = k == t->n_members - 1;
        if (last != !sep) return false;
        size_t len = sep ? (size_t)(sep - p) : strlen(p);
        if (!same_member(p, len, &t->member[k])) return false;
        p = sep ? sep + 2 : p + len;
    }
    return true;
}
