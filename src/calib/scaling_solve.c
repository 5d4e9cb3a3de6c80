/* scaling_solve.c - the objective of the scaling family, its gradient and exact
 * Hessian, and the two solvers (see scaling.h, scaling_internal.h).
 *
 * With u_i = J_i theta the calibrated logits of row i (J_i the (C, P) Jacobian:
 * u_k = sum_j theta_kj x~_j, or u_k = w_k x_k + b_k) and p_i = softmax(u_i),
 *   NLL_i = logsumexp(u_i) - u_iy,   grad NLL_i = J_i^T (p_i - e_y),
 *   Hess NLL_i = J_i^T S_i J_i,      S_i = diag(p_i) - p_i p_i^T  (positive semi-definite),
 * so the mean NLL is convex, and the ODIR penalty adds 2 lambda / (C (C-1)) to the
 * Hessian's diagonal at every off-diagonal W_kj and 2 mu / C at every b_k.
 *
 * Determinism: rows are cut into KD_CHUNKS fixed ranges whatever the thread count;
 * each range sums its rows in order into its own buffer and the ranges are added in
 * order, and the Hessian is built by tiles of its rows, each tile summing all rows in
 * order. So the bits depend on the CPU variant (AVX-512 exp, fused multiply-adds of
 * neither: the library is built with -ffp-contract=off) but not on the thread count. */
#include "calib/scaling_internal.h"

#include "core/dgemm.h"
#include "core/parallel.h"
#include "core/vexp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KD_CHUNKS 64   /* fixed row ranges of the gradient */
#define ROW_BLOCK 64   /* rows a chunk multiplies at once */
#define HESS_BLOCK 256 /* rows whose probabilities the Hessian holds at once */
#define LBFGS_MEMORY 10
/* v's row stride: J^T p (P), then x~ (D) for matrix kinds, zero-padded to read 8 at a time */
#define HESS_STRIDE(P, D) ((P) + ((D) + 7) / 8 * 8)
/* the diag(p) part's sums: (C, D, D) for matrix kinds, (3, C) for vector scaling */
#define HESS_DIAG(P, C, D) ((P) == 2 * (C) ? 3 * (C) : (C) * (D) * (D))

typedef struct work {
    const kd_scaling_problem *pb;
    int C, D, P;
    bool avx;
    double *wt;      /* (D, C): theta transposed, matrix kinds */
    double *part;    /* (KD_CHUNKS, P): per-range gradient sums, (D, C) layout for matrix kinds */
    double *loss;    /* (KD_CHUNKS) */
    double *scratch; /* (KD_CHUNKS, 2, ROW_BLOCK, C) */
    int evaluations;
} work;

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

static double softmax_run(const work *w, double *u, int C)
{
#if KD_HAVE_AVX512_VARIANTS
    if (w->avx) return softmax_avx512(u, C);
#endif
    return softmax_scalar(u, C);
}

/* ---- one range of rows: its NLL sum and gradient sum ---- */

/* Matrix kinds, ROW_BLOCK rows at a time (their x, u and r stay in cache): u (rb, C) =
 * b + X W^T by kd_dgemm_nn against wt = Theta^T, then r = p - e_y overwrites u, and
 * g (D, C) += X~^T r: kd_dgemm_tn for the W part, the column sums of r for b. */
KD_INLINE_BODY double range_matrix(const work *w, int64_t lo, int64_t hi, double *g, double *u, bool avx)
{
    const int C = w->C;
    const double *x = w->pb->x, *wt = w->wt;
    const int32_t *y = w->pb->y;
    double loss = 0.0, *gb = g + (size_t)C * C;
    memset(g, 0, (size_t)w->P * sizeof *g);
    for (int64_t i0 = lo; i0 < hi; i0 += ROW_BLOCK) {
        int rb = hi - i0 < ROW_BLOCK ? (int)(hi - i0) : ROW_BLOCK;
        const double *xb = x + (size_t)i0 * (size_t)C;
        for (int r = 0; r < rb; r++) memcpy(u + r * C, wt + (size_t)C * C, (size_t)C * sizeof *u); /* b */
        kd_dgemm_nn(avx, rb, C, C, xb, C, wt, C, u, C);
        for (int r = 0; r < rb; r++) {
            double *ur = u + r * C;
            int label = y[i0 + r];
            double uy = ur[label];
#if KD_HAVE_AVX512_VARIANTS
            double lse = avx ? softmax_avx512(ur, C) : softmax_scalar(ur, C);
#else
            double lse = softmax_scalar(ur, C);
#endif
            loss += lse - uy;
            ur[label] -= 1.0;
        }
        kd_dgemm_tn(avx, C, C, rb, xb, C, u, C, g, C);
        for (int r = 0; r < rb; r++)
            for (int k = 0; k < C; k++) gb[k] += u[r * C + k];
    }
    return loss;
}

