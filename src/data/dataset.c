/* dataset.c - opening, validating and loading HDF5 classification data sets. */
#define _POSIX_C_SOURCE 200809L
#include "data/dataset.h"

#include "data/rows.h"

#include "io/h5util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *split_names[KD_SPLIT_COUNT] = {"train", "val", "test"};

const char *kd_split_name(kd_split split) { return split_names[split]; }

bool kd_split_parse(const char *name, kd_split *split)
{
    for (int s = 0; s < KD_SPLIT_COUNT; s++)
        if (strcmp(name, split_names[s]) == 0) {
            *split = (kd_split)s;
            return true;
        }
    return false;
}

void kd_dataset_options_default(kd_dataset_options *options)
{
    memset(options, 0, sizeof *options);
    for (int s = 0; s < KD_SPLIT_COUNT; s++) {
        snprintf(options->x_path[s], KD_DATASET_PATH_MAX, "/%s/x", split_names[s]);
        snprintf(options->y_path[s], KD_DATASET_PATH_MAX, "/%s/y", split_names[s]);
    }
    options->val_from_train = 5000;
    options->require_test = true;
}

static void add_note(kd_dataset *ds, const char *note)
{
    size_t used = strlen(ds->notes);
    snprintf(ds->notes + used, sizeof ds->notes - used, "%s%s", used ? "; " : "", note);
}

/* ---- shape and type checks ------------------------------------------------------ */

typedef struct dataset_shape {
    int rank;
    hsize_t dims[8];
    H5T_class_t cls;
    size_t type_size;
    H5T_sign_t sign;
    int64_t chunk_rows;
} dataset_shape;

static int read_shape(hid_t file, const char *path, const char *name, dataset_shape *shape,
                      kd_error *err)
{
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    if (dset < 0)
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected a dataset, found %s", path, name,
                            kd_h5_link_exists(file, name) ? "another kind of object" : "none");
    int rc = KD_OK;
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset), dcpl = H5Dget_create_plist(dset);
    if (space < 0 || type < 0 || dcpl < 0) {
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot read its shape or type", path, name);
        goto done;
    }
    shape->rank = H5Sget_simple_extent_ndims(space);
    if (shape->rank < 0 || shape->rank > 8) {
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected rank 1 to 8, found %d", path, name, shape->rank);
        goto done;
    }
    H5Sget_simple_extent_dims(space, shape->dims, NULL);
    shape->cls = H5Tget_class(type);
    shape->type_size = H5Tget_size(type);
    shape->sign = shape->cls == H5T_INTEGER ? H5Tget_sign(type) : H5T_SGN_NONE;
    shape->chunk_rows = 0;
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && shape->rank > 0) {
        hsize_t chunk[8];
        if (H5Pget_chunk(dcpl, 8, chunk) >= 1) shape->chunk_rows = (int64_t)chunk[0];
    }
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(dset);
    return rc;
}

static const char *type_text(const dataset_shape *s, char *buf, size_t size)
{
    if (s->cls == H5T_INTEGER)
        snprintf(buf, size, "%s%zu", s->sign == H5T_SGN_NONE ? "uint" : "int", 8 * s->type_size);
    else if (s->cls == H5T_FLOAT)
        snprintf(buf, size, "float%zu", 8 * s->type_size);
    else if (s->cls == H5T_STRING)
        snprintf(buf, size, "strings");
    else
        snprintf(buf, size, "a compound or other non-numeric type");
    return buf;
}

