/* platt.c - see platt.h. */
#include "calib/platt.h"

#include "calib/binning.h"
#include "core/vexp.h"

#include <math.h>
#include <stdbool.h>

#define PLATT_MAX_ITERATIONS 100
#define PLATT_TOLERANCE 1e-12
#define PLATT_MAX_HALVINGS 60 /* t down to 2^-60: a step that small changes nothing */

static double platt_logit(double p)
{
    double q = p < KD_PLATT_EPS ? KD_PLATT_EPS : p > 1.0 - KD_PLATT_EPS ? 1.0 - KD_PLATT_EPS : p;
    return log(q / (1.0 - q));
}

/* The sums of one pass over the rows at s_i = a x_i + b:
 *   loss = sum [log(1 + e^s) - y s]   (only when asked: it costs a log a row)
 *   g = sum (sigma(s) - y) (x, 1),  h = sum sigma(s)(1 - sigma(s)) (x^2, x, 1). */
typedef struct pass {
    double loss, g0, g1, h00, h01, h11;
    bool has_loss;
} pass;

static pass pass_scalar(const double *x, const double *y, int64_t m, double a, double b, bool loss, bool grad)
{
    pass r = {0, 0, 0, 0, 0, 0, loss};
    for (int64_t i = 0; i < m; i++) {
        double s = a * x[i] + b, e = exp(-fabs(s)); /* e^-|s|: never overflows */
        if (loss) r.loss += (s > 0 ? s : 0.0) + log1p(e) - y[i] * s;
        if (!grad) continue;
        double sigma = s >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e), d = sigma - y[i], v = sigma * (1.0 - sigma);
        r.g0 += d * x[i];
        r.g1 += d;
        r.h00 += v * x[i] * x[i];
        r.h01 += v * x[i];
        r.h11 += v;
    }
    return r;
}

static void logits_scalar(const double *p, int64_t n, double *x)
{
    for (int64_t i = 0; i < n; i++) x[i] = platt_logit(p[i]);
}

static void outputs_scalar(double a, double b, const double *x, int64_t n, double *g)
{
    for (int64_t i = 0; i < n; i++) g[i] = 1.0 / (1.0 + exp(-(a * x[i] + b)));
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static inline __mmask8 tail_mask(int64_t left)
{
    return left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1);
}

/* 1/u for u in [1, 2]: the 14-bit estimate refined by two Newton steps (2^-14 to
 * 2^-28 to 2^-56 relative, then rounding: within a few ulp), a fraction of a divide's
 * time, which would bound the passes below. */
KD_TARGET_AVX512 static inline __m512d recip(__m512d u)
{
    const __m512d two = _mm512_set1_pd(2.0);
    __m512d r = _mm512_rcp14_pd(u);
    r = _mm512_mul_pd(r, _mm512_fnmadd_pd(u, r, two));
    return _mm512_mul_pd(r, _mm512_fnmadd_pd(u, r, two));
}

/* The same sums, eight rows a lane each (lanes past m masked to 0), added across the
 * lanes at the end. log1p(e) = log(u) - ((u - 1) - e)/u with u = 1 + e: the rounding of
 * u corrected to first order. sigma = (1 or e)/u. */
KD_TARGET_AVX512 static pass pass_avx512(const double *x, const double *y, int64_t m, double a, double b, bool loss,
                                         bool grad)
{
    const __m512d va = _mm512_set1_pd(a), vb = _mm512_set1_pd(b), one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
    __m512d l = zero, g0 = zero, g1 = zero, h00 = zero, h01 = zero, h11 = zero;
    for (int64_t i = 0; i < m; i += 8) {
        __mmask8 k = tail_mask(m - i);
        __m512d xv = _mm512_maskz_loadu_pd(k, x + i), yv = _mm512_maskz_loadu_pd(k, y + i);
        __m512d s = _mm512_add_pd(_mm512_mul_pd(va, xv), vb);
        __m512d e = kd_exp_pd(_mm512_sub_pd(zero, _mm512_abs_pd(s))), u = _mm512_add_pd(one, e), inv_u = recip(u);
        if (loss) {
            __m512d log1p_e = _mm512_sub_pd(kd_log_pd(u), _mm512_mul_pd(_mm512_sub_pd(_mm512_sub_pd(u, one), e), inv_u));
            __m512d term = _mm512_sub_pd(_mm512_add_pd(_mm512_max_pd(s, zero), log1p_e), _mm512_mul_pd(yv, s));
            l = _mm512_add_pd(l, _mm512_maskz_mov_pd(k, term));
        }
        if (!grad) continue;
        __mmask8 positive = _mm512_cmp_pd_mask(s, zero, _CMP_GE_OQ);
        __m512d sigma = _mm512_mul_pd(_mm512_mask_blend_pd(positive, e, one), inv_u);
        __m512d d = _mm512_maskz_sub_pd(k, sigma, yv), v = _mm512_maskz_mul_pd(k, sigma, _mm512_sub_pd(one, sigma));
        __m512d vx = _mm512_mul_pd(v, xv);
        g0 = _mm512_add_pd(g0, _mm512_mul_pd(d, xv));
        g1 = _mm512_add_pd(g1, d);
        h00 = _mm512_add_pd(h00, _mm512_mul_pd(vx, xv));
        h01 = _mm512_add_pd(h01, vx);
        h11 = _mm512_add_pd(h11, v);
    }
    return (pass){_mm512_reduce_add_pd(l),   _mm512_reduce_add_pd(g0),  _mm512_reduce_add_pd(g1),
                  _mm512_reduce_add_pd(h00), _mm512_reduce_add_pd(h01), _mm512_reduce_add_pd(h11), loss};
}

