/* cmd_calibrate.c - `kdtrain calibrate`: fit one temperature exactly and report
 * calibration before and after (calibrate.h). */
#include "cli/args.h"
#include "cli/commands.h"

#include "workflows/calibrate.h"
#include "workflows/calibrate_logits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(void)
{
    printf("usage: kdtrain calibrate --model RUN_OR_CHECKPOINT [--data FILE] [--split val] [--bins 15]\n"
           "                         [--bootstrap 1000] [--noise-draws 200] [--seed 0] [--out DIR] [--no-store]\n"
           "       kdtrain calibrate --logits VAL [--labels L] [--test TEST] [--test-labels L] --out DIR\n"
           "                         [--method temperature,vector,...|all] [--probabilities] [--folds 5]\n"
           "                         [--bins 15] [--bootstrap 1000] [--noise-draws 200] [--seed 0] [--force]\n\n"
           "Fits one temperature T on a split (validation by default) by minimising NLL exactly\n"
           "(convex in 1/T: safeguarded Halley steps to |dNLL/d(1/T)| <= 1e-6 of the logit range), stores\n"
           "it in the checkpoint's /calibration group (atomically; --no-store leaves it alone), and\n"
           "writes calibration.json, calibration.md and reliability diagrams (SVG) before and after\n"
           "scaling, on the fitting split and on test, into the checkpoint's folder (or --out).\n"
           "Metrics, each with a percentile-bootstrap 95%% interval (--bootstrap resamples): accuracy\n"
           "(unchanged by T), NLL, Brier, ECE and MCE (equal-width bins), ECE (equal-mass bins),\n"
           "classwise ECE, RMS and debiased L2 calibration error (equal-mass bins), KS calibration\n"
           "error. Each calibration error also gets its noise floor: its mean and 95th percentile\n"
           "over --noise-draws draws of the labels from the model's own probabilities, the value a\n"
           "perfectly calibrated model would show on a split of this size. `kdtrain eval` then applies T.\n\n"
           "With --logits, calibrates any model's logits: VAL and TEST are HDF5 files (/logits [N, C]\n"
           "float32/64 and /labels [N] of any integer type, other datasets as FILE:/path, labels as\n"
           "--labels FILE:/path or :/path) or .npy files (labels from --labels, or from the file named\n"
           "with the last 'logits' replaced by 'labels'). Rows that are probabilities are refused\n"
           "unless --probabilities (their log is taken). --method chooses calibrators among\n"
           "temperature, vector, matrix, dirichlet, histogram, isotonic, scaling-binning, ets, or all;\n"
           "each is fitted on VAL (regularisation of matrix/dirichlet by --folds-fold CV) and compared\n"
           "on TEST with temperature scaling (always fitted) by a paired bootstrap. Writes\n"
           "calibration.md/json, reliability diagrams and calibrated-test.h5 into DIR (--force\n"
           "replaces an earlier report there).\n");
}

