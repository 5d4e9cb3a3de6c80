/* calibrate_logits_report.c - see calibrate_logits_report.h. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/calibrate_logits_report.h"

#include "calib/report.h"
#include "io/json.h"
#include "io/provenance.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Accuracy and the calibration errors read as percentages, NLL and Brier as they are. */
static double scale_of(kd_metric m) { return m == KD_METRIC_NLL || m == KD_METRIC_BRIER ? 1.0 : 100.0; }
static int digits_of(kd_metric m) { return m == KD_METRIC_NLL || m == KD_METRIC_BRIER ? 4 : 2; }

static void cell(kd_strbuf *md, const kd_reliability *r, kd_metric m)
{
    double s = scale_of(m);
    int d = digits_of(m);
    kd_strbuf_printf(md, " %.*f", d, s * r->value[m]);
    if (r->bootstrap > 0) kd_strbuf_printf(md, " [%.*f, %.*f]", d, s * r->low[m], d, s * r->high[m]);
    kd_strbuf_printf(md, " |");
}

static void difference_cell(kd_strbuf *md, const kd_paired_difference *p, kd_metric m)
{
    double s = scale_of(m);
    int d = digits_of(m);
    kd_strbuf_printf(md, " %+.*f", d, s * p->value[m]);
    if (p->bootstrap > 0) kd_strbuf_printf(md, " [%+.*f, %+.*f]", d, s * p->low[m], d, s * p->high[m]);
    kd_strbuf_printf(md, " |");
}

static const kd_metric error_columns[] = {KD_METRIC_ECE,    KD_METRIC_ECE_EQUAL_MASS, KD_METRIC_CLASSWISE_ECE,
                                          KD_METRIC_RMS_CE, KD_METRIC_DEBIASED_CE,    KD_METRIC_KS_CE,
                                          KD_METRIC_MCE};
#define N_ERROR_COLUMNS ((int)(sizeof error_columns / sizeof error_columns[0]))

static void error_header(kd_strbuf *md, const char *first)
{
    kd_strbuf_printf(md, "| %s |", first);
    for (int c = 0; c < N_ERROR_COLUMNS; c++) kd_strbuf_printf(md, " %s |", kd_metric_label(error_columns[c]));
    kd_strbuf_printf(md, "\n|---|");
    for (int c = 0; c < N_ERROR_COLUMNS; c++) kd_strbuf_printf(md, "---|");
    kd_strbuf_printf(md, "\n");
}

static void error_row(kd_strbuf *md, const char *label, const kd_reliability *r)
{
    kd_strbuf_printf(md, "| %s |", label);
    for (int c = 0; c < N_ERROR_COLUMNS; c++) cell(md, r, error_columns[c]);
    kd_strbuf_printf(md, "\n");
}

static void floor_row(kd_strbuf *md, const char *label, const kd_reliability *r)
{
    kd_strbuf_printf(md, "| %s |", label);
    for (int c = 0; c < N_ERROR_COLUMNS; c++) {
        kd_metric m = error_columns[c];
        if (r->noise_draws > 0)
            kd_strbuf_printf(md, " %.2f / %.2f |", 100 * r->floor_mean[m], 100 * r->floor_high[m]);
        else
            kd_strbuf_printf(md, " – |");
    }
    kd_strbuf_printf(md, "\n");
}

/* "at the noise floor" when the measured ECE is no larger than the 95th percentile
 * of what a perfectly calibrated model with these probabilities shows. */
static void floor_sentence(kd_strbuf *md, const char *label, const kd_reliability *r)
{
    if (r->noise_draws <= 0) return;
    double e = r->value[KD_METRIC_ECE], hi = r->floor_high[KD_METRIC_ECE];
    kd_strbuf_printf(md, "* %s: ECE %.2f %% against a noise floor of %.2f %% (95th percentile %.2f %%): %s.\n", label,
                     100 * e, 100 * r->floor_mean[KD_METRIC_ECE], 100 * hi,
                     e <= hi ? "within the noise floor: on this many samples, this ECE cannot tell the model from a "
                               "perfectly calibrated one"
                             : "above the noise floor");
}

/* A lower value is better for every metric but accuracy. */
static const char *verdict(const kd_paired_difference *p, kd_metric m)
{
    if (p->bootstrap <= 0) return "no interval";
    bool higher_is_better = m == KD_METRIC_ACCURACY;
    if (p->low[m] > 0) return higher_is_better ? "better" : "worse";
    if (p->high[m] < 0) return higher_is_better ? "worse" : "better";
    return "no difference at 95 %";
}

