/* calibrate_logits.c - see calibrate_logits.h. The report's text is written by
 * calibrate_logits_report.c. */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "workflows/calibrate_logits.h"

#include "calib/report.h"
#include "io/h5util.h"
#include "workflows/calibrate_logits_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void kd_calibrate_logits_options_default(kd_calibrate_logits_options *o)
{
    memset(o, 0, sizeof *o);
    o->methods = 1u << KD_CALIBRATOR_TEMPERATURE;
    o->metrics.bins = 15;
    o->metrics.bootstrap = 1000;
    o->metrics.noise_draws = 200;
    o->metrics.seed = 0;
    kd_calibrator_options_default(&o->calibrators);
}

/* softmax(z) of each row in double: the uncalibrated model's probabilities. */
static void softmax_of(const float *logits, int64_t n, int classes, double *probs)
{
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        double *p = probs + (size_t)i * (size_t)classes;
        float top = z[0];
        double sum = 0.0;
        for (int k = 1; k < classes; k++)
            if (z[k] > top) top = z[k];
        for (int k = 0; k < classes; k++) sum += (p[k] = exp((double)z[k] - (double)top));
        for (int k = 0; k < classes; k++) p[k] /= sum;
    }
}

static int arg_max_float(const float *z, int classes)
{
    int top = 0;
    for (int k = 1; k < classes; k++)
        if (z[k] > z[top]) top = k;
    return top;
}

static int arg_max_double(const double *p, int classes)
{
    int top = 0;
    for (int k = 1; k < classes; k++)
        if (p[k] > p[top]) top = k;
    return top;
}

static int64_t changed_predictions(const float *logits, const double *probs, int64_t n, int classes)
{
    int64_t changed = 0;
    for (int64_t i = 0; i < n; i++)
        changed += arg_max_float(logits + (size_t)i * (size_t)classes, classes) !=
                   arg_max_double(probs + (size_t)i * (size_t)classes, classes);
    return changed;
}

static int read_inputs(const kd_calibrate_logits_options *o, kd_logits *fit, kd_logits *test, kd_error *err)
{
    kd_logits_read_options ro = {.probabilities = o->probabilities};
    int rc = kd_logits_read_spec(fit, o->fit_logits, o->fit_labels, &ro, err);
    if (!rc && o->test_logits) rc = kd_logits_read_spec(test, o->test_logits, o->test_labels, &ro, err);
    if (!rc && o->test_logits && test->classes != fit->classes)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected %d classes, as %s has, found %d", o->test_logits, fit->classes,
                          o->fit_logits, test->classes);
    return rc;
}

/* Every output path is checked before anything is computed: none may be an input,
 * and an existing report is replaced only when asked. */
static int check_outputs(const kd_calibrate_logits_options *o, kd_error *err)
{
    if (!o->out_dir || !*o->out_dir)
        return kd_error_set(err, KD_ERR_CONFIG, "--out: required with --logits (the folder for the report)");
    if (kd_file_exists(o->out_dir) && !kd_file_is_directory(o->out_dir))
        return kd_error_set(err, KD_ERR_CONFIG, "--out %s: expected a folder, found a file", o->out_dir);
    const char *inputs[4] = {o->fit_logits, o->fit_labels, o->test_logits, o->test_labels};
    static const char *const names[] = {"calibration.json", "calibration.md", "calibrated-test.h5"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[KD_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", o->out_dir, names[k]);
        /* kd_file_check_output compares with whole specs; a spec's file part is what matters */
        for (int i = 0; i < 4; i++)
            if (inputs[i] && strncmp(inputs[i], path, strlen(path)) == 0 &&
                (inputs[i][strlen(path)] == '\0' || inputs[i][strlen(path)] == ':'))
                return kd_error_set(err, KD_ERR_CONFIG, "--out %s: would write %s, which is an input; expected another folder",
                                    o->out_dir, path);
        int rc = kd_file_check_output("--out", path, inputs, 4, o->replace, err);
        if (rc) {
            if (!o->replace && kd_file_exists(path))
                return kd_error_set(err, KD_ERR_CONFIG, "--out %s: already holds %s from an earlier calibration; "
                                    "expected an empty folder, or --force to replace it", o->out_dir, names[k]);
            return rc;
        }
    }
    return KD_OK;
}

static int stage_text(kd_file_batch *batch, const char *dir, const char *name, const kd_strbuf *b, kd_error *err)
{
    if (b->failed) return kd_error_set(err, KD_ERR_IO, "%s/%s: out of memory", dir, name);
    return kd_file_batch_stage(batch, dir, name, b->text ? b->text : "", b->length, err);
}

static int stage_diagram(kd_file_batch *batch, const char *dir, const char *name, const kd_reliability *r,
                         const char *title, kd_error *err)
{
    kd_strbuf svg = {0};
    kd_report_reliability_svg(r, title, &svg);
    int rc = stage_text(batch, dir, name, &svg, err);
    kd_strbuf_free(&svg);
    return rc;
}

typedef struct outputs {
    kd_h5_atomic h5;   /* calibrated-test.h5, built in memory */
    bool h5_open;
    kd_file_batch *batch;
} outputs;

static int write_method_outputs(outputs *out, const kd_calibrator *c, const double *probs, const double *logits,
                                int64_t n, int classes, kd_error *err)
{
    char name[96];
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)classes};
    snprintf(name, sizeof name, "%s/probabilities", kd_calibrator_name(c->kind));
    int rc = kd_h5_write_dataset(out->h5.file, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 2, dims, probs, NULL, -1, false,
                                 out->h5.final_path, err);
    if (!rc && logits) {
        snprintf(name, sizeof name, "%s/logits", kd_calibrator_name(c->kind));
        rc = kd_h5_write_dataset(out->h5.file, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 2, dims, logits, NULL, -1, false,
                                 out->h5.final_path, err);
    }
    return rc;
}

