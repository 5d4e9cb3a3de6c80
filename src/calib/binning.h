/* binning.h - non-parametric post-hoc calibrators fitted exactly on (logits, labels):
 * histogram binning (Zadrozny and Elkan 2001), isotonic regression (as scikit-learn's
 * IsotonicRegression) and the scaling-binning calibrator (Kumar, Liang and Ma 2019).
 *
 * Multiclass: one-vs-rest, as scikit-learn's CalibratedClassifierCV. The softmax
 * p = softmax(z) is worked in double (row max subtracted, exp summed in class order);
 * class k's calibrator f_k is fitted on the pairs (p_ik, 1[y_i = k]); a new row's
 * output is f_k(p_k) for every k, renormalised to sum 1, and a row whose calibrated
 * values are all 0 becomes uniform (1/C), as sklearn does. Unlike sklearn, two
 * classes are treated like any other C (two calibrators and the renormalisation;
 * sklearn fits class 1 alone and sets p_0 = 1 - p_1).
 *
 * Histogram: per class M equal-width bins over [0, 1] with the edges of kdtrain's
 *   ECE (kd_ece_bin: bin m holds (m-1)/M < p <= m/M, p = 0 in the first bin); a bin's
 *   value is the fraction of positives among the fitting samples in it. An EMPTY bin
 *   takes its midpoint (m - 1/2)/M: with no evidence the uncalibrated p is kept (to
 *   within the bin), where the nearest bin's value could move it by many bins; this is
 *   also the scaling-binning authors' rule for empty bins.
 * Isotonic: calib/isotonic.h per class (sklearn's ties, PAV, clip, interpolation).
 * Scaling-binning: per class, on a split of the fitting rows (kd_binning_split):
 *   (a) on the first part, Platt scaling g(p) = sigmoid(a logit(p) + b), logit(p) =
 *       log(p / (1 - p)) with p clipped to [1e-12, 1 - 1e-12] (the authors' code), fitted
 *       by Newton's method with backtracking on the mean logistic loss (convex in a, b)
 *       until |gradient| <= 1e-12 (sup norm);
 *   (b) on the second part (m rows), the values g(p) sorted: B equal-mass bins whose
 *       upper edges are the midpoints between the sorted values at ranks r - 1 and r,
 *       r = floor(j m / B) for j = 1..B-1, and 1 for the last; an edge not above the
 *       previous one (ties) is dropped, so a class can have fewer than B bins;
 *   (c) a bin holds (previous edge, edge] (upper edge inclusive; the first from 0), and
 *       its value is the MEAN OF g over the second part's samples in it (not of the
 *       labels: that is what makes it scaling-binning); an empty bin its midpoint.
 *   A class with no positive (or no negative) in the first part has no Platt optimum:
 *   g = 0 (or 1), the limit of the fit.
 * B defaults to 15, as the ECE's bins here (the paper's experiments use 10 to 100).
 * kd_binning_apply reads the tables below; the tests read them too. */
#ifndef KD_BINNING_H
#define KD_BINNING_H

#include "core/error.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Platt's logit clip, as Kumar et al.'s code. */
#define KD_PLATT_EPS 1e-12

typedef enum kd_binning_kind { KD_BINNING_HISTOGRAM, KD_BINNING_ISOTONIC, KD_BINNING_SCALING_BINNING } kd_binning_kind;

typedef struct kd_binning_options {
    int bins;      /* histogram and scaling-binning: 1..KD_MAX_BINS (default 15) */
    uint64_t seed; /* scaling-binning's split (default 0) */
} kd_binning_options;

typedef struct kd_binning {
    kd_binning_kind kind;
    int classes;
    int bins;
    /* histogram: value[k * bins + m], bin m of class k.
     * scaling-binning: edge[k * bins + j] and value[k * bins + j] for j < used[k];
     *   platt[2 k], platt[2 k + 1]: class k's a and b.
     * isotonic: class k's thresholds x[t], y[t] for offset[k] <= t < offset[k + 1]. */
    double *value, *edge, *platt, *x, *y;
    int *used;
    int64_t *offset;
    int platt_iterations;  /* scaling-binning: the most Newton steps any class took */
    int platt_unconverged; /* classes whose Platt fit stopped at the cap (separable data) */
    /* The one-vs-rest squared error on the fitting rows, before the renormalisation:
     * mean_i sum_k (f_k(p_ik) - 1[y_i = k])^2, what histogram binning and isotonic
     * regression minimise class by class. */
    double objective;
} kd_binning;

void kd_binning_options_default(kd_binning_options *o);
/* logits (n, classes) float32, labels (n) in 0..classes-1; o may be NULL (defaults).
 * Errors: non-finite logits, labels out of range, bins outside 1..KD_MAX_BINS, fewer
 * than 1 row (2 x bins rows for scaling-binning: each part needs a sample a bin). */
int kd_binning_fit(kd_binning *b, kd_binning_kind kind, const float *logits, const int32_t *labels, int64_t n,
                   int classes, const kd_binning_options *o, kd_error *err);
/* probs (n, classes): rows sum to 1. Logits are expected finite (a NaN row gives NaN). */
void kd_binning_apply(const kd_binning *b, const float *logits, int64_t n, double *probs);
void kd_binning_free(kd_binning *b);
/* "histogram", "isotonic", "scaling-binning" */
const char *kd_binning_name(kd_binning_kind kind);
/* Scaling-binning's split of n rows: order (n) receives a permutation of 0..n-1 by
 * Fisher-Yates with kd_rng seeded by seed (for i = n-1 down to 1, swap entries i and
 * kd_rng_below(i + 1)); rows order[0 .. n/2) fit Platt, rows order[n/2 .. n) the bins. */
void kd_binning_split(int64_t n, uint64_t seed, int64_t *order);
/* Rows whose prediction a calibrator changed: the first largest of probs (n, classes)
 * is not the first largest logit. Binning's outputs are piecewise constant, so ties in
 * a row are common and count as changes when the first of them is another class.
 * (Temperature and ensemble temperature scaling never change the arg max.) */
int64_t kd_binning_argmax_changes(const float *logits, const double *probs, int64_t n, int classes);

#ifdef __cplusplus
}
#endif
#endif
