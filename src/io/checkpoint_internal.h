/* checkpoint_internal.h - implemented by checkpoint_common.c: what checkpoint.c (writing, replacing the calibration)
 * and checkpoint_read.c (reading) share: the datasets of a parameter-shaped
 * block, error messages that name the file and object, the finite-value check,
 * closing with the caller's status, and the reader of the /model group. */
#ifndef KD_CHECKPOINT_INTERNAL_H
#define KD_CHECKPOINT_INTERNAL_H

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/h5util.h"
#include "nn/mlp.h"

#include <stdbool.h>
#include <stddef.h>

#define KD_CKPT_FORMAT_NAME "kdtrain-checkpoint"

/* One dataset of a parameter-shaped block: layer k's W (in, out) or b (out). */
typedef struct block_part {
    char name[96]; /* "/model/layer2/W", "/optimizer/m/layer1/b" */
    size_t offset, count;
    int rank;
    hsize_t dims[2];
} block_part;

/* The number of datasets of a parameter-shaped block: W and b per layer. */
int kd_ckpt_n_parts(const kd_mlp *m);
/* Dataset i (0 .. kd_ckpt_n_parts - 1) of the block under prefix ("/model",
 * "/optimizer/m"): its name, offset and size in the block, and shape. */
void kd_ckpt_get_part(const kd_mlp *m, const char *prefix, int i, block_part *p);
/* Sets "PATH:OBJECT: ACTION (HDF5's last message)" and returns code. */
int kd_ckpt_h5_error(kd_error *err, int code, const char *path, const char *object, const char *action);
/* KD_ERR_DATA naming the first NaN or Inf in v[0..n). */
int kd_ckpt_check_finite(const float *v, size_t n, const char *path, const char *object, kd_error *err);
/* The values of a calibration, as saved or as read: T in [KD_CALIB_T_MIN,
 * KD_CALIB_T_MAX], NLLs finite and >= 0; KD_ERR_DATA naming PATH:/calibration. */
int kd_ckpt_check_calibration(const kd_calibration *c, const char *path, kd_error *err);
/* The /optimizer attributes that are not hyper-parameters: kind, step, slots. */
bool kd_ckpt_reserved_optim_attr(const char *name);
/* Close an object opened by the caller; rc is the caller's status so far. */
int kd_ckpt_close_group(hid_t g, int rc, const char *path, const char *name, kd_error *err);
int kd_ckpt_close_file(hid_t file, int rc, const char *path, kd_error *err);
/* Reads and checks the /model group (format, version, layer sizes, activation,
 * dropout, init); in checkpoint_read.c. */
int kd_ckpt_read_model_config(hid_t file, const char *path, kd_mlp_config *out, kd_error *err);
/* Opens group `name`, or returns H5I_INVALID_HID with an error naming it. */
hid_t kd_ckpt_open_group(hid_t file, const char *name, const char *path, kd_error *err);

#endif
