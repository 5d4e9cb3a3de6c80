/* comm.h - the processes of one job, as the trainer and the job queue see them:
 * a rank and a size, and the few collective operations data-parallel training and
 * the sweeps need. A NULL kd_comm is one process on its own (rank 0 of 1); every
 * function here takes it. The MPI implementation lives in src/mpi/ (built only when
 * CMake finds MPI) and fills the table; libkd itself never links MPI.
 *
 * Every operation is collective (all ranks call it, in the same order) unless it
 * says otherwise, returns KD_OK or an error whose message names the rank that
 * failed, and the exchanges of a training step give up after the communicator's
 * timeout: a rank that stalls makes the others stop with an error, not hang (one that
 * dies, the launcher notices). */
#ifndef KD_COMM_H
#define KD_COMM_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_comm kd_comm;

typedef struct kd_comm_ops {
    /* mine: this rank's `count` shard buffers of n floats, one after another (every
     * rank holds the same count). sum (n floats, on every rank): 0 + s_0 + s_1 + ...
     * over all ranks' shards in rank order, then buffer order, added element by
     * element from zero in that order: the bits one process summing the same
     * buffers in that order gets, whatever the number of ranks. */
    int (*sum_shards)(kd_comm *comm, const float *mine, int count, size_t n, float *sum, kd_error *err);
    /* all (size * bytes): every rank's `bytes` bytes, in rank order, on every rank. */
    int (*allgather)(kd_comm *comm, const void *mine, size_t bytes, void *all, kd_error *err);
    /* Every rank's status (KD_OK or an error code): returns KD_OK when every rank is
     * fine, else KD_ERR_PEER with a message naming the lowest rank that failed (a
     * failed rank keeps its own err and gets its own code back). Waits without the
     * timeout: ranks wait here for work one rank does alone (rank 0's epoch end). */
    int (*agree)(kd_comm *comm, int status, kd_error *err);
    /* Not collective. The job queue's owner (rank 0) starts serving `jobs` job numbers
     * 0, 1, ... to the ranks that ask, in that order; every rank then calls next_job
     * until it gets -1. A rank's jobs are its own: nothing else waits for them. */
    int (*queue_start)(kd_comm *comm, int64_t jobs, kd_error *err);
    int (*next_job)(kd_comm *comm, int64_t *job, kd_error *err);
    /* Collective: the queue's end (every rank got -1). */
    int (*queue_finish)(kd_comm *comm, kd_error *err);
} kd_comm_ops;

struct kd_comm {
    int rank, size;
    int local_size;         /* the ranks on this rank's machine (sharing its cores) */
    double timeout_seconds; /* how long a collective waits for the slowest rank */
    int failure_agreed;     /* 1: every rank knows the job failed (set by agree; no abort needed);
                               2: and every rank holds the same message (one verdict from shared data) */
    const kd_comm_ops *ops;
    void *impl;
};

static inline int kd_comm_rank(const kd_comm *c) { return c ? c->rank : 0; }
static inline int kd_comm_size(const kd_comm *c) { return c ? c->size : 1; }
/* More than one process: the distributed paths are taken. */
static inline int kd_comm_parallel(const kd_comm *c) { return c && c->size > 1; }

/* The threads one rank of the job should use: the cores it is bound to, or, unbound
 * (a launcher binds no rank when it oversubscribes), the machine's cores shared by the
 * ranks on it; at least 1. One process: every core it may run on. */
int kd_comm_cores(const kd_comm *comm);

int kd_comm_sum_shards(kd_comm *comm, const float *mine, int count, size_t n, float *sum, kd_error *err);
int kd_comm_allgather(kd_comm *comm, const void *mine, size_t bytes, void *all, kd_error *err);
int kd_comm_agree(kd_comm *comm, int status, kd_error *err);
int kd_comm_queue_start(kd_comm *comm, int64_t jobs, kd_error *err);
int kd_comm_next_job(kd_comm *comm, int64_t *job, kd_error *err);
int kd_comm_queue_finish(kd_comm *comm, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
