/* cmd_gaussian.c - `kdtrain gaussian`: the options of workflows/gaussian_experiment.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/args.h"
#include "cli/commands.h"

#include "workflows/gaussian_experiment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIGMAS KD_GAUSSIAN_MAX_SIGMAS

static void print_help(void)
{
    printf("usage: kdtrain gaussian [--sigmas 0.5,0.75,1,1.5,2] [--classes 8] [--dim 2] [--samples 20000]\n"
           "                        [--epochs 30] [--seed 1] [--out results/gaussian]\n\n"
           "For K isotropic Gaussian clusters with variance sigma^2, the Bayes-optimal classifier is\n"
           "softmax(-tau ||x - mu_k||^2) with tau = 1/(2 sigma^2). Trains a distance-softmax classifier\n"
           "with learnable centres and tau on generated data for each sigma and writes OUT/summary.md,\n"
           "OUT/gaussian.csv and OUT/tau.svg comparing the learned tau with 1/(2 sigma^2).\n"
           "tau is identifiable only with more clusters than dimensions + 1 (K > d + 1): with K <= d + 1\n"
           "the centres can be scaled about their circumcentre with tau scaled back, and the posterior\n"
           "does not change (see src/workflows/gaussian.h).\n");
}

static int parse_sigmas(const char *text, double *sigmas, int *n)
{
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", text);
    *n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(tok, &end);
        if (end == tok || *end || !(v >= KD_GAUSSIAN_SIGMA_MIN && v <= KD_GAUSSIAN_SIGMA_MAX) || *n == MAX_SIGMAS)
            return -1;
        sigmas[(*n)++] = v;
    }
    return *n ? 0 : -1;
}

int kd_cmd_gaussian(int argc, char **argv)
{
    kd_args a = {argc, argv, 1, "kdtrain gaussian"};
    kd_gaussian_options o;
    kd_gaussian_options_default(&o);
    double sigmas[MAX_SIGMAS] = {0.5, 0.75, 1.0, 1.5, 2.0};
    int n_sigmas = 5;
    const char *out = "results/gaussian";
    for (; a.i < argc; a.i++) {
        const char *v;
        long x;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            print_help();
            return 0;
        }
        if ((m = kd_arg_value(&a, "--sigmas", "sigmas separated by commas", &v))) {
            if (m < 0) return 2;
            if (parse_sigmas(v, sigmas, &n_sigmas)) {
                fprintf(stderr, "kdtrain gaussian: --sigmas: expected 1 to %d numbers in [%g, %g] separated by commas, found '%s'\n",
                        MAX_SIGMAS, KD_GAUSSIAN_SIGMA_MIN, KD_GAUSSIAN_SIGMA_MAX, v);
                return 2;
            }
        } else if ((m = kd_arg_value(&a, "--classes", "a class count", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--classes", v, 2, 64, &x)) return 2;
            o.classes = (int)x;
        } else if ((m = kd_arg_value(&a, "--dim", "a dimension", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--dim", v, 1, 4096, &x)) return 2;
            o.dim = (int)x;
        } else if ((m = kd_arg_value(&a, "--samples", "a sample count", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--samples", v, 64, 100000000, &x)) return 2;
            o.train_samples = o.test_samples = x;
        } else if ((m = kd_arg_value(&a, "--epochs", "an epoch count", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--epochs", v, 1, 100000, &x)) return 2;
            o.epochs = (int)x;
        } else if ((m = kd_arg_value(&a, "--seed", "a seed", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--seed", v, 0, 2147483647, &x)) return 2;
            o.seed = (uint64_t)x;
        } else if ((m = kd_arg_value(&a, "--out", "a folder", &v))) {
            if (m < 0) return 2;
            out = v;
        } else {
            return kd_arg_unknown(&a);
        }
    }
    kd_error err;
    kd_error_clear(&err);
    int rc = kd_gaussian_experiment(&o, sigmas, n_sigmas, out, &err);
    if (rc) {
        fprintf(stderr, "kdtrain gaussian: %s\n", err.message);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    printf("%s/summary.md\n", out);
    return 0;
}
