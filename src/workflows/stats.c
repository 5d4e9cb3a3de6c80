/* stats.c - see stats.h. */
#include "workflows/stats.h"

#include "core/check.h"

#include <math.h>
#include <stdlib.h>

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

/* Two-sided 95 % critical values of Student's t for 1..15 degrees of freedom. */
static const double t_critical[16] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365,
                                      2.306, 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131};

double kd_stat_t_critical(int dof) { return dof >= 1 && dof <= 15 ? t_critical[dof] : NAN; }

const char *kd_stat_verdict(kd_stat d, double *t_out)
{
    int dof = d.n - 1;
    if (dof < 1 || dof > 15) {
        *t_out = NAN;
        return "not tested (needs 2 to 16 seeds)";
    }
    double se = d.sd / sqrt((double)d.n);
    double t = se > 0 ? d.mean / se : (d.mean == 0 ? 0 : INFINITY * d.mean);
    *t_out = t;
    if (fabs(t) <= t_critical[dof]) return "within seed noise";
    return "beyond seed noise";
}

bool kd_stat_beyond_noise(kd_stat d)
{
    double t;
    int dof = d.n - 1;
    kd_stat_verdict(d, &t);
    return dof >= 1 && dof <= 15 && fabs(t) > t_critical[dof];
}

kd_stat kd_stat_paired(const double *a, const double *b, int n)
{
    double diff[256];
    KD_ASSERT(n >= 0 && n <= 256, "paired statistics over %d > 256 seeds", n);
    for (int i = 0; i < n; i++) diff[i] = b[i] - a[i];
    return kd_stat_of(diff, n);
}

double kd_pearson(const double *x, const double *y, int n)
{
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n, my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

typedef struct ranked {
    double value;
    int index;
} ranked;

static int by_value(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    return (x->value > y->value) - (x->value < y->value);
}

/* Ranks 1..n, ties sharing their mean rank. */
static void ranks(const double *v, int n, ranked *work, double *out)
{
    for (int i = 0; i < n; i++) work[i] = (ranked){v[i], i};
    qsort(work, (size_t)n, sizeof *work, by_value);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && work[j + 1].value == work[i].value) j++;
        double mean_rank = (i + j) / 2.0 + 1;
        for (int k = i; k <= j; k++) out[work[k].index] = mean_rank;
        i = j + 1;
    }
}

double kd_spearman(const double *x, const double *y, int n)
{
    if (n < 2) return NAN;
    ranked *work = malloc((size_t)n * sizeof *work);
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    double r = NAN;
    if (work && rx && ry) {
        ranks(x, n, work, rx);
        ranks(y, n, work, ry);
        r = kd_pearson(rx, ry, n);
    }
    free(work);
    free(rx);
    free(ry);
    return r;
}
