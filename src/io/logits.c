/* logits.c - reading logits files (see logits.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/logits.h"

#include "io/h5util.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rank, dims, class and size of a dataset; -1 with err set when it is missing. */
static hid_t open_dataset(hid_t file, const char *path, const char *name, int *rank, hsize_t dims[2],
                          H5T_class_t *cls, size_t *size, kd_error *err)
{
    if (!kd_h5_link_exists(file, name)) {
        kd_error_set(err, KD_ERR_DATA, "%s:%s: expected a dataset, found none", path, name);
        return H5I_INVALID_HID;
    }
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    if (dset < 0) {
        kd_error_set(err, KD_ERR_DATA, "%s:%s: expected a dataset, found another kind of object", path, name);
        return H5I_INVALID_HID;
    }
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
    *rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (*rank >= 1 && *rank <= 2) H5Sget_simple_extent_dims(space, dims, NULL);
    *cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    *size = type >= 0 ? H5Tget_size(type) : 0;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (*rank < 0 || *cls == H5T_NO_CLASS) {
        H5Dclose(dset);
        kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot read its shape or type", path, name);
        return H5I_INVALID_HID;
    }
    return dset;
}

static int read_logits(hid_t file, const char *path, const char *name, kd_logits *out, kd_error *err)
{
    int rank;
    hsize_t dims[2] = {0, 0};
    H5T_class_t cls;
    size_t size;
    hid_t dset = open_dataset(file, path, name, &rank, dims, &cls, &size, err);
    if (dset < 0) return KD_ERR_DATA;
    int rc = KD_OK;
    if (cls != H5T_FLOAT || (size != 4 && size != 8))
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected float32 or float64 logits, found %s of %zu bytes", path,
                          name, cls == H5T_INTEGER ? "integers" : cls == H5T_FLOAT ? "floats" : "a non-numeric type", size);
    else if (rank != 2)
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected logits of rank 2 [N, C], found rank %d", path, name, rank);
    else if (dims[0] < 1 || dims[1] < 2 || dims[1] > 1000000)
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected at least 1 row and 2 to 1000000 classes, found [%llu, %llu]",
                          path, name, (unsigned long long)dims[0], (unsigned long long)dims[1]);
    if (!rc) {
        out->rows = (int64_t)dims[0];
        out->classes = (int)dims[1];
        out->stored_double = size == 8;
        out->logits = malloc((size_t)dims[0] * (size_t)dims[1] * sizeof(float));
        if (!out->logits)
            rc = kd_error_set(err, KD_ERR_IO, "%s:%s: out of memory for %llu x %llu logits", path, name,
                              (unsigned long long)dims[0], (unsigned long long)dims[1]);
    }
    if (!rc && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->logits) < 0) {
        char why[256];
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot read (%s)", path, name, kd_h5_last_message(why, sizeof why));
    }
    H5Dclose(dset);
    size_t n = rc ? 0 : (size_t)out->rows * (size_t)out->classes;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out->logits[i])) {
            /* float64 values beyond float's range become Inf on the way in: say so. */
            rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected finite logits, found %s at row %zu, column %zu%s", path,
                              name, isnan(out->logits[i]) ? "NaN" : "Inf", i / (size_t)out->classes,
                              i % (size_t)out->classes, out->stored_double ? " (or a float64 beyond float32's range)" : "");
            break;
        }
    return rc;
}

static int read_labels(hid_t file, const char *path, const char *name, const char *logits_name, kd_logits *out,
                       kd_error *err)
{
    int rank;
    hsize_t dims[2] = {0, 0};
    H5T_class_t cls;
    size_t size;
    hid_t dset = open_dataset(file, path, name, &rank, dims, &cls, &size, err);
    if (dset < 0) return KD_ERR_DATA;
    int rc = KD_OK;
    if (cls != H5T_INTEGER)
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected integer class labels, found %s", path, name,
                          cls == H5T_FLOAT ? "floats" : "a non-numeric type");
    else if (!(rank == 1 || (rank == 2 && dims[1] == 1)))
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected labels of shape [N] or [N, 1], found rank %d", path, name,
                          rank);
    else if ((int64_t)dims[0] != out->rows)
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected %lld labels (%s has %lld rows), found %llu", path, name,
                          (long long)out->rows, logits_name, (long long)out->rows, (unsigned long long)dims[0]);
    int64_t *wide = rc ? NULL : malloc((size_t)out->rows * sizeof *wide);
    if (!rc) out->labels = malloc((size_t)out->rows * sizeof *out->labels);
    if (!rc && (!wide || !out->labels))
        rc = kd_error_set(err, KD_ERR_IO, "%s:%s: out of memory for %lld labels", path, name, (long long)out->rows);
    if (!rc && H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide) < 0) {
        char why[256];
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot read (%s)", path, name, kd_h5_last_message(why, sizeof why));
    }
    for (int64_t i = 0; !rc && i < out->rows; i++) {
        if (wide[i] < 0 || wide[i] >= out->classes)
            rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected labels in 0..%d (%s has %d classes), found %lld at row %lld",
                              path, name, out->classes - 1, logits_name, out->classes, (long long)wide[i], (long long)i);
        else
            out->labels[i] = (int32_t)wide[i];
    }
    free(wide);
    H5Dclose(dset);
    return rc;
}

int kd_logits_read(kd_logits *out, const char *path, const char *logits_path, const char *labels_path,
                   kd_error *err)
{
    memset(out, 0, sizeof *out);
    const char *zn = logits_path ? logits_path : KD_LOGITS_DEFAULT_PATH;
    const char *yn = labels_path ? labels_path : KD_LABELS_DEFAULT_PATH;
    hid_t file = kd_h5_open_read(path, err);
    if (file < 0) return err ? err->code : KD_ERR_IO;
    int rc = read_logits(file, path, zn, out, err);
    if (!rc) rc = read_labels(file, path, yn, zn, out, err);
    /* The provenance attributes are optional; a wrong type is ignored, not fatal. */
    if (!rc && kd_h5_attr_exists(file, "model"))
        kd_h5_read_attr_string(file, "model", out->model, sizeof out->model, path, NULL);
    if (!rc && kd_h5_attr_exists(file, "split"))
        kd_h5_read_attr_string(file, "split", out->split, sizeof out->split, path, NULL);
    if (H5Fclose(file) < 0 && !rc) rc = kd_error_set(err, KD_ERR_IO, "%s: closing failed", path);
    if (rc) kd_logits_free(out);
    return rc;
}

void kd_logits_free(kd_logits *logits)
{
    free(logits->logits);
    free(logits->labels);
    logits->logits = NULL;
    logits->labels = NULL;
    logits->rows = 0;
}

bool kd_logits_look_like_probabilities(const kd_logits *l)
{
    for (int64_t i = 0; i < l->rows; i++) {
        const float *z = l->logits + (size_t)i * (size_t)l->classes;
        double sum = 0;
        for (int c = 0; c < l->classes; c++) {
            if (z[c] < 0.0f || z[c] > 1.0f) return false;
            sum += z[c];
        }
        if (fabs(sum - 1.0) > 1e-3) return false;
    }
    return l->rows > 0;
}
