/* stats.c - see stats.h. */
#include "train/stats.h"

#include "core/check.h"

#include <math.h>

kd_stat kd_stat_of(const double *values, int n)
{
    kd_stat s = {n, 0.0, 0.0};
    if (n < 1) return s;
    for (int i = 0; i < n; i++) s.mean += values[i];
    s.mean /= n;
    if (n > 1) {
        double ss = 0.0;
        for (int i = 0; i < n; i++) ss += (values[i] - s.mean) * (values[i] - s.mean);
        s.sd = sqrt(ss / (n - 1));
    }
    return s;
}

kd_stat kd_stat_paired(const double *a, const double *b, int n)
{
    double diff[256];
    KD_ASSERT(n >= 0 && n <= 256, "paired statistics over %d > 256 seeds", n);
    for (int i = 0; i < n; i++) diff[i] = b[i] - a[i];
    return kd_stat_of(diff, n);
}
