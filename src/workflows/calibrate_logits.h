/* calibrate_logits.h - `kdtrain calibrate --logits`: calibration of any model's
 * logits (a file written by kdtrain eval, h5py or numpy.save). Every chosen
 * calibrator is fitted on the fitting file (temperature scaling always, as the
 * baseline the others are compared with) and applied to both files; every metric
 * comes with a bootstrap interval and every calibration error with its noise floor;
 * each method is compared with temperature scaling on the same resamples of the
 * test file (paired bootstrap). Outputs, all or none (staged, then renamed):
 *   calibration.json, calibration.md      the report
 *   reliability-fit-before.svg, reliability-test-before.svg, reliability-test-METHOD.svg
 *   calibrated-test.h5                    /labels, /METHOD/probabilities [N, C] float64 and,
 *                                         for the logit-space methods, /METHOD/logits */
#ifndef KD_CALIBRATE_LOGITS_H
#define KD_CALIBRATE_LOGITS_H

#include "calib/calibrator.h"
#include "calib/reliability.h"
#include "io/fileutil.h"
#include "io/logits.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_calibrate_logits_options {
    const char *fit_logits, *fit_labels;   /* specs (io/logits.h); fit_labels NULL: the default */
    const char *test_logits, *test_labels; /* test_logits NULL: no test file */
    bool probabilities;                    /* the files hold probabilities: take their log */
    unsigned methods;                      /* bit mask of kd_calibrator_kind; temperature is always added */
    kd_reliability_options metrics;        /* bins, bootstrap resamples, noise-floor draws, seed */
    kd_calibrator_options calibrators;
    const char *out_dir;                   /* required */
    bool replace;                          /* an existing report in out_dir may be replaced */
    const char *command;                   /* the command line, for the report's header (may be NULL) */
} kd_calibrate_logits_options;

typedef struct kd_calibrate_logits_method {
    kd_calibrator calibrator;
    kd_reliability fit, test;        /* on the fitting and the test file */
    kd_paired_difference versus_temperature; /* on test (or the fitting file without one): this - temperature;
                                              * not computed for temperature scaling itself */
    int64_t changed_predictions;     /* test rows whose arg max differs from the logits' */
} kd_calibrate_logits_method;

typedef struct kd_calibrate_logits_result {
    int classes;
    int64_t fit_rows, test_rows;     /* test_rows 0: no test file */
    kd_reliability fit_before, test_before;
    int n_methods;
    kd_calibrate_logits_method method[KD_CALIBRATOR_COUNT]; /* temperature first */
    double seconds;
} kd_calibrate_logits_result;

void kd_calibrate_logits_options_default(kd_calibrate_logits_options *o);
/* result is large: allocate it. Free it with kd_calibrate_logits_result_free. */
int kd_calibrate_logits(const kd_calibrate_logits_options *o, kd_calibrate_logits_result *result, kd_error *err);
void kd_calibrate_logits_result_free(kd_calibrate_logits_result *result);

#ifdef __cplusplus
}
#endif
#endif
