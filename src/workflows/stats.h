/* stats.h - summary statistics for results over seeds: mean, sample standard
 * deviation, and the paired difference of two runs that share seeds. */
#ifndef KD_STATS_H
#define KD_STATS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_stat {
    int n;
    double mean, sd; /* sd: sample standard deviation (n - 1), 0 when n < 2 */
} kd_stat;

kd_stat kd_stat_of(const double *values, int n);
/* Statistics of b[i] - a[i], i.e. of the differences paired by index (seed). */
kd_stat kd_stat_paired(const double *a, const double *b, int n);

/* Pearson's r of (x, y); NaN when either has no spread. */
double kd_pearson(const double *x, const double *y, int n);
/* Spearman's rho: Pearson's r of the ranks (ties share their mean rank). */
double kd_spearman(const double *x, const double *y, int n);

#ifdef __cplusplus
}
#endif
#endif
