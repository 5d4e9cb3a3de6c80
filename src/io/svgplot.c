/* svgplot.c - see svgplot.h. */
#include "io/svgplot.h"

#include <math.h>

#define W 640
#define H 420
#define LEFT 70
#define RIGHT 470 /* the legend sits to the right */
#define TOP 40
#define BOTTOM 360

static const char *colours[] = {"#4878a8", "#d04040", "#50a050", "#e08020", "#8050b0", "#40a0a0",
                                "#a06040", "#d050a0", "#707070", "#b0b020", "#2040d0", "#20b080"};

/* A "nice" tick step for a span: 1, 2 or 5 times a power of ten. */
static double tick_step(double span)
{
    double raw = span / 5, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

void kd_plot_svg(const kd_plot *p, kd_strbuf *s)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < p->n_series; k++)
        for (int i = 0; i < p->series[k].n; i++) {
            double x = p->series[k].x[i], y = p->series[k].y[i];
            if (!isfinite(y) || !isfinite(x) || (p->log_x && x <= 0)) continue;
            if (p->log_x) x = log10(x);
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (!(x1 >= x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 == x0) x0 -= 0.5, x1 += 0.5;
    if (y1 == y0) y0 -= 0.5, y1 += 0.5;
    double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    kd_strbuf_printf(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                        "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                        "<text x=\"%d\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n",
                     W, H, W, H, (LEFT + RIGHT) / 2, p->title);
#define PX(x) (LEFT + ((x) - x0) / (x1 - x0) * (RIGHT - LEFT))
#define PY(y) (BOTTOM - ((y) - y0) / (y1 - y0) * (BOTTOM - TOP))
    double ys = tick_step(y1 - y0);
    for (double y = ceil(y0 / ys) * ys; y <= y1 + 1e-12; y += ys) {
        kd_strbuf_printf(s, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", LEFT, PY(y), RIGHT, PY(y));
        kd_strbuf_printf(s, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", LEFT - 6, PY(y) + 4,
                         fabs(y) < 1e-12 ? 0.0 : y);
    }
    if (p->log_x) {
        for (double e = floor(x0); e <= ceil(x1); e += 1)
            for (int m = 1; m < 10; m++) {
                double x = e + log10((double)m);
                if (x < x0 - 1e-12 || x > x1 + 1e-12) continue;
                kd_strbuf_printf(s, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#%s\"/>\n", PX(x), TOP, PX(x),
                                 BOTTOM, m == 1 ? "ddd" : "f3f3f3");
                if (m == 1 || m == 2 || m == 5)
                    kd_strbuf_printf(s, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", PX(x), BOTTOM + 16,
                                     pow(10, x));
            }
    } else {
        double xs = tick_step(x1 - x0);
        for (double x = ceil(x0 / xs) * xs; x <= x1 + 1e-12; x += xs) {
            kd_strbuf_printf(s, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", PX(x), TOP, PX(x), BOTTOM);
            kd_strbuf_printf(s, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", PX(x), BOTTOM + 16, x);
        }
    }
    kd_strbuf_printf(s, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#222\"/>\n", LEFT, TOP,
                     RIGHT - LEFT, BOTTOM - TOP);
    kd_strbuf_printf(s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", (LEFT + RIGHT) / 2, BOTTOM + 38, p->x_label);
    kd_strbuf_printf(s, "<text x=\"18\" y=\"%d\" transform=\"rotate(-90 18 %d)\" text-anchor=\"middle\">%s</text>\n",
                     (TOP + BOTTOM) / 2, (TOP + BOTTOM) / 2, p->y_label);
    for (int k = 0; k < p->n_series; k++) {
        const kd_series *ser = &p->series[k];
        const char *colour = colours[k % (int)(sizeof colours / sizeof colours[0])];
        kd_strbuf_printf(s, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", colour);
        for (int i = 0; i < ser->n; i++) {
            double x = ser->x[i], y = ser->y[i];
            if (!isfinite(y) || (p->log_x && x <= 0)) continue;
            if (p->log_x) x = log10(x);
            kd_strbuf_printf(s, "%.1f,%.1f ", PX(x), PY(y));
        }
        kd_strbuf_printf(s, "\"/>\n");
        for (int i = 0; i < ser->n; i++) {
            double x = ser->x[i], y = ser->y[i];
            if (!isfinite(y) || (p->log_x && x <= 0)) continue;
            if (p->log_x) x = log10(x);
            kd_strbuf_printf(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>%s: %g, %g</title></circle>\n",
                             PX(x), PY(y), colour, ser->name, ser->x[i], ser->y[i]);
        }
        int ly = TOP + 8 + 18 * k;
        kd_strbuf_printf(s, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>"
                            "<text x=\"%d\" y=\"%d\">%s</text>\n",
                         RIGHT + 14, ly, RIGHT + 34, ly, colour, RIGHT + 40, ly + 4, ser->name);
    }
#undef PX
#undef PY
    kd_strbuf_printf(s, "</svg>\n");
}