/* Vector scaling: u_k = w_k x_k + b_k; g = [sum r (.) x, sum r]. */
KD_INLINE_BODY double range_vector(const work *w, const double *theta, int64_t lo, int64_t hi, double *g, double *u,
                                   bool avx)
{
    const int C = w->C;
    const double *x = w->pb->x, *wv = theta, *bv = theta + C;
    double loss = 0.0;
    memset(g, 0, (size_t)w->P * sizeof *g);
    for (int64_t i = lo; i < hi; i++) {
        const double *xi = x + (size_t)i * (size_t)C;
        for (int k = 0; k < C; k++) u[k] = wv[k] * xi[k] + bv[k];
        int label = w->pb->y[i];
        double uy = u[label];
#if KD_HAVE_AVX512_VARIANTS
        double lse = avx ? softmax_avx512(u, C) : softmax_scalar(u, C);
#else
        (void)avx;
        double lse = softmax_scalar(u, C);
#endif
        loss += lse - uy;
        u[label] -= 1.0;
        for (int k = 0; k < C; k++) g[k] += u[k] * xi[k];
        for (int k = 0; k < C; k++) g[C + k] += u[k];
    }
    return loss;
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static double range_matrix_avx512(const work *w, int64_t lo, int64_t hi, double *g, double *u)
{
    return range_matrix(w, lo, hi, g, u, true);
}
KD_TARGET_AVX512 static double range_vector_avx512(const work *w, const double *theta, int64_t lo, int64_t hi,
                                                   double *g, double *u)
{
    return range_vector(w, theta, lo, hi, g, u, true);
}
#endif
static double range_matrix_generic(const work *w, int64_t lo, int64_t hi, double *g, double *u)
{
    return range_matrix(w, lo, hi, g, u, false);
}
static double range_vector_generic(const work *w, const double *theta, int64_t lo, int64_t hi, double *g, double *u)
{
    return range_vector(w, theta, lo, hi, g, u, false);
}

static double range_run(const work *w, const double *theta, int64_t lo, int64_t hi, double *g, double *u)
{
    bool vec = w->pb->kind == KD_SCALING_VECTOR;
#if KD_HAVE_AVX512_VARIANTS
    if (w->avx) return vec ? range_vector_avx512(w, theta, lo, hi, g, u) : range_matrix_avx512(w, lo, hi, g, u);
#endif
    return vec ? range_vector_generic(w, theta, lo, hi, g, u) : range_matrix_generic(w, lo, hi, g, u);
}

/* ODIR: lambda / (C (C-1)) sum_{k != j} W_kj^2 + mu / C sum_k b_k^2, added to grad if given. */
static double penalty(const work *w, const double *theta, double *grad)
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
static double evaluate(work *w, const double *theta, double *grad, double *nll)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C, D = w->D, P = w->P;
    const int64_t n = pb->n;
    w->evaluations++;
    if (pb->kind != KD_SCALING_VECTOR)
        for (int k = 0; k < C; k++)
            for (int j = 0; j < D; j++) w->wt[(size_t)j * C + k] = theta[k * D + j];
    /* threads only where they pay for their region (a few microseconds a barrier,
     * far more on a loaded machine): the same chunks either way */
    const bool par = (double)n * P >= 2e5;
    KD_PARALLEL_FOR(par, int, c, KD_CHUNKS,
                    w->loss[c] = range_run(w, theta, n * c / KD_CHUNKS, n * (c + 1) / KD_CHUNKS,
                                           w->part + (size_t)c * P, w->scratch + (size_t)c * 2 * ROW_BLOCK * C));
    double loss = 0.0;
    for (int c = 0; c < KD_CHUNKS; c++) loss += w->loss[c];
    const double inv = 1.0 / (double)n;
    bool vec = pb->kind == KD_SCALING_VECTOR;
    KD_PARALLEL_FOR(par, int, q, P, {
        int src = vec ? q : (q % D) * C + q / D; /* theta (k, j) <- part (j, k) */
        double s = 0.0;
        for (int c = 0; c < KD_CHUNKS; c++) s += w->part[(size_t)c * P + src];
        grad[q] = s * inv;
    });
    *nll = loss * inv;
    return *nll + penalty(w, theta, grad);
}