static void markdown(const kd_calibrate_logits_options *o, const kd_calibrate_logits_result *res, const kd_logits *fit,
                     const kd_logits *test, kd_strbuf *md)
{
    char commit[96], date[64];
    kd_provenance_commit(commit, sizeof commit);
    kd_provenance_date(date, sizeof date);
    const char *split = test ? "test" : "fitting";
    kd_strbuf_printf(md, "# Calibration of `%s`%s%s%s\n\n", o->fit_logits, test ? " and `" : "", test ? o->test_logits : "",
                     test ? "`" : "");
    kd_strbuf_printf(md, "Produced by `%s` at commit %s on %s. ", o->command ? o->command : "kdtrain calibrate --logits", commit,
                     date);
    kd_strbuf_printf(md, "Fitting file: `%s` (%lld rows, %d classes%s%s%s). ", o->fit_logits, (long long)res->fit_rows,
                     res->classes, fit->model[0] ? "; model: " : "", fit->model, o->probabilities ? "; read as probabilities, logged" : "");
    if (test) kd_strbuf_printf(md, "Test file: `%s` (%lld rows). ", o->test_logits, (long long)res->test_rows);
    kd_strbuf_printf(md, "Every calibrator is fitted on the fitting file only and compared on the %s file. ", split);
    kd_strbuf_printf(md, "Intervals: 95 %% bootstrap percentile intervals over %d resamples of the rows (seed %llu). "
                         "Noise floor: the mean (and 95th percentile) of each calibration error over %d draws of labels "
                         "from the calibrated probabilities themselves, i.e. what a perfectly calibrated model with the same "
                         "confidences shows on a split of this size. Bins: %d.\n\n",
                     o->metrics.bootstrap, (unsigned long long)o->metrics.seed, o->metrics.noise_draws, o->metrics.bins);

    kd_strbuf_printf(md, "## The methods, fitted on the fitting file\n\n"
                         "| method | model | parameters | objective reached | fit, ms | regularisation (CV) | keeps the prediction |\n"
                         "|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < res->n_methods; k++) {
        const kd_calibrator *c = &res->method[k].calibrator;
        const char *objective_name;
        double objective = kd_calibrator_objective(c, &objective_name);
        kd_strbuf_printf(md, "| %s | %s | %lld | %s %.6f | %.2f | ", kd_calibrator_name(c->kind), kd_calibrator_describe(c->kind),
                         (long long)kd_calibrator_parameter_count(c), objective_name, objective, 1e3 * c->seconds);
        if ((c->kind == KD_CALIBRATOR_MATRIX || c->kind == KD_CALIBRATOR_DIRICHLET) && c->scaling.n_grid > 0)
            kd_strbuf_printf(md, "λ = %.3g, μ = %.3g of %d by %d-fold CV", c->scaling.lambda, c->scaling.mu,
                             c->scaling.n_grid, o->calibrators.scaling.folds);
        else if (c->kind == KD_CALIBRATOR_TEMPERATURE)
            kd_strbuf_printf(md, "T = %.4f (%s 1: the model was %s)", c->temperature.temperature,
                             c->temperature.temperature > 1 ? ">" : c->temperature.temperature < 1 ? "<" : "=",
                             kd_temperature_describe(c->temperature.temperature));
        else if (c->kind == KD_CALIBRATOR_ETS)
            kd_strbuf_printf(md, "T = %.4f, w = (%.3f, %.3f, %.3f)", c->ets.temperature, c->ets.weight[0], c->ets.weight[1],
                             c->ets.weight[2]);
        else
            kd_strbuf_printf(md, "–");
        kd_strbuf_printf(md, " | %s |\n", kd_calibrator_keeps_prediction(c->kind) ? "yes (by construction)" : "no");
    }

    const kd_reliability *before = test ? &res->test_before : &res->fit_before;
    kd_strbuf_printf(md, "\n## %s split: accuracy and proper scores\n\n"
                         "| method | accuracy %% | Δ accuracy vs uncalibrated, points | predictions changed | NLL | Brier |\n"
                         "|---|---|---|---|---|---|\n",
                     test ? "Test" : "Fitting");
    kd_strbuf_printf(md, "| uncalibrated |");
    cell(md, before, KD_METRIC_ACCURACY);
    kd_strbuf_printf(md, " – | – |");
    cell(md, before, KD_METRIC_NLL);
    cell(md, before, KD_METRIC_BRIER);
    kd_strbuf_printf(md, "\n");
    for (int k = 0; k < res->n_methods; k++) {
        const kd_calibrate_logits_method *m = &res->method[k];
        kd_strbuf_printf(md, "| %s |", kd_calibrator_name(m->calibrator.kind));
        cell(md, &m->test, KD_METRIC_ACCURACY);
        kd_strbuf_printf(md, " %+.2f | %lld |", 100 * (m->test.value[KD_METRIC_ACCURACY] - before->value[KD_METRIC_ACCURACY]),
                         (long long)m->changed_predictions);
        cell(md, &m->test, KD_METRIC_NLL);
        cell(md, &m->test, KD_METRIC_BRIER);
        kd_strbuf_printf(md, "\n");
    }

    kd_strbuf_printf(md, "\n## %s split: calibration errors, %%\n\n", test ? "Test" : "Fitting");
    error_header(md, "method");
    error_row(md, "uncalibrated", before);
    for (int k = 0; k < res->n_methods; k++)
        error_row(md, kd_calibrator_name(res->method[k].calibrator.kind), &res->method[k].test);
    kd_strbuf_printf(md, "\nECE and MCE: %d equal-width bins, bin m holding (m-1)/%d < confidence ≤ m/%d; ECE with "
                         "equal-mass bins, RMS and debiased calibration error (Kumar et al. 2019): %d equal-mass bins of the "
                         "top-label confidence; classwise ECE: the mean over classes of the ECE of p_k against 1[y = k]; KS: "
                         "the binning-free Kolmogorov-Smirnov calibration error of Gupta et al. 2021. NLL clips a "
                         "probability of the true class below 1e-15 (as sklearn's log_loss): the binning methods can give the "
                         "true class a probability of 0. A calibration error is biased upward on a bootstrap resample (its "
                         "duplicated rows fill the bins unevenly), so its percentile interval can lie above the point "
                         "estimate; the noise floor below says how large the error of a perfectly calibrated model is.\n\n",
                     o->metrics.bins, o->metrics.bins, o->metrics.bins, o->metrics.bins);

    kd_strbuf_printf(md, "### Noise floors, %% (mean / 95th percentile over %d label draws)\n\n", o->metrics.noise_draws);
    error_header(md, "method");
    floor_row(md, "uncalibrated", before);
    for (int k = 0; k < res->n_methods; k++)
        floor_row(md, kd_calibrator_name(res->method[k].calibrator.kind), &res->method[k].test);
    kd_strbuf_printf(md, "\n");
    floor_sentence(md, "uncalibrated", before);
    for (int k = 0; k < res->n_methods; k++)
        floor_sentence(md, kd_calibrator_name(res->method[k].calibrator.kind), &res->method[k].test);

    kd_strbuf_printf(md, "\n## Against temperature scaling, paired on the %s split\n\n"
                         "Each method minus temperature scaling, on the same bootstrap resamples (%d); a verdict is given "
                         "where the 95 %% interval excludes 0.\n\n"
                         "| method | Δ accuracy, points | Δ NLL | Δ Brier | Δ ECE, points | Δ ECE equal-mass | Δ classwise ECE | "
                         "Δ KS | NLL | ECE |\n|---|---|---|---|---|---|---|---|---|---|\n",
                     split, o->metrics.bootstrap);
    for (int k = 1; k < res->n_methods; k++) {
        const kd_calibrate_logits_method *m = &res->method[k];
        const kd_paired_difference *p = &m->versus_temperature;
        kd_strbuf_printf(md, "| %s |", kd_calibrator_name(m->calibrator.kind));
        static const kd_metric cols[] = {KD_METRIC_ACCURACY,       KD_METRIC_NLL,           KD_METRIC_BRIER, KD_METRIC_ECE,
                                         KD_METRIC_ECE_EQUAL_MASS, KD_METRIC_CLASSWISE_ECE, KD_METRIC_KS_CE};
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) difference_cell(md, p, cols[c]);
        kd_strbuf_printf(md, " %s | %s |\n", verdict(p, KD_METRIC_NLL), verdict(p, KD_METRIC_ECE));
    }
    if (res->n_methods == 1) kd_strbuf_printf(md, "Only temperature scaling was fitted (`--method` chooses others).\n");
    for (int k = 1; k < res->n_methods; k++) {
        const kd_calibrate_logits_method *m = &res->method[k];
        if (!kd_calibrator_keeps_prediction(m->calibrator.kind))
            kd_strbuf_printf(md, "%s* %s can change the predicted class: it changed %lld of %lld predictions on the %s split "
                                 "(accuracy %+.2f points against the uncalibrated model).\n",
                             k == 1 ? "\n" : "", kd_calibrator_name(m->calibrator.kind), (long long)m->changed_predictions,
                             (long long)(test ? res->test_rows : res->fit_rows), split,
                             100 * (m->test.value[KD_METRIC_ACCURACY] - before->value[KD_METRIC_ACCURACY]));
    }

    kd_strbuf_printf(md, "\n## Fitting split (in-sample: the data each method was fitted on)\n\n"
                         "| method | accuracy %% | NLL | Brier | ECE %% |\n|---|---|---|---|---|\n");
    kd_strbuf_printf(md, "| uncalibrated | %.2f | %.4f | %.4f | %.2f |\n", 100 * res->fit_before.value[KD_METRIC_ACCURACY],
                     res->fit_before.value[KD_METRIC_NLL], res->fit_before.value[KD_METRIC_BRIER],
                     100 * res->fit_before.value[KD_METRIC_ECE]);
    for (int k = 0; k < res->n_methods; k++) {
        const kd_reliability *r = &res->method[k].fit;
        kd_strbuf_printf(md, "| %s | %.2f | %.4f | %.4f | %.2f |\n", kd_calibrator_name(res->method[k].calibrator.kind),
                         100 * r->value[KD_METRIC_ACCURACY], r->value[KD_METRIC_NLL], r->value[KD_METRIC_BRIER],
                         100 * r->value[KD_METRIC_ECE]);
    }

    kd_strbuf_printf(md, "\n## Reliability diagrams (%s split)\n\n| method | diagram |\n|---|---|\n", split);
    kd_strbuf_printf(md, "| uncalibrated | ![](reliability-%s-before.svg) |\n", test ? "test" : "fit");
    for (int k = 0; k < res->n_methods; k++)
        kd_strbuf_printf(md, "| %s | ![](reliability-%s-%s.svg) |\n", kd_calibrator_name(res->method[k].calibrator.kind),
                         test ? "test" : "fit", kd_calibrator_name(res->method[k].calibrator.kind));
    if (test)
        kd_strbuf_printf(md, "\nCalibrated outputs of the test file: `calibrated-test.h5` (`/labels`; `/METHOD/probabilities`, "
                             "and `/METHOD/logits` for %s).\n",
                         "temperature, vector, matrix and dirichlet");
}

