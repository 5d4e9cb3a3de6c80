/* stats.h - summary statistics for results over seeds: mean, sample standard
 * deviation, and the paired difference of two runs that share seeds. */
#ifndef KD_STATS_H
#define KD_STATS_H

#include <stdbool.h>

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

/* The two-sided 95 % critical value of Student's t for dof = 1..15 degrees of freedom;
 * NaN outside that range. */
double kd_stat_t_critical(int dof);
/* A paired t-test of a mean difference d against 0 at 95 % (two-sided): *t gets
 * t = mean / (sd / sqrt(n)), and the verdict is "beyond seed noise" when |t| exceeds
 * the critical value for n - 1 degrees of freedom, else "within seed noise"; with
 * fewer than 2 or more than 16 seeds "not tested (needs 2 to 16 seeds)" and t = NaN. */
const char *kd_stat_verdict(kd_stat d, double *t);
/* True when kd_stat_verdict(d) says "beyond seed noise". */
bool kd_stat_beyond_noise(kd_stat d);

/* Pearson's r of (x, y); NaN when either has no spread. */
double kd_pearson(const double *x, const double *y, int n);
/* Spearman's rho: Pearson's r of the ranks (ties share their mean rank). */
double kd_spearman(const double *x, const double *y, int n);

#ifdef __cplusplus
}
#endif
#endif
