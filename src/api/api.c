/* api.c - the public library (include/kdtrain/kdtrain.h, docs/API.md): a thin layer
 * over kd_model_open (workflows/model.h), the MLP's evaluation-mode forward pass
 * (nn/mlp.h, as workflows/evaluate.c runs it) and the temperature fit
 * (calib/temperature.h). It owns the opaque handle, the checks of the caller's
 * arguments, and the translation of kd_error into a status and a message in the
 * caller's buffer. It keeps no state between calls; a handle is never written after
 * kdtrain_open, so calls on one handle may run on several threads at once. */
#include "kdtrain/kdtrain.h"

#include "calib/temperature.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/tape.h"
#include "kd_version.h"
#include "nn/mlp.h"
#include "workflows/model.h"

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(KDTRAIN_ERR_IO == KD_ERR_IO && KDTRAIN_ERR_DATA == KD_ERR_DATA && KDTRAIN_ERR_ARGUMENT == KD_ERR_CONFIG &&
                   KDTRAIN_ERR_LIBRARY == KD_ERR_LIBRARY,
               "the public status codes are the library's own");

/* kdtrain eval's batch (workflows/eval.c): the same rows go through the same products,
 * so predict's logits are eval's bit for bit. */
#define API_BATCH_ROWS 256

struct kdtrain_model {
    kd_model *model; /* the weights and the stored calibration; not written after open */
};

/* The status for the caller, the message into its buffer (cut to fit, NUL-terminated). */
static int finish(int rc, const kd_error *e, char *err, size_t err_size)
{
    if (rc == KD_ERR_BUSY) rc = KDTRAIN_ERR_IO; /* only writers meet it; the library writes nothing */
    if (err && err_size > 0) snprintf(err, err_size, "%s", rc ? e->message : "");
    return rc;
}

/* The rows * width floats of an array, or an error when the count overflows. */
static int array_size(const char *fn, const char *name, int64_t rows, int width, size_t *count, kd_error *e)
{
    if (rows < 0) return kd_error_set(e, KD_ERR_CONFIG, "%s: rows: expected >= 0, found %lld", fn, (long long)rows);
    if (width < 1) return kd_error_set(e, KD_ERR_CONFIG, "%s: %s: expected >= 1 columns, found %d", fn, name, width);
    if ((uint64_t)rows > SIZE_MAX / sizeof(double) / (uint64_t)width)
        return kd_error_set(e, KD_ERR_CONFIG, "%s: %s: %lld rows of %d values do not fit in memory", fn, name,
                            (long long)rows, width);
    *count = (size_t)rows * (size_t)width;
    return KD_OK;
}

static int check_pointer(const char *fn, const char *name, const void *p, size_t count, kd_error *e)
{
    if (!p && count > 0) return kd_error_set(e, KD_ERR_CONFIG, "%s: %s: expected an array, found NULL", fn, name);
    return KD_OK;
}

static int check_finite(const char *fn, const char *name, const float *a, int64_t rows, int width, const char *what,
                        kd_error *e)
{
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < width; j++) {
            float v = a[(size_t)i * (size_t)width + (size_t)j];
            if (!isfinite(v))
                return kd_error_set(e, KD_ERR_DATA, "%s: %s: expected finite %s, found %s at row %lld, column %d", fn,
                                    name, what, isnan(v) ? "NaN" : "Inf", (long long)i, j);
        }
    return KD_OK;
}

const char *kdtrain_version(void) { return KD_VERSION_STRING; }

int kdtrain_open(const char *run_or_checkpoint, kdtrain_model **model, char *err, size_t err_size)
{
    kd_error e;
    kd_error_clear(&e);
    if (model) *model = NULL;
    if (!model) return finish(kd_error_set(&e, KD_ERR_CONFIG, "kdtrain_open: model: expected a pointer, found NULL"), &e,
                              err, err_size);
    if (!run_or_checkpoint)
        return finish(kd_error_set(&e, KD_ERR_CONFIG, "kdtrain_open: expected a run folder or checkpoint, found NULL"),
                      &e, err, err_size);
    kdtrain_model *h = calloc(1, sizeof *h);
    kd_model *m = calloc(1, sizeof *m);
    if (!h || !m) {
        free(h);
        free(m);
        return finish(kd_error_set(&e, KD_ERR_IO, "%s: out of memory opening the model", run_or_checkpoint), &e, err,
                      err_size);
    }
    /* The readers silence HDF5's printing of its error stack (they make their own
     * messages); the caller's setting (per thread in a thread-safe libhdf5) comes back. */
    H5E_auto2_t print = NULL;
    void *print_data = NULL;
    herr_t saved = H5Eget_auto2(H5E_DEFAULT, &print, &print_data);
    int rc = kd_model_open(m, run_or_checkpoint, &e);
    if (saved >= 0) H5Eset_auto2(H5E_DEFAULT, print, print_data);
    if (rc) {
        free(h);
        free(m);
        return finish(rc, &e, err, err_size);
    }
    h->model = m;
    *model = h;
    return finish(KD_OK, &e, err, err_size);
}

