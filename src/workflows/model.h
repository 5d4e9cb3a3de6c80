/* model.h - the one way to open a trained model: from a run folder or a checkpoint
 * to the MLP with its weights, the run's config (the checkpoint's own copy), its
 * training record and provenance, its calibration, and the data set it was trained
 * on, opened with the run's data.* keys. eval, calibrate, info and distillation's
 * teacher all open models here, so they agree on every check and message.
 *
 * A checkpoint written by hand with only /model (docs/CHECKPOINT.md allows it)
 * opens too: it has no config, so its data set must be named. */
#ifndef KD_MODEL_H
#define KD_MODEL_H

#include "core/error.h"
#include "data/dataset.h"
#include "io/checkpoint.h"
#include "io/fileutil.h"
#include "nn/mlp.h"
#include "workflows/config.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_model {
    char checkpoint[KD_PATH_MAX];        /* the file opened: PATH, or PATH/model.h5 for a run folder */
    bool from_run_folder;         /* PATH was a run folder */
    kd_mlp mlp;                   /* the weights, loaded */
    bool has_train;               /* the file has a /train group (a kdtrain run) */
    kd_train_state train;         /* epoch, step, seed, provenance; zeroed without /train */
    kd_config config;             /* the run's config; defaults without /train */
    char *config_text;            /* (KD_CONFIG_TEXT_MAX) the text it was parsed from; "" without /train */
    kd_calibration calibration;   /* .present false when never calibrated */
} kd_model;

/* The checkpoint behind a model argument: PATH itself, or PATH/model.h5 for a run folder. */
const char *kd_model_checkpoint_path(const char *path, char *buf, size_t size);

/* Opens and loads the whole model (every check of kd_checkpoint_load). On failure
 * nothing needs closing. */
int kd_model_open(kd_model *model, const char *run_or_checkpoint, kd_error *err);
void kd_model_close(kd_model *model);

/* The model's data set: `data`, or NULL for the config's data.path, opened with the
 * run's data.* keys and checked against the model's inputs and classes. */
int kd_model_open_data(const kd_model *model, const char *data, bool require_test, kd_dataset *ds, kd_error *err);

/* The model's classes (the last layer's width). */
int kd_model_classes(const kd_model *model);

#ifdef __cplusplus
}
#endif
#endif
