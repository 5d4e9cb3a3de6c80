/* binning.c - see binning.h. Isotonic regression and scaling-binning work on the
 * softmax columns P (classes, n): class k's probabilities contiguous, so each class is
 * fitted on its own (threaded over classes; a class's result never depends on the
 * thread count). Histogram binning needs only each bin's counts, taken from the logits
 * row by row (binning_softmax.c); Platt's fits are calib/platt.c. */
#include "calib/binning.h"

#include "calib/binning_internal.h"
#include "calib/isotonic.h"
#include "calib/metrics.h"
#include "calib/platt.h"
#include "core/rng.h"
#include "core/simd.h"

#if KD_HAVE_AVX512_VARIANTS
#include <immintrin.h>
#endif

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void kd_binning_options_default(kd_binning_options *o)
{
    o->bins = 15;
    o->seed = 0;
}

const char *kd_binning_name(kd_binning_kind kind)
{
    switch (kind) {
    case KD_BINNING_HISTOGRAM: return "histogram";
    case KD_BINNING_ISOTONIC: return "isotonic";
    case KD_BINNING_SCALING_BINNING: return "scaling-binning";
    }
    return "unknown";
}

void kd_binning_split(int64_t n, uint64_t seed, int64_t *order)
{
    kd_rng rng;
    kd_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)kd_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

void kd_binning_free(kd_binning *b)
{
    free(b->value);
    free(b->edge);
    free(b->platt);
    free(b->x);
    free(b->y);
    free(b->used);
    free(b->offset);
    memset(b, 0, sizeof *b);
}

int64_t kd_binning_argmax_changes(const float *logits, const double *probs, int64_t n, int classes)
{
    int64_t changed = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        const double *p = probs + (size_t)i * (size_t)classes;
        int top_z = 0, top_p = 0;
        for (int c = 1; c < classes; c++) {
            if (z[c] > z[top_z]) top_z = c;
            if (p[c] > p[top_p]) top_p = c;
        }
        changed += top_z != top_p;
    }
    return changed;
}

/* ---- sorting: LSD radix sort of probabilities by their bits ---- */

/* A probability p in [0, 1] (sign bit 0, exponent's top bit 0) as a 63-bit key whose
 * order is p's, shifted up one bit to carry a tag: keys order (p, tag) as sklearn's
 * lexsort((y, X)) does. */
static uint64_t key_of(double p, unsigned tag)
{
    uint64_t u;
    memcpy(&u, &p, sizeof u);
    return u << 1 | tag;
}

static double value_of(uint64_t key)
{
    uint64_t u = key >> 1;
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

#define RADIX_BITS 11
#define RADIX_PASSES 6 /* 66 bits >= 63 */
#define RADIX_SIZE (1 << RADIX_BITS)

/* Sorts key (n < 2^32) ascending, stable; key_tmp has room for n and count for
 * RADIX_PASSES x RADIX_SIZE (32-bit counts: half the cache of 64-bit ones). One pass counts every digit, then a pass a digit of 11
 * bits, skipped where every key shares it: 6 passes at most, about 12 times faster
 * than qsort on 50,000 keys. */
static void radix_sort(uint64_t *key, uint64_t *key_tmp, uint32_t *count, int64_t n)
{
    memset(count, 0, RADIX_PASSES * RADIX_SIZE * sizeof *count);
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < RADIX_PASSES; d++) count[d * RADIX_SIZE + ((key[i] >> (RADIX_BITS * d)) & (RADIX_SIZE - 1))]++;
    uint64_t *src = key, *dst = key_tmp;
    for (int d = 0; d < RADIX_PASSES; d++) {
        uint32_t *c = count + d * RADIX_SIZE, total = 0;
        int shift = RADIX_BITS * d;
        if (c[(key[0] >> shift) & (RADIX_SIZE - 1)] == (uint32_t)n) continue; /* one digit for all: order unchanged */
        for (int v = 0; v < RADIX_SIZE; v++) {
            uint32_t t = c[v];
            c[v] = total;
            total += t;
        }
        for (int64_t i = 0; i < n; i++) dst[c[(src[i] >> shift) & (RADIX_SIZE - 1)]++] = src[i];
        uint64_t *t = src;
        src = dst, dst = t;
    }
    if (src != key) memcpy(key, src, (size_t)n * sizeof *key);
}

