/* sweep.h - `kdtrain sweep`: the overfitting diagnostic. Trains every run of a
 * pipeline-format INI (usually with train.temperature_every = 1, so each epoch fits
 * the temperature the model needs on validation and measures its training accuracy
 * in evaluation mode), then writes, into the output folder, sweep.csv (one row per
 * run and diagnosed epoch), SVG plots against epoch of the fitted T, the validation
 * NLL and the train-validation accuracy gap, and summary.md with the correlation
 * between the gap and T. */
#ifndef KD_SWEEP_H
#define KD_SWEEP_H

#include "workflows/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

int kd_sweep_run(const kd_pipeline *p, bool quiet, kd_comm *comm, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
