/* evaluate.c - see evaluate.h. */
#include "workflows/evaluate.h"

#include "data/loader.h"

#include <string.h>

int kd_evaluate(kd_mlp *mlp, kd_tape *tape, const kd_dataset *ds, kd_split split, const kd_eval_options *options,
                float *logits, int64_t *confusion, kd_metrics *metrics, kd_error *err)
{
    int classes = mlp->config.sizes[mlp->config.n_layers];
    kd_loader_options lo;
    kd_loader_options_default(&lo);
    lo.batch_size = options->batch_size;
    lo.shuffle = false;
    lo.streaming = options->streaming;
    lo.limit_rows = options->limit_rows;
    kd_loader loader;
    int rc = kd_loader_open(&loader, ds, split, &lo, err);
    if (rc) return rc;
    if (metrics) kd_metrics_init(metrics, options->n_bins);
    if (confusion) memset(confusion, 0, (size_t)classes * classes * sizeof *confusion);
    bool grad = tape->grad_enabled;
    kd_tape_set_grad_enabled(tape, false);
    kd_batch batch;
    while ((rc = kd_loader_next(&loader, &batch, err)) == KD_OK && batch.rows > 0) {
        kd_tape_reset(tape);
        kd_tensor *x = kd_tape_view(tape, batch.rows, ds->dim, batch.x, NULL);
        kd_tensor *z = kd_mlp_forward(mlp, tape, x, false, NULL);
        if (metrics) kd_metrics_add(metrics, z->data, batch.y, batch.rows, classes, options->temperature);
        for (int i = 0; i < batch.rows; i++) {
            const float *row = z->data + (size_t)i * classes;
            if (logits) memcpy(logits + (size_t)batch.index[i] * classes, row, (size_t)classes * sizeof(float));
            if (confusion) {
                int top = 0;
                for (int c = 1; c < classes; c++)
                    if (row[c] > row[top]) top = c;
                confusion[(size_t)batch.y[i] * classes + top]++;
            }
        }
    }
    kd_tape_reset(tape);
    kd_tape_set_grad_enabled(tape, grad);
    kd_loader_close(&loader);
    return rc;
}
