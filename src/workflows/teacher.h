/* teacher.h - distillation's teacher as the trainer sees it: the teacher's logits
 * on every training row, computed once in evaluation mode and cached, looked up by
 * row index for each batch (so streaming works too). Today the teacher is a kdtrain
 * model (a run folder or a checkpoint); teachers from logits files and ensembles
 * come here (issue 15). */
#ifndef KD_TEACHER_H
#define KD_TEACHER_H

#include "core/error.h"
#include "core/tape.h"
#include "data/dataset.h"
#include "io/fileutil.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_teacher_logits {
    int64_t rows;
    int classes;
    float *logits;             /* (rows, classes): the teacher's logits of the training split, T = 1 */
    double train_accuracy;     /* the teacher's on those rows */
    double seconds;            /* the time the cache took */
    char source[KD_PATH_MAX];  /* the checkpoint they came from */
    char description[256];     /* "784-1200-1200-10" */
} kd_teacher_logits;

/* The logits of `teacher` (a run folder or a checkpoint) on ds's training split,
 * whose model must take ds's features and give its classes. tape is scratch. */
int kd_teacher_logits_compute(kd_teacher_logits *out, const char *teacher, const kd_dataset *ds, kd_tape *tape,
                              int batch_size, bool streaming, kd_error *err);
void kd_teacher_logits_free(kd_teacher_logits *logits);

#ifdef __cplusplus
}
#endif
#endif
