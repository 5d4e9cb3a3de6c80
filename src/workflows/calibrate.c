/* calibrate.c - see calibrate.h. */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "workflows/calibrate.h"

#include "calib/report.h"
#include "io/checkpoint.h"
#include "io/fileutil.h"
#include "workflows/evaluate.h"
#include "workflows/model.h"
#include "workflows/run_dir.h"

#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void kd_calibrate_options_default(kd_calibrate_options *o)
{
    memset(o, 0, sizeof *o);
    o->split = KD_SPLIT_VAL;
    o->bins = 15;
    o->bootstrap = KD_CALIBRATE_DEFAULT_BOOTSTRAP;
    o->noise_draws = KD_CALIBRATE_DEFAULT_NOISE_DRAWS;
    o->store = true;
}

typedef struct logits_set {
    float *logits;    /* (rows, classes) */
    const int32_t *labels;
    int64_t rows;
} logits_set;

static int split_logits(kd_mlp *mlp, kd_dataset *ds, kd_split split, logits_set *out, kd_error *err)
{
    int classes = mlp->config.sizes[mlp->config.n_layers];
    int rc = kd_dataset_load(ds, split, err);
    if (rc) return rc;
    out->rows = ds->split[split].rows;
    out->labels = ds->split[split].labels;
    out->logits = malloc((size_t)out->rows * (size_t)classes * sizeof(float));
    if (!out->logits) return kd_error_set(err, KD_ERR_IO, "out of memory for %lld logits", (long long)out->rows);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    kd_eval_options eo = {.batch_size = 256, .temperature = 1.0, .n_bins = 15};
    rc = kd_evaluate(mlp, &tape, ds, split, &eo, out->logits, NULL, NULL, err);
    kd_tape_free(&tape);
    return rc;
}

static void number(kd_strbuf *md, bool percent, double v)
{
    if (percent) kd_strbuf_printf(md, "%.2f", 100 * v);
    else kd_strbuf_printf(md, "%.4f", v);
}

/* A metric's cell: value [95 % interval]; for a calibration error its noise floor
 * (mean, 95th percentile). Percent but for NLL and Brier. */
static void table_cell(kd_strbuf *md, const kd_reliability *r, kd_metric m)
{
    bool percent = m != KD_METRIC_NLL && m != KD_METRIC_BRIER;
    kd_strbuf_printf(md, " | ");
    number(md, percent, r->value[m]);
    if (r->bootstrap) {
        kd_strbuf_printf(md, " [");
        number(md, percent, r->low[m]);
        kd_strbuf_printf(md, ", ");
        number(md, percent, r->high[m]);
        kd_strbuf_printf(md, "]");
    }
    if (r->noise_draws && kd_metric_is_calibration_error(m)) {
        kd_strbuf_printf(md, " (floor ");
        number(md, percent, r->floor_mean[m]);
        kd_strbuf_printf(md, ", p95 ");
        number(md, percent, r->floor_high[m]);
        kd_strbuf_printf(md, ")");
    }
}

static int stage_file(kd_file_batch *batch, const char *dir, const char *name, const kd_strbuf *b, kd_error *err)
{
    if (b->failed) return kd_error_set(err, KD_ERR_IO, "%s/%s: out of memory", dir, name);
    return kd_file_batch_stage(batch, dir, name, b->text ? b->text : "", b->length, err);
}

static int stage_svg(kd_file_batch *batch, const char *dir, const char *name, const kd_reliability *r, const char *title,
                     kd_error *err)
{
    kd_strbuf svg = {0};
    kd_report_reliability_svg(r, title, &svg);
    int rc = stage_file(batch, dir, name, &svg, err);
    kd_strbuf_free(&svg);
    return rc;
}

