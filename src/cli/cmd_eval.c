/* cmd_eval.c - `kdtrain eval`: the options of workflows/eval.h, and the summary line. */
#define _POSIX_C_SOURCE 200809L
#include "cli/args.h"
#include "cli/commands.h"

#include "calib/metrics.h"
#include "workflows/eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct eval_args {
    const char *model, *data, *logits, *out;
    kd_split split;
    bool no_temperature, force;
    long bins;
} eval_args;

static void print_help(void)
{
    printf("usage: kdtrain eval --model RUN_OR_CHECKPOINT [--split test] [--data FILE] [--bins 15]\n"
           "                    [--logits OUT.h5] [--out FILE.json] [--force] [--no-temperature]\n\n"
           "Evaluates a model on a split (train, val or test) of the data set its config names\n"
           "(or --data): accuracy, NLL, Brier score, ECE and MCE (equal-width bins), per-class\n"
           "accuracy and the confusion matrix (rows: true class). The JSON goes to --out, by\n"
           "default eval-SPLIT.json beside the checkpoint; a summary is printed. The checkpoint's\n"
           "calibration temperature is applied unless --no-temperature.\n"
           "--logits writes /logits [N, C] float32 (before any temperature) and /labels [N] int32.\n"
           "An existing --out or --logits file is replaced only with --force; no output may be\n"
           "the checkpoint or the data set being read.\n");
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
        } else if (kd_arg_flag(&a, "--force")) {
            e->force = true;
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

int kd_cmd_eval(int argc, char **argv)
{
    eval_args e;
    int rc = parse(argc, argv, &e);
    if (rc) return rc < 0 ? 0 : rc;
    kd_error err;
    kd_error_clear(&err);
    kd_eval_request req = {.model = e.model, .data = e.data, .split = e.split, .bins = (int)e.bins,
                           .no_temperature = e.no_temperature, .json_out = e.out, .logits_out = e.logits,
                           .replace = e.force};
    kd_eval_result *res = malloc(sizeof *res);
    rc = res ? kd_eval_run(&req, res, &err) : kd_error_set(&err, KD_ERR_IO, "out of memory");
    if (!rc) {
        const kd_metrics_summary *s = &res->summary;
        double T = res->temperature;
        printf("%s on %s/%s (%lld samples, T = %.4g%s): accuracy %.2f%%  NLL %.4f  Brier %.4f  ECE %.2f%%  MCE %.2f%%\n"
               "report: %s\n",
               res->checkpoint, res->data, kd_split_name(e.split), (long long)s->count, T, T != 1.0 ? " fitted" : "",
               100 * s->accuracy, s->nll, s->brier, 100 * s->ece, 100 * s->mce, res->json_path);
    }
    free(res);
    if (rc) {
        fprintf(stderr, "kdtrain eval: %s\n", err.message);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}
