/* comm_mpi.c - see comm_mpi.h. */
#define _POSIX_C_SOURCE 200809L
#include "mpi/comm_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_ASK = 101, TAG_JOB = 102 };

typedef struct agree_note {
    int32_t status;
    char message[480];
} agree_note;

typedef struct mpi_impl {
    MPI_Comm world;     /* the collectives' communicator */
    int32_t ask;        /* next_job's message and answer: here, not on its stack, so that a  */
    int64_t answer;     /* request left pending by a timeout never writes into a freed frame */
    MPI_Comm queue;     /* the job queue's point-to-point messages, apart from the collectives */
    float *send, *recv; /* sum_shards: the packed chunks out and in */
    size_t capacity;    /* floats in each */
    int *counts;        /* (4 * size): send counts and displacements, receive counts and displacements */
    agree_note *notes;  /* (size) */
    /* the job queue (rank 0): a server thread answers the other ranks, rank 0's own
     * main thread takes jobs under the lock */
    pthread_t server;
    bool serving;
    pthread_mutex_t lock;
    int64_t jobs, next;
    int server_rc;
    char server_message[256];
} mpi_impl;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mpi_failed(const kd_comm *comm, int code, const char *what, kd_error *err)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    return kd_error_set(err, KD_ERR_PEER, "rank %d of %d: MPI failed in %s: %s", comm->rank, comm->size, what, text);
}

/* Waits for n requests: polls (busy for the first 2 ms, then every 200 us, so a
 * waiting rank leaves the core to the ranks still computing) until they complete or
 * timeout seconds have passed. Unlimited when timeout <= 0. */
static int wait_all(const kd_comm *comm, MPI_Request *requests, int n, double timeout, const char *what, kd_error *err)
{
    double start = now_seconds();
    for (long polls = 0;; polls++) {
        int done = 0, rc = MPI_Testall(n, requests, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_failed(comm, rc, what, err);
        if (done) return KD_OK;
        double waited = now_seconds() - start;
        if (timeout > 0 && waited > timeout)
            return kd_error_set(err, KD_ERR_PEER,
                                "rank %d of %d: no answer from the other ranks in %s for %.0f s (a rank died, stalled "
                                "or failed alone); stopping the job (KDTRAIN_MPI_TIMEOUT sets the wait)",
                                comm->rank, comm->size, what, waited);
        if (waited > 2e-3) {
            struct timespec pause = {0, 200000};
            nanosleep(&pause, NULL);
        }
    }
}

static int reserve(mpi_impl *m, size_t floats, kd_error *err)
{
    if (floats <= m->capacity) return KD_OK;
    free(m->send);
    free(m->recv);
    m->send = malloc(floats * sizeof(float));
    m->recv = malloc(floats * sizeof(float));
    m->capacity = m->send && m->recv ? floats : 0;
    return m->capacity ? KD_OK : kd_error_set(err, KD_ERR_IO, "out of memory for %zu floats of gradients to exchange", floats);
}

/* Chunk j of n floats over size ranks: [j n / size, (j + 1) n / size). */
static size_t chunk_start(size_t n, int size, int j) { return n / (size_t)size * (size_t)j + n % (size_t)size * (size_t)j / (size_t)size; }

/* Rank j sums chunk j of every shard: every rank sends it chunk j of each of its
 * shards (one all-to-all), it adds the size x count pieces in rank order, then shard
 * order, from zero, and the summed chunks are gathered by every rank. */
static int sum_shards(kd_comm *comm, const float *mine, int count, size_t n, float *sum, kd_error *err)
{
    mpi_impl *m = comm->impl;
    int size = comm->size, me = comm->rank;
    size_t largest = 0;
    for (int j = 0; j < size; j++) {
        size_t len = chunk_start(n, size, j + 1) - chunk_start(n, size, j);
        if (len > largest) largest = len;
    }
    if ((double)count * (double)n > INT_MAX || (double)largest * count * size > INT_MAX)
        return kd_error_set(err, KD_ERR_CONFIG, "%d shards of %zu gradients each are too many for one MPI exchange", count, n);
    int rc = reserve(m, (size_t)count * (n > largest * size ? n : largest * size), err);
    if (rc) return rc;
    int *send_counts = m->counts, *send_displs = m->counts + size, *recv_counts = m->counts + 2 * size,
        *recv_displs = m->counts + 3 * size;
    size_t packed = 0, my_len = chunk_start(n, size, me + 1) - chunk_start(n, size, me);
    for (int j = 0; j < size; j++) {
        size_t start = chunk_start(n, size, j), len = chunk_start(n, size, j + 1) - start;
        send_displs[j] = (int)packed;
        for (int s = 0; s < count; s++, packed += len)
            memcpy(m->send + packed, mine + (size_t)s * n + start, len * sizeof(float));
        send_counts[j] = (int)(packed - (size_t)send_displs[j]);
        recv_counts[j] = (int)((size_t)count * my_len);
        recv_displs[j] = (int)((size_t)j * count * my_len);
    }
    MPI_Request request;
    rc = MPI_Ialltoallv(m->send, send_counts, send_displs, MPI_FLOAT, m->recv, recv_counts, recv_displs, MPI_FLOAT,
                        m->world, &request);
    if (rc != MPI_SUCCESS) return mpi_failed(comm, rc, "the gradients' exchange", err);
    if ((rc = wait_all(comm, &request, 1, comm->timeout_seconds, "the gradients' exchange", err))) return rc;
    float *restrict out = sum + chunk_start(n, size, me);
    memset(out, 0, my_len * sizeof(float));
    for (int piece = 0; piece < size * count; piece++) { /* rank j's shard s is piece j count + s */
        const float *restrict g = m->recv + (size_t)piece * my_len;
        for (size_t i = 0; i < my_len; i++) out[i] += g[i];
    }
    for (int j = 0; j < size; j++) {
        recv_displs[j] = (int)chunk_start(n, size, j);
        recv_counts[j] = (int)(chunk_start(n, size, j + 1) - chunk_start(n, size, j));
    }
    rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, sum, recv_counts, recv_displs, MPI_FLOAT, m->world, &request);
    if (rc != MPI_SUCCESS) return mpi_failed(comm, rc, "the gradients' exchange (the summed chunks' gather)", err);
    return wait_all(comm, &request, 1, comm->timeout_seconds, "the gradients' exchange (the summed chunks' gather)", err);
}