/* Features: rank >= 2, uint8 or float32/float64. Sets dim and the stored type. */
static int check_features(const kd_dataset *ds, const char *name, const dataset_shape *s, int64_t *dim,
                          kd_feature_type *type, kd_error *err)
{
    char t[64];
    if (s->rank < 2)
        return kd_error_set(err, KD_ERR_DATA,
                            "%s:%s: expected features of rank 2 [N, D] (or [N, H, W]), found rank %d",
                            ds->path, name, s->rank);
    bool u8 = s->cls == H5T_INTEGER && s->type_size == 1 && s->sign == H5T_SGN_NONE;
    bool fp = s->cls == H5T_FLOAT && (s->type_size == 4 || s->type_size == 8);
    if (!u8 && !fp)
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected uint8, float32 or float64 features, found %s",
                            ds->path, name, type_text(s, t, sizeof t));
    *type = u8 ? KD_FEATURE_UINT8 : KD_FEATURE_FLOAT32;
    double d = 1; /* in double: the dimensions come from the file and may overflow int64 */
    for (int i = 1; i < s->rank; i++) d *= (double)s->dims[i];
    if (d < 1 || d > (1 << 28))
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected 1 to 2^28 features per row, found %.0f",
                            ds->path, name, d);
    *dim = (int64_t)d;
    return KD_OK;
}

/* Labels: any integer type, shape [N] or [N, 1], N matching the features. */
static int check_labels_shape(const kd_dataset *ds, const char *name, const dataset_shape *s, hsize_t rows,
                              const char *x_name, kd_error *err)
{
    char t[64];
    if (s->cls != H5T_INTEGER)
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected integer class labels, found %s", ds->path,
                            name, type_text(s, t, sizeof t));
    if (!(s->rank == 1 || (s->rank == 2 && s->dims[1] == 1)))
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected labels of shape [N] or [N, 1], found rank %d",
                            ds->path, name, s->rank);
    if (s->dims[0] != rows)
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected %llu labels (%s has %llu rows), found %llu",
                            ds->path, name, (unsigned long long)rows, x_name, (unsigned long long)rows,
                            (unsigned long long)s->dims[0]);
    return KD_OK;
}

/* Reads rows [begin, begin + count) of a dataset whose first dimension is rows. */
static int read_rows(hid_t file, const kd_dataset *ds, const char *name, int64_t begin, int64_t count,
                     hid_t mem_type, void *out, kd_error *err)
{
    char why[320];
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    if (dset < 0) return kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot open", ds->path, name);
    kd_row_reader reader;
    kd_row_reader_init(&reader);
    int rc = KD_OK;
    if (kd_read_rows(&reader, dset, begin, count, mem_type, out, why, sizeof why) < 0)
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot read rows %lld..%lld: %s", ds->path, name,
                          (long long)begin, (long long)(begin + count - 1), why);
    kd_row_reader_free(&reader);
    H5Dclose(dset);
    return rc;
}

/* ---- root attributes ---------------------------------------------------------------- */

static int read_class_names(hid_t file, kd_dataset *ds, kd_error *err)
{
    if (!kd_h5_attr_exists(file, "class_names")) return KD_OK;
    hid_t attr = H5Aopen(file, "class_names", H5P_DEFAULT);
    hid_t type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    int rc = KD_OK;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (type < 0 || H5Tget_class(type) != H5T_STRING || n < 1 || n > KD_MAX_CLASS_NAMES) {
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute class_names: expected 1 to %d strings", ds->path,
                          KD_MAX_CLASS_NAMES);
        goto done;
    }
    if (H5Tis_variable_str(type) > 0) {
        char *names[KD_MAX_CLASS_NAMES] = {0};
        hid_t mem = H5Tcopy(H5T_C_S1); /* same charset as the file: HDF5 will not convert */
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(type));
        if (H5Aread(attr, mem, names) < 0) rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot read class_names", ds->path);
        for (hssize_t i = 0; i < n; i++) {
            if (rc == KD_OK) ds->class_names[i] = strdup(names[i] ? names[i] : "");
            if (names[i]) H5free_memory(names[i]);
        }
        H5Tclose(mem);
    } else {
        size_t len = H5Tget_size(type);
        char *buf = calloc((size_t)n, len + 1), *flat = calloc((size_t)n, len);
        if (!buf || !flat || H5Aread(attr, type, flat) < 0)
            rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot read class_names", ds->path);
        for (hssize_t i = 0; rc == KD_OK && i < n; i++) {
            memcpy(buf + i * (hssize_t)(len + 1), flat + i * (hssize_t)len, len);
            ds->class_names[i] = strdup(buf + i * (hssize_t)(len + 1));
        }
        free(buf);
        free(flat);
    }
    if (rc == KD_OK) ds->n_class_names = (int)n;
done:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    return rc;
}

static int read_root_attributes(hid_t file, kd_dataset *ds, kd_error *err)
{
    int rc;
    if (kd_h5_attr_exists(file, "num_classes")) {
        int64_t c;
        if ((rc = kd_h5_read_attr_int64(file, "num_classes", &c, ds->path, err))) return rc;
        if (c < 2 || c > 1000000)
            return kd_error_set(err, KD_ERR_DATA, "%s: attribute num_classes: expected 2 to 1000000, found %lld",
                                ds->path, (long long)c);
        ds->num_classes = (int)c;
    }
    if (kd_h5_attr_exists(file, "x_scale")) {
        if ((rc = kd_h5_read_attr_double(file, "x_scale", &ds->x_scale, ds->path, err))) return rc;
        if (!isfinite(ds->x_scale) || ds->x_scale == 0.0)
            return kd_error_set(err, KD_ERR_DATA, "%s: attribute x_scale: expected a finite non-zero number, found %g",
                                ds->path, ds->x_scale);
    }
    if (kd_h5_attr_exists(file, "image_shape")) {
        int64_t shape[2];
        int count = 0;
        if ((rc = kd_h5_read_attr_int64_array(file, "image_shape", shape, 2, &count, ds->path, err))) return rc;
        if (count != 2 || shape[0] < 1 || shape[1] < 1 || shape[0] > (1 << 28) || shape[1] > (1 << 28))
            return kd_error_set(err, KD_ERR_DATA, "%s: attribute image_shape: expected [height, width]", ds->path);
        ds->image_shape[0] = (int)shape[0];
        ds->image_shape[1] = (int)shape[1];
    }
    return read_class_names(file, ds, err);
}

/* ---- splits ----------------------------------------------------------------------------- */

static int open_split(hid_t file, kd_dataset *ds, kd_split s, const kd_dataset_options *o, int64_t *dims_of_train,
                      kd_error *err)
{
    kd_split_info *info = &ds->split[s];
    dataset_shape xs, ys;
    int rc;
    snprintf(info->x_path, sizeof info->x_path, "%s", o->x_path[s]);
    snprintf(info->y_path, sizeof info->y_path, "%s", o->y_path[s]);
    if ((rc = read_shape(file, ds->path, info->x_path, &xs, err))) return rc;
    int64_t dim = 0;
    if ((rc = check_features(ds, info->x_path, &xs, &dim, &info->stored_type, err))) return rc;
    if (s == KD_SPLIT_TRAIN) {
        ds->dim = (int)dim;
        *dims_of_train = xs.rank;
        if (xs.rank == 3 && ds->image_shape[0] == 0) {
            ds->image_shape[0] = (int)xs.dims[1];
            ds->image_shape[1] = (int)xs.dims[2];
            add_note(ds, "image_shape taken from the [N, H, W] shape of the features");
        }
    } else if (dim != ds->dim) {
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected %d features per row (as %s), found %lld", ds->path,
                            info->x_path, ds->dim, ds->split[KD_SPLIT_TRAIN].x_path, (long long)dim);
    }
    if (xs.dims[0] == 0)
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected a non-empty %s split, found 0 rows", ds->path,
                            info->x_path, split_names[s]);
    if ((rc = read_shape(file, ds->path, info->y_path, &ys, err))) return rc;
    if ((rc = check_labels_shape(ds, info->y_path, &ys, xs.dims[0], info->x_path, err))) return rc;
    info->present = true;
    info->row_begin = 0;
    info->rows = (int64_t)xs.dims[0];
    info->chunk_rows = xs.chunk_rows;
    int64_t *labels = malloc((size_t)info->rows * sizeof *labels);
    info->labels = malloc((size_t)info->rows * sizeof *info->labels);
    if (!labels || !info->labels) {
        free(labels);
        return kd_error_set(err, KD_ERR_IO, "%s:%s: out of memory for %lld labels", ds->path, info->y_path,
                            (long long)info->rows);
    }
    rc = read_rows(file, ds, info->y_path, 0, info->rows, H5T_NATIVE_INT64, labels, err);
    for (int64_t i = 0; rc == KD_OK && i < info->rows; i++) {
        if (labels[i] < 0 || labels[i] > INT32_MAX)
            rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected labels in 0..C-1, found %lld at row %lld", ds->path,
                              info->y_path, (long long)labels[i], (long long)i);
        else
            info->labels[i] = (int32_t)labels[i];
    }
    free(labels);
    return rc;
}

