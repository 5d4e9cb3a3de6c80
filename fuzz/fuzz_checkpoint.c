/* fuzz_checkpoint.c - the checkpoint reader on mutated HDF5 files: the architecture,
 * then the whole load (model, optimiser state, training state, calibration). */
#define KD_FUZZ_HDF5
#include "fuzz_common.h"

#include "io/checkpoint.h"
#include "nn/mlp.h"
#include "nn/optim.h"

#include <stdlib.h>

#define FUZZ_CONFIG_MAX 16384 /* KD_CONFIG_TEXT_MAX */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = kd_fuzz_file(data, size, "h5");
    kd_mlp_config mc;
    kd_error err;
    kd_error_clear(&err);
    if (kd_checkpoint_read_config(path, &mc, &err) != KD_OK) return 0;
    size_t n = 0;
    for (int l = 0; l < mc.n_layers; l++) n += (size_t)mc.sizes[l] * mc.sizes[l + 1] + mc.sizes[l + 1];
    if (n > (1u << 22)) return 0; /* a model too large to allocate per input (its sizes were checked) */
    kd_mlp mlp;
    if (kd_mlp_create(&mlp, &mc, &err) != KD_OK) return 0;
    kd_optim_state os = {0};
    float *slots[2] = {malloc(mlp.n_params * sizeof(float)), malloc(mlp.n_params * sizeof(float))};
    os.slots[0] = slots[0];
    os.slots[1] = slots[1];
    kd_train_state ts;
    kd_calibration cal;
    char *config = malloc(FUZZ_CONFIG_MAX);
    if (slots[0] && slots[1] && config)
        (void)kd_checkpoint_load(path, &mlp, &os, &ts, config, FUZZ_CONFIG_MAX, &cal, &err);
    free(config);
    free(slots[0]);
    free(slots[1]);
    kd_mlp_free(&mlp);
    return 0;
}
