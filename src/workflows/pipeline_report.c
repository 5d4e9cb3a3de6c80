/* pipeline_report.c - the summary of a pipeline: summary.md (tables over seeds,
 * paired differences with a plain verdict, reliability diagrams) and summary.csv. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/pipeline_internal.h"

#include "core/timer.h"

#include "calib/temperature.h"
#include "io/fileutil.h"
#include "io/provenance.h"
#include "io/strbuf.h"
#include "io/svgplot.h"
#include "workflows/calibrate.h"
#include "workflows/config.h"
#include "workflows/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *header =
    "| run | architecture | parameters | val accuracy % | test accuracy % | per seed | NLL | ECE % | T (fitted on val) | NLL at T | ECE % at T | s/epoch |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n";

static void model_row(kd_strbuf *t, const char *label, const model_result *r)
{
    kd_strbuf_printf(t, "| %s | %s | %zu | %.2f | %.2f | | %.4f | %.2f [%.2f, %.2f] | %.3f | %.4f | %.2f [%.2f, %.2f] | %.2f |\n", label,
                     r->arch, r->params, 100 * r->val_acc, 100 * r->acc, r->nll, 100 * r->ece, 100 * r->ece_low, 100 * r->ece_high,
                     r->temperature, r->nll_scaled, 100 * r->ece_scaled, 100 * r->ece_scaled_low, 100 * r->ece_scaled_high,
                     r->epoch_seconds);
}

typedef double (*field_fn)(const model_result *);
static double f_acc(const model_result *r) { return 100 * r->acc; }
static double f_nll(const model_result *r) { return r->nll; }
static double f_ece(const model_result *r) { return 100 * r->ece; }
static double f_t(const model_result *r) { return r->temperature; }
static double f_nll_t(const model_result *r) { return r->nll_scaled; }
static double f_ece_t(const model_result *r) { return 100 * r->ece_scaled; }
static double f_sec(const model_result *r) { return r->epoch_seconds; }
static double f_val_acc(const model_result *r) { return 100 * r->val_acc; }

static kd_stat over_seeds(const pipe_state *s, int ri, int k, field_fn f)
{
    double v[KD_PIPE_MAX_SEEDS];
    for (int i = 0; i < s->p->n_seeds; i++) v[i] = f(&s->results[ri][k][i]);
    return kd_stat_of(v, s->p->n_seeds);
}

static kd_stat paired(const pipe_state *s, int ri, int b, int a, field_fn f)
{
    double va[KD_PIPE_MAX_SEEDS], vb[KD_PIPE_MAX_SEEDS];
    for (int i = 0; i < s->p->n_seeds; i++) {
        va[i] = f(&s->results[ri][a][i]);
        vb[i] = f(&s->results[ri][b][i]);
    }
    return kd_stat_paired(va, vb, s->p->n_seeds);
}

/* "alone overconfident (T > 1 for 3 of 3 seeds)": when every seed's fitted T is on the
 * same side of 1, that side's word (kd_temperature_describe); seeds on both sides "mixed". */
static void direction_of_run(kd_strbuf *t, const pipe_state *s, int ri, int k)
{
    int n = s->p->n_seeds, over = 0;
    const char *word = kd_temperature_describe(s->results[ri][k][0].temperature);
    for (int i = 0; i < n; i++) {
        double temperature = s->results[ri][k][i].temperature;
        over += temperature > 1;
        if (strcmp(kd_temperature_describe(temperature), word) != 0) word = "mixed";
    }
    kd_strbuf_printf(t, "%s %s (T > 1 for %d of %d seeds)", s->p->regimes[ri].runs[k].name, word, over, n);
}

/* What the sign of T - 1 says, for the runs of a regime (and its own teacher). */
static void regime_directions(kd_strbuf *t, const pipe_state *s, int ri)
{
    const kd_pipeline_regime *r = &s->p->regimes[ri];
    kd_strbuf_printf(t, "\nFitted T against 1 (T > 1: the logits had to be divided by T to soften them, so the model was "
                        "overconfident on validation; T < 1: underconfident): ");
    if (r->teacher.config[0])
        kd_strbuf_printf(t, "teacher of this regime %s (T = %.3f); ", kd_temperature_describe(s->regime_teacher[ri].temperature),
                         s->regime_teacher[ri].temperature);
    for (int k = 0; k < r->n_runs; k++) {
        if (k) kd_strbuf_printf(t, "; ");
        direction_of_run(t, s, ri, k);
    }
    kd_strbuf_printf(t, ".\n");
}

