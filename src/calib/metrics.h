/* metrics.h - streaming classification metrics from logits: accuracy, NLL, Brier
 * score and top-label ECE with M equal-width bins. Bin m (1-based) holds
 * confidences c with (m-1)/M < c <= m/M; c = 0 goes to the first bin and c = 1 to
 * the last. Probabilities are softmax(z / T) worked in double. */
#ifndef KD_METRICS_H
#define KD_METRICS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_MAX_BINS 1000

typedef struct kd_calib_bin {
    int64_t count;
    double confidence_sum; /* sum of top-label confidences in the bin */
    double correct;        /* how many of them were right */
} kd_calib_bin;

typedef struct kd_metrics {
    int n_bins;
    int64_t count, correct;
    double nll_sum, brier_sum;
    kd_calib_bin bins[KD_MAX_BINS];
} kd_metrics;

typedef struct kd_metrics_summary {
    int64_t count;
    double accuracy, nll, brier, ece, mce;
} kd_metrics_summary;

/* The 0-based bin of confidence c among n_bins equal-width bins. */
int kd_ece_bin(double confidence, int n_bins);

void kd_metrics_init(kd_metrics *m, int n_bins);
/* Adds a batch: logits (rows, classes) row-major, labels (rows), temperature T > 0. */
void kd_metrics_add(kd_metrics *m, const float *logits, const int32_t *labels, int rows, int classes,
                    double temperature);
kd_metrics_summary kd_metrics_summarize(const kd_metrics *m);

#ifdef __cplusplus
}
#endif
#endif
