/* bench_calibrate.c - the exact temperature fit and the full calibration report
 * (accuracy, NLL, Brier, ECE with a 1000-resample bootstrap interval, MCE,
 * ECE on equal-mass bins, classwise ECE, RMS, debiased and KS calibration errors, each
 * with a 1000-resample interval, and 200 noise-floor draws) on N x C synthetic logits whose labels are drawn
 * from softmax(z / 2), so the best temperature is about 2.
 *
 *   bench_calibrate [--rows 10000] [--classes 10] [--repeat 20] [--threads N] [--dump PREFIX]
 *
 * --dump writes PREFIX.logits.f32, PREFIX.labels.i32 and PREFIX.shape, so that
 * scripts/bench_pytorch.py fits the same logits. Prints `name value` lines too.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "calib/reliability.h"
#include "calib/temperature.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "core/rng.h"

#include "synthetic_logits.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    int rows = 10000, classes = 10, repeat = 20, threads = 0;
    const char *dump = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--classes")) classes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dump")) dump = argv[i + 1];
        else {
            fprintf(stderr, "bench_calibrate: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (rows < 1 || classes < 2 || repeat < 1) return 2;
    float *z = malloc((size_t)rows * classes * sizeof *z);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    kd_reliability *r = malloc(sizeof *r);
    if (!z || !y || !r || bench_synthetic_logits(rows, classes, z, y)) return 1;
    if (threads > 0) kd_threads_set(threads);
    if (dump && bench_dump_logits(dump, z, y, rows, classes)) return 1;
    kd_temperature_fit fit;
    kd_error err;
    double best_fit = 1e9, best_report = 1e9;
    for (int k = 0; k < repeat; k++) {
        double t0 = kd_now_seconds();
        if (kd_temperature_solve(z, y, rows, classes, &fit, &err)) return fprintf(stderr, "%s\n", err.message), 1;
        double t1 = kd_now_seconds();
        kd_reliability_options ro;
        kd_reliability_options_default(&ro);
        if (kd_reliability_compute(z, y, rows, classes, fit.temperature, &ro, r, &err))
            return fprintf(stderr, "%s\n", err.message), 1;
        double t2 = kd_now_seconds();
        if (t1 - t0 < best_fit) best_fit = t1 - t0;
        if (t2 - t1 < best_report) best_report = t2 - t1;
    }
    printf("temperature fit on %d x %d logits: T = %.6f, NLL %.6f -> %.6f, %d steps, |dNLL/dbeta| = %.2g, "
           "%.3f ms (best of %d)\n",
           rows, classes, fit.temperature, fit.nll_before, fit.nll_after, fit.iterations, fabs(fit.gradient),
           1e3 * best_fit, repeat);
    printf("full report (10 metrics, 1000-resample bootstrap of each, 200 noise-floor draws): %.1f ms (best of %d)\n",
           1e3 * best_report, repeat);
    int n = kd_threads_count();
    printf("kdtrain_tfit_ms_t%d %.4f\nkdtrain_tfit_T_t%d %.8f\nkdtrain_tfit_nll_t%d %.10f\nkdtrain_tfit_steps_t%d %d\n"
           "kdtrain_report_ms_t%d %.2f\n",
           n, 1e3 * best_fit, n, fit.temperature, n, fit.nll_after, n, fit.iterations, n, 1e3 * best_report);
    free(z);
    free(y);
    free(r);
    return 0;
}
