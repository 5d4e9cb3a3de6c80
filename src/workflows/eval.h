/* eval.h - `kdtrain eval` as a library call: a trained model on one split of its
 * data set: accuracy, NLL, Brier, ECE and MCE, per-class accuracy and the confusion
 * matrix as JSON (written atomically), and optionally every logit as HDF5 (/logits
 * [N, C] float32 before any temperature, /labels [N] int32: what io/logits.h reads).
 * The stored calibration temperature is applied unless no_temperature (accuracy
 * does not change; NLL, Brier and ECE do).
 * Outputs never replace the checkpoint or the data set being read; json_out and
 * logits_out replace existing files only when replace; the default JSON (kdtrain's
 * own report beside the checkpoint) is replaced. A failure writes neither file. */
#ifndef KD_EVAL_H
#define KD_EVAL_H

#include "calib/metrics.h"
#include "core/error.h"
#include "data/dataset.h"
#include "io/fileutil.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_eval_request {
    const char *model;       /* a run folder or a checkpoint */
    const char *data;        /* NULL: the data set the run's config names */
    kd_split split;
    int bins;                /* equal-width ECE bins */
    bool no_temperature;     /* evaluate at T = 1 even when the model is calibrated */
    const char *json_out;    /* NULL: eval-SPLIT.json beside the checkpoint */
    const char *logits_out;  /* NULL: no logits file */
    bool replace;            /* json_out and logits_out may replace existing files (--force) */
} kd_eval_request;

typedef struct kd_eval_result {
    char checkpoint[KD_PATH_MAX], data[KD_PATH_MAX], json_path[KD_PATH_MAX];
    double temperature;      /* the T the metrics were computed at */
    kd_metrics_summary summary;
} kd_eval_result;

int kd_eval_run(const kd_eval_request *request, kd_eval_result *result, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
