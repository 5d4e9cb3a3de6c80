/* checkpoint_common.c - what the writer (checkpoint.c) and the reader
 * (checkpoint_read.c) share, declared in checkpoint_internal.h: the parts of a
 * parameter block, error messages with HDF5's reason, closing with a status, and
 * reading /model's architecture (the writer checks it before replacing
 * /calibration). Both files depend on this one, not on each other. */
#define _POSIX_C_SOURCE 200809L
#include "io/checkpoint_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define LABEL_SIZE (PATH_MAX + 64)

int kd_ckpt_n_parts(const kd_mlp *m) { return 2 * m->config.n_layers; }

void kd_ckpt_get_part(const kd_mlp *m, const char *prefix, int i, block_part *p)
{
    int k = i / 2;
    bool bias = i % 2 == 1;
    const kd_tensor *t = bias ? &m->bias[k] : &m->weight[k];
    snprintf(p->name, sizeof p->name, "%s/layer%d/%s", prefix, k + 1, bias ? "b" : "W");
    p->offset = (size_t)(t->data - m->params);
    p->count = kd_tensor_numel(t);
    p->rank = bias ? 1 : 2;
    p->dims[0] = (hsize_t)(bias ? t->cols : t->rows);
    p->dims[1] = (hsize_t)t->cols;
}

int kd_ckpt_h5_error(kd_error *err, int code, const char *path, const char *object, const char *action)
{
    char msg[256];
    return kd_error_set(err, code, "%s:%s: %s (%s)", path, object, action,
                        kd_h5_last_message(msg, sizeof msg));
}

int kd_ckpt_check_finite(const float *v, size_t n, const char *path, const char *object, kd_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return kd_error_set(err, KD_ERR_DATA,
                                "%s:%s: element %zu is %s; a checkpoint holds finite values only",
                                path, object, i, isnan(v[i]) ? "NaN" : "Inf");
    return KD_OK;
}

bool kd_ckpt_reserved_optim_attr(const char *name)
{
    return !strcmp(name, "kind") || !strcmp(name, "step") || !strcmp(name, "slots");
}

/* Closes a group opened by the caller; rc is the caller's status so far. */
int kd_ckpt_close_group(hid_t g, int rc, const char *path, const char *name, kd_error *err)
{
    if (H5Gclose(g) < 0 && rc == KD_OK) return kd_ckpt_h5_error(err, KD_ERR_IO, path, name, "cannot close");
    return rc;
}

int kd_ckpt_close_file(hid_t file, int rc, const char *path, kd_error *err)
{
    if (H5Fclose(file) < 0 && rc == KD_OK) return kd_ckpt_h5_error(err, KD_ERR_IO, path, "/", "cannot close");
    return rc;
}

hid_t kd_ckpt_open_group(hid_t file, const char *name, const char *path, kd_error *err)
{
    if (!kd_h5_link_exists(file, name)) {
        kd_error_set(err, KD_ERR_DATA, "%s: expected group %s, found none", path, name);
        return H5I_INVALID_HID;
    }
    hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
    if (g < 0) kd_ckpt_h5_error(err, KD_ERR_DATA, path, name, "cannot open as a group");
    return g;
}

static int parse_sizes(const int64_t *sizes, int count, kd_mlp_config *c, const char *what,
                       kd_error *err)
{
    if (count < 2)
        return kd_error_set(err, KD_ERR_DATA,
                            "%s: attribute layer_sizes: expected at least 2 sizes, found %d", what, count);
    for (int k = 0; k < count; k++) {
        if (sizes[k] < 1 || sizes[k] > INT_MAX)
            return kd_error_set(err, KD_ERR_DATA,
                                "%s: attribute layer_sizes: size %d is %lld, expected >= 1", what, k,
                                (long long)sizes[k]);
        c->sizes[k] = (int)sizes[k];
    }
    c->n_layers = count - 1;
    return KD_OK;
}

static int expect_string(hid_t g, const char *name, const char *expected, char *found, size_t size,
                         const char *what, kd_error *err)
{
    int rc = kd_h5_read_attr_string(g, name, found, size, what, err);
    if (!rc && strcmp(found, expected))
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected \"%s\", found \"%s\"", what, name,
                          expected, found);
    return rc;
}

int kd_ckpt_read_model_config(hid_t file, const char *path, kd_mlp_config *out, kd_error *err)
{
    char what[LABEL_SIZE], text[64];
    snprintf(what, sizeof what, "%s:/model", path);
    hid_t g = kd_ckpt_open_group(file, "/model", path, err);
    if (g < 0) return KD_ERR_DATA;
    kd_mlp_config c;
    memset(&c, 0, sizeof c);
    int64_t version = 0, sizes[KD_MLP_MAX_LAYERS + 1];
    int count = 0;
    double dropout = 0, input_dropout = 0;
    int rc = expect_string(g, "format", KD_CKPT_FORMAT_NAME, text, sizeof text, what, err);
    if (!rc) rc = kd_h5_read_attr_int64(g, "format_version", &version, what, err);
    if (!rc && version != KD_CHECKPOINT_FORMAT_VERSION)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: format_version is %lld, this kdtrain reads version %d",
                          what, (long long)version, KD_CHECKPOINT_FORMAT_VERSION);
    if (!rc)
        rc = kd_h5_read_attr_int64_array(g, "layer_sizes", sizes, KD_MLP_MAX_LAYERS + 1, &count, what,
                                         err);
    if (!rc) rc = parse_sizes(sizes, count, &c, what, err);
    if (!rc) rc = expect_string(g, "activation", "relu", text, sizeof text, what, err);
    if (!rc) rc = kd_h5_read_attr_double(g, "dropout", &dropout, what, err);
    if (!rc) rc = kd_h5_read_attr_double(g, "input_dropout", &input_dropout, what, err);
    if (!rc) rc = kd_h5_read_attr_string(g, "init", text, sizeof text, what, err);
    if (!rc && strcmp(text, "he") && strcmp(text, "glorot"))
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute init: expected \"he\" or \"glorot\", found \"%s\"",
                          what, text);
    rc = kd_ckpt_close_group(g, rc, path, "/model", err);
    if (rc) return rc;
    c.dropout = (float)dropout;
    c.input_dropout = (float)input_dropout;
    c.init = strcmp(text, "glorot") ? KD_INIT_HE : KD_INIT_GLOROT;
    *out = c;
    return KD_OK;
}

int kd_ckpt_check_calibration(const kd_calibration *c, const char *path, kd_error *err)
{
    if (!(isfinite(c->temperature) && c->temperature >= KD_CALIB_T_MIN && c->temperature <= KD_CALIB_T_MAX))
        return kd_error_set(err, KD_ERR_DATA, "%s:/calibration: temperature is %g, expected a finite value in [%g, %g]",
                            path, c->temperature, KD_CALIB_T_MIN, KD_CALIB_T_MAX);
    const double nll[2] = {c->nll_before, c->nll_after};
    const char *names[2] = {"nll_before", "nll_after"};
    for (int i = 0; i < 2; i++)
        if (!(isfinite(nll[i]) && nll[i] >= 0))
            return kd_error_set(err, KD_ERR_DATA, "%s:/calibration: %s is %g, expected a finite value >= 0", path,
                                names[i], nll[i]);
    return KD_OK;
}
