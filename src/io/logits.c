/* logits.c - reading logits files (see logits.h): specs resolved to a source, each
 * source read by its reader (HDF5 here, .npy through io/npy.h) into float32 logits and
 * int64 labels, then one validation for all of them. */
#define _POSIX_C_SOURCE 200809L
#include "io/logits.h"

#include "io/h5util.h"
#include "io/npy.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_CLASSES 1000000

/* One resolved spec: a file, and for HDF5 a dataset. */
typedef struct source {
    char file[KD_PATH_MAX];
    char dataset[256];
    bool npy;
} source;

/* ---- specs ----------------------------------------------------------------------------- */

static bool is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* `what` is "logits" or "labels", for messages; own is the logits' source, which
 * ":/dataset" refers to (NULL when resolving the logits themselves). */
static int parse_spec(const char *text, const char *what, const source *own, source *s, kd_error *err)
{
    memset(s, 0, sizeof *s);
    const char *file = text, *dataset = "";
    size_t file_len = strlen(text);
    if (text[0] == ':' && text[1] == '/') {
        if (!own || own->npy)
            return kd_error_set(err, KD_ERR_CONFIG,
                                "%s %s: names a dataset of the logits' own file, but %s; expected FILE.npy or FILE:/dataset",
                                what, text, own ? "the logits are a .npy file" : "there is no such file yet");
        file = own->file;
        file_len = strlen(own->file);
        dataset = text + 1;
    } else {
        const char *split = NULL;
        for (const char *p = strstr(text, ":/"); p; p = strstr(p + 1, ":/")) split = p;
        if (split && split > text && !is_regular_file(text)) {
            file_len = (size_t)(split - text);
            dataset = split + 1;
        }
    }
    if (file_len == 0) return kd_error_set(err, KD_ERR_CONFIG, "%s '%s': expected FILE or FILE:/dataset, found no file", what, text);
    if (file_len >= sizeof s->file || strlen(dataset) >= sizeof s->dataset)
        return kd_error_set(err, KD_ERR_CONFIG, "%s %.200s...: expected a shorter path", what, text);
    memcpy(s->file, file, file_len);
    s->file[file_len] = '\0';
    snprintf(s->dataset, sizeof s->dataset, "%s", dataset);
    if (ends_with(s->file, ".npz"))
        return kd_error_set(err, KD_ERR_CONFIG,
                            "%s: expected a .npy file or HDF5, found a .npz archive (np.load it and np.save each array as .npy)",
                            s->file);
    s->npy = kd_npy_is_npy(s->file);
    if (s->npy && s->dataset[0])
        return kd_error_set(err, KD_ERR_CONFIG, "%s:%s: a .npy file holds one array; expected no :/dataset after it", s->file,
                            s->dataset);
    return KD_OK;
}

/* name with its last "logits" replaced by "labels", only in the part after the last
 * '/' when file_name_only; false when there is none. */
static bool labels_sibling(const char *name, bool file_name_only, char *out, size_t size)
{
    const char *from = name;
    if (file_name_only) {
        const char *slash = strrchr(name, '/');
        if (slash) from = slash + 1;
    }
    const char *last = NULL;
    for (const char *p = strstr(from, "logits"); p; p = strstr(p + 1, "logits")) last = p;
    if (!last || strlen(name) >= size) return false;
    snprintf(out, size, "%s", name);
    memcpy(out + (last - name), "labels", 6);
    return true;
}

/* "FILE:/dataset" or "FILE", as messages name a source. */
static void source_name(const source *s, char *out, size_t size)
{
    snprintf(out, size, "%s%s%s", s->file, s->dataset[0] ? ":" : "", s->dataset);
}

/* ---- HDF5 --------------------------------------------------------------------------- */

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

static int check_logits_shape(const char *name, int64_t rows, int64_t classes, kd_error *err)
{
    if (rows < 1 || classes < 2 || classes > MAX_CLASSES)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected at least 1 row and 2 to 1000000 classes, found [%lld, %lld]",
                            name, (long long)rows, (long long)classes);
    size_t bytes;
    if (__builtin_mul_overflow((size_t)rows, (size_t)classes * sizeof(float), &bytes))
        return kd_error_set(err, KD_ERR_DATA, "%s: expected a size that fits memory, found [%lld, %lld]", name,
                            (long long)rows, (long long)classes);
    return KD_OK;
}

