/* pipeline_internal.h - what pipeline.c (running) and pipeline_report.c (the
 * summary) share: the results of every model of a pipeline. */
#ifndef KD_PIPELINE_INTERNAL_H
#define KD_PIPELINE_INTERNAL_H

#include "data/dataset.h"
#include "io/provenance.h"
#include "workflows/pipeline.h"
#include "workflows/config.h"
#include "workflows/stats.h"

#include <stddef.h>
#include <string.h>

typedef struct model_result {
    char path[KD_PIPE_TEXT + 128];
    char arch[128];
    size_t params;
    double acc, nll, ece, brier, epoch_seconds; /* test split, T = 1 */
    double temperature;                         /* fitted on validation */
    double val_acc, val_nll, val_ece;           /* validation split, T = 1 */
    double plot_x, plot_series;                 /* the regime's plot keys, from the run's config */
    double nll_scaled, ece_scaled;              /* test split at the fitted T */
    double ece_low, ece_high;                   /* bootstrap interval of the test ECE, T = 1 */
    double ece_scaled_low, ece_scaled_high;
} model_result;

typedef struct pipe_state {
    const kd_pipeline *p;
    bool quiet;
    kd_dataset ds; /* the test split, loaded once */
    model_result teacher;
    model_result regime_teacher[KD_PIPE_MAX_REGIMES];
    model_result results[KD_PIPE_MAX_REGIMES][KD_PIPE_MAX_RUNS][KD_PIPE_MAX_SEEDS];
    int done, total;
    kd_commit_set trained; /* the commits that trained the runs, from their summary.json */
    double started;        /* kd_now_seconds() when this invocation began */
    double train_seconds;  /* spent in kd_train (training, resuming) */
    int runs_trained, runs_reused;
    int threads;           /* pipeline.threads: > 0, every run's thread count */
    int rank_cores;        /* > 0 in a parallel job: the threads of a run whose config leaves them to
                              kdtrain (train.threads = 0), as pipeline.threads = 0 does */
    int rank;              /* >= 0: the rank of a parallel job training its share (progress lines) */
    int ranks;             /* a parallel job's ranks (1: one process) */
} pipe_state;

/* Imports the data when missing and opens it (labels only). */
int kd_pipeline_open_data(pipe_state *s, kd_error *err);
/* Trains run `name` from spec (seed NULL: the config's), or reuses a finished run
 * folder of the same config, or resumes an unfinished one; result->path is set and
 * the commit that trained the run joins s->trained. */
int kd_pipeline_ensure_run(pipe_state *s, const kd_pipeline_spec *spec, const char *name, const uint64_t *seed,
                       const char *teacher, model_result *result, kd_error *err);
/* The folder name of run k of regime ri with seed i: "ID-NAME-sSEED"; a sweep of one
 * seed leaves the seed out ("ID-NAME"). */
void kd_pipeline_run_name(const kd_pipeline *p, int ri, int k, int i, bool sweep, char *out, size_t size);
/* The run's resolved config (as kd_pipeline_ensure_run trains it) into c. */
int kd_pipeline_run_config(const pipe_state *s, const kd_pipeline_spec *spec, const char *name, const uint64_t *seed,
                           kd_config *c, kd_error *err);
/* A parallel job (comm of more than one rank): every run of the pipeline (sweep: the
 * teacher and the sweep's runs; run: the regime teachers too) trained over the ranks,
 * teachers first, then the runs that may distil from them. Each stage's runs are
 * handed out by rank 0, the most work first, and each rank trains its runs alone;
 * the stage ends when every run of it has. Every rank returns the same status. */
int kd_pipeline_train_over_ranks(pipe_state *s, kd_comm *comm, bool sweep, kd_error *err);
/* The index of run `name` in a regime, or -1 (inline: pipeline_report.c needs it
 * and pipeline.c calls pipeline_report.c, not the other way round). */
static inline int kd_pipeline_find_run(const kd_pipeline_regime *r, const char *name)
{
    for (int i = 0; i < r->n_runs; i++)
        if (!strcmp(r->runs[i].name, name)) return i;
    return -1;
}
/* The answer of "distillation or one temperature?" in words derived from two paired
 * differences, each the distilled student without a temperature minus the student
 * alone at its fitted T, of the test NLL (nll) and of the test ECE (ece): for each, the
 * student alone at T has a "lower" value (difference > 0 beyond seed noise), a "higher"
 * one (< 0 beyond seed noise) or an "equal (within seed noise)" one; a verdict over both
 * only when they agree. */
void kd_pipeline_answer(kd_stat nll, kd_stat ece, char *out, size_t size);
/* summary.md, summary.csv and the reliability diagrams in the output folder. */
int kd_pipeline_write_reports(const pipe_state *s, const char *command, kd_error *err);

#endif
