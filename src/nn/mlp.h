/* mlp.h - a multi-layer perceptron: Linear -> ReLU (-> dropout) ... -> Linear.
 * Parameters live in one block (layer k: W (in, out) row-major, then b (out)),
 * gradients in a second block of the same layout, so an optimiser or a
 * checkpoint sees one flat array. */
#ifndef KD_MLP_H
#define KD_MLP_H

#include "core/error.h"
#include "core/ops.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_MLP_MAX_LAYERS 16

typedef enum kd_init { KD_INIT_HE = 0, KD_INIT_GLOROT = 1 } kd_init;

typedef struct kd_mlp_config {
    int n_layers;                       /* number of Linear layers, >= 1 */
    int sizes[KD_MLP_MAX_LAYERS + 1];   /* sizes[0] inputs ... sizes[n_layers] classes */
    float dropout;                      /* after every hidden ReLU, in [0, 1) */
    float input_dropout;                /* on the input, in [0, 1) */
    kd_init init;                       /* weight initialisation; biases start at 0 */
} kd_mlp_config;

typedef struct kd_mlp {
    kd_mlp_config config;
    size_t n_params;
    float *params;                       /* (n_params) the one parameter block */
    float *grads;                        /* (n_params) same layout */
    kd_tensor weight[KD_MLP_MAX_LAYERS]; /* (sizes[k], sizes[k+1]) views into the blocks */
    kd_tensor bias[KD_MLP_MAX_LAYERS];   /* (1, sizes[k+1]) */
    /* bf16 training (kd_mlp_use_bf16): the parameters rounded to bf16, same layout,
     * rewritten by the optimiser's pass after every update; the weights' bf16
     * pointers look into it. NULL in float32 training. */
    kd_bf16 *params_bf16;
    kd_mm_cache *products;               /* the bf16 product cache (the caller's), or NULL */
} kd_mlp;

/* Checks the config (names the bad value in err) and allocates zeroed blocks. */
int kd_mlp_create(kd_mlp *mlp, const kd_mlp_config *config, kd_error *err);
void kd_mlp_free(kd_mlp *mlp);
/* Seeded initialisation: He normal, std sqrt(2 / fan_in), for layers followed by
 * ReLU (Glorot uniform, limit sqrt(6 / (fan_in + fan_out)), for the output layer);
 * or Glorot uniform everywhere. Biases 0. */
void kd_mlp_init(kd_mlp *mlp, uint64_t seed);
void kd_mlp_zero_grad(kd_mlp *mlp);
/* Training forward passes from now on take bf16 products through `products` (not
 * owned); evaluation (train false) stays float32. Allocates and fills the bf16 copy;
 * KD_ERR_IO when out of memory. */
int kd_mlp_use_bf16(kd_mlp *mlp, kd_mm_cache *products, kd_error *err);
/* Rewrites the bf16 copy from the parameters (after they were set other than by
 * the optimiser: initialisation, a checkpoint). */
void kd_mlp_sync_bf16(kd_mlp *mlp);
/* Logits (B, classes) for x (B, sizes[0]). Dropout applies only when train is
 * true, drawing from rng; so do bf16 products, when the model uses them. */
kd_tensor *kd_mlp_forward(kd_mlp *mlp, kd_tape *tape, kd_tensor *x, bool train, kd_rng *rng);
/* "784-1200-1200-10" into buf. */
const char *kd_mlp_describe(const kd_mlp_config *config, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
