/* scaling_internal.h - the objective and solvers of the scaling family, used by the
 * fit and its cross-validation (scaling.c), and (below the line) what the solver's
 * files share: the objective's passes over the rows (scaling_objective.c), the exact
 * Hessian (scaling_hessian.c), L-BFGS's preconditioner (scaling_precond.c) and the
 * solvers (scaling_solve.c). Parameters theta:
 *   vector:             [w_0 .. w_{C-1}, b_0 .. b_{C-1}]                      (2C)
 *   matrix, Dirichlet:  (C, D) row-major, D = C + 1, row k = [W_k0 .. W_k,C-1, b_k]  (C D)
 * so that u_k = sum_j theta_kj x~_j with x~ = [x; 1]. */
#ifndef KD_SCALING_INTERNAL_H
#define KD_SCALING_INTERNAL_H

#include "calib/scaling.h"

#include <stddef.h>

typedef struct kd_scaling_problem {
    kd_scaling_kind kind;
    const double *x;  /* (n, C) features in double: z, or log softmax(z) for Dirichlet */
    const int32_t *y; /* (n) labels */
    int64_t n;
    int classes;
    double lambda, mu; /* ODIR strengths (vector scaling: unused) */
} kd_scaling_problem;

typedef struct kd_scaling_result {
    double objective, nll, gradient_norm;
    int iterations, evaluations; /* solver steps; passes over the rows (objective and gradient) */
    bool converged, newton;
} kd_scaling_result;

int kd_scaling_parameter_count(kd_scaling_kind kind, int classes);
/* The identity: w = 1 (W = I), b = 0 (the fit starts from temperature scaling's
 * optimum, scaling.c). */
void kd_scaling_identity(kd_scaling_kind kind, int classes, double *theta);
/* Minimises the objective from theta (in: the start, out: the optimum). Fails only
 * when memory is refused. max_iterations 0: 100 Newton or 5000 L-BFGS iterations. */
int kd_scaling_solve(const kd_scaling_problem *pb, double *theta, double tolerance, int max_iterations,
                     int newton_max_parameters, kd_scaling_result *r, kd_error *err);
/* Mean NLL (no penalty) of theta on the problem's rows; NAN when memory is refused. */
double kd_scaling_mean_nll(const kd_scaling_problem *pb, const double *theta);
/* u (n, C) = the calibrated logits of features x (n, C) in double. */
void kd_scaling_affine(kd_scaling_kind kind, int classes, const double *theta, const double *x, int64_t n,
                       double *u);


/* ---- inside the solver ---- */

#define KD_SCALING_CHUNKS 64 /* fixed row ranges whose sums are added in order: results independent of the threads */
#define KD_SCALING_ROWS 64   /* rows a range multiplies at once */

typedef struct kd_scaling_work {
    const kd_scaling_problem *pb;
    int C, D, P;
    bool avx;        /* the AVX-512 variants (core/simd.h) */
    double *wt;      /* (D, C): theta transposed, for the preconditioner's passes */
    double *part;    /* (KD_SCALING_CHUNKS, P): per-range gradient sums */
    double *loss;    /* (KD_SCALING_CHUNKS) */
    double *scratch; /* (KD_SCALING_CHUNKS, 2, KD_SCALING_ROWS, C) */
    int evaluations;
} kd_scaling_work;

/* KD_OK, or KD_ERR_DATA when memory is refused (nothing left allocated). */
int kd_scaling_work_init(kd_scaling_work *w, const kd_scaling_problem *pb);
void kd_scaling_work_free(kd_scaling_work *w);
/* Objective (mean NLL + penalty) and its gradient (P); *nll gets the mean NLL. */
double kd_scaling_evaluate(kd_scaling_work *w, const double *theta, double *grad, double *nll);
/* u (C) <- softmax(u); returns logsumexp(u). */
double kd_scaling_softmax_row(const kd_scaling_work *w, double *u, int C);
/* The rb rows xb (rb, C): xt (C, KD_SCALING_ROWS) <- xb transposed, ut (same) <- their
 * probabilities, a row in each column. */
void kd_scaling_block_probabilities(const kd_scaling_work *w, const double *theta, const double *xb, int rb, double *xt,
                                    double *ut);

/* The Hessian of the objective (P, P), full; hw: kd_scaling_hessian_work_size doubles. */
size_t kd_scaling_hessian_work_size(kd_scaling_kind kind, int C);
void kd_scaling_hessian(kd_scaling_work *w, const double *theta, double *H, double *hw);
/* A = U^T U in place (U upper, row-major); false if A is not positive definite. */
bool kd_scaling_cholesky(double *A, int P);
/* Solves U^T U d = rhs in place. */
void kd_scaling_cholesky_solve(const double *U, int P, double *d);

typedef struct kd_scaling_preconditioner {
    double *scale;          /* (P) diagonal mode: 1 / the Hessian's diagonal; Kronecker: the Jacobi scaling */
    double *UA, *UB;        /* Kronecker mode: upper Cholesky factors of A (C, C) and B (D, D); NULL: diagonal */
    double *h;              /* (D) the gauge columns' curvatures */
    double *along, *column; /* scratch: (D), (C) */
} kd_scaling_preconditioner;

/* The preconditioner at theta, in m's buffers (UA, UB may be NULL: the diagonal
 * mode); kp: (KD_SCALING_CHUNKS, 2 C^2 + 2 C) scratch, or NULL. */
void kd_scaling_precondition_setup(kd_scaling_work *w, const double *theta, kd_scaling_preconditioner *m, double *kp);
/* v <- gamma M v off the gauge directions, exact on them. */
void kd_scaling_precondition(const kd_scaling_work *w, const kd_scaling_preconditioner *m, double gamma, double *v);

#endif
