/* ce_estimators.c - see ce_estimators.h; the definitions are in reliability.h. */
#include "calib/ce_estimators.h"

#include "core/simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The NLL's clip of p_y, sklearn's log_loss eps (1.2). */
#define KD_NLL_CLIP 1e-15

void kd_ce_sample_free(kd_ce_sample *s)
{
    free(s->top);
    free(s->conf);
    free(s->width_bin);
    free(s->order);
    free(s->low);
    free(s->low_sum);
    free(s->sparse_start);
    free(s->sparse_class);
    free(s->sparse_bin);
    free(s->sparse_p);
    memset(s, 0, sizeof *s);
}

/* Stable order by confidence: merge sort of row indices (qsort is not stable, and a
 * comparison on the index as well costs as much as merging). */
static void sort_by_confidence(int64_t *order, int64_t *tmp, int64_t n, const double *conf)
{
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = conf[order[b]] < conf[order[a]] ? order[b++] : order[a++];
            while (a < mid) tmp[k++] = order[a++];
            while (b < hi) tmp[k++] = order[b++];
        }
        memcpy(order, tmp, (size_t)n * sizeof *order);
    }
}

int kd_ce_sample_prepare(kd_ce_sample *s, const double *probs, int64_t n, int classes, int bins)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->classes = classes;
    s->bins = bins;
    s->probs = probs;
    size_t N = (size_t)n, C = (size_t)classes;
    s->top = malloc(N * sizeof *s->top);
    s->conf = malloc(N * sizeof *s->conf);
    s->width_bin = malloc(N * sizeof *s->width_bin);
    s->order = malloc(N * sizeof *s->order);
    s->low = malloc(N * C * sizeof *s->low);
    s->low_sum = malloc(C * sizeof *s->low_sum);
    s->sparse_start = malloc((N + 1) * sizeof *s->sparse_start);
    int64_t *tmp = malloc(N * sizeof *tmp);
    if (!s->top || !s->conf || !s->width_bin || !s->order || !s->low || !s->low_sum || !s->sparse_start || !tmp) {
        free(tmp);
        kd_ce_sample_free(s);
        return -1;
    }
    int64_t nnz = 0;
    for (int64_t i = 0; i < n; i++) {
        const double *p = probs + (size_t)i * C;
        double *low = s->low + (size_t)i * C;
        int top = 0;
        s->sparse_start[i] = nnz;
        for (int k = 0; k < classes; k++) {
            if (p[k] > p[top]) top = k;
            bool first = kd_ece_bin(p[k], bins) == 0;
            low[k] = first ? p[k] : 0.0;
            nnz += !first;
        }
        s->top[i] = top;
        s->conf[i] = p[top];
        s->width_bin[i] = kd_ece_bin(p[top], bins);
        s->order[i] = i;
    }
    s->sparse_start[n] = nnz;
    sort_by_confidence(s->order, tmp, n, s->conf);
    free(tmp);
    size_t Z = nnz ? (size_t)nnz : 1;
    s->sparse_class = malloc(Z * sizeof *s->sparse_class);
    s->sparse_bin = malloc(Z * sizeof *s->sparse_bin);
    s->sparse_p = malloc(Z * sizeof *s->sparse_p);
    if (!s->sparse_class || !s->sparse_bin || !s->sparse_p) {
        kd_ce_sample_free(s);
        return -1;
    }
    for (int64_t i = 0, e = 0; i < n; i++)
        for (int k = 0; k < classes; k++) {
            double p = probs[(size_t)i * C + (size_t)k];
            int b = kd_ece_bin(p, bins);
            if (b == 0) continue;
            s->sparse_class[e] = k;
            s->sparse_bin[e] = b;
            s->sparse_p[e++] = p;
        }
    kd_ce_low_mass(s, NULL, 1, s->low_sum);
    return 0;
}

void kd_ce_outcome_free(kd_ce_outcome *y)
{
    free(y->correct);
    free(y->label);
    free(y->label_bin);
    free(y->nll);
    free(y->brier);
    memset(y, 0, sizeof *y);
}

int kd_ce_outcome_prepare(kd_ce_outcome *y, const kd_ce_sample *s, const int32_t *labels, const double *nll)
{
    memset(y, 0, sizeof *y);
    size_t N = (size_t)s->n, C = (size_t)s->classes;
    y->correct = malloc(N);
    y->label = malloc(N * sizeof *y->label);
    y->label_bin = malloc(N * sizeof *y->label_bin);
    y->nll = malloc(N * sizeof *y->nll);
    y->brier = malloc(N * sizeof *y->brier);
    if (!y->correct || !y->label || !y->label_bin || !y->nll || !y->brier) {
        kd_ce_outcome_free(y);
        return -1;
    }
    for (size_t i = 0; i < N; i++) {
        const double *p = s->probs + i * C;
        int32_t label = labels[i];
        y->label[i] = label;
        y->correct[i] = s->top[i] == label;
        y->label_bin[i] = kd_ece_bin(p[label], s->bins);
        y->nll[i] = nll ? nll[i] : -log(p[label] > KD_NLL_CLIP ? p[label] : KD_NLL_CLIP);
        double brier = 0.0;
        for (size_t k = 0; k < C; k++) {
            double d = p[k] - (k == (size_t)label ? 1.0 : 0.0);
            brier += d * d;
        }
        y->brier[i] = brier;
    }
    return 0;
}