static int h5_read_logits(hid_t file, const char *path, const char *name, kd_logits *out, kd_error *err)
{
    int rank;
    hsize_t dims[2] = {0, 0};
    H5T_class_t cls;
    size_t size;
    hid_t dset = open_dataset(file, path, name, &rank, dims, &cls, &size, err);
    if (dset < 0) return KD_ERR_DATA;
    char full[KD_PATH_MAX + 300];
    snprintf(full, sizeof full, "%s:%s", path, name);
    int rc = KD_OK;
    if (cls != H5T_FLOAT || (size != 4 && size != 8))
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected float32 or float64 logits, found %s of %zu bytes", full,
                          cls == H5T_INTEGER ? "integers" : cls == H5T_FLOAT ? "floats" : "a non-numeric type", size);
    else if (rank != 2)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected logits of rank 2 [N, C], found rank %d", full, rank);
    else if (dims[0] > INT64_MAX || dims[1] > INT64_MAX)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected a shape below 2^63, found a larger one", full);
    if (!rc) rc = check_logits_shape(full, (int64_t)dims[0], (int64_t)dims[1], err);
    if (!rc) {
        out->rows = (int64_t)dims[0];
        out->classes = (int)dims[1];
        out->stored_double = size == 8;
        out->logits = malloc((size_t)dims[0] * (size_t)dims[1] * sizeof(float));
        if (!out->logits)
            rc = kd_error_set(err, KD_ERR_IO, "%s: out of memory for %llu x %llu logits", full,
                              (unsigned long long)dims[0], (unsigned long long)dims[1]);
    }
    if (!rc && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->logits) < 0) {
        char why[256];
        rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot read (%s)", full, kd_h5_last_message(why, sizeof why));
    }
    H5Dclose(dset);
    return rc;
}

static int h5_read_labels(hid_t file, const char *path, const char *name, int64_t **wide, int64_t *n, kd_error *err)
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
    else if (dims[0] > (hsize_t)(SIZE_MAX / sizeof **wide))
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: expected a size that fits memory, found %llu labels", path, name,
                          (unsigned long long)dims[0]);
    if (!rc) {
        *n = (int64_t)dims[0];
        *wide = malloc(dims[0] ? (size_t)dims[0] * sizeof **wide : 1);
        if (!*wide) rc = kd_error_set(err, KD_ERR_IO, "%s:%s: out of memory for %lld labels", path, name, (long long)*n);
    }
    if (!rc && H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, *wide) < 0) {
        char why[256];
        rc = kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot read (%s)", path, name, kd_h5_last_message(why, sizeof why));
    }
    H5Dclose(dset);
    return rc;
}

/* ---- .npy ---------------------------------------------------------------------------- */

static int npy_read_logits(const char *path, kd_logits *out, kd_error *err)
{
    kd_npy_header h;
    int rc = kd_npy_read_header(path, &h, err);
    if (rc) return rc;
    if (h.kind != 'f')
        return kd_error_set(err, KD_ERR_DATA, "%s: expected float32 or float64 logits, found %s ('%s')", path, h.type_name,
                            h.descr);
    if (h.rank != 2)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected logits of rank 2 [N, C], found rank %d", path, h.rank);
    rc = check_logits_shape(path, h.dims[0], h.dims[1], err);
    if (!rc) rc = kd_npy_read_float(path, &out->logits, &h, err);
    if (rc) return rc;
    out->rows = h.dims[0];
    out->classes = (int)h.dims[1];
    out->stored_double = h.item_size == 8;
    return KD_OK;
}

static int npy_read_labels(const char *path, int64_t **wide, int64_t *n, kd_error *err)
{
    kd_npy_header h;
    int rc = kd_npy_read_header(path, &h, err);
    if (rc) return rc;
    if (h.kind != 'i' && h.kind != 'u')
        return kd_error_set(err, KD_ERR_DATA, "%s: expected integer class labels, found %s ('%s')", path, h.type_name,
                            h.descr);
    if (h.rank == 2 && h.dims[1] != 1)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected labels of shape [N] or [N, 1], found [%lld, %lld]", path,
                            (long long)h.dims[0], (long long)h.dims[1]);
    rc = kd_npy_read_int64(path, wide, &h, err);
    if (!rc) *n = h.dims[0];
    return rc;
}

/* ---- validation ----------------------------------------------------------------------- */

