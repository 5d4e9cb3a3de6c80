/* bench_gemm.c - the teacher step's eight matrix products alone (forward X W of
 * three layers, dW = X^T dY of three, dX = dY W^T of two), through kd_gemm: how
 * close oneDNN's sgemm comes to the FMA peak on these shapes.
 *   bench_gemm [--batch 128] [--threads N]  ->  gemm_teacher_b<B>_t<N>_gflops value
 */
#define _POSIX_C_SOURCE 200809L
#include "core/arena.h"
#include "core/gemm.h"
#include "core/threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    int batch = 128, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    if (threads > 0) kd_threads_set(threads);
    const int s[4] = {784, 1200, 1200, 10};
    size_t big = (size_t)1200 * 1200 > (size_t)batch * 1200 ? (size_t)1200 * 1200 : (size_t)batch * 1200;
    /* 64-byte aligned, as the arena's activations and the parameter block are */
    float *a = kd_calloc_aligned(big, sizeof(float)), *w = kd_calloc_aligned(big, sizeof(float)),
          *o = kd_calloc_aligned(big, sizeof(float));
    if (!a || !w || !o) return 1;
    for (size_t i = 0; i < big; i++) a[i] = w[i] = 0.01f;
    double best = 1e9;
    for (int rep = 0; rep < 60; rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int k = 0; k < 3; k++) kd_gemm(false, false, batch, s[k + 1], s[k], 1, a, s[k], w, s[k + 1], 1, o, s[k + 1]);
        for (int k = 2; k >= 0; k--) {
            kd_gemm(true, false, s[k], s[k + 1], batch, 1, a, s[k], a, s[k + 1], 1, w, s[k + 1]);
            if (k > 0) kd_gemm(false, true, batch, s[k], s[k + 1], 1, a, s[k + 1], w, s[k + 1], 1, o, s[k]);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double t = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (rep > 5 && t < best) best = t;
    }
    double flops = 0;
    for (int k = 0; k < 3; k++) flops += (k == 0 ? 4.0 : 6.0) * batch * s[k] * s[k + 1];
    printf("gemm_teacher_b%d_t%d_gflops %.1f\ngemm_teacher_b%d_t%d_ms %.3f\n", batch, kd_threads_count(), flops / best * 1e-9,
           batch, kd_threads_count(), 1e3 * best);
    free(a);
    free(w);
    free(o);
    return 0;
}