/* Every report file, staged (written whole beside its final name) but not in place. */
static int stage_reports(kd_file_batch *batch, const kd_calibrate_options *o, const kd_calibrate_result *res,
                         const char *data, kd_error *err)
{
    const char *fit_split = kd_split_name(o->split);
    const kd_temperature_fit *f = &res->fit;
    char name[64], title[160];
    int rc = KD_OK;
    const kd_reliability *panels[4] = {&res->fit_before, &res->fit_after, &res->test_before, &res->test_after};
    const char *splits[4] = {fit_split, fit_split, "test", "test"};
    for (int k = 0; k < (res->has_test ? 4 : 2) && !rc; k++) {
        snprintf(name, sizeof name, "reliability-%s-%s.svg", splits[k], k % 2 ? "after" : "before");
        snprintf(title, sizeof title, "%s split, %s temperature scaling", splits[k], k % 2 ? "after" : "before");
        rc = stage_svg(batch, res->report_dir, name, panels[k], title, err);
    }
    kd_json j;
    kd_json_init(&j);
    kd_json_begin_object(&j, NULL);
    kd_json_string(&j, "model", res->checkpoint);
    kd_json_string(&j, "data", data);
    kd_json_begin_object(&j, "fit");
    kd_json_string(&j, "split", fit_split);
    kd_json_number(&j, "temperature", f->temperature);
    kd_json_number(&j, "nll_before", f->nll_before);
    kd_json_number(&j, "nll_after", f->nll_after);
    kd_json_number(&j, "gradient", f->gradient);
    kd_json_number(&j, "tolerance", f->tolerance);
    kd_json_int(&j, "iterations", f->iterations);
    kd_json_bool(&j, "at_lower_bound", f->at_lower_bound);
    kd_json_bool(&j, "at_upper_bound", f->at_upper_bound);
    kd_json_bool(&j, "degenerate", f->degenerate);
    kd_json_number(&j, "seconds", res->seconds_fit);
    kd_json_end_object(&j);
    kd_report_reliability_json(&j, "fit_split_before", &res->fit_before);
    kd_report_reliability_json(&j, "fit_split_after", &res->fit_after);
    if (res->has_test) {
        kd_report_reliability_json(&j, "test_before", &res->test_before);
        kd_report_reliability_json(&j, "test_after", &res->test_after);
    }
    kd_json_end_object(&j);
    if (!rc) rc = j.out.failed ? kd_error_set(err, KD_ERR_IO, "out of memory for calibration.json")
                           : kd_file_batch_stage(batch, res->report_dir, "calibration.json", j.out.text, j.out.length, err);
    kd_json_free(&j);

    kd_strbuf md = {0};
    kd_strbuf_printf(&md, "# Calibration of `%s`\n\nData: `%s`. One temperature T fitted on the %s split by minimising NLL exactly "
                          "(%d Halley/bisection passes after the first, |dNLL/dβ| = %.2g ≤ %.2g): NLL %.4f → %.4f, T = %.4f.%s\n\n",
                     res->checkpoint, data, fit_split, f->iterations, fabs(f->gradient), f->tolerance, f->nll_before,
                     f->nll_after, f->temperature,
                     f->at_lower_bound   ? " **The fit stopped at the bound T = 0.001: the split is separable (NLL falls for every smaller T).**"
                     : f->at_upper_bound ? " **The fit stopped at the bound T = 1000: NLL rises for every larger T.**"
                     : f->degenerate     ? " **Every T fits equally (one class, or constant logits): T = 1 is kept.**"
                                         : "");
    int columns = res->has_test ? 4 : 2;
    kd_strbuf_printf(&md, "| metric | %s, before | %s, after |%s\n|---|---|---|%s\n", fit_split, fit_split,
                     res->has_test ? " test, before | test, after |" : "", res->has_test ? "---|---|" : "");
    kd_strbuf_printf(&md, "| T");
    for (int k = 0; k < columns; k++) kd_strbuf_printf(&md, " | %.4g", panels[k]->temperature);
    kd_strbuf_printf(&md, " |\n");
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        bool percent = m != KD_METRIC_NLL && m != KD_METRIC_BRIER;
        kd_strbuf_printf(&md, "| %s%s", kd_metric_label((kd_metric)m), percent ? " %" : "");
        for (int k = 0; k < columns; k++) table_cell(&md, panels[k], (kd_metric)m);
        kd_strbuf_printf(&md, " |\n");
    }
    kd_strbuf_printf(&md, "\n");
    if (o->bootstrap) kd_strbuf_printf(&md, "[low, high]: 95 %% CI, %d resamples (percentile bootstrap, seed %llu). ", o->bootstrap,
                                       (unsigned long long)o->seed);
    if (o->noise_draws)
        kd_strbuf_printf(&md, "Floor: the noise floor, the mean and 95th percentile of the metric over %d draws of the labels "
                              "from the model's own probabilities (a perfectly calibrated model with these probabilities on a "
                              "split of this size); a calibration error near its floor is not distinguishable from noise. ",
                         o->noise_draws);
    kd_strbuf_printf(&md, "ECE, MCE, classwise ECE: %d equal-width bins, bin m holding (m-1)/%d < p ≤ m/%d (0 in the first, 1 in "
                          "the last); classwise ECE: the mean over classes of the ECE of p_k against 1[y = k]. ECE, RMS and "
                          "debiased L2 calibration error on equal-mass bins: the samples sorted by confidence, %d bins of "
                          "ranks [⌊b n / %d⌋, ⌊(b + 1) n / %d⌋); debiased: Kumar, Liang and Ma (2019); KS: Gupta et al. (2021), "
                          "no bins. Accuracy is the same before and after: scaling does not move the arg max.\n\n",
                     o->bins, o->bins, o->bins, o->bins, o->bins, o->bins);
    kd_strbuf_printf(&md, "| before | after |\n|---|---|\n| ![](reliability-%s-before.svg) | ![](reliability-%s-after.svg) |\n",
                     fit_split, fit_split);
    if (res->has_test) kd_strbuf_printf(&md, "| ![](reliability-test-before.svg) | ![](reliability-test-after.svg) |\n");
    if (!rc) rc = stage_file(batch, res->report_dir, "calibration.md", &md, err);
    kd_strbuf_free(&md);
    return rc;
}