/* Validation rows off the end of train, for files without their own split. */
static int split_off_validation(kd_dataset *ds, int64_t count, kd_error *err)
{
    kd_split_info *train = &ds->split[KD_SPLIT_TRAIN], *val = &ds->split[KD_SPLIT_VAL];
    if (count >= train->rows)
        return kd_error_set(err, KD_ERR_DATA,
                            "%s:%s: expected more than %lld training rows to split off a validation set "
                            "(data.val_from_train = %lld), found %lld",
                            ds->path, train->x_path, (long long)count, (long long)count, (long long)train->rows);
    *val = *train;
    val->row_begin = train->rows - count;
    val->rows = count;
    val->labels = malloc((size_t)count * sizeof *val->labels);
    if (!val->labels) return kd_error_set(err, KD_ERR_IO, "%s: out of memory", ds->path);
    memcpy(val->labels, train->labels + val->row_begin, (size_t)count * sizeof *val->labels);
    train->rows -= count;
    char note[KD_DATASET_PATH_MAX + 64];
    snprintf(note, sizeof note, "validation = the last %lld rows of %s", (long long)count, train->x_path);
    add_note(ds, note);
    return KD_OK;
}

static int check_label_range(kd_dataset *ds, kd_error *err)
{
    int max_label = -1;
    for (int s = 0; s < KD_SPLIT_COUNT; s++)
        for (int64_t i = 0; ds->split[s].present && i < ds->split[s].rows; i++)
            if (ds->split[s].labels[i] > max_label) max_label = ds->split[s].labels[i];
    if (ds->num_classes == 0) {
        if (max_label < 1)
            return kd_error_set(err, KD_ERR_DATA, "%s: expected labels of at least 2 classes, found only class 0",
                                ds->path);
        ds->num_classes = max_label + 1;
        add_note(ds, "num_classes attribute absent: taken as the largest label + 1");
        return KD_OK;
    }
    for (int s = 0; s < KD_SPLIT_COUNT; s++) {
        kd_split_info *info = &ds->split[s];
        for (int64_t i = 0; info->present && i < info->rows; i++)
            if (info->labels[i] >= ds->num_classes)
                return kd_error_set(err, KD_ERR_DATA,
                                    "%s:%s: expected labels in 0..%d (num_classes = %d), found %d at row %lld",
                                    ds->path, info->y_path, ds->num_classes - 1, ds->num_classes,
                                    (int)info->labels[i], (long long)(info->row_begin + i));
    }
    return KD_OK;
}

int kd_dataset_open(kd_dataset *ds, const char *path, const kd_dataset_options *options, kd_error *err)
{
    memset(ds, 0, sizeof *ds);
    snprintf(ds->path, sizeof ds->path, "%s", path);
    hid_t file = kd_h5_open_read(path, err);
    if (file < 0) return err ? err->code : KD_ERR_IO;
    int64_t train_rank = 0;
    int rc = read_root_attributes(file, ds, err);
    if (rc == KD_OK) rc = open_split(file, ds, KD_SPLIT_TRAIN, options, &train_rank, err);
    if (rc == KD_OK) {
        if (kd_h5_link_exists(file, options->x_path[KD_SPLIT_VAL]))
            rc = open_split(file, ds, KD_SPLIT_VAL, options, &train_rank, err);
        else if (options->val_from_train > 0)
            rc = split_off_validation(ds, options->val_from_train, err);
    }
    if (rc == KD_OK) {
        if (kd_h5_link_exists(file, options->x_path[KD_SPLIT_TEST]))
            rc = open_split(file, ds, KD_SPLIT_TEST, options, &train_rank, err);
        else if (options->require_test)
            rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected a test split, found none", path,
                              options->x_path[KD_SPLIT_TEST]);
    }
    if (rc == KD_OK) rc = check_label_range(ds, err);
    if (rc == KD_OK && !kd_h5_attr_exists(file, "x_scale")) {
        bool u8 = ds->split[KD_SPLIT_TRAIN].stored_type == KD_FEATURE_UINT8;
        ds->x_scale = u8 ? 1.0 / 255.0 : 1.0;
        add_note(ds, u8 ? "x_scale attribute absent: uint8 features scaled by 1/255"
                        : "x_scale attribute absent: features used as stored");
    }
    if (ds->image_shape[0] && (int64_t)ds->image_shape[0] * ds->image_shape[1] != ds->dim && rc == KD_OK)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute image_shape: expected [H, W] with H*W = %d features, found [%d, %d]",
                          path, ds->dim, ds->image_shape[0], ds->image_shape[1]);
    if (H5Fclose(file) < 0 && rc == KD_OK) rc = kd_error_set(err, KD_ERR_IO, "%s: closing failed", path);
    if (rc != KD_OK) kd_dataset_close(ds);
    return rc;
}

