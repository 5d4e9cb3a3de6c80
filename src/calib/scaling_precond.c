/* scaling_precond.c - the preconditioner of the scaling family's L-BFGS
 * (scaling_solve.c): an approximate inverse Hessian, built once at the start from one
 * pass over the rows and applied at every step in O(C^2 D) - nothing beside the two
 * products of a pass. Without it L-BFGS took 5 to 13 times the iterations on
 * 10,000 x 100 logits (measured, docs/ARCHITECTURE.md). */
#include "calib/scaling_internal.h"

#include "core/dgemm.h"
#include "core/parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the Hessian's diagonal ---- */

/* One range of rows: g (P, (D, C) layout for matrix kinds) += the diagonal of
 * sum_i J_i^T S_i J_i, whose entry (k, j) is q_ik x~_ij^2 with q = p (1 - p): the
 * gradient's two products with q for r and x~ (.) x~ for x~. u and sq: (KD_SCALING_ROWS, C). */
static void range_curvature(const kd_scaling_work *w, const double *theta, int64_t lo, int64_t hi, double *g, double *u,
                            double *sq)
{
    const int C = w->C;
    const double *x = w->pb->x;
    const bool vec = w->pb->kind == KD_SCALING_VECTOR;
    memset(g, 0, (size_t)w->P * sizeof *g);
    for (int64_t i0 = lo; i0 < hi; i0 += KD_SCALING_ROWS) {
        int rb = hi - i0 < KD_SCALING_ROWS ? (int)(hi - i0) : KD_SCALING_ROWS;
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
            kd_scaling_softmax_row(w, ur, C);
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
static void curvature(kd_scaling_work *w, const double *theta, double *diag)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C, D = w->D, P = w->P;
    const int64_t n = pb->n;
    const bool vec = pb->kind == KD_SCALING_VECTOR;
    if (!vec)
        for (int k = 0; k < C; k++)
            for (int j = 0; j < D; j++) w->wt[(size_t)j * C + k] = theta[k * D + j];
    const bool par = (double)n * P >= 2e5;
    KD_PARALLEL_FOR(par, int, c, KD_SCALING_CHUNKS, {
        double *u = w->scratch + (size_t)c * 2 * KD_SCALING_ROWS * C;
        range_curvature(w, theta, n * c / KD_SCALING_CHUNKS, n * (c + 1) / KD_SCALING_CHUNKS, w->part + (size_t)c * P, u,
                        u + (size_t)KD_SCALING_ROWS * C);
    });
    const double inv = 1.0 / (double)n;
    const double a2 = vec ? 0.0 : 2.0 * pb->lambda / ((double)C * (C - 1)), c2 = vec ? 0.0 : 2.0 * pb->mu / C;
    for (int q = 0; q < P; q++) {
        int src = vec ? q : (q % D) * C + q / D, k = q / D, j = q % D;
        double s = 0.0;
        for (int c = 0; c < KD_SCALING_CHUNKS; c++) s += w->part[(size_t)c * P + src];
        diag[q] = s * inv + (vec || j == k ? 0.0 : j == C ? c2 : a2);
    }
}

/* ---- Kronecker factors of the Hessian, matrix kinds ---- */

/* The NLL's Hessian is mean_i S_i (x) x~_i x~_i^T; its Kronecker approximation
 * A (x) B, A = mean_i S_i (C, C), B = mean_i x~_i x~_i^T (D, D), keeps the coupling of
 * the features (log softmax features share the term -logsumexp(z): their B is far from
 * diagonal) and of the classes, and is inverted factor by factor (Martens and Grosse's
 * K-FAC). One range of rows adds to kp (2 C^2 + 2 C): sum p p^T, sum x x^T, sum p, sum x. */
static void range_kron(const kd_scaling_work *w, int64_t lo, int64_t hi, double *kp, double *u)
{
    const int C = w->C;
    const double *x = w->pb->x;
    double *pp = kp, *xx = pp + (size_t)C * C, *ps = xx + (size_t)C * C, *xs = ps + C;
    memset(kp, 0, (size_t)(2 * C * C + 2 * C) * sizeof *kp);
    for (int64_t i0 = lo; i0 < hi; i0 += KD_SCALING_ROWS) {
        int rb = hi - i0 < KD_SCALING_ROWS ? (int)(hi - i0) : KD_SCALING_ROWS;
        const double *xb = x + (size_t)i0 * (size_t)C;
        for (int r = 0; r < rb; r++) memcpy(u + r * C, w->wt + (size_t)C * C, (size_t)C * sizeof *u);
        kd_dgemm_nn(w->avx, rb, C, C, xb, C, w->wt, C, u, C);
        for (int r = 0; r < rb; r++) kd_scaling_softmax_row(w, u + r * C, C);
        kd_dgemm_tn(w->avx, C, C, rb, u, C, u, C, pp, C);
        kd_dgemm_tn(w->avx, C, C, rb, xb, C, xb, C, xx, C);
        for (int r = 0; r < rb; r++)
            for (int k = 0; k < C; k++) ps[k] += u[r * C + k], xs[k] += xb[r * C + k];
    }
}

/* A (C, C) and B (D, D) at theta, summed over the fixed ranges in order. kp:
 * (KD_SCALING_CHUNKS, 2 C^2 + 2 C). */
static void kron_factors(kd_scaling_work *w, const double *theta, double *kp, double *A, double *B)
{
    const int C = w->C, D = w->D;
    const int64_t n = w->pb->n;
    const size_t stride = (size_t)2 * C * C + 2 * (size_t)C;
    for (int k = 0; k < C; k++)
        for (int j = 0; j < D; j++) w->wt[(size_t)j * C + k] = theta[k * D + j];
    KD_PARALLEL_FOR((double)n * w->P >= 2e5, int, c, KD_SCALING_CHUNKS,
                    range_kron(w, n * c / KD_SCALING_CHUNKS, n * (c + 1) / KD_SCALING_CHUNKS, kp + (size_t)c * stride,
                               w->scratch + (size_t)c * 2 * KD_SCALING_ROWS * C));
    const double inv = 1.0 / (double)n;
    memset(A, 0, (size_t)C * C * sizeof *A);
    memset(B, 0, (size_t)D * D * sizeof *B);
    for (int c = 0; c < KD_SCALING_CHUNKS; c++) {
        const double *pp = kp + (size_t)c * stride, *xx = pp + (size_t)C * C, *ps = xx + (size_t)C * C, *xs = ps + C;
        for (int k = 0; k < C; k++) {
            A[(size_t)k * C + k] += ps[k] * inv;
            B[(size_t)k * D + C] += xs[k] * inv;
            for (int l = 0; l < C; l++) A[(size_t)k * C + l] -= pp[(size_t)k * C + l] * inv, B[(size_t)k * D + l] += xx[(size_t)k * C + l] * inv;
        }
    }
    for (int k = 0; k < C; k++) B[(size_t)C * D + k] = B[(size_t)k * D + C];
    B[(size_t)C * D + C] = 1.0;
}

/* The gauge columns of [W b]: along u_j (one in column j for every class k) the NLL
 * is constant, so the curvature there is the penalty's alone, h_j = u_j^T H u_j / C:
 * 2 lambda / C^2 for a column of W (C - 1 of its entries penalised), 2 mu / C for b;
 * vector scaling has only b's, unpenalised. The diagonal misses these directions by
 * a factor of about 1e5 at lambda = 1e-3, C = 100, where they made the last digits
 * of the gradient take most of the iterations (measured). */
static int gauge_columns(const kd_scaling_work *w, double *h)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C;
    if (pb->kind == KD_SCALING_VECTOR) return h[0] = 0.0, 1;
    for (int j = 0; j < C; j++) h[j] = 2.0 * pb->lambda * (C - 1) / ((double)C * C * (C - 1));
    h[C] = 2.0 * pb->mu / C;
    return C + 1;
}

