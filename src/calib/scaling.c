/* scaling.c - see scaling.h: the inputs checked, the features, the cross-validation
 * of the ODIR strength, the fit and its application. The objective and the solvers
 * are in scaling_solve.c. */
#include "calib/scaling.h"

#include "calib/scaling_internal.h"
#include "calib/temperature.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double default_grid[] = {0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0};

void kd_scaling_options_default(kd_scaling_options *o)
{
    memset(o, 0, sizeof *o);
    o->folds = 5;
    o->seed = 0x5ca1ab1eULL;
    o->tolerance = 1e-9;
    o->max_iterations = 0; /* the solver's own: 100 Newton, 5000 L-BFGS iterations */
    o->newton_max_parameters = 1500;
}

const char *kd_scaling_name(kd_scaling_kind kind)
{
    switch (kind) {
    case KD_SCALING_VECTOR: return "vector";
    case KD_SCALING_MATRIX: return "matrix";
    case KD_SCALING_DIRICHLET: return "dirichlet";
    }
    return "unknown";
}

void kd_scaling_free(kd_scaling *s)
{
    free(s->weight);
    free(s->bias);
    s->weight = s->bias = NULL;
}

typedef struct keyed {
    uint64_t key;
    int64_t row;
} keyed;

static int keyed_compare(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

int kd_scaling_folds(int64_t n, int folds, uint64_t seed, int32_t *fold, kd_error *err)
{
    keyed *order = malloc((size_t)n * sizeof *order);
    if (!order) return kd_error_set(err, KD_ERR_DATA, "scaling folds: cannot allocate the order of %lld samples", (long long)n);
    for (int64_t i = 0; i < n; i++) order[i] = (keyed){kd_rng_at(seed, (uint64_t)i), i};
    qsort(order, (size_t)n, sizeof *order, keyed_compare);
    for (int64_t t = 0; t < n; t++) fold[order[t].row] = (int32_t)(t % folds);
    free(order);
    return KD_OK;
}

/* The features in double, (n, C): z, or log softmax(z) for Dirichlet calibration
 * (z - max - log sum exp(z - max): the log of a probability without forming it). */
static void features(kd_scaling_kind kind, const float *logits, int64_t n, int C, double *x)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * C;
        double *xi = x + (size_t)i * C;
        for (int k = 0; k < C; k++) xi[k] = (double)z[k];
        if (kind != KD_SCALING_DIRICHLET) continue;
        double max = xi[0], sum = 0.0;
        for (int k = 1; k < C; k++) max = xi[k] > max ? xi[k] : max;
        for (int k = 0; k < C; k++) sum += exp(xi[k] - max);
        double lse = max + log(sum);
        for (int k = 0; k < C; k++) xi[k] -= lse;
    }
}

static int check_inputs(kd_scaling_kind kind, const float *logits, const int32_t *labels, int64_t n, int C,
                        const kd_scaling_options *o, kd_error *err)
{
    const char *name = kd_scaling_name(kind);
    if (kind != KD_SCALING_VECTOR && kind != KD_SCALING_MATRIX && kind != KD_SCALING_DIRICHLET)
        return kd_error_set(err, KD_ERR_CONFIG, "scaling fit: unknown kind %d", (int)kind);
    if (C < 2) return kd_error_set(err, KD_ERR_DATA, "%s scaling: expected at least 2 classes, found %d", name, C);
    if (n < 2) return kd_error_set(err, KD_ERR_DATA, "%s scaling: expected at least 2 samples, found %lld", name, (long long)n);
    if (o->folds < 0 || o->n_grid < 0 || o->n_grid > KD_SCALING_MAX_GRID)
        return kd_error_set(err, KD_ERR_CONFIG, "%s scaling: expected folds >= 0 and 0 <= n_grid <= %d, found %d and %d",
                            name, KD_SCALING_MAX_GRID, o->folds, o->n_grid);
    if (!(o->tolerance > 0.0) || o->max_iterations < 0)
        return kd_error_set(err, KD_ERR_CONFIG, "%s scaling: expected tolerance > 0 and max_iterations >= 0, found %g and %d",
                            name, o->tolerance, o->max_iterations);
    for (int g = 0; g < o->n_grid; g++)
        if (!(o->grid[g] >= 0.0) || !isfinite(o->grid[g]))
            return kd_error_set(err, KD_ERR_CONFIG, "%s scaling: expected strengths >= 0, found grid[%d] = %g", name, g,
                                o->grid[g]);
    if (kind != KD_SCALING_VECTOR && o->folds < 2 &&
        (!(o->lambda >= 0.0) || !(o->mu >= 0.0) || !isfinite(o->lambda) || !isfinite(o->mu)))
        return kd_error_set(err, KD_ERR_CONFIG, "%s scaling: expected lambda, mu >= 0, found %g and %g", name, o->lambda,
                            o->mu);
    if (kind != KD_SCALING_VECTOR && o->folds >= 2 && n < o->folds)
        return kd_error_set(err, KD_ERR_DATA, "%s scaling: expected at least %d samples for %d-fold cross-validation, found %lld",
                            name, o->folds, o->folds, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= C)
            return kd_error_set(err, KD_ERR_DATA, "%s scaling: label %d of sample %lld is outside 0..%d", name,
                                (int)labels[i], (long long)i, C - 1);
        for (int k = 0; k < C; k++)
            if (!isfinite(logits[(size_t)i * C + k]))
                return kd_error_set(err, KD_ERR_DATA, "%s scaling: expected finite logits, found %g at sample %lld class %d",
                                    name, (double)logits[(size_t)i * C + k], (long long)i, k);
    }
    return KD_OK;
}