/* ---- the Hessian's diagonal, L-BFGS's preconditioner ---- */

/* One range of rows: g (P, (D, C) layout for matrix kinds) += the diagonal of
 * sum_i J_i^T S_i J_i, whose entry (k, j) is q_ik x~_ij^2 with q = p (1 - p): the
 * gradient's two products with q for r and x~ (.) x~ for x~. u and sq: (ROW_BLOCK, C). */
static void range_curvature(const work *w, const double *theta, int64_t lo, int64_t hi, double *g, double *u,
                            double *sq)
{
    const int C = w->C;
    const double *x = w->pb->x;
    const bool vec = w->pb->kind == KD_SCALING_VECTOR;
    memset(g, 0, (size_t)w->P * sizeof *g);
    for (int64_t i0 = lo; i0 < hi; i0 += ROW_BLOCK) {
        int rb = hi - i0 < ROW_BLOCK ? (int)(hi - i0) : ROW_BLOCK;
        const double *xb = x + (size_t)i0 * (size_t)C;
        for (int r = 0; r < rb; r++) {
            double *ur = u + r * C;
            const double *xr = xb + (size_t)r * C;
            if (vec) {
                for (int k = 0; k < C; k++) ur[k] = theta[k] * xr[k] + theta[C + k];
            } else {
                memcpy(ur, w->wt + (size_t)C * C, (size_t)C * sizeof *ur);
                kd_dgemm_nn(w->avx, 1, C, C, xr, C, w->wt, C, ur, C);
            }
            softmax_run(w, ur, C);
            for (int k = 0; k < C; k++) ur[k] *= 1.0 - ur[k], sq[r * C + k] = xr[k] * xr[k];
        }
        double *gb = g + (vec ? (size_t)C : (size_t)C * C);
        if (vec) {
            for (int r = 0; r < rb; r++)
                for (int k = 0; k < C; k++) g[k] += u[r * C + k] * sq[r * C + k];
        } else {
            kd_dgemm_tn(w->avx, C, C, rb, sq, C, u, C, g, C);
        }
        for (int r = 0; r < rb; r++)
            for (int k = 0; k < C; k++) gb[k] += u[r * C + k];
    }
}

/* diag (P): the diagonal of the objective's Hessian at theta, penalty included. */
static void curvature(work *w, const double *theta, double *diag)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C, D = w->D, P = w->P;
    const int64_t n = pb->n;
    const bool vec = pb->kind == KD_SCALING_VECTOR;
    if (!vec)
        for (int k = 0; k < C; k++)
            for (int j = 0; j < D; j++) w->wt[(size_t)j * C + k] = theta[k * D + j];
    const bool par = (double)n * P >= 2e5;
    KD_PARALLEL_FOR(par, int, c, KD_CHUNKS, {
        double *u = w->scratch + (size_t)c * 2 * ROW_BLOCK * C;
        range_curvature(w, theta, n * c / KD_CHUNKS, n * (c + 1) / KD_CHUNKS, w->part + (size_t)c * P, u,
                        u + (size_t)ROW_BLOCK * C);
    });
    const double inv = 1.0 / (double)n;
    const double a2 = vec ? 0.0 : 2.0 * pb->lambda / ((double)C * (C - 1)), c2 = vec ? 0.0 : 2.0 * pb->mu / C;
    for (int q = 0; q < P; q++) {
        int src = vec ? q : (q % D) * C + q / D, k = q / D, j = q % D;
        double s = 0.0;
        for (int c = 0; c < KD_CHUNKS; c++) s += w->part[(size_t)c * P + src];
        diag[q] = s * inv + (vec || j == k ? 0.0 : j == C ? c2 : a2);
    }
}

