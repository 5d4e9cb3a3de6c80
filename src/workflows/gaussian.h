/* gaussian.h - the Gaussian-cluster temperature experiment. For K isotropic
 * Gaussian clusters N(mu_k, sigma^2 I) in d dimensions with equal priors, the
 * Bayes-optimal classifier is softmax_k(-tau ||x - mu_k||^2) with tau = 1/(2 sigma^2):
 * the temperature of the best possible model is set by the noise. A
 * distance-softmax classifier with learnable centres and tau is trained with the
 * engine (AdamW, cosine decay) on generated data, and its tau is compared with
 * 1/(2 sigma^2).
 *
 * Identifiability: the posterior depends only on the differences z_k - z_l =
 * 2 tau x.(mu_k - mu_l) - tau (|mu_k|^2 - |mu_l|^2). Scaling the centres about any
 * point c equidistant from all of them, mu_k -> c + a (mu_k - c), with tau -> tau / a,
 * leaves every difference unchanged. K centres in general position have such a
 * point (the centre of a sphere through them) whenever K <= d + 1, so tau is then
 * not identifiable from data, however many samples: the experiment needs
 * K > d + 1 (the default is K = 8 clusters in d = 2). */
#ifndef KD_GAUSSIAN_H
#define KD_GAUSSIAN_H

#include "core/error.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_gaussian_options {
    int classes, dim;
    double sigma;
    double centre_spread;  /* centres ~ N(0, spread^2 I), drawn from seed alone */
    int64_t train_samples, test_samples;
    int epochs, batch_size;
    double lr;
    uint64_t seed;
} kd_gaussian_options;

typedef struct kd_gaussian_result {
    double tau_true, tau_learned, relative_error;
    double centre_rmse;           /* root mean squared error of the learned centres */
    double test_nll, test_nll_bayes, test_accuracy, test_accuracy_bayes;
    double seconds;
} kd_gaussian_result;

void kd_gaussian_options_default(kd_gaussian_options *o);
int kd_gaussian_run(const kd_gaussian_options *o, kd_gaussian_result *r, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
