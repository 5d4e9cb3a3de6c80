/* inspect_data.c - `kdtrain info FILE` for data sets (see inspect.h): the report
 * for a file the data.* keys open, and for one they do not, every dataset in it
 * with the keys that would open it. Suggested keys are tried with
 * kd_dataset_open before they are printed: a suggestion is never a guess. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/inspect.h"

#include "io/h5util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LISTED 64

/* One dataset of the file, as the listing and the suggestions need it. */
typedef struct listed {
    char name[KD_DATASET_PATH_MAX];
    int rank;
    hsize_t dims[8];
    H5T_class_t cls;
    size_t size;
    H5T_sign_t sign;
} listed;

typedef struct listing {
    listed item[MAX_LISTED];
    int n, more; /* more: datasets beyond MAX_LISTED */
} listing;

static const char *type_name(H5T_class_t cls, size_t size, H5T_sign_t sign, char *buf, size_t n)
{
    if (cls == H5T_INTEGER)
        snprintf(buf, n, "%s%zu", sign == H5T_SGN_NONE ? "uint" : "int", 8 * size);
    else if (cls == H5T_FLOAT)
        snprintf(buf, n, "float%zu", 8 * size);
    else if (cls == H5T_STRING)
        snprintf(buf, n, "strings");
    else
        snprintf(buf, n, "non-numeric");
    return buf;
}

static const char *dims_text(int rank, const hsize_t *dims, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %llu" : "%llu", (unsigned long long)dims[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}

static bool describe(hid_t file, const char *name, listed *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s%s", name[0] == '/' ? "" : "/", name);
    hid_t dset = H5Dopen2(file, d->name, H5P_DEFAULT);
    if (dset < 0) return false;
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
    d->rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (d->rank >= 0 && d->rank <= 8) H5Sget_simple_extent_dims(space, d->dims, NULL);
    d->cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    d->size = type >= 0 ? H5Tget_size(type) : 0;
    d->sign = d->cls == H5T_INTEGER ? H5Tget_sign(type) : H5T_SGN_NONE;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(dset);
    return d->rank >= 0 && d->rank <= 8;
}

static herr_t visit_link(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    listing *l = data;
    if (info->type != H5L_TYPE_HARD) return 0;
    listed d;
    if (!describe(group, name, &d)) return 0; /* a group, or a dataset HDF5 cannot open */
    if (l->n == MAX_LISTED)
        l->more++;
    else
        l->item[l->n++] = d;
    return 0;
}

/* How the features of a split are stored: shape, type, chunks and filters. */
static void print_storage(hid_t file, const char *name, FILE *out)
{
    listed d;
    if (!describe(file, name, &d)) return;
    char t[32], dims[128];
    fprintf(out, "%s %s", dims_text(d.rank, d.dims, dims, sizeof dims), type_name(d.cls, d.size, d.sign, t, sizeof t));
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t dcpl = dset >= 0 ? H5Dget_create_plist(dset) : H5I_INVALID_HID;
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t chunk[8];
        if (H5Pget_chunk(dcpl, 8, chunk) >= 1) fprintf(out, ", chunks of %llu rows", (unsigned long long)chunk[0]);
        int filters = H5Pget_nfilters(dcpl);
        for (int i = 0; i < filters; i++) {
            unsigned flags, config;
            size_t n_values = 0;
            char fname[64] = "";
            H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values, NULL, sizeof fname, fname, &config);
            fprintf(out, "%s%s", i ? "+" : ", ", f == H5Z_FILTER_DEFLATE ? "deflate" : f == H5Z_FILTER_SHUFFLE ? "shuffle" : fname[0] ? fname : "filter");
        }
    } else if (dcpl >= 0) {
        fprintf(out, ", contiguous");
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (dset >= 0) H5Dclose(dset);
}

/* ---- a file the options open ----------------------------------------------------------- */