/* ---- the exact Hessian (P, P), for Newton ---- */

/* Probabilities of rows [i0, i0 + nb) into v's first C columns, then
 * v[i] = J_i^T p_i: [p (.) x, p] or p (x) x~. Matrix kinds also keep x~ in columns
 * [P, P + D), the right-hand side of the diag(p) part's product. */
static void hessian_rows(const work *w, const double *theta, int64_t i0, int nb, double *v, int Pp)
{
    const int C = w->C, D = w->D, P = w->P;
    const double *x = w->pb->x;
    KD_PARALLEL_FOR((double)nb * P >= 2e5, int, r, nb, {
        const double *xi = x + (size_t)(i0 + r) * C;
        double *vr = v + (size_t)r * Pp;
        if (w->pb->kind == KD_SCALING_VECTOR) {
            double *p = vr + C; /* the b part of J^T p is p itself */
            for (int k = 0; k < C; k++) p[k] = theta[k] * xi[k] + theta[C + k];
            softmax_run(w, p, C);
            for (int k = 0; k < C; k++) vr[k] = p[k] * xi[k];
            continue;
        }
        double *p = vr; /* p in vr[0, C), then the blocks k = C-1 .. 0: block k >= 1 starts at k D > C - 1 */
        memcpy(p, w->wt + (size_t)C * C, (size_t)C * sizeof *p);
        kd_dgemm_nn(w->avx, 1, C, C, xi, C, w->wt, C, p, C);
        softmax_run(w, p, C);
        for (int j = 0; j < C; j++) vr[P + j] = xi[j];
        vr[P + C] = 1.0;
        for (int k = C - 1; k >= 0; k--) {
            double pk = p[k];
            vr[k * D + C] = pk;
            for (int j = C - 1; j >= 0; j--) vr[k * D + j] = pk * xi[j];
        }
    });
}

/* One block of rows: H's upper triangle += V^T V, by stripes of 8 rows of H (each
 * on one thread, summing the rows in order: kd_dgemm_tn), and the diag(p) part
 * sum_r J_r^T diag(p_r) J_r into dp:
 *   matrix kinds: block-diagonal, dp (C, D, D), block k += sum_r p_rk x~_r x~_r^T
 *     (v's columns [kD, kD + D) against its copy of x~);
 *   vector: dp (3, C) += [p x^2, p x, p] (H's entries (k, k), (k, C + k), (C + k, C + k)). */
static void hessian_block(const work *w, int64_t i0, int nb, const double *v, int Pp, double *H, double *dp)
{
    const int C = w->C, D = w->D, P = w->P;
    const bool par = (double)nb * P * P >= 2e5;
    KD_PARALLEL_FOR(par, int, t, (P + 7) / 8, {
        int a0 = 8 * t;
        kd_dgemm_tn(w->avx, P - a0 < 8 ? P - a0 : 8, P - a0, nb, v + a0, Pp, v + a0, Pp, H + (size_t)a0 * P + a0, P);
    });
    if (w->pb->kind != KD_SCALING_VECTOR) {
        KD_PARALLEL_FOR(par, int, k, C,
                        kd_dgemm_tn(w->avx, D, D, nb, v + (size_t)k * D, Pp, v + P, Pp, dp + (size_t)k * D * D, D));
        return;
    }
    const double *x = w->pb->x;
    for (int r = 0; r < nb; r++) {
        const double *vr = v + (size_t)r * Pp, *xi = x + (size_t)(i0 + r) * C;
        for (int k = 0; k < C; k++) dp[k] += vr[k] * xi[k], dp[C + k] += vr[k], dp[2 * C + k] += vr[C + k];
    }
}

/* The Hessian of the objective (P, P), full. The null directions of an unpenalised
 * model (adding one vector to every row of Theta, or one constant to every b, leaves
 * the softmax unchanged) get gamma v v^T, gamma the mean diagonal: the gradient is
 * orthogonal to them, so the Newton step is unchanged and keeps the start's sums
 * sum_k W_kj and sum_k b_k (the identity's: 1 and 0). */
