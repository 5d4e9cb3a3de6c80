/* scaling_objective.c - the objective of the scaling family and its gradient (see
 * scaling.h, scaling_internal.h), the passes over the rows that every solver step makes.
 *
 * With u_i = J_i theta the calibrated logits of row i (J_i the (C, P) Jacobian:
 * u_k = sum_j theta_kj x~_j, or u_k = w_k x_k + b_k) and p_i = softmax(u_i),
 *   NLL_i = logsumexp(u_i) - u_iy,   grad NLL_i = J_i^T (p_i - e_y),
 *   Hess NLL_i = J_i^T S_i J_i,      S_i = diag(p_i) - p_i p_i^T  (positive semi-definite),
 * so the mean NLL is convex, and the ODIR penalty adds 2 lambda / (C (C-1)) to the
 * Hessian's diagonal at every off-diagonal W_kj and 2 mu / C at every b_k.
 *
 * The two products of a pass (the logits X~ Theta^T and the gradient R^T X~) are
 * core/dgemm's register-blocked kernels, KD_SCALING_ROWS rows at a time so that the
 * block's x, logits and residuals stay in cache. Determinism: rows are cut into
 * KD_SCALING_CHUNKS fixed ranges whatever the thread count; each range sums its rows
 * in order into its own buffer and the ranges are added in order. So the bits depend
 * on the CPU variant (AVX-512 exp and fused multiply-adds, or neither: the library is
 * built with -ffp-contract=off) but not on the thread count. */
#include "calib/scaling_internal.h"

#include "core/dgemm.h"
#include "core/parallel.h"
#include "core/vexp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int kd_scaling_parameter_count(kd_scaling_kind kind, int classes)
{
    return kind == KD_SCALING_VECTOR ? 2 * classes : classes * (classes + 1);
}

void kd_scaling_identity(kd_scaling_kind kind, int classes, double *theta)
{
    int P = kd_scaling_parameter_count(kind, classes);
    memset(theta, 0, (size_t)P * sizeof *theta);
    for (int k = 0; k < classes; k++) theta[kind == KD_SCALING_VECTOR ? k : k * (classes + 1) + k] = 1.0;
}

/* ---- softmax of one row: u <- p, returns logsumexp(u) ---- */

static double softmax_scalar(double *u, int C)
{
    double max = u[0];
    for (int k = 1; k < C; k++) max = u[k] > max ? u[k] : max;
    double sum = 0.0;
    for (int k = 0; k < C; k++) sum += (u[k] = exp(u[k] - max));
    double inv = 1.0 / sum;
    for (int k = 0; k < C; k++) u[k] *= inv;
    return max + log(sum);
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static double softmax_avx512(double *u, int C)
{
    __m512d vmax = _mm512_set1_pd(-INFINITY), sum = _mm512_setzero_pd();
    for (int k = 0; k < C; k += 8) {
        __mmask8 m = C - k >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (C - k)) - 1);
        vmax = _mm512_mask_max_pd(vmax, m, vmax, _mm512_maskz_loadu_pd(m, u + k));
    }
    double max = _mm512_reduce_max_pd(vmax);
    vmax = _mm512_set1_pd(max);
    for (int k = 0; k < C; k += 8) {
        __mmask8 m = C - k >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (C - k)) - 1);
        __m512d e = _mm512_maskz_mov_pd(m, kd_exp_pd(_mm512_sub_pd(_mm512_maskz_loadu_pd(m, u + k), vmax)));
        _mm512_mask_storeu_pd(u + k, m, e);
        sum = _mm512_add_pd(sum, e);
    }
    double s = _mm512_reduce_add_pd(sum);
    __m512d inv = _mm512_set1_pd(1.0 / s);
    for (int k = 0; k < C; k += 8) {
        __mmask8 m = C - k >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (C - k)) - 1);
        _mm512_mask_storeu_pd(u + k, m, _mm512_mul_pd(_mm512_maskz_loadu_pd(m, u + k), inv));
    }
    return max + log(s);
}
#endif

double kd_scaling_softmax_row(const kd_scaling_work *w, double *u, int C)
{
#if KD_HAVE_AVX512_VARIANTS
    if (w->avx) return softmax_avx512(u, C);
#endif
    return softmax_scalar(u, C);
}

/* ---- one range of rows: its NLL sum and gradient sum ---- */

/* The rows of a block are columns here: xt, ut (C, KD_SCALING_ROWS) hold row r's features
 * and calibrated logits in column r, so the softmax runs over eight rows at once with
 * one vector per class (at C = 10 a row's softmax was mostly reductions across lanes:
 * measured, this halved an evaluation). ut <- p - e_y; returns the block's NLL sum.
 * Without labels (y NULL): ut <- p, and 0. */