static int allgather(kd_comm *comm, const void *mine, size_t bytes, void *all, kd_error *err)
{
    mpi_impl *m = comm->impl;
    if (bytes > INT_MAX) return kd_error_set(err, KD_ERR_CONFIG, "%zu bytes are too many for one MPI gather", bytes);
    MPI_Request request;
    int rc = MPI_Iallgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, m->world, &request);
    if (rc != MPI_SUCCESS) return mpi_failed(comm, rc, "a gather", err);
    return wait_all(comm, &request, 1, comm->timeout_seconds, "a gather", err);
}

/* Waits without a deadline: the others wait here for rank 0's epoch end (validation,
 * the diagnostic, checkpoints), which has no bound of its own; a rank that dies
 * meanwhile is the launcher's to notice. */
static int agree(kd_comm *comm, int status, kd_error *err)
{
    mpi_impl *m = comm->impl;
    agree_note mine = {.status = status};
    if (status && err) snprintf(mine.message, sizeof mine.message, "%.*s", (int)sizeof mine.message - 1, err->message);
    MPI_Request request;
    int rc = MPI_Iallgather(&mine, (int)sizeof mine, MPI_BYTE, m->notes, (int)sizeof mine, MPI_BYTE, m->world, &request);
    kd_error lost;
    if (rc != MPI_SUCCESS) rc = mpi_failed(comm, rc, "agreeing on the ranks' status", &lost);
    else rc = wait_all(comm, &request, 1, 0, "agreeing on the ranks' status", &lost);
    if (rc) return status ? status : kd_error_set(err, rc, "%s", lost.message); /* a rank's own failure keeps its message */
    int failed = 0, first = -1;
    bool alike = true; /* every rank failed with one message (a config every rank reads) */
    for (int r = 0; r < comm->size; r++) {
        if (!m->notes[r].status) continue;
        failed++;
        if (first < 0) first = r;
        alike = alike && !strcmp(m->notes[r].message, m->notes[first].message);
    }
    if (!failed) return KD_OK;
    comm->failure_agreed = failed == comm->size && alike ? 2 : 1;
    if (status) return status; /* this rank failed too: its own message stands */
    return kd_error_set(err, KD_ERR_PEER, "rank %d of %d failed: %s", first, comm->size, m->notes[first].message);
}

/* ---- the job queue ---------------------------------------------------------------------------- */

static int64_t take_job(mpi_impl *m)
{
    pthread_mutex_lock(&m->lock);
    int64_t job = m->next < m->jobs ? m->next++ : -1;
    pthread_mutex_unlock(&m->lock);
    return job;
}

/* Rank 0's server: answers each ask with the next job, until every other rank has
 * been told -1. Polls (every 2 ms) rather than blocking in MPI_Recv, which spins. */
static void *serve(void *arg)
{
    kd_comm *comm = arg;
    mpi_impl *m = comm->impl;
    int finished = 0;
    while (finished < comm->size - 1) {
        int ready = 0;
        MPI_Status st;
        int rc = MPI_Iprobe(MPI_ANY_SOURCE, TAG_ASK, m->queue, &ready, &st);
        if (rc == MPI_SUCCESS && !ready) {
            struct timespec pause = {0, 2000000};
            nanosleep(&pause, NULL);
            continue;
        }
        int32_t ask = 0;
        int64_t job = -1;
        if (rc == MPI_SUCCESS) rc = MPI_Recv(&ask, 1, MPI_INT32_T, st.MPI_SOURCE, TAG_ASK, m->queue, MPI_STATUS_IGNORE);
        if (rc == MPI_SUCCESS) job = take_job(m);
        if (rc == MPI_SUCCESS) rc = MPI_Send(&job, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_JOB, m->queue);
        if (rc != MPI_SUCCESS) {
            m->server_rc = rc;
            snprintf(m->server_message, sizeof m->server_message, "rank 0's job queue: MPI error %d", rc);
            break;
        }
        if (job < 0) finished++;
    }
    return NULL;
}