static void hessian(work *w, const double *theta, double *H, double *v, double *dp)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C, D = w->D, P = w->P;
    const bool vec = pb->kind == KD_SCALING_VECTOR;
    memset(H, 0, (size_t)P * P * sizeof *H);
    memset(dp, 0, (size_t)HESS_DIAG(P, C, D) * sizeof *dp);
    if (!vec)
        for (int k = 0; k < C; k++)
            for (int j = 0; j < D; j++) w->wt[(size_t)j * C + k] = theta[k * D + j];
    for (int64_t i0 = 0; i0 < pb->n; i0 += HESS_BLOCK) {
        int nb = pb->n - i0 < HESS_BLOCK ? (int)(pb->n - i0) : HESS_BLOCK;
        hessian_rows(w, theta, i0, nb, v, HESS_STRIDE(P, D));
        hessian_block(w, i0, nb, v, HESS_STRIDE(P, D), H, dp);
    }
    for (int a = 0; a < P; a++) /* H = diag(p) part - V^T V, upper triangle */
        for (int b = a; b < P; b++) H[(size_t)a * P + b] = -H[(size_t)a * P + b];
    if (vec) {
        for (int k = 0; k < C; k++) {
            H[(size_t)k * P + k] += dp[k];
            H[(size_t)k * P + C + k] += dp[C + k];
            H[(size_t)(C + k) * P + C + k] += dp[2 * C + k];
        }
    } else {
        for (int k = 0; k < C; k++)
            for (int j = 0; j < D; j++)
                for (int m = j; m < D; m++) H[(size_t)(k * D + j) * P + k * D + m] += dp[((size_t)k * D + j) * D + m];
    }
    const double inv = 1.0 / (double)pb->n;
    for (int a = 0; a < P; a++)
        for (int b = a; b < P; b++) H[(size_t)b * P + a] = H[(size_t)a * P + b] *= inv;
    double gamma = 0.0;
    for (int a = 0; a < P; a++) gamma += H[(size_t)a * P + a];
    gamma /= P;
    if (pb->kind == KD_SCALING_VECTOR) {
        for (int k = 0; k < C; k++)
            for (int l = 0; l < C; l++) H[(size_t)(C + k) * P + C + l] += gamma / C;
        return;
    }
    double a2 = 2.0 * pb->lambda / ((double)C * (C - 1)), c2 = 2.0 * pb->mu / C;
    for (int k = 0; k < C; k++)
        for (int j = 0; j <= C; j++)
            if (j != k) H[(size_t)(k * D + j) * P + k * D + j] += j == C ? c2 : a2;
    for (int j = 0; j <= C; j++) {
        if (j == C ? pb->mu != 0.0 : pb->lambda != 0.0) continue;
        for (int k = 0; k < C; k++)
            for (int l = 0; l < C; l++) H[(size_t)(k * D + j) * P + l * D + j] += gamma / C;
    }
}

/* A = U^T U in place (U upper, row-major); false if A is not positive definite. */
static bool cholesky(double *A, int P)
{
    for (int k = 0; k < P; k++) {
        double *uk = A + (size_t)k * P;
        if (!(uk[k] > 0.0) || !isfinite(uk[k])) return false;
        double d = sqrt(uk[k]);
        uk[k] = d;
        for (int j = k + 1; j < P; j++) uk[j] /= d;
#pragma omp parallel for schedule(static) if (P - k > 256)
        for (int i = k + 1; i < P; i++) {
            double a = uk[i], *ui = A + (size_t)i * P;
            for (int j = i; j < P; j++) ui[j] -= a * uk[j];
        }
    }
    return true;
}

/* Solves U^T U d = rhs (d may alias rhs). */
static void cholesky_solve(const double *U, int P, double *d)
{
    for (int k = 0; k < P; k++) { /* U^T z = rhs, by columns of U^T */
        const double *uk = U + (size_t)k * P;
        d[k] /= uk[k];
        for (int j = k + 1; j < P; j++) d[j] -= uk[j] * d[k];
    }
    for (int k = P - 1; k >= 0; k--) { /* U d = z */
        const double *uk = U + (size_t)k * P;
        double s = d[k];
        for (int j = k + 1; j < P; j++) s -= uk[j] * d[j];
        d[k] = s / uk[k];
    }
}

