/* job_check.h - the check at the start of a parallel training job: every rank started
 * with the same config, read the same data and teacher, was given the same
 * --stop-after and starts from the same state, or the job stops before anything is
 * written, naming the first rank that differs from rank 0 and what differs. */
#ifndef KD_JOB_CHECK_H
#define KD_JOB_CHECK_H

#include "core/comm.h"
#include "data/dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What one rank is about to train. */
typedef struct kd_job_state {
    const char *config_text;      /* the resolved config (KD_CONFIG_TEXT_MAX bytes readable) */
    const kd_dataset *ds;         /* opened, and loaded unless streamed */
    const float *params;          /* the weights training starts from */
    size_t n_params;
    int64_t optim_step;
    const float *teacher_logits;  /* distillation's cache, else NULL */
    size_t teacher_floats;
    int64_t start_epoch, stop_after;
    const char *resume;           /* the resumed run folder, or NULL */
} kd_job_state;

/* Collective. Every rank reaches the same verdict from the same gathered fingerprints
 * (then comm->failure_agreed = 2: one message, rank 0's, says it). */
int kd_job_check_same(kd_comm *comm, const kd_job_state *state, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