static int check_values(kd_logits *out, const char *zname, const kd_logits_read_options *o, kd_error *err)
{
    const size_t C = (size_t)out->classes, n = (size_t)out->rows * C;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out->logits[i]))
            /* float64 values beyond float's range become Inf on the way in: say so. */
            return kd_error_set(err, KD_ERR_DATA, "%s: expected finite logits, found %s at row %zu, column %zu%s", zname,
                                isnan(out->logits[i]) ? "NaN" : "Inf", i / C, i % C,
                                out->stored_double ? " (or a float64 beyond float32's range)" : "");
    if (o->probabilities) {
        for (int64_t r = 0; r < out->rows; r++) {
            float *p = out->logits + (size_t)r * C;
            double sum = 0;
            for (size_t c = 0; c < C; c++) {
                if (p[c] < 0)
                    return kd_error_set(err, KD_ERR_DATA,
                                        "%s: expected probabilities (non-negative, rows summing to 1), found %g at row %lld, column %zu",
                                        zname, (double)p[c], (long long)r, c);
                sum += p[c];
            }
            if (fabs(sum - 1.0) > KD_LOGITS_PROBABILITY_TOLERANCE)
                return kd_error_set(err, KD_ERR_DATA,
                                    "%s: expected probabilities (rows summing to 1 within %g), found row %lld summing to %.6g",
                                    zname, KD_LOGITS_PROBABILITY_TOLERANCE, (long long)r, sum);
        }
        for (size_t i = 0; i < n; i++) {
            double p = out->logits[i];
            out->logits[i] = (float)log(p > KD_LOGITS_PROBABILITY_FLOOR ? p : KD_LOGITS_PROBABILITY_FLOOR);
        }
        out->from_probabilities = true;
    } else if (!o->allow_probability_rows && kd_logits_look_like_probabilities(out)) {
        return kd_error_set(err, KD_ERR_DATA,
                            "%s: expected logits, found rows that all lie in [0, 1] and sum to 1: these look like "
                            "probabilities; pass --probabilities to take their log",
                            zname);
    }
    return KD_OK;
}

/* Labels (wide, n of them, from yname) against the logits named zref. */
static int attach_labels(kd_logits *out, const int64_t *wide, int64_t n, const char *yname, const char *zref,
                         kd_error *err)
{
    if (n != out->rows)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected %lld labels (%s has %lld rows), found %lld", yname,
                            (long long)out->rows, zref, (long long)out->rows, (long long)n);
    out->labels = malloc(n ? (size_t)n * sizeof *out->labels : 1);
    if (!out->labels) return kd_error_set(err, KD_ERR_IO, "%s: out of memory for %lld labels", yname, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if (wide[i] < 0 || wide[i] >= out->classes)
            return kd_error_set(err, KD_ERR_DATA, "%s: expected labels in 0..%d (%s has %d classes), found %lld at row %lld",
                                yname, out->classes - 1, zref, out->classes, (long long)wide[i], (long long)i);
        out->labels[i] = (int32_t)wide[i];
    }
    return KD_OK;
}

/* ---- reading -------------------------------------------------------------------------- */

static int read_logits_source(const source *z, kd_logits *out, kd_error *err)
{
    if (z->npy) return npy_read_logits(z->file, out, err);
    hid_t file = kd_h5_open_read(z->file, err);
    if (file < 0) return err && err->code ? err->code : KD_ERR_IO;
    int rc = h5_read_logits(file, z->file, z->dataset, out, err);
    /* The provenance attributes are optional; a wrong type is ignored, not fatal. */
    if (!rc && kd_h5_attr_exists(file, "model"))
        kd_h5_read_attr_string(file, "model", out->model, sizeof out->model, z->file, NULL);
    if (!rc && kd_h5_attr_exists(file, "split"))
        kd_h5_read_attr_string(file, "split", out->split, sizeof out->split, z->file, NULL);
    if (H5Fclose(file) < 0 && !rc) rc = kd_error_set(err, KD_ERR_IO, "%s: closing failed", z->file);
    return rc;
}

static int read_labels_source(const source *y, int64_t **wide, int64_t *n, kd_error *err)
{
    if (y->npy) return npy_read_labels(y->file, wide, n, err);
    hid_t file = kd_h5_open_read(y->file, err);
    if (file < 0) return err && err->code ? err->code : KD_ERR_IO;
    int rc = h5_read_labels(file, y->file, y->dataset, wide, n, err);
    if (H5Fclose(file) < 0 && !rc) rc = kd_error_set(err, KD_ERR_IO, "%s: closing failed", y->file);
    return rc;
}

/* The labels of z when none are named (logits.h): *found false when the rule finds none,
 * y then holding where they were looked for. */
static int find_labels(const source *z, source *y, bool *found, kd_error *err)
{
    memset(y, 0, sizeof *y);
    *found = false;
    if (z->npy) {
        y->npy = true;
        if (!labels_sibling(z->file, true, y->file, sizeof y->file)) return KD_OK;
        *found = is_regular_file(y->file);
        return KD_OK;
    }
    snprintf(y->file, sizeof y->file, "%s", z->file);
    hid_t file = kd_h5_open_read(z->file, err);
    if (file < 0) return err && err->code ? err->code : KD_ERR_IO;
    if (labels_sibling(z->dataset, false, y->dataset, sizeof y->dataset) && kd_h5_link_exists(file, y->dataset))
        *found = true;
    else {
        snprintf(y->dataset, sizeof y->dataset, "%s", KD_LABELS_DEFAULT_PATH);
        *found = kd_h5_link_exists(file, y->dataset);
    }
    H5Fclose(file);
    return KD_OK;
}