static double max_abs(const double *g, int P)
{
    double m = 0.0;
    for (int q = 0; q < P; q++) m = fabs(g[q]) > m ? fabs(g[q]) : m;
    return m;
}

static double dot(const double *a, const double *b, int P)
{
    double s = 0.0;
    for (int q = 0; q < P; q++) s += a[q] * b[q];
    return s;
}

/* Backtracking line search along d from theta (objective f, gradient g): the first
 * t = 1, 1/2, 1/4, ... with Armijo's sufficient decrease f(t) <= f + 1e-4 t g.d. Near
 * the optimum the decrease falls below the rounding of f (about 1e-16 f); there a
 * step is also taken when f changed by rounding only and the slope along d shrank
 * (|g(t).d| < |g.d|): the step moved towards the minimum along d. On success theta,
 * f, g hold the new point; *nll its NLL. */
static bool line_search(work *w, double *theta, const double *d, double *f, double *g, double *nll, double *trial,
                        double *gt)
{
    const int P = w->P;
    double gd = dot(g, d, P), t = 1.0;
    if (!(gd < 0.0)) return false;
    for (int tries = 0; tries < 60; tries++, t *= 0.5) {
        for (int q = 0; q < P; q++) trial[q] = theta[q] + t * d[q];
        double nt, ft = evaluate(w, trial, gt, &nt);
        bool armijo = ft <= *f + 1e-4 * t * gd;
        bool flat = fabs(ft - *f) <= 1e-14 * (1.0 + fabs(*f)) && fabs(dot(gt, d, P)) < fabs(gd);
        if (isfinite(ft) && (armijo || flat)) {
            memcpy(theta, trial, (size_t)P * sizeof *theta);
            memcpy(g, gt, (size_t)P * sizeof *g);
            *f = ft, *nll = nt;
            return true;
        }
    }
    return false;
}

static int newton(work *w, double *theta, double tolerance, int max_iterations, kd_scaling_result *r,
                  double *g, double *f, double *nll, kd_error *err)
{
    const int P = w->P;
    double *H = malloc((size_t)P * P * sizeof *H), *Hs = malloc((size_t)P * P * sizeof *H);
    double *v = calloc((size_t)HESS_BLOCK * HESS_STRIDE(P, w->D), sizeof *v);
    double *dp = malloc((size_t)HESS_DIAG(P, w->C, w->D) * sizeof *dp);
    double *d = malloc((size_t)P * sizeof *d), *trial = malloc((size_t)P * sizeof *d), *gt = malloc((size_t)P * sizeof *d);
    int rc = KD_OK;
    if (!H || !Hs || !v || !dp || !d || !trial || !gt) {
        rc = kd_error_set(err, KD_ERR_DATA, "scaling fit: cannot allocate the %d x %d Hessian", P, P);
        goto done;
    }
    while ((r->gradient_norm = max_abs(g, P)) > tolerance && r->iterations < max_iterations) {
        hessian(w, theta, Hs, v, dp);
        /* Positive semi-definite in exact arithmetic; with rounding (or features in a
         * linear relation, whose extra null directions no gauge term covers) the
         * factorisation may fail: add a growing multiple of the identity. */
        double damping = 0.0, scale = 0.0;
        for (int a = 0; a < P; a++) scale += Hs[(size_t)a * P + a] / P;
        bool ok = false;
        for (int tries = 0; tries < 12 && !ok; tries++) {
            memcpy(H, Hs, (size_t)P * P * sizeof *H);
            if (tries) {
                damping = damping ? damping * 100 : 1e-12 * scale;
                for (int a = 0; a < P; a++) H[(size_t)a * P + a] += damping;
            }
            ok = cholesky(H, P);
        }
        if (!ok) break;
        for (int q = 0; q < P; q++) d[q] = -g[q];
        cholesky_solve(H, P, d);
        r->iterations++;
        if (!line_search(w, theta, d, f, g, nll, trial, gt)) break;
    }
    r->gradient_norm = max_abs(g, P);
done:
    free(H), free(Hs), free(v), free(dp), free(d), free(trial), free(gt);
    return rc;
}

