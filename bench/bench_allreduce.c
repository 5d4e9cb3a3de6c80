/* bench_allreduce.c - what summing the teacher's gradients (2,395,210 floats) across
 * MPI ranks costs on this machine's loopback, two ways:
 *   MPI_Allreduce (sum): what data-parallel trainers use; its summation order is MPI's
 *     and may change with the rank count, so the weights would too;
 *   ordered: every rank holds S/N shard gradients; MPI_Alltoall sends chunk k of each to
 *     rank k, which adds the S contributions to its chunk in shard order (from 0, as
 *     one process adding shards one by one does), then MPI_Allgather the chunks. Same
 *     traffic as a ring allreduce when S = N, and a result that does not depend on N.
 * Each shard's gradient is generated from (seed, shard) alone, so every rank count
 * sums the same numbers; the ordered result's FNV-1a hash is printed to be compared
 * across rank counts (and with one process).
 *   mpirun -np N bench_allreduce [--params 2395210] [--shards 6] [--repeat 20]
 *   -> allreduce_ms_np<N>, ordered_ms_np<N>, ordered_hash_np<N>, bytes
 */
#define _POSIX_C_SOURCE 200809L
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
    MPI_Init(&argc, &argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    long params = 2395210;
    int shards = 6, repeat = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--params")) params = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--shards")) shards = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
    }
    if (shards % ranks != 0 || params < ranks) {
        if (rank == 0) fprintf(stderr, "bench_allreduce: --shards %d must be a multiple of the %d ranks\n", shards, ranks);
        MPI_Finalize();
        return 2;
    }
    int local = shards / ranks;
    size_t chunk = (size_t)(params + ranks - 1) / (size_t)ranks, padded = chunk * (size_t)ranks;
    float *mine = calloc((size_t)local * padded, sizeof(float));  /* my shards' gradients */
    float *send = malloc((size_t)local * padded * sizeof(float)); /* [rank k][local shard][chunk k] */
    float *recv = malloc((size_t)local * padded * sizeof(float)); /* [rank r][r's shard][my chunk] */
    float *sum = malloc(padded * sizeof(float));
    float *reduce = malloc(padded * sizeof(float));
    if (!mine || !send || !recv || !sum || !reduce) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int j = 0; j < local; j++)
        for (size_t i = 0; i < (size_t)params; i++) mine[(size_t)j * padded + i] = element(rank * local + j, i);

    double best_allreduce = 1e30, best_ordered = 1e30;
    for (int rep = 0; rep < repeat; rep++) {
        /* MPI_Allreduce of one gradient (the local shards pre-summed) */
        memcpy(reduce, mine, padded * sizeof(float));
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        int rc = MPI_Allreduce(MPI_IN_PLACE, reduce, (int)padded, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t1 = MPI_Wtime();
        if (rc != MPI_SUCCESS) MPI_Abort(MPI_COMM_WORLD, 1);
        if (t1 - t0 < best_allreduce) best_allreduce = t1 - t0;

        /* ordered: the pack, the exchange, the sum in shard order, the gather */
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        for (int k = 0; k < ranks; k++)
            for (int j = 0; j < local; j++)
                memcpy(send + ((size_t)k * local + j) * chunk, mine + (size_t)j * padded + (size_t)k * chunk,
                       chunk * sizeof(float));
        rc = MPI_Alltoall(send, (int)(local * chunk), MPI_FLOAT, recv, (int)(local * chunk), MPI_FLOAT, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) MPI_Abort(MPI_COMM_WORLD, 1);
        float *my_sum = sum + (size_t)rank * chunk;
        memset(my_sum, 0, chunk * sizeof(float));
        for (int s = 0; s < shards; s++) { /* received block s is shard s: rank r's shards are r*local.. */
            const float *g = recv + (size_t)s * chunk;
            for (size_t i = 0; i < chunk; i++) my_sum[i] += g[i];
        }
        rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, sum, (int)chunk, MPI_FLOAT, MPI_COMM_WORLD);
        t1 = MPI_Wtime();
        if (rc != MPI_SUCCESS) MPI_Abort(MPI_COMM_WORLD, 1);
        if (t1 - t0 < best_ordered) best_ordered = t1 - t0;
    }
    /* The ordered sum against one process's: every shard regenerated here, added in order. */
    uint64_t hash = 1469598103934665603ULL;
    const unsigned char *bytes = (const unsigned char *)sum;
    for (size_t i = 0; i < (size_t)params * sizeof(float); i++) hash = (hash ^ bytes[i]) * 1099511628211ULL;
    int same = 1;
    if (rank == 0) {
        for (size_t i = 0; i < (size_t)params && same; i++) {
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
    free(send);
    free(recv);
    free(sum);
    free(reduce);
    MPI_Finalize();
    return same ? 0 : 1;
}
