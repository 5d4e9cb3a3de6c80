/* checkpoint.h - checkpoints in HDF5: the model's parameters and architecture,
 * the optimiser's state, the training position (epoch, step, RNG state, config
 * text) and the fitted calibration temperature; enough to resume training
 * bit-exactly or to evaluate, and readable by h5py. The layout is in
 * docs/CHECKPOINT.md. Files are written to a temporary file and renamed, so a
 * checkpoint path never holds half a file. */
#ifndef KD_CHECKPOINT_H
#define KD_CHECKPOINT_H

#include "core/error.h"
#include "core/rng.h"
#include "nn/mlp.h"
#include "nn/optim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_CHECKPOINT_FORMAT_VERSION 1
typedef struct kd_train_state {
    int64_t epoch;            /* completed epochs */
    int64_t step;             /* optimiser steps taken */
    kd_rng rng;               /* dropout/jitter RNG, all 256 bits */
    uint64_t seed;
    const char *config_text;  /* resolved INI text of the run; NULL is stored as "" */
    /* Provenance and validation metrics, for `kdtrain info`; optional in a file
     * (checkpoints before 2026-12-02 and hand-written ones lack them). */
    char commit[64];          /* the build of kdtrain that wrote it; "" when not stored */
    bool records_teacher;     /* the file says whether the run was distilled */
    char teacher[2048];       /* its teacher as given ("" for plain training) when it does;
                                 workflows/teacher.h: files and ensembles add fingerprints */
    bool has_metrics;         /* the seven metrics below are stored */
    double val_accuracy, val_nll, val_ece;                /* after `epoch` */
    int64_t best_epoch;                                   /* best validation accuracy so far */
    double best_val_accuracy, best_val_nll, best_val_ece; /* at best_epoch */
} kd_train_state;

/* A stored temperature lies in the range kdtrain's fit searches (calib/temperature.h:
 * 1/KD_BETA_MAX to 1/KD_BETA_MIN); save and load refuse anything else. */
#define KD_CALIB_T_MIN 1e-3
#define KD_CALIB_T_MAX 1e3

typedef struct kd_calibration {
    bool present;             /* false: the file has no /calibration group */
    double temperature;       /* fitted T in [KD_CALIB_T_MIN, KD_CALIB_T_MAX] */
    char split[16];           /* where it was fitted, e.g. "val" */
    double nll_before, nll_after;
} kd_calibration;

/* Writes a checkpoint; optim, train and calib may be NULL (calib->present false
 * also omits /calibration). Non-finite parameters or optimiser state are refused
 * before any file is created; on any failure an existing file at path is untouched. */
int kd_checkpoint_save(const char *path, const kd_mlp *model, const kd_optim_state *optim,
                       const kd_train_state *train, const kd_calibration *calib, kd_error *err);

/* Loads into a model created with the file's layer sizes (kd_checkpoint_read_config);
 * dropout and init are not compared, as they do not shape the parameters.
 * optim (NULL: skipped): if optim->kind is set it must match the file's; the
 * file's kind, step, slot names and hyper-parameters (in name order) are filled
 * in, and each of the file's slots is read into optim->slots[i], which the caller
 * must have allocated (n_params floats). train (NULL: skipped) gets epoch, step,
 * rng and seed, and config_text = config_buf. config_buf (NULL: skipped) receives
 * the config text and must hold it with its terminating NUL. calib (NULL:
 * skipped) gets present = false if the file has none. On failure nothing the
 * caller passed is changed. */
int kd_checkpoint_load(const char *path, kd_mlp *model, kd_optim_state *optim, kd_train_state *train,
                       char *config_buf, size_t config_size, kd_calibration *calib, kd_error *err);

/* Reads only the architecture (layer sizes, dropout, input dropout, init), to
 * create a model of the right shape before loading. */
int kd_checkpoint_read_config(const char *path, kd_mlp_config *config, kd_error *err);

/* Replaces the /calibration group of an existing checkpoint (calib->present
 * false removes it), atomically: the other groups are copied unchanged into a
 * temporary file, which is renamed over path. */
int kd_checkpoint_write_calibration(const char *path, const kd_calibration *calib, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
