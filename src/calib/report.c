/* report.c - see report.h. */
#include "calib/report.h"

#include <math.h>
#include <stdio.h>

/* Plot geometry in SVG user units. */
#define W 440
#define LEFT 60
#define RIGHT 420
#define TOP 64
#define BOTTOM 370          /* of the reliability panel */
#define HIST_TOP 400
#define HIST_BOTTOM 490
#define H 540

static double px(double confidence) { return LEFT + confidence * (RIGHT - LEFT); }
static double py(double accuracy) { return BOTTOM - accuracy * (BOTTOM - TOP); }

void kd_report_reliability_svg(const kd_reliability *r, const char *title, kd_strbuf *s)
{
    int m = r->n_bins;
    kd_strbuf_printf(s,
                     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                     "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                     "<text x=\"%d\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n",
                     W, H, W, H, (LEFT + RIGHT) / 2, title);
    kd_strbuf_printf(s, "<text x=\"%d\" y=\"39\" text-anchor=\"middle\" fill=\"#444\">ECE %.2f%%", (LEFT + RIGHT) / 2,
                     100 * r->value[KD_METRIC_ECE]);
    if (r->bootstrap)
        kd_strbuf_printf(s, " (95%% CI %.2f–%.2f, %d resamples)", 100 * r->low[KD_METRIC_ECE], 100 * r->high[KD_METRIC_ECE],
                         r->bootstrap);
    if (r->noise_draws) kd_strbuf_printf(s, " · noise floor %.2f%%", 100 * r->floor_mean[KD_METRIC_ECE]);
    kd_strbuf_printf(s, "</text>\n<text x=\"%d\" y=\"54\" text-anchor=\"middle\" fill=\"#444\">NLL %.4f · accuracy %.2f%%",
                     (LEFT + RIGHT) / 2, r->value[KD_METRIC_NLL], 100 * r->value[KD_METRIC_ACCURACY]);
    if (isfinite(r->temperature)) kd_strbuf_printf(s, " · T = %.4g", r->temperature);
    kd_strbuf_printf(s, " · %lld samples</text>\n", (long long)r->count);
    /* grid and axes */
    for (int k = 0; k <= 5; k++) {
        double v = k / 5.0;
        kd_strbuf_printf(s, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", px(v), TOP, px(v), BOTTOM);
        kd_strbuf_printf(s, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", LEFT, py(v), RIGHT, py(v));
        kd_strbuf_printf(s, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.1f</text>\n", px(v), HIST_BOTTOM + 16, v);
        kd_strbuf_printf(s, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", LEFT - 6, py(v) + 4, v);
    }
    /* bars: accuracy per bin, and the gap to the bin's mean confidence */
    for (int b = 0; b < m; b++) {
        const kd_calib_bin *bin = &r->bins[b];
        if (!bin->count) continue;
        double acc = bin->correct / (double)bin->count, conf = bin->confidence_sum / (double)bin->count;
        double x0 = px((double)b / m), x1 = px((double)(b + 1) / m);
        kd_strbuf_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4878a8\" stroke=\"white\">"
                            "<title>bin %d: %lld samples, confidence %.3f, accuracy %.3f</title></rect>\n",
                         x0, py(acc), x1 - x0, BOTTOM - py(acc), b + 1, (long long)bin->count, conf, acc);
        double hi = acc > conf ? acc : conf, lo = acc > conf ? conf : acc;
        kd_strbuf_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d04040\" fill-opacity=\"0.35\" "
                            "stroke=\"#d04040\" stroke-width=\"0.5\"/>\n",
                         x0, py(hi), x1 - x0, py(lo) - py(hi));
    }
    kd_strbuf_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" stroke-dasharray=\"5,4\"/>\n",
                     px(0), py(0), px(1), py(1));
    kd_strbuf_printf(s, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#222\"/>\n", LEFT, TOP,
                     RIGHT - LEFT, BOTTOM - TOP);
    kd_strbuf_printf(s, "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\">accuracy</text>\n",
                     (TOP + BOTTOM) / 2, (TOP + BOTTOM) / 2);
    /* histogram of counts */
    int64_t most = 1;
    for (int b = 0; b < m; b++)
        if (r->bins[b].count > most) most = r->bins[b].count;
    for (int b = 0; b < m; b++) {
        double x0 = px((double)b / m), x1 = px((double)(b + 1) / m);
        double h = (double)r->bins[b].count / (double)most * (HIST_BOTTOM - HIST_TOP);
        if (r->bins[b].count)
            kd_strbuf_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#888\" stroke=\"white\"/>\n",
                             x0, HIST_BOTTOM - h, x1 - x0, h);
    }
    kd_strbuf_printf(s, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#222\"/>\n", LEFT,
                     HIST_TOP, RIGHT - LEFT, HIST_BOTTOM - HIST_TOP);
    kd_strbuf_printf(s, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%lld</text>\n", LEFT - 6, HIST_TOP + 10, (long long)most);
    kd_strbuf_printf(s, "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\">samples</text>\n",
                     (HIST_TOP + HIST_BOTTOM) / 2, (HIST_TOP + HIST_BOTTOM) / 2);
    kd_strbuf_printf(s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">confidence (top-label probability)</text>\n",
                     (LEFT + RIGHT) / 2, HIST_BOTTOM + 36);
    kd_strbuf_printf(s, "<g font-size=\"11\"><rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"#4878a8\"/>"
                        "<text x=\"%d\" y=\"%d\">accuracy</text><rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"#d04040\" "
                        "fill-opacity=\"0.35\"/><text x=\"%d\" y=\"%d\">gap to confidence</text></g>\n</svg>\n",
                     LEFT + 8, TOP + 8, LEFT + 22, TOP + 17, LEFT + 90, TOP + 8, LEFT + 104, TOP + 17);
}

void kd_report_reliability_json(kd_json *j, const char *key, const kd_reliability *r)
{
    kd_json_begin_object(j, key);
    kd_json_int(j, "samples", r->count);
    kd_json_int(j, "classes", r->classes);
    kd_json_number(j, "temperature", r->temperature);
    kd_json_int(j, "bootstrap_resamples", r->bootstrap);
    kd_json_int(j, "noise_draws", r->noise_draws);
    kd_json_int(j, "seed", (int64_t)r->seed);
    /* each metric NAME, with NAME_ci_low/high (95 %) and NAME_floor_mean/p95 where drawn */
    char name[64];
    for (int m = 0; m < KD_METRIC_COUNT; m++) {
        const char *base = kd_metric_name((kd_metric)m);
        kd_json_number(j, base, r->value[m]);
        if (r->bootstrap) {
            snprintf(name, sizeof name, "%s_ci_low", base);
            kd_json_number(j, name, r->low[m]);
            snprintf(name, sizeof name, "%s_ci_high", base);
            kd_json_number(j, name, r->high[m]);
        }
        if (r->noise_draws && kd_metric_is_calibration_error((kd_metric)m)) {
            snprintf(name, sizeof name, "%s_floor_mean", base);
            kd_json_number(j, name, r->floor_mean[m]);
            snprintf(name, sizeof name, "%s_floor_p95", base);
            kd_json_number(j, name, r->floor_high[m]);
        }
    }
    kd_json_int(j, "bins", r->n_bins);
    kd_json_begin_array(j, "equal_width_bins");
    for (int b = 0; b < r->n_bins; b++) {
        const kd_calib_bin *bin = &r->bins[b];
        kd_json_begin_object(j, NULL);
        kd_json_number(j, "lower", (double)b / r->n_bins);
        kd_json_number(j, "upper", (double)(b + 1) / r->n_bins);
        kd_json_int(j, "count", bin->count);
        kd_json_number(j, "mean_confidence", bin->count ? bin->confidence_sum / (double)bin->count : NAN);
        kd_json_number(j, "accuracy", bin->count ? bin->correct / (double)bin->count : NAN);
        kd_json_end_object(j);
    }
    kd_json_end_array(j);
    kd_json_begin_array(j, "equal_mass_bins");
    for (int b = 0; b < r->n_bins; b++) {
        const kd_calib_bin *bin = &r->equal_mass[b];
        kd_json_begin_object(j, NULL);
        kd_json_number(j, "max_confidence", r->equal_mass_upper[b]);
        kd_json_int(j, "count", bin->count);
        kd_json_number(j, "mean_confidence", bin->count ? bin->confidence_sum / (double)bin->count : NAN);
        kd_json_number(j, "accuracy", bin->count ? bin->correct / (double)bin->count : NAN);
        kd_json_end_object(j);
    }
    kd_json_end_array(j);
    kd_json_end_object(j);
}
