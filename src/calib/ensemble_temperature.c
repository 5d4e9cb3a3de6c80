/* ensemble_temperature.c - see ensemble_temperature.h. */
#include "calib/ensemble_temperature.h"

#include "calib/temperature.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ETS_MAX_ITERATIONS 100

/* NLL at w from q (n, 3), with its gradient g[3] and Hessian h[3][3] (if g):
 *   f = -mean log p_i,  p_i = w . q_i,  df/dw_j = -mean q_ij / p_i,
 *   d2f/dw_j dw_k = mean q_ij q_ik / p_i^2  (positive semidefinite). */
static double ets_nll(const double *q, int64_t n, const double w[3], double g[3], double h[3][3])
{
    double f = 0.0, s[3] = {0}, t[3][3] = {{0}};
    for (int64_t i = 0; i < n; i++) {
        const double *qi = q + 3 * (size_t)i;
        double p = w[0] * qi[0] + w[1] * qi[1] + w[2] * qi[2];
        f -= log(p);
        if (!g) continue;
        double r[3] = {qi[0] / p, qi[1] / p, qi[2] / p};
        for (int j = 0; j < 3; j++) {
            s[j] += r[j];
            for (int k = j; k < 3; k++) t[j][k] += r[j] * r[k];
        }
    }
    if (g)
        for (int j = 0; j < 3; j++) {
            g[j] = -s[j] / (double)n;
            for (int k = j; k < 3; k++) h[j][k] = h[k][j] = t[j][k] / (double)n;
        }
    return f / (double)n;
}

/* The Newton direction d (3) inside the face of the free weights: minimises
 * g.d + d'Hd/2 with sum d = 0 and d_j = 0 off the face, in the basis
 * z_i = e_free[i] - e_free[last]. A ridge of 1e-13 of the diagonal keeps a singular
 * reduced Hessian (two equal columns of q: T = 1) solvable. */
static void newton_direction(const double g[3], double h[3][3], const bool free_[3], double d[3])
{
    int f[3], nf = 0;
    for (int j = 0; j < 3; j++)
        if (free_[j]) f[nf++] = j;
    d[0] = d[1] = d[2] = 0.0;
    if (nf < 2) return;
    int last = f[nf - 1], m = nf - 1; /* reduced dimension, 1 or 2 */
    double rg[2], rh[2][2];
    for (int a = 0; a < m; a++) {
        rg[a] = g[f[a]] - g[last];
        for (int b = 0; b < m; b++) rh[a][b] = h[f[a]][f[b]] - h[f[a]][last] - h[last][f[b]] + h[last][last];
    }
    double u[2];
    if (m == 1) {
        double r = rh[0][0] + 1e-13 * (h[f[0]][f[0]] + h[last][last]);
        u[0] = r > 0 ? -rg[0] / r : 0.0;
    } else {
        double ridge = 1e-13 * (rh[0][0] + rh[1][1]);
        double a = rh[0][0] + ridge, b = rh[0][1], c = rh[1][1] + ridge, det = a * c - b * b;
        if (!(det > 0)) return;
        u[0] = -(c * rg[0] - b * rg[1]) / det;
        u[1] = -(a * rg[1] - b * rg[0]) / det;
    }
    for (int a = 0; a < m; a++) d[f[a]] += u[a], d[last] -= u[a];
}

/* The largest KKT violation: |g_j + 1| where w_j > 0, max(0, -1 - g_j) where w_j = 0. */
static double kkt_violation(const double w[3], const double g[3])
{
    double worst = 0.0;
    for (int j = 0; j < 3; j++) {
        double v = w[j] > 0 ? fabs(g[j] + 1.0) : fmax(0.0, -1.0 - g[j]);
        worst = fmax(worst, v);
    }
    return worst;
}