static int metrics(const kd_calibrate_options *o, const logits_set *s, int classes, double T, kd_reliability *r,
                   kd_error *err)
{
    kd_reliability_options ro = {.bins = o->bins, .bootstrap = o->bootstrap, .noise_draws = o->noise_draws, .seed = o->seed};
    return kd_reliability_compute(s->logits, s->labels, s->rows, classes, T, &ro, r, err);
}

int kd_calibrate(const kd_calibrate_options *o, kd_calibrate_result *res, kd_error *err)
{
    memset(res, 0, sizeof *res);
    /* Storing T rewrites the checkpoint: in a run folder, only while no training
     * (or other calibrate) writes there. */
    char path[KD_PATH_MAX], dir[KD_PATH_MAX], config[KD_PATH_MAX];
    kd_model_checkpoint_path(o->model, path, sizeof path);
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(config, sizeof config, "%s/config.ini", dirname(dir));
    int lock = -1;
    if (o->store && kd_file_exists(config) && (lock = kd_run_dir_lock(dir, err)) < 0) return err ? err->code : KD_ERR_BUSY;
    kd_model model;
    int rc = kd_model_open(&model, o->model, err);
    if (rc) {
        kd_file_unlock(lock);
        return rc;
    }
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", model.checkpoint);
    if (o->out_dir)
        snprintf(res->report_dir, sizeof res->report_dir, "%s", o->out_dir);
    else {
        char tmp[KD_PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s", res->checkpoint);
        snprintf(res->report_dir, sizeof res->report_dir, "%s", dirname(tmp));
    }
    kd_mlp *mlp = &model.mlp;
    kd_dataset ds;
    logits_set fit = {0}, test = {0};
    int classes = kd_model_classes(&model);
    rc = kd_model_open_data(&model, o->data, false, &ds, err); /* the run's dataset paths and validation rows */
    const char *data = ds.path;
    if (!rc && !ds.split[o->split].present)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected a %s split to fit on, found none", data, kd_split_name(o->split));
    if (!rc) rc = split_logits(mlp, &ds, o->split, &fit, err);
    res->has_test = !rc && o->split != KD_SPLIT_TEST && ds.split[KD_SPLIT_TEST].present;
    if (!rc && res->has_test) rc = split_logits(mlp, &ds, KD_SPLIT_TEST, &test, err);
    double t0 = kd_now_seconds();
    if (!rc) rc = kd_temperature_solve(fit.logits, fit.labels, fit.rows, classes, &res->fit, err);
    res->seconds_fit = kd_now_seconds() - t0;
    double T = res->fit.temperature;
    t0 = kd_now_seconds();
    if (!rc) rc = metrics(o, &fit, classes, 1.0, &res->fit_before, err);
    if (!rc) rc = metrics(o, &fit, classes, T, &res->fit_after, err);
    if (!rc && res->has_test) rc = metrics(o, &test, classes, 1.0, &res->test_before, err);
    if (!rc && res->has_test) rc = metrics(o, &test, classes, T, &res->test_after, err);
    res->seconds_report = kd_now_seconds() - t0;
    if (!rc && (res->fit_before.value[KD_METRIC_ACCURACY] != res->fit_after.value[KD_METRIC_ACCURACY] ||
                (res->has_test && res->test_before.value[KD_METRIC_ACCURACY] != res->test_after.value[KD_METRIC_ACCURACY])))
        rc = kd_error_set(err, KD_ERR_DATA, "temperature scaling changed the accuracy: a bug, please report it");
    /* The reports and the checkpoint's /calibration agree, or neither changed: the
     * reports are staged whole, then the checkpoint replaced, then the reports renamed. */
    kd_file_batch *batch = rc ? NULL : malloc(sizeof *batch);
    if (!rc && !batch) rc = kd_error_set(err, KD_ERR_IO, "out of memory");
    if (batch) kd_file_batch_init(batch);
    if (!rc) rc = kd_file_mkdir_p(res->report_dir, err);
    if (!rc) rc = stage_reports(batch, o, res, data, err);
    if (!rc && o->store) {
        kd_calibration c = {.present = true, .temperature = T, .nll_before = res->fit.nll_before,
                            .nll_after = res->fit.nll_after};
        snprintf(c.split, sizeof c.split, "%s", kd_split_name(o->split));
        rc = kd_checkpoint_write_calibration(res->checkpoint, &c, err);
    }
    if (!rc) rc = kd_file_batch_commit(batch, err);
    if (rc && batch) kd_file_batch_abort(batch);
    free(batch);
    free(fit.logits);
    free(test.logits);
    kd_dataset_close(&ds);
    kd_model_close(&model);
    kd_file_unlock(lock);
    return rc;
}
