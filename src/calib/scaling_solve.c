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

#include "core/parallel.h"
#include "core/vexp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KD_CHUNKS 64   /* fixed row ranges of the gradient */
#define ROW_BLOCK 8    /* rows a chunk multiplies at once */
#define HESS_BLOCK 256 /* rows whose probabilities the Hessian holds at once */
#define LBFGS_MEMORY 10
/* v's row stride: J^T p (P), then x~ (D) for matrix kinds, zero-padded to read 8 at a time */
#define HESS_STRIDE(P, D) ((P) + ((D) + 7) / 8 * 8)

typedef struct work {
    const kd_scaling_problem *pb;
    int C, D, P;
    bool avx;
    double *wt;      /* (D, C): theta transposed, matrix kinds */
    double *part;    /* (KD_CHUNKS, P): per-range gradient sums, (D, C) layout for matrix kinds */
    double *loss;    /* (KD_CHUNKS) */
    double *scratch; /* (KD_CHUNKS, ROW_BLOCK, C) */
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
    double max = u[0];
    for (int k = 1; k < C; k++) max = u[k] > max ? u[k] : max;
    __m512d vmax = _mm512_set1_pd(max), sum = _mm512_setzero_pd();
    for (int k = 0; k < C; k += 8) {
        __mmask8 m = C - k >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (C - k)) - 1);
        __m512d e = _mm512_maskz_mov_pd(m, kd_exp_pd(_mm512_sub_pd(_mm512_maskz_loadu_pd(m, u + k), vmax)));
        _mm512_mask_storeu_pd(u + k, m, e);
        sum = _mm512_add_pd(sum, e);
    }
    double s = _mm512_reduce_add_pd(sum), inv = 1.0 / s;
    for (int k = 0; k < C; k++) u[k] *= inv;
    return max + log(s);
}
#endif

/* ---- one range of rows: its NLL sum and gradient sum ---- */

/* Matrix kinds. u (ROW_BLOCK, C) = X~ Theta^T for ROW_BLOCK rows at once (each row of
 * wt is used for all of them while it is in cache), then r = p - e_y overwrites u and
 * g (D, C) += X~^T r. */