static double softmax_columns_generic(double *ut, int C, int rb, const int32_t *y)
{
    double loss = 0.0;
    for (int r = 0; r < rb; r++) {
        double max = ut[r], sum = 0.0, uy = y ? ut[(size_t)y[r] * KD_SCALING_ROWS + r] : 0.0;
        for (int k = 1; k < C; k++) max = fmax(max, ut[(size_t)k * KD_SCALING_ROWS + r]);
        for (int k = 0; k < C; k++) sum += (ut[(size_t)k * KD_SCALING_ROWS + r] = exp(ut[(size_t)k * KD_SCALING_ROWS + r] - max));
        double inv = 1.0 / sum;
        for (int k = 0; k < C; k++) ut[(size_t)k * KD_SCALING_ROWS + r] *= inv;
        if (!y) continue;
        ut[(size_t)y[r] * KD_SCALING_ROWS + r] -= 1.0;
        loss += max + log(sum) - uy;
    }
    return loss;
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static double softmax_columns_avx512(double *ut, int C, int rb, const int32_t *y)
{
    double loss = 0.0, sums[8], maxes[8];
    for (int r0 = 0; r0 < rb; r0 += 8) {
        const __mmask8 m = rb - r0 >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (rb - r0)) - 1);
        const int lanes = rb - r0 < 8 ? rb - r0 : 8;
        double *u0 = ut + r0;
        for (int r = 0; y && r < lanes; r++) loss -= u0[(size_t)y[r0 + r] * KD_SCALING_ROWS + r];
        __m512d vmax = _mm512_maskz_loadu_pd(m, u0), sum = _mm512_setzero_pd();
        for (int k = 1; k < C; k++) vmax = _mm512_max_pd(vmax, _mm512_maskz_loadu_pd(m, u0 + (size_t)k * KD_SCALING_ROWS));
        for (int k = 0; k < C; k++) {
            double *uk = u0 + (size_t)k * KD_SCALING_ROWS;
            __m512d e = kd_exp_pd(_mm512_sub_pd(_mm512_maskz_loadu_pd(m, uk), vmax));
            _mm512_mask_storeu_pd(uk, m, e);
            sum = _mm512_add_pd(sum, e);
        }
        __m512d inv = _mm512_div_pd(_mm512_set1_pd(1.0), sum);
        for (int k = 0; k < C; k++) {
            double *uk = u0 + (size_t)k * KD_SCALING_ROWS;
            _mm512_mask_storeu_pd(uk, m, _mm512_mul_pd(_mm512_maskz_loadu_pd(m, uk), inv));
        }
        _mm512_storeu_pd(sums, sum), _mm512_storeu_pd(maxes, vmax);
        for (int r = 0; y && r < lanes; r++) {
            loss += maxes[r] + log(sums[r]);
            u0[(size_t)y[r0 + r] * KD_SCALING_ROWS + r] -= 1.0;
        }
    }
    return loss;
}
#endif

/* xt (C, KD_SCALING_ROWS) <- the rb rows xb (rb, C) transposed; ut <- their calibrated
 * logits, b + W xt (vector scaling: w (.) xt + b). */
KD_INLINE_BODY void block_logits(const kd_scaling_work *w, const double *theta, const double *xb, int rb, double *xt, double *ut, bool avx)
{
    const int C = w->C, D = w->D;
    const bool vec = w->pb->kind == KD_SCALING_VECTOR;
    for (int r = 0; r < rb; r++)
        for (int k = 0; k < C; k++) xt[(size_t)k * KD_SCALING_ROWS + r] = xb[(size_t)r * C + k];
    for (int k = 0; k < C; k++) {
        double *uk = ut + (size_t)k * KD_SCALING_ROWS;
        const double *xk = xt + (size_t)k * KD_SCALING_ROWS;
        if (vec) {
            for (int r = 0; r < rb; r++) uk[r] = theta[k] * xk[r] + theta[C + k];
        } else {
            for (int r = 0; r < rb; r++) uk[r] = theta[k * D + C];
        }
    }
    if (!vec) kd_dgemm_nn(avx, C, rb, C, theta, D, xt, KD_SCALING_ROWS, ut, KD_SCALING_ROWS);
}

static double softmax_columns(bool avx, double *ut, int C, int rb, const int32_t *y)
{
#if KD_HAVE_AVX512_VARIANTS
    if (avx) return softmax_columns_avx512(ut, C, rb, y);
#endif
    (void)avx;
    return softmax_columns_generic(ut, C, rb, y);
}

