/* bench_allreduce.c - what summing the teacher's gradients (2,395,210 floats) across
 * MPI ranks costs on this machine's loopback, two ways:
 *   MPI_Allreduce (sum): what data-parallel trainers use; its summation order is MPI's
 *     and may change with the rank count, so the weights would too;
 *   ordered: kdtrain's kd_comm_sum_shards (src/mpi/comm_mpi.c), which trains with it:
 *     every rank holds S/N shard gradients; an all-to-all sends chunk k of each to rank
 *     k, which adds the S contributions to its chunk in shard order (from 0, as one
 *     process adding shards one by one does), then an allgather of the chunks. Same
 *     traffic as a ring allreduce when S = N, and a result that does not depend on N.
 * Each shard's gradient is generated from (seed, shard) alone, so every rank count
 * sums the same numbers; rank 0 checks the ordered result against one process's sum
 * and prints its FNV-1a hash, to be compared across rank counts.
 *   mpirun -np N bench_allreduce [--params 2395210] [--shards 6] [--repeat 20]
 *   -> allreduce_ms_np<N>, ordered_ms_np<N>, ordered_hash_np<N>, ordered_equals_serial_np<N>, bytes
 */
#define _POSIX_C_SOURCE 200809L
#include "mpi/comm_mpi.h"

#include <mpi.h>
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

/* Shard s's gradient element i: a float in about [-1e-3, 1e-3] with varied exponents. */
static float element(int s, size_t i)
{
    uint64_t r = splitmix(((uint64_t)s << 40) ^ i);
    float mantissa = (float)(r >> 40) / (float)(1 << 24) - 0.5f;
    return mantissa * (float)(1.0 / (double)(1u << (r & 15))) * 2e-3f;
}

int main(int argc, char **argv)
{
    kd_comm comm;
    kd_error err;
    kd_error_clear(&err);
    if (kd_mpi_open(&comm, &argc, &argv, 60, &err) != KD_OK) {
        fprintf(stderr, "bench_allreduce: %s\n", err.message);
        return 1;
    }
    int rank = comm.rank, ranks = comm.size;
    long params = 2395210;
    int shards = 6, repeat = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--params")) params = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--shards")) shards = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
    }
    if (shards % ranks != 0 || params < ranks) {
        if (rank == 0) fprintf(stderr, "bench_allreduce: --shards %d must be a multiple of the %d ranks\n", shards, ranks);
        kd_mpi_close(&comm, 0);
        return 2;
    }
    int local = shards / ranks;
    size_t n = (size_t)params;
    float *mine = malloc((size_t)local * n * sizeof(float)); /* my shards' gradients */
    float *sum = malloc(n * sizeof(float));
    float *reduce = malloc(n * sizeof(float));
    if (!mine || !sum || !reduce) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int j = 0; j < local; j++)
        for (size_t i = 0; i < n; i++) mine[(size_t)j * n + i] = element(rank * local + j, i);

    double best_allreduce = 1e30, best_ordered = 1e30;
    for (int rep = 0; rep < repeat; rep++) {
        /* MPI_Allreduce of one gradient (the local shards pre-summed) */
        memcpy(reduce, mine, n * sizeof(float));
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        int rc = MPI_Allreduce(MPI_IN_PLACE, reduce, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t1 = MPI_Wtime();
        if (rc != MPI_SUCCESS) MPI_Abort(MPI_COMM_WORLD, 1);
        if (t1 - t0 < best_allreduce) best_allreduce = t1 - t0;

        /* ordered: kdtrain's exchange, as a training step calls it */
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        if (kd_comm_sum_shards(&comm, mine, local, n, sum, &err) != KD_OK) {
            fprintf(stderr, "bench_allreduce: %s\n", err.message);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        t1 = MPI_Wtime();
        if (t1 - t0 < best_ordered) best_ordered = t1 - t0;
    }
    /* The ordered sum against one process's: every shard regenerated here, added in order. */
    uint64_t hash = 1469598103934665603ULL;
    const unsigned char *bytes = (const unsigned char *)sum;
    for (size_t i = 0; i < n * sizeof(float); i++) hash = (hash ^ bytes[i]) * 1099511628211ULL;
    int same = 1;
    if (rank == 0) {
        for (size_t i = 0; i < n && same; i++) {
            float acc = 0.0f;
            for (int s = 0; s < shards; s++) acc += element(s, i);
            same = memcmp(&acc, &sum[i], sizeof acc) == 0;
        }
        printf("allreduce_ms_np%d %.3f\nordered_ms_np%d %.3f\nordered_hash_np%d %016llx\nordered_equals_serial_np%d %d\n"
               "bytes %ld\n",
               ranks, 1e3 * best_allreduce, ranks, 1e3 * best_ordered, ranks, (unsigned long long)hash, ranks, same,
               params * 4);
    }
    free(mine);
    free(sum);
    free(reduce);
    kd_mpi_close(&comm, 0);
    return same ? 0 : 1;
}