static void print_report(const kd_dataset *ds, bool schema, FILE *out)
{
    fprintf(out, "%s: a data set%s\n", ds->path, schema ? " in kdtrain's schema (docs/DATA.md)" : ", opened with the data.* keys given");
    fprintf(out, "  features     %d per row", ds->dim);
    if (ds->image_shape[0]) fprintf(out, " (images %d x %d)", ds->image_shape[0], ds->image_shape[1]);
    fprintf(out, ", multiplied by x_scale = %g on the way in\n", ds->x_scale);
    fprintf(out, "  classes      %d", ds->num_classes);
    for (int c = 0; c < ds->n_class_names; c++) fprintf(out, "%s%s", c ? ", " : ": ", ds->class_names[c]);
    fprintf(out, "\n");
    if (ds->notes[0]) fprintf(out, "  defaults     %s\n", ds->notes);
    hid_t file = kd_h5_open_read(ds->path, NULL);
    fprintf(out, "  split  rows       from\n");
    for (int s = 0; s < KD_SPLIT_COUNT; s++) {
        const kd_split_info *si = &ds->split[s];
        if (!si->present) {
            fprintf(out, "  %-5s  %-10s %s\n", kd_split_name((kd_split)s), "absent",
                    s == KD_SPLIT_TEST ? "(no test split: eval --split test and the pipeline need one)" : "");
            continue;
        }
        fprintf(out, "  %-5s  %-10lld %s rows %lld..%lld, labels %s; ", kd_split_name((kd_split)s), (long long)si->rows,
                si->x_path, (long long)si->row_begin, (long long)(si->row_begin + si->rows - 1), si->y_path);
        if (file >= 0) print_storage(file, si->x_path, out);
        fprintf(out, "\n");
    }
    if (file >= 0) H5Fclose(file);
    fprintf(out, "  class counts\n  %-6s %-20s", "class", "name");
    for (int s = 0; s < KD_SPLIT_COUNT; s++)
        if (ds->split[s].present) fprintf(out, " %9s", kd_split_name((kd_split)s));
    fprintf(out, "\n");
    int64_t *counts = calloc((size_t)ds->num_classes * KD_SPLIT_COUNT, sizeof *counts);
    if (!counts) return;
    for (int s = 0; s < KD_SPLIT_COUNT; s++)
        for (int64_t i = 0; ds->split[s].present && i < ds->split[s].rows; i++)
            counts[(size_t)ds->split[s].labels[i] * KD_SPLIT_COUNT + (size_t)s]++;
    for (int c = 0; c < ds->num_classes; c++) {
        fprintf(out, "  %-6d %-20.20s", c, c < ds->n_class_names ? ds->class_names[c] : "");
        for (int s = 0; s < KD_SPLIT_COUNT; s++)
            if (ds->split[s].present) fprintf(out, " %9lld", (long long)counts[(size_t)c * KD_SPLIT_COUNT + (size_t)s]);
        fprintf(out, "\n");
    }
    free(counts);
}

/* Float features are checked for NaN and Inf only when loaded: load each split
 * that fits in 1 GiB, as training would, and report what was not scanned. */
static int check_values(kd_dataset *ds, FILE *out, kd_error *err)
{
    for (int s = 0; s < KD_SPLIT_COUNT; s++) {
        kd_split_info *si = &ds->split[s];
        if (!si->present || si->stored_type == KD_FEATURE_UINT8) continue;
        double bytes = (double)si->rows * ds->dim * sizeof(float);
        if (bytes > (double)(1u << 30)) {
            fprintf(out, "  values       %s not scanned for NaN/Inf (%.1f GB; training checks each block it streams)\n",
                    kd_split_name((kd_split)s), bytes / 1e9);
            continue;
        }
        int rc = kd_dataset_load(ds, (kd_split)s, err);
        if (rc) return rc;
        free(si->features);
        si->features = NULL;
        fprintf(out, "  values       %s: every feature finite\n", kd_split_name((kd_split)s));
    }
    return KD_OK;
}

/* ---- a file they do not open: its datasets and the keys that would ----------------------- */

static bool name_has(const char *name, const char *word)
{
    char lower[KD_DATASET_PATH_MAX];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof lower; i++) lower[i] = (char)tolower((unsigned char)name[i]);
    lower[i] = '\0';
    return strstr(lower, word) != NULL;
}

static int split_of(const char *name)
{
    if (name_has(name, "test")) return KD_SPLIT_TEST;
    if (name_has(name, "val")) return KD_SPLIT_VAL;
    if (name_has(name, "train")) return KD_SPLIT_TRAIN;
    return -1;
}

static bool is_features(const listed *d)
{
    bool u8 = d->cls == H5T_INTEGER && d->size == 1 && d->sign == H5T_SGN_NONE;
    bool fp = d->cls == H5T_FLOAT && (d->size == 4 || d->size == 8);
    return (u8 || fp) && d->rank >= 2 && d->dims[0] > 0;
}

static bool is_labels(const listed *d)
{
    return d->cls == H5T_INTEGER && (d->rank == 1 || (d->rank == 2 && d->dims[1] == 1)) && d->dims[0] > 0;
}

/* Features and labels of one split: named for it (or, for train, unnamed when
 * they are the file's only pair), with the same number of rows. */
static bool pick_pair(const listing *l, int split, bool only_pair, int *x, int *y)
{
    *x = *y = -1;
    for (int i = 0; i < l->n && *x < 0; i++)
        if (is_features(&l->item[i]) && (split_of(l->item[i].name) == split || only_pair)) *x = i;
    for (int i = 0; *x >= 0 && i < l->n && *y < 0; i++)
        if (is_labels(&l->item[i]) && l->item[i].dims[0] == l->item[*x].dims[0] &&
            (split_of(l->item[i].name) == split || only_pair))
            *y = i;
    return *x >= 0 && *y >= 0;
}