/* The gauge columns of [W b]: along u_j (one in column j for every class k) the NLL
 * is constant, so the curvature there is the penalty's alone, h_j = u_j^T H u_j / C:
 * 2 lambda / C^2 for a column of W (C - 1 of its entries penalised), 2 mu / C for b;
 * vector scaling has only b's, unpenalised. The diagonal misses these directions by
 * a factor of about 1e5 at lambda = 1e-3, C = 100, where they made the last digits
 * of the gradient take most of the iterations (measured). */
static int gauge_columns(const work *w, double *h)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C;
    if (pb->kind == KD_SCALING_VECTOR) return h[0] = 0.0, 1;
    for (int j = 0; j < C; j++) h[j] = 2.0 * pb->lambda * (C - 1) / ((double)C * C * (C - 1));
    h[C] = 2.0 * pb->mu / C;
    return C + 1;
}

/* v <- the preconditioner applied to v: on the gauge columns' means, 1 / h_j (0 on a
 * null direction, h_j = 0); on the rest, gamma / (the Hessian's diagonal), Minv.
 * along: (D) scratch. */
static void precondition(const work *w, const double *Minv, const double *h, double gamma, double *v, double *along)
{
    const int C = w->C, D = w->D, P = w->P;
    const bool vec = w->pb->kind == KD_SCALING_VECTOR;
    const int columns = vec ? 1 : D, stride = vec ? 1 : D;
    for (int j = 0; j < columns; j++) {
        int at = vec ? C : j;
        double mean = 0.0;
        for (int k = 0; k < C; k++) mean += v[at + k * stride];
        mean /= C;
        for (int k = 0; k < C; k++) v[at + k * stride] -= mean;
        along[j] = h[j] > 0.0 ? mean / h[j] : 0.0;
    }
    for (int q = 0; q < P; q++) v[q] *= gamma * Minv[q];
    for (int j = 0; j < columns; j++) {
        int at = vec ? C : j;
        double mean = 0.0;
        for (int k = 0; k < C; k++) mean += v[at + k * stride];
        mean /= C;
        for (int k = 0; k < C; k++) v[at + k * stride] += along[j] - mean;
    }
}

/* L-BFGS (Nocedal and Wright, algorithm 7.4), preconditioned: the two-loop recursion
 * over the last LBFGS_MEMORY pairs s = theta' - theta, y = g' - g, its initial inverse
 * Hessian gamma M with M = 1 / (the Hessian's diagonal at the start) and
 * gamma = s.y / y.M y, then the line search above. The diagonal puts the parameters on
 * one scale (the bias's curvature is mean p (1 - p), W_kj's is that times x_j^2):
 * measured, it halves the iterations at C = 100. A pair with s.y <= 0 (only by
 * rounding: the objective is convex) is not stored; a direction that is not downhill
 * restarts from -M g. */
