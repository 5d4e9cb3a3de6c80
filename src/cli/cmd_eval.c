/* cmd_eval.c - `kdtrain eval`: a trained model on one split: accuracy, NLL, Brier,
 * ECE, per-class accuracy and the confusion matrix as JSON, and optionally every
 * logit as HDF5. The stored calibration temperature is applied unless
 * --no-temperature (accuracy does not change; NLL, Brier and ECE do). */
#define _POSIX_C_SOURCE 200809L
#include "cli/args.h"
#include "cli/commands.h"

#include "io/checkpoint.h"
#include "io/config.h"
#include "io/fileutil.h"
#include "io/h5util.h"
#include "io/json.h"
#include "train/evaluate.h"
#include "train/trainer.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct eval_args {
    const char *model, *data, *logits, *out;
    kd_split split;
    bool no_temperature;
    long bins;
} eval_args;

static void print_help(void)
{
    printf("usage: kdtrain eval --model RUN_OR_CHECKPOINT [--split test] [--data FILE] [--bins 15]\n"
           "                    [--logits OUT.h5] [--out FILE.json] [--no-temperature]\n\n"
           "Evaluates a model on a split (train, val or test) of the data set its config names\n"
           "(or --data): accuracy, NLL, Brier score, ECE and MCE (equal-width bins), per-class\n"
           "accuracy and the confusion matrix (rows: true class). The JSON goes to --out, by\n"
           "default eval-SPLIT.json beside the checkpoint; a summary is printed. The checkpoint's\n"
           "calibration temperature is applied unless --no-temperature.\n"
           "--logits writes /logits [N, C] float32 (before any temperature) and /labels [N] int32.\n");
}

