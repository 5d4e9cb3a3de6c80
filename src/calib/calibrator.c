/* calibrator.c - see calibrator.h. */
#define _POSIX_C_SOURCE 200809L
#include "calib/calibrator.h"

#include "core/timer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct method_row {
    const char *name;
    const char *description;
    bool keeps_prediction;
    bool has_logits;
} method_row;

static const method_row methods[] = {
    [KD_CALIBRATOR_TEMPERATURE] = {"temperature", "temperature scaling: softmax(z / T), T by exact NLL minimisation", true, true},
    [KD_CALIBRATOR_VECTOR] = {"vector", "vector scaling: softmax(w * z + b), unregularised", false, true},
    [KD_CALIBRATOR_MATRIX] = {"matrix", "matrix scaling: softmax(W z + b), ODIR-regularised (strength by CV)", false, true},
    [KD_CALIBRATOR_DIRICHLET] = {"dirichlet", "Dirichlet calibration: softmax(W log p + b), ODIR (strength by CV)", false,
                                 true},
    [KD_CALIBRATOR_HISTOGRAM] = {"histogram", "histogram binning per class (equal-width bins), renormalised", false, false},
    [KD_CALIBRATOR_ISOTONIC] = {"isotonic", "isotonic regression per class (pool-adjacent-violators), renormalised", false,
                                false},
    [KD_CALIBRATOR_SCALING_BINNING] = {"scaling-binning",
                                       "scaling-binning (Kumar et al. 2019): Platt per class, then equal-mass bins of it",
                                       false, false},
    [KD_CALIBRATOR_ETS] = {"ets", "ensemble temperature scaling (Zhang et al. 2020): w1 softmax(z/T) + w2 softmax(z) + w3/C",
                           true, false},
};
_Static_assert(sizeof methods / sizeof methods[0] == KD_CALIBRATOR_COUNT, "one row per calibrator");

void kd_calibrator_options_default(kd_calibrator_options *o)
{
    memset(o, 0, sizeof *o);
    kd_scaling_options_default(&o->scaling);
    kd_binning_options_default(&o->binning);
}

const char *kd_calibrator_name(kd_calibrator_kind kind) { return methods[kind].name; }
const char *kd_calibrator_describe(kd_calibrator_kind kind) { return methods[kind].description; }
bool kd_calibrator_keeps_prediction(kd_calibrator_kind kind) { return methods[kind].keeps_prediction; }
bool kd_calibrator_has_logits(kd_calibrator_kind kind) { return methods[kind].has_logits; }

bool kd_calibrator_parse(const char *name, kd_calibrator_kind *kind)
{
    for (int k = 0; k < KD_CALIBRATOR_COUNT; k++)
        if (strcmp(name, methods[k].name) == 0) {
            *kind = (kd_calibrator_kind)k;
            return true;
        }
    return false;
}

bool kd_calibrator_parse_list(const char *text, unsigned *mask, kd_error *err)
{
    *mask = 0;
    if (strcmp(text, "all") == 0) {
        *mask = (1u << KD_CALIBRATOR_COUNT) - 1u;
        return true;
    }
    const char *p = text;
    while (true) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[32];
        kd_calibrator_kind kind;
        if (len == 0 || len >= sizeof name) goto bad;
        memcpy(name, p, len);
        name[len] = '\0';
        if (!kd_calibrator_parse(name, &kind)) goto bad;
        *mask |= 1u << kind;
        if (!end) return true;
        p = end + 1;
        continue;
    bad:
        kd_error_set(err, KD_ERR_CONFIG,
                     "--method: expected a comma-separated list of temperature, vector, matrix, dirichlet, histogram, "
                     "isotonic, scaling-binning, ets, or all; found '%.*s' in '%s'",
                     (int)(len > 64 ? 64 : len), p, text);
        return false;
    }
}

int kd_calibrator_fit(kd_calibrator *c, kd_calibrator_kind kind, const float *logits, const int32_t *labels, int64_t n,
                      int classes, const kd_calibrator_options *o, kd_error *err)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->classes = classes;
    double t0 = kd_now_seconds();
    int rc;
    switch (kind) {
    case KD_CALIBRATOR_TEMPERATURE:
        rc = kd_temperature_solve(logits, labels, n, classes, &c->temperature, err);
        break;
    case KD_CALIBRATOR_VECTOR:
    case KD_CALIBRATOR_MATRIX:
    case KD_CALIBRATOR_DIRICHLET: {
        kd_scaling_kind s = kind == KD_CALIBRATOR_VECTOR   ? KD_SCALING_VECTOR
                            : kind == KD_CALIBRATOR_MATRIX ? KD_SCALING_MATRIX
                                                           : KD_SCALING_DIRICHLET;
        rc = kd_scaling_fit(&c->scaling, s, logits, labels, n, classes, &o->scaling, err);
        break;
    }
    case KD_CALIBRATOR_HISTOGRAM:
    case KD_CALIBRATOR_ISOTONIC:
    case KD_CALIBRATOR_SCALING_BINNING: {
        kd_binning_kind b = kind == KD_CALIBRATOR_HISTOGRAM  ? KD_BINNING_HISTOGRAM
                            : kind == KD_CALIBRATOR_ISOTONIC ? KD_BINNING_ISOTONIC
                                                             : KD_BINNING_SCALING_BINNING;
        rc = kd_binning_fit(&c->binning, b, logits, labels, n, classes, &o->binning, err);
        break;
    }
    case KD_CALIBRATOR_ETS:
        rc = kd_ets_fit(&c->ets, logits, labels, n, classes, err);
        break;
    default:
        KD_ASSERT(false, "unknown calibrator %d", (int)c->kind);
        rc = KD_ERR_CONFIG;
    }
    c->seconds = kd_now_seconds() - t0;
    return rc;
}