KD_INLINE_BODY double range_matrix(const work *w, int64_t lo, int64_t hi, double *g, double *u, bool avx)
{
    const int C = w->C, D = w->D;
    const double *x = w->pb->x, *wt = w->wt;
    const int32_t *y = w->pb->y;
    double loss = 0.0;
    memset(g, 0, (size_t)w->P * sizeof *g);
    for (int64_t i0 = lo; i0 < hi; i0 += ROW_BLOCK) {
        int rb = hi - i0 < ROW_BLOCK ? (int)(hi - i0) : ROW_BLOCK;
        const double *xb = x + (size_t)i0 * (size_t)C;
        for (int r = 0; r < rb; r++) memcpy(u + r * C, wt + (size_t)C * C, (size_t)C * sizeof *u); /* b */
        for (int j = 0; j < C; j++) {
            const double *wj = wt + (size_t)j * C;
            for (int r = 0; r < rb; r++) {
                double xv = xb[r * C + j];
                double *ur = u + r * C;
                for (int k = 0; k < C; k++) ur[k] += xv * wj[k];
            }
        }
        for (int r = 0; r < rb; r++) {
            double *ur = u + r * C;
            int label = y[i0 + r];
            double uy = ur[label];
#if KD_HAVE_AVX512_VARIANTS
            double lse = avx ? softmax_avx512(ur, C) : softmax_scalar(ur, C);
#else
            (void)avx;
            double lse = softmax_scalar(ur, C);
#endif
            loss += lse - uy;
            ur[label] -= 1.0;
        }
        for (int j = 0; j < C; j++) {
            double *gj = g + (size_t)j * C;
            for (int r = 0; r < rb; r++) {
                double xv = xb[r * C + j];
                const double *ur = u + r * C;
                for (int k = 0; k < C; k++) gj[k] += xv * ur[k];
            }
        }
        double *gb = g + (size_t)C * C;
        for (int r = 0; r < rb; r++)
            for (int k = 0; k < C; k++) gb[k] += u[r * C + k];
    }
    (void)D;
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
    if (pb->kind != KD_SCALING_VECTOR)
        for (int k = 0; k < C; k++)
            for (int j = 0; j < D; j++) w->wt[(size_t)j * C + k] = theta[k * D + j];
    /* threads only where they pay for their region (a few microseconds a barrier,
     * far more on a loaded machine): the same chunks either way */
    const bool par = (double)n * P >= 2e5;
    KD_PARALLEL_FOR(par, int, c, KD_CHUNKS,
                    w->loss[c] = range_run(w, theta, n * c / KD_CHUNKS, n * (c + 1) / KD_CHUNKS,
                                           w->part + (size_t)c * P, w->scratch + (size_t)c * ROW_BLOCK * C));
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

/* ---- the exact Hessian (P, P), for Newton ---- */

/* Probabilities of rows [i0, i0 + nb) into v's first C columns, then
 * v[i] = J_i^T p_i: [p (.) x, p] or p (x) x~. */
static void hessian_rows(const work *w, const double *theta, int64_t i0, int nb, double *v, int Pp)
{
    const int C = w->C, D = w->D, P = w->P;
    const double *x = w->pb->x;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < nb; r++) {
        const double *xi = x + (size_t)(i0 + r) * C;
        double *vr = v + (size_t)r * Pp;
        if (w->pb->kind == KD_SCALING_VECTOR) {
            double *p = vr + C; /* the b part of J^T p is p itself */
            for (int k = 0; k < C; k++) p[k] = theta[k] * xi[k] + theta[C + k];
            softmax_scalar(p, C);
            for (int k = 0; k < C; k++) vr[k] = p[k] * xi[k];
            continue;
        }
        double *p = vr; /* p in vr[0, C), then the blocks k = C-1 .. 0: block k >= 1 starts at k D > C - 1 */
        for (int k = 0; k < C; k++) {
            double s = theta[k * D + C];
            for (int j = 0; j < C; j++) s += theta[k * D + j] * xi[j];
            p[k] = s;
        }
        softmax_scalar(p, C);
        for (int j = 0; j < C; j++) vr[P + j] = xi[j]; /* x~, for the diag(p) part */
        vr[P + C] = 1.0;
        for (int k = C - 1; k >= 0; k--) {
            double pk = p[k];
            vr[k * D + C] = pk;
            for (int j = C - 1; j >= 0; j--) vr[k * D + j] = pk * xi[j];
        }
    }
}

/* acc (4, 8) = sum over the block's rows r of v[r][a0 + q] v[r][b0 + e]: a piece of
 * V^T V held in registers while the rows go by (v zero-padded to Pp >= b0 + 8). */
static void rank_block_generic(const double *v, int Pp, int nb, int a0, int b0, double acc[4][8])
{
    memset(acc, 0, 32 * sizeof(double));
    for (int r = 0; r < nb; r++) {
        const double *vr = v + (size_t)r * Pp;
        for (int q = 0; q < 4; q++)
            for (int e = 0; e < 8; e++) acc[q][e] += vr[a0 + q] * vr[b0 + e];
    }
}

#if KD_HAVE_AVX512_VARIANTS
KD_TARGET_AVX512 static void rank_block_avx512(const double *v, int Pp, int nb, int a0, int b0, double acc[4][8])
{
    __m512d c0 = _mm512_setzero_pd(), c1 = c0, c2 = c0, c3 = c0;
    for (int r = 0; r < nb; r++) {
        const double *vr = v + (size_t)r * Pp;
        __m512d vb = _mm512_loadu_pd(vr + b0);
        c0 = _mm512_fmadd_pd(_mm512_set1_pd(vr[a0]), vb, c0);
        c1 = _mm512_fmadd_pd(_mm512_set1_pd(vr[a0 + 1]), vb, c1);
        c2 = _mm512_fmadd_pd(_mm512_set1_pd(vr[a0 + 2]), vb, c2);
        c3 = _mm512_fmadd_pd(_mm512_set1_pd(vr[a0 + 3]), vb, c3);
    }
    _mm512_storeu_pd(acc[0], c0), _mm512_storeu_pd(acc[1], c1);
    _mm512_storeu_pd(acc[2], c2), _mm512_storeu_pd(acc[3], c3);
}
#endif

