/* cmd_run.c - `kdtrain run -c PIPELINE.ini`: the whole experiment (pipeline.h). */
#include "cli/args.h"
#include "cli/commands.h"

#include "train/pipeline.h"

#include <stdio.h>
#include <stdlib.h>

static void print_help(void)
{
    printf("usage: kdtrain run -c PIPELINE.ini [--quiet]\n\n"
           "Runs a whole experiment: imports the data when missing ([pipeline] prepare), trains\n"
           "the teacher, then for every [regime.NAME] and every seed its runs (run.NAME = train|distill\n"
           "CONFIG [section.key=value ...]), evaluates each model on the test split, and writes\n"
           "OUT/summary.md (means and standard deviations over seeds, paired differences for\n"
           "compare = B - A) and OUT/summary.csv. Finished runs are reused and interrupted ones\n"
           "resumed, so the command can simply be started again. See configs/fashion-mnist.ini.\n");
}

int kd_cmd_run(int argc, char **argv)
{
    kd_args a = {argc, argv, 1, "kdtrain run"};
    const char *config = NULL;
    bool quiet = false;
    for (; a.i < argc; a.i++) {
        const char *v;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            print_help();
            return 0;
        }
        if (kd_arg_flag(&a, "--quiet")) {
            quiet = true;
        } else if ((m = kd_arg_value(&a, "-c", "a pipeline config", &v)) || (m = kd_arg_value(&a, "--config", "a pipeline config", &v))) {
            if (m < 0) return 2;
            config = v;
        } else {
            return kd_arg_unknown(&a);
        }
    }
    if (!config) {
        fprintf(stderr, "kdtrain run: -c PIPELINE.ini: required\n");
        return 2;
    }
    kd_pipeline *p = malloc(sizeof *p);
    if (!p) return 1;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_pipeline_load(p, config, &err);
    if (!rc) rc = kd_pipeline_run(p, quiet, &err);
    free(p);
    if (rc) {
        fprintf(stderr, "kdtrain run: %s\n", err.message);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}
