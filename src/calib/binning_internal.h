/* binning_internal.h - the softmax passes of calib/binning.c (binning_softmax.c), not
 * for use elsewhere. The softmax is p = softmax(z) in double, row max subtracted, exp
 * summed in class order; "exact" means with libm's exp, as the fixtures' numpy. */
#ifndef KD_BINNING_INTERNAL_H
#define KD_BINNING_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

/* p (classes) = softmax of one row z, exactly. */
void kd_binning_softmax_row(const float *z, int classes, double *p);
/* P (classes, n): the softmax of every row by column, bit for bit
 * kd_binning_softmax_row's p (isotonic's thresholds are p values, and scaling-binning's
 * equal-mass edges fall between tied p exactly as the fixture's do only with the same
 * p). Threaded over rows. Returns -1 when out of memory. */
int kd_binning_softmax_columns(const float *logits, int64_t n, int classes, double *P);
/* Histogram binning's statistics without storing p: count (classes, bins) the rows
 * whose exact p_k falls in bin m (kd_ece_bin), hits (classes, bins) those of them with
 * label k. Integers, so the same for any thread count. Returns -1 when out of memory. */
int kd_binning_histogram_counts(const float *logits, const int32_t *labels, int64_t n, int classes, int bins,
                                int64_t *count, int64_t *hits);

#endif
