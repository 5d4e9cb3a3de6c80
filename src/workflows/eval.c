/* eval.c - `kdtrain eval` as a library call (see eval.h). */
#define _POSIX_C_SOURCE 200809L
#include "workflows/eval.h"

#include "core/tape.h"
#include "io/fileutil.h"
#include "io/h5util.h"
#include "io/json.h"
#include "workflows/evaluate.h"
#include "workflows/model.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void report_json(kd_json *j, const kd_eval_request *e, const char *model, const kd_dataset *ds, kd_split split,
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

/* Where the JSON goes, and a refusal of any output that would destroy an input or,
 * without e->replace, an existing file the user named. */
static int check_outputs(const kd_eval_request *e, const char *model_path, const char *data_path, kd_eval_result *res,
                         kd_error *err)
{
    char dir[KD_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", model_path);
    if (e->json_out)
        snprintf(res->json_path, sizeof res->json_path, "%s", e->json_out);
    else
        snprintf(res->json_path, sizeof res->json_path, "%s/eval-%s.json", dirname(dir), kd_split_name(e->split));
    const char *inputs[2] = {model_path, data_path};
    int rc = kd_file_check_output(e->json_out ? "--out" : "the report", res->json_path, inputs, 2,
                                  e->replace || !e->json_out, err);
    if (!rc && e->logits_out) rc = kd_file_check_output("--logits", e->logits_out, inputs, 2, e->replace, err);
    if (!rc && e->logits_out && (strcmp(e->logits_out, res->json_path) == 0 || kd_file_same(e->logits_out, res->json_path)))
        rc = kd_error_set(err, KD_ERR_CONFIG, "--logits %s: is also where the JSON report goes; expected two files",
                          e->logits_out);
    return rc;
}

int kd_eval_run(const kd_eval_request *e, kd_eval_result *res, kd_error *err)
{
    memset(res, 0, sizeof *res);
    kd_model model;
    int rc = kd_model_open(&model, e->model, err);
    if (rc) return rc;
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", model.checkpoint);
    const char *model_path = model.checkpoint;
    int classes = kd_model_classes(&model);
    kd_dataset ds;
    kd_tape tape;
    kd_tape_init(&tape, 0);
    float *logits = NULL;
    int64_t *confusion = NULL;
    kd_metrics *m = NULL;
    rc = kd_model_open_data(&model, e->data, e->split == KD_SPLIT_TEST, &ds, err); /* the run's data.* keys */
    if (!rc && !ds.split[e->split].present)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected a %s split, found none", ds.path, kd_split_name(e->split));
    if (!rc) rc = kd_dataset_load(&ds, e->split, err);
    int64_t rows = rc ? 0 : ds.split[e->split].rows;
    if (!rc) {
        logits = malloc((size_t)rows * (size_t)classes * sizeof(float));
        confusion = malloc((size_t)classes * classes * sizeof *confusion);
        m = malloc(sizeof *m);
        if (!logits || !confusion || !m) rc = kd_error_set(err, KD_ERR_IO, "out of memory for %lld logits", (long long)rows);
    }
    if (!rc) rc = check_outputs(e, model_path, ds.path, res, err);
    double T = model.calibration.present && !e->no_temperature ? model.calibration.temperature : 1.0;
    if (!rc) {
        kd_eval_options eo = {.batch_size = 256, .temperature = T, .n_bins = e->bins};
        rc = kd_evaluate(&model.mlp, &tape, &ds, e->split, &eo, logits, confusion, m, err);
    }
    if (!rc) {
        kd_metrics_summary s = kd_metrics_summarize(m);
        kd_json j;
        kd_json_init(&j);
        report_json(&j, e, model_path, &ds, e->split, T, &s, confusion, classes);
        /* The logits first: when the JSON then fails, a logits file this run created goes too. */
        bool logits_existed = e->logits_out && kd_file_exists(e->logits_out);
        if (j.out.failed) rc = kd_error_set(err, KD_ERR_IO, "out of memory");
        if (!rc && e->logits_out)
            rc = write_logits(e->logits_out, logits, ds.split[e->split].labels, rows, classes, model_path, e->split, err);
        if (!rc) rc = kd_file_write_atomic(res->json_path, j.out.text, j.out.length, err);
        if (rc && e->logits_out && !logits_existed) unlink(e->logits_out);
        kd_json_free(&j);
        res->temperature = T;
        res->summary = s;
        snprintf(res->data, sizeof res->data, "%s", ds.path);
    }
    free(m);
    free(logits);
    free(confusion);
    kd_tape_free(&tape);
    kd_dataset_close(&ds);
    kd_model_close(&model);
    return rc;
}
