/* sweep.c - see sweep.h. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/sweep.h"

#include "io/fileutil.h"
#include "io/provenance.h"
#include "io/strbuf.h"
#include "io/svgplot.h"
#include "workflows/pipeline_internal.h"
#include "workflows/run_dir.h"
#include "workflows/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CURVES (KD_PIPE_MAX_REGIMES * KD_PIPE_MAX_RUNS * KD_PIPE_MAX_SEEDS)

typedef struct curve {
    char name[160];
    int n;             /* diagnosed epochs */
    double *epoch, *temperature, *val_nll, *gap, *train_acc, *val_acc, *nll_at_t;
} curve;

static void curve_free(curve *c)
{
    free(c->epoch);
    free(c->temperature);
    free(c->val_nll);
    free(c->gap);
    free(c->train_acc);
    free(c->val_acc);
    free(c->nll_at_t);
}

/* The diagnosed epochs of a finished run, from its metrics.csv. */
static int read_curve(const char *run_path, const char *name, curve *c, kd_error *err)
{
    kd_run_dir run;
    memset(&run, 0, sizeof run);
    run.quiet = true;
    int rc = kd_run_dir_read(&run, run_path, err);
    if (rc) return rc;
    snprintf(c->name, sizeof c->name, "%s", name);
    size_t n = (size_t)(run.n_rows ? run.n_rows : 1);
    double **cols[7] = {&c->epoch, &c->temperature, &c->val_nll, &c->gap, &c->train_acc, &c->val_acc, &c->nll_at_t};
    for (int k = 0; k < 7; k++)
        if (!(*cols[k] = malloc(n * sizeof(double)))) rc = kd_error_set(err, KD_ERR_IO, "out of memory");
    for (int64_t i = 0; !rc && i < run.n_rows; i++) {
        const kd_epoch_row *r = &run.rows[i];
        if (!isfinite(r->temperature)) continue;
        c->epoch[c->n] = (double)r->epoch;
        c->temperature[c->n] = r->temperature;
        c->val_nll[c->n] = r->val_nll;
        c->nll_at_t[c->n] = r->val_nll_at_t;
        c->train_acc[c->n] = 100 * r->train_eval_acc;
        c->val_acc[c->n] = 100 * r->val_acc;
        c->gap[c->n] = 100 * (r->train_eval_acc - r->val_acc);
        c->n++;
    }
    kd_run_dir_close(&run);
    if (!rc && c->n == 0)
        rc = kd_error_set(err, KD_ERR_CONFIG, "%s: no epoch fitted a temperature; set train.temperature_every = 1 in its config",
                          run_path);
    return rc;
}

static int write_plot(const char *dir, const char *file, const char *title, const char *y_label, const curve *curves, int n,
                      int which, kd_error *err)
{
    kd_series series[MAX_CURVES];
    for (int i = 0; i < n; i++) {
        const double *y = which == 0 ? curves[i].temperature : which == 1 ? curves[i].val_nll : curves[i].gap;
        series[i] = (kd_series){curves[i].name, curves[i].epoch, y, curves[i].n};
    }
    kd_plot plot = {.title = title, .x_label = "epoch", .y_label = y_label, .series = series, .n_series = n};
    kd_strbuf svg = {0};
    kd_plot_svg(&plot, &svg);
    int rc = svg.failed ? kd_error_set(err, KD_ERR_IO, "out of memory") : kd_file_write_atomic_in(dir, file, svg.text, svg.length, err);
    kd_strbuf_free(&svg);
    return rc;
}

