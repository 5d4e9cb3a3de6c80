/* h5util.c - see h5util.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/h5util.h"

#include "io/fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void kd_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct walk_state {
    char *buf;
    size_t size;
} walk_state;

static herr_t take_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    walk_state *state = data;
    if (n == 0 && e->desc) snprintf(state->buf, state->size, "%s", e->desc);
    return 0;
}

const char *kd_h5_last_message(char *buf, size_t size)
{
    walk_state state = {buf, size};
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, &state);
    return buf;
}

hid_t kd_h5_open_read(const char *path, kd_error *err)
{
    kd_h5_quiet();
    struct stat st;
    if (stat(path, &st) != 0) {
        kd_error_set(err, KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return H5I_INVALID_HID;
    }
    if (!S_ISREG(st.st_mode)) {
        kd_error_set(err, KD_ERR_IO, "%s: expected an HDF5 file, found a directory or device", path);
        return H5I_INVALID_HID;
    }
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        kd_error_set(err, KD_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        return H5I_INVALID_HID;
    }
    fclose(probe);
    htri_t is_hdf5 = H5Fis_hdf5(path);
    if (is_hdf5 <= 0) {
        kd_error_set(err, KD_ERR_DATA, "%s: expected an HDF5 file, found %s", path,
                     st.st_size == 0 ? "an empty file" : "no HDF5 signature");
        return H5I_INVALID_HID;
    }
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        char msg[256];
        kd_error_set(err, KD_ERR_DATA, "%s: cannot open as HDF5, the file is damaged or truncated (%s)",
                     path, kd_h5_last_message(msg, sizeof msg));
        return H5I_INVALID_HID;
    }
    return file;
}

/* The file is built in memory (the core driver, no backing store) and written out
 * whole by kd_file_write_atomic at commit: HDF5 never writes to disk itself, so a full
 * disk or a failing device is one clean write error, and no half-closed HDF5 file is
 * left for the library's exit handler to trip over. */
int kd_h5_atomic_create(kd_h5_atomic *af, const char *path, kd_error *err)
{
    kd_h5_quiet();
    af->file = H5I_INVALID_HID;
    if (strlen(path) + 32 >= sizeof af->final_path)
        return kd_error_set(err, KD_ERR_IO, "%s: path too long", path);
    snprintf(af->final_path, sizeof af->final_path, "%s", path);
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp-%ld", path, (long)getpid());
    char msg[256];
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return kd_error_set(err, KD_ERR_LIBRARY, "%s: cannot set up an in-memory HDF5 file (%s)", path,
                            kd_h5_last_message(msg, sizeof msg));
    }
    af->file = H5Fcreate(af->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (af->file < 0)
        return kd_error_set(err, KD_ERR_IO, "%s: cannot create (%s)", af->tmp_path, kd_h5_last_message(msg, sizeof msg));
    return KD_OK;
}

int kd_h5_atomic_image(kd_h5_atomic *af, void **out, size_t *out_size, kd_error *err)
{
    char msg[256];
    int rc = KD_OK;
    void *image = NULL;
    ssize_t size = H5Fflush(af->file, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(af->file, NULL, 0);
    if (size > 0 && !(image = malloc((size_t)size)))
        rc = kd_error_set(err, KD_ERR_IO, "%s: out of memory for a %lld-byte file", af->final_path, (long long)size);
    else if (size <= 0 || H5Fget_file_image(af->file, image, (size_t)size) != size)
        rc = kd_error_set(err, KD_ERR_LIBRARY, "%s: cannot take the file's image (%s)", af->final_path,
                          kd_h5_last_message(msg, sizeof msg));
    if (H5Fclose(af->file) < 0 && !rc)
        rc = kd_error_set(err, KD_ERR_LIBRARY, "%s: closing failed (%s)", af->final_path, kd_h5_last_message(msg, sizeof msg));
    af->file = H5I_INVALID_HID;
    if (rc) {
        free(image);
        image = NULL;
        size = 0;
    }
    *out = image;
    *out_size = (size_t)(size > 0 ? size : 0);
    return rc;
}

int kd_h5_atomic_commit(kd_h5_atomic *af, kd_error *err)
{
    void *image = NULL;
    size_t size = 0;
    int rc = kd_h5_atomic_image(af, &image, &size, err);
    if (!rc) rc = kd_file_write_atomic(af->final_path, image, size, err);
    free(image);
    return rc;
}

void kd_h5_atomic_abort(kd_h5_atomic *af)
{
    if (af->file >= 0) H5Fclose(af->file); /* in memory: nothing on disk to remove */
    af->file = H5I_INVALID_HID;
}

int kd_h5_write_dataset(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank,
                        const hsize_t *dims, const void *data, const hsize_t *chunk,
                        int deflate_level, bool shuffle, const char *file_label, kd_error *err)
{
    char msg[256];
    int rc = KD_OK;
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, lcpl = H5I_INVALID_HID,
          dset = H5I_INVALID_HID;
    if ((space = H5Screate_simple(rank, dims, NULL)) < 0) goto error;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) goto error;
    /* No modification times: the same inputs give a byte-identical file. */
    if (H5Pset_obj_track_times(dcpl, 0) < 0) goto error;
    if (chunk) {
        if (H5Pset_chunk(dcpl, rank, chunk) < 0) goto error;
        if (shuffle && H5Pset_shuffle(dcpl) < 0) goto error;
        if (deflate_level >= 0 && H5Pset_deflate(dcpl, (unsigned)deflate_level) < 0) goto error;
    }
    if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0) goto error;
    if (H5Pset_create_intermediate_group(lcpl, 1) < 0) goto error;
    if ((dset = H5Dcreate2(loc, name, file_type, space, lcpl, dcpl, H5P_DEFAULT)) < 0) goto error;
    if (data && H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) goto error;
    goto done;
