/* trainer.h - `kdtrain train` and `kdtrain distill`: a model trained from a config,
 * with a run folder (config.ini, metrics.csv, train.log, model.h5 = the last epoch
 * with optimiser state, best.h5 = the best validation accuracy, summary.json) and
 * resumption that reproduces an uninterrupted run bit for bit.
 *
 * Distillation: the teacher's logits on the training split are computed once in
 * evaluation mode and cached; each batch looks its rows up by index. With
 * data.labelled = N only the first N training rows keep their labels: `train`
 * trains on those rows alone, `distill` uses every row as the transfer set, and
 * the unlabelled rows contribute the soft term alone (T^2 KL, weight 1, where a
 * labelled row has alpha T^2 KL + (1 - alpha) CE). */
#ifndef KD_TRAINER_H
#define KD_TRAINER_H

#include "core/comm.h"
#include "data/dataset.h"
#include "workflows/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_train_request {
    kd_config config;          /* resolved and validated */
    const char *name_hint;     /* run name when run.name is empty (e.g. the config's stem) */
    bool distill;              /* distil from the config's teachers (workflows/teacher.h) */
    const char *teacher;       /* a teacher named outside the config (--teacher, the pipeline's
                                  teacher run): a run folder, checkpoint or logits file that
                                  replaces distill.teacher/teacher_logits; implies distill */
    const char *resume;        /* a run folder to continue; config must be its config.ini */
    int threads_override;      /* > 0: thread count for a resumed run */
    int64_t stop_after;        /* > 0: stop once this many epochs are done (resume later) */
    bool quiet;                /* no progress on stderr (the log gets everything) */
    kd_comm *comm;             /* a parallel job (mpirun -np N): every rank calls kd_train with
                                  the same request; rank 0 writes the run folder. NULL: one process */
} kd_train_request;

/* Runs the training; run_dir receives the run folder's path. */
int kd_train(const kd_train_request *request, char *run_dir, size_t run_dir_size, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