/* ---- one class ---- */

/* A thread's scratch, n of each. */
typedef struct work {
    uint64_t *key, *key_tmp;
    double *x, *y, *tx, *ty;
    int32_t *bin;    /* scaling-binning: each row's bin */
    int64_t *count;  /* bins */
    uint32_t *digits; /* the radix sort's digit counts */
} work;

static void work_free(work *w)
{
    free(w->key);
    free(w->key_tmp);
    free(w->x);
    free(w->y);
    free(w->tx);
    free(w->ty);
    free(w->count);
    free(w->bin);
    free(w->digits);
}

static int work_alloc(work *w, int64_t n, int bins)
{
    size_t m = (size_t)n;
    w->key = malloc(m * sizeof *w->key);
    w->key_tmp = malloc(m * sizeof *w->key_tmp);
    w->x = malloc(m * sizeof *w->x);
    w->y = malloc(m * sizeof *w->y);
    w->tx = malloc(m * sizeof *w->tx);
    w->ty = malloc(m * sizeof *w->ty);
    w->count = malloc((size_t)bins * sizeof *w->count);
    w->bin = malloc(m * sizeof *w->bin);
    w->digits = malloc(RADIX_PASSES * RADIX_SIZE * sizeof *w->digits);
    return w->digits && w->key && w->key_tmp && w->x && w->y && w->tx && w->ty && w->count && w->bin ? 0 : -1;
}

/* Histogram binning of every class from its counts (kd_binning_histogram_counts):
 * value (classes, bins) the fraction of positives in a bin (the midpoint when empty);
 * sse (classes) each class's squared error on the fitting rows, summed by bin: count -
 * hits negatives at value v, hits positives at v - 1. */
static void fit_histogram(const int64_t *count, const int64_t *hits, int classes, int bins, double *value, double *sse)
{
    for (int k = 0; k < classes; k++) {
        double e = 0.0;
        for (int m = 0; m < bins; m++) {
            size_t j = (size_t)k * (size_t)bins + (size_t)m;
            double v = value[j] = count[j] ? (double)hits[j] / (double)count[j] : (m + 0.5) / bins;
            e += (double)(count[j] - hits[j]) * (v * v) + (double)hits[j] * ((v - 1.0) * (v - 1.0));
        }
        sse[k] = e;
    }
}

/* Isotonic regression of class k: its thresholds into freshly allocated *tx, *ty
 * (count *t); returns the squared error, or NAN when out of memory. */
static double fit_isotonic(const double *p, const int32_t *labels, int64_t n, int k, work *w, double **tx, double **ty,
                           int64_t *t)
{
    for (int64_t i = 0; i < n; i++) w->key[i] = key_of(p[i], labels[i] == k);
    radix_sort(w->key, w->key_tmp, w->digits, n);
    for (int64_t i = 0; i < n; i++) w->x[i] = value_of(w->key[i]), w->y[i] = (double)(w->key[i] & 1);
    double sse = 0.0;
    int64_t count = kd_isotonic_fit(w->x, w->y, n, w->tx, w->ty, &sse);
    *tx = count > 0 ? malloc((size_t)count * sizeof **tx) : NULL;
    *ty = count > 0 ? malloc((size_t)count * sizeof **ty) : NULL;
    if (!*tx || !*ty) return NAN;
    memcpy(*tx, w->tx, (size_t)count * sizeof **tx);
    memcpy(*ty, w->ty, (size_t)count * sizeof **ty);
    *t = count;
    return sse;
}

/* ---- scaling-binning ---- */

