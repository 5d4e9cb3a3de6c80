/* run_data.c - the data set a run's config names (see run_data.h). */
#define _POSIX_C_SOURCE 200809L
#include "workflows/run_data.h"

#include "io/h5util.h"

#include <stdio.h>
#include <string.h>

void kd_run_data_options(const kd_config *c, kd_dataset_options *o)
{
    kd_dataset_options_default(o);
    snprintf(o->x_path[KD_SPLIT_TRAIN], KD_DATASET_PATH_MAX, "%s", c->data.train_x);
    snprintf(o->y_path[KD_SPLIT_TRAIN], KD_DATASET_PATH_MAX, "%s", c->data.train_y);
    snprintf(o->x_path[KD_SPLIT_VAL], KD_DATASET_PATH_MAX, "%s", c->data.val_x);
    snprintf(o->y_path[KD_SPLIT_VAL], KD_DATASET_PATH_MAX, "%s", c->data.val_y);
    snprintf(o->x_path[KD_SPLIT_TEST], KD_DATASET_PATH_MAX, "%s", c->data.test_x);
    snprintf(o->y_path[KD_SPLIT_TEST], KD_DATASET_PATH_MAX, "%s", c->data.test_y);
    o->val_from_train = c->data.val_from_train;
    o->require_test = false;
}

int kd_run_data_open(const kd_config *c, const char *path, bool require_test, kd_dataset *ds, kd_error *err)
{
    kd_dataset_options o;
    kd_run_data_options(c, &o);
    o.require_test = require_test;
    int rc = kd_dataset_open(ds, path, &o, err);
    if (!rc || !err) return rc;
    /* The training datasets are missing: another layout, which the data.* keys name. */
    hid_t file = kd_h5_open_read(path, NULL);
    bool foreign = file >= 0 && (!kd_h5_link_exists(file, o.x_path[KD_SPLIT_TRAIN]) ||
                                 !kd_h5_link_exists(file, o.y_path[KD_SPLIT_TRAIN]));
    if (file >= 0) H5Fclose(file);
    size_t used = strlen(err->message);
    if (foreign)
        snprintf(err->message + used, sizeof err->message - used,
                 " (for another layout set data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y;"
                 " `kdtrain info %s` lists the file's datasets and the keys that open it)", path);
    return rc;
}