int kd_dataset_load(kd_dataset *ds, kd_split split, kd_error *err)
{
    kd_split_info *info = &ds->split[split];
    if (!info->present)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected a %s split, found none", ds->path, split_names[split]);
    if (info->features) return KD_OK;
    size_t elem = info->stored_type == KD_FEATURE_UINT8 ? 1 : sizeof(float);
    size_t count = (size_t)info->rows * (size_t)ds->dim;
    void *buf = malloc(count * elem);
    if (!buf)
        return kd_error_set(err, KD_ERR_IO, "%s:%s: out of memory for %zu features", ds->path, info->x_path, count);
    hid_t file = kd_h5_open_read(ds->path, err);
    if (file < 0) {
        free(buf);
        return err ? err->code : KD_ERR_IO;
    }
    hid_t mem_type = info->stored_type == KD_FEATURE_UINT8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
    int rc = read_rows(file, ds, info->x_path, info->row_begin, info->rows, mem_type, buf, err);
    H5Fclose(file);
    if (rc == KD_OK && info->stored_type == KD_FEATURE_FLOAT32) {
        const float *x = buf;
        for (size_t i = 0; i < count; i++)
            if (!isfinite(x[i])) {
                rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected finite features, found %s at row %lld, column %zu",
                                  ds->path, info->x_path, isnan(x[i]) ? "NaN" : "Inf",
                                  (long long)(info->row_begin + (int64_t)(i / (size_t)ds->dim)), i % (size_t)ds->dim);
                break;
            }
    }
    if (rc != KD_OK) {
        free(buf);
        return rc;
    }
    info->features = buf;
    return KD_OK;
}

void kd_dataset_close(kd_dataset *ds)
{
    for (int s = 0; s < KD_SPLIT_COUNT; s++) {
        free(ds->split[s].labels);
        free(ds->split[s].features);
        ds->split[s].labels = NULL;
        ds->split[s].features = NULL;
        ds->split[s].present = false;
    }
    for (int i = 0; i < ds->n_class_names; i++) free(ds->class_names[i]);
    ds->n_class_names = 0;
}

void kd_dataset_row(const kd_dataset *ds, kd_split split, int64_t row, float *out)
{
    const kd_split_info *info = &ds->split[split];
    KD_ASSERT(info->features != NULL, "split %s is not loaded", split_names[split]);
    KD_ASSERT(row >= 0 && row < info->rows, "row %lld outside the %s split of %lld rows", (long long)row,
              split_names[split], (long long)info->rows);
    float scale = (float)ds->x_scale;
    size_t d = (size_t)ds->dim;
    if (info->stored_type == KD_FEATURE_UINT8) {
        const uint8_t *x = (const uint8_t *)info->features + (size_t)row * d;
        for (size_t j = 0; j < d; j++) out[j] = (float)x[j] * scale;
    } else {
        const float *x = (const float *)info->features + (size_t)row * d;
        for (size_t j = 0; j < d; j++) out[j] = x[j] * scale;
    }
}
