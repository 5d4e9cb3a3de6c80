/* inspect.h - `kdtrain info FILE`: what a file holds, told to a person. A data set:
 * its splits, rows, feature shape and stored type, classes and class counts per
 * split, and whether it matches the schema of docs/DATA.md, or, for a foreign
 * layout, every dataset in it and the data.* keys that would open it (tried before
 * they are suggested). A checkpoint (or a run folder): architecture, parameters,
 * epochs trained, validation metrics, stored temperature, the commit that trained
 * it. A logits file: rows, classes, accuracy, NLL and ECE at T = 1. A .npy array: its
 * shape and type, and what it would be as logits or labels.
 *
 * Files are opened with the same readers training uses, so a bad file gets the
 * same error here as there. The report goes to `out`; errors are returned. */
#ifndef KD_INSPECT_H
#define KD_INSPECT_H

#include "core/error.h"
#include "data/dataset.h"

#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_inspect_target { KD_INSPECT_DATASET = 0, KD_INSPECT_CHECKPOINT, KD_INSPECT_LOGITS } kd_inspect_target;

/* What the HDF5 file at path is: a checkpoint has /model, a logits file /logits,
 * anything else is taken for a data set. Errors for a missing, foreign or damaged file. */
int kd_inspect_classify(const char *path, kd_inspect_target *kind, kd_error *err);

/* A data set, opened with options (the data.* keys of a config). For a file that
 * the options do not open, the report lists its datasets and suggests keys; the
 * return value is then the opening error. */
int kd_inspect_dataset(const char *path, const kd_dataset_options *options, FILE *out, kd_error *err);
int kd_inspect_checkpoint(const char *path, FILE *out, kd_error *err);
int kd_inspect_logits(const char *path, FILE *out, kd_error *err);
/* A .npy array: shape, type, byte and memory order; a 2-D float array as logits (rows,
 * classes, the report above when the labels beside it are found, a probabilities
 * warning); an integer vector's range, as labels. */
int kd_inspect_npy(const char *path, FILE *out, kd_error *err);

/* Any of the three, by kd_inspect_classify, or a .npy array (kd_npy_is_npy); a
 * directory is a run folder (its model.h5). */
int kd_inspect(const char *path, const kd_dataset_options *options, FILE *out, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