static int run_logits(kd_calibrate_logits_options *o, int argc, char **argv)
{
    char command[2048] = "kdtrain";
    for (int i = 0; i < argc; i++) {
        size_t used = strlen(command);
        snprintf(command + used, sizeof command - used, " %s", argv[i]);
    }
    o->command = command;
    kd_calibrate_logits_result *r = malloc(sizeof *r);
    if (!r) return 1;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_calibrate_logits(o, r, &err);
    if (rc) {
        fprintf(stderr, "kdtrain calibrate: %s\n", err.message);
        free(r);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    const kd_reliability *before = r->test_rows ? &r->test_before : &r->fit_before;
    printf("%s: %lld rows, %d classes; compared on %s (%lld rows)\n", o->fit_logits, (long long)r->fit_rows, r->classes,
           r->test_rows ? o->test_logits : "the fitting file", (long long)(r->test_rows ? r->test_rows : r->fit_rows));
    printf("%-16s %9s %8s %8s %8s %10s\n", "method", "accuracy", "NLL", "ECE %", "Brier", "fit ms");
    printf("%-16s %8.2f%% %8.4f %8.2f %8.4f %10s\n", "uncalibrated", 100 * before->value[KD_METRIC_ACCURACY],
           before->value[KD_METRIC_NLL], 100 * before->value[KD_METRIC_ECE], before->value[KD_METRIC_BRIER], "");
    for (int k = 0; k < r->n_methods; k++) {
        const kd_calibrate_logits_method *m = &r->method[k];
        printf("%-16s %8.2f%% %8.4f %8.2f %8.4f %10.2f\n", kd_calibrator_name(m->calibrator.kind),
               100 * m->test.value[KD_METRIC_ACCURACY], m->test.value[KD_METRIC_NLL], 100 * m->test.value[KD_METRIC_ECE],
               m->test.value[KD_METRIC_BRIER], 1e3 * m->calibrator.seconds);
    }
    const kd_temperature_fit *f = &r->method[0].calibrator.temperature;
    if (f->at_lower_bound)
        fprintf(stderr, "kdtrain calibrate: warning: NLL falls for every T down to the bound 0.001 (the fitting file is "
                        "separable); T stopped there\n");
    if (f->at_upper_bound)
        fprintf(stderr, "kdtrain calibrate: warning: NLL rises for every T up to the bound 1000; T stopped there\n");
    printf("report: %s/calibration.md\n", o->out_dir);
    kd_calibrate_logits_result_free(r);
    free(r);
    return 0;
}

int kd_cmd_calibrate(int argc, char **argv)
{
    kd_args a = {argc, argv, 1, "kdtrain calibrate"};
    kd_calibrate_options o;
    kd_calibrate_options_default(&o);
    kd_calibrate_logits_options lo;
    kd_calibrate_logits_options_default(&lo);
    const char *method = NULL;
    bool folds_set = false, force = false;
    for (; a.i < argc; a.i++) {
        const char *v;
        long n;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            print_help();
            return 0;
        }
        if (kd_arg_flag(&a, "--no-store")) {
            o.store = false;
        } else if (kd_arg_flag(&a, "--probabilities")) {
            lo.probabilities = true;
        } else if (kd_arg_flag(&a, "--force")) {
            force = true;
        } else if ((m = kd_arg_value(&a, "--logits", "a logits file (FILE.h5[:/path] or FILE.npy)", &v))) {
            if (m < 0) return 2;
            lo.fit_logits = v;
        } else if ((m = kd_arg_value(&a, "--labels", "a labels file (FILE.h5:/path, :/path or FILE.npy)", &v))) {
            if (m < 0) return 2;
            lo.fit_labels = v;
        } else if ((m = kd_arg_value(&a, "--test", "a logits file (FILE.h5[:/path] or FILE.npy)", &v))) {
            if (m < 0) return 2;
            lo.test_logits = v;
        } else if ((m = kd_arg_value(&a, "--test-labels", "a labels file (FILE.h5:/path, :/path or FILE.npy)", &v))) {
            if (m < 0) return 2;
            lo.test_labels = v;
        } else if ((m = kd_arg_value(&a, "--method", "a list of calibrators, or all", &v))) {
            if (m < 0) return 2;
            method = v;
        } else if ((m = kd_arg_value(&a, "--folds", "a number of folds", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--folds", v, 2, 100, &n)) return 2;
            lo.calibrators.scaling.folds = (int)n;
            folds_set = true;
        } else if ((m = kd_arg_value(&a, "--model", "a run folder or checkpoint", &v))) {
            if (m < 0) return 2;
            o.model = v;
        } else if ((m = kd_arg_value(&a, "--data", "an HDF5 data set", &v))) {
            if (m < 0) return 2;
            o.data = v;
        } else if ((m = kd_arg_value(&a, "--out", "a folder", &v))) {
            if (m < 0) return 2;
            o.out_dir = v;
        } else if ((m = kd_arg_value(&a, "--split", "train, val or test", &v))) {
            if (m < 0) return 2;
            if (!kd_split_parse(v, &o.split)) {
                fprintf(stderr, "kdtrain calibrate: --split: expected train, val or test, found '%s'\n", v);
                return 2;
            }
        } else if ((m = kd_arg_value(&a, "--bins", "a bin count", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--bins", v, 1, KD_MAX_BINS, &n)) return 2;
            o.bins = (int)n;
        } else if ((m = kd_arg_value(&a, "--bootstrap", "a number of resamples", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--bootstrap", v, 0, 1000000, &n)) return 2;
            o.bootstrap = (int)n;
        } else if ((m = kd_arg_value(&a, "--noise-draws", "a number of label draws", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--noise-draws", v, 0, 1000000, &n)) return 2;
            o.noise_draws = (int)n;
        } else if ((m = kd_arg_value(&a, "--seed", "a seed", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--seed", v, 0, 2147483647, &n)) return 2;
            o.seed = (uint64_t)n;
        } else {
            return kd_arg_unknown(&a);
        }
    }
    if (lo.fit_logits) {
        const char *model_only = o.model ? "--model" : o.data ? "--data" : !o.store ? "--no-store" : o.split != KD_SPLIT_VAL ? "--split" : NULL;
        if (model_only) {
            fprintf(stderr, "kdtrain calibrate: %s: not with --logits (it calibrates a kdtrain model)\n", model_only);
            return 2;
        }
        kd_error err;
        kd_error_clear(&err);
        if (method && !kd_calibrator_parse_list(method, &lo.methods, &err)) {
            fprintf(stderr, "kdtrain calibrate: %s\n", err.message);
            return 2;
        }
        lo.metrics.noise_draws = o.noise_draws;
        lo.metrics.bins = o.bins;
        lo.metrics.bootstrap = o.bootstrap;
        lo.metrics.seed = o.seed;
        lo.out_dir = o.out_dir;
        lo.replace = force;
        return run_logits(&lo, argc, argv);
    }
    const char *logits_only = lo.fit_labels ? "--labels" : lo.test_logits ? "--test" : lo.test_labels ? "--test-labels"
                              : lo.probabilities ? "--probabilities" : folds_set ? "--folds" : force ? "--force" : NULL;
    if (logits_only) {
        fprintf(stderr, "kdtrain calibrate: %s: only with --logits\n", logits_only);
        return 2;
    }
    if (method && strcmp(method, "temperature") != 0) {
        fprintf(stderr, "kdtrain calibrate: --method %s: a kdtrain model is calibrated by temperature scaling (stored in "
                        "its checkpoint); to compare other calibrators, write its logits with `kdtrain eval --logits` for "
                        "val and test and run `kdtrain calibrate --logits`\n", method);
        return 2;
    }
    if (!o.model) {
        fprintf(stderr, "kdtrain calibrate: --model or --logits: required (a run folder or a checkpoint, or a logits file)\n");
        return 2;
    }
    kd_calibrate_result *r = malloc(sizeof *r);
    if (!r) return 1;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_calibrate(&o, r, &err);
    if (rc) {
        fprintf(stderr, "kdtrain calibrate: %s\n", err.message);
        free(r);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    const kd_temperature_fit *f = &r->fit;
    if (f->at_lower_bound)
        fprintf(stderr, "kdtrain calibrate: warning: NLL falls for every T down to the bound 0.001 (the %s split is "
                        "separable); T stopped there\n", kd_split_name(o.split));
    if (f->at_upper_bound)
        fprintf(stderr, "kdtrain calibrate: warning: NLL rises for every T up to the bound 1000; T stopped there\n");
    if (f->degenerate) fprintf(stderr, "kdtrain calibrate: warning: every T fits equally; T = 1 kept\n");
    printf("%s: T = %.4f fitted on %s in %d steps (%.2f ms), |dNLL/dbeta| = %.2g\n", r->checkpoint, f->temperature,
           kd_split_name(o.split), f->iterations, 1e3 * r->seconds_fit, f->gradient < 0 ? -f->gradient : f->gradient);
    printf("%-14s %9s %8s %8s %8s\n", "", "accuracy", "NLL", "ECE %", "Brier");
    const kd_reliability *rows[4] = {&r->fit_before, &r->fit_after, &r->test_before, &r->test_after};
    const char *labels[4] = {"fit, before", "fit, after", "test, before", "test, after"};
    for (int k = 0; k < (r->has_test ? 4 : 2); k++)
        printf("%-14s %8.2f%% %8.4f %8.2f %8.4f\n", labels[k], 100 * rows[k]->value[KD_METRIC_ACCURACY],
               rows[k]->value[KD_METRIC_NLL], 100 * rows[k]->value[KD_METRIC_ECE], rows[k]->value[KD_METRIC_BRIER]);
    printf("report: %s/calibration.md%s\n", r->report_dir, o.store ? "; T stored in the checkpoint" : "");
    free(r);
    return 0;
}
