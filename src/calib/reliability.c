/* reliability.c - see reliability.h: input checks, the point estimates, and the
 * summaries (percentiles, means) of the resampling in bootstrap.c. */
#include "calib/reliability.h"

#include "calib/ce_estimators.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name, *label;
    bool calibration_error;
} metric_table[] = {
    [KD_METRIC_ACCURACY] = {"accuracy", "accuracy", false},
    [KD_METRIC_NLL] = {"nll", "NLL", false},
    [KD_METRIC_BRIER] = {"brier", "Brier score", false},
    [KD_METRIC_ECE] = {"ece", "ECE, equal-width bins", true},
    [KD_METRIC_MCE] = {"mce", "MCE, equal-width bins", true},
    [KD_METRIC_ECE_EQUAL_MASS] = {"ece_equal_mass", "ECE, equal-mass bins", true},
    [KD_METRIC_CLASSWISE_ECE] = {"classwise_ece", "classwise ECE", true},
    [KD_METRIC_RMS_CE] = {"rms_ce", "RMS calibration error, equal-mass bins", true},
    [KD_METRIC_DEBIASED_CE] = {"debiased_ce", "debiased L2 calibration error, equal-mass bins", true},
    [KD_METRIC_KS_CE] = {"ks_ce", "KS calibration error", true},
};
_Static_assert(sizeof metric_table / sizeof metric_table[0] == KD_METRIC_COUNT, "a name for every metric");

const char *kd_metric_name(kd_metric m) { return m >= 0 && m < KD_METRIC_COUNT ? metric_table[m].name : "?"; }
const char *kd_metric_label(kd_metric m) { return m >= 0 && m < KD_METRIC_COUNT ? metric_table[m].label : "?"; }
bool kd_metric_is_calibration_error(kd_metric m) { return m >= 0 && m < KD_METRIC_COUNT && metric_table[m].calibration_error; }

void kd_reliability_options_default(kd_reliability_options *o)
{
    *o = (kd_reliability_options){.bins = 15, .bootstrap = 1000, .noise_draws = 200, .seed = 0};
}

double kd_ece(const double *confidence, const unsigned char *correct, int64_t n, int n_bins)
{
    double conf[KD_MAX_BINS] = {0}, right[KD_MAX_BINS] = {0};
    int64_t count[KD_MAX_BINS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int b = kd_ece_bin(confidence[i], n_bins);
        conf[b] += confidence[i];
        right[b] += correct[i];
        count[b]++;
    }
    double ece = 0.0;
    for (int b = 0; b < n_bins; b++)
        if (count[b]) ece += fabs(right[b] - conf[b]) / (double)n; /* (n_b / n) |acc_b - conf_b| */
    return ece;
}

typedef struct ranked {
    double confidence;
    int64_t index;
} ranked;

