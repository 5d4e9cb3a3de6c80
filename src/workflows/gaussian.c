/* gaussian.c - see gaussian.h. */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "workflows/gaussian.h"

#include "core/ops.h"
#include "nn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void kd_gaussian_options_default(kd_gaussian_options *o)
{
    memset(o, 0, sizeof *o);
    o->classes = 8; /* more clusters than dim + 1: see the identifiability note in gaussian.h */
    o->dim = 2;
    o->sigma = 1.0;
    o->centre_spread = 1.5;
    o->train_samples = 20000;
    o->test_samples = 20000;
    o->epochs = 30;
    o->batch_size = 256;
    o->lr = 0.05;
    o->seed = 1;
}

/* n samples: labels cycle through the classes, x = mu_y + sigma * N(0, I). */
static void draw(const kd_gaussian_options *o, const float *centres, int64_t n, kd_rng *rng, float *x, int32_t *y)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % o->classes);
        for (int j = 0; j < o->dim; j++)
            x[i * o->dim + j] = centres[y[i] * o->dim + j] + (float)(o->sigma * kd_rng_normal(rng));
    }
}

/* Accuracy and NLL of softmax(-tau ||x - mu_k||^2), in double. */
static void score(const kd_gaussian_options *o, const float *centres, double tau, const float *x, const int32_t *y, int64_t n,
                  double *nll, double *accuracy)
{
    double total = 0.0, right = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double z[64], max = -INFINITY;
        int top = 0;
        for (int k = 0; k < o->classes; k++) {
            double d = 0.0;
            for (int j = 0; j < o->dim; j++) {
                double diff = (double)x[i * o->dim + j] - centres[k * o->dim + j];
                d += diff * diff;
            }
            z[k] = -tau * d;
            if (z[k] > max) max = z[k], top = k;
        }
        double sum = 0.0;
        for (int k = 0; k < o->classes; k++) sum += exp(z[k] - max);
        total += max + log(sum) - z[y[i]];
        right += top == y[i];
    }
    *nll = total / (double)n;
    *accuracy = right / (double)n;
}

int kd_gaussian_run(const kd_gaussian_options *o, kd_gaussian_result *r, kd_error *err)
{
    memset(r, 0, sizeof *r);
    if (o->classes < 2 || o->classes > 64 || o->dim < 1 || !(o->sigma > 0) || o->train_samples < o->classes ||
        o->test_samples < 1 || o->epochs < 1 || o->batch_size < 1 || !(o->lr > 0))
        return kd_error_set(err, KD_ERR_CONFIG, "gaussian: expected 2..64 classes, dim >= 1, sigma > 0, samples, epochs, "
                                                "batch and lr > 0");
    double t0 = kd_now_seconds();
    size_t K = (size_t)o->classes, d = (size_t)o->dim;
    int64_t n = o->train_samples;
    float *centres = malloc(K * d * sizeof(float)), *x = malloc((size_t)n * d * sizeof(float));
    float *xt = malloc((size_t)o->test_samples * d * sizeof(float));
    int32_t *y = malloc((size_t)n * sizeof(int32_t)), *yt = malloc((size_t)o->test_samples * sizeof(int32_t));
    float *params = calloc(K * d + 1, sizeof(float)), *grads = calloc(K * d + 1, sizeof(float));
    int64_t *order = malloc((size_t)n * sizeof(int64_t));
    float *bx = malloc((size_t)o->batch_size * d * sizeof(float));
    int32_t *by = malloc((size_t)o->batch_size * sizeof(int32_t));
    int rc = KD_OK;
    if (!centres || !x || !xt || !y || !yt || !params || !grads || !order || !bx || !by) {
        rc = kd_error_set(err, KD_ERR_IO, "gaussian: out of memory");
        goto done;
    }
    kd_rng rng;
    kd_rng_seed(&rng, o->seed); /* the centres depend on the seed only, not on sigma */
    for (size_t i = 0; i < K * d; i++) centres[i] = (float)(o->centre_spread * kd_rng_normal(&rng));
    kd_rng_seed(&rng, o->seed * 1000003 + (uint64_t)llround(o->sigma * 1e6));
    draw(o, centres, n, &rng, x, y);
    draw(o, centres, o->test_samples, &rng, xt, yt);
    /* model: centres start at random points, tau at 1 */
    for (size_t i = 0; i < K * d; i++) params[i] = (float)(o->centre_spread * kd_rng_normal(&rng));
    params[K * d] = 1.0f;
    kd_optim_config oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = KD_OPTIM_ADAMW;
    oc.lr = o->lr;
    oc.beta1 = 0.9;
    oc.beta2 = 0.999;
    oc.eps = 1e-8;
    oc.schedule = KD_SCHEDULE_COSINE;
    int64_t batches = (n + o->batch_size - 1) / o->batch_size;
    oc.total_steps = batches * o->epochs;
    kd_optim opt;
    if ((rc = kd_optim_create(&opt, &oc, K * d + 1, err))) goto done;
    kd_tape tape;
    kd_tape_init(&tape, 0);
    for (int epoch = 0; epoch < o->epochs; epoch++) {
        for (int64_t i = 0; i < n; i++) order[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)kd_rng_below(&rng, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int64_t b = 0; b < batches; b++) {
            int rows = (int)((b + 1) * o->batch_size <= n ? o->batch_size : n - b * o->batch_size);
            for (int i = 0; i < rows; i++) {
                int64_t src = order[b * o->batch_size + i];
                memcpy(bx + (size_t)i * d, x + (size_t)src * d, d * sizeof(float));
                by[i] = y[src];
            }
            kd_tape_reset(&tape);
            memset(grads, 0, (K * d + 1) * sizeof(float));
            kd_tensor *in = kd_tape_view(&tape, rows, o->dim, bx, NULL);
            kd_tensor *mu = kd_tape_view(&tape, o->classes, o->dim, params, grads);
            kd_tensor *tau = kd_tape_view(&tape, 1, 1, params + K * d, grads + K * d);
            kd_tensor *logits = kd_op_scale(&tape, kd_op_mul_scalar(&tape, kd_op_sqdist(&tape, in, mu), tau), -1.0f);
            kd_tape_backward(&tape, kd_op_softmax_ce(&tape, logits, by));
            kd_optim_step(&opt, params, grads);
        }
    }
    kd_tape_free(&tape);
    kd_optim_free(&opt);
    r->tau_true = 1.0 / (2.0 * o->sigma * o->sigma);
    r->tau_learned = params[K * d];
    r->relative_error = (r->tau_learned - r->tau_true) / r->tau_true;
    /* Centres are learned per class label, so they compare one to one. */
    double se = 0.0;
    for (size_t i = 0; i < K * d; i++) se += ((double)params[i] - centres[i]) * ((double)params[i] - centres[i]);
    r->centre_rmse = sqrt(se / (double)(K * d));
    score(o, params, r->tau_learned, xt, yt, o->test_samples, &r->test_nll, &r->test_accuracy);
    score(o, centres, r->tau_true, xt, yt, o->test_samples, &r->test_nll_bayes, &r->test_accuracy_bayes);
    r->seconds = kd_now_seconds() - t0;
done:
    free(centres);
    free(x);
    free(xt);
    free(y);
    free(yt);
    free(params);
    free(grads);
    free(order);
    free(bx);
    free(by);
    return rc;
}
