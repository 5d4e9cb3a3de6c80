/* tensor.h - the engine's one data type: a 2-D row-major float32 matrix with an
 * optional gradient of the same shape, and in bf16 training an optional bfloat16
 * copy (a weight's, read by the products) or a bfloat16 value alone (a hidden
 * activation, data NULL). Gradients are always float32. A tensor does not own its
 * buffers: they live in a tape's arena (activations) or in a model's parameter
 * blocks. */
#ifndef KD_TENSOR_H
#define KD_TENSOR_H

#include "core/bf16.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_tensor {
    int rows, cols;
    float *data;        /* (rows, cols), row-major, contiguous; NULL for a bf16-only value */
    float *grad;        /* (rows, cols) or NULL; backward accumulates into it */
    bool requires_grad; /* gradient flows into this tensor */
    kd_bf16 *bf16;      /* (rows, cols) bfloat16 values or copy, or NULL */
} kd_tensor;

static inline size_t kd_tensor_numel(const kd_tensor *t) { return (size_t)t->rows * (size_t)t->cols; }

/* A tensor over caller-owned buffers (grad may be NULL; then no gradient). */
kd_tensor kd_tensor_view(int rows, int cols, float *data, float *grad);

#ifdef __cplusplus
}
#endif
#endif