/* softmax of each row of u (n, C) in place, in double, after subtracting the row max. */
static void softmax_rows(const double *u, int64_t n, int classes, double *probs)
{
    for (int64_t i = 0; i < n; i++) {
        const double *z = u + (size_t)i * (size_t)classes;
        double *p = probs + (size_t)i * (size_t)classes;
        double top = z[0], sum = 0.0;
        for (int k = 1; k < classes; k++)
            if (z[k] > top) top = z[k];
        for (int k = 0; k < classes; k++) sum += (p[k] = exp(z[k] - top));
        for (int k = 0; k < classes; k++) p[k] /= sum;
    }
}

void kd_calibrator_apply(const kd_calibrator *c, const float *logits, int64_t n, double *probs, double *logits_out)
{
    int C = c->classes;
    size_t count = (size_t)n * (size_t)C;
    switch (c->kind) {
    case KD_CALIBRATOR_TEMPERATURE: {
        double *u = logits_out ? logits_out : probs;
        for (size_t i = 0; i < count; i++) u[i] = (double)logits[i] / c->temperature.temperature;
        softmax_rows(u, n, C, probs);
        break;
    }
    case KD_CALIBRATOR_VECTOR:
    case KD_CALIBRATOR_MATRIX:
    case KD_CALIBRATOR_DIRICHLET: {
        double *u = logits_out ? logits_out : probs;
        kd_scaling_apply(&c->scaling, logits, n, u);
        softmax_rows(u, n, C, probs);
        break;
    }
    case KD_CALIBRATOR_HISTOGRAM:
    case KD_CALIBRATOR_ISOTONIC:
    case KD_CALIBRATOR_SCALING_BINNING:
        kd_binning_apply(&c->binning, logits, n, probs);
        break;
    case KD_CALIBRATOR_ETS:
        kd_ets_apply(&c->ets, logits, n, C, probs);
        break;
    default:
        KD_ASSERT(false, "unknown calibrator %d", (int)c->kind);
    }
}

int64_t kd_calibrator_parameter_count(const kd_calibrator *c)
{
    int64_t C = c->classes;
    switch (c->kind) {
    case KD_CALIBRATOR_TEMPERATURE: return 1;
    case KD_CALIBRATOR_VECTOR: return 2 * C;
    case KD_CALIBRATOR_MATRIX:
    case KD_CALIBRATOR_DIRICHLET: return C * C + C;
    case KD_CALIBRATOR_HISTOGRAM:
    case KD_CALIBRATOR_SCALING_BINNING: return C * c->binning.bins;
    case KD_CALIBRATOR_ISOTONIC: return 2 * (c->binning.offset[C] - c->binning.offset[0]); /* (x, y) thresholds */
    case KD_CALIBRATOR_ETS: return 3; /* T and two free weights of the simplex */
    default: return 0;
    }
}

double kd_calibrator_objective(const kd_calibrator *c, const char **name)
{
    switch (c->kind) {
    case KD_CALIBRATOR_TEMPERATURE:
        *name = "NLL";
        return c->temperature.nll_after;
    case KD_CALIBRATOR_VECTOR:
        *name = "NLL";
        return c->scaling.objective;
    case KD_CALIBRATOR_MATRIX:
    case KD_CALIBRATOR_DIRICHLET:
        *name = c->scaling.lambda > 0 || c->scaling.mu > 0 ? "NLL + ODIR penalty" : "NLL";
        return c->scaling.objective;
    case KD_CALIBRATOR_HISTOGRAM:
    case KD_CALIBRATOR_ISOTONIC:
    case KD_CALIBRATOR_SCALING_BINNING:
        *name = "one-vs-rest squared error";
        return c->binning.objective;
    case KD_CALIBRATOR_ETS:
        *name = "NLL";
        return c->ets.nll;
    default:
        *name = "";
        return NAN;
    }
}

static void json_array(kd_json *j, const char *key, const double *v, int64_t n)
{
    kd_json_begin_array(j, key);
    for (int64_t i = 0; i < n; i++) kd_json_number(j, NULL, v[i]);
    kd_json_end_array(j);
}

/* The binning tables: per class, the bins' values (and scaling-binning's upper edges
 * and Platt parameters); isotonic regression's thresholds. */
