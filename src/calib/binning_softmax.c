/* binning_softmax.c - see binning_internal.h. The softmax of n x C logits is n C exps,
 * most of histogram binning's time with libm's exp (about 12 ns each): the AVX-512 exp
 * of core/vexp.h takes about a tenth of that, within a few ulp.
 *
 * Histogram binning needs only the bin of each p, and must find the bin of the exact
 * p (the fixtures compute p with libm's exp, and a p = m/M exactly, from tied logits,
 * is common). So each row is worked with the vector exp, and t = p M is checked: a t
 * within 1e-9 t of an inner edge 1..M-1 (the vector p is within about C + 4 ulp of the
 * exact one, ~1e-13 for C = 1000) sends the row to the exact path; any other t is in
 * the same bin, ceil(t) - 1, as the exact p. */
#include "calib/binning_internal.h"

#include "calib/metrics.h"
#include "core/parallel.h"
#include "core/vexp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EDGE_MARGIN 1e-9 /* relative distance of t = p M to an edge below which the row is redone exactly */

void kd_binning_softmax_row(const float *z, int classes, double *p)
{
    double max = z[0];
    for (int c = 1; c < classes; c++)
        if (z[c] > max) max = z[c];
    double sum = 0.0;
    for (int c = 0; c < classes; c++) sum += (p[c] = exp((double)z[c] - max));
    for (int c = 0; c < classes; c++) p[c] /= sum;
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static inline __mmask8 tail_mask(int left)
{
    return left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1);
}

/* e (classes) = exp(z - max) by the vector exp; returns their sum (lanes, then across). */
KD_TARGET_AVX512 static double exp_row_avx512(const float *z, int classes, double *e)
{
    __m512d vmax = _mm512_set1_pd(-INFINITY);
    for (int c = 0; c < classes; c += 8) {
        __mmask8 m = tail_mask(classes - c);
        vmax = _mm512_max_pd(vmax, _mm512_mask_cvtps_pd(vmax, m, _mm256_maskz_loadu_ps(m, z + c)));
    }
    vmax = _mm512_set1_pd(_mm512_reduce_max_pd(vmax));
    __m512d sum = _mm512_setzero_pd();
    for (int c = 0; c < classes; c += 8) {
        __mmask8 m = tail_mask(classes - c);
        __m512d d = _mm512_maskz_sub_pd(m, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, z + c)), vmax);
        __m512d v = _mm512_maskz_mov_pd(m, kd_exp_pd(d));
        _mm512_mask_storeu_pd(e + c, m, v);
        sum = _mm512_add_pd(sum, v);
    }
    return _mm512_reduce_add_pd(sum);
}

/* bin (classes) of one row, or 0 (and nothing written) when some t is near an edge. */
KD_TARGET_AVX512 static int bins_row_avx512(const float *z, int classes, int bins, double *e, int32_t *bin)
{
    __m512d scale = _mm512_set1_pd(bins / exp_row_avx512(z, classes, e));
    const __m512d one = _mm512_set1_pd(1.0), inner = _mm512_set1_pd(bins - 1), margin = _mm512_set1_pd(EDGE_MARGIN);
    __mmask8 near = 0;
    for (int c = 0; c < classes; c += 8) {
        __mmask8 m = tail_mask(classes - c);
        __m512d t = _mm512_mul_pd(_mm512_maskz_loadu_pd(m, e + c), scale);
        __m512d r = _mm512_roundscale_pd(t, _MM_FROUND_TO_NEAREST_INT);
        __mmask8 edge = _mm512_cmp_pd_mask(r, one, _CMP_GE_OQ) & _mm512_cmp_pd_mask(r, inner, _CMP_LE_OQ);
        near |= edge & m & _mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_sub_pd(t, r)), _mm512_mul_pd(margin, r), _CMP_LE_OQ);
        __m512d b = _mm512_sub_pd(_mm512_roundscale_pd(t, _MM_FROUND_TO_POS_INF), one);
        b = _mm512_min_pd(_mm512_max_pd(b, _mm512_setzero_pd()), inner);
        _mm256_mask_storeu_epi32(bin + c, m, _mm512_cvtpd_epi32(b));
    }
    return near == 0;
}

#endif

int kd_binning_softmax_columns(const float *logits, int64_t n, int classes, double *P)
{
    bool failed = false;
#pragma omp parallel
    {
        double *e = malloc((size_t)classes * sizeof *e); /* (classes): one row, written once to each column */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            if (!e) continue;
            kd_binning_softmax_row(logits + (size_t)i * (size_t)classes, classes, e);
            for (int c = 0; c < classes; c++) P[(size_t)c * (size_t)n + (size_t)i] = e[c];
        }
        if (!e) {
#pragma omp atomic write
            failed = true;
        }
        free(e);
    }
    return failed ? -1 : 0;
}

/* Rows [begin, end) into count and hits; e (classes) and bin (classes) scratch. */
static void count_rows(const float *logits, const int32_t *labels, int64_t begin, int64_t end, int classes, int bins,
                       bool vector, double *e, int32_t *bin, int64_t *count, int64_t *hits)
{
    for (int64_t i = begin; i < end; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        bool done = false;
#if KD_HAVE_AVX512_VARIANTS
        done = vector && bins_row_avx512(z, classes, bins, e, bin);
#endif
        (void)vector;
        if (!done) { /* the exact p, as the isotonic fit and kd_binning_apply see it */
            kd_binning_softmax_row(z, classes, e);
            for (int c = 0; c < classes; c++) bin[c] = kd_ece_bin(e[c], bins);
        }
        for (int c = 0; c < classes; c++) count[(size_t)c * (size_t)bins + (size_t)bin[c]]++;
        hits[(size_t)labels[i] * (size_t)bins + (size_t)bin[labels[i]]]++;
    }
}

/* Threads count into their own tables, added at the end. */
int kd_binning_histogram_counts(const float *logits, const int32_t *labels, int64_t n, int classes, int bins,
                                int64_t *count, int64_t *hits)
{
    size_t cells = (size_t)classes * (size_t)bins;
    memset(count, 0, cells * sizeof *count);
    memset(hits, 0, cells * sizeof *hits);
    bool vector = false, failed = false;
#if KD_HAVE_AVX512_VARIANTS
    vector = kd_cpu_has_avx512();
#endif
    if (n * (int64_t)classes < KD_PARALLEL_MIN) {
        double *e = malloc((size_t)classes * sizeof *e);
        int32_t *bin = malloc((size_t)classes * sizeof *bin);
        if (e && bin) count_rows(logits, labels, 0, n, classes, bins, vector, e, bin, count, hits);
        failed = !e || !bin;
        free(e);
        free(bin);
        return failed ? -1 : 0;
    }
#pragma omp parallel
    {
        double *e = malloc((size_t)classes * sizeof *e);
        int32_t *bin = malloc((size_t)classes * sizeof *bin);
        int64_t *mine = calloc(2 * cells, sizeof *mine); /* this thread's count, then hits */
        bool ok = e && bin && mine;
        int64_t block = 256;
#pragma omp for schedule(static)
        for (int64_t begin = 0; begin < n; begin += block)
            if (ok)
                count_rows(logits, labels, begin, begin + block < n ? begin + block : n, classes, bins, vector, e, bin,
                           mine, mine + cells);
        if (ok) {
#pragma omp critical(kd_binning_histogram_counts)
            for (size_t j = 0; j < cells; j++) count[j] += mine[j], hits[j] += mine[cells + j];
        } else {
#pragma omp atomic write
            failed = true;
        }
        free(e);
        free(bin);
        free(mine);
    }
    return failed ? -1 : 0;
}