/* The bin of g among used edges (upper edges, the last 1): the first edge >= g. */
static int sb_bin(const double *edge, int used, double g)
{
    int lo = 0, hi = used - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (edge[mid] >= g) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static void sb_bins_avx512(const double *edge, int used, const double *g, int64_t n, int32_t *bin)
{
    for (int64_t i = 0; i < n; i += 8) {
        __mmask8 k = n - i >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - i)) - 1);
        __m512d gv = _mm512_maskz_loadu_pd(k, g + i);
        __m256i c = _mm256_setzero_si256();
        for (int j = 0; j < used - 1; j++)
            c = _mm256_mask_add_epi32(c, _mm512_cmp_pd_mask(gv, _mm512_set1_pd(edge[j]), _CMP_GT_OQ), c,
                                      _mm256_set1_epi32(1));
        _mm256_mask_storeu_epi32(bin + i, k, c);
    }
}
#endif

/* bin (n): sb_bin of each g (n) (never NaN), as the count of inner edges below it:
 * no branch to mispredict on every row. */
static void sb_bins(const double *edge, int used, const double *g, int64_t n, int32_t *bin)
{
#if KD_HAVE_AVX512_VARIANTS
    if (kd_cpu_has_avx512()) {
        sb_bins_avx512(edge, used, g, n, bin);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        int c = 0;
        for (int j = 0; j < used - 1; j++) c += g[i] > edge[j];
        bin[i] = c;
    }
}

/* Scaling-binning of class k on the split order (rows order[0, n/2) fit Platt,
 * order[n/2, n) the bins): fills platt[2], edge and value (bins each, *used of them);
 * returns the squared error on all n rows and the Platt steps (-1: unconverged). */
static double fit_scaling_binning(const double *p, const int32_t *labels, int64_t n, int k, int bins,
                                  const int64_t *order, work *w, double *platt, double *edge, double *value, int *used,
                                  int *steps)
{
    int64_t n1 = n / 2, m = n - n1;
    double *x = w->x, *g = w->ty, *x1 = w->tx, *y1 = w->y; /* (n) each */
    kd_platt_logits(p, n, x);                              /* once: every Newton step reads them */
    for (int64_t i = 0; i < n1; i++) x1[i] = x[order[i]], y1[i] = labels[order[i]] == k;
    *steps = kd_platt_fit(x1, y1, n1, platt);
    kd_platt_outputs(platt[0], platt[1], x, n, g); /* g of every row: the bins and the error read it */
    for (int64_t i = 0; i < m; i++) w->key[i] = key_of(g[order[n1 + i]], 0);
    radix_sort(w->key, w->key_tmp, w->digits, m);
    double *s = w->tx; /* g on the second part, sorted (x1 is done with) */
    for (int64_t i = 0; i < m; i++) s[i] = value_of(w->key[i]);
    int u = 0;
    for (int j = 1; j <= bins; j++) {
        int64_t r = (int64_t)j * m / bins; /* the first rank of bin j (0-based), m >= bins so r >= 1 */
        double e = j < bins ? (s[r - 1] + s[r]) / 2 : 1.0;
        if (e > 1.0) e = 1.0;
        if (u == 0 || e > edge[u - 1]) edge[u++] = e; /* ties: a repeated edge is dropped */
    }
    int64_t *count = w->count;
    for (int j = 0; j < u; j++) count[j] = 0, value[j] = 0.0;
    for (int64_t i = 0, j = 0; i < m; i++) { /* s ascending: the bins in order */
        while (j < u - 1 && s[i] > edge[j]) j++;
        count[j]++;
        value[j] += s[i];
    }
    for (int j = 0; j < u; j++) value[j] = count[j] ? value[j] / (double)count[j] : ((j ? edge[j - 1] : 0.0) + edge[j]) / 2;
    *used = u;
    /* the error on all n rows */
    int32_t *bin = w->bin;
    sb_bins(edge, u, g, n, bin);
    double sse = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = value[bin[i]] - (labels[i] == k);
        sse += d * d;
    }
    return sse;
}

