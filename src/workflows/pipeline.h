/* pipeline.h - `kdtrain run`: a whole experiment from one INI file. It prepares the
 * data if asked, trains the teacher(s), then for every regime and seed trains each
 * listed run (plain or distilled), evaluates every model on the test split, and
 * writes summary.md (tables with mean and standard deviation over seeds, and paired
 * differences of runs that share a seed: same initial weights, same batch order)
 * and summary.csv. Finished runs are reused and interrupted ones resumed, so the
 * pipeline can be started again after a stop; a run folder whose config differs is
 * never overwritten (that is an error). */
#ifndef KD_PIPELINE_H
#define KD_PIPELINE_H

#include "core/comm.h"
#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_PIPE_MAX_SEEDS 16
#define KD_PIPE_MAX_REGIMES 8
#define KD_PIPE_MAX_RUNS 64
#define KD_PIPE_MAX_SETS 16
#define KD_PIPE_MAX_COMPARE 16
#define KD_PIPE_TEXT 512

typedef struct kd_pipeline_spec {
    char name[64];
    bool distill;
    char config[KD_PIPE_TEXT];
    char sets[KD_PIPE_MAX_SETS][256]; /* section.key=value overrides */
    int n_sets;
} kd_pipeline_spec;

typedef struct kd_pipeline_regime {
    char id[64];
    char title[256];
    char note[1024];
    kd_pipeline_spec teacher;                /* config "" = the pipeline's teacher */
    kd_pipeline_spec runs[KD_PIPE_MAX_RUNS];
    int n_runs;
    char compare[KD_PIPE_MAX_COMPARE][2][64]; /* [k][0] - [k][1], paired by seed */
    int n_compare;
    char plot_x[64];      /* a numeric config key: plot the runs' metrics against it */
    char plot_series[64]; /* a numeric config key: one line per value (may be empty) */
    char vs_temperature[2][64]; /* "DISTILLED - ALONE": distillation against one temperature */
} kd_pipeline_regime;

typedef struct kd_pipeline {
    char source[KD_PIPE_TEXT];   /* the INI file */
    char title[256];
    char data[KD_PIPE_TEXT];
    char prepare[32];            /* "fashion-mnist": import the data when missing; "" none */
    char runs_dir[KD_PIPE_TEXT];
    char out_dir[KD_PIPE_TEXT];
    uint64_t seeds[KD_PIPE_MAX_SEEDS];
    int n_seeds;
    int64_t threads;             /* 0: the idle cores */
    char precision[8];           /* "": each config's train.precision; else fp32|bf16|auto for every run */
    kd_pipeline_spec teacher;
    kd_pipeline_regime regimes[KD_PIPE_MAX_REGIMES];
    int n_regimes;
} kd_pipeline;

int kd_pipeline_load(kd_pipeline *p, const char *path, kd_error *err);
/* Runs everything; quiet: no progress bars (logs still written). */
int kd_pipeline_run(const kd_pipeline *p, bool quiet, kd_comm *comm, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
