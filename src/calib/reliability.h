/* reliability.h - the calibration metrics of a set of predictions, each with a
 * bootstrap 95 % interval, and for each calibration error its noise floor.
 *
 * Metrics (kd_metric), all from the probabilities p (n, C) and the labels y; the top
 * label is the arg max of p (the first class on ties), its probability the
 * confidence c:
 *   accuracy, NLL (the mean of -log max(p_y, 1e-15): the clip of sklearn's log_loss
 *   (1.2, eps = 1e-15), without its renormalisation of clipped rows; the logits entry
 *   point takes -log p_y exactly from the log-softmax instead, no clip), Brier
 *   (the mean of sum_k (p_k - 1[y = k])^2);
 *   ECE and MCE over M equal-width bins (bin m holds (m-1)/M < c <= m/M; c = 0 in the
 *   first bin, c = 1 in the last): sum_b (n_b / n) |acc_b - conf_b| and the largest
 *   |acc_b - conf_b| of a non-empty bin;
 *   top-label ECE over M equal-mass bins: the samples sorted by confidence (stable:
 *   ties in sample order), bin b holding sample ranks [floor(b n / M), floor((b+1) n / M));
 *   classwise ECE: the mean over classes k of the equal-width ECE of p_k against 1[y = k];
 *   RMS calibration error: sqrt(sum_b (n_b / n) (acc_b - conf_b)^2), equal-mass bins;
 *   debiased L2 calibration error (Kumar, Liang and Ma 2019, "Verified uncertainty
 *   calibration"): sqrt(max(0, sum_b (n_b / n) [(conf_b - acc_b)^2 - acc_b (1 - acc_b) /
 *   (n_b - 1)])), the same equal-mass bins, a bin with n_b < 2 contributing 0;
 *   KS calibration error (Gupta et al. 2021, "Calibration of neural networks using
 *   splines"): with the samples in the same order, max_k |(1/n) sum_{i<=k} (c_i - correct_i)|.
 *
 * The bootstrap resamples the n samples with replacement (a multinomial of n draws;
 * a resample's copies of one sample sit together in the confidence order) and takes
 * the 2.5th and 97.5th percentiles (linear between ranks) of each metric. The noise
 * floor of a calibration error is its value for a perfectly calibrated model with the
 * same probabilities on a split of this size: labels drawn y_i ~ Categorical(p_i), the
 * metric recomputed, the mean and 95th percentile over the draws. Resample r and
 * draw d use generators seeded from (seed, r) and (seed, d), so the results do not
 * depend on the thread count. */
#ifndef KD_RELIABILITY_H
#define KD_RELIABILITY_H

#include "calib/metrics.h"
#include "core/error.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_metric {
    KD_METRIC_ACCURACY,
    KD_METRIC_NLL,
    KD_METRIC_BRIER,
    KD_METRIC_ECE,
    KD_METRIC_MCE,
    KD_METRIC_ECE_EQUAL_MASS,
    KD_METRIC_CLASSWISE_ECE,
    KD_METRIC_RMS_CE,
    KD_METRIC_DEBIASED_CE,
    KD_METRIC_KS_CE,
    KD_METRIC_COUNT
} kd_metric;

/* A short key for JSON and CSV ("ece_equal_mass"). */
const char *kd_metric_name(kd_metric m);
/* A label for reports ("ECE, equal-mass bins"). */
const char *kd_metric_label(kd_metric m);
/* True for the calibration errors (ECE ... KS), which have a noise floor. */
bool kd_metric_is_calibration_error(kd_metric m);

typedef struct kd_reliability_options {
    int bins;        /* M, for every binned metric: 1 to KD_MAX_BINS */
    int bootstrap;   /* resamples for the intervals (0: none) */
    int noise_draws; /* label draws for the noise floors (0: none) */
    uint64_t seed;
} kd_reliability_options;

/* 15 bins, 1000 resamples, 200 noise draws, seed 0. */
void kd_reliability_options_default(kd_reliability_options *o);

typedef struct kd_reliability {
    int64_t count;
    int classes;
    int n_bins;
    double temperature;                /* NAN from probabilities */
    double value[KD_METRIC_COUNT];
    double low[KD_METRIC_COUNT], high[KD_METRIC_COUNT];             /* 95 % interval; NAN without */
    double floor_mean[KD_METRIC_COUNT], floor_high[KD_METRIC_COUNT]; /* NAN but for calibration errors */
    int bootstrap;                     /* resamples drawn (0: no interval) */
    int noise_draws;                   /* label draws (0: no floor) */
    uint64_t seed;
    kd_calib_bin bins[KD_MAX_BINS];    /* equal width */
    kd_calib_bin equal_mass[KD_MAX_BINS];
    double equal_mass_upper[KD_MAX_BINS]; /* the largest confidence in each equal-mass bin (NAN: empty) */
} kd_reliability;

/* probs (n, classes), row-major double, each row in [0, 1] summing to 1 within 1e-6;
 * labels (n) in 0..classes-1. Bad input is a KD_ERR_DATA naming the row. */
int kd_reliability_from_probs(const double *probs, const int32_t *labels, int64_t n, int classes,
                              const kd_reliability_options *o, kd_reliability *out, kd_error *err);

/* logits (n, classes) at temperature T > 0: softmax((z - max z) / T) in double, then
 * the probabilities path (NLL from the log-softmax, unclipped). */
int kd_reliability_compute(const float *logits, const int32_t *labels, int64_t n, int classes, double temperature,
                           const kd_reliability_options *o, kd_reliability *out, kd_error *err);

/* Two calibrations of the same samples: value = metric(B) - metric(A), and the
 * interval of that difference over resamples applied to both (o->noise_draws unused). */
typedef struct kd_paired_difference {
    double value[KD_METRIC_COUNT], low[KD_METRIC_COUNT], high[KD_METRIC_COUNT];
    int bootstrap;
} kd_paired_difference;

int kd_reliability_paired(const double *probs_a, const double *probs_b, const int32_t *labels, int64_t n, int classes,
                          const kd_reliability_options *o, kd_paired_difference *out, kd_error *err);

/* Top-label ECE of (confidence, correct) pairs over n_bins equal-width bins. */
double kd_ece(const double *confidence, const unsigned char *correct, int64_t n, int n_bins);
/* The same over n_bins equal-mass bins (the ranks above); NAN when out of memory. */
double kd_ece_equal_mass(const double *confidence, const unsigned char *correct, int64_t n, int n_bins);

#ifdef __cplusplus
}
#endif
#endif
