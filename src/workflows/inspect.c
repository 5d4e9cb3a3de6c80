/* inspect.c - `kdtrain info FILE` for checkpoints, logits files and .npy arrays, and the
 * dispatch on what a file is (see inspect.h; data sets are in inspect_data.c). */
#define _POSIX_C_SOURCE 200809L
#include "workflows/inspect.h"

#include "calib/metrics.h"
#include "calib/temperature.h"
#include "io/checkpoint.h"
#include "io/fileutil.h"
#include "io/h5util.h"
#include "io/logits.h"
#include "io/npy.h"
#include "io/provenance.h"
#include "workflows/config.h"
#include "workflows/model.h"

#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int kd_inspect_classify(const char *path, kd_inspect_target *kind, kd_error *err)
{
    hid_t file = kd_h5_open_read(path, err);
    if (file < 0) return err ? err->code : KD_ERR_IO;
    *kind = kd_h5_link_exists(file, "/model")    ? KD_INSPECT_CHECKPOINT
            : kd_h5_link_exists(file, "/logits") ? KD_INSPECT_LOGITS
                                                 : KD_INSPECT_DATASET;
    if (H5Fclose(file) < 0) return kd_error_set(err, KD_ERR_IO, "%s: closing failed", path);
    return KD_OK;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

/* The optimiser's kind and step, read directly: loading its state would need
 * buffers the size of the model for nothing. */
static void print_optimizer(hid_t file, const char *path, FILE *out)
{
    if (!kd_h5_link_exists(file, "/optimizer")) {
        fprintf(out, "  optimizer    none stored (evaluation only; cannot be resumed)\n");
        return;
    }
    hid_t g = H5Gopen2(file, "/optimizer", H5P_DEFAULT);
    char kind[32] = "?";
    int64_t step = -1;
    double lr = NAN;
    if (g >= 0) {
        kd_h5_read_attr_string(g, "kind", kind, sizeof kind, path, NULL);
        kd_h5_read_attr_int64(g, "step", &step, path, NULL);
        kd_h5_read_attr_double(g, "lr", &lr, path, NULL);
        H5Gclose(g);
    }
    fprintf(out, "  optimizer    %s, %lld steps taken, base learning rate %g\n", kind, (long long)step, lr);
}

static void print_metrics_line(FILE *out, const char *label, int64_t epoch, double acc, double nll, double ece)
{
    fprintf(out, "  %-12s epoch %lld: accuracy %.2f%%, NLL %.4f, ECE %.2f%%\n", label, (long long)epoch, 100 * acc, nll,
            100 * ece);
}

/* What the run's config says (from the checkpoint's own copy of it). */
static void print_config_facts(const kd_model *m, FILE *out)
{
    const kd_config *cfg = &m->config;
    const kd_train_state *ts = &m->train;
    /* Only a run's model.h5 is what --resume continues; best.h5 and epoch-NNN.h5 are snapshots. */
    const char *base = strrchr(m->checkpoint, '/');
    bool resumable = strcmp(base ? base + 1 : m->checkpoint, "model.h5") == 0;
    const char *state = ts->epoch >= cfg->train.epochs ? ""
                        : resumable                     ? "; unfinished: --resume continues it"
                                                        : "; a snapshot taken before the last epoch";
    fprintf(out, "  trained      %lld of %lld epochs (train.epochs), batch %lld, %s, seed %llu%s\n", (long long)ts->epoch,
            (long long)cfg->train.epochs, (long long)cfg->train.batch_size,
            kd_config_choice_name("train.optimizer", cfg->train.optimizer), (unsigned long long)cfg->train.seed, state);
    fprintf(out, "  data         %s%s\n", cfg->data.path[0] ? cfg->data.path : "(none named)",
            cfg->data.labelled ? " (only the first data.labelled rows with labels)" : "");
    /* The checkpoint's own record says whether it was distilled; older files have only the config. */
    if (ts->records_teacher && ts->teacher[0] && cfg->distill.loss == KD_DISTILL_DKD)
        fprintf(out, "  distilled    from %s at T = %g, alpha = %g, loss dkd (weights %g, %g)\n", ts->teacher,
                cfg->distill.temperature, cfg->distill.alpha, cfg->distill.dkd_target_weight,
                cfg->distill.dkd_nontarget_weight);
    else if (ts->records_teacher && ts->teacher[0])
        fprintf(out, "  distilled    from %s at T = %g, alpha = %g, loss %s\n", ts->teacher, cfg->distill.temperature,
                cfg->distill.alpha, kd_config_choice_name("distill.loss", (int)cfg->distill.loss));
    else if (ts->records_teacher)
        fprintf(out, "  distilled    no: trained on the labels alone\n");
    else if (cfg->distill.teacher[0])
        fprintf(out, "  distilled    not recorded (an older checkpoint); its config names distill.teacher = %s\n",
                cfg->distill.teacher);
}

int kd_inspect_checkpoint(const char *path, FILE *out, kd_error *err)
{
    kd_model m;
    int rc = kd_model_open(&m, path, err); /* the whole load, with every check training's load makes */
    if (rc) return rc;
    const kd_mlp_config *mc = &m.mlp.config;
    const kd_train_state *ts = &m.train;
    char arch[256];
    fprintf(out, "%s: a kdtrain checkpoint\n", m.checkpoint);
    fprintf(out, "  model        %s MLP, ReLU, dropout %g (input %g), %s init; %zu parameters\n",
            kd_mlp_describe(mc, arch, sizeof arch), (double)mc->dropout, (double)mc->input_dropout,
            mc->init == KD_INIT_GLOROT ? "Glorot" : "He", m.mlp.n_params);
    if (m.has_train) {
        print_config_facts(&m, out);
        hid_t file = kd_h5_open_read(m.checkpoint, NULL);
        if (file >= 0) {
            print_optimizer(file, m.checkpoint, out);
            H5Fclose(file);
        }
    } else {
        fprintf(out, "  trained      unknown: no /train group (a checkpoint written by hand or another tool)\n");
    }
    if (m.has_train && ts->has_metrics) {
        print_metrics_line(out, "validation", ts->epoch, ts->val_accuracy, ts->val_nll, ts->val_ece);
        print_metrics_line(out, "best", ts->best_epoch, ts->best_val_accuracy, ts->best_val_nll, ts->best_val_ece);
    } else if (m.has_train) {
        fprintf(out, "  validation   not recorded in this checkpoint (written before kdtrain stored it; see the run's metrics.csv)\n");
    }
    const kd_calibration *c = &m.calibration;
    if (c->present)
        fprintf(out, "  temperature  T = %.4f, fitted on %s: NLL %.4f -> %.4f (T %s 1: the model was %s)\n", c->temperature,
                c->split, c->nll_before, c->nll_after, c->temperature > 1 ? ">" : c->temperature < 1 ? "<" : "=",
                kd_temperature_describe(c->temperature));
    else
        fprintf(out, "  temperature  none stored (kdtrain calibrate --model %s fits one)\n", m.checkpoint);
    char commit[64] = "";
    const char *source = "the build that wrote this checkpoint";
    if (m.has_train && ts->commit[0]) {
        snprintf(commit, sizeof commit, "%s", ts->commit);
    } else {
        /* Older checkpoints: the run folder's summary.json, if the file sits in one. */
        char dir[KD_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", m.checkpoint);
        kd_commit_set set = {.n = 0};
        kd_commit_set_add_run(&set, dirname(dir));
        if (set.n == 1) {
            snprintf(commit, sizeof commit, "%s", set.commit[0]);
            source = "the run folder's summary.json";
        }
    }
    fprintf(out, "  commit       %s\n", commit[0] ? commit : "not recorded");
    if (commit[0]) fprintf(out, "               (from %s)\n", source);
    kd_model_close(&m);
    return KD_OK;
}

/* ---- logits files --------------------------------------------------------------------- */

/* Rows, classes, accuracy and calibration at T = 1 of logits with labels. */
static int print_logits(const kd_logits *l, FILE *out, kd_error *err)
{
    kd_metrics *m = malloc(sizeof *m);
    int64_t *counts = calloc((size_t)l->classes, sizeof *counts);
    if (!m || !counts) {
        free(m);
        free(counts);
        return kd_error_set(err, KD_ERR_IO, "out of memory");
    }
    kd_metrics_init(m, 15);
    double confidence = 0;
    for (int64_t i = 0; i < l->rows; i++) {
        const float *z = l->logits + (size_t)i * (size_t)l->classes;
        counts[l->labels[i]]++;
        if (i % 4096 == 0) {
            int64_t n = l->rows - i < 4096 ? l->rows - i : 4096;
            kd_metrics_add(m, z, l->labels + i, (int)n, l->classes, 1.0);
        }
        double top = z[0], sum = 0;
        for (int c = 1; c < l->classes; c++) top = z[c] > top ? z[c] : top;
        for (int c = 0; c < l->classes; c++) sum += exp((double)z[c] - top);
        confidence += 1.0 / sum;
    }
    kd_metrics_summary s = kd_metrics_summarize(m);
    bool npy = l->source == KD_LOGITS_NPY;
    fprintf(out, "  logits       %s [%lld, %d] %s, labels %s [%lld]\n", npy ? l->file : l->dataset, (long long)l->rows,
            l->classes, l->stored_double ? "float64" : "float32",
            l->labels_source == KD_LOGITS_NPY || strcmp(l->labels_file, l->file) != 0 ? l->labels_file : l->labels_dataset,
            (long long)l->rows);
    /* kdtrain eval and other frameworks' exporters both write these attributes: say what
     * they hold, not who wrote them. */
    if (l->model[0]) fprintf(out, "  model        %s\n", l->model);
    if (l->split[0]) fprintf(out, "  split        %s\n", l->split);
    fprintf(out, "  at T = 1     accuracy %.2f%%, mean confidence %.2f%%, NLL %.4f, Brier %.4f, ECE %.2f%% (15 bins)\n",
            100 * s.accuracy, 100 * confidence / (double)l->rows, s.nll, s.brier, 100 * s.ece);
    fprintf(out, "  labels       ");
    for (int c = 0; c < l->classes; c++) fprintf(out, "%s%d: %lld", c ? ", " : "", c, (long long)counts[c]);
    fprintf(out, "\n");
    free(m);
    free(counts);
    return KD_OK;
}

static void print_probability_warning(const kd_logits *l, FILE *out)
{
    if (kd_logits_look_like_probabilities(l))
        fprintf(out, "  warning      every row lies in [0, 1] and sums to 1: these look like probabilities, not logits\n");
}

int kd_inspect_logits(const char *path, FILE *out, kd_error *err)
{
    kd_logits l;
    int rc = kd_logits_read(&l, path, NULL, NULL, err);
    if (rc) return rc;
    fprintf(out, "%s: a logits file\n", path);
    rc = print_logits(&l, out, err);
    if (!rc) print_probability_warning(&l, out);
    kd_logits_free(&l);
    return rc;
}

/* ---- .npy arrays ------------------------------------------------------------------------ */

int kd_inspect_npy(const char *path, FILE *out, kd_error *err)
{
    kd_npy_header h;
    int rc = kd_npy_read_header(path, &h, err);
    if (rc) return rc;
    char shape[64];
    if (h.rank == 1) snprintf(shape, sizeof shape, "(%lld,)", (long long)h.dims[0]);
    else snprintf(shape, sizeof shape, "(%lld, %lld)", (long long)h.dims[0], (long long)h.dims[1]);
    fprintf(out, "%s: a .npy array (format %d.0)\n", path, h.version);
    fprintf(out, "  array        shape %s, %s ('%s'), %s, %s order\n", shape, h.type_name, h.descr,
            h.item_size == 1 ? "bytes" : h.big_endian ? "big-endian" : "little-endian",
            h.fortran_order ? "Fortran (column-major)" : "C (row-major)");
    if (h.kind == 'f' && h.rank == 2) {
        /* As logits: through the reader calibrate uses, with its checks; labels if the rule finds them. */
        kd_logits l;
        const kd_logits_read_options o = {.allow_probability_rows = true, .labels_optional = true};
        rc = kd_logits_read_spec(&l, path, NULL, &o, err);
        if (rc) return rc;
        if (l.labels) {
            rc = print_logits(&l, out, err);
        } else {
            fprintf(out, "  as logits    %lld rows, %d classes; no labels found (a name with \"logits\" finds the "
                         "file with \"labels\" in its place)\n",
                    (long long)l.rows, l.classes);
        }
        print_probability_warning(&l, out);
        kd_logits_free(&l);
    } else if (h.kind != 'f' && (h.rank == 1 || h.dims[1] == 1)) {
        int64_t *y = NULL;
        rc = kd_npy_read_int64(path, &y, &h, err);
        if (rc) return rc;
        int64_t lo = h.dims[0] ? y[0] : 0, hi = lo;
        for (int64_t i = 1; i < h.dims[0]; i++) {
            lo = y[i] < lo ? y[i] : lo;
            hi = y[i] > hi ? y[i] : hi;
        }
        fprintf(out, "  as labels    %lld values from %lld to %lld\n", (long long)h.dims[0], (long long)lo, (long long)hi);
        free(y);
    }
    return rc;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

int kd_inspect(const char *path, const kd_dataset_options *options, FILE *out, kd_error *err)
{
    char resolved[KD_PATH_MAX];
    bool run_folder = kd_file_is_directory(path);
    if (!run_folder && kd_npy_is_npy(path)) return kd_inspect_npy(path, out, err);
    kd_model_checkpoint_path(path, resolved, sizeof resolved);
    if (run_folder && !kd_file_exists(resolved))
        return kd_error_set(err, KD_ERR_IO, "%s: a folder without model.h5 (info takes a data set, a checkpoint, a logits file or a run folder)",
                            path);
    kd_inspect_target kind = KD_INSPECT_DATASET;
    int rc = kd_inspect_classify(resolved, &kind, err);
    if (rc) return rc;
    if (run_folder && kind != KD_INSPECT_CHECKPOINT)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected a checkpoint (a /model group), found none", resolved);
    switch (kind) {
    case KD_INSPECT_CHECKPOINT: return kd_inspect_checkpoint(resolved, out, err);
    case KD_INSPECT_LOGITS: return kd_inspect_logits(resolved, out, err);
    case KD_INSPECT_DATASET: break;
    }
    return kd_inspect_dataset(resolved, options, out, err);
}