static int lbfgs(work *w, double *theta, double tolerance, int max_iterations, kd_scaling_result *r, double *g,
                 double *f, double *nll, kd_error *err)
{
    const int P = w->P, m = LBFGS_MEMORY;
    double *mem = malloc((size_t)(2 * m + 5) * P * sizeof *mem), *h = malloc((size_t)2 * w->D * sizeof *h);
    if (!mem || !h) {
        free(mem), free(h);
        return kd_error_set(err, KD_ERR_DATA, "scaling fit: cannot allocate L-BFGS memory for %d parameters", P);
    }
    double *S = mem, *Y = S + (size_t)m * P, *d = Y + (size_t)m * P, *trial = d + P, *gt = trial + P, *prev = gt + P,
           *M = prev + P;
    double rho[LBFGS_MEMORY], alpha[LBFGS_MEMORY];
    int stored = 0, head = 0; /* pairs held; the next slot */
    curvature(w, theta, M);
    double mean = 0.0;
    for (int q = 0; q < P; q++) mean += M[q] / P;
    for (int q = 0; q < P; q++) M[q] = 1.0 / fmax(M[q], 1e-12 * mean + 1e-300); /* a floor against 1 / 0 */
    gauge_columns(w, h);
    while ((r->gradient_norm = max_abs(g, P)) > tolerance && r->iterations < max_iterations) {
        for (int q = 0; q < P; q++) d[q] = -g[q];
        for (int b = 0; b < stored; b++) {
            int s = (head - 1 - b + m) % m;
            alpha[s] = rho[s] * dot(S + (size_t)s * P, d, P);
            for (int q = 0; q < P; q++) d[q] -= alpha[s] * Y[(size_t)s * P + q];
        }
        double gamma = 1.0; /* s.y / y.M y, M the preconditioner */
        if (stored) {
            int s = (head - 1 + m) % m;
            memcpy(trial, Y + (size_t)s * P, (size_t)P * sizeof *trial);
            precondition(w, M, h, 1.0, trial, h + w->D);
            double yMy = dot(trial, Y + (size_t)s * P, P);
            gamma = yMy > 0.0 ? 1.0 / (rho[s] * yMy) : 1.0;
        }
        precondition(w, M, h, gamma, d, h + w->D);
        for (int b = stored - 1; b >= 0; b--) {
            int s = (head - 1 - b + m) % m;
            double beta = rho[s] * dot(Y + (size_t)s * P, d, P);
            for (int q = 0; q < P; q++) d[q] += (alpha[s] - beta) * S[(size_t)s * P + q];
        }
        if (!(dot(d, g, P) < 0.0)) {
            stored = 0;
            continue;
        }
        memcpy(prev, g, (size_t)P * sizeof *g);
        memcpy(S + (size_t)head * P, theta, (size_t)P * sizeof *theta);
        r->iterations++;
        if (!line_search(w, theta, d, f, g, nll, trial, gt)) {
            if (stored == 0) break; /* the preconditioned gradient found no decrease either */
            stored = 0;
            continue;
        }
        double *s = S + (size_t)head * P, *y = Y + (size_t)head * P;
        for (int q = 0; q < P; q++) s[q] = theta[q] - s[q], y[q] = g[q] - prev[q];
        double sy = dot(s, y, P);
        if (sy > 0.0) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % m;
            stored = stored < m ? stored + 1 : m;
        }
    }
    r->gradient_norm = max_abs(g, P);
    free(mem), free(h);
    return KD_OK;
}

int kd_scaling_solve(const kd_scaling_problem *pb, double *theta, double tolerance, int max_iterations,
                     int newton_max_parameters, kd_scaling_result *r, kd_error *err)
{
    memset(r, 0, sizeof *r);
    const int C = pb->classes, P = kd_scaling_parameter_count(pb->kind, C);
    work w = {pb, C, C + 1, P, kd_cpu_has_avx512(), NULL, NULL, NULL, NULL, 0};
    w.wt = malloc((size_t)(C + 1) * C * sizeof(double));
    w.part = malloc((size_t)KD_CHUNKS * P * sizeof(double));
    w.loss = malloc(KD_CHUNKS * sizeof(double));
    w.scratch = malloc((size_t)KD_CHUNKS * 2 * ROW_BLOCK * C * sizeof(double));
    double *g = malloc((size_t)P * sizeof *g);
    int rc = KD_OK;
    if (!w.wt || !w.part || !w.loss || !w.scratch || !g) {
        rc = kd_error_set(err, KD_ERR_DATA, "scaling fit: cannot allocate work space for %d parameters", P);
        goto done;
    }
    double nll, f = evaluate(&w, theta, g, &nll);
    r->newton = P <= newton_max_parameters;
    if (max_iterations <= 0) max_iterations = r->newton ? 100 : 5000;
    rc = r->newton ? newton(&w, theta, tolerance, max_iterations, r, g, &f, &nll, err)
                   : lbfgs(&w, theta, tolerance, max_iterations, r, g, &f, &nll, err);
    r->objective = f;
    r->nll = nll;
    r->evaluations = w.evaluations;
    r->converged = r->gradient_norm <= tolerance;
done:
    free(w.wt), free(w.part), free(w.loss), free(w.scratch), free(g);
    return rc;
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
