/* isotonic.h - one-dimensional isotonic regression (non-decreasing) by
 * pool-adjacent-violators, the same function as scikit-learn's
 * IsotonicRegression(increasing=True, y_min=0, y_max=1, out_of_bounds='clip') with
 * unit weights:
 *   1. ties in x pooled first, as sklearn's _make_unique does: sorted x starts a new
 *      group when it exceeds the group's FIRST x by at least 1e-15 (numpy's float64
 *      "resolution"), so near-ties closer than 1e-15 pool too; the group's x is its
 *      first, its y the mean of its ys, its weight its count;
 *   2. weighted PAV over the groups: a block whose mean is >= the next one's pools
 *      with it, so the fitted blocks are strictly increasing; values clipped to [0, 1];
 *   3. thresholds: the first and the last x of each block with the block's value
 *      (sklearn's trimmed X_thresholds_/y_thresholds_: the same piecewise-linear
 *      function);
 *   4. prediction: x clipped to [first, last] threshold, then linear interpolation
 *      between the thresholds around it as numpy.interp does (an x equal to a
 *      threshold takes its value exactly); one threshold: a constant.
 * The module owns no sorting and no classes: binning.c sorts and calls it per class. */
#ifndef KD_ISOTONIC_H
#define KD_ISOTONIC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* sklearn's tie resolution (np.finfo(np.float64).resolution). */
#define KD_ISOTONIC_TIE 1e-15

/* Fits y (n) on x (n) sorted ascending, n >= 1. tx and ty (room for n each) receive the
 * thresholds; returns their count (1..n), or -1 when out of memory. *sse (if not NULL)
 * receives sum_i (fit(x_i) - y_i)^2, the objective PAV minimises (from the blocks' sums). */
int64_t kd_isotonic_fit(const double *x, const double *y, int64_t n, double *tx, double *ty, double *sse);

/* The fitted function at x, from k >= 1 thresholds. NaN gives NaN. */
double kd_isotonic_predict(const double *tx, const double *ty, int64_t k, double x);

#ifdef __cplusplus
}
#endif
#endif
