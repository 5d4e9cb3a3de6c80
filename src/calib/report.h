/* report.h - the pieces of a calibration report: a reliability diagram as SVG
 * (accuracy against confidence per bin with the gap to the diagonal shaded, and the
 * sample count per bin below) and a kd_reliability as a JSON object. The reports
 * themselves (calibration.json, calibration.md) are put together by
 * workflows/calibrate.c. */
#ifndef KD_REPORT_H
#define KD_REPORT_H

#include "calib/reliability.h"
#include "calib/temperature.h"
#include "io/json.h"
#include "io/strbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

void kd_report_reliability_svg(const kd_reliability *r, const char *title, kd_strbuf *svg);
/* A JSON object named key with every number of r, every bin included. */
void kd_report_reliability_json(kd_json *j, const char *key, const kd_reliability *r);

#ifdef __cplusplus
}
#endif
#endif
