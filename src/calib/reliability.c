/* reliability.c - see reliability.h. */
#include "calib/reliability.h"

#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double kd_ece(const double *confidence, const unsigned char *correct, int64_t n, int n_bins)
{
    double conf[KD_MAX_BINS] = {0}, right[KD_MAX_BINS] = {0};
    int64_t count[KD_MAX_BINS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int b = kd_ece_bin(confidence[i], n_bins);
        conf[b] += confidence[i];
        right[b] += correct[i];
        count[b]++;
    }
    double ece = 0.0;
    for (int b = 0; b < n_bins; b++)
        if (count[b]) ece += fabs(right[b] - conf[b]) / (double)n; /* (n_b / n) |acc_b - conf_b| */
    return ece;
}

typedef struct ranked {
    double confidence;
    int64_t index;
} ranked;

static int by_confidence(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence < y->confidence ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Equal-mass bins: sample ranks [floor(b n / M), floor((b + 1) n / M)). */
static double adaptive(const double *confidence, const unsigned char *correct, int64_t n, int n_bins,
                       kd_calib_bin *bins, double *upper)
{
    ranked *order = malloc((size_t)n * sizeof *order);
    if (!order) return NAN;
    for (int64_t i = 0; i < n; i++) order[i] = (ranked){confidence[i], i};
    qsort(order, (size_t)n, sizeof *order, by_confidence);
    double ece = 0.0;
    for (int b = 0; b < n_bins; b++) {
        int64_t first = (int64_t)((double)b * n / n_bins), last = (int64_t)((double)(b + 1) * n / n_bins);
        kd_calib_bin bin = {0, 0.0, 0.0};
        for (int64_t r = first; r < last; r++) {
            bin.count++;
            bin.confidence_sum += order[r].confidence;
            bin.correct += correct[order[r].index];
        }
        if (bins) bins[b] = bin;
        if (upper) upper[b] = last > first ? order[last - 1].confidence : NAN;
        ece += fabs(bin.correct - bin.confidence_sum) / (double)n;
    }
    free(order);
    return ece;
}

double kd_adaptive_ece(const double *confidence, const unsigned char *correct, int64_t n, int n_bins)
{
    return adaptive(confidence, correct, n, n_bins, NULL, NULL);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile p in [0, 1] of sorted values, by linear interpolation between ranks. */
static double percentile(const double *sorted, int n, double p)
{
    double pos = p * (n - 1);
    int k = (int)floor(pos);
    if (k >= n - 1) return sorted[n - 1];
    return sorted[k] + (pos - k) * (sorted[k + 1] - sorted[k]);
}

static int bootstrap_interval(const double *confidence, const unsigned char *correct, int64_t n, int n_bins,
                              int resamples, uint64_t seed, kd_reliability *out)
{
    double *conf = malloc((size_t)n * sizeof *conf), *eces = malloc((size_t)resamples * sizeof *eces);
    unsigned char *right = malloc((size_t)n);
    if (!conf || !right || !eces) {
        free(conf);
        free(right);
        free(eces);
        return -1;
    }
    kd_rng rng;
    kd_rng_seed(&rng, seed);
    for (int r = 0; r < resamples; r++) {
        for (int64_t i = 0; i < n; i++) {
            int64_t j = (int64_t)kd_rng_below(&rng, (uint64_t)n);
            conf[i] = confidence[j];
            right[i] = correct[j];
        }
        eces[r] = kd_ece(conf, right, n, n_bins);
    }
    qsort(eces, (size_t)resamples, sizeof *eces, compare_double);
    out->ece_low = percentile(eces, resamples, 0.025);
    out->ece_high = percentile(eces, resamples, 0.975);
    out->bootstrap = resamples;
    free(conf);
    free(right);
    free(eces);
    return 0;
}

int kd_reliability_compute(const float *logits, const int32_t *labels, int64_t n, int classes, double temperature,
                           int n_bins, int bootstrap, uint64_t seed, kd_reliability *out, kd_error *err)
{
    if (n < 1) return kd_error_set(err, KD_ERR_DATA, "calibration metrics: expected samples, found none");
    if (n_bins < 1 || n_bins > KD_MAX_BINS)
        return kd_error_set(err, KD_ERR_CONFIG, "--bins: expected 1 to %d, found %d", KD_MAX_BINS, n_bins);
    memset(out, 0, sizeof *out);
    out->count = n;
    out->n_bins = n_bins;
    out->temperature = temperature;
    double *confidence = malloc((size_t)n * sizeof *confidence);
    double *probs = malloc((size_t)n * (size_t)classes * sizeof *probs); /* (n, classes) */
    unsigned char *correct = malloc((size_t)n);
    if (!confidence || !probs || !correct) {
        free(confidence);
        free(probs);
        free(correct);
        return kd_error_set(err, KD_ERR_IO, "out of memory for %lld predictions", (long long)n);
    }
    kd_metrics m;
    kd_metrics_init(&m, n_bins);
    kd_metrics_add(&m, logits, labels, (int)n, classes, temperature);
    kd_metrics_summary s = kd_metrics_summarize(&m);
    out->accuracy = s.accuracy;
    out->nll = s.nll;
    out->brier = s.brier;
    out->ece = s.ece;
    out->mce = s.mce;
    memcpy(out->bins, m.bins, (size_t)n_bins * sizeof *out->bins);
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        double *p = probs + (size_t)i * (size_t)classes;
        int top = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[top]) top = c;
        double sum = 0.0;
        for (int c = 0; c < classes; c++) sum += (p[c] = exp(((double)z[c] - z[top]) / temperature));
        for (int c = 0; c < classes; c++) p[c] /= sum;
        confidence[i] = p[top];
        correct[i] = top == labels[i];
    }
    out->adaptive_ece = adaptive(confidence, correct, n, n_bins, out->adaptive, out->adaptive_upper);
    double classwise = 0.0;
    for (int c = 0; c < classes; c++) {
        for (int64_t i = 0; i < n; i++) {
            confidence[i] = probs[(size_t)i * (size_t)classes + (size_t)c];
            correct[i] = labels[i] == c;
        }
        classwise += kd_ece(confidence, correct, n, n_bins);
    }
    out->classwise_ece = classwise / classes;
    /* restore the top-label pairs for the bootstrap */
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        int top = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[top]) top = c;
        confidence[i] = probs[(size_t)i * (size_t)classes + (size_t)top];
        correct[i] = top == labels[i];
    }
    int rc = KD_OK;
    if (bootstrap > 0 && bootstrap_interval(confidence, correct, n, n_bins, bootstrap, seed, out) != 0)
        rc = kd_error_set(err, KD_ERR_IO, "out of memory for the bootstrap");
    free(confidence);
    free(probs);
    free(correct);
    return rc;
}
