/* logits.h - logits files, from kdtrain or any framework, read whole and validated.
 *
 * Sources, named by a spec:
 *   FILE or FILE:/dataset   HDF5 (`kdtrain eval --logits` writes /logits and /labels;
 *                           h5py writes anything): /logits [N, C] float32 or float64
 *                           (before any temperature) by default. The dataset is what
 *                           follows the LAST ":/" of the spec, unless the whole spec is
 *                           an existing file (so a path may contain ':').
 *   FILE.npy                numpy.save's format (io/npy.h): a [N, C] float32/float64 array,
 *                           either byte order, C or Fortran order. A file that begins with
 *                           .npy's magic is read as one whatever its name.
 * Labels ([N] or [N, 1], any integer type, values 0..C-1), named by a labels spec:
 *   FILE:/dataset, FILE (HDF5, its /labels), :/dataset (the logits' own HDF5 file), FILE.npy.
 * When no labels spec is given:
 *   HDF5 logits   the same file's dataset named like the logits with the last "logits"
 *                 replaced by "labels" (/val/logits -> /val/labels) if it exists, else /labels;
 *   .npy logits   the file beside it whose name (not folder) has its last "logits"
 *                 replaced by "labels": val_logits.npy -> val_labels.npy, logits.npy ->
 *                 labels.npy. A name without "logits", or no such file, is an error that
 *                 asks for the labels to be named (--labels in the CLI).
 *
 * Validation, the same for every source: 2 to 1e6 classes, at least one row; every
 * logit finite (NaN/Inf named with row and column); as many labels as rows; labels in
 * 0..C-1 (the value and row named). Rows that all look like probabilities (every row
 * in [0, 1] summing to 1 within 1e-3; some rows alone do not count) are refused unless
 * the caller says they are probabilities (then their log is taken, below) or keeps them
 * (inspection). Every error names the file, and the dataset for HDF5. */
#ifndef KD_LOGITS_H
#define KD_LOGITS_H

#include "core/error.h"
#include "io/fileutil.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_LOGITS_DEFAULT_PATH "/logits"
#define KD_LABELS_DEFAULT_PATH "/labels"
/* Probabilities below this (zeros included) are taken as it: log(1e-30) = -69.08,
 * a finite logit 69 below a class of probability 1. */
#define KD_LOGITS_PROBABILITY_FLOOR 1e-30
/* How far from 1 a row of probabilities may sum. */
#define KD_LOGITS_PROBABILITY_TOLERANCE 1e-3

typedef enum kd_logits_source { KD_LOGITS_HDF5 = 0, KD_LOGITS_NPY = 1 } kd_logits_source;

typedef struct kd_logits_read_options {
    /* The rows are probabilities: each must be non-negative and sum to 1 within 1e-3
     * (else an error naming the row); the logits kept are log(max(p, 1e-30)), in double
     * then rounded. softmax(log p) = p / sum(p): the rows come back renormalised. */
    bool probabilities;
    /* Rows that look like probabilities are kept as they are instead of refused
     * (`kdtrain info`, which warns). Ignored when probabilities is set. */
    bool allow_probability_rows;
    /* No labels found by the rule above is not an error: labels is then NULL (a
     * distillation teacher needs none). Labels named by a spec must still exist. */
    bool labels_optional;
} kd_logits_read_options;

typedef struct kd_logits {
    int64_t rows;
    int classes;
    float *logits;            /* (rows, classes); float64 files are rounded to float32 */
    int32_t *labels;          /* (rows); NULL only with labels_optional and none found */
    bool stored_double;       /* the file held float64 logits */
    bool from_probabilities;  /* the logits are the log of stored probabilities */
    kd_logits_source source, labels_source;
    char file[KD_PATH_MAX], dataset[256];               /* the logits; dataset "" for .npy */
    char labels_file[KD_PATH_MAX], labels_dataset[256]; /* "" and "" when no labels */
    char model[512], split[16]; /* the attributes `eval --logits` writes; "" when absent */
} kd_logits;

/* Reads and validates logits (and labels) named by specs, as above; labels_spec NULL
 * finds the labels by the rule above; o NULL is all options off. On failure *out
 * holds nothing to free. */
int kd_logits_read_spec(kd_logits *out, const char *logits_spec, const char *labels_spec,
                        const kd_logits_read_options *o, kd_error *err);

/* An HDF5 logits file with its dataset paths given apart (NULL: the defaults above,
 * the labels required). Rows that look like probabilities are kept, as they always were. */
int kd_logits_read(kd_logits *out, const char *path, const char *logits_path, const char *labels_path,
                   kd_error *err);
void kd_logits_free(kd_logits *logits);

/* True when every row lies in [0, 1] and sums to 1 within 1e-3: such rows are
 * probabilities, not logits (softmax of them would be nearly uniform). */
bool kd_logits_look_like_probabilities(const kd_logits *logits);

#ifdef __cplusplus
}
#endif
#endif