static void regime_report(kd_strbuf *t, const pipe_state *s, int ri)
{
    const kd_pipeline *p = s->p;
    const kd_pipeline_regime *r = &p->regimes[ri];
    int n = p->n_seeds;
    kd_strbuf_printf(t, "\n## %s\n\n", r->title[0] ? r->title : r->id);
    if (r->note[0]) kd_strbuf_printf(t, "%s\n\n", r->note);
    kd_strbuf_printf(t, "%s", header);
    if (r->teacher.config[0]) model_row(t, "teacher of this regime", &s->regime_teacher[ri]);
    for (int k = 0; k < r->n_runs; k++) {
        kd_stat a = over_seeds(s, ri, k, f_acc), l = over_seeds(s, ri, k, f_nll), e = over_seeds(s, ri, k, f_ece);
        kd_stat tt = over_seeds(s, ri, k, f_t), lt = over_seeds(s, ri, k, f_nll_t), et = over_seeds(s, ri, k, f_ece_t);
        kd_stat va = over_seeds(s, ri, k, f_val_acc);
        kd_strbuf_printf(t, "| %s (%s) | %s | %zu | %.2f ± %.2f | %.2f ± %.2f | ", r->runs[k].name,
                         r->runs[k].distill ? "distilled" : "alone", s->results[ri][k][0].arch, s->results[ri][k][0].params,
                         va.mean, va.sd, a.mean, a.sd);
        for (int i = 0; i < n; i++) kd_strbuf_printf(t, "%s%.2f", i ? " / " : "", f_acc(&s->results[ri][k][i]));
        kd_strbuf_printf(t, " | %.4f ± %.4f | %.2f ± %.2f | %.3f ± %.3f | %.4f ± %.4f | %.2f ± %.2f | %.2f |\n", l.mean, l.sd,
                         e.mean, e.sd, tt.mean, tt.sd, lt.mean, lt.sd, et.mean, et.sd, over_seeds(s, ri, k, f_sec).mean);
    }
    regime_directions(t, s, ri);
    if (r->n_compare) {
        kd_strbuf_printf(t, "\nPaired by seed (the same initial weights and batch order), B − A, mean ± sd over %d seeds:\n\n"
                            "| B − A | Δ accuracy, points | per seed | Δ NLL | Δ ECE, points | Δ NLL at T | Δ ECE at T, points |\n"
                            "|---|---|---|---|---|---|---|\n",
                         n);
        for (int k = 0; k < r->n_compare; k++) {
            int b = kd_pipeline_find_run(r, r->compare[k][0]), a = kd_pipeline_find_run(r, r->compare[k][1]);
            kd_stat d = paired(s, ri, b, a, f_acc), dl = paired(s, ri, b, a, f_nll), de = paired(s, ri, b, a, f_ece);
            kd_stat dlt = paired(s, ri, b, a, f_nll_t), det = paired(s, ri, b, a, f_ece_t);
            kd_strbuf_printf(t, "| %s − %s | %+.2f ± %.2f | ", r->compare[k][0], r->compare[k][1], d.mean, d.sd);
            for (int i = 0; i < n; i++)
                kd_strbuf_printf(t, "%s%+.2f", i ? " / " : "", f_acc(&s->results[ri][b][i]) - f_acc(&s->results[ri][a][i]));
            kd_strbuf_printf(t, " | %+.4f ± %.4f | %+.2f ± %.2f | %+.4f ± %.4f | %+.2f ± %.2f |\n", dl.mean, dl.sd, de.mean,
                             de.sd, dlt.mean, dlt.sd, det.mean, det.sd);
        }
        double critical = kd_stat_t_critical(n - 1);
        if (critical == critical) /* not NaN: 2 to 16 seeds */
            kd_strbuf_printf(t, "\nVerdicts: a two-sided paired t-test of the mean difference at 95 %%, beyond seed noise when "
                                "|t| > %.3f (%d degree%s of freedom), within seed noise otherwise.\n",
                             critical, n - 1, n == 2 ? "" : "s");
        kd_strbuf_printf(t, "\n");
        for (int k = 0; k < r->n_compare; k++) {
            int b = kd_pipeline_find_run(r, r->compare[k][0]), a = kd_pipeline_find_run(r, r->compare[k][1]);
            kd_stat d = paired(s, ri, b, a, f_acc), de = paired(s, ri, b, a, f_ece), dl = paired(s, ri, b, a, f_nll);
            kd_stat dlt = paired(s, ri, b, a, f_nll_t), det = paired(s, ri, b, a, f_ece_t);
            double tv, tl, te, tlt, tet;
            const char *v = kd_stat_verdict(d, &tv), *vl = kd_stat_verdict(dl, &tl), *ve = kd_stat_verdict(de, &te);
            const char *vlt = kd_stat_verdict(dlt, &tlt), *vet = kd_stat_verdict(det, &tet);
            kd_strbuf_printf(t, "* **%s − %s**: accuracy %+.2f ± %.2f points (paired t = %.2f over %d seeds): %s. "
                                "NLL %+.4f (%s), ECE %+.2f points (%s); after one temperature each, NLL differs by %+.4f (%s) "
                                "and ECE by %+.2f points (%s).\n",
                             r->compare[k][0], r->compare[k][1], d.mean, d.sd, tv, n, v, dl.mean, vl, de.mean, ve, dlt.mean, vlt,
                             det.mean, vet);
        }
    }
    kd_strbuf_printf(t, "\nReliability on the test split, seed %llu, before and after temperature scaling:\n\n| run | before | after |\n|---|---|---|\n",
                     (unsigned long long)p->seeds[0]);
    for (int k = 0; k < r->n_runs; k++)
        kd_strbuf_printf(t, "| %s | ![](diagrams/%s-%s-before.svg) | ![](diagrams/%s-%s-after.svg) |\n", r->runs[k].name, r->id,
                         r->runs[k].name, r->id, r->runs[k].name);
}

