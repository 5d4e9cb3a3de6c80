/* cmd_run.c - `kdtrain run -c PIPELINE.ini` (pipeline.h) and `kdtrain sweep -c
 * SWEEP.ini` (sweep.h): the two commands that read the pipeline format, so they
 * share their options. */
#include "cli/args.h"
#include "cli/commands.h"

#include "workflows/pipeline.h"
#include "workflows/sweep.h"

#include <stdio.h>
#include <stdlib.h>

static const char *run_help =
    "usage: kdtrain run -c PIPELINE.ini [--quiet]\n\n"
    "Runs a whole experiment: imports the data when missing ([pipeline] prepare), trains\n"
    "the teacher, then for every [regime.NAME] and every seed its runs (run.NAME = train|distill\n"
    "CONFIG [section.key=value ...]), calibrates and evaluates each model on the test split,\n"
    "and writes OUT/summary.md (means and standard deviations over seeds, paired differences\n"
    "for compare = B - A, 'distillation or one temperature?' for vs_temperature = D - A, plots\n"
    "for plot_x / plot_series) and OUT/summary.csv. Finished runs are reused and interrupted\n"
    "ones resumed, so the command can simply be started again. See configs/fashion-mnist.ini.\n";

static const char *sweep_help =
    "usage: kdtrain sweep -c SWEEP.ini [--quiet]\n\n"
    "The overfitting diagnostic: trains every run listed in SWEEP.ini (the format of\n"
    "`kdtrain run`, e.g. configs/overfit.ini; runs should set train.temperature_every = 1),\n"
    "and writes OUT/sweep.csv, temperature.svg, val_nll.svg, gap.svg and summary.md with the\n"
    "correlation between the train-validation accuracy gap and the fitted temperature.\n"
    "Finished runs are reused.\n";

static int pipeline_command(int argc, char **argv, kd_comm *comm, const char *command, const char *help,
                            int (*runner)(const kd_pipeline *, bool, kd_comm *, kd_error *))
{
    kd_args a = {argc, argv, 1, command};
    const char *config = NULL;
    bool quiet = false;
    for (; a.i < argc; a.i++) {
        const char *v;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if (kd_arg_flag(&a, "--quiet")) {
            quiet = true;
        } else if ((m = kd_arg_value(&a, "-c", "a config", &v)) || (m = kd_arg_value(&a, "--config", "a config", &v))) {
            if (m < 0) return 2;
            config = v;
        } else {
            return kd_arg_unknown(&a);
        }
    }
    if (!config) {
        fprintf(stderr, "%s: -c CONFIG.ini: required\n", command);
        return 2;
    }
    kd_pipeline *p = malloc(sizeof *p);
    if (!p) return 1;
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_comm_agree(comm, kd_pipeline_load(p, config, &err), &err);
    if (!rc) rc = runner(p, quiet, comm, &err);
    free(p);
    if (rc) {
        kd_cli_report_error(command, comm, &err);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}

int kd_cmd_run(int argc, char **argv, kd_comm *comm)
{
    return pipeline_command(argc, argv, comm, "kdtrain run", run_help, kd_pipeline_run);
}

int kd_cmd_sweep(int argc, char **argv, kd_comm *comm)
{
    return pipeline_command(argc, argv, comm, "kdtrain sweep", sweep_help, kd_sweep_run);
}
