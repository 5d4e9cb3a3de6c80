/* export.h - `kdtrain export` as a library call: a trained model (run folder or
 * checkpoint, opened with kd_model_open) written as a standard ONNX file
 * (io/onnx.h; docs/EXPORT.md), optionally with the model's fitted temperature folded
 * into the last layer, a Softmax appended, or the data set's x_scale put in front so
 * that stored values (uint8 pixels as floats 0..255) can be fed.
 *
 * The file is written to PATH.tmp-PID and renamed into place: a failure leaves the
 * path as it was. It never replaces the checkpoint or the data set being read, nor
 * an existing file unless replace; its folder must exist. */
#ifndef KD_EXPORT_H
#define KD_EXPORT_H

#include "core/error.h"
#include "io/fileutil.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_export_request {
    const char *model;        /* a run folder or a checkpoint */
    const char *onnx_out;     /* the .onnx file to write */
    bool fold_temperature;    /* divide the last layer by the model's fitted T (an error when it has none) */
    bool probabilities;       /* append Softmax: output "probabilities" instead of "logits" */
    bool raw_input;           /* multiply the input by the data set's x_scale inside the graph */
    const char *data;         /* raw_input's data set; NULL: the one the run's config names */
    bool replace;             /* an existing onnx_out may be replaced (--force) */
} kd_export_request;

typedef struct kd_export_result {
    char checkpoint[KD_PATH_MAX]; /* the file read */
    char architecture[256];       /* "784-1200-10" */
    double temperature;           /* the T folded in; 1 when none was */
    double x_scale;               /* the scale put in front (raw_input), else 0 */
    size_t bytes;                 /* the size of the file written */
} kd_export_result;

int kd_export_onnx(const kd_export_request *request, kd_export_result *result, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