static int write_outputs(const kd_pipeline *p, const kd_commit_set *trained_by, const curve *curves, int n, kd_error *err)
{
    kd_strbuf csv = {0}, md = {0};
    kd_strbuf_printf(&csv, "run,epoch,train_accuracy_eval,val_accuracy,gap_points,val_nll,temperature,val_nll_at_t\n");
    int total = 0;
    for (int i = 0; i < n; i++) total += curves[i].n;
    double *gaps = malloc((size_t)(total ? total : 1) * sizeof(double)), *temps = malloc((size_t)(total ? total : 1) * sizeof(double));
    double *nll_gain = malloc((size_t)(total ? total : 1) * sizeof(double));
    if (!gaps || !temps || !nll_gain) {
        free(gaps);
        free(temps);
        free(nll_gain);
        return kd_error_set(err, KD_ERR_IO, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int e = 0; e < curves[i].n; e++, k++) {
            const curve *c = &curves[i];
            kd_strbuf_printf(&csv, "%s,%.0f,%.4f,%.4f,%.4f,%.6f,%.6f,%.6f\n", c->name, c->epoch[e], c->train_acc[e], c->val_acc[e],
                             c->gap[e], c->val_nll[e], c->temperature[e], c->nll_at_t[e]);
            gaps[k] = c->gap[e];
            temps[k] = c->temperature[e];
            nll_gain[k] = c->val_nll[e] - c->nll_at_t[e];
        }
    double pearson = kd_pearson(gaps, temps, total), spearman = kd_spearman(gaps, temps, total);
    char date[64], commit[128], trained[512];
    kd_provenance_date(date, sizeof date);
    kd_provenance_commit(commit, sizeof commit);
    kd_commit_set_format(trained_by, trained, sizeof trained);
    kd_strbuf_printf(&md, "# %s\n\nProduced by `kdtrain sweep -c %s` at commit %s on %s, from runs trained at commit %s; data `%s`; runs in `%s/`. "
                          "After each diagnosed epoch, one temperature T is fitted on the validation split (exact NLL minimum), "
                          "and the accuracy on up to 10,000 training images is measured in evaluation mode (no dropout). "
                          "Gap = training accuracy − validation accuracy, in points.\n\n",
                     p->title[0] ? p->title : "Overfitting diagnostic", p->source, commit, date, trained, p->data, p->runs_dir);
    kd_strbuf_printf(&md, "Over all %d (run, epoch) points, the fitted T and the gap correlate with **Pearson r = %.3f** and "
                          "**Spearman ρ = %.3f**.\n\n",
                     total, pearson, spearman);
    kd_strbuf_printf(&md, "| run | epochs | final gap | final T | final val NLL | val NLL at T | T at the epoch of least val NLL | "
                          "r(gap, T) in this run |\n|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const curve *c = &curves[i];
        int last = c->n - 1, best = 0;
        for (int e = 1; e < c->n; e++)
            if (c->val_nll[e] < c->val_nll[best]) best = e;
        kd_strbuf_printf(&md, "| %s | %.0f | %.2f | %.3f | %.4f | %.4f | %.3f (epoch %.0f) | %.3f |\n", c->name, c->epoch[last],
                         c->gap[last], c->temperature[last], c->val_nll[last], c->nll_at_t[last], c->temperature[best],
                         c->epoch[best], kd_pearson(c->gap, c->temperature, c->n));
    }
    kd_strbuf_printf(&md, "\n![fitted temperature](temperature.svg)\n\n![validation NLL](val_nll.svg)\n\n![accuracy gap](gap.svg)\n");
    kd_strbuf_printf(&md, "\nThe NLL that one temperature recovers (val NLL − val NLL at T) correlates with the gap with Pearson r = %.3f.\n",
                     kd_pearson(gaps, nll_gain, total));
    int rc = kd_file_mkdir_p(p->out_dir, err);
    if (!rc) rc = (csv.failed || md.failed) ? kd_error_set(err, KD_ERR_IO, "out of memory") : KD_OK;
    if (!rc) rc = kd_file_write_atomic_in(p->out_dir, "sweep.csv", csv.text, csv.length, err);
    if (!rc) rc = write_plot(p->out_dir, "temperature.svg", "Fitted temperature against epoch", "T (fitted on validation)", curves, n, 0, err);
    if (!rc) rc = write_plot(p->out_dir, "val_nll.svg", "Validation NLL against epoch", "validation NLL (T = 1)", curves, n, 1, err);
    if (!rc) rc = write_plot(p->out_dir, "gap.svg", "Train - validation accuracy gap", "gap, points", curves, n, 2, err);
    if (!rc) rc = kd_file_write_atomic_in(p->out_dir, "summary.md", md.text, md.length, err);
    if (!rc) fprintf(stderr, "wrote %s/summary.md, sweep.csv, temperature.svg, val_nll.svg, gap.svg (r = %.3f)\n", p->out_dir, pearson);
    kd_strbuf_free(&csv);
    kd_strbuf_free(&md);
    free(gaps);
    free(temps);
    free(nll_gain);
    return rc;
}

int kd_sweep_run(const kd_pipeline *p, bool quiet, kd_comm *comm, kd_error *err)
{
    pipe_state *s = calloc(1, sizeof *s);
    curve *curves = calloc(MAX_CURVES, sizeof *curves);
    if (!s || !curves) {
        free(s);
        free(curves);
        return kd_error_set(err, KD_ERR_IO, "out of memory");
    }
    s->p = p;
    s->quiet = quiet;
    s->threads = (int)p->threads;
    s->rank = -1;
    s->ranks = 1;
    int rc = KD_OK, n = 0;
    /* A parallel job: every run trained over the ranks, then rank 0 alone finds them
     * finished and writes the report a serial sweep writes. */
    if (kd_comm_parallel(comm)) rc = kd_pipeline_train_over_ranks(s, comm, true, err);
    if (!rc && kd_comm_rank(comm) != 0) {
        free(curves);
        free(s);
        return KD_OK;
    }
    if (!rc) rc = kd_pipeline_open_data(s, err);
    for (int ri = 0; ri < p->n_regimes; ri++) s->total += p->regimes[ri].n_runs * p->n_seeds;
    if (!rc && p->teacher.config[0]) {
        s->total++;
        rc = kd_pipeline_ensure_run(s, &p->teacher, "teacher", NULL, NULL, &s->teacher, err);
    }
    for (int ri = 0; ri < p->n_regimes && !rc; ri++) {
        const kd_pipeline_regime *r = &p->regimes[ri];
        for (int k = 0; k < r->n_runs && !rc; k++)
            for (int i = 0; i < p->n_seeds && !rc; i++) {
                char name[160];
                model_result *m = &s->results[ri][k][i];
                kd_pipeline_run_name(p, ri, k, i, true, name, sizeof name);
                rc = kd_pipeline_ensure_run(s, &r->runs[k], name, &p->seeds[i], r->runs[k].distill ? s->teacher.path : NULL, m, err);
                if (!rc) rc = read_curve(m->path, p->n_seeds > 1 ? name : r->runs[k].name, &curves[n++], err);
            }
    }
    if (!rc) rc = write_outputs(p, &s->trained, curves, n, err);
    for (int i = 0; i < n; i++) curve_free(&curves[i]);
    kd_dataset_close(&s->ds);
    free(curves);
    free(s);
    return rc;
}
