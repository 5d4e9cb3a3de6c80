/* optim.h - optimisers over one flat parameter block: SGD with momentum (Nesterov
 * optional) and AdamW, with weight decay, learning-rate schedules (constant, step,
 * cosine to min_lr, each after an optional linear warm-up) and optional clipping
 * of the global gradient norm. The update rules follow PyTorch's SGD and AdamW
 * exactly, so runs can be compared with a PyTorch reference. */
#ifndef KD_OPTIM_H
#define KD_OPTIM_H

#include "core/bf16.h"
#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_optim_kind { KD_OPTIM_SGD = 0, KD_OPTIM_ADAMW = 1 } kd_optim_kind;
typedef enum kd_schedule { KD_SCHEDULE_CONSTANT = 0, KD_SCHEDULE_STEP = 1, KD_SCHEDULE_COSINE = 2 } kd_schedule;

typedef struct kd_optim_config {
    kd_optim_kind kind;
    double lr;
    double momentum;        /* SGD */
    int nesterov;           /* SGD */
    double beta1, beta2, eps; /* AdamW */
    double weight_decay;    /* SGD: L2 added to the gradient; AdamW: decoupled */
    double clip_norm;       /* 0: no clipping */
    kd_schedule schedule;
    int64_t warmup_steps;   /* linear from lr/warmup_steps to lr */
    int64_t step_size;      /* step schedule: lr *= gamma every step_size steps */
    double gamma;
    double min_lr;          /* cosine: the value reached at total_steps */
    int64_t total_steps;    /* cosine horizon */
} kd_optim_config;

typedef struct kd_optim {
    kd_optim_config config;
    size_t n_params;
    int64_t step;           /* updates done */
    float *m;               /* (n_params) SGD momentum buffer or Adam first moment */
    float *v;               /* (n_params) Adam second moment, NULL for SGD */
    double last_grad_norm;  /* global gradient norm before clipping, last step */
    double last_lr;
} kd_optim;

/* The optimiser's state as a checkpoint stores it: kind, step, the state arrays by
 * name, and the hyper-parameters by name. */
#define KD_OPTIM_MAX_SLOTS 2
#define KD_OPTIM_MAX_HYPER 8

typedef struct kd_optim_state {
    char kind[16];                              /* "sgd", "adamw" */
    int64_t step;                               /* optimiser steps taken */
    int n_slots;                                /* 0..2 state arrays */
    char slot_names[KD_OPTIM_MAX_SLOTS][16];    /* "momentum"; "m", "v" */
    float *slots[KD_OPTIM_MAX_SLOTS];           /* (n_params) each, the parameter-block layout; caller-owned */
    int n_hyper;                                /* 0..8 */
    char hyper_names[KD_OPTIM_MAX_HYPER][24];   /* "lr", "beta1", ... */
    double hyper[KD_OPTIM_MAX_HYPER];
} kd_optim_state;

int kd_optim_create(kd_optim *opt, const kd_optim_config *config, size_t n_params, kd_error *err);
void kd_optim_free(kd_optim *opt);
/* The state of opt for a checkpoint; the slots point into opt's own buffers, so a
 * checkpoint load fills them in place. */
void kd_optim_export_state(kd_optim *opt, kd_optim_state *state);
/* The learning rate of update number `step` (0-based). */
double kd_optim_lr(const kd_optim_config *config, int64_t step);
/* One update of params from grads (clipped first when asked). The gradients are
 * consumed: they are zero afterwards, ready for the next backward pass. */
void kd_optim_step(kd_optim *opt, float *params, float *grads);
/* The same, writing params_bf16[i] = kd_bf16_round(params[i]) in the same pass (a
 * bf16 training step's weight copy); params_bf16 NULL is kd_optim_step. */
void kd_optim_step_bf16(kd_optim *opt, float *params, float *grads, kd_bf16 *params_bf16);

#ifdef __cplusplus
}
#endif
#endif
