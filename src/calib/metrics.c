/* metrics.c - see metrics.h. */
#include "calib/metrics.h"

#include "core/check.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

int kd_ece_bin(double c, int n_bins)
{
    if (!(c > 0.0)) return 0;
    if (c >= 1.0) return n_bins - 1;
    int m = (int)ceil(c * n_bins) - 1;
    /* c * n_bins rounds; settle the edges against m / n_bins in double. */
    if (m > 0 && c <= (double)m / n_bins) m--;
    if (m < n_bins - 1 && c > (double)(m + 1) / n_bins) m++;
    return m < 0 ? 0 : m;
}

void kd_metrics_init(kd_metrics *m, int n_bins)
{
    KD_ASSERT(n_bins >= 1 && n_bins <= KD_MAX_BINS, "bins %d outside 1..%d", n_bins, KD_MAX_BINS);
    memset(m, 0, sizeof *m);
    m->n_bins = n_bins;
}

void kd_metrics_add(kd_metrics *m, const float *logits, const int32_t *labels, int rows, int classes,
                    double temperature)
{
    KD_ASSERT(temperature > 0, "temperature %g must be positive", temperature);
    for (int i = 0; i < rows; i++) {
        const float *z = logits + (size_t)i * classes;
        int32_t y = labels[i];
        KD_ASSERT(y >= 0 && y < classes, "label %d outside [0, %d)", (int)y, classes);
        int top = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[top]) top = c;
        double max = z[top], sum = 0.0;
        for (int c = 0; c < classes; c++) sum += exp(((double)z[c] - max) / temperature);
        double log_sum = log(sum);
        double brier = 0.0;
        for (int c = 0; c < classes; c++) {
            double p = exp(((double)z[c] - max) / temperature - log_sum);
            double target = c == y ? 1.0 : 0.0;
            brier += (p - target) * (p - target);
        }
        double confidence = exp(-log_sum); /* softmax of the arg max */
        bool right = top == y;
        m->count++;
        m->correct += right;
        m->nll_sum += log_sum - ((double)z[y] - max) / temperature;
        m->brier_sum += brier;
        kd_calib_bin *bin = &m->bins[kd_ece_bin(confidence, m->n_bins)];
        bin->count++;
        bin->confidence_sum += confidence;
        bin->correct += right;
    }
}

kd_metrics_summary kd_metrics_summarize(const kd_metrics *m)
{
    kd_metrics_summary s = {0, 0, 0, 0, 0, 0};
    s.count = m->count;
    if (m->count == 0) return s;
    double n = (double)m->count;
    s.accuracy = (double)m->correct / n;
    s.nll = m->nll_sum / n;
    s.brier = m->brier_sum / n;
    for (int b = 0; b < m->n_bins; b++) {
        const kd_calib_bin *bin = &m->bins[b];
        if (bin->count == 0) continue;
        double gap = fabs(bin->correct / (double)bin->count - bin->confidence_sum / (double)bin->count);
        s.ece += (double)bin->count / n * gap;
        if (gap > s.mce) s.mce = gap;
    }
    return s;
}