/* v <- the preconditioner applied to v: on the gauge columns' means, 1 / h_j (0 on a
 * null direction, h_j = 0); on the rest, gamma times the diagonal's inverse, or
 * gamma S (A^-1 (x) B^-1) S v = gamma S A^-1 (S v) B^-1 S (Kronecker). */
void kd_scaling_precondition(const kd_scaling_work *w, const kd_scaling_preconditioner *m, double gamma, double *v)
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
        m->along[j] = m->h[j] > 0.0 ? mean / m->h[j] : 0.0;
    }
    for (int q = 0; q < P; q++) v[q] *= m->scale[q];
    if (m->UA) {
        for (int k = 0; k < C; k++) kd_scaling_cholesky_solve(m->UB, D, v + (size_t)k * D); /* rows: v B^-1 */
        for (int j = 0; j < D; j++) {                                            /* columns: A^-1 v */
            for (int k = 0; k < C; k++) m->column[k] = v[(size_t)k * D + j];
            kd_scaling_cholesky_solve(m->UA, C, m->column);
            for (int k = 0; k < C; k++) v[(size_t)k * D + j] = m->column[k];
        }
        for (int q = 0; q < P; q++) v[q] *= m->scale[q];
    }
    for (int q = 0; q < P; q++) v[q] *= gamma;
    for (int j = 0; j < columns; j++) {
        int at = vec ? C : j;
        double mean = 0.0;
        for (int k = 0; k < C; k++) mean += v[at + k * stride];
        mean /= C;
        for (int k = 0; k < C; k++) v[at + k * stride] += m->along[j] - mean;
    }
}

