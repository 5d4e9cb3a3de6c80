/* temperature.c - see temperature.h. */
#include "calib/temperature.h"

#include <math.h>
#include <string.h>

double kd_nll_beta(const float *logits, const int32_t *labels, int64_t n, int classes, double beta, double *d1,
                   double *d2)
{
    double f = 0.0, g = 0.0, h = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : f, g, h)
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        double max = z[0];
        for (int c = 1; c < classes; c++)
            if (z[c] > max) max = z[c];
        double sum = 0.0, ez = 0.0, ez2 = 0.0;
        for (int c = 0; c < classes; c++) {
            double d = (double)z[c] - max; /* <= 0: exp never overflows */
            double e = exp(beta * d);
            sum += e;
            ez += e * d;
            ez2 += e * d * d;
        }
        double mean = ez / sum; /* E_p[z] - max */
        double zy = (double)z[labels[i]] - max;
        f += log(sum) - beta * zy;
        g += mean - zy;
        h += ez2 / sum - mean * mean;
    }
    if (d1) *d1 = g / (double)n;
    if (d2) *d2 = h / (double)n;
    return f / (double)n;
}

static bool all_finite(const float *logits, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(logits[i])) return false;
    return true;
}

int kd_fit_temperature(const float *logits, const int32_t *labels, int64_t n, int classes, kd_temperature_fit *fit,
                       kd_error *err)
{
    memset(fit, 0, sizeof *fit);
    fit->temperature = 1.0;
    if (n < 1) return kd_error_set(err, KD_ERR_DATA, "temperature fit: expected at least one sample, found none");
    if (!all_finite(logits, (size_t)n * (size_t)classes))
        return kd_error_set(err, KD_ERR_DATA, "temperature fit: expected finite logits, found NaN or Inf");
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return kd_error_set(err, KD_ERR_DATA, "temperature fit: label %d of sample %lld is outside 0..%d",
                                (int)labels[i], (long long)i, classes - 1);
    double range = 0.0; /* mean logit range: the scale of NLL' */
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        double lo = z[0], hi = z[0];
        for (int c = 1; c < classes; c++) {
            if (z[c] < lo) lo = z[c];
            if (z[c] > hi) hi = z[c];
        }
        range += hi - lo;
    }
    range /= (double)n;
    fit->tolerance = 1e-6 * (range > 0 ? range : 1.0);
    double g, h;
    fit->nll_before = kd_nll_beta(logits, labels, n, classes, 1.0, &g, &h);
    fit->nll_after = fit->nll_before;
    fit->gradient = g;
    if (classes < 2 || range == 0.0) {
        fit->degenerate = true; /* NLL does not depend on T */
        return KD_OK;
    }
    double beta = 1.0, f = fit->nll_before, lo, hi;
    if (fabs(g) <= fit->tolerance) goto done;
    /* Bracket the root of NLL' with one evaluation at the bound on the side it points to. */
    double edge = g < 0 ? KD_BETA_MAX : KD_BETA_MIN, ge, he;
    double fe = kd_nll_beta(logits, labels, n, classes, edge, &ge, &he);
    fit->iterations = 1;
    if ((g < 0 && ge <= 0) || (g > 0 && ge >= 0)) { /* NLL still moving at the bound */
        beta = edge;
        f = fe;
        g = ge;
        fit->at_lower_bound = edge == KD_BETA_MAX; /* T at its lower bound */
        fit->at_upper_bound = edge == KD_BETA_MIN;
        goto done;
    }
    lo = g < 0 ? 1.0 : KD_BETA_MIN;
    hi = g < 0 ? KD_BETA_MAX : 1.0;
    while (fabs(g) > fit->tolerance && fit->iterations < KD_FIT_MAX_ITERATIONS && hi - lo > 1e-15 * hi) {
        double next = h > 0 ? beta - g / h : NAN; /* Newton */
        if (!(next > lo && next < hi)) next = sqrt(lo * hi); /* else geometric bisection */
        beta = next;
        f = kd_nll_beta(logits, labels, n, classes, beta, &g, &h);
        fit->iterations++;
        if (g > 0) hi = beta;
        else lo = beta;
    }
done:
    fit->temperature = 1.0 / beta;
    fit->nll_after = f;
    fit->gradient = g;
    return KD_OK;
}
