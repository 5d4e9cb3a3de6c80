/* svgplot.h - line plots as SVG: several named series of (x, y) points on shared
 * axes, with ticks, a legend, and an optional log scale on x. Enough for the
 * experiments' plots; the output opens in any browser. */
#ifndef KD_SVGPLOT_H
#define KD_SVGPLOT_H

#include "io/strbuf.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_series {
    const char *name;
    const double *x, *y; /* n points; NaN y values are skipped */
    int n;
} kd_series;

typedef struct kd_plot {
    const char *title, *x_label, *y_label;
    bool log_x;
    const kd_series *series;
    int n_series;
} kd_plot;

void kd_plot_svg(const kd_plot *plot, kd_strbuf *svg);

#ifdef __cplusplus
}
#endif
#endif
