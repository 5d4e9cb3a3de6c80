/* scaling_internal.h - the objective and solvers of the scaling family (scaling_solve.c),
 * used by the fit and its cross-validation (scaling.c). Parameters theta:
 *   vector:             [w_0 .. w_{C-1}, b_0 .. b_{C-1}]                      (2C)
 *   matrix, Dirichlet:  (C, D) row-major, D = C + 1, row k = [W_k0 .. W_k,C-1, b_k]  (C D)
 * so that u_k = sum_j theta_kj x~_j with x~ = [x; 1]. */
#ifndef KD_SCALING_INTERNAL_H
#define KD_SCALING_INTERNAL_H

#include "calib/scaling.h"

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
/* The identity: w = 1 (W = I), b = 0. */
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

#endif
