/* bench_scaling - times the scaling family's fits (vector, matrix, Dirichlet) on
 * N x C synthetic logits made as bench_calibrate makes them (z = 4 N(0, 1), labels
 * drawn from softmax(z / 2), kd_rng seed 1), at the fixed strength lambda = mu = --lam
 * (no cross-validation: what scripts/bench_calibration_reference.py fits with scipy),
 * or with the default 5-fold cross-validation under --cv. Prints `name value` lines:
 * the fit's wall and CPU (all threads) time in ms (best of --repeat), the objective, iterations and max |gradient|.
 *   bench_scaling [--rows N] [--classes C] [--lam 1e-3] [--repeat 1] [--threads T]
 *                 [--methods vector,matrix,dirichlet] [--cv] [--tolerance X]
 *                 [--newton-max P] [--dump PREFIX] */
#include "calib/scaling.h"
#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"

#include "synthetic_logits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    int rows = 10000, classes = 10, repeat = 1, threads = 0, cv = 0, newton_max = -1;
    double lam = 1e-3, tolerance = 0.0;
    const char *dump = NULL, *methods = "vector,matrix,dirichlet";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--cv")) { cv = 1; continue; }
        if (!v) return fprintf(stderr, "bench_scaling: %s needs a value\n", a), 2;
        if (!strcmp(a, "--rows")) rows = atoi(v);
        else if (!strcmp(a, "--classes")) classes = atoi(v);
        else if (!strcmp(a, "--repeat")) repeat = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--lam")) lam = atof(v);
        else if (!strcmp(a, "--tolerance")) tolerance = atof(v);
        else if (!strcmp(a, "--newton-max")) newton_max = atoi(v);
        else if (!strcmp(a, "--methods")) methods = v;
        else if (!strcmp(a, "--dump")) dump = v;
        else return fprintf(stderr, "bench_scaling: unknown option %s\n", a), 2;
        i++;
    }
    if (rows < 2 || classes < 2 || repeat < 1) return 2;
    float *z = malloc((size_t)rows * classes * sizeof *z);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    if (!z || !y || bench_synthetic_logits(rows, classes, z, y)) return 1;
    if (dump && bench_dump_logits(dump, z, y, rows, classes)) return 1;
    if (threads > 0) kd_threads_set(threads);
    static const struct { const char *name; kd_scaling_kind kind; } table[] = {
        {"vector", KD_SCALING_VECTOR}, {"matrix", KD_SCALING_MATRIX}, {"dirichlet", KD_SCALING_DIRICHLET}};
    for (size_t m = 0; m < sizeof table / sizeof *table; m++) {
        if (!strstr(methods, table[m].name)) continue;
        kd_scaling_options o;
        kd_scaling_options_default(&o);
        if (!cv) o.folds = 0, o.lambda = o.mu = lam;
        if (tolerance > 0) o.tolerance = tolerance;
        if (newton_max >= 0) o.newton_max_parameters = newton_max;
        double best = 1e300, best_cpu = 1e300;
        kd_scaling s = {0};
        for (int r = 0; r < repeat; r++) {
            kd_error err;
            kd_scaling_free(&s);
            double t0 = kd_now_seconds(), c0 = (double)clock() / CLOCKS_PER_SEC;
            if (kd_scaling_fit(&s, table[m].kind, z, y, rows, classes, &o, &err))
                return fprintf(stderr, "bench_scaling: %s\n", err.message), 1;
            double ms = 1e3 * (kd_now_seconds() - t0);
            double cpu = 1e3 * ((double)clock() / CLOCKS_PER_SEC - c0);
            best = ms < best ? ms : best;
            best_cpu = cpu < best_cpu ? cpu : best_cpu;
        }
        const char *tag = table[m].name;
        printf("kd_cal_%s%s_ms_%dx%d %.3f\n", tag, cv ? "_cv" : "", rows, classes, best);
        printf("kd_cal_%s%s_cpu_ms_%dx%d %.3f\n", tag, cv ? "_cv" : "", rows, classes, best_cpu);
        printf("kd_cal_%s%s_obj_%dx%d %.10f\n", tag, cv ? "_cv" : "", rows, classes, s.objective);
        printf("kd_cal_%s%s_iterations_%dx%d %d (%d evaluations, %s, max|g| %.2e%s, lambda %g)\n", tag, cv ? "_cv" : "",
               rows, classes, s.iterations, s.evaluations, s.newton ? "Newton" : "L-BFGS", s.gradient_norm,
               s.converged ? "" : ", NOT converged", s.lambda);
        fflush(stdout);
        kd_scaling_free(&s);
    }
    free(z), free(y);
    return 0;
}