/* Minimises the NLL over the simplex; w in (start) and out; returns the steps. */
static int solve_weights(const double *q, int64_t n, double w[3], double *nll, double *kkt)
{
    bool free_[3] = {w[0] > 0, w[1] > 0, w[2] > 0};
    double g[3], h[3][3], d[3];
    double f = ets_nll(q, n, w, g, h);
    int it = 0;
    for (; it < ETS_MAX_ITERATIONS; it++) {
        newton_direction(g, h, free_, d);
        double decrement = -(g[0] * d[0] + g[1] * d[1] + g[2] * d[2]);
        if (!(decrement > 1e-24)) { /* the minimum of this face: may a weight at 0 re-enter? */
            int enter = -1;
            double best = -1.0 - 1e-12; /* -1: every free weight's gradient at a face minimum */
            for (int j = 0; j < 3; j++)
                if (!free_[j] && g[j] < best) best = g[j], enter = j;
            if (enter < 0) break;
            free_[enter] = true;
            continue;
        }
        /* the longest step that keeps every weight >= 0, and the weight it zeroes */
        double tmax = 1.0;
        int blocking = -1;
        for (int j = 0; j < 3; j++)
            if (free_[j] && d[j] < 0 && -w[j] / d[j] <= tmax) tmax = -w[j] / d[j], blocking = j;
        /* the full step in the quadratic region (decrement < 1e-8), where the NLL's change
         * is near the rounding of its sum; else backtracking to Armijo's condition */
        double t = tmax, trial[3];
        for (int tries = 0;; tries++, t *= 0.5) {
            for (int j = 0; j < 3; j++) trial[j] = w[j] + t * d[j];
            if (blocking >= 0 && t == tmax) trial[blocking] = 0.0;
            if (decrement < 1e-8 || ets_nll(q, n, trial, NULL, NULL) <= f - 1e-4 * t * decrement) break;
            if (tries == 60) goto done; /* no decrease at the precision of the sums */
        }
        if (blocking >= 0 && t == tmax) free_[blocking] = false;
        double sum = 0.0;
        for (int j = 0; j < 3; j++) sum += (w[j] = trial[j] < 0 ? 0.0 : trial[j]);
        for (int j = 0; j < 3; j++) w[j] /= sum; /* on the simplex despite rounding */
        f = ets_nll(q, n, w, g, h);
    }
done:
    *nll = f;
    *kkt = kkt_violation(w, g);
    return it;
}

/* Row i's q: the label's probability under softmax(z / T) and softmax(z), and 1 / C. */
static void label_probabilities(const float *logits, const int32_t *labels, int64_t n, int classes, double T, double *q)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        double max = z[0];
        for (int c = 1; c < classes; c++)
            if (z[c] > max) max = z[c];
        double s1 = 0.0, s2 = 0.0;
        for (int c = 0; c < classes; c++) {
            s1 += exp(((double)z[c] - max) / T);
            s2 += exp((double)z[c] - max);
        }
        double dy = (double)z[labels[i]] - max;
        q[3 * i] = exp(dy / T) / s1;
        q[3 * i + 1] = exp(dy) / s2;
        q[3 * i + 2] = 1.0 / classes;
    }
}

int kd_ets_fit(kd_ets *e, const float *logits, const int32_t *labels, int64_t n, int classes, kd_error *err)
{
    memset(e, 0, sizeof *e);
    e->temperature = 1.0;
    e->weight[0] = 1.0;
    kd_temperature_fit fit;
    int rc = kd_temperature_solve(logits, labels, n, classes, &fit, err); /* checks the logits and labels too */
    if (rc) return rc;
    e->temperature = fit.temperature;
    double *q = malloc((size_t)n * 3 * sizeof *q); /* (n, 3) */
    if (!q) return kd_error_set(err, KD_ERR_IO, "ensemble temperature scaling: out of memory for %lld rows", (long long)n);
    label_probabilities(logits, labels, n, classes, e->temperature, q);
    double w1[3] = {1.0, 0.0, 0.0}, unused[3], h[3][3];
    e->nll_temperature_only = ets_nll(q, n, w1, unused, h);
    double w[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3}; /* the centre: every p_i > 0 */
    e->iterations = solve_weights(q, n, w, &e->nll, &e->kkt);
    memcpy(e->weight, w, sizeof w);
    free(q);
    return KD_OK;
}

void kd_ets_apply(const kd_ets *e, const float *logits, int64_t n, int classes, double *probs)
{
    double T = e->temperature, u = e->weight[2] / classes;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        double *p = probs + (size_t)i * (size_t)classes; /* (classes) */
        double max = z[0];
        for (int c = 1; c < classes; c++)
            if (z[c] > max) max = z[c];
        double s1 = 0.0, s2 = 0.0;
        for (int c = 0; c < classes; c++) {
            s1 += exp(((double)z[c] - max) / T);
            s2 += exp((double)z[c] - max);
        }
        for (int c = 0; c < classes; c++) {
            double d = (double)z[c] - max;
            p[c] = e->weight[0] * exp(d / T) / s1 + e->weight[1] * exp(d) / s2 + u;
        }
    }
}
