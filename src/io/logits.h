/* logits.h - logits files: what `kdtrain eval --logits` writes, and what any other
 * framework can write with h5py: /logits [N, C] float32 or float64 (before any
 * temperature) and /labels [N] or [N, 1] of any integer type, other dataset names
 * by argument. The file is read whole and validated before anything uses it:
 * rows of the two agree, every logit is finite, every label lies in 0..C-1.
 * Every error names the file and the dataset. */
#ifndef KD_LOGITS_H
#define KD_LOGITS_H

#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_LOGITS_DEFAULT_PATH "/logits"
#define KD_LABELS_DEFAULT_PATH "/labels"

typedef struct kd_logits {
    int64_t rows;
    int classes;
    float *logits;            /* (rows, classes); float64 files are rounded to float32 */
    int32_t *labels;          /* (rows) */
    bool stored_double;       /* the file held float64 logits */
    char model[512], split[16]; /* the attributes `eval --logits` writes; "" when absent */
} kd_logits;

/* Reads and validates a logits file; logits_path and labels_path NULL take the
 * defaults above. On failure *out holds nothing to free. */
int kd_logits_read(kd_logits *out, const char *path, const char *logits_path, const char *labels_path,
                   kd_error *err);
void kd_logits_free(kd_logits *logits);

/* True when every row lies in [0, 1] and sums to 1 within 1e-3: such rows are
 * probabilities, not logits (softmax of them would be nearly uniform). */
bool kd_logits_look_like_probabilities(const kd_logits *logits);

#ifdef __cplusplus
}
#endif
#endif
