/* bench_gemm.c - the teacher step's eight matrix products alone (forward X W of
 * three layers, dW = X^T dY of three, dX = dY W^T of two), through kd_gemm: how
 * close oneDNN's sgemm comes to the FMA peak on these shapes.
 *   bench_gemm [--batch 128] [--threads N]  ->  gemm_teacher_b<B>_t<N>_gflops value
 * and the same eight in bf16 through kd_mm_bf16_run, as a bf16 step runs them
 * (hidden outputs bf16 with bias and ReLU fused, dW from a transposed copy of X,
 * float32 accumulation): gemm_bf16_teacher_b<B>_t<N>_gflops.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/arena.h"
#include "core/gemm.h"
#include "core/matmul_bf16.h"
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
    /* bf16: the same eight products */
    kd_mm_cache *products;
    kd_error err;
    bool native;
    char impl[64];
    if (kd_mm_bf16_probe(batch, 1200, 784, impl, sizeof impl, &native, &err) == KD_OK &&
        kd_mm_cache_create(&products, &err) == KD_OK) {
        kd_bf16 *ab = kd_calloc_aligned(big, sizeof(kd_bf16)), *wb = kd_calloc_aligned(big, sizeof(kd_bf16)),
                *ob = kd_calloc_aligned(big, sizeof(kd_bf16));
        float *bias = kd_calloc_aligned(1200, sizeof(float));
        if (!ab || !wb || !ob || !bias) return 1;
        kd_bf16_from_floats(a, ab, big);
        kd_bf16_from_floats(a, wb, big);
        best = 1e9;
        for (int rep = 0; rep < 60; rep++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (int k = 0; k < 3; k++) {
                bool hidden = k < 2;
                kd_mm_bf16 f = {.m = batch, .n = s[k + 1], .k = s[k], .a = ab, .lda = s[k], .b = wb, .ldb = s[k + 1],
                                .c = hidden ? (void *)ob : (void *)o, .ldc = s[k + 1], .c_bf16 = hidden, .bias = bias,
                                .relu = hidden};
                kd_mm_bf16_run(products, &f);
            }
            for (int k = 2; k >= 0; k--) {
                kd_mm_bf16 dw = {.m = s[k], .n = s[k + 1], .k = batch, .a = ab, .lda = batch, .b = ob, .ldb = s[k + 1],
                                 .c = w, .ldc = s[k + 1], .accumulate = true};
                kd_mm_bf16_run(products, &dw);
                kd_mm_bf16 dx = {.m = batch, .n = s[k], .k = s[k + 1], .a = ob, .lda = s[k + 1], .b = wb, .ldb = s[k + 1],
                                 .trans_b = true, .c = o, .ldc = s[k], .accumulate = true};
                if (k > 0) kd_mm_bf16_run(products, &dx);
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double t = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            if (rep > 5 && t < best) best = t;
        }
        printf("gemm_bf16_teacher_b%d_t%d_gflops %.1f\ngemm_bf16_teacher_b%d_t%d_ms %.3f\ngemm_bf16_impl %s\n", batch,
               kd_threads_count(), flops / best * 1e-9, batch, kd_threads_count(), 1e3 * best, impl);
        free(ab);
        free(wb);
        free(ob);
        free(bias);
        kd_mm_cache_free(products);
    } else {
        fprintf(stderr, "bench_gemm: no bf16 products here: %s\n", err.message);
    }
    free(a);
    free(w);
    free(o);
    return 0;
}
