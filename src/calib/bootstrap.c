/* bootstrap.c - the resampling behind the intervals and the noise floors
 * (ce_estimators.h): bootstrap resamples as multinomial counts, labels drawn from
 * the model's own probabilities.
 *
 * Resample r draws its n rows with a kd_rng seeded from kd_rng_at(key, r); label
 * draw d takes row i's uniform from kd_rng_at(kd_rng_at(key', d), i). Each resample
 * and draw is computed whole by one thread in a fixed order, so the values do not
 * depend on the thread count or on which thread ran what. Resamples go in groups of GROUP, so that the dense pass of
 * the classwise ECE (kd_ce_low_mass) reads each row of probabilities once a group. */
#include "calib/ce_estimators.h"

#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GROUP 8

/* Stream keys: the bootstrap's and the noise floor's generators never coincide. */
static uint64_t stream_key(uint64_t seed, uint64_t stream) { return kd_rng_at(seed, stream); }

/* n draws uniform in [0, n), counted into w (n). Below 2^32 rows by Lemire's
 * multiply-shift with rejection (2019: exactly uniform, no division a draw). */
static void draw_counts(int32_t *w, int64_t n, uint64_t key, int r)
{
    kd_rng rng;
    kd_rng_seed(&rng, kd_rng_at(key, (uint64_t)r));
    memset(w, 0, (size_t)n * sizeof *w);
    if (n > (int64_t)UINT32_MAX) {
        for (int64_t j = 0; j < n; j++) w[kd_rng_below(&rng, (uint64_t)n)]++;
        return;
    }
    uint32_t range = (uint32_t)n, threshold = (uint32_t)(-range) % range; /* 2^32 mod n */
    for (int64_t j = 0; j < n; j++) {
        uint64_t m;
        do m = (kd_rng_next(&rng) >> 32) * range;
        while ((uint32_t)m < threshold);
        w[m >> 32]++;
    }
}

int kd_ce_bootstrap(const kd_ce_sample *a, const kd_ce_outcome *ya, const kd_ce_sample *b, const kd_ce_outcome *yb,
                    int resamples, uint64_t seed, double *values, double *values_b)
{
    int64_t n = a->n;
    size_t C = (size_t)a->classes;
    uint64_t key = stream_key(seed, 0);
    int groups = (resamples + GROUP - 1) / GROUP, failed = 0;
#pragma omp parallel
    {
        kd_ce_scratch sc = {0};
        int32_t *w = malloc((size_t)GROUP * (size_t)n * sizeof *w); /* (GROUP, n) */
        double *mass = malloc(2 * GROUP * C * sizeof *mass);          /* (2, GROUP, classes) */
        bool ok = w && mass && kd_ce_scratch_init(&sc, a) == 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int grp = 0; grp < groups; grp++) {
            if (!ok) continue;
            int first = grp * GROUP, g = resamples - first < GROUP ? resamples - first : GROUP;
            const int32_t *rows[GROUP];
            for (int j = 0; j < g; j++) {
                draw_counts(w + (size_t)j * (size_t)n, n, key, first + j);
                rows[j] = w + (size_t)j * (size_t)n;
            }
            kd_ce_low_mass(a, rows, g, mass);
            if (b) kd_ce_low_mass(b, rows, g, mass + GROUP * C);
            for (int j = 0; j < g; j++) {
                kd_ce_evaluate(a, ya, rows[j], mass + (size_t)j * C, &sc, values + (size_t)(first + j) * KD_METRIC_COUNT);
                if (b)
                    kd_ce_evaluate(b, yb, rows[j], mass + (GROUP + (size_t)j) * C, &sc,
                                   values_b + (size_t)(first + j) * KD_METRIC_COUNT);
            }
        }
        kd_ce_scratch_free(&sc);
        free(w);
        free(mass);
    }
    return failed ? -1 : 0;
}

/* The first class whose cumulative probability exceeds u (cum is one row's running sums). */
static int32_t search(const double *cum, int classes, double u)
{
    int lo = 0, hi = classes - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (u < cum[mid]) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

int kd_ce_noise_floor(const kd_ce_sample *s, int draws, uint64_t seed, double *values)
{
    int64_t n = s->n;
    int C = s->classes;
    double *cum = malloc((size_t)n * (size_t)C * sizeof *cum); /* (n, classes) running sums of p */
    if (!cum) return -1;
    for (int64_t i = 0; i < n; i++) {
        double run = 0.0;
        for (int k = 0; k < C; k++) cum[(size_t)i * (size_t)C + (size_t)k] = (run += s->probs[(size_t)i * (size_t)C + (size_t)k]);
    }
    uint64_t key = stream_key(seed, 1);
    int groups = (draws + GROUP - 1) / GROUP, failed = 0;
#pragma omp parallel
    {
        kd_ce_scratch sc = {0};
        kd_ce_outcome y[GROUP];
        memset(y, 0, sizeof y);
        bool ok = kd_ce_scratch_init(&sc, s) == 0;
        for (int j = 0; j < GROUP; j++) {
            y[j].correct = malloc((size_t)n);
            y[j].label = malloc((size_t)n * sizeof *y[j].label);
            y[j].label_bin = malloc((size_t)n * sizeof *y[j].label_bin);
            ok = ok && y[j].correct && y[j].label && y[j].label_bin;
        }
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int grp = 0; grp < groups; grp++) {
            if (!ok) continue;
            int first = grp * GROUP, g = draws - first < GROUP ? draws - first : GROUP;
            uint64_t keys[GROUP];
            for (int j = 0; j < g; j++) keys[j] = kd_rng_at(key, (uint64_t)(first + j));
            /* draw d's label of row i from the counter-based stream kd_rng_at(key_d, i):
             * a group draws row by row, each row's running sums read once */
            for (int64_t i = 0; i < n; i++) {
                const double *row = cum + (size_t)i * (size_t)C;
                for (int j = 0; j < g; j++) {
                    double u = (double)(kd_rng_at(keys[j], (uint64_t)i) >> 11) * 0x1.0p-53 * row[C - 1];
                    if (!(u < row[C - 1])) u = nextafter(row[C - 1], 0.0); /* the product rounded up */
                    int32_t k = search(row, C, u);
                    y[j].label[i] = k;
                    y[j].correct[i] = k == s->top[i];
                    y[j].label_bin[i] = kd_ece_bin(s->probs[(size_t)i * (size_t)C + (size_t)k], s->bins);
                }
            }
            for (int j = 0; j < g; j++)
                kd_ce_evaluate(s, &y[j], NULL, s->low_sum, &sc, values + (size_t)(first + j) * KD_METRIC_COUNT);
        }
        kd_ce_scratch_free(&sc);
        for (int j = 0; j < GROUP; j++) kd_ce_outcome_free(&y[j]);
    }
    free(cum);
    return failed ? -1 : 0;
}
