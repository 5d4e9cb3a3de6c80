/* gaussian_experiment.c - see gaussian_experiment.h. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/gaussian_experiment.h"

#include "core/check.h"
#include "io/fileutil.h"
#include "io/provenance.h"
#include "io/strbuf.h"
#include "io/svgplot.h"

#include <math.h>
#include <stdio.h>

static int report(const char *out, const kd_gaussian_options *o, const double *sigmas, const kd_gaussian_result *r, int n,
                  const kd_gaussian_options *co, const kd_gaussian_result *counter, kd_error *err)
{
    kd_strbuf md = {0}, csv = {0}, svg = {0};
    char date[64], commit[128];
    kd_provenance_date(date, sizeof date);
    kd_provenance_commit(commit, sizeof commit);
    kd_strbuf_printf(&md, "# Gaussian clusters: the temperature of the Bayes-optimal classifier\n\n"
                          "Produced by `kdtrain gaussian --classes %d --dim %d --samples %lld --epochs %d --seed %llu` at commit %s on %s. "
                          "K = %d isotropic Gaussian clusters N(mu_k, sigma^2 I) in d = %d dimensions, centres ~ N(0, %.2g^2 I), "
                          "%lld training and %lld test samples per sigma. The Bayes-optimal classifier is softmax(-tau ||x - mu_k||^2) "
                          "with tau = 1/(2 sigma^2); a distance-softmax classifier with learnable centres and tau (AdamW, lr %.3g "
                          "with cosine decay, batch %d) is trained with kdtrain's engine.\n\n"
                          "| sigma | tau = 1/(2 sigma^2) | learned tau | relative error | centre RMSE | test NLL | Bayes NLL | "
                          "test accuracy %% | Bayes accuracy %% | seconds |\n|---|---|---|---|---|---|---|---|---|---|\n",
                     o->classes, o->dim, (long long)o->train_samples, o->epochs, (unsigned long long)o->seed, commit, date, o->classes,
                     o->dim, o->centre_spread, (long long)o->train_samples, (long long)o->test_samples, o->lr, o->batch_size);
    kd_strbuf_printf(&csv, "sigma,tau_true,tau_learned,relative_error,centre_rmse,test_nll,test_nll_bayes,test_accuracy,test_accuracy_bayes\n");
    double tau_true[KD_GAUSSIAN_MAX_SIGMAS], tau_learned[KD_GAUSSIAN_MAX_SIGMAS];
    for (int i = 0; i < n; i++) {
        const kd_gaussian_result *g = &r[i];
        kd_strbuf_printf(&md, "| %.3g | %.4f | %.4f | %+.2f%% | %.4f | %.4f | %.4f | %.2f | %.2f | %.1f |\n", sigmas[i], g->tau_true,
                         g->tau_learned, 100 * g->relative_error, g->centre_rmse, g->test_nll, g->test_nll_bayes,
                         100 * g->test_accuracy, 100 * g->test_accuracy_bayes, g->seconds);
        kd_strbuf_printf(&csv, "%.6g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.6f,%.6f\n", sigmas[i], g->tau_true, g->tau_learned,
                         g->relative_error, g->centre_rmse, g->test_nll, g->test_nll_bayes, g->test_accuracy,
                         g->test_accuracy_bayes);
        tau_true[i] = g->tau_true;
        tau_learned[i] = g->tau_learned;
    }
    kd_strbuf_printf(&md, "\n![learned tau against 1/(2 sigma^2)](tau.svg)\n\n"
                          "**Identifiability.** The posterior depends only on z_k - z_l = 2 tau x.(mu_k - mu_l) - tau (|mu_k|^2 - |mu_l|^2), "
                          "which does not change when the centres are scaled about a point equidistant from all of them, "
                          "mu_k -> c + a (mu_k - c), and tau -> tau / a. K centres in general position have such a point whenever "
                          "K <= d + 1, so tau can only be learned with more clusters than d + 1 (here K = %d, d = %d). The same "
                          "training with K = %d clusters in d = %d at sigma = %.3g ends at tau = %.4f against 1/(2 sigma^2) = %.4f "
                          "(%+.1f%%), with test accuracy %.2f%% against the Bayes classifier's %.2f%% and test NLL %.4f against "
                          "%.4f.\n",
                     o->classes, o->dim, co->classes, co->dim, co->sigma, counter->tau_learned, counter->tau_true,
                     100 * counter->relative_error, 100 * counter->test_accuracy, 100 * counter->test_accuracy_bayes,
                     counter->test_nll, counter->test_nll_bayes);
    kd_series series[2] = {{.name = "1/(2 sigma^2)", .x = sigmas, .y = tau_true, .n = n},
                           {.name = "learned tau", .x = sigmas, .y = tau_learned, .n = n}};
    kd_plot plot = {.title = "Learned tau against the Bayes-optimal 1/(2 sigma^2)", .x_label = "sigma (log scale)",
                    .y_label = "tau", .log_x = true, .series = series, .n_series = 2};
    kd_plot_svg(&plot, &svg);
    int rc = kd_file_mkdir_p(out, err);
    if (!rc && (md.failed || csv.failed || svg.failed)) rc = kd_error_set(err, KD_ERR_IO, "out of memory");
    if (!rc) rc = kd_file_write_atomic_in(out, "summary.md", md.text, md.length, err);
    if (!rc) rc = kd_file_write_atomic_in(out, "gaussian.csv", csv.text, csv.length, err);
    if (!rc) rc = kd_file_write_atomic_in(out, "tau.svg", svg.text, svg.length, err);
    kd_strbuf_free(&md);
    kd_strbuf_free(&csv);
    kd_strbuf_free(&svg);
    return rc;
}

int kd_gaussian_experiment(const kd_gaussian_options *base, const double *sigmas, int n, const char *out, kd_error *err)
{
    KD_ASSERT(n >= 1 && n <= KD_GAUSSIAN_MAX_SIGMAS, "%d sigmas, expected 1 to %d", n, KD_GAUSSIAN_MAX_SIGMAS);
    for (int i = 0; i < n; i++)
        if (!(sigmas[i] >= KD_GAUSSIAN_SIGMA_MIN && sigmas[i] <= KD_GAUSSIAN_SIGMA_MAX))
            return kd_error_set(err, KD_ERR_CONFIG, "--sigmas: expected values in [%g, %g], found %g", KD_GAUSSIAN_SIGMA_MIN,
                                KD_GAUSSIAN_SIGMA_MAX, sigmas[i]);
    kd_gaussian_options o = *base;
    kd_gaussian_result results[KD_GAUSSIAN_MAX_SIGMAS];
    int rc = KD_OK;
    for (int i = 0; i < n && !rc; i++) {
        o.sigma = sigmas[i];
        rc = kd_gaussian_run(&o, &results[i], err);
        if (!rc)
            fprintf(stderr, "sigma %.3g: tau %.4f learned, %.4f = 1/(2 sigma^2) (%+.2f%%), test accuracy %.2f%% (Bayes %.2f%%)\n",
                    sigmas[i], results[i].tau_learned, results[i].tau_true, 100 * results[i].relative_error,
                    100 * results[i].test_accuracy, 100 * results[i].test_accuracy_bayes);
    }
    /* The counter-example: K = 4 clusters in d = 8, so K <= d + 1. */
    kd_gaussian_options co = *base;
    kd_gaussian_result counter;
    co.classes = 4;
    co.dim = 8;
    co.sigma = 1.0;
    if (!rc) rc = kd_gaussian_run(&co, &counter, err);
    if (!rc) rc = report(out, &o, sigmas, results, n, &co, &counter, err);
    return rc;
}