error:
    rc = kd_error_set(err, KD_ERR_IO, "%s:%s: cannot write dataset (%s)", file_label, name,
                      kd_h5_last_message(msg, sizeof msg));
done:
    if (dset >= 0 && H5Dclose(dset) < 0 && rc == KD_OK)
        rc = kd_error_set(err, KD_ERR_IO, "%s:%s: closing the dataset failed", file_label, name);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, hid_t space,
                      const void *value, kd_error *err)
{
    char msg[256];
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0)
        return kd_error_set(err, KD_ERR_IO, "attribute %s: cannot replace (%s)", name,
                            kd_h5_last_message(msg, sizeof msg));
    hid_t attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0)
        return kd_error_set(err, KD_ERR_IO, "attribute %s: cannot create (%s)", name,
                            kd_h5_last_message(msg, sizeof msg));
    herr_t w = H5Awrite(attr, mem_type, value);
    herr_t c = H5Aclose(attr);
    if (w < 0 || c < 0)
        return kd_error_set(err, KD_ERR_IO, "attribute %s: cannot write (%s)", name,
                            kd_h5_last_message(msg, sizeof msg));
    return KD_OK;
}

static int write_scalar_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                             const void *value, kd_error *err)
{
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return kd_error_set(err, KD_ERR_LIBRARY, "attribute %s: H5Screate failed", name);
    int rc = write_attr(obj, name, file_type, mem_type, space, value, err);
    H5Sclose(space);
    return rc;
}

int kd_h5_write_attr_int64(hid_t obj, const char *name, int64_t value, kd_error *err)
{
    return write_scalar_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, err);
}

int kd_h5_write_attr_double(hid_t obj, const char *name, double value, kd_error *err)
{
    return write_scalar_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, err);
}

static hid_t vlen_utf8_type(void)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0) return type;
    if (H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        H5Tclose(type);
        return H5I_INVALID_HID;
    }
    return type;
}

int kd_h5_write_attr_string(hid_t obj, const char *name, const char *value, kd_error *err)
{
    hid_t type = vlen_utf8_type();
    if (type < 0) return kd_error_set(err, KD_ERR_LIBRARY, "attribute %s: string type failed", name);
    int rc = write_scalar_attr(obj, name, type, type, &value, err);
    H5Tclose(type);
    return rc;
}

int kd_h5_write_attr_int64_array(hid_t obj, const char *name, const int64_t *values, int count,
                                 kd_error *err)
{
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = H5Screate_simple(1, dims, NULL);
    if (space < 0) return kd_error_set(err, KD_ERR_LIBRARY, "attribute %s: H5Screate failed", name);
    int rc = write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space, values, err);
    H5Sclose(space);
    return rc;
}

int kd_h5_write_attr_strings(hid_t obj, const char *name, const char *const *values, int count,
                             kd_error *err)
{
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t type = vlen_utf8_type();
    int rc = KD_OK;
    if (space < 0 || type < 0)
        rc = kd_error_set(err, KD_ERR_LIBRARY, "attribute %s: cannot make its type", name);
    else
        rc = write_attr(obj, name, type, type, space, values, err);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return rc;
}

bool kd_h5_attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

bool kd_h5_link_exists(hid_t loc, const char *path)
{
    /* H5Lexists needs every parent to exist: walk the path one component at a time. */
    char partial[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof partial) return false;
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            memcpy(partial, path, i);
            partial[i] = '\0';
            if (strcmp(partial, "/") == 0) continue;
            if (H5Lexists(loc, partial, H5P_DEFAULT) <= 0) return false;
        }
    }
    return true;
}

