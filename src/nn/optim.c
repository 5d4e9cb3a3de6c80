/* optim.c - see optim.h. */
#include "nn/optim.h"

#include "core/arena.h"
#include "core/bf16.h"
#include "core/parallel.h"
#include "core/simd.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

int kd_optim_create(kd_optim *opt, const kd_optim_config *config, size_t n_params, kd_error *err)
{
    memset(opt, 0, sizeof *opt);
    if (!(config->lr > 0)) return kd_error_set(err, KD_ERR_CONFIG, "train.lr: expected a number > 0, found %g", config->lr);
    opt->config = *config;
    opt->n_params = n_params;
    opt->m = kd_calloc_aligned(n_params, sizeof(float));
    if (config->kind == KD_OPTIM_ADAMW) opt->v = kd_calloc_aligned(n_params, sizeof(float));
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

/* The passes over the parameter block are elementwise over up to millions of
 * parameters: OpenMP threads and SIMD (restrict pointers, -fno-math-errno for an
 * inline sqrt). Each pass cuts the block into the same KD_OPTIM_BLOCKS blocks
 * whatever the thread count (the threads take contiguous runs of them) and keeps
 * each block's sum of squared gradients apart; the sums are added in block order,
 * so the reported norm, and the clipping scale, do not depend on the thread count. */
#define KD_OPTIM_BLOCKS 64
/* Below this many parameters a pass runs on the calling thread (same blocks). */
#define KD_OPTIM_PARALLEL_MIN ((size_t)8192)

typedef double (*block_pass)(void *context, size_t begin, size_t end);

static double blocked_pass(size_t n, block_pass pass, void *context)
{
    double part[KD_OPTIM_BLOCKS];
    size_t per = ((n + KD_OPTIM_BLOCKS - 1) / KD_OPTIM_BLOCKS + 15) / 16 * 16; /* whole cache lines */
    if (per == 0) return 0.0;
    int blocks = (int)((n + per - 1) / per);
    KD_PARALLEL_FOR(n >= KD_OPTIM_PARALLEL_MIN, int, b, blocks,
                    size_t begin = (size_t)b * per;
                    part[b] = pass(context, begin, begin + per < n ? begin + per : n));
    double sum = 0.0;
    for (int b = 0; b < blocks; b++) sum += part[b];
    return sum;
}

static double sum_squares_block(void *context, size_t begin, size_t end)
{
    const float *restrict g = context;
    double sum = 0.0;
    for (size_t i = begin; i < end; i++) sum += (double)g[i] * g[i];
    return sum;
}

static double clip_gradients(const kd_optim_config *c, float *restrict grads, size_t n)
{
    double norm = sqrt(blocked_pass(n, sum_squares_block, grads));
    if (norm > c->clip_norm) {
        float scale = (float)(c->clip_norm / (norm + 1e-6)); /* as torch.nn.utils.clip_grad_norm_ */
        KD_ELEMENTWISE(n, i, grads[i] *= scale);
    }
    return norm;
}

/* The update passes also zero the gradients they consume and sum their squares (the
 * norm reported when nothing is clipped): one pass over the block instead of three. */
typedef struct update_pass {
    float *restrict p, *restrict g, *restrict m, *restrict v;
    kd_bf16 *restrict copy;     /* the bf16 copy of p written in the same pass, or NULL */
    float lr, mu, wd;           /* SGD */
    bool first, nesterov;       /* SGD */
    float b1, b2, eps, decay, step_size, inv_root_bc2; /* AdamW */
} update_pass;

KD_INLINE_BODY double sgd_body(const update_pass *u, size_t begin, size_t end, const bool write_copy)
{
    float *restrict p = u->p, *restrict g = u->g, *restrict buf = u->m;
    kd_bf16 *restrict copy = u->copy;
    float lr = u->lr, mu = u->mu, wd = u->wd;
    bool first = u->first, nesterov = u->nesterov;
    double sumsq = 0.0;
#pragma omp simd reduction(+ : sumsq)
    for (size_t i = begin; i < end; i++) {
        sumsq += (double)g[i] * g[i];
        float d = g[i] + wd * p[i];
        g[i] = 0.0f;
        if (mu != 0.0f) {
            buf[i] = first ? d : mu * buf[i] + d;
            d = nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
        if (write_copy) copy[i] = kd_bf16_round(p[i]);
    }
    return sumsq;
}

static double sgd_block(void *context, size_t begin, size_t end) { return sgd_body(context, begin, end, false); }
static double sgd_block_copy(void *context, size_t begin, size_t end) { return sgd_body(context, begin, end, true); }

static double sgd_step(kd_optim *opt, float *p, float *g, kd_bf16 *copy, float lr)
{
    const kd_optim_config *c = &opt->config;
    update_pass u = {.p = p, .g = g, .m = opt->m, .copy = copy, .lr = lr, .mu = (float)c->momentum,
                     .wd = (float)c->weight_decay, .first = opt->step == 0, .nesterov = c->nesterov};
    return blocked_pass(opt->n_params, copy ? sgd_block_copy : sgd_block, &u);
}

/* One block of AdamW; returns the block's sum of squared gradients. */
KD_INLINE_BODY double adamw_body(const update_pass *u, size_t begin, size_t end, const bool write_copy)
{
    float *restrict p = u->p, *restrict g = u->g, *restrict m = u->m, *restrict v = u->v;
    kd_bf16 *restrict copy = u->copy;
    float b1 = u->b1, b2 = u->b2, eps = u->eps, decay = u->decay, step_size = u->step_size,
          inv_root_bc2 = u->inv_root_bc2;
    double sumsq = 0.0;
#pragma omp simd reduction(+ : sumsq)
    for (size_t i = begin; i < end; i++) {
        float gi = g[i];
        sumsq += (double)gi * gi;
        g[i] = 0.0f;
        p[i] *= decay;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        /* torch.optim.AdamW divides sqrt(v) by sqrt(1 - beta2^t); multiplying by the
         * reciprocal (within an ulp) leaves one division, the loop's bottleneck. */
        p[i] -= step_size * m[i] / (sqrtf(v[i]) * inv_root_bc2 + eps);
        if (write_copy) copy[i] = kd_bf16_round(p[i]);
    }
    return sumsq;
}

KD_TARGET_AVX512 static double adamw_block_avx512(void *context, size_t begin, size_t end)
{
    return adamw_body(context, begin, end, false);
}

static double adamw_block_generic(void *context, size_t begin, size_t end)
{
    return adamw_body(context, begin, end, false);
}

KD_TARGET_AVX512 static double adamw_block_copy_avx512(void *context, size_t begin, size_t end)
{
    return adamw_body(context, begin, end, true);
}

static double adamw_block_copy_generic(void *context, size_t begin, size_t end)
{
    return adamw_body(context, begin, end, true);
}

static double adamw_step(kd_optim *opt, float *p, float *g, kd_bf16 *copy, float lr)
{
    const kd_optim_config *c = &opt->config;
    double t = (double)(opt->step + 1);
    update_pass u = {.p = p,
                     .g = g,
                     .m = opt->m,
                     .v = opt->v,
                     .copy = copy,
                     .b1 = (float)c->beta1,
                     .b2 = (float)c->beta2,
                     .eps = (float)c->eps,
                     .decay = (float)(1.0 - (double)lr * c->weight_decay),
                     .step_size = (float)((double)lr / (1.0 - pow(c->beta1, t))),
                     .inv_root_bc2 = (float)(1.0 / sqrt(1.0 - pow(c->beta2, t)))};
    bool avx512 = kd_cpu_has_avx512();
    block_pass pass = copy ? (avx512 ? adamw_block_copy_avx512 : adamw_block_copy_generic)
                           : (avx512 ? adamw_block_avx512 : adamw_block_generic);
    return blocked_pass(opt->n_params, pass, &u);
}

void kd_optim_step(kd_optim *opt, float *params, float *grads) { kd_optim_step_bf16(opt, params, grads, NULL); }

void kd_optim_step_bf16(kd_optim *opt, float *params, float *grads, kd_bf16 *params_bf16)
{
    /* Clipping needs the norm before the update: a separate pass only then. */
    double clipped_norm = opt->config.clip_norm > 0 ? clip_gradients(&opt->config, grads, opt->n_params) : -1.0;
    double lr = kd_optim_lr(&opt->config, opt->step);
    opt->last_lr = lr;
    double sumsq = opt->config.kind == KD_OPTIM_ADAMW ? adamw_step(opt, params, grads, params_bf16, (float)lr)
                                                      : sgd_step(opt, params, grads, params_bf16, (float)lr);
    opt->last_grad_norm = clipped_norm >= 0 ? clipped_norm : sqrt(sumsq);
    opt->step++;
}

void kd_optim_export_state(kd_optim *opt, kd_optim_state *s)
{
    memset(s, 0, sizeof *s);
    bool adam = opt->config.kind == KD_OPTIM_ADAMW;
    snprintf(s->kind, sizeof s->kind, "%s", adam ? "adamw" : "sgd");
    s->step = opt->step;
    s->n_slots = adam ? 2 : 1;
    snprintf(s->slot_names[0], sizeof s->slot_names[0], "%s", adam ? "m" : "momentum");
    s->slots[0] = opt->m;
    if (adam) {
        snprintf(s->slot_names[1], sizeof s->slot_names[1], "v");
        s->slots[1] = opt->v;
    }
    const char *names[] = {"lr", "momentum", "beta1", "beta2", "eps", "weight_decay"};
    const kd_optim_config *o = &opt->config;
    double values[] = {o->lr, o->momentum, o->beta1, o->beta2, o->eps, o->weight_decay};
    s->n_hyper = 6;
    for (int i = 0; i < 6; i++) {
        snprintf(s->hyper_names[i], sizeof s->hyper_names[i], "%s", names[i]);
        s->hyper[i] = values[i];
    }
}
