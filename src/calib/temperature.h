/* temperature.h - post-hoc temperature scaling, fitted exactly. With beta = 1/T,
 *   NLL(beta) = mean_i [ logsumexp_c(beta z_ic) - beta z_iy ]
 * is convex: NLL' = mean_i (E_p[z_i] - z_iy), NLL'' = mean_i Var_p[z_i] >= 0 under
 * p = softmax(beta z_i), and NLL''' is the mean third central moment. Halley steps
 * (cubic convergence; Newton's where Halley's is unsafe) kept inside a bracket that
 * shrinks by the sign of NLL', with geometric bisection when a step leaves it, reach
 * |NLL'| <= 1e-6 times the mean logit range in 3 or 4 passes over the logits.
 * beta is confined to [1e-3, 1e3] (T in [1e-3, 1e3]): separable data (every label's
 * logit a largest one, so NLL falls for every beta) stop at the upper end, and NLL
 * still moving at either end stops there; the fit says so. Accuracy never changes:
 * the arg max of z / T is the arg max of z. */
#ifndef KD_TEMPERATURE_H
#define KD_TEMPERATURE_H

#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_BETA_MIN 1e-3
#define KD_BETA_MAX 1e3
#define KD_FIT_MAX_ITERATIONS 50

typedef struct kd_temperature_fit {
    double temperature;          /* 1 / beta */
    double nll_before, nll_after;
    double gradient;             /* dNLL/dbeta at the end */
    double tolerance;            /* the |gradient| the fit had to reach */
    int iterations;              /* passes over the logits after the first */
    bool at_lower_bound;         /* T = 1e-3: NLL still falling (separable data) */
    bool at_upper_bound;         /* T = 1e3: NLL still rising (worse than uniform) */
    bool degenerate;             /* one class, or all logits equal in every row: any T fits */
} kd_temperature_fit;

/* logits (n, classes), labels in [0, classes). NaN or Inf logits are an error. */
int kd_temperature_solve(const float *logits, const int32_t *labels, int64_t n, int classes, kd_temperature_fit *fit,
                       kd_error *err);
/* NLL at beta = 1/T, and its first and second derivatives in beta (either may be NULL). */
double kd_temperature_nll(const float *logits, const int32_t *labels, int64_t n, int classes, double beta, double *d1,
                   double *d2);
/* What a fitted T says, as one word for reports. T > 1: "overconfident" - the logits
 * had to be divided by T > 1, softening every softmax, for the labels to be most likely,
 * so the model's probabilities were sharper than its accuracy supports. T < 1:
 * "underconfident" (they had to be sharpened). T = 1 exactly: "calibrated"; NaN: "not
 * fitted". The reading of one global temperature in the NLL sense: ECE and a reliability
 * diagram compare confidence with accuracy bin by bin and may disagree in some bins. */
const char *kd_temperature_describe(double temperature);

#ifdef __cplusplus
}
#endif
#endif
