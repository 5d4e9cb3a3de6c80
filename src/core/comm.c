/* comm.c - see comm.h: the single-process meaning of each operation (a NULL
 * communicator, or one of size 1 without a table), else the implementation's. */
#define _POSIX_C_SOURCE 200809L
#include "core/comm.h"

#include <omp.h>
#include <string.h>
#include <unistd.h>

int kd_comm_cores(const kd_comm *comm)
{
    int cores = omp_get_num_procs(); /* the process's CPU affinity */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (comm && online > 0 && cores >= online && comm->local_size > 1) cores /= comm->local_size;
    return cores < 1 ? 1 : cores;
}

int kd_comm_sum_shards(kd_comm *comm, const float *mine, int count, size_t n, float *sum, kd_error *err)
{
    if (comm && comm->ops) return comm->ops->sum_shards(comm, mine, count, n, sum, err);
    memset(sum, 0, n * sizeof *sum);
    for (int s = 0; s < count; s++)
        for (size_t i = 0; i < n; i++) sum[i] += mine[(size_t)s * n + i];
    return KD_OK;
}

int kd_comm_allgather(kd_comm *comm, const void *mine, size_t bytes, void *all, kd_error *err)
{
    if (comm && comm->ops) return comm->ops->allgather(comm, mine, bytes, all, err);
    if (bytes) memmove(all, mine, bytes);
    return KD_OK;
}

int kd_comm_agree(kd_comm *comm, int status, kd_error *err)
{
    if (comm && comm->ops) return comm->ops->agree(comm, status, err);
    (void)err;
    return status;
}

/* One process: the queue is a counter in the communicator's place, so a NULL
 * communicator cannot hold it; callers pass the counter through `queue` below. */
int kd_comm_queue_start(kd_comm *comm, int64_t jobs, kd_error *err)
{
    if (comm && comm->ops) return comm->ops->queue_start(comm, jobs, err);
    return KD_OK;
}

int kd_comm_next_job(kd_comm *comm, int64_t *job, kd_error *err)
{
    if (comm && comm->ops) return comm->ops->next_job(comm, job, err);
    return kd_error_set(err, KD_ERR_CONFIG, "kd_comm_next_job: a single process takes its jobs in order itself");
}

int kd_comm_queue_finish(kd_comm *comm, kd_error *err)
{
    if (comm && comm->ops) return comm->ops->queue_finish(comm, err);
    return KD_OK;
}
