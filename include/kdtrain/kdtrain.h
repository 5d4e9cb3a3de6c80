/* kdtrain.h - the kdtrain library, its one public header (docs/API.md).
 *
 * Open a model that kdtrain trained (a run folder or a checkpoint), compute its logits
 * and its probabilities, calibrated by the temperature `kdtrain calibrate` stored, for
 * rows of features; fit a temperature to the logits and labels of any model, and apply
 * one. Build with: cc prog.c $(pkg-config --cflags --libs kdtrain)
 *
 * Conventions, the same for every function:
 *   - Functions that can fail return 0 (KDTRAIN_OK) or a KDTRAIN_ERR_* code and write a
 *     message into err (err_size bytes, always NUL-terminated, cut short if it does not
 *     fit; err may be NULL). The message names the file, dataset or argument and what
 *     was expected and found. Nothing aborts or exits on bad input.
 *   - Arrays are row-major float32 (labels int32), owned by the caller; the library
 *     keeps no pointer to them after the call returns.
 *   - A kdtrain_model belongs to the caller from kdtrain_open until kdtrain_close. It
 *     is not changed after kdtrain_open: any number of threads may call the functions
 *     taking a `const kdtrain_model *` on the same model at once. The library has no
 *     global mutable state; each call's threads are OpenMP's (OMP_NUM_THREADS, or
 *     omp_set_num_threads on the calling thread).
 */
#ifndef KDTRAIN_KDTRAIN_H
#define KDTRAIN_KDTRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library exports these functions and nothing else. */
#if defined(__GNUC__)
#define KDTRAIN_API __attribute__((visibility("default")))
#else
#define KDTRAIN_API
#endif

/* Status codes. */
#define KDTRAIN_OK 0
#define KDTRAIN_ERR_IO 1       /* a file is missing, unreadable or truncated; memory refused */
#define KDTRAIN_ERR_DATA 2     /* a file or an array is readable but its contents are wrong */
#define KDTRAIN_ERR_ARGUMENT 3 /* an argument is out of range (a NULL array, rows < 0, ...) */
#define KDTRAIN_ERR_LIBRARY 4  /* HDF5 or oneDNN reported a failure */

/* A trained model, opened. Opaque. */
typedef struct kdtrain_model kdtrain_model;

/* The library's version, "MAJOR.MINOR.PATCH" (a static string). */
KDTRAIN_API const char *kdtrain_version(void);

/* Opens a run folder (its model.h5) or a checkpoint written by kdtrain, with every check
 * kdtrain eval makes, and sets *model (NULL on failure; nothing then needs closing).
 * Reading does not change the caller's HDF5 error-printing setting. */
KDTRAIN_API int kdtrain_open(const char *run_or_checkpoint, kdtrain_model **model, char *err, size_t err_size);

/* Frees the model. NULL does nothing. */
KDTRAIN_API void kdtrain_close(kdtrain_model *model);

/* Features per row (the first layer's width) and classes (the last layer's width). */
KDTRAIN_API int kdtrain_inputs(const kdtrain_model *model);
KDTRAIN_API int kdtrain_classes(const kdtrain_model *model);

/* The temperature `kdtrain calibrate` stored in the checkpoint, or 1 when the model was
 * never calibrated (then calibrated and uncalibrated probabilities are the same). */
KDTRAIN_API double kdtrain_temperature(const kdtrain_model *model);

/* logits (rows, classes) of x (rows, inputs), in evaluation mode (no dropout). x holds
 * the features the network sees: a data file's stored values times its x_scale
 * (docs/API.md, "Inputs"). Rows go through the network 256 at a time, as in kdtrain
 * eval: a split's rows from its first give eval --logits' values bit for bit; batched
 * otherwise, a row's logits agree with those to float rounding. Non-finite features are
 * an error naming row and column. rows = 0 does nothing. */
KDTRAIN_API int kdtrain_predict_logits(const kdtrain_model *model, const float *x, int64_t rows, float *logits,
                                       char *err, size_t err_size);

/* probabilities (rows, classes) = softmax(z / T) of the logits z of x, with T =
 * kdtrain_temperature(model) when calibrated, else T = 1 (kdtrain_softmax's rule). */
KDTRAIN_API int kdtrain_predict_probabilities(const kdtrain_model *model, const float *x, int64_t rows,
                                              bool calibrated, float *probabilities, char *err, size_t err_size);

/* probabilities (rows, classes) = softmax(logits / temperature) row by row, worked in
 * double: p_c = exp((z_c - max z) / T) / sum_k exp((z_k - max z) / T), then rounded to
 * float. Logits from any model; temperature finite and > 0; logits finite. */
KDTRAIN_API int kdtrain_softmax(const float *logits, int64_t rows, int classes, double temperature,
                                float *probabilities, char *err, size_t err_size);

/* The temperature T minimising the mean negative log-likelihood of labels (rows) under
 * softmax(logits / T) (rows, classes): kdtrain calibrate's exact fit, T confined to
 * [0.001, 1000]. T = 0.001 means separable logits (every label's logit a largest one,
 * so sharper is always better); T = 1 when the NLL does not depend on T (all logits of
 * every row equal). Logits finite, labels in 0..classes-1, rows >= 1, classes >= 2. */
KDTRAIN_API int kdtrain_fit_temperature(const float *logits, const int32_t *labels, int64_t rows, int classes,
                                        double *temperature, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif
#endif
