/* teacher.c - distillation's cached teacher logits (see teacher.h). */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "workflows/teacher.h"

#include "calib/metrics.h"
#include "workflows/evaluate.h"
#include "workflows/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kd_teacher_logits_compute(kd_teacher_logits *out, const char *path, const kd_dataset *ds, kd_tape *tape,
                              int batch_size, bool streaming, kd_error *err)
{
    memset(out, 0, sizeof *out);
    kd_model teacher;
    int rc = kd_model_open(&teacher, path, err);
    if (rc) return rc;
    const kd_mlp_config *tc = &teacher.mlp.config;
    kd_mlp_describe(tc, out->description, sizeof out->description);
    snprintf(out->source, sizeof out->source, "%s", teacher.checkpoint);
    if (kd_model_classes(&teacher) != ds->num_classes || tc->sizes[0] != ds->dim)
        rc = kd_error_set(err, KD_ERR_CONFIG, "--teacher %s: expected %d inputs and %d classes like the data, found a %s model",
                          teacher.checkpoint, ds->dim, ds->num_classes, out->description);
    out->rows = ds->split[KD_SPLIT_TRAIN].rows;
    out->classes = ds->num_classes;
    out->logits = rc ? NULL : malloc((size_t)out->rows * (size_t)out->classes * sizeof(float));
    if (!rc && !out->logits) rc = kd_error_set(err, KD_ERR_IO, "out of memory for the teacher logits");
    if (!rc) {
        double t0 = kd_now_seconds();
        kd_eval_options eo = {.batch_size = batch_size, .streaming = streaming, .temperature = 1.0, .n_bins = 15};
        kd_metrics *m = malloc(sizeof *m);
        rc = m ? kd_evaluate(&teacher.mlp, tape, ds, KD_SPLIT_TRAIN, &eo, out->logits, NULL, m, err)
               : kd_error_set(err, KD_ERR_IO, "out of memory");
        if (!rc) out->train_accuracy = kd_metrics_summarize(m).accuracy;
        out->seconds = kd_now_seconds() - t0;
        free(m);
    }
    kd_model_close(&teacher);
    if (rc) kd_teacher_logits_free(out);
    return rc;
}

void kd_teacher_logits_free(kd_teacher_logits *l)
{
    free(l->logits);
    l->logits = NULL;
}