static int queue_start(kd_comm *comm, int64_t jobs, kd_error *err)
{
    mpi_impl *m = comm->impl;
    m->jobs = jobs;
    m->next = 0;
    m->server_rc = 0;
    if (comm->rank != 0 || comm->size < 2) return KD_OK;
    if (pthread_create(&m->server, NULL, serve, comm) != 0)
        return kd_error_set(err, KD_ERR_IO, "rank 0: cannot start the job queue's thread");
    m->serving = true;
    return KD_OK;
}

static int next_job(kd_comm *comm, int64_t *job, kd_error *err)
{
    mpi_impl *m = comm->impl;
    if (comm->rank == 0) {
        *job = take_job(m);
        return KD_OK;
    }
    m->ask = 1;
    MPI_Request requests[2];
    int rc = MPI_Isend(&m->ask, 1, MPI_INT32_T, 0, TAG_ASK, m->queue, &requests[0]);
    if (rc == MPI_SUCCESS) rc = MPI_Irecv(&m->answer, 1, MPI_INT64_T, 0, TAG_JOB, m->queue, &requests[1]);
    if (rc != MPI_SUCCESS) return mpi_failed(comm, rc, "asking rank 0 for a job", err);
    rc = wait_all(comm, requests, 2, comm->timeout_seconds, "asking rank 0 for a job", err);
    *job = m->answer;
    return rc;
}

/* The ranks finish their last jobs at different times: the barrier waits without a
 * deadline (a rank that dies ends the job through the launcher). */
static int queue_finish(kd_comm *comm, kd_error *err)
{
    mpi_impl *m = comm->impl;
    if (m->serving) {
        pthread_join(m->server, NULL);
        m->serving = false;
        if (m->server_rc) return kd_error_set(err, KD_ERR_PEER, "%s", m->server_message);
    }
    MPI_Request request;
    int rc = MPI_Ibarrier(m->world, &request);
    if (rc != MPI_SUCCESS) return mpi_failed(comm, rc, "the end of the job queue", err);
    return wait_all(comm, &request, 1, 0, "the end of the job queue", err);
}

static const kd_comm_ops mpi_ops = {sum_shards, allgather, agree, queue_start, next_job, queue_finish};

/* ---- set-up ----------------------------------------------------------------------------------- */

int kd_mpi_open(kd_comm *comm, int *argc, char ***argv, double timeout_seconds, kd_error *err)
{
    memset(comm, 0, sizeof *comm);
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return kd_error_set(err, KD_ERR_LIBRARY, "MPI_Init_thread failed (error %d)", rc);
    mpi_impl *m = calloc(1, sizeof *m);
    if (!m) return kd_error_set(err, KD_ERR_IO, "out of memory");
    m->world = m->queue = MPI_COMM_NULL;
    comm->impl = m;
    comm->ops = &mpi_ops;
    comm->timeout_seconds = timeout_seconds;
    pthread_mutex_init(&m->lock, NULL);
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->world);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(m->world, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_dup(m->world, &m->queue);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(m->queue, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(m->world, &comm->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(m->world, &comm->size);
    MPI_Comm node = MPI_COMM_NULL;
    if (rc == MPI_SUCCESS) rc = MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, comm->rank, MPI_INFO_NULL, &node);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, &comm->local_size);
    if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) return kd_error_set(err, KD_ERR_LIBRARY, "MPI's communicator set-up failed (error %d)", rc);
    if (provided < MPI_THREAD_SERIALIZED)
        return kd_error_set(err, KD_ERR_LIBRARY, "MPI offers thread level %d; the job queue needs MPI_THREAD_SERIALIZED (%d)",
                            provided, MPI_THREAD_SERIALIZED);
    m->counts = malloc(4 * (size_t)comm->size * sizeof *m->counts);
    m->notes = malloc((size_t)comm->size * sizeof *m->notes);
    if (!m->counts || !m->notes) return kd_error_set(err, KD_ERR_IO, "out of memory");
    return KD_OK;
}

void kd_mpi_close(kd_comm *comm, int status)
{
    mpi_impl *m = comm->impl;
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (status && !comm->failure_agreed && initialized) MPI_Abort(MPI_COMM_WORLD, status);
    if (m) {
        if (m->serving) pthread_join(m->server, NULL);
        if (initialized && m->queue != MPI_COMM_NULL) MPI_Comm_free(&m->queue);
        if (initialized && m->world != MPI_COMM_NULL) MPI_Comm_free(&m->world);
        pthread_mutex_destroy(&m->lock);
        free(m->send);
        free(m->recv);
        free(m->counts);
        free(m->notes);
        free(m);
    }
    if (initialized) MPI_Finalize();
    memset(comm, 0, sizeof *comm);
}
