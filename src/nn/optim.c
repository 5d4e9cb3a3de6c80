/* optim.c - see optim.h. */
#include "nn/optim.h"

#include "core/simd.h"

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int kd_optim_create(kd_optim *opt, const kd_optim_config *config, size_t n_params, kd_error *err)
{
    memset(opt, 0, sizeof *opt);
    if (!(config->lr > 0)) return kd_error_set(err, KD_ERR_CONFIG, "train.lr: expected a number > 0, found %g", config->lr);
    opt->config = *config;
    opt->n_params = n_params;
    opt->m = calloc(n_params, sizeof(float));
    if (config->kind == KD_OPTIM_ADAMW) opt->v = calloc(n_params, sizeof(float));
    if (!opt->m || (config->kind == KD_OPTIM_ADAMW && !opt->v)) {
        kd_optim_free(opt);
        return kd_error_set(err, KD_ERR_IO, "optimizer: out of memory for %zu parameters", n_params);
    }
    return KD_OK;
}

void kd_optim_free(kd_optim *opt)
{
    free(opt->m);
    free(opt->v);
    opt->m = opt->v = NULL;
}

double kd_optim_lr(const kd_optim_config *c, int64_t step)
{
    if (c->warmup_steps > 0 && step < c->warmup_steps) return c->lr * (double)(step + 1) / (double)c->warmup_steps;
    int64_t t = step - c->warmup_steps;
    switch (c->schedule) {
    case KD_SCHEDULE_STEP:
        return c->lr * pow(c->gamma, (double)(t / (c->step_size > 0 ? c->step_size : 1)));
    case KD_SCHEDULE_COSINE: {
        int64_t horizon = c->total_steps - c->warmup_steps;
        double progress = horizon > 0 ? (double)t / (double)horizon : 1.0;
        if (progress > 1.0) progress = 1.0;
        return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(3.14159265358979323846 * progress));
    }
    case KD_SCHEDULE_CONSTANT:
    default:
        return c->lr;
    }
}

/* The loops below are elementwise over millions of parameters: OpenMP threads and
 * SIMD (restrict pointers, -fno-math-errno for an inline sqrt). */
/* Below this many parameters the AdamW update runs on the calling thread. */
#define KD_OPTIM_PARALLEL_MIN ((size_t)8192)

static double clip_gradients(const kd_optim_config *c, float *restrict grads, size_t n)
{
    double sum = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : sum)
    for (size_t i = 0; i < n; i++) sum += (double)grads[i] * grads[i];
    double norm = sqrt(sum);
    if (norm > c->clip_norm) {
        float scale = (float)(c->clip_norm / (norm + 1e-6)); /* as torch.nn.utils.clip_grad_norm_ */
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) grads[i] *= scale;
    }
    return norm;
}

/* The update loops also zero the gradients they consume and sum their squares (the
 * norm reported when nothing is clipped): one pass over the block instead of three. */
static double sgd_step(kd_optim *opt, float *restrict p, float *restrict g, float lr)
{
    const kd_optim_config *c = &opt->config;
    float mu = (float)c->momentum, wd = (float)c->weight_decay;
    float *restrict buf = opt->m;
    bool first = opt->step == 0, nesterov = c->nesterov;
    size_t n = opt->n_params;
    double sumsq = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : sumsq)
    for (size_t i = 0; i < n; i++) {
        sumsq += (double)g[i] * g[i];
        float d = g[i] + wd * p[i];
        g[i] = 0.0f;
        if (mu != 0.0f) {
            buf[i] = first ? d : mu * buf[i] + d;
            d = nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
    return sumsq;
}

typedef struct adamw_coeffs {
    float b1, b2, eps, decay, step_size, inv_root_bc2;
} adamw_coeffs;

/* One block of the update; returns the block's sum of squared gradients. */
KD_INLINE_BODY double adamw_body(float *restrict p, float *restrict g, float *restrict m, float *restrict v,
                                 size_t n, adamw_coeffs k)
{
    double sumsq = 0.0;
#pragma omp simd reduction(+ : sumsq)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        sumsq += (double)gi * gi;
        g[i] = 0.0f;
        p[i] *= k.decay;
        m[i] = k.b1 * m[i] + (1.0f - k.b1) * gi;
        v[i] = k.b2 * v[i] + (1.0f - k.b2) * gi * gi;
        /* torch.optim.AdamW divides sqrt(v) by sqrt(1 - beta2^t); multiplying by the
         * reciprocal (within an ulp) leaves one division, the loop's bottleneck. */
        p[i] -= k.step_size * m[i] / (sqrtf(v[i]) * k.inv_root_bc2 + k.eps);
    }
    return sumsq;
}

KD_TARGET_AVX512 static double adamw_block_avx512(float *restrict p, float *restrict g, float *restrict m,
                                                  float *restrict v, size_t n, adamw_coeffs k)
{
    return adamw_body(p, g, m, v, n, k);
}

static double adamw_block_generic(float *restrict p, float *restrict g, float *restrict m, float *restrict v,
                                  size_t n, adamw_coeffs k)
{
    return adamw_body(p, g, m, v, n, k);
}

static double adamw_step(kd_optim *opt, float *restrict p, float *restrict g, float lr)
{
    const kd_optim_config *c = &opt->config;
    double t = (double)(opt->step + 1);
    adamw_coeffs k = {.b1 = (float)c->beta1,
                      .b2 = (float)c->beta2,
                      .eps = (float)c->eps,
                      .decay = (float)(1.0 - (double)lr * c->weight_decay),
                      .step_size = (float)((double)lr / (1.0 - pow(c->beta1, t))),
                      .inv_root_bc2 = (float)(1.0 / sqrt(1.0 - pow(c->beta2, t)))};
    size_t n = opt->n_params;
    double (*block)(float *restrict, float *restrict, float *restrict, float *restrict, size_t, adamw_coeffs) =
        kd_cpu_has_avx512() ? adamw_block_avx512 : adamw_block_generic;
    if (n < KD_OPTIM_PARALLEL_MIN) return block(p, g, opt->m, opt->v, n, k);
    double sumsq = 0.0;
#pragma omp parallel reduction(+ : sumsq)
    {
        /* equal shares, cut at multiples of 16 floats (a cache line) */
        size_t threads = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
        size_t lo = n * id / threads / 16 * 16, hi = id + 1 == threads ? n : n * (id + 1) / threads / 16 * 16;
        sumsq += block(p + lo, g + lo, opt->m + lo, opt->v + lo, hi - lo, k);
    }
    return sumsq;
}

void kd_optim_step(kd_optim *opt, float *params, float *grads)
{
    /* Clipping needs the norm before the update: a separate pass only then. */
    double clipped_norm = opt->config.clip_norm > 0 ? clip_gradients(&opt->config, grads, opt->n_params) : -1.0;
    double lr = kd_optim_lr(&opt->config, opt->step);
    opt->last_lr = lr;
    double sumsq = opt->config.kind == KD_OPTIM_ADAMW ? adamw_step(opt, params, grads, (float)lr)
                                                      : sgd_step(opt, params, grads, (float)lr);
    opt->last_grad_norm = clipped_norm >= 0 ? clipped_norm : sqrt(sumsq);
    opt->step++;
}