/* ---- fit and apply ---- */

/* Finite logits and labels in range, else an error naming the row. */
static int check_inputs(const char *name, const float *logits, const int32_t *labels, int64_t n, int classes,
                        kd_error *err)
{
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= classes)
            return kd_error_set(err, KD_ERR_DATA, "%s calibration: label %d of row %lld is outside 0..%d", name,
                                (int)labels[i], (long long)i, classes - 1);
        const float *z = logits + (size_t)i * (size_t)classes;
        for (int c = 0; c < classes; c++)
            if (!isfinite(z[c]))
                return kd_error_set(err, KD_ERR_DATA,
                                    "%s calibration: expected finite logits, found %s in row %lld, class %d", name,
                                    isnan(z[c]) ? "NaN" : "Inf", (long long)i, c);
    }
    return KD_OK;
}

/* The tables of the kind, for `classes` classes of `bins` bins (isotonic's are made
 * class by class). */
static int alloc_tables(kd_binning *b, int64_t n)
{
    size_t C = (size_t)b->classes, B = (size_t)b->bins;
    switch (b->kind) {
    case KD_BINNING_HISTOGRAM: return (b->value = malloc(C * B * sizeof *b->value)) ? 0 : -1;
    case KD_BINNING_ISOTONIC: return (b->offset = calloc(C + 1, sizeof *b->offset)) ? 0 : -1;
    case KD_BINNING_SCALING_BINNING:
        b->value = malloc(C * B * sizeof *b->value);
        b->edge = malloc(C * B * sizeof *b->edge);
        b->platt = malloc(2 * C * sizeof *b->platt);
        b->used = malloc(C * sizeof *b->used);
        b->offset = malloc((size_t)n * sizeof *b->offset); /* the split, until the fit ends */
        return b->value && b->edge && b->platt && b->used && b->offset ? 0 : -1;
    }
    return -1;
}

/* Packs the classes' isotonic thresholds into b->x, b->y with offsets. */
static int pack_isotonic(kd_binning *b, double **tx, double **ty, const int64_t *count)
{
    int64_t total = 0;
    for (int k = 0; k < b->classes; k++) b->offset[k] = total, total += count[k];
    b->offset[b->classes] = total;
    b->x = malloc((size_t)total * sizeof *b->x);
    b->y = malloc((size_t)total * sizeof *b->y);
    if (!b->x || !b->y) return -1;
    for (int k = 0; k < b->classes; k++) {
        memcpy(b->x + b->offset[k], tx[k], (size_t)count[k] * sizeof *b->x);
        memcpy(b->y + b->offset[k], ty[k], (size_t)count[k] * sizeof *b->y);
    }
    return 0;
}