/* Rows [a0, a0 + 4) of H's upper triangle += sum_i J_i^T diag(p_i) J_i - v_i v_i^T
 * over the block. */
static void hessian_tile(const work *w, int64_t i0, int nb, const double *v, int Pp, double *H, int a0)
{
    const int C = w->C, D = w->D, P = w->P;
    const double *x = w->pb->x;
    double acc[4][8];
    (void)C;
    for (int b0 = a0 & ~7; b0 < P; b0 += 8) {
#if KD_HAVE_AVX512_VARIANTS
        if (w->avx) rank_block_avx512(v, Pp, nb, a0, b0, acc);
        else rank_block_generic(v, Pp, nb, a0, b0, acc);
#else
        rank_block_generic(v, Pp, nb, a0, b0, acc);
#endif
        for (int q = 0; q < 4 && a0 + q < P; q++)
            for (int e = 0; e < 8 && b0 + e < P; e++)
                if (b0 + e >= a0 + q) H[(size_t)(a0 + q) * P + b0 + e] -= acc[q][e];
    }
    if (w->pb->kind == KD_SCALING_VECTOR) {
        for (int r = 0; r < nb; r++) { /* the diag(p) part: J^T diag(p) J */
            const double *vr = v + (size_t)r * Pp, *xi = x + (size_t)(i0 + r) * C;
            for (int a = a0; a < a0 + 4 && a < P; a++) {
                double c = vr[a], *h = H + (size_t)a * P;
                if (a < C) h[a] += c * xi[a], h[C + a] += c; /* p x^2, p x */
                else h[a] += c;                               /* p */
            }
        }
        return;
    }
    /* matrix kinds: the diag(p) part is block-diagonal, block k = sum_r p_k x~ x~^T,
     * and row (k, j) of it is sum_r v[r][(k, j)] x~_r: the same product against the
     * copy of x~ that v holds in its columns [P, P + D) */
    for (int m0 = 0; m0 < D; m0 += 8) {
#if KD_HAVE_AVX512_VARIANTS
        if (w->avx) rank_block_avx512(v, Pp, nb, a0, P + m0, acc);
        else rank_block_generic(v, Pp, nb, a0, P + m0, acc);
#else
        rank_block_generic(v, Pp, nb, a0, P + m0, acc);
#endif
        for (int q = 0; q < 4 && a0 + q < P; q++) {
            int a = a0 + q, k = a / D, j = a % D;
            for (int e = 0; e < 8 && m0 + e < D; e++)
                if (m0 + e >= j) H[(size_t)a * P + k * D + m0 + e] += acc[q][e];
        }
    }
}

/* Every tile of 4 rows of H, each summing the block's rows in order. */
static void hessian_tiles(const work *w, int64_t i0, int nb, const double *v, int Pp, double *H)
{
    const int tiles = (w->P + 3) / 4;
    KD_PARALLEL_FOR((double)nb * w->P * w->P >= 2e5, int, t, tiles, hessian_tile(w, i0, nb, v, Pp, H, 4 * t));
}

/* The Hessian of the objective (P, P), full. The null directions of an unpenalised
 * model (adding one vector to every row of Theta, or one constant to every b, leaves
 * the softmax unchanged) get gamma v v^T, gamma the mean diagonal: the gradient is
 * orthogonal to them, so the Newton step is unchanged and keeps the start's sums
 * sum_k W_kj and sum_k b_k (the identity's: 1 and 0). */
