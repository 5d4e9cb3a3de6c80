/* run_data.h - the data set a run's config names: the config's data.* keys as
 * dataset options, and opening the file with them. When the file lacks the training
 * datasets the keys name (another layout), the error says which keys name others
 * and that `kdtrain info FILE` lists them. Training, eval, calibrate and info open
 * data sets here. */
#ifndef KD_RUN_DATA_H
#define KD_RUN_DATA_H

#include "core/error.h"
#include "data/dataset.h"
#include "workflows/config.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The dataset paths and validation rows of a config (the test split optional). */
void kd_run_data_options(const kd_config *config, kd_dataset_options *options);
/* Opens the data set at path with the config's data.* keys. */
int kd_run_data_open(const kd_config *config, const char *path, bool require_test, kd_dataset *ds, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
