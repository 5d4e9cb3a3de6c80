/* mlp.c - see mlp.h. */
#include "nn/mlp.h"

#include "core/arena.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kd_mlp_create(kd_mlp *mlp, const kd_mlp_config *config, kd_error *err)
{
    memset(mlp, 0, sizeof *mlp);
    if (config->n_layers < 1 || config->n_layers > KD_MLP_MAX_LAYERS)
        return kd_error_set(err, KD_ERR_CONFIG, "model: expected 1 to %d layers, found %d",
                            KD_MLP_MAX_LAYERS, config->n_layers);
    for (int k = 0; k <= config->n_layers; k++)
        if (config->sizes[k] < 1)
            return kd_error_set(err, KD_ERR_CONFIG, "model: layer size %d is %d, expected >= 1", k,
                                config->sizes[k]);
    if (config->sizes[config->n_layers] < 2)
        return kd_error_set(err, KD_ERR_CONFIG, "model: expected at least 2 classes, found %d",
                            config->sizes[config->n_layers]);
    if (!(config->dropout >= 0.0f && config->dropout < 1.0f))
        return kd_error_set(err, KD_ERR_CONFIG, "model.dropout: expected a value in [0, 1), found %g",
                            (double)config->dropout);
    if (!(config->input_dropout >= 0.0f && config->input_dropout < 1.0f))
        return kd_error_set(err, KD_ERR_CONFIG,
                            "model.input_dropout: expected a value in [0, 1), found %g",
                            (double)config->input_dropout);
    mlp->config = *config;
    size_t total = 0;
    for (int k = 0; k < config->n_layers; k++)
        total += (size_t)config->sizes[k] * config->sizes[k + 1] + (size_t)config->sizes[k + 1];
    mlp->n_params = total;
    mlp->params = kd_calloc_aligned(total, sizeof(float));
    mlp->grads = kd_calloc_aligned(total, sizeof(float));
    if (!mlp->params || !mlp->grads) {
        kd_mlp_free(mlp);
        return kd_error_set(err, KD_ERR_IO, "model: out of memory for %zu parameters", total);
    }
    size_t offset = 0;
    for (int k = 0; k < config->n_layers; k++) {
        int in = config->sizes[k], out = config->sizes[k + 1];
        mlp->weight[k] = kd_tensor_view(in, out, mlp->params + offset, mlp->grads + offset);
        offset += (size_t)in * out;
        mlp->bias[k] = kd_tensor_view(1, out, mlp->params + offset, mlp->grads + offset);
        offset += (size_t)out;
    }
    return KD_OK;
}

void kd_mlp_free(kd_mlp *mlp)
{
    free(mlp->params);
    free(mlp->grads);
    free(mlp->params_bf16);
    mlp->params = mlp->grads = NULL;
    mlp->params_bf16 = NULL;
    mlp->products = NULL;
    mlp->n_params = 0;
}

void kd_mlp_init(kd_mlp *mlp, uint64_t seed)
{
    kd_rng rng;
    kd_rng_seed(&rng, seed);
    int layers = mlp->config.n_layers;
    for (int k = 0; k < layers; k++) {
        int in = mlp->config.sizes[k], out = mlp->config.sizes[k + 1];
        kd_tensor *w = &mlp->weight[k];
        size_t count = (size_t)in * out;
        bool he = mlp->config.init == KD_INIT_HE && k + 1 < layers;
        if (he) {
            double std = sqrt(2.0 / in);
            for (size_t i = 0; i < count; i++) w->data[i] = (float)(std * kd_rng_normal(&rng));
        } else {
            double limit = sqrt(6.0 / (in + out));
            for (size_t i = 0; i < count; i++)
                w->data[i] = (float)(limit * (2.0 * (double)kd_rng_uniform(&rng) - 1.0));
        }
        memset(mlp->bias[k].data, 0, (size_t)out * sizeof(float));
    }
}

void kd_mlp_zero_grad(kd_mlp *mlp) { memset(mlp->grads, 0, mlp->n_params * sizeof(float)); }

int kd_mlp_use_bf16(kd_mlp *mlp, kd_mm_cache *products, kd_error *err)
{
    if (!mlp->params_bf16) {
        mlp->params_bf16 = kd_calloc_aligned(mlp->n_params, sizeof(kd_bf16));
        if (!mlp->params_bf16)
            return kd_error_set(err, KD_ERR_IO, "model: out of memory for the bf16 copy of %zu parameters", mlp->n_params);
    }
    mlp->products = products;
    size_t offset = 0;
    for (int k = 0; k < mlp->config.n_layers; k++) {
        mlp->weight[k].bf16 = mlp->params_bf16 + offset;
        offset += kd_tensor_numel(&mlp->weight[k]);
        mlp->bias[k].bf16 = mlp->params_bf16 + offset;
        offset += kd_tensor_numel(&mlp->bias[k]);
    }
    kd_mlp_sync_bf16(mlp);
    return KD_OK;
}

void kd_mlp_sync_bf16(kd_mlp *mlp)
{
    if (mlp->params_bf16) kd_bf16_from_floats(mlp->params, mlp->params_bf16, mlp->n_params);
}

kd_tensor *kd_mlp_forward(kd_mlp *mlp, kd_tape *tape, kd_tensor *x, bool train, kd_rng *rng)
{
    const kd_mlp_config *c = &mlp->config;
    KD_ASSERT(x->cols == c->sizes[0], "model expects %d inputs, batch has %d columns", c->sizes[0],
              x->cols);
    kd_tensor *h = x;
    if (train && c->input_dropout > 0.0f) h = kd_op_dropout(tape, h, c->input_dropout, rng);
    bool bf16 = train && mlp->products;
    for (int k = 0; k < c->n_layers; k++) {
        bool hidden = k + 1 < c->n_layers;
        kd_activation act = hidden ? KD_ACT_RELU : KD_ACT_NONE;
        h = bf16 ? kd_op_linear_bf16(tape, mlp->products, h, &mlp->weight[k], &mlp->bias[k], act, hidden)
                 : kd_op_linear(tape, h, &mlp->weight[k], &mlp->bias[k], act);
        if (hidden && train && c->dropout > 0.0f) h = kd_op_dropout(tape, h, c->dropout, rng);
    }
    return h;
}

const char *kd_mlp_describe(const kd_mlp_config *config, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k <= config->n_layers && used < size; k++)
        used += (size_t)snprintf(buf + used, size - used, k ? "-%d" : "%d", config->sizes[k]);
    return buf;
}