/* The start of every fit: temperature scaling's optimum, W = I / T (w = 1 / T), b = 0,
 * which is one of the family (for Dirichlet calibration too: W log softmax(z) = z / T
 * minus a constant per row) and much nearer the optimum than the identity, so the
 * solvers take fewer steps (measured: see docs/ARCHITECTURE.md). Without an
 * off-diagonal penalty the columns of W have a null direction (W_kj + c_j for every k
 * leaves the softmax alone); the start is moved along it to keep the identity's sums
 * sum_k W_kj = 1, which the solvers preserve, so the reported optimum is the one scipy
 * reaches from the identity. T = 1 (the identity) when the temperature fit fails or
 * says nothing (degenerate data, T at a bound). */
static void start_point(kd_scaling_kind kind, int C, double temperature, double lambda, double *theta)
{
    kd_scaling_identity(kind, C, theta);
    const double beta = 1.0 / temperature;
    if (kind == KD_SCALING_VECTOR) {
        for (int k = 0; k < C; k++) theta[k] = beta;
        return;
    }
    const double shift = lambda == 0.0 ? (1.0 - beta) / C : 0.0;
    for (int k = 0; k < C; k++)
        for (int j = 0; j < C; j++) theta[k * (C + 1) + j] = (j == k ? beta : 0.0) + shift;
}

static double start_temperature(const float *logits, const int32_t *labels, int64_t n, int C)
{
    kd_temperature_fit t;
    kd_error ignored;
    if (kd_temperature_solve(logits, labels, n, C, &t, &ignored) != KD_OK || t.degenerate || t.at_lower_bound ||
        t.at_upper_bound || !(t.temperature > 0.0) || !isfinite(t.temperature))
        return 1.0;
    return t.temperature;
}

/* Rows of x and y whose fold is (held) or is not (!held) f, in row order. */
static int64_t gather(const double *x, const int32_t *y, const int32_t *fold, int64_t n, int C, int f, bool held,
                      double *xo, int32_t *yo)
{
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if ((fold[i] == f) != held) continue;
        memcpy(xo + (size_t)m * C, x + (size_t)i * C, (size_t)C * sizeof *xo);
        yo[m++] = y[i];
    }
    return m;
}

/* k-fold cross-validation of mu = lambda over the grid: for each fold, the fits along
 * the grid in its order, each started from the previous one's optimum (the first from
 * start_point), and the mean NLL of the held-out fold. cv_nll[g] is the mean over the
 * folds of those means; the chosen strength has the least, a tie (within 1e-12
 * relative) going to the larger strength. */
static int cross_validate(kd_scaling *s, const kd_scaling_problem *all, const kd_scaling_options *o, double temperature,
                          double *chosen, kd_error *err)
{
    const int C = all->classes, k = o->folds, P = kd_scaling_parameter_count(all->kind, C);
    const int64_t n = all->n;
    s->n_grid = o->n_grid ? o->n_grid : (int)(sizeof default_grid / sizeof *default_grid);
    memcpy(s->grid, o->n_grid ? o->grid : default_grid, (size_t)s->n_grid * sizeof *s->grid);
    int32_t *fold = malloc((size_t)n * sizeof *fold), *yt = malloc((size_t)n * sizeof *yt),
            *yh = malloc((size_t)n * sizeof *yh);
    double *xt = malloc((size_t)n * C * sizeof *xt), *xh = malloc((size_t)n * C * sizeof *xh),
           *theta = malloc((size_t)P * sizeof *theta);
    int rc = KD_OK;
    if (!fold || !yt || !yh || !xt || !xh || !theta) {
        rc = kd_error_set(err, KD_ERR_DATA, "%s scaling: cannot allocate cross-validation copies of %lld samples",
                          kd_scaling_name(all->kind), (long long)n);
        goto done;
    }
    rc = kd_scaling_folds(n, k, o->seed, fold, err);
    if (rc) goto done;
    for (int g = 0; g < s->n_grid; g++) s->cv_nll[g] = 0.0;
    for (int f = 0; f < k; f++) {
        kd_scaling_problem train = *all, held = *all;
        train.x = xt, train.y = yt, train.n = gather(all->x, all->y, fold, n, C, f, false, xt, yt);
        held.x = xh, held.y = yh, held.n = gather(all->x, all->y, fold, n, C, f, true, xh, yh);
        start_point(all->kind, C, temperature, s->grid[0], theta);
        for (int g = 0; g < s->n_grid; g++) {
            train.lambda = train.mu = s->grid[g];
            kd_scaling_result r;
            rc = kd_scaling_solve(&train, theta, o->tolerance, o->max_iterations, o->newton_max_parameters, &r, err);
            if (rc) goto done;
            double nll = kd_scaling_mean_nll(&held, theta);
            if (isnan(nll)) {
                rc = kd_error_set(err, KD_ERR_DATA, "%s scaling: cannot allocate held-out logits",
                                  kd_scaling_name(all->kind));
                goto done;
            }
            s->cv_nll[g] += nll / k;
        }
    }
    int best = 0;
    for (int g = 1; g < s->n_grid; g++) {
        double a = s->cv_nll[g], b = s->cv_nll[best];
        bool tie = fabs(a - b) <= 1e-12 * fabs(b);
        if ((!tie && a < b) || (tie && s->grid[g] > s->grid[best])) best = g;
    }
    *chosen = s->grid[best];
done:
    free(fold), free(yt), free(yh), free(xt), free(xh), free(theta);
    return rc;
}

