/* ensemble_temperature.h - ensemble temperature scaling (Zhang, Kailkhura and Han
 * 2020, "Mix-n-Match", ICML):
 *   p = w1 softmax(z / T) + w2 softmax(z) + w3 / C,   w on the simplex,
 * T the exact temperature-scaling fit (kd_temperature_solve), then w minimising the
 * NLL -mean_i log(w . q_i), q_i = (softmax(z_i / T)_y, softmax(z_i)_y, 1 / C): convex
 * in w (the log of a linear function), solved by Newton's method on the faces of the
 * simplex (an active set): steps inside the current face, a weight that reaches 0
 * leaves it, and at the face's minimum a weight at 0 whose gradient is below the
 * others' re-enters. At the solution (KKT) dNLL/dw_j = -mean(q_ij / p_i) is -1 where
 * w_j > 0 and >= -1 where w_j = 0 (sum_j w_j dNLL/dw_j = -1 on the whole simplex).
 * Accuracy never changes: both softmaxes share the arg max (T > 0) and the mix is a
 * positive combination plus a constant (all weight on 1/C makes every class tie). */
#ifndef KD_ENSEMBLE_TEMPERATURE_H
#define KD_ENSEMBLE_TEMPERATURE_H

#include "core/error.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_ets {
    double temperature;
    double weight[3];            /* on softmax(z / T), softmax(z), uniform */
    double nll;                  /* at the weights */
    double nll_temperature_only; /* at w = (1, 0, 0), the same formula */
    double kkt;                  /* the largest KKT violation at the end (see above) */
    int iterations;              /* Newton steps */
} kd_ets;

/* logits (n, classes), labels in 0..classes-1. Errors as kd_temperature_solve's. */
int kd_ets_fit(kd_ets *e, const float *logits, const int32_t *labels, int64_t n, int classes, kd_error *err);
/* probs (n, classes). */
void kd_ets_apply(const kd_ets *e, const float *logits, int64_t n, int classes, double *probs);

#ifdef __cplusplus
}
#endif
#endif