int kd_binning_fit(kd_binning *b, kd_binning_kind kind, const float *logits, const int32_t *labels, int64_t n,
                   int classes, const kd_binning_options *o, kd_error *err)
{
    memset(b, 0, sizeof *b);
    kd_binning_options defaults;
    kd_binning_options_default(&defaults);
    if (!o) o = &defaults;
    const char *name = kd_binning_name(kind);
    bool binned = kind != KD_BINNING_ISOTONIC;
    if (classes < 1) return kd_error_set(err, KD_ERR_DATA, "%s calibration: expected at least 1 class, found %d", name, classes);
    if (binned && (o->bins < 1 || o->bins > KD_MAX_BINS))
        return kd_error_set(err, KD_ERR_CONFIG, "%s calibration: bins: expected 1 to %d, found %d", name, KD_MAX_BINS,
                            o->bins);
    int bins = binned ? o->bins : 0;
    int64_t need = kind == KD_BINNING_SCALING_BINNING ? 2 * (int64_t)bins : 1;
    if (n < need) {
        if (kind == KD_BINNING_SCALING_BINNING)
            return kd_error_set(err, KD_ERR_DATA,
                                "%s calibration: expected at least %lld rows (half fit Platt scaling, half fill %d bins), "
                                "found %lld", name, (long long)need, bins, (long long)n);
        return kd_error_set(err, KD_ERR_DATA, "%s calibration: expected at least 1 row, found %lld", name, (long long)n);
    }
    if (n > INT32_MAX) /* the radix sort counts in 32 bits */
        return kd_error_set(err, KD_ERR_DATA, "%s calibration: expected at most %d rows, found %lld", name, INT32_MAX,
                            (long long)n);
    int rc = check_inputs(name, logits, labels, n, classes, err);
    if (rc) return rc;
    b->kind = kind;
    b->classes = classes;
    b->bins = bins;
    bool histogram = kind == KD_BINNING_HISTOGRAM; /* needs no p, only its bins' counts */
    double *P = histogram ? NULL : malloc((size_t)n * (size_t)classes * sizeof *P); /* (classes, n) */
    int64_t *bin_count = histogram ? malloc(2 * (size_t)classes * (size_t)bins * sizeof *bin_count) : NULL;
    double *sse = calloc((size_t)classes, sizeof *sse);
    double **tx = calloc((size_t)classes, sizeof *tx), **ty = calloc((size_t)classes, sizeof *ty);
    int64_t *count = calloc((size_t)classes, sizeof *count);
    int *steps = calloc((size_t)classes, sizeof *steps);
    bool failed = (histogram ? !bin_count : !P) || !sse || !tx || !ty || !count || !steps || alloc_tables(b, n) != 0;
    if (!failed && histogram) {
        size_t cells = (size_t)classes * (size_t)bins;
        failed = kd_binning_histogram_counts(logits, labels, n, classes, bins, bin_count, bin_count + cells) != 0;
        if (!failed) fit_histogram(bin_count, bin_count + cells, classes, bins, b->value, sse);
    } else if (!failed) {
        failed = kd_binning_softmax_columns(logits, n, classes, P) != 0;
    }
    if (!failed && !histogram) {
        if (kind == KD_BINNING_SCALING_BINNING) kd_binning_split(n, o->seed, b->offset);
#pragma omp parallel
        {
            work w = {0};
            bool ok = work_alloc(&w, n, bins > 0 ? bins : 1) == 0;
#pragma omp for schedule(dynamic)
            for (int k = 0; k < classes; k++) {
                if (!ok) continue;
                const double *p = P + (size_t)k * (size_t)n;
                size_t at = (size_t)k * (size_t)bins;
                switch (kind) {
                case KD_BINNING_HISTOGRAM: break; /* above */
                case KD_BINNING_ISOTONIC: sse[k] = fit_isotonic(p, labels, n, k, &w, &tx[k], &ty[k], &count[k]); break;
                case KD_BINNING_SCALING_BINNING:
                    sse[k] = fit_scaling_binning(p, labels, n, k, bins, b->offset, &w, b->platt + 2 * k, b->edge + at,
                                                 b->value + at, &b->used[k], &steps[k]);
                    break;
                }
            }
            work_free(&w);
            if (!ok) {
#pragma omp atomic write
                failed = true;
            }
        }
    }
    if (!failed && kind == KD_BINNING_SCALING_BINNING) {
        free(b->offset); /* the split is done with */
        b->offset = NULL;
        for (int k = 0; k < classes; k++) {
            if (steps[k] < 0) b->platt_unconverged++;
            else if (steps[k] > b->platt_iterations) b->platt_iterations = steps[k];
        }
    }
    double total = 0.0;
    for (int k = 0; !failed && k < classes; k++) total += sse[k]; /* in class order: the thread count changes nothing */
    failed = failed || isnan(total);                                /* an isotonic class out of memory */
    if (!failed && kind == KD_BINNING_ISOTONIC) failed = pack_isotonic(b, tx, ty, count) != 0;
    b->objective = total / (double)n;
    for (int k = 0; tx && k < classes; k++) free(tx[k]), free(ty[k]);
    free(P);
    free(bin_count);
    free(sse);
    free(tx);
    free(ty);
    free(count);
    free(steps);
    if (failed) {
        kd_binning_free(b);
        return kd_error_set(err, KD_ERR_IO, "%s calibration: out of memory for %lld rows of %d classes", name,
                            (long long)n, classes);
    }
    return KD_OK;
}