/* The value of a numeric config key for a run: its config file, then its overrides. */
static bool run_value(const kd_pipeline_spec *spec, const char *key, double *value)
{
    kd_config *c = malloc(sizeof *c);
    bool ok = c != NULL;
    if (ok) {
        kd_config_defaults(c);
        ok = kd_config_load_file(c, spec->config, NULL) == KD_OK;
        for (int i = 0; ok && i < spec->n_sets; i++) ok = kd_config_set(c, spec->sets[i], NULL) == KD_OK;
        ok = ok && kd_config_get_number(c, key, value);
    }
    free(c);
    return ok;
}

/* OUT/ID-NAME.svg: a metric (mean over seeds) against plot_x, a line per plot_series value. */
static int regime_plot(const pipe_state *s, int ri, const char *name, const char *y_label, field_fn f, kd_error *err)
{
    const kd_pipeline_regime *r = &s->p->regimes[ri];
    double xs[KD_PIPE_MAX_RUNS], group[KD_PIPE_MAX_RUNS], ys[KD_PIPE_MAX_RUNS][KD_PIPE_MAX_RUNS];
    double px[KD_PIPE_MAX_RUNS][KD_PIPE_MAX_RUNS];
    int counts[KD_PIPE_MAX_RUNS] = {0}, n_groups = 0;
    char names[KD_PIPE_MAX_RUNS][96];
    kd_series series[KD_PIPE_MAX_RUNS];
    for (int k = 0; k < r->n_runs; k++) {
        double g = 0;
        if (!run_value(&r->runs[k], r->plot_x, &xs[k])) continue;
        if (r->plot_series[0] && !run_value(&r->runs[k], r->plot_series, &g)) continue;
        if (r->plot_series[0] && !r->runs[k].distill) continue; /* a plain run has no distillation setting */
        int gi = 0;
        while (gi < n_groups && group[gi] != g) gi++;
        if (gi == n_groups) {
            group[n_groups] = g;
            snprintf(names[n_groups], sizeof names[0], "%s = %g", r->plot_series[0] ? r->plot_series : "runs", g);
            n_groups++;
        }
        int at = counts[gi]++; /* insertion by x */
        double y = over_seeds(s, ri, k, f).mean;
        while (at > 0 && px[gi][at - 1] > xs[k]) {
            px[gi][at] = px[gi][at - 1];
            ys[gi][at] = ys[gi][at - 1];
            at--;
        }
        px[gi][at] = xs[k];
        ys[gi][at] = y;
    }
    for (int g = 0; g < n_groups; g++) series[g] = (kd_series){names[g], px[g], ys[g], counts[g]};
    char title[256], file[160];
    snprintf(title, sizeof title, "%s against %s", y_label, r->plot_x);
    kd_plot plot = {.title = title, .x_label = r->plot_x, .y_label = y_label, .log_x = true, .series = series,
                    .n_series = n_groups};
    kd_strbuf svg = {0};
    kd_plot_svg(&plot, &svg);
    snprintf(file, sizeof file, "%s-%s.svg", r->id, name);
    int rc = svg.failed ? kd_error_set(err, KD_ERR_IO, "out of memory") : kd_file_write_atomic_in(s->p->out_dir, file, svg.text, svg.length, err);
    kd_strbuf_free(&svg);
    return rc;
}