int kd_scaling_fit(kd_scaling *s, kd_scaling_kind kind, const float *logits, const int32_t *labels, int64_t n,
                   int classes, const kd_scaling_options *o, kd_error *err)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->classes = classes;
    int rc = check_inputs(kind, logits, labels, n, classes, o, err);
    if (rc) return rc;
    const int C = classes, P = kd_scaling_parameter_count(kind, C);
    double *x = malloc((size_t)n * C * sizeof *x), *theta = malloc((size_t)P * sizeof *theta);
    s->weight = malloc((size_t)(kind == KD_SCALING_VECTOR ? C : C * C) * sizeof *s->weight);
    s->bias = malloc((size_t)C * sizeof *s->bias);
    if (!x || !theta || !s->weight || !s->bias) {
        rc = kd_error_set(err, KD_ERR_DATA, "%s scaling: cannot allocate the features of %lld samples",
                          kd_scaling_name(kind), (long long)n);
        goto done;
    }
    features(kind, logits, n, C, x);
    const double temperature = start_temperature(logits, labels, n, C);
    kd_scaling_problem pb = {kind, x, labels, n, C, o->lambda, o->mu};
    if (kind == KD_SCALING_VECTOR) {
        pb.lambda = pb.mu = 0.0;
    } else if (o->folds >= 2) {
        double chosen = 0.0;
        rc = cross_validate(s, &pb, o, temperature, &chosen, err);
        if (rc) goto done;
        pb.lambda = pb.mu = chosen;
    }
    start_point(kind, C, temperature, pb.lambda, theta);
    kd_scaling_result r;
    rc = kd_scaling_solve(&pb, theta, o->tolerance, o->max_iterations, o->newton_max_parameters, &r, err);
    if (rc) goto done;
    s->lambda = pb.lambda, s->mu = pb.mu;
    s->objective = r.objective, s->nll = r.nll, s->gradient_norm = r.gradient_norm;
    s->iterations = r.iterations, s->evaluations = r.evaluations, s->converged = r.converged, s->newton = r.newton;
    if (kind == KD_SCALING_VECTOR) {
        memcpy(s->weight, theta, (size_t)C * sizeof *theta);
        memcpy(s->bias, theta + C, (size_t)C * sizeof *theta);
    } else {
        for (int k = 0; k < C; k++) {
            memcpy(s->weight + (size_t)k * C, theta + (size_t)k * (C + 1), (size_t)C * sizeof *theta);
            s->bias[k] = theta[(size_t)k * (C + 1) + C];
        }
    }
done:
    free(x), free(theta);
    if (rc) kd_scaling_free(s);
    return rc;
}

void kd_scaling_apply(const kd_scaling *s, const float *logits, int64_t n, double *out)
{
    const int C = s->classes;
    const double *W = s->weight, *b = s->bias;
    /* the features of row i are z_ij - shift (shift = logsumexp(z_i) for Dirichlet, else
     * 0), formed on the fly: no buffer, so nothing to allocate */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * C;
        double *u = out + (size_t)i * C, shift = 0.0;
        if (s->kind == KD_SCALING_DIRICHLET) {
            double max = z[0], sum = 0.0;
            for (int k = 1; k < C; k++) max = z[k] > max ? z[k] : max;
            for (int k = 0; k < C; k++) sum += exp((double)z[k] - max);
            shift = max + log(sum);
        }
        for (int k = 0; k < C; k++) {
            if (s->kind == KD_SCALING_VECTOR) {
                u[k] = W[k] * (double)z[k] + b[k];
                continue;
            }
            double acc = b[k];
            for (int j = 0; j < C; j++) acc += W[(size_t)k * C + j] * ((double)z[j] - shift);
            u[k] = acc;
        }
    }
}
