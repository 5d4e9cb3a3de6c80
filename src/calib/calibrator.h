/* calibrator.h - one interface over every post-hoc calibrator kdtrain fits: fit on
 * (logits, labels) of a split, apply to logits giving probabilities (and calibrated
 * logits where the method has them), report the parameters and the objective
 * reached. The methods themselves live in their own modules:
 *
 *   temperature        one T, exact fit of NLL (temperature.h)
 *   vector, matrix,    u = w * x + b, u = W x + b on the logits, and the same on
 *   dirichlet          log-probabilities, ODIR-regularised, strength by CV (scaling.h)
 *   histogram,         one-vs-rest per class on softmax probabilities, renormalised
 *   isotonic,          (binning.h)
 *   scaling-binning
 *   ets                ensemble temperature scaling (ensemble_temperature.h)
 *
 * The table in calibrator.c says for each whether it can move the arg max (every
 * method but temperature scaling and ETS can) and whether it yields logits. */
#ifndef KD_CALIBRATOR_H
#define KD_CALIBRATOR_H

#include "calib/binning.h"
#include "calib/ensemble_temperature.h"
#include "calib/scaling.h"
#include "calib/temperature.h"
#include "core/error.h"
#include "io/json.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_calibrator_kind {
    KD_CALIBRATOR_TEMPERATURE,
    KD_CALIBRATOR_VECTOR,
    KD_CALIBRATOR_MATRIX,
    KD_CALIBRATOR_DIRICHLET,
    KD_CALIBRATOR_HISTOGRAM,
    KD_CALIBRATOR_ISOTONIC,
    KD_CALIBRATOR_SCALING_BINNING,
    KD_CALIBRATOR_ETS,
    KD_CALIBRATOR_COUNT
} kd_calibrator_kind;

typedef struct kd_calibrator_options {
    kd_scaling_options scaling; /* folds, strength grid, seed, tolerance */
    kd_binning_options binning; /* bins, seed */
} kd_calibrator_options;

typedef struct kd_calibrator {
    kd_calibrator_kind kind;
    int classes;
    kd_temperature_fit temperature; /* KD_CALIBRATOR_TEMPERATURE */
    kd_scaling scaling;             /* vector, matrix, dirichlet */
    kd_binning binning;             /* histogram, isotonic, scaling-binning */
    kd_ets ets;                     /* ETS */
    double seconds;                 /* wall time of the fit */
} kd_calibrator;

void kd_calibrator_options_default(kd_calibrator_options *o);
const char *kd_calibrator_name(kd_calibrator_kind kind);
/* A one-line description for reports ("matrix scaling on logits, ODIR"). */
const char *kd_calibrator_describe(kd_calibrator_kind kind);
bool kd_calibrator_parse(const char *name, kd_calibrator_kind *kind);
/* "temperature,vector" or "all" into a bit mask of kinds; false with err naming the
 * unknown entry. */
bool kd_calibrator_parse_list(const char *text, unsigned *mask, kd_error *err);
/* The arg max of the output is the arg max of the logits for any input. */
bool kd_calibrator_keeps_prediction(kd_calibrator_kind kind);
/* The method's output is softmax of calibrated logits (which apply can return). */
bool kd_calibrator_has_logits(kd_calibrator_kind kind);

int kd_calibrator_fit(kd_calibrator *c, kd_calibrator_kind kind, const float *logits, const int32_t *labels, int64_t n,
                      int classes, const kd_calibrator_options *o, kd_error *err);
/* probs (n, classes), rows summing to 1; logits_out (n, classes) or NULL, filled only
 * when kd_calibrator_has_logits. */
void kd_calibrator_apply(const kd_calibrator *c, const float *logits, int64_t n, double *probs, double *logits_out);
/* Free parameters of the fitted calibrator (T: 1; vector: 2C; matrix: C^2 + C; ...). */
int64_t kd_calibrator_parameter_count(const kd_calibrator *c);
/* The objective the fit minimised, at its end, and its name ("NLL", "NLL + ODIR
 * penalty", "squared error"). */
double kd_calibrator_objective(const kd_calibrator *c, const char **name);
/* Every parameter and the fit's record as a JSON object under key. */
void kd_calibrator_json(kd_json *j, const char *key, const kd_calibrator *c);
void kd_calibrator_free(kd_calibrator *c);

#ifdef __cplusplus
}
#endif
#endif
