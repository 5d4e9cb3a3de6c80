/* pipeline_jobs.c - the runs of a pipeline or a sweep trained over the ranks of a
 * parallel job (pipeline_internal.h: kd_pipeline_train_over_ranks). A run is one
 * process's work: its rank trains it alone, as a serial pipeline would (same config,
 * seed and folder; the same weights given the same threads: a run left at
 * train.threads = 0 takes the rank's cores), into the same folder. */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "io/fileutil.h"
#include "workflows/pipeline_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    const kd_pipeline_spec *spec;
    char name[160];
    const uint64_t *seed;  /* NULL: the config's */
    char teacher[KD_PIPE_TEXT + 160]; /* a distilled run's teacher folder, else "" */
    double cost;           /* the estimated work: multiply-adds of training */
    int order;             /* the place in the pipeline, to break ties */
} job;

/* Epochs x training rows x multiply-adds a row (forward; backward is twice that for
 * every run alike). Rows: the training split less what validation takes, or the
 * labelled rows that plain training keeps. Only the order of the estimates matters. */
static int estimate(const pipe_state *s, job *j, kd_error *err)
{
    kd_config *c = malloc(sizeof *c);
    if (!c) return kd_error_set(err, KD_ERR_IO, "out of memory");
    int rc = kd_pipeline_run_config(s, j->spec, j->name, j->seed, c, err);
    if (!rc) {
        const kd_split_info *train = &s->ds.split[KD_SPLIT_TRAIN];
        double rows = (double)train->rows - (s->ds.split[KD_SPLIT_VAL].present ? 0 : (double)c->data.val_from_train);
        if (!j->spec->distill && c->data.labelled > 0 && (double)c->data.labelled < rows) rows = (double)c->data.labelled;
        double per_row = 0;
        for (int k = 0; k < c->model.n_layers; k++) per_row += (double)c->model.sizes[k] * (double)c->model.sizes[k + 1];
        j->cost = (double)c->train.epochs * (rows > 1 ? rows : 1) * per_row;
    }
    free(c);
    return rc;
}

static int by_cost(const void *a, const void *b)
{
    const job *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return x->order - y->order;
}

static void add_job(job *jobs, int *n, const kd_pipeline_spec *spec, const char *name, const uint64_t *seed,
                    const char *teacher)
{
    job *j = &jobs[*n];
    memset(j, 0, sizeof *j);
    j->spec = spec;
    snprintf(j->name, sizeof j->name, "%s", name);
    j->seed = seed;
    snprintf(j->teacher, sizeof j->teacher, "%s", teacher ? teacher : "");
    j->order = (*n)++;
}

/* One stage: its jobs sorted, the queue served by rank 0, each rank training what it
 * takes. A rank whose run failed takes the rest off the queue without training them,
 * so that the stage ends soon; then every rank learns of the failure. */
static int run_stage(pipe_state *s, kd_comm *comm, job *jobs, int n, kd_error *err)
{
    int rc = KD_OK;
    for (int i = 0; i < n && !rc; i++) rc = estimate(s, &jobs[i], err);
    if ((rc = kd_comm_agree(comm, rc, err))) return rc;
    qsort(jobs, (size_t)n, sizeof *jobs, by_cost);
    s->total = n;
    s->done = 0;
    int trained = 0;
    double t0 = kd_now_seconds();
    if ((rc = kd_comm_queue_start(comm, n, err))) return rc;
    for (;;) {
        int64_t next = -1;
        int qrc = kd_comm_next_job(comm, &next, err);
        if (qrc) return qrc; /* rank 0 is gone: nothing to agree with */
        if (next < 0) break;
        if (rc) continue; /* failed: drain */
        job *j = &jobs[next];
        model_result result;
        memset(&result, 0, sizeof result);
        s->done = (int)next; /* ensure_run counts it: the line says run next + 1 of the stage's */
        rc = kd_pipeline_ensure_run(s, j->spec, j->name, j->seed, j->teacher[0] ? j->teacher : NULL, &result, err);
        trained++;
    }
    int frc = kd_comm_queue_finish(comm, err);
    if (frc) return frc;
    if (!rc && trained)
        fprintf(stderr, "[rank %d] %d of the stage's %d runs in %.1f s\n", s->rank, trained, n, kd_now_seconds() - t0);
    return kd_comm_agree(comm, rc, err);
}