/* Distillation or one temperature? The student alone and distilled, each without
 * and with a temperature fitted on validation, and a plain answer from paired t-tests
 * of the alone student at its T against the distilled student without one. */
static void vs_temperature(kd_strbuf *t, const pipe_state *s, int ri)
{
    const kd_pipeline_regime *r = &s->p->regimes[ri];
    if (!r->vs_temperature[0][0]) return;
    int d = kd_pipeline_find_run(r, r->vs_temperature[0]), a = kd_pipeline_find_run(r, r->vs_temperature[1]), n = s->p->n_seeds;
    const model_result *d1 = &s->results[ri][d][0], *a1 = &s->results[ri][a][0];
    kd_stat acc_a = over_seeds(s, ri, a, f_acc), acc_d = over_seeds(s, ri, d, f_acc);
    kd_stat nll_a = over_seeds(s, ri, a, f_nll), nll_at = over_seeds(s, ri, a, f_nll_t), nll_d = over_seeds(s, ri, d, f_nll),
            nll_dt = over_seeds(s, ri, d, f_nll_t);
    kd_stat ece_a = over_seeds(s, ri, a, f_ece), ece_at = over_seeds(s, ri, a, f_ece_t), ece_d = over_seeds(s, ri, d, f_ece),
            ece_dt = over_seeds(s, ri, d, f_ece_t);
    kd_strbuf_printf(t, "\n### Distillation or one temperature?\n\nTest split, mean ± sd over %d seeds; the bracket is the 95 %% "
                        "bootstrap interval of the seed-%llu model's ECE.\n\n"
                        "| model | accuracy %% | NLL | ECE %% |\n|---|---|---|---|\n",
                     n, (unsigned long long)s->p->seeds[0]);
    kd_strbuf_printf(t, "| %s, no temperature | %.2f ± %.2f | %.4f ± %.4f | %.2f ± %.2f [%.2f, %.2f] |\n", r->vs_temperature[1], acc_a.mean,
                     acc_a.sd, nll_a.mean, nll_a.sd, ece_a.mean, ece_a.sd, 100 * a1->ece_low, 100 * a1->ece_high);
    kd_strbuf_printf(t, "| %s + one temperature | %.2f ± %.2f | %.4f ± %.4f | %.2f ± %.2f [%.2f, %.2f] |\n", r->vs_temperature[1],
                     acc_a.mean, acc_a.sd, nll_at.mean, nll_at.sd, ece_at.mean, ece_at.sd, 100 * a1->ece_scaled_low,
                     100 * a1->ece_scaled_high);
    kd_strbuf_printf(t, "| %s, no temperature | %.2f ± %.2f | %.4f ± %.4f | %.2f ± %.2f [%.2f, %.2f] |\n", r->vs_temperature[0], acc_d.mean,
                     acc_d.sd, nll_d.mean, nll_d.sd, ece_d.mean, ece_d.sd, 100 * d1->ece_low, 100 * d1->ece_high);
    kd_strbuf_printf(t, "| %s + one temperature | %.2f ± %.2f | %.4f ± %.4f | %.2f ± %.2f [%.2f, %.2f] |\n", r->vs_temperature[0],
                     acc_d.mean, acc_d.sd, nll_dt.mean, nll_dt.sd, ece_dt.mean, ece_dt.sd, 100 * d1->ece_scaled_low,
                     100 * d1->ece_scaled_high);
    /* alone at its T (A) against distilled without one (B), paired by seed */
    double xa[KD_PIPE_MAX_SEEDS], xb[KD_PIPE_MAX_SEEDS], ea[KD_PIPE_MAX_SEEDS], eb[KD_PIPE_MAX_SEEDS];
    for (int i = 0; i < n; i++) {
        xa[i] = f_nll_t(&s->results[ri][a][i]);
        xb[i] = f_nll(&s->results[ri][d][i]);
        ea[i] = f_ece_t(&s->results[ri][a][i]);
        eb[i] = f_ece(&s->results[ri][d][i]);
    }
    kd_stat dn = kd_stat_paired(xa, xb, n), de = kd_stat_paired(ea, eb, n);
    double tn, te;
    const char *vn = kd_stat_verdict(dn, &tn), *ve = kd_stat_verdict(de, &te);
    char answer[512];
    kd_pipeline_answer(dn, de, answer, sizeof answer);
    kd_strbuf_printf(t, "\n**Answer:** %s The distilled student's NLL minus that of the student alone after one temperature is "
                        "%+.4f ± %.4f (paired t = %.2f: %s); its ECE minus theirs is %+.2f ± %.2f points (t = %.2f: %s). "
                        "The distilled student with its own temperature reaches NLL %.4f and ECE %.2f %%; its accuracy differs "
                        "from the student alone by %+.2f points.\n",
                     answer, dn.mean, dn.sd, tn, vn, de.mean, de.sd, te, ve, nll_dt.mean, ece_dt.mean, acc_d.mean - acc_a.mean);
}

