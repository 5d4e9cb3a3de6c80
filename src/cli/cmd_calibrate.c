/* cmd_calibrate.c - `kdtrain calibrate`: fit one temperature exactly and report
 * calibration before and after (calibrate.h). */
#include "cli/args.h"
#include "cli/commands.h"

#include "workflows/calibrate.h"

#include <stdio.h>
#include <stdlib.h>

static void print_help(void)
{
    printf("usage: kdtrain calibrate --model RUN_OR_CHECKPOINT [--data FILE] [--split val] [--bins 15]\n"
           "                         [--bootstrap 1000] [--noise-draws 200] [--seed 0] [--out DIR] [--no-store]\n\n"
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
           "perfectly calibrated model would show on a split of this size. `kdtrain eval` then applies T.\n");
}

int kd_cmd_calibrate(int argc, char **argv)
{
    kd_args a = {argc, argv, 1, "kdtrain calibrate"};
    kd_calibrate_options o;
    kd_calibrate_options_default(&o);
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
    if (!o.model) {
        fprintf(stderr, "kdtrain calibrate: --model: required (a run folder or a checkpoint)\n");
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