/* The preconditioner at theta (the start), in m's buffers. The Kronecker form for
 * matrix kinds; A's null direction (the ones vector: S_i 1 = 0) gets the mean
 * eigenvalue, as in kd_scaling_hessian, and a failed factorisation falls back to the diagonal.
 * Measured (L-BFGS iterations to max |gradient| <= 1e-9 on 10,000 x 100 logits, lambda =
 * mu = 1e-3, from temperature scaling's optimum): matrix scaling 415 unpreconditioned, 84
 * with the diagonal and exact gauge curvatures, 81 adding the Kronecker form; Dirichlet
 * calibration 710 with the diagonal, 116 with the Kronecker form alone, 54 with both:
 * the Kronecker form scaled so that its diagonal is the true one, S (A (x) B)^-1 S,
 * S = sqrt(diag(A (x) B) / diag(H)). */
void kd_scaling_precondition_setup(kd_scaling_work *w, const double *theta, kd_scaling_preconditioner *m, double *kp)
{
    const int C = w->C, D = w->D, P = w->P;
    curvature(w, theta, m->scale);
    double mean = 0.0;
    for (int q = 0; q < P; q++) mean += m->scale[q] / P;
    gauge_columns(w, m->h);
    bool kron = kp && m->UA && w->pb->kind != KD_SCALING_VECTOR;
    if (kron) {
        kron_factors(w, theta, kp, m->UA, m->UB);
        double ta = 0.0, tb = 0.0;
        for (int k = 0; k < C; k++) ta += m->UA[(size_t)k * C + k] / C;
        for (int j = 0; j < D; j++) tb += m->UB[(size_t)j * D + j] / D;
        for (int q = 0; q < P; q++) { /* the Jacobi scaling: (A (x) B)'s diagonal over H's */
            int k = q / D, j = q % D;
            double kd = m->UA[(size_t)k * C + k] * m->UB[(size_t)j * D + j];
            m->scale[q] = sqrt(kd / fmax(m->scale[q], 1e-12 * mean + 1e-300));
        }
        for (int k = 0; k < C; k++)
            for (int l = 0; l < C; l++) m->UA[(size_t)k * C + l] += ta / C + (k == l ? 1e-10 * ta : 0.0);
        for (int j = 0; j < D; j++) m->UB[(size_t)j * D + j] += 1e-10 * tb;
        kron = kd_scaling_cholesky(m->UA, C) && kd_scaling_cholesky(m->UB, D);
        if (!kron) curvature(w, theta, m->scale);
    }
    if (!kron) {
        m->UA = m->UB = NULL;
        for (int q = 0; q < P; q++) m->scale[q] = 1.0 / fmax(m->scale[q], 1e-12 * mean + 1e-300); /* no 1 / 0 */
    }
}

