/* scaling_hessian.c - the exact Hessian of the scaling family's objective (for
 * Newton's method, scaling_solve.c) and the Cholesky factorisation that solves with it.
 * See scaling_objective.c for the maths; sums are in a fixed order (stripes of the
 * Hessian's rows, each summing the rows of the data in order), so the bits do not
 * depend on the thread count. */
#include "calib/scaling_internal.h"

#include "core/dgemm.h"
#include "core/parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Vector scaling, rows [i0, i0 + nb): v (nb, 2C) = J_i^T p_i = [p (.) x, p], and
 * H's upper triangle -= V^T V by stripes of 8 rows of H (each on one thread, summing
 * the rows in order), dp (3, C) += the diag(p) part [p x^2, p x, p] (H's entries
 * (k, k), (k, C + k), (C + k, C + k)). */
static void hessian_vector(const kd_scaling_work *w, const double *theta, int64_t i0, int nb, double *v, double *H, double *dp)
{
    const int C = w->C, P = w->P;
    const double *x = w->pb->x;
    for (int r = 0; r < nb; r++) {
        const double *xi = x + (size_t)(i0 + r) * C;
        double *vr = v + (size_t)r * P, *p = vr + C; /* the b part of J^T p is p itself */
        for (int k = 0; k < C; k++) p[k] = theta[k] * xi[k] + theta[C + k];
        kd_scaling_softmax_row(w, p, C);
        for (int k = 0; k < C; k++) {
            vr[k] = p[k] * xi[k];
            dp[k] += vr[k] * xi[k], dp[C + k] += vr[k], dp[2 * C + k] += p[k];
        }
    }
    KD_PARALLEL_FOR((double)nb * P * P >= 2e5, int, t, (P + 7) / 8, {
        int a0 = 8 * t;
        kd_dgemm_tn(w->avx, P - a0 < 8 ? P - a0 : 8, P - a0, nb, v + a0, P, v + a0, P, H + (size_t)a0 * P + a0, P);
    });
}

/* Matrix kinds. The Hessian's entry ((k, j), (l, m)) is
 *   mean_i [k = l] p_ik x~_ij x~_im - p_ik p_il x~_ij x~_im,
 * symmetric in k <-> l and, separately, in j <-> m: there are C (C + 1) / 2 class pairs
 * times D (D + 1) / 2 feature pairs of distinct values, a quarter of P^2 where V^T V
 * (V's rows p_i (x) x~_i) computes half (measured: the Hessian in half the time). For
 * rows [i0, i0 + nb): pp (nb, Cp) = p_ik p_il, xx (nb, Dp) = x~_ij x~_im, pr (nb, C) = p,
 * then hpp (Cp, Dp) += pp^T xx and hd (C, Dp) += pr^T xx (kd_dgemm_tn, by stripes of 8
 * rows, each on one thread summing the rows in order). xt, ut: (C, KD_SCALING_ROWS). */
static void hessian_pairs(const kd_scaling_work *w, const double *theta, int64_t i0, int nb, double *hw)
{
    const int C = w->C, D = w->D, Cp = C * (C + 1) / 2, Dp = D * (D + 1) / 2;
    double *xt = hw, *ut = xt + (size_t)C * KD_SCALING_ROWS, *pp = ut + (size_t)C * KD_SCALING_ROWS, *xx = pp + (size_t)KD_SCALING_ROWS * Cp,
           *pr = xx + (size_t)KD_SCALING_ROWS * Dp, *hpp = pr + (size_t)KD_SCALING_ROWS * C, *hd = hpp + (size_t)Cp * Dp;
    const double *xb = w->pb->x + (size_t)i0 * C;
    kd_scaling_block_probabilities(w, theta, xb, nb, xt, ut);
    for (int r = 0; r < nb; r++) {
        double *ppr = pp + (size_t)r * Cp, *xxr = xx + (size_t)r * Dp, *prr = pr + (size_t)r * C;
        const double *xi = xb + (size_t)r * C;
        for (int k = 0; k < C; k++) prr[k] = ut[(size_t)k * KD_SCALING_ROWS + r];
        for (int k = 0, e = 0; k < C; k++)
            for (int l = k; l < C; l++) ppr[e++] = prr[k] * prr[l];
        for (int j = 0, e = 0; j < D; j++) {
            double xj = j < C ? xi[j] : 1.0;
            for (int m = j; m < D; m++) xxr[e++] = xj * (m < C ? xi[m] : 1.0);
        }
    }
    const bool par = (double)nb * Cp * Dp >= 2e5;
    const int stripes = (Cp + 7) / 8; /* of hpp, then of hd */
    KD_PARALLEL_FOR(par, int, t, stripes + (C + 7) / 8, {
        if (t < stripes) {
            int a0 = 8 * t;
            kd_dgemm_tn(w->avx, Cp - a0 < 8 ? Cp - a0 : 8, Dp, nb, pp + a0, Cp, xx, Dp, hpp + (size_t)a0 * Dp, Dp);
        } else {
            int a0 = 8 * (t - stripes);
            kd_dgemm_tn(w->avx, C - a0 < 8 ? C - a0 : 8, Dp, nb, pr + a0, C, xx, Dp, hd + (size_t)a0 * Dp, Dp);
        }
    });
}