static int by_confidence(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence < y->confidence ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

double kd_ece_equal_mass(const double *confidence, const unsigned char *correct, int64_t n, int n_bins)
{
    ranked *order = malloc((size_t)n * sizeof *order);
    if (!order) return NAN;
    for (int64_t i = 0; i < n; i++) order[i] = (ranked){confidence[i], i};
    qsort(order, (size_t)n, sizeof *order, by_confidence);
    double ece = 0.0;
    for (int b = 0; b < n_bins; b++) {
        double gap = 0.0; /* n_b (acc_b - conf_b) */
        for (int64_t r = (int64_t)b * n / n_bins; r < (int64_t)(b + 1) * n / n_bins; r++)
            gap += correct[order[r].index] - order[r].confidence;
        ece += fabs(gap) / (double)n;
    }
    free(order);
    return ece;
}

static int check_input(const double *probs, const int32_t *labels, int64_t n, int classes,
                       const kd_reliability_options *o, const char *what, kd_error *err)
{
    if (n < 1) return kd_error_set(err, KD_ERR_DATA, "calibration metrics: expected samples, found none");
    if (classes < 1) return kd_error_set(err, KD_ERR_DATA, "calibration metrics: expected 1 or more classes, found %d", classes);
    if (o->bins < 1 || o->bins > KD_MAX_BINS)
        return kd_error_set(err, KD_ERR_CONFIG, "--bins: expected 1 to %d, found %d", KD_MAX_BINS, o->bins);
    if (o->bootstrap < 0)
        return kd_error_set(err, KD_ERR_CONFIG, "--bootstrap: expected 0 or more resamples, found %d", o->bootstrap);
    if (o->noise_draws < 0)
        return kd_error_set(err, KD_ERR_CONFIG, "--noise-draws: expected 0 or more draws, found %d", o->noise_draws);
    for (int64_t i = 0; i < n; i++) {
        const double *p = probs + (size_t)i * (size_t)classes;
        double sum = 0.0;
        for (int k = 0; k < classes; k++) {
            if (!(p[k] >= 0.0 && p[k] <= 1.0))
                return kd_error_set(err, KD_ERR_DATA, "calibration metrics: %srow %lld, class %d: expected a probability "
                                    "in [0, 1], found %g", what, (long long)i, k, p[k]);
            sum += p[k];
        }
        if (fabs(sum - 1.0) > 1e-6)
            return kd_error_set(err, KD_ERR_DATA, "calibration metrics: %srow %lld: expected probabilities summing to 1 "
                                "(within 1e-6), found %.9g", what, (long long)i, sum);
        if (labels[i] < 0 || labels[i] >= classes)
            return kd_error_set(err, KD_ERR_DATA, "calibration metrics: row %lld: expected a label in 0..%d, found %d",
                                (long long)i, classes - 1, (int)labels[i]);
    }
    return KD_OK;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Column m of values (count, KD_METRIC_COUNT), sorted, into column (count). */
static void sorted_column(const double *values, int count, int m, double *column)
{
    for (int r = 0; r < count; r++) column[r] = values[(size_t)r * KD_METRIC_COUNT + (size_t)m];
    qsort(column, (size_t)count, sizeof *column, compare_double);
}

static void percentile_interval(const double *values, int count, double *column, double *low, double *high)
{
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        sorted_column(values, count, m, column);
        low[m] = kd_ce_percentile(column, count, 0.025);
        high[m] = kd_ce_percentile(column, count, 0.975);
    }
}

static int out_of_memory(kd_error *err, int64_t n, int classes)
{
    return kd_error_set(err, KD_ERR_IO, "calibration metrics: out of memory for %lld x %d probabilities", (long long)n,
                        classes);
}

/* The whole report of probs (validated); nll (n) the exact per-sample NLL or NULL. */
static int reliability(const double *probs, const int32_t *labels, const double *nll, int64_t n, int classes,
                       double temperature, const kd_reliability_options *o, kd_reliability *out, kd_error *err)
{
    memset(out, 0, sizeof *out);
    out->count = n;
    out->classes = classes;
    out->n_bins = o->bins;
    out->temperature = temperature;
    out->seed = o->seed;
    for (int m = 0; m < KD_METRIC_COUNT; m++)
        out->low[m] = out->high[m] = out->floor_mean[m] = out->floor_high[m] = NAN;
    kd_ce_sample s;
    kd_ce_outcome y = {0};
    kd_ce_scratch sc = {0};
    if (kd_ce_sample_prepare(&s, probs, n, classes, o->bins)) return out_of_memory(err, n, classes);
    int rc = KD_OK;
    if (kd_ce_outcome_prepare(&y, &s, labels, nll) || kd_ce_scratch_init(&sc, &s)) rc = out_of_memory(err, n, classes);
    if (!rc) {
        kd_ce_evaluate(&s, &y, NULL, s.low_sum, &sc, out->value);
        memcpy(out->bins, sc.width, (size_t)o->bins * sizeof *sc.width);
        memcpy(out->equal_mass, sc.mass, (size_t)o->bins * sizeof *sc.mass);
        memcpy(out->equal_mass_upper, sc.upper, (size_t)o->bins * sizeof *sc.upper);
    }
    int R = o->bootstrap > o->noise_draws ? o->bootstrap : o->noise_draws;
    double *values = rc || !R ? NULL : malloc((size_t)R * KD_METRIC_COUNT * sizeof *values); /* (R, metrics) */
    double *column = rc || !R ? NULL : malloc((size_t)R * sizeof *column);
    if (!rc && R && (!values || !column)) rc = out_of_memory(err, n, classes);
    if (!rc && o->bootstrap) {
        if (kd_ce_bootstrap(&s, &y, NULL, NULL, o->bootstrap, o->seed, values, NULL)) rc = out_of_memory(err, n, classes);
        else {
            percentile_interval(values, o->bootstrap, column, out->low, out->high);
            out->bootstrap = o->bootstrap;
        }
    }
    if (!rc && o->noise_draws) {
        if (kd_ce_noise_floor(&s, o->noise_draws, o->seed, values)) rc = out_of_memory(err, n, classes);
        else {
            for (int m = 0; m < KD_METRIC_COUNT; m++) {
                if (!kd_metric_is_calibration_error((kd_metric)m)) continue;
                sorted_column(values, o->noise_draws, m, column);
                double sum = 0.0;
                for (int d = 0; d < o->noise_draws; d++) sum += column[d];
                out->floor_mean[m] = sum / o->noise_draws;
                out->floor_high[m] = kd_ce_percentile(column, o->noise_draws, 0.95);
            }
            out->noise_draws = o->noise_draws;
        }
    }
    free(values);
    free(column);
    kd_ce_scratch_free(&sc);
    kd_ce_outcome_free(&y);
    kd_ce_sample_free(&s);
    return rc;
}

int kd_reliability_from_probs(const double *probs, const int32_t *labels, int64_t n, int classes,
                              const kd_reliability_options *o, kd_reliability *out, kd_error *err)
{
    int rc = check_input(probs, labels, n, classes, o, "", err);
    return rc ? rc : reliability(probs, labels, NULL, n, classes, NAN, o, out, err);
}

int kd_reliability_compute(const float *logits, const int32_t *labels, int64_t n, int classes, double temperature,
                           const kd_reliability_options *o, kd_reliability *out, kd_error *err)
{
    if (n < 1) return kd_error_set(err, KD_ERR_DATA, "calibration metrics: expected samples, found none");
    if (!(temperature > 0.0) || !isfinite(temperature))
        return kd_error_set(err, KD_ERR_DATA, "calibration metrics: expected a positive temperature, found %g", temperature);
    size_t N = (size_t)n, C = (size_t)classes;
    double *probs = classes > 0 ? malloc(N * C * sizeof *probs) : NULL; /* (n, classes) */
    double *nll = malloc(N * sizeof *nll);
    int rc = KD_OK;
    if (classes > 0 && (!probs || !nll)) rc = out_of_memory(err, n, classes);
    for (size_t i = 0; i < N && !rc && classes > 0; i++) {
        /* softmax((z - max z) / T) in double; -log p_y from the log-sum-exp, exact */
        const float *z = logits + i * C;
        double *p = probs + i * C;
        size_t top = 0;
        for (size_t k = 1; k < C; k++)
            if (z[k] > z[top]) top = k;
        double sum = 0.0;
        for (size_t k = 0; k < C; k++) sum += (p[k] = exp(((double)z[k] - z[top]) / temperature));
        for (size_t k = 0; k < C; k++) p[k] /= sum;
        if (labels[i] >= 0 && labels[i] < classes)
            nll[i] = log(sum) - ((double)z[labels[i]] - z[top]) / temperature;
        if (!isfinite(sum))
            rc = kd_error_set(err, KD_ERR_DATA, "calibration metrics: row %lld: expected finite logits, found NaN or Inf",
                              (long long)i);
    }
    if (!rc) rc = check_input(probs, labels, n, classes, o, "softmax of ", err);
    if (!rc) rc = reliability(probs, labels, nll, n, classes, temperature, o, out, err);
    free(probs);
    free(nll);
    return rc;
}

int kd_reliability_paired(const double *probs_a, const double *probs_b, const int32_t *labels, int64_t n, int classes,
                          const kd_reliability_options *o, kd_paired_difference *out, kd_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_input(probs_a, labels, n, classes, o, "A: ", err);
    if (!rc) rc = check_input(probs_b, labels, n, classes, o, "B: ", err);
    if (rc) return rc;
    for (int m = 0; m < KD_METRIC_COUNT; m++) out->low[m] = out->high[m] = NAN;
    kd_ce_sample a, b;
    kd_ce_outcome ya = {0}, yb = {0};
    kd_ce_scratch sc = {0};
    double va[KD_METRIC_COUNT], vb[KD_METRIC_COUNT];
    bool sa = kd_ce_sample_prepare(&a, probs_a, n, classes, o->bins) == 0;
    bool sb = kd_ce_sample_prepare(&b, probs_b, n, classes, o->bins) == 0;
    if (!sa || !sb || kd_ce_outcome_prepare(&ya, &a, labels, NULL) || kd_ce_outcome_prepare(&yb, &b, labels, NULL) ||
        kd_ce_scratch_init(&sc, &a))
        rc = out_of_memory(err, n, classes);
    if (!rc) {
        kd_ce_evaluate(&a, &ya, NULL, a.low_sum, &sc, va);
        kd_ce_evaluate(&b, &yb, NULL, b.low_sum, &sc, vb);
        for (int m = 0; m < KD_METRIC_COUNT; m++) out->value[m] = vb[m] - va[m];
    }
    int R = o->bootstrap;
    if (!rc && R) {
        double *values = malloc((size_t)R * KD_METRIC_COUNT * sizeof *values); /* (R, metrics) */
        double *values_b = malloc((size_t)R * KD_METRIC_COUNT * sizeof *values_b);
        double *column = malloc((size_t)R * sizeof *column);
        if (!values || !values_b || !column || kd_ce_bootstrap(&a, &ya, &b, &yb, R, o->seed, values, values_b))
            rc = out_of_memory(err, n, classes);
        else {
            for (size_t k = 0; k < (size_t)R * KD_METRIC_COUNT; k++) values[k] = values_b[k] - values[k];
            percentile_interval(values, R, column, out->low, out->high);
            out->bootstrap = R;
        }
        free(values);
        free(values_b);
        free(column);
    }
    kd_ce_scratch_free(&sc);
    kd_ce_outcome_free(&ya);
    kd_ce_outcome_free(&yb);
    if (sa) kd_ce_sample_free(&a);
    if (sb) kd_ce_sample_free(&b);
    return rc;
}
