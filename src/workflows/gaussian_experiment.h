/* gaussian_experiment.h - `kdtrain gaussian` as a library call: the Gaussian-cluster
 * run of gaussian.h for each sigma, the K <= d + 1 counter-example (4 clusters in 8
 * dimensions, where tau is not identifiable), and the reports OUT/summary.md,
 * OUT/gaussian.csv and OUT/tau.svg comparing the learned tau with 1/(2 sigma^2). */
#ifndef KD_GAUSSIAN_EXPERIMENT_H
#define KD_GAUSSIAN_EXPERIMENT_H

#include "core/error.h"
#include "workflows/gaussian.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KD_GAUSSIAN_MAX_SIGMAS 16

/* base: every option but sigma; sigmas: n (1..KD_GAUSSIAN_MAX_SIGMAS) values. */
int kd_gaussian_experiment(const kd_gaussian_options *base, const double *sigmas, int n, const char *out, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