/* From this many classes a block keeps its rows as rows: the row's softmax is then
 * mostly full vectors, and the transposition cost more than the batching saved
 * (measured at C = 100: 60 ms an evaluation as rows, 70 as columns). */
#define ROW_LAYOUT_CLASSES 32

/* Rows [lo, hi), KD_SCALING_ROWS at a time (their x, u and r stay in cache): xt = the
 * block's x transposed, ut = b + W xt (kd_dgemm_nn against theta's rows; vector
 * scaling: w (.) xt + b), r = p - e_y in ut, then g += r xt^T and the row sums of r
 * for b, in theta's layout. xt, ut: (C, KD_SCALING_ROWS). */
KD_INLINE_BODY double range_rows(const kd_scaling_work *w, const double *theta, int64_t lo, int64_t hi, double *g, double *xt,
                                 double *ut, bool avx)
{
    const int C = w->C, D = w->D;
    const bool vec = w->pb->kind == KD_SCALING_VECTOR;
    const int32_t *y = w->pb->y;
    double loss = 0.0;
    memset(g, 0, (size_t)w->P * sizeof *g);
    for (int64_t i0 = lo; i0 < hi; i0 += KD_SCALING_ROWS) {
        const int rb = hi - i0 < KD_SCALING_ROWS ? (int)(hi - i0) : KD_SCALING_ROWS;
        const double *xb = w->pb->x + (size_t)i0 * (size_t)C;
        if (!vec && C >= ROW_LAYOUT_CLASSES) { /* rows as rows: u (rb, C) in ut */
            for (int r = 0; r < rb; r++) memcpy(ut + (size_t)r * C, w->wt + (size_t)C * C, (size_t)C * sizeof *ut);
            kd_dgemm_nn(avx, rb, C, C, xb, C, w->wt, C, ut, C);
            for (int r = 0; r < rb; r++) {
                double *ur = ut + (size_t)r * C, uy = ur[y[i0 + r]];
                loss += kd_scaling_softmax_row(w, ur, C) - uy;
                ur[y[i0 + r]] -= 1.0;
            }
            kd_dgemm_tn(avx, C, C, rb, ut, C, xb, C, g, D);
            for (int r = 0; r < rb; r++)
                for (int k = 0; k < C; k++) g[k * D + C] += ut[(size_t)r * C + k];
            continue;
        }
        block_logits(w, theta, xb, rb, xt, ut, avx);
        loss += softmax_columns(avx, ut, C, rb, y + i0);
        if (!vec) kd_dgemm_nn(avx, C, C, rb, ut, KD_SCALING_ROWS, xb, C, g, D);
        for (int k = 0; k < C; k++) {
            const double *uk = ut + (size_t)k * KD_SCALING_ROWS, *xk = xt + (size_t)k * KD_SCALING_ROWS;
            double sb = 0.0, sw = 0.0;
            for (int r = 0; r < rb; r++) sb += uk[r];
            if (!vec) {
                g[k * D + C] += sb;
                continue;
            }
            for (int r = 0; r < rb; r++) sw += uk[r] * xk[r];
            g[k] += sw, g[C + k] += sb;
        }
    }
    return loss;
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static double range_rows_avx512(const kd_scaling_work *w, const double *theta, int64_t lo, int64_t hi, double *g,
                                                 double *xt, double *ut)
{
    return range_rows(w, theta, lo, hi, g, xt, ut, true);
}
#endif
static double range_rows_generic(const kd_scaling_work *w, const double *theta, int64_t lo, int64_t hi, double *g, double *xt,
                                 double *ut)
{
    return range_rows(w, theta, lo, hi, g, xt, ut, false);
}

static double range_run(const kd_scaling_work *w, const double *theta, int64_t lo, int64_t hi, double *g, double *scratch)
{
    double *xt = scratch, *ut = scratch + (size_t)KD_SCALING_ROWS * w->C;
#if KD_HAVE_AVX512_VARIANTS
    if (w->avx) return range_rows_avx512(w, theta, lo, hi, g, xt, ut);
#endif
    return range_rows_generic(w, theta, lo, hi, g, xt, ut);
}

/* ODIR: lambda / (C (C-1)) sum_{k != j} W_kj^2 + mu / C sum_k b_k^2, added to grad if given. */
static double penalty(const kd_scaling_work *w, const double *theta, double *grad)
{
    const kd_scaling_problem *pb = w->pb;
    if (pb->kind == KD_SCALING_VECTOR) return 0.0;
    const int C = w->C, D = w->D;
    double a = pb->lambda / ((double)C * (C - 1)), c = pb->mu / C, off = 0.0, bias = 0.0;
    for (int k = 0; k < C; k++)
        for (int j = 0; j <= C; j++) {
            double t = theta[k * D + j];
            if (j == k) continue;
            if (j == C) bias += t * t;
            else off += t * t;
            if (grad) grad[k * D + j] += 2.0 * (j == C ? c : a) * t;
        }
    return a * off + c * bias;
}

/* Objective (mean NLL + penalty) and its gradient (P); *nll gets the mean NLL. */
double kd_scaling_evaluate(kd_scaling_work *w, const double *theta, double *grad, double *nll)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C, P = w->P;
    const int64_t n = pb->n;
    w->evaluations++;
    if (pb->kind != KD_SCALING_VECTOR && C >= ROW_LAYOUT_CLASSES)
        for (int k = 0; k < C; k++)
            for (int j = 0; j <= C; j++) w->wt[(size_t)j * C + k] = theta[k * (C + 1) + j];
    /* threads only where they pay for their region (a few microseconds a barrier,
     * far more on a loaded machine): the same chunks either way */
    const bool par = (double)n * P >= 2e5;
    KD_PARALLEL_FOR(par, int, c, KD_SCALING_CHUNKS,
                    w->loss[c] = range_run(w, theta, n * c / KD_SCALING_CHUNKS, n * (c + 1) / KD_SCALING_CHUNKS,
                                           w->part + (size_t)c * P, w->scratch + (size_t)c * 2 * KD_SCALING_ROWS * C));
    double loss = 0.0;
    for (int c = 0; c < KD_SCALING_CHUNKS; c++) loss += w->loss[c];
    const double inv = 1.0 / (double)n;
    KD_PARALLEL_FOR(par, int, q, P, {
        double s = 0.0;
        for (int c = 0; c < KD_SCALING_CHUNKS; c++) s += w->part[(size_t)c * P + q];
        grad[q] = s * inv;
    });
    *nll = loss * inv;
    return *nll + penalty(w, theta, grad);
}