static void suggest(const char *path, const listing *l, const kd_dataset_options *given, FILE *out)
{
    int features = 0, labels = 0;
    for (int i = 0; i < l->n; i++) {
        features += is_features(&l->item[i]);
        labels += is_labels(&l->item[i]);
    }
    kd_dataset_options o = *given;
    const char *keys[KD_SPLIT_COUNT][2] = {{"train_x", "train_y"}, {"val_x", "val_y"}, {"test_x", "test_y"}};
    bool found[KD_SPLIT_COUNT] = {false, false, false};
    for (int s = 0; s < KD_SPLIT_COUNT; s++) {
        int x, y;
        bool only = s == KD_SPLIT_TRAIN && features == 1 && labels == 1;
        if (!pick_pair(l, s, only, &x, &y)) continue;
        snprintf(o.x_path[s], KD_DATASET_PATH_MAX, "%s", l->item[x].name);
        snprintf(o.y_path[s], KD_DATASET_PATH_MAX, "%s", l->item[y].name);
        found[s] = true;
    }
    if (!found[KD_SPLIT_TRAIN]) {
        fprintf(out, "  no data.* keys suggested: kdtrain needs features [N, D] or [N, H, W] (uint8, float32 or float64)\n"
                     "  and integer labels [N] with the same N, named for their split (train, val, test) unless the file\n"
                     "  holds just one such pair; set data.train_x and data.train_y (and val_x/val_y, test_x/test_y) by hand\n");
        return;
    }
    o.require_test = false;
    kd_dataset ds;
    kd_error err;
    kd_error_clear(&err);
    if (kd_dataset_open(&ds, path, &o, &err)) {
        fprintf(out, "  the likeliest data.* keys do not open it either: %s\n", err.message);
        return;
    }
    kd_dataset_close(&ds);
    fprintf(out, "  these data.* keys open it (tried):\n   ");
    for (int s = 0; s < KD_SPLIT_COUNT; s++)
        if (found[s]) fprintf(out, " --set data.%s=%s --set data.%s=%s", keys[s][0], o.x_path[s], keys[s][1], o.y_path[s]);
    fprintf(out, "\n  or in a config's [data] section:\n");
    for (int s = 0; s < KD_SPLIT_COUNT; s++)
        if (found[s]) fprintf(out, "    %s = %s\n    %s = %s\n", keys[s][0], o.x_path[s], keys[s][1], o.y_path[s]);
    if (!found[KD_SPLIT_VAL])
        fprintf(out, "  (no validation pair found: data.val_from_train = %lld rows off the end of train are used)\n",
                (long long)o.val_from_train);
    if (!found[KD_SPLIT_TEST]) fprintf(out, "  (no test pair found: eval --split test and kdtrain run need one)\n");
}

static void print_listing(const char *path, const kd_dataset_options *o, FILE *out)
{
    hid_t file = kd_h5_open_read(path, NULL);
    if (file < 0) return;
    listing *l = calloc(1, sizeof *l);
    if (l && H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, visit_link, l) >= 0) {
        fprintf(out, "%s: not a data set that the data.* keys open; it holds %d dataset%s%s\n", path, l->n + l->more,
                l->n + l->more == 1 ? "" : "s", l->n ? ":" : "");
        for (int i = 0; i < l->n; i++) {
            char t[32], dims[128];
            const listed *d = &l->item[i];
            fprintf(out, "    %-32s %-22s %s%s\n", d->name, dims_text(d->rank, d->dims, dims, sizeof dims),
                    type_name(d->cls, d->size, d->sign, t, sizeof t),
                    is_features(d) ? "  (could be features)" : is_labels(d) ? "  (could be labels)" : "");
        }
        if (l->more) fprintf(out, "    ... and %d more\n", l->more);
        H5Fclose(file);
        suggest(path, l, o, out);
    } else {
        H5Fclose(file);
    }
    free(l);
}

int kd_inspect_dataset(const char *path, const kd_dataset_options *options, FILE *out, kd_error *err)
{
    kd_dataset_options def;
    kd_dataset_options_default(&def);
    bool schema = true;
    for (int s = 0; s < KD_SPLIT_COUNT; s++)
        schema = schema && !strcmp(options->x_path[s], def.x_path[s]) && !strcmp(options->y_path[s], def.y_path[s]);
    kd_dataset ds;
    int rc = kd_dataset_open(&ds, path, options, err);
    if (rc) {
        /* Training's datasets missing: a foreign layout, so list what is there. Any
         * other error is a fault of the data itself, said as training says it. */
        hid_t file = kd_h5_open_read(path, NULL);
        bool foreign = file >= 0 && (!kd_h5_link_exists(file, options->x_path[KD_SPLIT_TRAIN]) ||
                                     !kd_h5_link_exists(file, options->y_path[KD_SPLIT_TRAIN]));
        if (file >= 0) H5Fclose(file);
        if (foreign) print_listing(path, options, out);
        return rc;
    }
    print_report(&ds, schema, out);
    rc = check_values(&ds, out, err);
    kd_dataset_close(&ds);
    return rc;
}