void kdtrain_close(kdtrain_model *model)
{
    if (!model) return;
    kd_model_close(model->model);
    free(model->model);
    free(model);
}

int kdtrain_inputs(const kdtrain_model *model) { return model ? model->model->mlp.config.sizes[0] : 0; }

int kdtrain_classes(const kdtrain_model *model) { return model ? kd_model_classes(model->model) : 0; }

double kdtrain_temperature(const kdtrain_model *model)
{
    return model && model->model->calibration.present ? model->model->calibration.temperature : 1.0;
}

/* The arena bytes a batch of `rows` needs: the input copy and every layer's output,
 * each a tensor header and a 64-byte aligned block, with a page to spare. Reserved
 * before the first batch, so that the arena never grows inside an op (where running
 * out of memory would abort) and a model too large for the machine is an error. */
static size_t batch_bytes(const kd_mlp_config *c, int rows)
{
    size_t bytes = 4096;
    for (int k = 0; k <= c->n_layers; k++)
        bytes += 2 * KD_ARENA_ALIGN + sizeof(kd_tensor) + (size_t)rows * (size_t)c->sizes[k] * sizeof(float);
    return bytes;
}

/* logits (rows, classes) of x (rows, inputs), API_BATCH_ROWS rows at a time. */
static int forward(kd_model *m, const float *x, int64_t rows, float *logits, kd_error *e)
{
    if (rows == 0) return KD_OK;
    kd_mlp *mlp = &m->mlp;
    int inputs = mlp->config.sizes[0], classes = kd_model_classes(m);
    int most = rows < API_BATCH_ROWS ? (int)rows : API_BATCH_ROWS;
    size_t bytes = batch_bytes(&mlp->config, most);
    kd_tape tape;
    kd_tape_init(&tape, bytes);
    if (!kd_arena_reserve(&tape.arena, bytes)) {
        kd_tape_free(&tape);
        return kd_error_set(e, KD_ERR_IO, "%s: out of memory: a batch of %d rows needs %zu bytes", m->checkpoint, most,
                            bytes);
    }
    kd_tape_set_grad_enabled(&tape, false);
    for (int64_t first = 0; first < rows; first += API_BATCH_ROWS) {
        int b = rows - first < API_BATCH_ROWS ? (int)(rows - first) : API_BATCH_ROWS;
        kd_tape_reset(&tape);
        kd_tensor *in = kd_tape_tensor(&tape, b, inputs); /* (b, inputs): the caller's rows, copied (x is const) */
        memcpy(in->data, x + (size_t)first * (size_t)inputs, (size_t)b * (size_t)inputs * sizeof(float));
        kd_tensor *z = kd_mlp_forward(mlp, &tape, in, false, NULL); /* (b, classes) */
        memcpy(logits + (size_t)first * (size_t)classes, z->data, (size_t)b * (size_t)classes * sizeof(float));
    }
    KD_ASSERT(tape.arena.system_allocs == 1, "the predict arena grew past its reservation of %zu bytes", bytes);
    kd_tape_free(&tape);
    return KD_OK;
}

static int predict(const char *fn, const kdtrain_model *model, const float *x, int64_t rows, float *out, kd_error *e)
{
    if (!model) return kd_error_set(e, KD_ERR_CONFIG, "%s: model: expected an open model, found NULL", fn);
    kd_model *m = model->model;
    size_t nx = 0, nz = 0;
    int rc = array_size(fn, "x", rows, m->mlp.config.sizes[0], &nx, e);
    if (!rc) rc = array_size(fn, "output", rows, kd_model_classes(m), &nz, e);
    if (!rc) rc = check_pointer(fn, "x", x, nx, e);
    if (!rc) rc = check_pointer(fn, "output", out, nz, e);
    if (!rc) rc = check_finite(fn, "x", x, rows, m->mlp.config.sizes[0], "features", e);
    if (!rc) rc = forward(m, x, rows, out, e);
    return rc;
}