static void hessian(work *w, const double *theta, double *H, double *v)
{
    const kd_scaling_problem *pb = w->pb;
    const int C = w->C, D = w->D, P = w->P;
    memset(H, 0, (size_t)P * P * sizeof *H);
    for (int64_t i0 = 0; i0 < pb->n; i0 += HESS_BLOCK) {
        int nb = pb->n - i0 < HESS_BLOCK ? (int)(pb->n - i0) : HESS_BLOCK;
        hessian_rows(w, theta, i0, nb, v, HESS_STRIDE(P, w->D));
        hessian_tiles(w, i0, nb, v, HESS_STRIDE(P, w->D), H);
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
    double *d = malloc((size_t)P * sizeof *d), *trial = malloc((size_t)P * sizeof *d), *gt = malloc((size_t)P * sizeof *d);
    int rc = KD_OK;
    if (!H || !Hs || !v || !d || !trial || !gt) {
        rc = kd_error_set(err, KD_ERR_DATA, "scaling fit: cannot allocate the %d x %d Hessian", P, P);
        goto done;
    }
    while ((r->gradient_norm = max_abs(g, P)) > tolerance && r->iterations < max_iterations) {
        hessian(w, theta, Hs, v);
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
    free(H), free(Hs), free(v), free(d), free(trial), free(gt);
    return rc;
}

/* L-BFGS (Nocedal and Wright, algorithm 7.4): the two-loop recursion over the last
 * LBFGS_MEMORY pairs s = theta' - theta, y = g' - g, scaled by s.y / y.y, and the
 * line search above. A pair with s.y <= 0 (only by rounding: the objective is convex)
 * is not stored; a direction that is not downhill restarts from -g. */
static int lbfgs(work *w, double *theta, double tolerance, int max_iterations, kd_scaling_result *r, double *g,
                 double *f, double *nll, kd_error *err)
{
    const int P = w->P, m = LBFGS_MEMORY;
    double *mem = malloc((size_t)(2 * m + 4) * P * sizeof *mem);
    if (!mem) return kd_error_set(err, KD_ERR_DATA, "scaling fit: cannot allocate L-BFGS memory for %d parameters", P);
    double *S = mem, *Y = S + (size_t)m * P, *d = Y + (size_t)m * P, *trial = d + P, *gt = trial + P, *prev = gt + P;
    double rho[LBFGS_MEMORY], alpha[LBFGS_MEMORY];
    int stored = 0, head = 0; /* pairs held; the next slot */
    while ((r->gradient_norm = max_abs(g, P)) > tolerance && r->iterations < max_iterations) {
        for (int q = 0; q < P; q++) d[q] = -g[q];
        for (int b = 0; b < stored; b++) {
            int s = (head - 1 - b + m) % m;
            alpha[s] = rho[s] * dot(S + (size_t)s * P, d, P);
            for (int q = 0; q < P; q++) d[q] -= alpha[s] * Y[(size_t)s * P + q];
        }
        if (stored) {
            int s = (head - 1 + m) % m;
            const double *ys = Y + (size_t)s * P;
            double gamma = 1.0 / (rho[s] * dot(ys, ys, P));
            for (int q = 0; q < P; q++) d[q] *= gamma;
        } else {
            double scale = 1.0 / fmax(1.0, max_abs(g, P) * 10); /* a first step of at most 0.1 */
            for (int q = 0; q < P; q++) d[q] *= scale;
        }
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
            if (stored == 0) break; /* steepest descent found no decrease either */
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
    free(mem);
    return KD_OK;
}

int kd_scaling_solve(const kd_scaling_problem *pb, double *theta, double tolerance, int max_iterations,
                     int newton_max_parameters, kd_scaling_result *r, kd_error *err)
{
    memset(r, 0, sizeof *r);
    const int C = pb->classes, P = kd_scaling_parameter_count(pb->kind, C);
    work w = {pb, C, C + 1, P, kd_cpu_has_avx512(), NULL, NULL, NULL, NULL};
    w.wt = malloc((size_t)(C + 1) * C * sizeof(double));
    w.part = malloc((size_t)KD_CHUNKS * P * sizeof(double));
    w.loss = malloc(KD_CHUNKS * sizeof(double));
    w.scratch = malloc((size_t)KD_CHUNKS * ROW_BLOCK * C * sizeof(double));
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
