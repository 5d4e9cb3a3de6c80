/* ce_estimators.h - every metric of reliability.h for one weighted sample, the
 * engine under the point estimates, the bootstrap and the noise floors (internal
 * to calib/; reliability.h is the interface).
 *
 * A kd_ce_sample is what does not depend on the labels or the weights, prepared
 * once: the top label and confidence of each row, its equal-width bin, the order by
 * confidence, and the class probabilities split for the classwise ECE into those in
 * the first equal-width bin (a dense matrix, whose weighted column sums are one
 * vectorised pass) and the few above it (a sparse list: fewer than M a row).
 * A kd_ce_outcome is what the labels decide. Weights are counts (a resample's
 * multinomial; NULL: one each) summing to n. */
#ifndef KD_CE_ESTIMATORS_H
#define KD_CE_ESTIMATORS_H

#include "calib/metrics.h"
#include "calib/reliability.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct kd_ce_sample {
    int64_t n;
    int classes, bins;
    const double *probs;   /* (n, classes), not owned */
    int32_t *top;          /* (n) arg max, the first on ties */
    double *conf;          /* (n) p_top */
    int32_t *width_bin;    /* (n) equal-width bin of conf */
    int64_t *order;        /* (n) rows by confidence, ties in row order */
    double *low;           /* (n, classes) p_ik where it is in the first equal-width bin, else 0 */
    double *low_sum;       /* (classes) column sums of low */
    int64_t *sparse_start; /* (n + 1) row i's entries above the first bin: [start[i], start[i+1]) */
    int32_t *sparse_class; /* (nnz) */
    int32_t *sparse_bin;   /* (nnz) */
    double *sparse_p;      /* (nnz) */
} kd_ce_sample;

typedef struct kd_ce_outcome {
    unsigned char *correct; /* (n) top == label */
    int32_t *label;         /* (n) */
    int32_t *label_bin;     /* (n) equal-width bin of p_{i, label} */
    double *nll, *brier;    /* (n) per-sample terms; NULL for drawn labels */
} kd_ce_outcome;

/* Per-thread working memory of kd_ce_evaluate. */
typedef struct kd_ce_scratch {
    kd_calib_bin *width, *mass; /* (bins) */
    double *upper;              /* (bins) the largest confidence in each equal-mass bin */
    double *classwise;          /* (classes, bins) */
} kd_ce_scratch;

/* Fills s from probs (n, classes), which must be valid and outlive s. -1: out of memory. */
int kd_ce_sample_prepare(kd_ce_sample *s, const double *probs, int64_t n, int classes, int bins);
void kd_ce_sample_free(kd_ce_sample *s);

/* The outcome of labels; nll (n) given is used as is (NULL: -log max(p_y, 1e-15)). */
int kd_ce_outcome_prepare(kd_ce_outcome *y, const kd_ce_sample *s, const int32_t *labels, const double *nll);
void kd_ce_outcome_free(kd_ce_outcome *y);

int kd_ce_scratch_init(kd_ce_scratch *sc, const kd_ce_sample *s);
void kd_ce_scratch_free(kd_ce_scratch *sc);

/* low_mass[k] = sum_i w_j[i] low[i, k] for each of the g weight vectors w[j] (NULL: ones),
 * into mass (g, classes); each sum runs in row order, whatever else runs. */
void kd_ce_low_mass(const kd_ce_sample *s, const int32_t *const *w, int g, double *mass);

/* value[KD_METRIC_COUNT] of the sample weighted by w (NULL: ones); low_mass is
 * kd_ce_low_mass of w. Accuracy, NLL and Brier are NAN when y has no nll. The bins
 * of the last call stay in sc. */
void kd_ce_evaluate(const kd_ce_sample *s, const kd_ce_outcome *y, const int32_t *w, const double *low_mass,
                    kd_ce_scratch *sc, double *value);

/* Resampling (bootstrap.c). values (resamples, KD_METRIC_COUNT) for a and, when b is
 * given (the same rows, other probabilities), values_b for b under the same
 * resamples. -1: out of memory. */
int kd_ce_bootstrap(const kd_ce_sample *a, const kd_ce_outcome *ya, const kd_ce_sample *b, const kd_ce_outcome *yb,
                    int resamples, uint64_t seed, double *values, double *values_b);
/* values (draws, KD_METRIC_COUNT): the metrics under labels drawn from the sample's
 * own probabilities (accuracy, NLL, Brier NAN). -1: out of memory. */
int kd_ce_noise_floor(const kd_ce_sample *s, int draws, uint64_t seed, double *values);

/* Percentile p in [0, 1] of sorted[0..count), linear between ranks. */
double kd_ce_percentile(const double *sorted, int count, double p);

#endif