int kdtrain_predict_logits(const kdtrain_model *model, const float *x, int64_t rows, float *logits, char *err,
                           size_t err_size)
{
    kd_error e;
    kd_error_clear(&e);
    return finish(predict("kdtrain_predict_logits", model, x, rows, logits, &e), &e, err, err_size);
}

/* softmax(z / T) of each row, in place allowed (p may be z): in double, the row's
 * largest logit subtracted so that no exp overflows; each exp is taken twice (for the
 * sum, then for p) rather than kept, so that no buffer is needed. */
static void softmax_rows(const float *z, int64_t rows, int classes, double T, float *p)
{
    for (int64_t i = 0; i < rows; i++) {
        const float *zi = z + (size_t)i * (size_t)classes;
        float *pi = p + (size_t)i * (size_t)classes;
        double top = zi[0];
        for (int c = 1; c < classes; c++)
            if (zi[c] > top) top = zi[c];
        double sum = 0.0;
        for (int c = 0; c < classes; c++) sum += exp(((double)zi[c] - top) / T);
        for (int c = 0; c < classes; c++) pi[c] = (float)(exp(((double)zi[c] - top) / T) / sum);
    }
}

int kdtrain_predict_probabilities(const kdtrain_model *model, const float *x, int64_t rows, bool calibrated,
                                  float *probabilities, char *err, size_t err_size)
{
    kd_error e;
    kd_error_clear(&e);
    int rc = predict("kdtrain_predict_probabilities", model, x, rows, probabilities, &e);
    if (!rc) softmax_rows(probabilities, rows, kd_model_classes(model->model), calibrated ? kdtrain_temperature(model) : 1.0,
                          probabilities);
    return finish(rc, &e, err, err_size);
}

int kdtrain_softmax(const float *logits, int64_t rows, int classes, double temperature, float *probabilities, char *err,
                    size_t err_size)
{
    const char *fn = "kdtrain_softmax";
    kd_error e;
    kd_error_clear(&e);
    size_t n = 0;
    int rc = array_size(fn, "logits", rows, classes, &n, &e);
    if (!rc && !(isfinite(temperature) && temperature > 0))
        rc = kd_error_set(&e, KD_ERR_CONFIG, "%s: temperature: expected a finite value > 0, found %g", fn, temperature);
    if (!rc) rc = check_pointer(fn, "logits", logits, n, &e);
    if (!rc) rc = check_pointer(fn, "probabilities", probabilities, n, &e);
    if (!rc) rc = check_finite(fn, "logits", logits, rows, classes, "logits", &e);
    if (!rc) softmax_rows(logits, rows, classes, temperature, probabilities);
    return finish(rc, &e, err, err_size);
}

int kdtrain_fit_temperature(const float *logits, const int32_t *labels, int64_t rows, int classes, double *temperature,
                            char *err, size_t err_size)
{
    const char *fn = "kdtrain_fit_temperature";
    kd_error e;
    kd_error_clear(&e);
    size_t n = 0;
    int rc = array_size(fn, "logits", rows, classes, &n, &e);
    if (!rc && rows < 1) rc = kd_error_set(&e, KD_ERR_CONFIG, "%s: rows: expected >= 1, found %lld", fn, (long long)rows);
    if (!rc && classes < 2) rc = kd_error_set(&e, KD_ERR_CONFIG, "%s: classes: expected >= 2, found %d", fn, classes);
    if (!rc) rc = check_pointer(fn, "logits", logits, n, &e);
    if (!rc) rc = check_pointer(fn, "labels", labels, (size_t)rows, &e);
    if (!rc && !temperature)
        rc = kd_error_set(&e, KD_ERR_CONFIG, "%s: temperature: expected a pointer, found NULL", fn);
    kd_temperature_fit fit;
    if (!rc) rc = kd_temperature_solve(logits, labels, rows, classes, &fit, &e);
    if (!rc) *temperature = fit.temperature;
    return finish(rc, &e, err, err_size);
}