void kd_scaling_block_probabilities(const kd_scaling_work *w, const double *theta, const double *xb, int rb, double *xt,
                                    double *ut)
{
    block_logits(w, theta, xb, rb, xt, ut, w->avx);
    softmax_columns(w->avx, ut, w->C, rb, NULL);
}

int kd_scaling_work_init(kd_scaling_work *w, const kd_scaling_problem *pb)
{
    const int C = pb->classes, P = kd_scaling_parameter_count(pb->kind, C);
    *w = (kd_scaling_work){pb, C, C + 1, P, kd_cpu_has_avx512(), NULL, NULL, NULL, NULL, 0};
    w->wt = malloc((size_t)(C + 1) * C * sizeof(double));
    w->part = malloc((size_t)KD_SCALING_CHUNKS * P * sizeof(double));
    w->loss = malloc(KD_SCALING_CHUNKS * sizeof(double));
    w->scratch = malloc((size_t)KD_SCALING_CHUNKS * 2 * KD_SCALING_ROWS * C * sizeof(double));
    if (w->wt && w->part && w->loss && w->scratch) return KD_OK;
    kd_scaling_work_free(w);
    return KD_ERR_DATA;
}

void kd_scaling_work_free(kd_scaling_work *w)
{
    free(w->wt), free(w->part), free(w->loss), free(w->scratch);
    w->wt = w->part = w->loss = w->scratch = NULL;
}

double kd_scaling_mean_nll(const kd_scaling_problem *pb, const double *theta)
{
    const int C = pb->classes;
    double *u = malloc((size_t)pb->n * C * sizeof *u);
    if (!u) return NAN;
    kd_scaling_affine(pb->kind, C, theta, pb->x, pb->n, u);
    double loss = 0.0;
    for (int64_t i = 0; i < pb->n; i++) { /* in row order: independent of the threads */
        double *ui = u + (size_t)i * C, uy = ui[pb->y[i]];
        loss += softmax_scalar(ui, C) - uy;
    }
    free(u);
    return loss / (double)pb->n;
}

void kd_scaling_affine(kd_scaling_kind kind, int classes, const double *theta, const double *x, int64_t n, double *u)
{
    const int C = classes, D = C + 1;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * C;
        double *ui = u + (size_t)i * C;
        for (int k = 0; k < C; k++) {
            if (kind == KD_SCALING_VECTOR) {
                ui[k] = theta[k] * xi[k] + theta[C + k];
                continue;
            }
            double s = theta[k * D + C];
            for (int j = 0; j < C; j++) s += theta[k * D + j] * xi[j];
            ui[k] = s;
        }
    }
}