int kd_pipeline_train_over_ranks(pipe_state *s, kd_comm *comm, bool sweep, kd_error *err)
{
    const kd_pipeline *p = s->p;
    s->rank = kd_comm_rank(comm);
    s->rank_cores = kd_comm_cores(comm);
    double started = kd_now_seconds();
    /* rank 0 imports the data when missing, the others open it once it has */
    int rc = kd_comm_agree(comm, s->rank == 0 ? kd_pipeline_open_data(s, err) : KD_OK, err);
    if (!rc) rc = kd_comm_agree(comm, s->rank != 0 ? kd_pipeline_open_data(s, err) : KD_OK, err);
    job *jobs = calloc(KD_PIPE_MAX_REGIMES * KD_PIPE_MAX_RUNS * KD_PIPE_MAX_SEEDS + KD_PIPE_MAX_REGIMES + 1, sizeof *jobs);
    if (!rc) rc = kd_comm_agree(comm, jobs ? KD_OK : kd_error_set(err, KD_ERR_IO, "out of memory"), err);
    char teacher[KD_PIPE_TEXT + 160], name[160];
    int n = 0;
    /* stage 1: the teachers */
    if (!rc && p->teacher.config[0]) add_job(jobs, &n, &p->teacher, "teacher", NULL, NULL);
    for (int ri = 0; !rc && !sweep && ri < p->n_regimes; ri++)
        if (p->regimes[ri].teacher.config[0]) {
            snprintf(name, sizeof name, "%s-teacher", p->regimes[ri].id);
            add_job(jobs, &n, &p->regimes[ri].teacher, name, NULL, NULL);
        }
    if (!rc && n) rc = run_stage(s, comm, jobs, n, err);
    /* stage 2: every regime's runs, distilled ones from their regime's teacher */
    n = 0;
    for (int ri = 0; !rc && ri < p->n_regimes; ri++) {
        const kd_pipeline_regime *r = &p->regimes[ri];
        if (!sweep && r->teacher.config[0])
            snprintf(teacher, sizeof teacher, "%s/%s-teacher", p->runs_dir, r->id);
        else
            snprintf(teacher, sizeof teacher, "%s/teacher", p->runs_dir);
        for (int k = 0; k < r->n_runs; k++)
            for (int i = 0; i < p->n_seeds; i++) {
                kd_pipeline_run_name(p, ri, k, i, sweep, name, sizeof name);
                add_job(jobs, &n, &r->runs[k], name, &p->seeds[i], r->runs[k].distill ? teacher : NULL);
            }
    }
    if (!rc && n) rc = run_stage(s, comm, jobs, n, err);
    free(jobs);
    kd_dataset_close(&s->ds);
    memset(&s->ds, 0, sizeof s->ds);
    /* What the reports say of this invocation: every run the ranks trained counts as
     * trained now (the pass that follows finds them finished), its time the stages'
     * wall clock. */
    int32_t trained = s->runs_trained, *all = calloc((size_t)kd_comm_size(comm), sizeof *all);
    if (!rc) rc = kd_comm_agree(comm, all ? KD_OK : kd_error_set(err, KD_ERR_IO, "out of memory"), err);
    if (!rc) rc = kd_comm_allgather(comm, &trained, sizeof trained, all, err);
    s->runs_trained = 0;
    for (int r = 0; !rc && r < kd_comm_size(comm); r++) s->runs_trained += all[r];
    free(all);
    s->train_seconds = kd_now_seconds() - started;
    s->ranks = kd_comm_size(comm);
    s->rank = -1;
    s->done = s->total = 0;
    s->runs_reused = 0;
    return rc;
}
