/* calibrate.h - `kdtrain calibrate` as a library call: a checkpoint's logits on the
 * fitting split (validation by default) and on the test split, the exact
 * temperature fit, the metrics before and after scaling on both, the reports
 * (calibration.json, calibration.md, four reliability diagrams) and the fitted
 * temperature stored in the checkpoint's /calibration group (atomically). */
#ifndef KD_CALIBRATE_H
#define KD_CALIBRATE_H

#include "calib/reliability.h"
#include "calib/temperature.h"
#include "data/dataset.h"
#include "io/fileutil.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The CLI's defaults, also what `kdtrain run` reports with. */
#define KD_CALIBRATE_DEFAULT_BOOTSTRAP 1000
#define KD_CALIBRATE_DEFAULT_NOISE_DRAWS 200

typedef struct kd_calibrate_options {
    const char *model;      /* a checkpoint or a run folder */
    const char *data;       /* NULL: the data set named in the checkpoint's config */
    kd_split split;         /* where T is fitted (default validation) */
    int bins;               /* equal-width and equal-mass bins (default 15) */
    int bootstrap;          /* resamples for every metric's interval (default 1000; 0 none) */
    int noise_draws;        /* label draws for the calibration errors' noise floors (default 200; 0 none) */
    uint64_t seed;          /* of the bootstrap and the noise draws */
    const char *out_dir;    /* NULL: the checkpoint's folder */
    bool store;             /* write T into the checkpoint */
} kd_calibrate_options;

typedef struct kd_calibrate_result {
    kd_temperature_fit fit;
    bool has_test;                  /* the data set has a test split (other than the fitting split) */
    kd_reliability fit_before, fit_after, test_before, test_after;
    char checkpoint[KD_PATH_MAX];
    char report_dir[KD_PATH_MAX];
    double seconds_fit, seconds_report;
} kd_calibrate_result;

void kd_calibrate_options_default(kd_calibrate_options *options);
int kd_calibrate(const kd_calibrate_options *options, kd_calibrate_result *result, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
