/* platt.h - Platt scaling of one class, for scaling-binning (calib/binning.c):
 * g(p) = sigmoid(a logit(p) + b) with logit(p) = log(q / (1 - q)), q = p clipped to
 * [KD_PLATT_EPS, 1 - KD_PLATT_EPS], fitted on (x_i = logit(p_i), y_i in {0, 1}) by
 * Newton's method on the mean logistic loss. The passes over the rows (the features,
 * the loss with its gradient and Hessian, the outputs) run eight rows at a time with
 * AVX-512 where the CPU has it (core/simd.h), whose exp and log are within a few ulp
 * of libm's: the fit and its outputs then differ from the scalar variant's in the
 * last bits, never in the thread count (one class is one thread's work). */
#ifndef KD_PLATT_H
#define KD_PLATT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x (n) = logit(p) of p (n), clipped. Each value's bits do not depend on n or on its
 * place (lanes are independent), so a single value (n = 1) at apply time is the fit's. */
void kd_platt_logits(const double *p, int64_t n, double *x);
/* g (n) = sigmoid(a x + b); a = 0, b = -inf (+inf) gives 0 (1). */
void kd_platt_outputs(double a, double b, const double *x, int64_t n, double *g);
/* (a, b) into ab from (1, 0) until |gradient| <= 1e-12 (sup norm): returns the steps,
 * or -1 at the cap of 100 (separable data). No positive (negative) among y gives
 * a = 0, b = -inf (+inf), the limit of the fit, and 0 steps. */
int kd_platt_fit(const double *x, const double *y, int64_t m, double *ab);

#ifdef __cplusplus
}
#endif
#endif
