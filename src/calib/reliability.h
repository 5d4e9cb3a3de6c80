/* reliability.h - the calibration metrics of a set of predictions at a temperature:
 * accuracy, NLL, Brier score, top-label ECE and MCE over equal-width bins (bin m
 * holds (m-1)/M < c <= m/M; c = 0 in the first bin, c = 1 in the last), adaptive
 * ECE over equal-mass bins, classwise ECE (the mean over classes of the ECE of
 * p_k against 1[y = k], equal-width bins), and a seeded bootstrap 95 % interval for
 * ECE (percentiles of ECE over resamples of the samples with replacement). */
#ifndef KD_RELIABILITY_H
#define KD_RELIABILITY_H

#include "calib/metrics.h"
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_reliability {
    int64_t count;
    int n_bins;
    double temperature;
    double accuracy, nll, brier;
    double ece, mce, adaptive_ece, classwise_ece;
    double ece_low, ece_high;          /* bootstrap 95 % interval */
    int bootstrap;                     /* resamples drawn (0: no interval) */
    kd_calib_bin bins[KD_MAX_BINS];    /* equal width */
    kd_calib_bin adaptive[KD_MAX_BINS];
    double adaptive_upper[KD_MAX_BINS]; /* the largest confidence in each equal-mass bin */
} kd_reliability;

/* logits (n, classes) at temperature T; bootstrap resamples seeded by seed (0: none). */
int kd_reliability_compute(const float *logits, const int32_t *labels, int64_t n, int classes, double temperature,
                           int n_bins, int bootstrap, uint64_t seed, kd_reliability *out, kd_error *err);

/* Top-label ECE of (confidence, correct) pairs over n_bins equal-width bins. */
double kd_ece(const double *confidence, const unsigned char *correct, int64_t n, int n_bins);
/* The same over n_bins equal-mass bins (samples sorted by confidence). */
double kd_adaptive_ece(const double *confidence, const unsigned char *correct, int64_t n, int n_bins);

#ifdef __cplusplus
}
#endif
#endif
