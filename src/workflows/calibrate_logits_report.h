/* calibrate_logits_report.h - the text of `kdtrain calibrate --logits`'s report:
 * calibration.md (the methods, the metrics on the test file with their intervals
 * and noise floors, each method against temperature scaling, the diagrams) and
 * calibration.json (every number). Called by calibrate_logits.c only. */
#ifndef KD_CALIBRATE_LOGITS_REPORT_H
#define KD_CALIBRATE_LOGITS_REPORT_H

#include "io/strbuf.h"
#include "workflows/calibrate_logits.h"

/* test NULL: no test file (the methods are compared on the fitting file). */
void kd_calibrate_logits_report(const kd_calibrate_logits_options *o, const kd_calibrate_logits_result *res,
                                const kd_logits *fit, const kd_logits *test, kd_strbuf *md, kd_strbuf *json);

#endif