/* A measure's word: how the student alone at its T compares, from d = distilled - alone at T. */
static const char *alone_at_t_is(kd_stat d)
{
    if (!kd_stat_beyond_noise(d)) return "equal (within seed noise)";
    return d.mean > 0 ? "lower" : "higher";
}

void kd_pipeline_answer(kd_stat nll, kd_stat ece, char *out, size_t size)
{
    const char *wn = alone_at_t_is(nll), *we = alone_at_t_is(ece);
    const char *overall = "";
    if (!strcmp(wn, "lower") && !strcmp(we, "lower")) overall = " By both measures one temperature did better than distillation here.";
    if (!strcmp(wn, "higher") && !strcmp(we, "higher")) overall = " By both measures distillation did better than one temperature here.";
    snprintf(out, size, "against the distilled student without a temperature, the student alone with one temperature fitted on "
                        "validation has %s test NLL and %s test ECE.%s",
             wn, we, overall);
}

static int regime_plots(kd_strbuf *md, const pipe_state *s, int ri, kd_error *err)
{
    const kd_pipeline_regime *r = &s->p->regimes[ri];
    if (!r->plot_x[0]) return KD_OK;
    int rc = regime_plot(s, ri, "val-accuracy", "validation accuracy %", f_val_acc, err);
    if (!rc) rc = regime_plot(s, ri, "test-accuracy", "test accuracy %", f_acc, err);
    if (!rc) rc = regime_plot(s, ri, "test-nll", "test NLL", f_nll, err);
    if (!rc) rc = regime_plot(s, ri, "test-ece", "test ECE %", f_ece, err);
    kd_strbuf_printf(md, "\nMeans over seeds against %s:\n\n| validation accuracy | test accuracy |\n|---|---|\n"
                         "| ![](%s-val-accuracy.svg) | ![](%s-test-accuracy.svg) |\n| **test NLL** | **test ECE** |\n"
                         "| ![](%s-test-nll.svg) | ![](%s-test-ece.svg) |\n",
                     r->plot_x, r->id, r->id, r->id, r->id);
    return rc;
}

/* Copies a run's test reliability diagrams into OUT/diagrams as NAME-before/after.svg. */
static int copy_diagrams(const kd_pipeline *p, const char *run_dir, const char *name, kd_error *err)
{
    const char *which[2] = {"before", "after"};
    for (int k = 0; k < 2; k++) {
        char from[KD_PIPE_TEXT + 200], to[KD_PIPE_TEXT + 200];
        snprintf(from, sizeof from, "%s/reliability-test-%s.svg", run_dir, which[k]);
        snprintf(to, sizeof to, "%s/diagrams/%s-%s.svg", p->out_dir, name, which[k]);
        char *svg = kd_file_read_text(from, 16u << 20, err);
        if (!svg) return err ? err->code : KD_ERR_IO;
        int rc = kd_file_write_atomic(to, svg, strlen(svg), err);
        free(svg);
        if (rc) return rc;
    }
    return KD_OK;
}

static void csv_row(kd_strbuf *csv, const char *regime, const char *run, const char *kind, const char *seed, const model_result *m)
{
    kd_strbuf_printf(csv, "%s,%s,%s,%s,%s,%zu,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.4f,%s\n", regime, run, kind, seed,
                     m->arch, m->params, m->val_acc, m->val_nll, m->val_ece, m->acc, m->nll, m->ece, m->brier, m->temperature, m->nll_scaled, m->ece_scaled,
                     m->epoch_seconds, m->path);
}