static void binning_json(kd_json *j, const kd_calibrator *c)
{
    const kd_binning *b = &c->binning;
    kd_json_int(j, "bins", b->bins);
    kd_json_begin_array(j, "classes");
    for (int k = 0; k < c->classes; k++) {
        kd_json_begin_object(j, NULL);
        if (c->kind == KD_CALIBRATOR_HISTOGRAM) {
            json_array(j, "value", b->value + (size_t)k * (size_t)b->bins, b->bins);
        } else if (c->kind == KD_CALIBRATOR_SCALING_BINNING) {
            kd_json_number(j, "platt_a", b->platt[2 * k]);
            kd_json_number(j, "platt_b", b->platt[2 * k + 1]);
            json_array(j, "upper_edge", b->edge + (size_t)k * (size_t)b->bins, b->used[k]);
            json_array(j, "value", b->value + (size_t)k * (size_t)b->bins, b->used[k]);
        } else {
            int64_t first = b->offset[k], count = b->offset[k + 1] - first;
            json_array(j, "x", b->x + first, count);
            json_array(j, "y", b->y + first, count);
        }
        kd_json_end_object(j);
    }
    kd_json_end_array(j);
    if (c->kind == KD_CALIBRATOR_SCALING_BINNING) {
        kd_json_int(j, "platt_iterations", b->platt_iterations);
        kd_json_int(j, "platt_unconverged", b->platt_unconverged);
    }
}

void kd_calibrator_json(kd_json *j, const char *key, const kd_calibrator *c)
{
    const char *objective_name;
    double objective = kd_calibrator_objective(c, &objective_name);
    kd_json_begin_object(j, key);
    kd_json_string(j, "method", kd_calibrator_name(c->kind));
    kd_json_string(j, "description", kd_calibrator_describe(c->kind));
    kd_json_int(j, "parameters", kd_calibrator_parameter_count(c));
    kd_json_bool(j, "keeps_prediction", kd_calibrator_keeps_prediction(c->kind));
    kd_json_string(j, "objective_name", objective_name);
    kd_json_number(j, "objective", objective);
    kd_json_number(j, "seconds", c->seconds);
    int C = c->classes;
    switch (c->kind) {
    case KD_CALIBRATOR_TEMPERATURE: {
        const kd_temperature_fit *f = &c->temperature;
        kd_json_number(j, "temperature", f->temperature);
        kd_json_number(j, "nll_before", f->nll_before);
        kd_json_number(j, "gradient", f->gradient);
        kd_json_number(j, "tolerance", f->tolerance);
        kd_json_int(j, "iterations", f->iterations);
        kd_json_bool(j, "at_lower_bound", f->at_lower_bound);
        kd_json_bool(j, "at_upper_bound", f->at_upper_bound);
        kd_json_bool(j, "degenerate", f->degenerate);
        break;
    }
    case KD_CALIBRATOR_VECTOR:
    case KD_CALIBRATOR_MATRIX:
    case KD_CALIBRATOR_DIRICHLET: {
        const kd_scaling *s = &c->scaling;
        kd_json_number(j, "nll", s->nll);
        kd_json_number(j, "gradient_norm", s->gradient_norm);
        kd_json_bool(j, "converged", s->converged);
        kd_json_string(j, "solver", s->newton ? "Newton" : "L-BFGS");
        kd_json_int(j, "iterations", s->iterations);
        kd_json_number(j, "lambda", s->lambda);
        kd_json_number(j, "mu", s->mu);
        if (s->n_grid > 0) {
            json_array(j, "cv_grid", s->grid, s->n_grid);
            json_array(j, "cv_nll", s->cv_nll, s->n_grid);
        }
        json_array(j, c->kind == KD_CALIBRATOR_VECTOR ? "weight_diagonal" : "weight", s->weight,
                   c->kind == KD_CALIBRATOR_VECTOR ? C : (int64_t)C * C);
        json_array(j, "bias", s->bias, C);
        break;
    }
    case KD_CALIBRATOR_HISTOGRAM:
    case KD_CALIBRATOR_ISOTONIC:
    case KD_CALIBRATOR_SCALING_BINNING:
        binning_json(j, c);
        break;
    case KD_CALIBRATOR_ETS:
        kd_json_number(j, "temperature", c->ets.temperature);
        json_array(j, "weights", c->ets.weight, 3);
        kd_json_number(j, "nll_temperature_only", c->ets.nll_temperature_only);
        kd_json_number(j, "kkt_violation", c->ets.kkt);
        kd_json_int(j, "iterations", c->ets.iterations);
        break;
    default:
        break;
    }
    kd_json_end_object(j);
}

void kd_calibrator_free(kd_calibrator *c)
{
    if (c->kind == KD_CALIBRATOR_VECTOR || c->kind == KD_CALIBRATOR_MATRIX || c->kind == KD_CALIBRATOR_DIRICHLET)
        kd_scaling_free(&c->scaling);
    if (c->kind == KD_CALIBRATOR_HISTOGRAM || c->kind == KD_CALIBRATOR_ISOTONIC ||
        c->kind == KD_CALIBRATOR_SCALING_BINNING)
        kd_binning_free(&c->binning);
    memset(c, 0, sizeof *c);
}
