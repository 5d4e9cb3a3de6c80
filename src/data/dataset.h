/* dataset.h - classification data sets in HDF5 (DESIGN.md's schema, or any layout
 * whose dataset paths are named in the options). kd_dataset_open inspects and
 * validates a file: shapes, types, label range, num_classes, and (for splits that
 * are loaded) finite features. Features stay in their stored type in memory
 * (uint8 or float32); batches are converted to float32 times x_scale on gather. */
#ifndef KD_DATASET_H
#define KD_DATASET_H

#include "core/error.h"
#include "io/fileutil.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_split { KD_SPLIT_TRAIN = 0, KD_SPLIT_VAL = 1, KD_SPLIT_TEST = 2, KD_SPLIT_COUNT } kd_split;

const char *kd_split_name(kd_split split);
/* "train", "val" or "test" to a split; false when the name is none of them. */
bool kd_split_parse(const char *name, kd_split *split);

typedef enum kd_feature_type { KD_FEATURE_UINT8 = 0, KD_FEATURE_FLOAT32 = 1 } kd_feature_type;

#define KD_DATASET_PATH_MAX 256
#define KD_MAX_CLASS_NAMES 256

typedef struct kd_dataset_options {
    char x_path[KD_SPLIT_COUNT][KD_DATASET_PATH_MAX]; /* default /train/x, /val/x, /test/x */
    char y_path[KD_SPLIT_COUNT][KD_DATASET_PATH_MAX]; /* default /train/y, /val/y, /test/y */
    /* Rows taken off the end of train for validation when the file has no
     * validation datasets; 0 means such a file has no validation split. */
    int64_t val_from_train;
    bool require_test;  /* a missing test split is an error (else the split is absent) */
} kd_dataset_options;

void kd_dataset_options_default(kd_dataset_options *options);

/* One split: rows [row_begin, row_begin + rows) of the datasets x_path and y_path. */
typedef struct kd_split_info {
    bool present;
    char x_path[KD_DATASET_PATH_MAX], y_path[KD_DATASET_PATH_MAX];
    int64_t row_begin, rows;
    int64_t chunk_rows;          /* rows per chunk of x in the file; 0: contiguous */
    kd_feature_type stored_type; /* uint8 stays uint8; float32 and float64 become float32 */
    int32_t *labels;             /* (rows), validated to lie in [0, num_classes) */
    void *features;              /* (rows, dim) in stored_type once loaded, else NULL */
} kd_split_info;

typedef struct kd_dataset {
    char path[KD_DIR_MAX];
    int dim;                  /* features per sample (trailing dimensions flattened) */
    int num_classes;
    double x_scale;           /* features are multiplied by this on gather */
    int image_shape[2];       /* (height, width) when the data are images, else 0 */
    int n_class_names;
    char *class_names[KD_MAX_CLASS_NAMES];
    char notes[512];          /* defaults that were applied, for the user to see */
    kd_split_info split[KD_SPLIT_COUNT];
} kd_dataset;

/* Inspects and validates the file and reads every split's labels. Features are
 * not read: load them with kd_dataset_load (in memory) or stream them. */
int kd_dataset_open(kd_dataset *ds, const char *path, const kd_dataset_options *options, kd_error *err);
/* Reads the features of one split into memory, checking they are finite. */
int kd_dataset_load(kd_dataset *ds, kd_split split, kd_error *err);
void kd_dataset_close(kd_dataset *ds);

/* Writes row `row` of a loaded split as float32 features times x_scale. */
void kd_dataset_row(const kd_dataset *ds, kd_split split, int64_t row, float *out);

#ifdef __cplusplus
}
#endif
#endif
