/* bench_data.c - an epoch of training batches from an HDF5 data set, in memory
 * and streaming, against (a) the naive way (random 128-row hyperslab reads with
 * HDF5's default 1 MiB chunk cache) and (b) a teacher epoch's training time,
 * measured in the same run.
 *
 *   bench_data [--data data/fashion-mnist.h5] [--batch 128] [--naive-batches 20]
 *              [--teacher-steps 20]
 */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/h5util.h"
#include "nn/mlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const kd_error *err)
{
    fprintf(stderr, "bench_data: %s\n", err->message);
    return 1;
}

/* One epoch through the loader; returns seconds, or -1 on error. */
static double time_epoch(kd_dataset *ds, bool streaming, int batch, kd_error *err)
{
    kd_loader_options o;
    kd_loader_options_default(&o);
    o.batch_size = batch;
    o.streaming = streaming;
    kd_loader l;
    if (kd_loader_open(&l, ds, KD_SPLIT_TRAIN, &o, err)) return -1;
    double t0 = kd_now_seconds();
    kd_batch b;
    double checksum = 0;
    for (;;) {
        if (kd_loader_next(&l, &b, err)) return -1;
        if (b.rows == 0) break;
        checksum += b.x[0];
    }
    double t = kd_now_seconds() - t0;
    kd_loader_close(&l);
    return checksum >= 0 ? t : t; /* checksum keeps the gather from being optimised away */
}

/* Shuffled batches read row by row (one 1-row hyperslab each) with HDF5's default
 * 1 MiB chunk cache: every row decompresses a whole chunk. */
static double time_naive_batch(const kd_dataset *ds, int batch, int batches)
{
    hid_t file = H5Fopen(ds->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, ds->split[KD_SPLIT_TRAIN].x_path, H5P_DEFAULT);
    if (file < 0 || dset < 0) return -1;
    hid_t space = H5Dget_space(dset);
    hsize_t mem_dims[2] = {1, (hsize_t)ds->dim};
    hid_t mem = H5Screate_simple(2, mem_dims, NULL);
    unsigned char *buf = malloc((size_t)batch * (size_t)ds->dim);
    kd_rng rng;
    kd_rng_seed(&rng, 3);
    double t0 = kd_now_seconds();
    for (int k = 0; k < batches; k++) {
        for (int i = 0; i < batch; i++) {
            hsize_t start[2] = {kd_rng_below(&rng, (uint64_t)ds->split[KD_SPLIT_TRAIN].rows), 0};
            hsize_t count[2] = {1, (hsize_t)ds->dim};
            if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                H5Dread(dset, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, buf + (size_t)i * ds->dim) < 0)
                return -1;
        }
    }
    double t = (kd_now_seconds() - t0) / batches;
    free(buf);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
    return t;
}

/* Seconds per training step of the 784-1200-1200-10 teacher (dropout 0.3, SGD). */
static double time_teacher_step(const kd_dataset *ds, int batch, int steps)
{
    kd_mlp_config c = {.n_layers = 3, .sizes = {ds->dim, 1200, 1200, ds->num_classes}, .dropout = 0.3f};
    kd_mlp mlp;
    kd_error err;
    if (kd_mlp_create(&mlp, &c, &err)) return -1;
    kd_mlp_init(&mlp, 1);
    float *x = calloc((size_t)batch * (size_t)ds->dim, sizeof(float));
    int32_t *y = calloc((size_t)batch, sizeof(int32_t));
    kd_rng rng;
    kd_rng_seed(&rng, 2);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    double t0 = 0;
    for (int s = 0; s < steps + 3; s++) {
        if (s == 3) t0 = kd_now_seconds();
        kd_tape_reset(&tape);
        kd_mlp_zero_grad(&mlp);
        kd_tensor *in = kd_tape_view(&tape, batch, ds->dim, x, NULL);
        kd_tensor *logits = kd_mlp_forward(&mlp, &tape, in, true, &rng);
        kd_tape_backward(&tape, kd_op_softmax_ce(&tape, logits, y));
        for (size_t i = 0; i < mlp.n_params; i++) mlp.params[i] -= 1e-3f * mlp.grads[i];
    }
    double t = (kd_now_seconds() - t0) / steps;
    kd_tape_free(&tape);
    free(x);
    free(y);
    kd_mlp_free(&mlp);
    return t;
}

int main(int argc, char **argv)
{
    const char *path = "data/fashion-mnist.h5";
    int batch = 128, naive_batches = 20, teacher_steps = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data")) path = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--naive-batches")) naive_batches = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--teacher-steps")) teacher_steps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_data: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    kd_dataset ds;
    kd_error err;
    if (kd_dataset_open(&ds, path, &o, &err)) return fail(&err);
    int64_t rows = ds.split[KD_SPLIT_TRAIN].rows;
    double mb = (double)rows * ds.dim / 1e6; /* uncompressed uint8 bytes */

    double t_load = kd_now_seconds();
    if (kd_dataset_load(&ds, KD_SPLIT_TRAIN, &err)) return fail(&err);
    t_load = kd_now_seconds() - t_load;
    double t_mem = time_epoch(&ds, false, batch, &err);
    if (t_mem < 0) return fail(&err);
    double t_stream = time_epoch(&ds, true, batch, &err);
    if (t_stream < 0) return fail(&err);
    double t_naive = time_naive_batch(&ds, batch, naive_batches);
    double t_step = time_teacher_step(&ds, batch, teacher_steps);
    double batches = (double)((rows + batch - 1) / batch);
    double t_teacher = t_step * batches;

    printf("data %s: train split %lld x %d uint8 (%.1f MB uncompressed), batch %d, threads %d\n", path,
           (long long)rows, ds.dim, mb, batch, kd_threads_count());
    printf("%-44s %10s %12s %14s\n", "mode", "s/epoch", "MB/s", "% of teacher");
    printf("%-44s %10.3f %12.0f %13.2f%%\n", "in memory: load + decompress once", t_load, mb / t_load,
           100 * t_load / t_teacher);
    printf("%-44s %10.3f %12.0f %13.2f%%\n", "in memory: shuffled epoch gather", t_mem, mb / t_mem,
           100 * t_mem / t_teacher);
    printf("%-44s %10.3f %12.0f %13.2f%%\n", "streaming: chunk-shuffled epoch", t_stream, mb / t_stream,
           100 * t_stream / t_teacher);
    printf("%-44s %10.1f %12.1f %13.0f%%\n", "naive: random-row hyperslabs (extrapolated)", t_naive * batches,
           mb / (t_naive * batches), 100 * t_naive * batches / t_teacher);
    printf("teacher 784-1200-1200-10 epoch (SGD, dropout 0.3): %.2f s (%.2f ms/step x %.0f steps)\n", t_teacher,
           1e3 * t_step, batches);
    printf("streaming vs naive: %.0fx faster\n", t_naive * batches / t_stream);
    printf("kdtrain_data_memory_epoch_s %.4f\nkdtrain_data_stream_epoch_s %.4f\nkdtrain_data_naive_epoch_s %.1f\n"
           "kdtrain_data_teacher_epoch_s %.3f\nkdtrain_data_memory_share_pct %.2f\nkdtrain_data_stream_share_pct %.2f\n",
           t_mem, t_stream, t_naive * batches, t_teacher, 100 * t_mem / t_teacher, 100 * t_stream / t_teacher);
    kd_dataset_close(&ds);
    return 0;
}