/* Class k's calibrated value of p. */
static double calibrate(const kd_binning *b, int k, double p)
{
    if (p != p) return p;
    size_t at = (size_t)k * (size_t)b->bins;
    switch (b->kind) {
    case KD_BINNING_HISTOGRAM: return b->value[at + (size_t)kd_ece_bin(p, b->bins)];
    case KD_BINNING_ISOTONIC:
        return kd_isotonic_predict(b->x + b->offset[k], b->y + b->offset[k], b->offset[k + 1] - b->offset[k], p);
    case KD_BINNING_SCALING_BINNING: {
        /* the fit's arithmetic, so a g tied with a fitting row's lands in the same bin */
        double x, g;
        kd_platt_logits(&p, 1, &x);
        kd_platt_outputs(b->platt[2 * k], b->platt[2 * k + 1], &x, 1, &g);
        return b->value[at + (size_t)sb_bin(b->edge + at, b->used[k], g)];
    }
    }
    return NAN;
}

/* Scaling-binning by columns: one vectorised Platt pass per class over all rows (the
 * per-value path chooses its SIMD variant at every call). Returns false when out of
 * memory, and the caller takes the per-value path. */
static bool apply_scaling_binning_columns(const kd_binning *b, const float *logits, int64_t n, double *probs)
{
    int C = b->classes;
    double *column = malloc((size_t)n * sizeof *column), *x = malloc((size_t)n * sizeof *x),
           *g = malloc((size_t)n * sizeof *g);
    if (!column || !x || !g) {
        free(column);
        free(x);
        free(g);
        return false;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        kd_binning_softmax_row(logits + (size_t)i * (size_t)C, C, probs + (size_t)i * (size_t)C);
    for (int k = 0; k < C; k++) {
        size_t at = (size_t)k * (size_t)b->bins;
        for (int64_t i = 0; i < n; i++) column[i] = probs[(size_t)i * (size_t)C + (size_t)k];
        kd_platt_logits(column, n, x);
        kd_platt_outputs(b->platt[2 * k], b->platt[2 * k + 1], x, n, g);
        for (int64_t i = 0; i < n; i++)
            probs[(size_t)i * (size_t)C + (size_t)k] =
                column[i] != column[i] ? column[i] : b->value[at + (size_t)sb_bin(b->edge + at, b->used[k], g[i])];
    }
    for (int64_t i = 0; i < n; i++) {
        double *p = probs + (size_t)i * (size_t)C, sum = 0.0;
        for (int k = 0; k < C; k++) sum += p[k];
        for (int k = 0; k < C; k++) p[k] = sum == 0.0 ? 1.0 / C : p[k] / sum;
    }
    free(column);
    free(x);
    free(g);
    return true;
}

void kd_binning_apply(const kd_binning *b, const float *logits, int64_t n, double *probs)
{
    int C = b->classes;
    if (b->kind == KD_BINNING_SCALING_BINNING && apply_scaling_binning_columns(b, logits, n, probs)) return;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double *p = probs + (size_t)i * (size_t)C; /* (C): the softmax, then calibrated in place */
        kd_binning_softmax_row(logits + (size_t)i * (size_t)C, C, p);
        double sum = 0.0;
        for (int k = 0; k < C; k++) sum += (p[k] = calibrate(b, k, p[k]));
        /* every calibrated value 0: uniform, as sklearn's CalibratedClassifierCV */
        for (int k = 0; k < C; k++) p[k] = sum == 0.0 ? 1.0 / C : p[k] / sum;
    }
}
