/* report.h - calibration reports: a reliability diagram as SVG (accuracy against
 * confidence per bin with the gap to the diagonal shaded, and the sample count per
 * bin below), and the JSON and Markdown of a temperature fit with its metrics
 * before and after scaling. */
#ifndef KD_REPORT_H
#define KD_REPORT_H

#include "calib/reliability.h"
#include "calib/temperature.h"
#include "io/json.h"
#include "io/strbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

void kd_reliability_svg(const kd_reliability *r, const char *title, kd_strbuf *svg);
/* A JSON object named key with every number of r, every bin included. */
void kd_reliability_json(kd_json *j, const char *key, const kd_reliability *r);

#ifdef __cplusplus
}
#endif
#endif