KD_TARGET_AVX512 static void logits_avx512(const double *p, int64_t n, double *x)
{
    const __m512d lo = _mm512_set1_pd(KD_PLATT_EPS), hi = _mm512_set1_pd(1.0 - KD_PLATT_EPS), one = _mm512_set1_pd(1.0);
    for (int64_t i = 0; i < n; i += 8) {
        __mmask8 k = tail_mask(n - i);
        __m512d q = _mm512_min_pd(_mm512_max_pd(_mm512_mask_loadu_pd(lo, k, p + i), lo), hi);
        _mm512_mask_storeu_pd(x + i, k, kd_log_pd(_mm512_div_pd(q, _mm512_sub_pd(one, q))));
    }
}

/* sigmoid(s) = 1/(1 + e) for s >= 0, e/(1 + e) below, e = e^-|s| (0 at s = +-inf). */
KD_TARGET_AVX512 static void outputs_avx512(double a, double b, const double *x, int64_t n, double *g)
{
    const __m512d va = _mm512_set1_pd(a), vb = _mm512_set1_pd(b), one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        __mmask8 k = tail_mask(n - i);
        __m512d s = _mm512_add_pd(_mm512_mul_pd(va, _mm512_maskz_loadu_pd(k, x + i)), vb);
        __m512d e = kd_exp_pd(_mm512_sub_pd(zero, _mm512_abs_pd(s)));
        __mmask8 positive = _mm512_cmp_pd_mask(s, zero, _CMP_GE_OQ);
        _mm512_mask_storeu_pd(g + i, k, _mm512_div_pd(_mm512_mask_blend_pd(positive, e, one), _mm512_add_pd(one, e)));
    }
}
#endif

static pass run_pass(const double *x, const double *y, int64_t m, double a, double b, bool loss, bool grad)
{
#if KD_HAVE_AVX512_VARIANTS
    if (kd_cpu_has_avx512()) return pass_avx512(x, y, m, a, b, loss, grad);
#endif
    return pass_scalar(x, y, m, a, b, loss, grad);
}

void kd_platt_logits(const double *p, int64_t n, double *x)
{
#if KD_HAVE_AVX512_VARIANTS
    if (kd_cpu_has_avx512()) {
        logits_avx512(p, n, x);
        return;
    }
#endif
    logits_scalar(p, n, x);
}

void kd_platt_outputs(double a, double b, const double *x, int64_t n, double *g)
{
#if KD_HAVE_AVX512_VARIANTS
    if (kd_cpu_has_avx512()) {
        outputs_avx512(a, b, x, n, g);
        return;
    }
#endif
    outputs_scalar(a, b, x, n, g);
}

/* Newton's method from (a, b) = (1, 0) (g(p) = p but for the clip) on the convex mean
 * logistic loss L: the full step once the Newton decrement g'H^-1 g is below 1e-8 (the
 * quadratic region; the loss, a log a row, is then not computed at all), else
 * backtracking to Armijo's condition. A Hessian that is singular to 1e-12 (every x
 * equal: only a x + b matters) moves b alone. */
int kd_platt_fit(const double *x, const double *y, int64_t m, double *ab)
{
    double a = 1.0, b = 0.0, positives = 0.0, n = (double)m;
    for (int64_t i = 0; i < m; i++) positives += y[i];
    if (positives == 0.0 || positives == n) { /* no optimum: the limit is g = 0 or 1 */
        ab[0] = 0.0, ab[1] = positives == 0.0 ? -INFINITY : INFINITY;
        return 0;
    }
    /* A pass gives the loss with the gradient (one exp a row for both) while the steps
     * are damped: the accepted trial's pass is then the next step's. */
    pass r = run_pass(x, y, m, a, b, true, true);
    for (int it = 0; it < PLATT_MAX_ITERATIONS; it++) {
        double g[2] = {r.g0 / n, r.g1 / n}, h[3] = {r.h00 / n, r.h01 / n, r.h11 / n};
        if (fabs(g[0]) <= PLATT_TOLERANCE && fabs(g[1]) <= PLATT_TOLERANCE) {
            ab[0] = a, ab[1] = b;
            return it;
        }
        double det = h[0] * h[2] - h[1] * h[1], da, db;
        if (det > 1e-12 * h[0] * h[2]) {
            da = -(h[2] * g[0] - h[1] * g[1]) / det;
            db = -(h[0] * g[1] - h[1] * g[0]) / det;
        } else if (h[2] > 0) {
            da = 0.0, db = -g[1] / h[2];
        } else {
            break; /* every sigma saturated */
        }
        double decrement = -(g[0] * da + g[1] * db), t = 1.0;
        bool have = false;
        bool damped = decrement >= 1e-8;
        if (damped) {
            double loss = (r.has_loss ? r : run_pass(x, y, m, a, b, true, false)).loss / n;
            for (int halving = 0; halving < PLATT_MAX_HALVINGS; halving++, t *= 0.5) {
                r = run_pass(x, y, m, a + t * da, b + t * db, true, true);
                if (r.loss / n <= loss - 1e-4 * t * decrement) {
                    have = true;
                    break;
                }
            }
        }
        a += t * da;
        b += t * db;
        if (!have) r = run_pass(x, y, m, a, b, damped, true);
    }
    ab[0] = a, ab[1] = b;
    return -1;
}
