/* scaling.h - the scaling family of post-hoc calibrators, each fitted to its exact
 * optimum: vector scaling (Guo et al. 2017), matrix scaling and Dirichlet calibration
 * (Kull et al. 2019) with the ODIR regulariser. Calibrated logits are affine in the
 * features x (x = z for vector and matrix scaling, x = log softmax(z) for Dirichlet):
 *   vector:             u = w (.) x + b        w, b in R^C, unregularised
 *   matrix, Dirichlet:  u = W x + b            W (C, C), b (C)
 * and the fit minimises
 *   mean_i NLL_i(u_i) + lambda / (C (C-1)) sum_{k != j} W_kj^2 + mu / C sum_k b_k^2,
 * convex in (W, b): multinomial logistic regression in linear parameters plus a convex
 * penalty. Newton's method with the exact Hessian when there are at most
 * newton_max_parameters parameters, preconditioned L-BFGS above, both from temperature
 * scaling's optimum (W = I / T, b = 0) and to max |gradient| <= tolerance. The strength
 * (mu = lambda) is chosen by k-fold cross-validation on the fitting split (scaling.c).
 * Owns the models, the objective, the solvers and the CV; not the files or reports. */
#ifndef KD_SCALING_H
#define KD_SCALING_H

#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_scaling_kind { KD_SCALING_VECTOR, KD_SCALING_MATRIX, KD_SCALING_DIRICHLET } kd_scaling_kind;

#define KD_SCALING_MAX_GRID 16

typedef struct kd_scaling_options {
    int folds;              /* cross-validation folds (default 5; 0 or 1: no CV, use lambda/mu below) */
    int n_grid;             /* strengths tried (0: the default grid 0, 1e-5, 1e-4, ..., 10) */
    double grid[KD_SCALING_MAX_GRID];
    double lambda, mu;      /* used when folds < 2 */
    uint64_t seed;          /* fold assignment (kd_scaling_folds) */
    double tolerance;       /* max |gradient| to reach (default 1e-9) */
    int max_iterations;     /* Newton iterations, or L-BFGS iterations (default 100 and 5000) */
    int newton_max_parameters; /* Newton up to this many parameters, L-BFGS above (default 1500) */
} kd_scaling_options;

typedef struct kd_scaling {
    kd_scaling_kind kind;
    int classes;
    double *weight;         /* vector: (C) diagonal; matrix/Dirichlet: (C, C) row-major, u = W x + b */
    double *bias;           /* (C) */
    double lambda, mu;      /* the strengths of the final fit */
    double objective;       /* NLL + penalty at the end, on the whole fitting split */
    double nll;             /* NLL alone */
    double gradient_norm;   /* max |gradient| at the end */
    int iterations;
    int evaluations;        /* passes over the rows for the objective and gradient (final fit) */
    bool converged;         /* gradient_norm <= tolerance within max_iterations */
    bool newton;            /* solved by Newton (else L-BFGS) */
    int n_grid; double grid[KD_SCALING_MAX_GRID], cv_nll[KD_SCALING_MAX_GRID]; /* the CV curve (n_grid 0: no CV) */
} kd_scaling;

void kd_scaling_options_default(kd_scaling_options *o);
/* logits (n, classes) float32 row-major, labels (n) in 0..classes-1. A fit that does not
 * reach the tolerance in max_iterations is not an error: it returns KD_OK with
 * converged = false (and its gradient norm). */
int kd_scaling_fit(kd_scaling *s, kd_scaling_kind kind, const float *logits, const int32_t *labels, int64_t n,
                   int classes, const kd_scaling_options *o, kd_error *err);
/* calibrated logits (n, C) in double; softmax of them are the calibrated probabilities */
void kd_scaling_apply(const kd_scaling *s, const float *logits, int64_t n, double *out);
void kd_scaling_free(kd_scaling *s);
const char *kd_scaling_name(kd_scaling_kind kind); /* "vector", "matrix", "dirichlet" */

/* The fold of each row (n) for k folds: rows ordered by the key kd_rng_at(seed, row)
 * (ties by row), and the row at rank t gets fold t % k. */
int kd_scaling_folds(int64_t n, int folds, uint64_t seed, int32_t *fold, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
