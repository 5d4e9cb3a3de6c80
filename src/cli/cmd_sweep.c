/* cmd_sweep.c - `kdtrain sweep -c SWEEP.ini`: the overfitting diagnostic (sweep.h). */
#include "cli/args.h"
#include "cli/commands.h"

#include "train/sweep.h"

#include <stdio.h>
#include <stdlib.h>

int kd_cmd_sweep(int argc, char **argv)
{
    kd_args a = {argc, argv, 1, "kdtrain sweep"};
    const char *config = NULL;
    bool quiet = false;
    for (; a.i < argc; a.i++) {
        const char *v;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            printf("usage: kdtrain sweep -c SWEEP.ini [--quiet]\n\n"
                   "The overfitting diagnostic: trains every run listed in SWEEP.ini (the format of\n"
                   "`kdtrain run`, e.g. configs/overfit.ini; runs should set train.temperature_every = 1),\n"
                   "and writes OUT/sweep.csv, temperature.svg, val_nll.svg, gap.svg and summary.md with the\n"
                   "correlation between the train-validation accuracy gap and the fitted temperature.\n"
                   "Finished runs are reused.\n");
            return 0;
        }
        if (kd_arg_flag(&a, "--quiet")) {
            quiet = true;
        } else if ((m = kd_arg_value(&a, "-c", "a sweep config", &v)) || (m = kd_arg_value(&a, "--config", "a sweep config", &v))) {
            if (m < 0) return 2;
            config = v;
        } else {
            return kd_arg_unknown(&a);
        }
    }
    if (!config) {
        fprintf(stderr, "kdtrain sweep: -c SWEEP.ini: required\n");
        return 2;
    }
    kd_pipeline *p = malloc(sizeof *p);
    if (!p) return 1;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_pipeline_load(p, config, &err);
    if (!rc) rc = kd_sweep_run(p, quiet, &err);
    free(p);
    if (rc) {
        fprintf(stderr, "kdtrain sweep: %s\n", err.message);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}
