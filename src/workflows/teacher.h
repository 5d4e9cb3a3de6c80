/* teacher.h - distillation's teacher as the trainer sees it: logits on every training
 * row, computed or read once and cached, looked up by row index for each batch (so
 * streaming works too). What the cache holds (docs/TEACHERS.md):
 *
 *   one teacher        its logits z, as they are (kdtrain model: evaluation mode, T = 1;
 *                      logits file: the file's training rows); with calibrate_teachers
 *                      z / T_k, T_k its own temperature (below)
 *   K >= 2 teachers    T log pbar, pbar = mean_k softmax(z_k / (T_k T)), T the distillation
 *                      temperature (T_k = 1 unless calibrate_teachers): softmax(cache / T)
 *                      is pbar exactly. These "logits" are defined up to a per-row constant;
 *                      a loss that standardises logits sees T log pbar.
 *
 * A teacher is a kdtrain model (a run folder or a checkpoint) or a logits file (io/logits.h:
 * FILE[:/dataset] for HDF5, /logits by default; FILE.npy) whose rows are the training
 * split's rows in data-set order (the first rows of the data file's /train/x), optionally
 * followed by the validation split's (with data.val_from_train, a file with a row for
 * every /train/x row). Any other row count, another class count, labels beside the
 * logits that differ from the data's, non-finite values or probabilities are errors
 * naming the file.
 *
 * calibrate_teachers: T_k is a kdtrain model's stored calibration (kdtrain calibrate),
 * else the exact fit of calib/temperature.h on its logits of the validation split; a
 * logits file's fit on its validation rows, which it must then have.
 *
 * Identity (recorded in checkpoints, compared on --resume): a model by its path as
 * given; a logits file by its spec and the FNV-1a 64 hash of the float32 logits read
 * ("SPEC [fnv1a64 0123456789abcdef]"), so a file whose content changed is another
 * teacher and a moved copy the same one; an ensemble by its members joined by ", ". */
#ifndef KD_TEACHER_H
#define KD_TEACHER_H

#include "core/error.h"
#include "core/tape.h"
#include "data/dataset.h"
#include "io/fileutil.h"
#include "workflows/config.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_TEACHERS_MAX 16
#define KD_TEACHER_IDENTITY_MAX 2048

typedef enum kd_teacher_kind { KD_TEACHER_MODEL = 0, KD_TEACHER_LOGITS = 1 } kd_teacher_kind;

/* The teachers a distillation names, before any is opened. */
typedef struct kd_teacher_list {
    int n;
    kd_teacher_kind kind[KD_TEACHERS_MAX];
    char path[KD_TEACHERS_MAX][KD_CONFIG_STR];
    char key[32]; /* where they were named: "--teacher", "distill.teachers", ... */
} kd_teacher_list;

typedef struct kd_teacher_member {
    kd_teacher_kind kind;
    char source[KD_PATH_MAX];     /* the checkpoint opened, or the logits spec as given */
    char description[256];        /* "784-1200-1200-10", or "logits file [60000 x 10] float32" */
    uint64_t fingerprint;         /* logits files: FNV-1a 64 of the float32 logits read; models 0 */
    double temperature;           /* its logits were divided by it: 1 unless calibrate_teachers */
    const char *temperature_from; /* "" (not calibrated), "its checkpoint's calibration", "fitted on validation"
                                     (saying so when the fit stopped at a bound, 0.001 or 1000) */
    double train_accuracy;        /* its own, against the data's training labels */
    double val_accuracy;          /* on the validation split; NaN when not computed */
} kd_teacher_member;

typedef struct kd_teacher_logits {
    int64_t rows;
    int classes;
    float *logits;             /* (rows, classes): the cache above, for the training split */
    double train_accuracy;     /* of the cache (the ensemble's for K >= 2) */
    double seconds;            /* the time the cache took */
    char source[KD_PATH_MAX];  /* one teacher: its member's source; an ensemble: "ensemble of K teachers" */
    char description[256];     /* one teacher: its member's description */
    int n_members;
    kd_teacher_member member[KD_TEACHERS_MAX];
    char identity[KD_TEACHER_IDENTITY_MAX]; /* above; what checkpoints record */
} kd_teacher_logits;

/* Whether path names a logits file rather than a kdtrain model: a .npy file (by its
 * magic or its name), an HDF5 file without a /model group, or a FILE:/dataset spec
 * that is no existing file. Run folders, checkpoints and missing paths are models. */
bool kd_teacher_is_logits(const char *path);

/* The teachers to use: `given` (--teacher, or the pipeline's teacher run; a model or a
 * logits file, recognised as above), which replaces the config's distill.teacher and
 * distill.teacher_logits and may not be combined with distill.teachers; else the
 * config's one key that is set (distill.teacher: recognised as above;
 * distill.teacher_logits: a logits file; distill.teachers: a comma list of either).
 * None named is an error. */
int kd_teacher_list_resolve(kd_teacher_list *out, const char *given, const kd_config *config, kd_error *err);

/* The cache for ds's training split (ds's validation split too when a teacher's T is
 * fitted, and for the members' validation accuracy): teachers resolved as above, at the
 * config's distill.temperature and calibrate_teachers, models evaluated in batches of
 * train.batch_size (streamed when data.streaming). tape is scratch. On failure *out
 * holds nothing to free. */
int kd_teacher_logits_load(kd_teacher_logits *out, const char *given, const kd_config *config, const kd_dataset *ds,
                           kd_tape *tape, kd_error *err);
void kd_teacher_logits_free(kd_teacher_logits *logits);

/* out (rows, classes) = T log mean_k softmax(z[k] / (scale[k] T)), every row worked in
 * double (log pbar = logsumexp_k log_softmax(z_k / (scale_k T)) - log K), finite for any
 * finite z and T > 0. z[k] (rows, classes); out may not alias them. */
int kd_teacher_combine(float *out, const float *const *z, const double *scale, int k, int64_t rows, int classes,
                       double temperature, kd_error *err);

/* Whether a recorded identity (a checkpoint's /train teacher) names the loaded
 * teachers: model members by the same checkpoint however spelled (runs/t, runs/t/,
 * runs/t/model.h5), logits members by the same fingerprint, in the same order. */
bool kd_teacher_same(const char *recorded, const kd_teacher_logits *loaded);

#ifdef __cplusplus
}
#endif
#endif
