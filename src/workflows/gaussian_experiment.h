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
/* The sigmas a run can measure: the clusters' centres spread about 1.5, the samples
 * are float32, and tau = 1/(2 sigma^2) must stay a float well inside its range. */
#define KD_GAUSSIAN_SIGMA_MIN 1e-3
#define KD_GAUSSIAN_SIGMA_MAX 1e3

/* base: every option but sigma; sigmas: n (1..KD_GAUSSIAN_MAX_SIGMAS) values in
 * [KD_GAUSSIAN_SIGMA_MIN, KD_GAUSSIAN_SIGMA_MAX] (else KD_ERR_CONFIG). */
int kd_gaussian_experiment(const kd_gaussian_options *base, const double *sigmas, int n, const char *out, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