static int parse(int argc, char **argv, eval_args *e)
{
    kd_args a = {argc, argv, 1, "kdtrain eval"};
    memset(e, 0, sizeof *e);
    e->split = KD_SPLIT_TEST;
    e->bins = 15;
    for (; a.i < argc; a.i++) {
        const char *v;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            print_help();
            return -1;
        }
        if (kd_arg_flag(&a, "--no-temperature")) {
            e->no_temperature = true;
        } else if ((m = kd_arg_value(&a, "--model", "a run folder or checkpoint", &v))) {
            if (m < 0) return 2;
            e->model = v;
        } else if ((m = kd_arg_value(&a, "--data", "an HDF5 data set", &v))) {
            if (m < 0) return 2;
            e->data = v;
        } else if ((m = kd_arg_value(&a, "--logits", "an output .h5 file", &v))) {
            if (m < 0) return 2;
            e->logits = v;
        } else if ((m = kd_arg_value(&a, "--out", "an output .json file", &v))) {
            if (m < 0) return 2;
            e->out = v;
        } else if ((m = kd_arg_value(&a, "--bins", "a bin count", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--bins", v, 1, KD_MAX_BINS, &e->bins)) return 2;
        } else if ((m = kd_arg_value(&a, "--split", "train, val or test", &v))) {
            if (m < 0) return 2;
            if (!kd_split_parse(v, &e->split)) {
                fprintf(stderr, "kdtrain eval: --split: expected train, val or test, found '%s'\n", v);
                return 2;
            }
        } else {
            return kd_arg_unknown(&a);
        }
    }
    if (!e->model) {
        fprintf(stderr, "kdtrain eval: --model: required (a run folder or a checkpoint)\n");
        return 2;
    }
    return 0;
}

static int write_logits(const char *path, const float *logits, const int32_t *labels, int64_t rows, int classes,
                        const char *model, kd_split split, kd_error *err)
{
    kd_h5_atomic af;
    int rc = kd_h5_atomic_create(&af, path, err);
    if (rc) return rc;
    hsize_t dz[2] = {(hsize_t)rows, (hsize_t)classes}, dy[1] = {(hsize_t)rows};
    rc = kd_h5_write_dataset(af.file, "logits", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, dz, logits, NULL, -1, false, path, err);
    if (!rc) rc = kd_h5_write_dataset(af.file, "labels", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, dy, labels, NULL, -1, false, path, err);
    if (!rc) rc = kd_h5_write_attr_string(af.file, "model", model, err);
    if (!rc) rc = kd_h5_write_attr_string(af.file, "split", kd_split_name(split), err);
    if (rc) {
        kd_h5_atomic_abort(&af);
        return rc;
    }
    return kd_h5_atomic_commit(&af, err);
}

static void report_json(kd_json *j, const eval_args *e, const char *model, const kd_dataset *ds, kd_split split,
                        double T, const kd_metrics_summary *s, const int64_t *confusion, int classes)
{
    kd_json_begin_object(j, NULL);
    kd_json_string(j, "model", model);
    kd_json_string(j, "data", ds->path);
    kd_json_string(j, "split", kd_split_name(split));
    kd_json_int(j, "samples", s->count);
    kd_json_number(j, "temperature", T);
    kd_json_bool(j, "temperature_applied", !e->no_temperature && T != 1.0);
    kd_json_number(j, "accuracy", s->accuracy);
    kd_json_number(j, "nll", s->nll);
    kd_json_number(j, "brier", s->brier);
    kd_json_int(j, "ece_bins", e->bins);
    kd_json_number(j, "ece", s->ece);
    kd_json_number(j, "mce", s->mce);
    kd_json_begin_array(j, "per_class");
    for (int c = 0; c < classes; c++) {
        int64_t total = 0;
        for (int k = 0; k < classes; k++) total += confusion[(size_t)c * classes + k];
        kd_json_begin_object(j, NULL);
        kd_json_int(j, "class", c);
        if (c < ds->n_class_names) kd_json_string(j, "name", ds->class_names[c]);
        kd_json_int(j, "samples", total);
        kd_json_number(j, "accuracy", total ? (double)confusion[(size_t)c * classes + c] / (double)total : 0.0);
        kd_json_end_object(j);
    }
    kd_json_end_array(j);
    kd_json_begin_array(j, "confusion");
    for (int c = 0; c < classes; c++) {
        kd_json_begin_array(j, NULL);
        for (int k = 0; k < classes; k++) kd_json_int(j, NULL, confusion[(size_t)c * classes + k]);
        kd_json_end_array(j);
    }
    kd_json_end_array(j);
    kd_json_end_object(j);
}

static int evaluate(const eval_args *e, kd_error *err)
{
    char model_path[4200];
    kd_resolve_model_path(e->model, model_path, sizeof model_path);
    kd_mlp_config mc;
    int rc = kd_checkpoint_read_config(model_path, &mc, err);
    if (rc) return rc;
    kd_mlp mlp;
    if ((rc = kd_mlp_create(&mlp, &mc, err))) return rc;
    char *config_text = malloc(1 << 16);
    kd_calibration calib;
    memset(&calib, 0, sizeof calib);
    kd_config cfg;
    kd_config_defaults(&cfg);
    kd_dataset ds;
    memset(&ds, 0, sizeof ds);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    float *logits = NULL;
    int64_t *confusion = NULL;
    rc = config_text ? kd_checkpoint_load(model_path, &mlp, NULL, NULL, config_text, 1 << 16, &calib, err)
                     : kd_error_set(err, KD_ERR_IO, "out of memory");
    if (!rc && kd_config_load_text(&cfg, config_text, "the checkpoint's config", err)) rc = err->code = KD_ERR_DATA;
    if (!rc && !e->data && !cfg.data.path[0])
        rc = kd_error_set(err, KD_ERR_CONFIG, "%s: its config names no data set; pass --data FILE", model_path);
    /* the run's dataset paths and validation rows */
    if (!rc) rc = kd_config_open_dataset(&cfg, e->data ? e->data : cfg.data.path, e->split == KD_SPLIT_TEST, &ds, err);
    int classes = mc.sizes[mc.n_layers];
    if (!rc && (ds.dim != mc.sizes[0] || ds.num_classes != classes)) {
        char arch[256];
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected %d features and %d classes for the %s model, found %d and %d",
                          ds.path, mc.sizes[0], classes, kd_mlp_describe(&mc, arch, sizeof arch), ds.dim, ds.num_classes);
    }
    if (!rc && !ds.split[e->split].present)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected a %s split, found none", ds.path, kd_split_name(e->split));
    if (!rc) rc = kd_dataset_load(&ds, e->split, err);
    int64_t rows = rc ? 0 : ds.split[e->split].rows;
    if (!rc) {
        logits = malloc((size_t)rows * (size_t)classes * sizeof(float));
        confusion = malloc((size_t)classes * classes * sizeof *confusion);
        if (!logits || !confusion) rc = kd_error_set(err, KD_ERR_IO, "out of memory for %lld logits", (long long)rows);
    }
    double T = calib.present && !e->no_temperature ? calib.temperature : 1.0;
    kd_metrics *m = rc ? NULL : malloc(sizeof *m);
    if (!rc && !m) rc = kd_error_set(err, KD_ERR_IO, "out of memory");
    if (!rc) {
        kd_eval_options eo = {256, false, T, (int)e->bins, 0};
        rc = kd_evaluate(&mlp, &tape, &ds, e->split, &eo, logits, confusion, m, err);
    }
    if (!rc) {
        kd_metrics_summary s = kd_metrics_summarize(m);
        kd_json j;
        kd_json_init(&j);
        report_json(&j, e, model_path, &ds, e->split, T, &s, confusion, classes);
        char out[4300], dir[4200];
        snprintf(dir, sizeof dir, "%s", model_path);
        if (e->out)
            snprintf(out, sizeof out, "%s", e->out);
        else
            snprintf(out, sizeof out, "%s/eval-%s.json", dirname(dir), kd_split_name(e->split));
        rc = j.out.failed ? kd_error_set(err, KD_ERR_IO, "out of memory") : kd_write_file_atomic(out, j.out.text, j.out.length, err);
        kd_json_free(&j);
        if (!rc && e->logits)
            rc = write_logits(e->logits, logits, ds.split[e->split].labels, rows, classes, model_path, e->split, err);
        if (!rc)
            printf("%s on %s/%s (%lld samples, T = %.4g%s): accuracy %.2f%%  NLL %.4f  Brier %.4f  ECE %.2f%%  MCE %.2f%%\n"
                   "report: %s\n",
                   model_path, ds.path, kd_split_name(e->split), (long long)s.count, T,
                   T != 1.0 ? " fitted" : "", 100 * s.accuracy, s.nll, s.brier, 100 * s.ece, 100 * s.mce, out);
    }
    free(m);
    free(logits);
    free(confusion);
    free(config_text);
    kd_tape_free(&tape);
    kd_dataset_close(&ds);
    kd_mlp_free(&mlp);
    return rc;
}

int kd_cmd_eval(int argc, char **argv)
{
    eval_args e;
    int rc = parse(argc, argv, &e);
    if (rc) return rc < 0 ? 0 : rc;
    kd_error err;
    kd_error_clear(&err);
    rc = evaluate(&e, &err);
    if (rc) {
        fprintf(stderr, "kdtrain eval: %s\n", err.message);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}