static void difference_json(kd_json *j, const char *key, const kd_paired_difference *p)
{
    kd_json_begin_object(j, key);
    kd_json_int(j, "bootstrap", p->bootstrap);
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        kd_json_begin_object(j, kd_metric_name((kd_metric)m));
        kd_json_number(j, "value", p->value[m]);
        kd_json_number(j, "low", p->low[m]);
        kd_json_number(j, "high", p->high[m]);
        kd_json_end_object(j);
    }
    kd_json_end_object(j);
}

static void json_report(const kd_calibrate_logits_options *o, const kd_calibrate_logits_result *res, const kd_logits *fit,
                        const kd_logits *test, kd_json *j)
{
    char commit[96], date[64];
    kd_provenance_commit(commit, sizeof commit);
    kd_provenance_date(date, sizeof date);
    kd_json_begin_object(j, NULL);
    kd_json_string(j, "command", o->command ? o->command : "");
    kd_json_string(j, "commit", commit);
    kd_json_string(j, "date", date);
    kd_json_string(j, "fit_file", o->fit_logits);
    kd_json_string(j, "fit_model", fit->model);
    kd_json_int(j, "fit_rows", res->fit_rows);
    if (test) {
        kd_json_string(j, "test_file", o->test_logits);
        kd_json_string(j, "test_model", test->model);
        kd_json_int(j, "test_rows", res->test_rows);
    }
    kd_json_int(j, "classes", res->classes);
    kd_json_bool(j, "probabilities_logged", o->probabilities);
    kd_json_int(j, "bins", o->metrics.bins);
    kd_json_int(j, "bootstrap", o->metrics.bootstrap);
    kd_json_int(j, "noise_draws", o->metrics.noise_draws);
    kd_json_int(j, "seed", (int64_t)o->metrics.seed);
    kd_json_number(j, "seconds", res->seconds);
    kd_json_begin_object(j, "uncalibrated");
    kd_report_reliability_json(j, "fit", &res->fit_before);
    if (test) kd_report_reliability_json(j, "test", &res->test_before);
    kd_json_end_object(j);
    kd_json_begin_array(j, "methods");
    for (int k = 0; k < res->n_methods; k++) {
        const kd_calibrate_logits_method *m = &res->method[k];
        kd_json_begin_object(j, NULL);
        kd_calibrator_json(j, "calibrator", &m->calibrator);
        kd_report_reliability_json(j, "fit", &m->fit);
        if (test) kd_report_reliability_json(j, "test", &m->test);
        kd_json_int(j, "changed_predictions", m->changed_predictions);
        if (k > 0) difference_json(j, "minus_temperature", &m->versus_temperature);
        kd_json_end_object(j);
    }
    kd_json_end_array(j);
    kd_json_end_object(j);
}

void kd_calibrate_logits_report(const kd_calibrate_logits_options *o, const kd_calibrate_logits_result *res,
                                const kd_logits *fit, const kd_logits *test, kd_strbuf *md, kd_strbuf *json)
{
    markdown(o, res, fit, test, md);
    kd_json j;
    kd_json_init(&j);
    json_report(o, res, fit, test, &j);
    kd_strbuf_free(json);
    *json = j.out; /* the JSON text moves to the caller */
}
