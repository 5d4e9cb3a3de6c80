/* synthetic_logits.h - the logits the calibration benches share: z = 4 N(0, 1) from
 * kd_rng seed 1, labels drawn from softmax(z / 2) (so the best temperature is about 2),
 * and their dump as PREFIX.logits.f32, PREFIX.labels.i32 and PREFIX.shape for the
 * Python references (scripts/bench_pytorch.py, scripts/bench_calibration_reference.py)
 * to fit the same values. Header-only: each bench is one file. */
#ifndef KD_BENCH_SYNTHETIC_LOGITS_H
#define KD_BENCH_SYNTHETIC_LOGITS_H

#include "core/rng.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* z (rows, classes) and y (rows); 0, or -1 when out of memory. */
static inline int bench_synthetic_logits(int rows, int classes, float *z, int32_t *y)
{
    double *p = malloc((size_t)classes * sizeof *p);
    if (!p) return -1;
    kd_rng rng;
    kd_rng_seed(&rng, 1);
    for (int i = 0; i < rows; i++) {
        double sum = 0;
        for (int c = 0; c < classes; c++) {
            z[(size_t)i * classes + c] = (float)(4.0 * kd_rng_normal(&rng));
            sum += (p[c] = exp(z[(size_t)i * classes + c] / 2.0));
        }
        double u = kd_rng_uniform(&rng) * sum;
        int c = 0;
        while (c < classes - 1 && (u -= p[c]) > 0) c++;
        y[i] = c;
    }
    free(p);
    return 0;
}

/* 0, or -1 with a message naming the files. */
static inline int bench_dump_logits(const char *prefix, const float *z, const int32_t *y, int rows, int classes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.logits.f32", prefix);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(z, sizeof *z, (size_t)rows * classes, f) == (size_t)rows * classes;
    if (f) ok = fclose(f) == 0 && ok;
    snprintf(path, sizeof path, "%s.labels.i32", prefix);
    f = fopen(path, "wb");
    ok = ok && f && fwrite(y, sizeof *y, (size_t)rows, f) == (size_t)rows;
    if (f) ok = fclose(f) == 0 && ok;
    snprintf(path, sizeof path, "%s.shape", prefix);
    f = fopen(path, "w");
    ok = ok && f && fprintf(f, "%d %d\n", rows, classes) > 0;
    if (f) ok = fclose(f) == 0 && ok;
    if (!ok) fprintf(stderr, "cannot write %s.logits.f32, .labels.i32 and .shape\n", prefix);
    return ok ? 0 : -1;
}

#endif