size_t kd_scaling_hessian_work_size(kd_scaling_kind kind, int C)
{
    const size_t D = (size_t)C + 1, Cp = (size_t)C * (C + 1) / 2, Dp = D * (D + 1) / 2;
    if (kind == KD_SCALING_VECTOR) return (size_t)KD_SCALING_ROWS * 2 * C + 3 * (size_t)C;
    return 2 * (size_t)C * KD_SCALING_ROWS + KD_SCALING_ROWS * (Cp + Dp + C) + Cp * Dp + C * Dp;
}

/* Index of the pair (a, b), a <= b, among the pairs of 0..n-1 in row order. */
static inline size_t pair_index(int a, int b, int n)
{
    return (size_t)a * n - (size_t)a * (a - 1) / 2 + (size_t)(b - a);
}

/* The Hessian of the objective (P, P), full. The null directions of an unpenalised
 * model (adding one vector to every row of Theta, or one constant to every b, leaves
 * the softmax unchanged) get gamma v v^T, gamma the mean diagonal: the gradient is
 * orthogonal to them, so the Newton step is unchanged and keeps the start's sums
 * sum_k W_kj and sum_k b_k (the identity's: 1 and 0). */
void kd_scaling_hessian(kd_scaling_work *w, const double *theta, double *H, double *hw)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C, D = w->D, P = w->P;
    memset(H, 0, (size_t)P * P * sizeof *H);
    if (pb->kind == KD_SCALING_VECTOR) {
        double *v = hw, *dp = hw + (size_t)KD_SCALING_ROWS * P;
        memset(dp, 0, 3 * (size_t)C * sizeof *dp);
        for (int64_t i0 = 0; i0 < pb->n; i0 += KD_SCALING_ROWS)
            hessian_vector(w, theta, i0, pb->n - i0 < KD_SCALING_ROWS ? (int)(pb->n - i0) : KD_SCALING_ROWS, v, H, dp);
        for (int a = 0; a < P; a++) /* H = diag(p) part - V^T V, upper triangle */
            for (int b = a; b < P; b++) H[(size_t)a * P + b] = -H[(size_t)a * P + b];
        for (int k = 0; k < C; k++) {
            H[(size_t)k * P + k] += dp[k];
            H[(size_t)k * P + C + k] += dp[C + k];
            H[(size_t)(C + k) * P + C + k] += dp[2 * C + k];
        }
    } else {
        const int Cp = C * (C + 1) / 2, Dp = D * (D + 1) / 2;
        double *hpp = hw + 2 * (size_t)C * KD_SCALING_ROWS + (size_t)KD_SCALING_ROWS * (Cp + Dp + C), *hd = hpp + (size_t)Cp * Dp;
        memset(hpp, 0, ((size_t)Cp + C) * Dp * sizeof *hpp);
        for (int64_t i0 = 0; i0 < pb->n; i0 += KD_SCALING_ROWS)
            hessian_pairs(w, theta, i0, pb->n - i0 < KD_SCALING_ROWS ? (int)(pb->n - i0) : KD_SCALING_ROWS, hw);
        for (int a = 0; a < P; a++) /* the upper triangle from the distinct values */
            for (int b = a; b < P; b++) {
                int k = a / D, j = a % D, l = b / D, m = b % D; /* k <= l */
                size_t f = j <= m ? pair_index(j, m, D) : pair_index(m, j, D);
                H[(size_t)a * P + b] = (k == l ? hd[(size_t)k * Dp + f] : 0.0) - hpp[pair_index(k, l, C) * Dp + f];
            }
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
bool kd_scaling_cholesky(double *A, int P)
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
void kd_scaling_cholesky_solve(const double *U, int P, double *d)
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

