/* evaluate.h - a model over a whole split in evaluation mode (no dropout, no
 * gradients): metrics, a confusion matrix, and optionally every logit in split
 * order (the teacher-logit cache of distillation, `eval --logits`). */
#ifndef KD_EVALUATE_H
#define KD_EVALUATE_H

#include "calib/metrics.h"
#include "data/dataset.h"
#include "nn/mlp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_eval_options {
    int batch_size;
    bool streaming;
    double temperature; /* probabilities are softmax(z / T) for the metrics */
    int n_bins;
    int64_t limit_rows; /* 0: the whole split */
} kd_eval_options;

/* logits: (rows, classes) or NULL; confusion: (classes, classes) counts, row = true
 * class, or NULL; metrics: initialised here, or NULL. */
int kd_evaluate(kd_mlp *mlp, kd_tape *tape, const kd_dataset *ds, kd_split split, const kd_eval_options *options,
                float *logits, int64_t *confusion, kd_metrics *metrics, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