void kd_ce_scratch_free(kd_ce_scratch *sc)
{
    free(sc->width);
    free(sc->mass);
    free(sc->upper);
    free(sc->classwise);
    memset(sc, 0, sizeof *sc);
}

int kd_ce_scratch_init(kd_ce_scratch *sc, const kd_ce_sample *s)
{
    size_t M = (size_t)s->bins;
    sc->width = malloc(M * sizeof *sc->width);
    sc->mass = malloc(M * sizeof *sc->mass);
    sc->upper = malloc(M * sizeof *sc->upper);
    sc->classwise = malloc(M * (size_t)s->classes * sizeof *sc->classwise);
    if (!sc->width || !sc->mass || !sc->upper || !sc->classwise) {
        kd_ce_scratch_free(sc);
        return -1;
    }
    return 0;
}

/* The weighted column sums of low, one row read once for all g weight vectors; each
 * class is its own lane, so the AVX-512 and generic variants give the same bits. */
KD_INLINE_BODY void low_mass_body(const kd_ce_sample *s, const int32_t *const *w, int g, double *mass)
{
    size_t C = (size_t)s->classes;
    memset(mass, 0, (size_t)g * C * sizeof *mass);
    for (int64_t i = 0; i < s->n; i++) {
        const double *row = s->low + (size_t)i * C;
        for (int j = 0; j < g; j++) {
            int32_t wi = w && w[j] ? w[j][i] : 1;
            if (!wi) continue;
            double f = (double)wi, *m = mass + (size_t)j * C;
            for (size_t k = 0; k < C; k++) m[k] += f * row[k];
        }
    }
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static void low_mass_avx512(const kd_ce_sample *s, const int32_t *const *w, int g, double *mass)
{
    low_mass_body(s, w, g, mass);
}
#endif

static void low_mass_generic(const kd_ce_sample *s, const int32_t *const *w, int g, double *mass)
{
    low_mass_body(s, w, g, mass);
}

void kd_ce_low_mass(const kd_ce_sample *s, const int32_t *const *w, int g, double *mass)
{
#if KD_HAVE_AVX512_VARIANTS
    if (kd_cpu_has_avx512()) {
        low_mass_avx512(s, w, g, mass);
        return;
    }
#endif
    low_mass_generic(s, w, g, mass);
}

/* Equal-width ECE and MCE from the bins of sc->width. */
static void equal_width(const kd_ce_sample *s, const kd_ce_outcome *y, const int32_t *w, kd_ce_scratch *sc, double *v)
{
    memset(sc->width, 0, (size_t)s->bins * sizeof *sc->width);
    for (int64_t i = 0; i < s->n; i++) {
        int32_t wi = w ? w[i] : 1;
        if (!wi) continue;
        kd_calib_bin *bin = &sc->width[s->width_bin[i]];
        bin->count += wi;
        bin->confidence_sum += wi * s->conf[i];
        bin->correct += wi * y->correct[i];
    }
    double ece = 0.0, mce = 0.0;
    for (int b = 0; b < s->bins; b++) {
        const kd_calib_bin *bin = &sc->width[b];
        if (!bin->count) continue;
        double gap = fabs(bin->correct - bin->confidence_sum);
        ece += gap / (double)s->n;
        if (gap / (double)bin->count > mce) mce = gap / (double)bin->count;
    }
    v[KD_METRIC_ECE] = ece;
    v[KD_METRIC_MCE] = mce;
}

/* The metrics of the confidence order: the equal-mass bins (a row of weight w covers
 * the next w ranks, split where they cross a bin edge) and the KS running sum (its
 * extremes are at the end of a row's copies: within them it moves one way). */
static void by_rank(const kd_ce_sample *s, const kd_ce_outcome *y, const int32_t *w, kd_ce_scratch *sc, double *v)
{
    int64_t n = s->n;
    int M = s->bins;
    memset(sc->mass, 0, (size_t)M * sizeof *sc->mass);
    for (int b = 0; b < M; b++) sc->upper[b] = NAN;
    int b = 0;
    int64_t pos = 0, edge = n / M; /* the first rank past bin b: floor((b + 1) n / M) */
    while (b < M - 1 && edge == 0) edge = (int64_t)(b + 2) * n / M, b++;
    double run = 0.0, ks = 0.0;
    for (int64_t r = 0; r < n; r++) {
        int64_t i = s->order[r];
        int64_t wi = w ? w[i] : 1;
        if (!wi) continue;
        double c = s->conf[i], right = y->correct[i];
        run += (double)wi * (c - right);
        if (fabs(run) > ks) ks = fabs(run);
        while (wi > 0) {
            int64_t take = edge - pos < wi ? edge - pos : wi;
            kd_calib_bin *bin = &sc->mass[b];
            bin->count += take;
            bin->confidence_sum += (double)take * c;
            bin->correct += (double)take * right;
            sc->upper[b] = c;
            pos += take;
            wi -= take;
            while (pos == edge && b < M - 1) edge = (int64_t)(b + 2) * n / M, b++;
        }
    }
    double ece = 0.0, sq = 0.0, debiased = 0.0;
    for (int k = 0; k < M; k++) {
        const kd_calib_bin *bin = &sc->mass[k];
        if (!bin->count) continue;
        double nb = (double)bin->count, gap = bin->correct - bin->confidence_sum; /* n_b (acc_b - conf_b) */
        ece += fabs(gap) / (double)n;
        sq += gap * gap / nb / (double)n; /* (n_b / n) (acc_b - conf_b)^2 */
        if (bin->count >= 2) {
            double acc = bin->correct / nb;
            debiased += nb / (double)n * ((gap / nb) * (gap / nb) - acc * (1.0 - acc) / (nb - 1.0));
        }
    }
    v[KD_METRIC_ECE_EQUAL_MASS] = ece;
    v[KD_METRIC_RMS_CE] = sqrt(sq);
    v[KD_METRIC_DEBIASED_CE] = sqrt(debiased > 0.0 ? debiased : 0.0);
    v[KD_METRIC_KS_CE] = ks / (double)n;
}

/* S[k, b] = sum over rows whose p_k falls in bin b of w (1[y = k] - p_k), gathered as
 * the label's term, the sparse entries above the first bin, and the dense first bin. */
static double classwise(const kd_ce_sample *s, const kd_ce_outcome *y, const int32_t *w, const double *low_mass,
                        kd_ce_scratch *sc)
{
    int M = s->bins, C = s->classes;
    double *S = sc->classwise; /* (classes, bins) */
    memset(S, 0, (size_t)M * (size_t)C * sizeof *S);
    for (int64_t i = 0; i < s->n; i++) {
        int32_t wi = w ? w[i] : 1;
        if (!wi) continue;
        S[(size_t)y->label[i] * (size_t)M + (size_t)y->label_bin[i]] += wi;
        for (int64_t e = s->sparse_start[i]; e < s->sparse_start[i + 1]; e++)
            S[(size_t)s->sparse_class[e] * (size_t)M + (size_t)s->sparse_bin[e]] -= wi * s->sparse_p[e];
    }
    double total = 0.0;
    for (int k = 0; k < C; k++) {
        double *row = S + (size_t)k * (size_t)M, ece = 0.0;
        row[0] -= low_mass[k];
        for (int b = 0; b < M; b++) ece += fabs(row[b]);
        total += ece / (double)s->n;
    }
    return total / C;
}

void kd_ce_evaluate(const kd_ce_sample *s, const kd_ce_outcome *y, const int32_t *w, const double *low_mass,
                    kd_ce_scratch *sc, double *v)
{
    if (y->nll) {
        double right = 0.0, nll = 0.0, brier = 0.0;
        for (int64_t i = 0; i < s->n; i++) {
            int32_t wi = w ? w[i] : 1;
            if (!wi) continue;
            right += wi * y->correct[i];
            nll += wi * y->nll[i];
            brier += wi * y->brier[i];
        }
        v[KD_METRIC_ACCURACY] = right / (double)s->n;
        v[KD_METRIC_NLL] = nll / (double)s->n;
        v[KD_METRIC_BRIER] = brier / (double)s->n;
    } else {
        v[KD_METRIC_ACCURACY] = v[KD_METRIC_NLL] = v[KD_METRIC_BRIER] = NAN;
    }
    equal_width(s, y, w, sc, v);
    by_rank(s, y, w, sc, v);
    v[KD_METRIC_CLASSWISE_ECE] = classwise(s, y, w, low_mass, sc);
}

double kd_ce_percentile(const double *sorted, int count, double p)
{
    double pos = p * (count - 1);
    int k = (int)floor(pos);
    if (k >= count - 1) return sorted[count - 1];
    return sorted[k] + (pos - k) * (sorted[k + 1] - sorted[k]);
}
