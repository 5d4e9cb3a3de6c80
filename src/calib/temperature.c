/* temperature.c - see temperature.h. */
#include "calib/temperature.h"

#include "core/vexp.h"

#include <math.h>
#include <string.h>

/* One row's contribution: log(sum) - beta zy, E_p[z] - zy and Var_p[z], all
 * relative to the row maximum (so exp never overflows). */
typedef struct row_terms {
    double f, g, h, k; /* NLL but its log(s) term, and its first three derivatives in beta */
    double s;          /* sum of exp(beta (z - max)), >= 1: its log completes f */
} row_terms;

static row_terms finish_row(double beta, double zy, double s, double ez, double ez2, double ez3)
{
    double mean = ez / s, m2 = ez2 / s, m3 = ez3 / s;
    return (row_terms){-beta * zy, mean - zy, m2 - mean * mean, m3 - 3 * mean * m2 + 2 * mean * mean * mean, s};
}

static row_terms row_scalar(const float *z, int classes, int label, double beta)
{
    double max = z[0];
    for (int c = 1; c < classes; c++)
        if (z[c] > max) max = z[c];
    double sum = 0.0, ez = 0.0, ez2 = 0.0, ez3 = 0.0;
    for (int c = 0; c < classes; c++) {
        double d = (double)z[c] - max; /* <= 0 */
        double e = exp(beta * d);
        sum += e;
        ez += e * d;
        ez2 += e * d * d;
        ez3 += e * d * d * d;
    }
    return finish_row(beta, (double)z[label] - max, sum, ez, ez2, ez3);
}

#if KD_HAVE_AVX512_VARIANTS
/* The same row terms, 8 classes at a time. */
KD_TARGET_AVX512 static row_terms row_avx512(const float *z, int classes, int label, double beta)
{
    double max = z[0];
    for (int c = 1; c < classes; c++)
        if (z[c] > max) max = z[c];
    __m512d vmax = _mm512_set1_pd(max), vbeta = _mm512_set1_pd(beta);
    __m512d sum = _mm512_setzero_pd(), ez = _mm512_setzero_pd(), ez2 = _mm512_setzero_pd(), ez3 = _mm512_setzero_pd();
    for (int c = 0; c < classes; c += 8) {
        int left = classes - c;
        __mmask8 m = left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1);
        __m256 zf = _mm256_maskz_loadu_ps(m, z + c);
        __m512d d = _mm512_maskz_sub_pd(m, _mm512_cvtps_pd(zf), vmax);
        __m512d e = _mm512_maskz_mov_pd(m, kd_exp_pd(_mm512_mul_pd(vbeta, d)));
        sum = _mm512_add_pd(sum, e);
        __m512d ed = _mm512_mul_pd(e, d), edd = _mm512_mul_pd(ed, d);
        ez = _mm512_add_pd(ez, ed);
        ez2 = _mm512_add_pd(ez2, edd);
        ez3 = _mm512_fmadd_pd(edd, d, ez3);
    }
    double s = _mm512_reduce_add_pd(sum);
    return finish_row(beta, (double)z[label] - max, s, _mm512_reduce_add_pd(ez), _mm512_reduce_add_pd(ez2),
                      _mm512_reduce_add_pd(ez3));
}
#endif

static double nll_terms(const float *logits, const int32_t *labels, int64_t n, int classes, double beta, double *d1,
                        double *d2, double *d3)
{
    row_terms (*row)(const float *, int, int, double) = row_scalar;
#if KD_HAVE_AVX512_VARIANTS
    if (kd_cpu_has_avx512()) row = row_avx512; /* about 4x fewer cycles a row */
#endif
    double f = 0.0, g = 0.0, h = 0.0, k = 0.0;
    /* sum_i log(s_i) as the log of a product kept in range with frexp: one log per
     * thread instead of one a row */
#pragma omp parallel reduction(+ : f, g, h, k)
    {
        double product = 1.0;
        long exponent = 0;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            row_terms t = row(logits + (size_t)i * (size_t)classes, classes, labels[i], beta);
            f += t.f;
            g += t.g;
            h += t.h;
            k += t.k;
            product *= t.s; /* s >= 1: the product only grows */
            if (product > 0x1p800) {
                int e;
                product = frexp(product, &e);
                exponent += e;
            }
        }
        f += log(product) + (double)exponent * 0.69314718055994530942;
    }
    if (d1) *d1 = g / (double)n;
    if (d2) *d2 = h / (double)n;
    if (d3) *d3 = k / (double)n;
    return f / (double)n;
}

