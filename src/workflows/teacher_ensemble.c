/* teacher_ensemble.c - several teachers as one (see teacher.h): their probabilities at
 * the distillation temperature averaged, stored as logits whose softmax at that
 * temperature gives the average back. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/teacher.h"

#include <math.h>
#include <stdlib.h>

/* The ensemble's distribution is pbar = mean_k softmax(u_k), u_k = z_k / (s_k T). Its
 * logits at T are T log pbar: softmax((T log pbar) / T) = pbar / sum(pbar) = pbar. log pbar
 * is never formed from pbar itself, which underflows (T = 0.05 and logits of 1e3 put
 * u at 2e4): with l_k = log_softmax(u_k) = u_k - logsumexp(u_k), every term finite,
 *   log pbar_c = log (1/K) sum_k exp(l_kc) = logsumexp_k(l_kc) - log K,
 * each logsumexp taken about its largest term, all in double. The result is at least
 * max_k l_kc - log K, so finite whenever the logits are. */
int kd_teacher_combine(float *out, const float *const *z, const double *scale, int k, int64_t rows, int classes,
                       double T, kd_error *err)
{
    double *l = malloc((size_t)k * (size_t)classes * sizeof(double)); /* (k, classes): one row's l_kc */
    if (!l) return kd_error_set(err, KD_ERR_IO, "out of memory for the teacher ensemble");
    double log_k = log((double)k);
    for (int64_t i = 0; i < rows; i++) {
        size_t at = (size_t)i * (size_t)classes;
        for (int j = 0; j < k; j++) {
            double *lj = l + (size_t)j * (size_t)classes, d = scale[j] * T, m = -INFINITY, sum = 0;
            for (int c = 0; c < classes; c++) {
                lj[c] = (double)z[j][at + (size_t)c] / d;
                if (lj[c] > m) m = lj[c];
            }
            for (int c = 0; c < classes; c++) sum += exp(lj[c] - m);
            double lse = m + log(sum);
            for (int c = 0; c < classes; c++) lj[c] -= lse;
        }
        for (int c = 0; c < classes; c++) {
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < k; j++)
                if (l[(size_t)j * (size_t)classes + (size_t)c] > m) m = l[(size_t)j * (size_t)classes + (size_t)c];
            for (int j = 0; j < k; j++) sum += exp(l[(size_t)j * (size_t)classes + (size_t)c] - m);
            out[at + (size_t)c] = (float)(T * (m + log(sum) - log_k));
        }
    }
    free(l);
    return KD_OK;
}
