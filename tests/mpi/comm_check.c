/* comm_check.c - the MPI communicator (src/mpi/comm_mpi.c) checked under mpirun -np N
 * against one process's arithmetic, run by tests/mpi/test_mpi.cpp:
 *   - sum_shards: the sum of every rank's shards equals 0 + s_0 + s_1 + ... added by
 *     one process in shard order, bit for bit, for gradient lengths that do and do not
 *     divide among the ranks and 1 to 3 shards a rank (the shards' values are generated
 *     from (shard, element) alone, with exponents over 16 binades, so that the order of
 *     the additions shows in the bits);
 *   - allgather: every rank's bytes in rank order;
 *   - agree: all fine is fine; the last rank failing gives it its own code and every
 *     other rank KD_ERR_PEER with a message naming it;
 *   - the job queue: every job handed out exactly once, every rank told -1 at the end.
 * Prints one line per failed check and "comm_check: N ranks: ok"; exit 0 or 1. */
#include "mpi/comm_mpi.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static float element(int shard, size_t i)
{
    uint64_t r = splitmix(((uint64_t)shard << 40) ^ i);
    float mantissa = (float)(r >> 40) / (float)(1 << 24) - 0.5f;
    return mantissa * (float)(1.0 / (double)(1u << (r & 15)));
}

static int check_sums(kd_comm *comm)
{
    const size_t lengths[] = {1, 7, 1001, 100003};
    int failures = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
        for (int count = 1; count <= 3; count++) {
            size_t n = lengths[li];
            int shards = count * comm->size;
            float *mine = malloc((size_t)count * n * sizeof(float)), *sum = malloc(n * sizeof(float));
            for (int j = 0; j < count; j++)
                for (size_t i = 0; i < n; i++) mine[(size_t)j * n + i] = element(comm->rank * count + j, i);
            kd_error err;
            kd_error_clear(&err);
            if (kd_comm_sum_shards(comm, mine, count, n, sum, &err) != KD_OK) {
                printf("rank %d: sum_shards failed: %s\n", comm->rank, err.message);
                failures++;
            } else {
                size_t wrong = 0;
                for (size_t i = 0; i < n; i++) {
                    float acc = 0.0f;
                    for (int s = 0; s < shards; s++) acc += element(s, i);
                    wrong += memcmp(&acc, &sum[i], sizeof acc) != 0;
                }
                if (wrong) {
                    printf("rank %d: %zu of %zu sums differ from one process's (%d shards a rank)\n", comm->rank, wrong, n,
                           count);
                    failures++;
                }
            }
            free(mine);
            free(sum);
        }
    return failures;
}

static int check_gather_and_agree(kd_comm *comm)
{
    int failures = 0;
    kd_error err;
    kd_error_clear(&err);
    int32_t mine = 1000 + comm->rank, *all = calloc((size_t)comm->size, sizeof *all);
    if (kd_comm_allgather(comm, &mine, sizeof mine, all, &err) != KD_OK) failures++;
    for (int r = 0; r < comm->size; r++)
        if (all[r] != 1000 + r) failures++;
    free(all);
    if (kd_comm_agree(comm, KD_OK, &err) != KD_OK) {
        printf("rank %d: agree of all fine failed: %s\n", comm->rank, err.message);
        failures++;
    }
    int last = comm->size - 1, status = KD_OK;
    if (comm->rank == last) status = kd_error_set(&err, KD_ERR_DATA, "the last rank's own trouble");
    int rc = kd_comm_agree(comm, status, &err);
    char expected[128];
    snprintf(expected, sizeof expected, "rank %d of %d failed: the last rank's own trouble", last, comm->size);
    if (comm->rank == last && (rc != KD_ERR_DATA || strcmp(err.message, "the last rank's own trouble") != 0)) {
        printf("rank %d: its own failure came back as %d: %s\n", comm->rank, rc, err.message);
        failures++;
    }
    if (comm->rank != last && (rc != KD_ERR_PEER || strcmp(err.message, expected) != 0)) {
        printf("rank %d: another rank's failure came back as %d: %s\n", comm->rank, rc, err.message);
        failures++;
    }
    comm->failure_agreed = 0;
    return failures;
}

static int check_queue(kd_comm *comm)
{
    enum { JOBS = 25 };
    int failures = 0;
    kd_error err;
    kd_error_clear(&err);
    int32_t taken[JOBS] = {0}, *all = calloc((size_t)comm->size * JOBS, sizeof *all);
    if (kd_comm_queue_start(comm, JOBS, &err) != KD_OK) failures++;
    for (;;) {
        int64_t job = -2;
        if (kd_comm_next_job(comm, &job, &err) != KD_OK) {
            printf("rank %d: next_job failed: %s\n", comm->rank, err.message);
            failures++;
            break;
        }
        if (job < 0) break;
        if (job >= JOBS) {
            printf("rank %d: job %lld is out of range\n", comm->rank, (long long)job);
            failures++;
            break;
        }
        taken[job]++;
    }
    if (kd_comm_queue_finish(comm, &err) != KD_OK) failures++;
    if (kd_comm_allgather(comm, taken, sizeof taken, all, &err) != KD_OK) failures++;
    for (int j = 0; j < JOBS; j++) {
        int times = 0;
        for (int r = 0; r < comm->size; r++) times += all[r * JOBS + j];
        if (times != 1) {
            printf("rank %d: job %d was handed out %d times\n", comm->rank, j, times);
            failures++;
        }
    }
    free(all);
    return failures;
}

int main(int argc, char **argv)
{
    kd_comm comm;
    kd_error err;
    kd_error_clear(&err);
    if (kd_mpi_open(&comm, &argc, &argv, 30, &err) != KD_OK) {
        printf("comm_check: %s\n", err.message);
        kd_mpi_close(&comm, 1);
        return 1;
    }
    int failures = check_sums(&comm) + check_gather_and_agree(&comm) + check_queue(&comm);
    int size = comm.size, rank = comm.rank;
    kd_mpi_close(&comm, 0);
    if (rank == 0 && !failures) printf("comm_check: %d ranks: ok\n", size);
    return failures ? 1 : 0;
}