double kd_temperature_nll(const float *logits, const int32_t *labels, int64_t n, int classes, double beta, double *d1,
                   double *d2)
{
    return nll_terms(logits, labels, n, classes, beta, d1, d2, NULL);
}

/* One pass over the inputs: finite logits and valid labels (else an error), the
 * mean logit range, and whether the data are separable. */
static int scan_logits(const float *logits, const int32_t *labels, int64_t n, int classes, double *range, bool *separable,
                       kd_error *err)
{
    double total = 0.0;
    bool sep = true;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        if (labels[i] < 0 || labels[i] >= classes)
            return kd_error_set(err, KD_ERR_DATA, "temperature fit: label %d of sample %lld is outside 0..%d", (int)labels[i],
                                (long long)i, classes - 1);
        float lo = z[0], hi = z[0], zy = z[labels[i]];
        bool finite = true;
        for (int c = 0; c < classes; c++) {
            finite &= isfinite(z[c]) != 0;
            lo = z[c] < lo ? z[c] : lo;
            hi = z[c] > hi ? z[c] : hi;
        }
        if (!finite) return kd_error_set(err, KD_ERR_DATA, "temperature fit: expected finite logits, found NaN or Inf");
        sep &= zy >= hi;
        total += (double)hi - lo;
    }
    *range = total / (double)n;
    *separable = sep;
    return KD_OK;
}

int kd_temperature_solve(const float *logits, const int32_t *labels, int64_t n, int classes, kd_temperature_fit *fit,
                       kd_error *err)
{
    memset(fit, 0, sizeof *fit);
    fit->temperature = 1.0;
    if (n < 1) return kd_error_set(err, KD_ERR_DATA, "temperature fit: expected at least one sample, found none");
    double range = 0.0; /* mean logit range: the scale of NLL' */
    bool separable = true; /* every label's logit is a largest one: NLL falls for every beta */
    int rc = scan_logits(logits, labels, n, classes, &range, &separable, err);
    if (rc) return rc;
    fit->tolerance = 1e-6 * (range > 0 ? range : 1.0);
    double g, h, k;
    fit->nll_before = nll_terms(logits, labels, n, classes, 1.0, &g, &h, &k);
    fit->nll_after = fit->nll_before;
    fit->gradient = g;
    if (classes < 2 || range == 0.0) {
        fit->degenerate = true; /* NLL does not depend on T */
        return KD_OK;
    }
    /* The root of NLL' lies in [lo, hi]. A bound's sign is checked only when a step
     * heads past it: NLL still falling at beta = 1e3 means separable data. */
    double beta = 1.0, f = fit->nll_before, lo = KD_BETA_MIN, hi = KD_BETA_MAX;
    bool lo_checked = false, hi_checked = false;
    if (separable) {
        beta = KD_BETA_MAX;
        f = nll_terms(logits, labels, n, classes, beta, &g, &h, &k);
        fit->iterations = 1;
        fit->at_lower_bound = true;
        goto done;
    }
    while (fabs(g) > fit->tolerance && fit->iterations < KD_FIT_MAX_ITERATIONS && hi - lo > 1e-15 * hi) {
        if (g > 0) hi = beta, hi_checked = true;
        else lo = beta, lo_checked = true;
        /* Halley's step (the third derivative comes with the same pass), Newton's where unsafe */
        double denom = 2 * h * h - g * k;
        double next = h > 0 ? (denom > 0 ? beta - 2 * g * h / denom : beta - g / h) : NAN;
        if (!(next > lo && next < hi)) {
            bool up = g < 0;
            if (up ? !hi_checked : !lo_checked) {
                double edge = up ? KD_BETA_MAX : KD_BETA_MIN, ge, he, ke;
                double fe = nll_terms(logits, labels, n, classes, edge, &ge, &he, &ke);
                fit->iterations++;
                if (up ? ge <= 0 : ge >= 0) { /* NLL still moving at the bound */
                    beta = edge, f = fe, g = ge;
                    fit->at_lower_bound = up; /* T = 1 / beta at its lower bound */
                    fit->at_upper_bound = !up;
                    goto done;
                }
                if (up) hi_checked = true;
                else lo_checked = true;
            }
            next = sqrt(lo * hi); /* geometric bisection */
        }
        beta = next;
        f = nll_terms(logits, labels, n, classes, beta, &g, &h, &k);
        fit->iterations++;
    }
done:
    fit->temperature = 1.0 / beta;
    fit->nll_after = f;
    fit->gradient = g;
    return KD_OK;
}

const char *kd_temperature_describe(double temperature)
{
    if (temperature > 1) return "overconfident";
    if (temperature < 1) return "underconfident";
    if (temperature == 1) return "calibrated";
    return "not fitted"; /* NaN */
}