/* Opens attribute `name`, checks it holds `expect_points` values (0: any) of a
 * numeric class. */
static hid_t open_numeric_attr(hid_t obj, const char *name, hssize_t *points, const char *what,
                               kd_error *err)
{
    if (H5Aexists(obj, name) <= 0) {
        kd_error_set(err, KD_ERR_DATA, "%s: expected attribute %s, found none", what, name);
        return H5I_INVALID_HID;
    }
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0) {
        kd_error_set(err, KD_ERR_DATA, "%s: cannot open attribute %s", what, name);
        return H5I_INVALID_HID;
    }
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    *points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        H5Aclose(attr);
        kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected a number, found another type", what, name);
        return H5I_INVALID_HID;
    }
    return attr;
}

int kd_h5_read_attr_int64(hid_t obj, const char *name, int64_t *value, const char *what, kd_error *err)
{
    hssize_t points;
    hid_t attr = open_numeric_attr(obj, name, &points, what, err);
    if (attr < 0) return err ? err->code : KD_ERR_DATA;
    double d = 0;
    herr_t status = points == 1 ? H5Aread(attr, H5T_NATIVE_DOUBLE, &d) : -1;
    H5Aclose(attr);
    if (points != 1)
        return kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected one value, found %lld", what,
                            name, (long long)points);
    if (status < 0) return kd_error_set(err, KD_ERR_DATA, "%s: cannot read attribute %s", what, name);
    /* Range first: converting a double outside int64's range is undefined behaviour. */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != (double)(int64_t)d)
        return kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected an integer, found %g", what,
                            name, d);
    *value = (int64_t)d;
    return KD_OK;
}

int kd_h5_read_attr_double(hid_t obj, const char *name, double *value, const char *what, kd_error *err)
{
    hssize_t points;
    hid_t attr = open_numeric_attr(obj, name, &points, what, err);
    if (attr < 0) return err ? err->code : KD_ERR_DATA;
    herr_t status = points == 1 ? H5Aread(attr, H5T_NATIVE_DOUBLE, value) : -1;
    H5Aclose(attr);
    if (points != 1)
        return kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected one value, found %lld", what,
                            name, (long long)points);
    if (status < 0) return kd_error_set(err, KD_ERR_DATA, "%s: cannot read attribute %s", what, name);
    return KD_OK;
}

int kd_h5_read_attr_int64_array(hid_t obj, const char *name, int64_t *values, int capacity,
                                int *count, const char *what, kd_error *err)
{
    hssize_t points;
    hid_t attr = open_numeric_attr(obj, name, &points, what, err);
    if (attr < 0) return err ? err->code : KD_ERR_DATA;
    if (points < 1 || points > capacity) {
        H5Aclose(attr);
        return kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected 1 to %d values, found %lld",
                            what, name, capacity, (long long)points);
    }
    herr_t status = H5Aread(attr, H5T_NATIVE_INT64, values);
    H5Aclose(attr);
    if (status < 0) return kd_error_set(err, KD_ERR_DATA, "%s: cannot read attribute %s", what, name);
    *count = (int)points;
    return KD_OK;
}

int kd_h5_read_attr_string(hid_t obj, const char *name, char *buf, size_t size, const char *what,
                           kd_error *err)
{
    if (H5Aexists(obj, name) <= 0)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected attribute %s, found none", what, name);
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0) return kd_error_set(err, KD_ERR_DATA, "%s: cannot open attribute %s", what, name);
    hid_t type = H5Aget_type(attr);
    int rc = KD_OK;
    if (type < 0 || H5Tget_class(type) != H5T_STRING) {
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected a string", what, name);
    } else if (H5Tis_variable_str(type) > 0) {
        char *value = NULL;
        hid_t mem = vlen_utf8_type(); /* with the file's charset: HDF5 will not convert */
        if (mem >= 0) H5Tset_cset(mem, H5Tget_cset(type));
        if (mem < 0 || H5Aread(attr, mem, &value) < 0 || !value)
            rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot read attribute %s", what, name);
        else
            snprintf(buf, size, "%s", value);
        if (value) H5free_memory(value);
        if (mem >= 0) H5Tclose(mem);
    } else {
        size_t len = H5Tget_size(type);
        char *tmp = calloc(len + 1, 1);
        if (!tmp || H5Aread(attr, type, tmp) < 0)
            rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot read attribute %s", what, name);
        else
            snprintf(buf, size, "%s", tmp);
        free(tmp);
    }
    if (type >= 0) H5Tclose(type);
    H5Aclose(attr);
    return rc;
}