int kd_pipeline_write_reports(const pipe_state *s, const char *command, kd_error *err)
{
    const kd_pipeline *p = s->p;
    kd_strbuf md = {0}, csv = {0};
    char commit[128], date[64], dir[KD_PIPE_TEXT + 16], trained[512], ranks[48] = "";
    if (s->ranks > 1) snprintf(ranks, sizeof ranks, " over %d ranks", s->ranks);
    kd_provenance_commit(commit, sizeof commit);
    kd_provenance_date(date, sizeof date);
    kd_commit_set_format(&s->trained, trained, sizeof trained);
    kd_strbuf_printf(&md, "# %s\n\nProduced by `%s` at commit %s on %s, from runs trained at commit %s; seeds",
                     p->title[0] ? p->title : "Results", command, commit, date, trained);
    for (int i = 0; i < p->n_seeds; i++) kd_strbuf_printf(&md, "%s %llu", i ? "," : "", (unsigned long long)p->seeds[i]);
    kd_strbuf_printf(&md, ". Metrics on the test split (%lld samples) of `%s`. ECE: 15 equal-width bins, with a 95 %% bootstrap "
                          "interval (%d resamples) for single models. T: one temperature fitted on the validation split by exact "
                          "NLL minimisation (`kdtrain calibrate`); accuracy does not depend on it. s/epoch: training time of one "
                          "epoch on the machine that ran this. Run folders: `%s/`. This invocation: %.1f s wall clock up to "
                          "these reports, %.1f s of it on the %d runs trained now%s (%d reused)%s%s.\n\n## Teacher\n\n%s",
                     (long long)s->ds.split[KD_SPLIT_TEST].rows, p->data, KD_CALIBRATE_DEFAULT_BOOTSTRAP, p->runs_dir,
                     kd_now_seconds() - s->started, s->train_seconds, s->runs_trained, ranks, s->runs_reused,
                     p->precision[0] ? ", pipeline.precision = " : "", p->precision, header);
    model_row(&md, "teacher", &s->teacher);
    kd_strbuf_printf(&md, "\nFitted T = %.3f %s 1: the teacher was %s on validation (T > 1: its logits had to be divided by T to "
                          "soften them; T < 1: to sharpen them).\n",
                     s->teacher.temperature, s->teacher.temperature > 1 ? ">" : s->teacher.temperature < 1 ? "<" : "=",
                     kd_temperature_describe(s->teacher.temperature));
    kd_strbuf_printf(&md, "\n| before | after |\n|---|---|\n| ![](diagrams/teacher-before.svg) | ![](diagrams/teacher-after.svg) |\n");
    kd_strbuf_printf(&csv, "regime,run,kind,seed,architecture,parameters,val_accuracy,val_nll,val_ece,test_accuracy,test_nll,test_ece,test_brier,"
                           "temperature,test_nll_at_T,test_ece_at_T,epoch_seconds,run_folder\n");
    csv_row(&csv, "teacher", "teacher", "train", "", &s->teacher);
    snprintf(dir, sizeof dir, "%s/diagrams", p->out_dir);
    int rc = kd_file_mkdir_p(dir, err);
    if (!rc) rc = copy_diagrams(p, s->teacher.path, "teacher", err);
    for (int ri = 0; ri < p->n_regimes && !rc; ri++) {
        const kd_pipeline_regime *r = &p->regimes[ri];
        regime_report(&md, s, ri);
        vs_temperature(&md, s, ri);
        if (!rc) rc = regime_plots(&md, s, ri, err);
        if (r->teacher.config[0]) csv_row(&csv, r->id, "teacher", "train", "", &s->regime_teacher[ri]);
        for (int k = 0; k < r->n_runs && !rc; k++) {
            char name[160], seed[32];
            snprintf(name, sizeof name, "%s-%s", r->id, r->runs[k].name);
            rc = copy_diagrams(p, s->results[ri][k][0].path, name, err);
            for (int i = 0; i < p->n_seeds; i++) {
                snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seeds[i]);
                csv_row(&csv, r->id, r->runs[k].name, r->runs[k].distill ? "distill" : "train", seed, &s->results[ri][k][i]);
            }
        }
    }
    if (!rc && (md.failed || csv.failed)) rc = kd_error_set(err, KD_ERR_IO, "out of memory for the report");
    if (!rc) rc = kd_file_write_atomic_in(p->out_dir, "summary.md", md.text, md.length, err);
    if (!rc) rc = kd_file_write_atomic_in(p->out_dir, "summary.csv", csv.text, csv.length, err);
    if (!rc) fprintf(stderr, "wrote %s/summary.md, summary.csv and diagrams/\n", p->out_dir);
    kd_strbuf_free(&md);
    kd_strbuf_free(&csv);
    return rc;
}