int kd_calibrate_logits(const kd_calibrate_logits_options *o, kd_calibrate_logits_result *res, kd_error *err)
{
    memset(res, 0, sizeof *res);
    double t_start = kd_now_seconds();
    kd_logits fit = {0}, test = {0};
    int rc = check_outputs(o, err);
    if (!rc) rc = read_inputs(o, &fit, &test, err);
    if (rc) {
        kd_logits_free(&fit);
        kd_logits_free(&test);
        return rc;
    }
    int C = fit.classes;
    bool has_test = o->test_logits != NULL;
    /* The file the methods are compared on: test, or the fitting file without one. */
    const kd_logits *eval = has_test ? &test : &fit;
    res->classes = C;
    res->fit_rows = fit.rows;
    res->test_rows = has_test ? test.rows : 0;

    size_t fit_size = (size_t)fit.rows * (size_t)C, eval_size = (size_t)eval->rows * (size_t)C;
    double *fit_probs = malloc(fit_size * sizeof(double));
    double *eval_probs = malloc(eval_size * sizeof(double));
    double *eval_logits = malloc(eval_size * sizeof(double));
    double *baseline = malloc(eval_size * sizeof(double)); /* temperature scaling's probabilities on eval */
    outputs out = {.batch = malloc(sizeof(kd_file_batch))};
    if (!fit_probs || !eval_probs || !eval_logits || !baseline || !out.batch)
        rc = kd_error_set(err, KD_ERR_IO, "out of memory for %lld x %d probabilities", (long long)eval->rows, C);
    if (out.batch) kd_file_batch_init(out.batch);

    /* Before any calibration. */
    if (!rc) {
        softmax_of(fit.logits, fit.rows, C, fit_probs);
        rc = kd_reliability_from_probs(fit_probs, fit.labels, fit.rows, C, &o->metrics, &res->fit_before, err);
    }
    if (!rc && has_test) {
        softmax_of(test.logits, test.rows, C, eval_probs);
        rc = kd_reliability_from_probs(eval_probs, test.labels, test.rows, C, &o->metrics, &res->test_before, err);
    }
    if (!rc && has_test) {
        char path[KD_PATH_MAX];
        snprintf(path, sizeof path, "%s/calibrated-test.h5", o->out_dir);
        rc = kd_h5_atomic_create(&out.h5, path, err);
        out.h5_open = rc == KD_OK;
        hsize_t dy[1] = {(hsize_t)test.rows};
        if (!rc)
            rc = kd_h5_write_dataset(out.h5.file, "labels", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, dy, test.labels, NULL, -1,
                                     false, path, err);
        if (!rc) rc = kd_h5_write_attr_string(out.h5.file, "source", o->test_logits, err);
    }

    /* Temperature scaling first: the baseline of every paired comparison. */
    unsigned mask = o->methods | (1u << KD_CALIBRATOR_TEMPERATURE);
    for (int k = 0; k < KD_CALIBRATOR_COUNT && !rc; k++) {
        if (!(mask & (1u << k))) continue;
        kd_calibrate_logits_method *m = &res->method[res->n_methods++];
        kd_calibrator_kind kind = (kd_calibrator_kind)k;
        bool logit_space = kd_calibrator_has_logits(kind);
        rc = kd_calibrator_fit(&m->calibrator, kind, fit.logits, fit.labels, fit.rows, C, &o->calibrators, err);
        if (!rc) {
            kd_calibrator_apply(&m->calibrator, fit.logits, fit.rows, fit_probs, NULL);
            rc = kd_reliability_from_probs(fit_probs, fit.labels, fit.rows, C, &o->metrics, &m->fit, err);
        }
        if (!rc) {
            kd_calibrator_apply(&m->calibrator, eval->logits, eval->rows, eval_probs, logit_space ? eval_logits : NULL);
            m->changed_predictions = changed_predictions(eval->logits, eval_probs, eval->rows, C);
            if (kind == KD_CALIBRATOR_TEMPERATURE) memcpy(baseline, eval_probs, eval_size * sizeof(double));
            if (has_test) rc = kd_reliability_from_probs(eval_probs, eval->labels, eval->rows, C, &o->metrics, &m->test, err);
            else m->test = m->fit;
        }
        if (!rc && kind != KD_CALIBRATOR_TEMPERATURE) /* the baseline against itself is 0 */
            rc = kd_reliability_paired(baseline, eval_probs, eval->labels, eval->rows, C, &o->metrics,
                                       &m->versus_temperature, err);
        if (!rc && has_test)
            rc = write_method_outputs(&out, &m->calibrator, eval_probs, logit_space ? eval_logits : NULL, eval->rows, C, err);
        if (!rc && kind == KD_CALIBRATOR_TEMPERATURE && (m->test.value[KD_METRIC_ACCURACY] !=
                                                          (has_test ? res->test_before : res->fit_before).value[KD_METRIC_ACCURACY]))
            rc = kd_error_set(err, KD_ERR_DATA, "temperature scaling changed the accuracy: a bug, please report it");
    }
    res->seconds = kd_now_seconds() - t_start;

    /* The reports, the diagrams and the calibrated outputs appear together or not at all. */
    char name[96], title[160];
    bool dir_existed = kd_file_is_directory(o->out_dir);
    if (!rc) rc = kd_file_mkdir_p(o->out_dir, err);
    if (!rc) rc = stage_diagram(out.batch, o->out_dir, "reliability-fit-before.svg", &res->fit_before,
                                "fitting split, uncalibrated", err);
    if (!rc && has_test)
        rc = stage_diagram(out.batch, o->out_dir, "reliability-test-before.svg", &res->test_before, "test split, uncalibrated",
                           err);
    for (int k = 0; k < res->n_methods && !rc; k++) {
        const kd_calibrate_logits_method *m = &res->method[k];
        snprintf(name, sizeof name, "reliability-%s-%s.svg", has_test ? "test" : "fit", kd_calibrator_name(m->calibrator.kind));
        snprintf(title, sizeof title, "%s split, %s", has_test ? "test" : "fitting", kd_calibrator_name(m->calibrator.kind));
        rc = stage_diagram(out.batch, o->out_dir, name, has_test ? &m->test : &m->fit, title, err);
    }
    if (!rc) {
        kd_strbuf md = {0}, json = {0};
        kd_calibrate_logits_report(o, res, &fit, has_test ? &test : NULL, &md, &json);
        rc = stage_text(out.batch, o->out_dir, "calibration.md", &md, err);
        if (!rc) rc = stage_text(out.batch, o->out_dir, "calibration.json", &json, err);
        kd_strbuf_free(&md);
        kd_strbuf_free(&json);
    }
    if (!rc && out.h5_open) {
        void *image = NULL;
        size_t size = 0;
        out.h5_open = false;
        rc = kd_h5_atomic_image(&out.h5, &image, &size, err);
        if (!rc) rc = kd_file_batch_stage(out.batch, o->out_dir, "calibrated-test.h5", image, size, err);
        free(image);
    }
    if (!rc) rc = kd_file_batch_commit(out.batch, err);
    if (rc && out.batch) kd_file_batch_abort(out.batch);
    if (rc && !dir_existed) rmdir(o->out_dir); /* a failed first calibration leaves no folder */
    if (out.h5_open) kd_h5_atomic_abort(&out.h5);
    free(out.batch);
    free(fit_probs);
    free(eval_probs);
    free(eval_logits);
    free(baseline);
    kd_logits_free(&fit);
    kd_logits_free(&test);
    return rc;
}

void kd_calibrate_logits_result_free(kd_calibrate_logits_result *res)
{
    for (int k = 0; k < res->n_methods; k++) kd_calibrator_free(&res->method[k].calibrator);
    res->n_methods = 0;
}
