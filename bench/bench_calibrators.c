/* bench_calibrators.c - every calibrator's fit on the same N x C synthetic logits
 * (labels drawn from softmax(z / 2), so the logits are overconfident), for
 * scripts/bench.sh to put beside scripts/bench_calibration_reference.py (scipy and
 * sklearn) fitting the same dumped logits.
 *
 *   bench_calibrators [--rows 10000] [--classes 10] [--repeat 3] [--threads N] [--lam 1e-3]
 *                     [--dump PREFIX]
 *
 * Matrix and Dirichlet scaling are timed at the fixed ODIR strength --lam (lambda =
 * mu), as the reference fits them, and again with the cross-validation that
 * `kdtrain calibrate` runs by default (5 folds over the default grid). Prints
 * `kdtrain_cal_METHOD_ms_NxC` (best of --repeat) and `kdtrain_cal_METHOD_obj_NxC`. */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "calib/calibrator.h"
#include "core/rng.h"
#include "core/threads.h"

#include "synthetic_logits.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int rows = 10000, classes = 10, repeat = 3, threads = 0;
    double lam = 1e-3;
    const char *dump = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--classes")) classes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--lam")) lam = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--dump")) dump = argv[i + 1];
        else {
            fprintf(stderr, "bench_calibrators: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (rows < 2 || classes < 2 || repeat < 1) return 2;
    float *z = malloc((size_t)rows * classes * sizeof *z);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    if (!z || !y || bench_synthetic_logits(rows, classes, z, y)) return 1;
    if (threads > 0) kd_threads_set(threads);
    if (dump && bench_dump_logits(dump, z, y, rows, classes)) return 1;

    kd_calibrator_options fixed, cv;
    kd_calibrator_options_default(&cv);
    fixed = cv;
    fixed.scaling.folds = 0; /* the strength below, as the reference fits it */
    fixed.scaling.lambda = lam;
    fixed.scaling.mu = lam;
    for (int k = 0; k < KD_CALIBRATOR_COUNT; k++) {
        kd_calibrator_kind kind = (kd_calibrator_kind)k;
        bool scaled = kind == KD_CALIBRATOR_MATRIX || kind == KD_CALIBRATOR_DIRICHLET;
        for (int with_cv = 0; with_cv <= (scaled ? 1 : 0); with_cv++) {
            double best = 1e30, objective = NAN;
            const char *objective_name = "";
            int iterations = 0;
            for (int r = 0; r < (with_cv ? 1 : repeat); r++) {
                kd_calibrator c;
                kd_error err;
                if (kd_calibrator_fit(&c, kind, z, y, rows, classes, with_cv ? &cv : &fixed, &err))
                    return fprintf(stderr, "bench_calibrators: %s: %s\n", kd_calibrator_name(kind), err.message), 1;
                if (c.seconds < best) best = c.seconds;
                objective = kd_calibrator_objective(&c, &objective_name);
                iterations = kind == KD_CALIBRATOR_TEMPERATURE ? c.temperature.iterations
                             : kind == KD_CALIBRATOR_ETS               ? c.ets.iterations
                             : kind <= KD_CALIBRATOR_DIRICHLET         ? c.scaling.iterations
                                                                       : 0;
                kd_calibrator_free(&c);
            }
            char key[64];
            snprintf(key, sizeof key, "%s%s", kd_calibrator_name(kind), with_cv ? "_cv" : "");
            for (char *s = key; *s; s++)
                if (*s == '-') *s = '_';
            fprintf(stderr, "%-20s %d x %d: %10.3f ms, %s %.10f (%d iterations)\n", key, rows, classes, 1e3 * best,
                    objective_name, objective, iterations);
            printf("kdtrain_cal_%s_ms_%dx%d %.4f\nkdtrain_cal_%s_obj_%dx%d %.10f\n", key, rows, classes, 1e3 * best, key,
                   rows, classes, objective);
        }
    }
    free(z);
    free(y);
    return 0;
}