/* z resolved; y resolved (named) or NULL (found by the rule). */
static int read_sources(kd_logits *out, const source *z, const source *named_y, const kd_logits_read_options *o,
                        kd_error *err)
{
    static const kd_logits_read_options none = {false, false, false};
    if (!o) o = &none;
    char zname[KD_PATH_MAX + 300], yname[KD_PATH_MAX + 300];
    source_name(z, zname, sizeof zname);
    int rc = read_logits_source(z, out, err);
    if (!rc) rc = check_values(out, zname, o, err);
    source y;
    bool have_y = true;
    if (!rc && named_y) {
        y = *named_y;
    } else if (!rc) {
        rc = find_labels(z, &y, &have_y, err);
        if (!rc && !have_y && !o->labels_optional) {
            if (!z->npy) {
                have_y = true; /* reading the missing /labels says what is missing */
            } else if (strcmp(y.file, "") == 0) {
                rc = kd_error_set(err, KD_ERR_CONFIG,
                                  "%s: no labels named, and the file name has no \"logits\" to find them by (a name "
                                  "like val_logits.npy finds val_labels.npy); expected them named (--labels FILE.npy "
                                  "or FILE:/dataset)",
                                  z->file);
            } else {
                rc = kd_error_set(err, KD_ERR_CONFIG,
                                  "%s: no labels named, and %s (the name with its last \"logits\" replaced by \"labels\") "
                                  "does not exist; expected it, or the labels named (--labels FILE.npy or FILE:/dataset)",
                                  z->file, y.file);
            }
        }
    }
    if (!rc && have_y) {
        if (!y.npy && !y.dataset[0]) snprintf(y.dataset, sizeof y.dataset, "%s", KD_LABELS_DEFAULT_PATH);
        source_name(&y, yname, sizeof yname);
        /* Messages name the logits by dataset alone when both are in one HDF5 file. */
        const char *zref = !y.npy && !z->npy && strcmp(y.file, z->file) == 0 ? z->dataset : zname;
        int64_t *wide = NULL, n = 0;
        rc = read_labels_source(&y, &wide, &n, err);
        if (!rc) rc = attach_labels(out, wide, n, yname, zref, err);
        free(wide);
        if (!rc) {
            out->labels_source = y.npy ? KD_LOGITS_NPY : KD_LOGITS_HDF5;
            snprintf(out->labels_file, sizeof out->labels_file, "%s", y.file);
            snprintf(out->labels_dataset, sizeof out->labels_dataset, "%s", y.dataset);
        }
    }
    if (rc) {
        kd_logits_free(out);
        return rc;
    }
    out->source = z->npy ? KD_LOGITS_NPY : KD_LOGITS_HDF5;
    snprintf(out->file, sizeof out->file, "%s", z->file);
    snprintf(out->dataset, sizeof out->dataset, "%s", z->dataset);
    return KD_OK;
}

int kd_logits_read_spec(kd_logits *out, const char *logits_spec, const char *labels_spec,
                        const kd_logits_read_options *o, kd_error *err)
{
    memset(out, 0, sizeof *out);
    source z, y;
    int rc = parse_spec(logits_spec, "logits", NULL, &z, err);
    if (!rc && !z.npy && !z.dataset[0]) snprintf(z.dataset, sizeof z.dataset, "%s", KD_LOGITS_DEFAULT_PATH);
    if (!rc && labels_spec) rc = parse_spec(labels_spec, "labels", &z, &y, err);
    if (rc) return rc;
    return read_sources(out, &z, labels_spec ? &y : NULL, o, err);
}

int kd_logits_read(kd_logits *out, const char *path, const char *logits_path, const char *labels_path,
                   kd_error *err)
{
    memset(out, 0, sizeof *out);
    source z = {.npy = false}, y = {.npy = false};
    if (strlen(path) >= sizeof z.file)
        return kd_error_set(err, KD_ERR_CONFIG, "%.200s...: expected a shorter path", path);
    snprintf(z.file, sizeof z.file, "%s", path);
    snprintf(z.dataset, sizeof z.dataset, "%s", logits_path ? logits_path : KD_LOGITS_DEFAULT_PATH);
    snprintf(y.file, sizeof y.file, "%s", path);
    snprintf(y.dataset, sizeof y.dataset, "%s", labels_path ? labels_path : KD_LABELS_DEFAULT_PATH);
    const kd_logits_read_options o = {.allow_probability_rows = true};
    return read_sources(out, &z, &y, &o, err);
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
        if (fabs(sum - 1.0) > KD_LOGITS_PROBABILITY_TOLERANCE) return false;
    }
    return l->rows > 0;
}
