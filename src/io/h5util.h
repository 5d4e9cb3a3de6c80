/* h5util.h - the HDF5 layer's shared helpers: quiet error handling that turns
 * HDF5's error stack into kd_error messages, atomic file creation (a temporary
 * file renamed into place on success, removed on failure), dataset and attribute
 * writers and readers. Every HDF5 status is checked here or by the caller. */
#ifndef KD_H5UTIL_H
#define KD_H5UTIL_H

#include "core/error.h"

#include <hdf5.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Turns off HDF5's printing of its error stack to stderr: kdtrain reports errors
 * itself, with the innermost HDF5 message appended. Idempotent. */
void kd_h5_quiet(void);
/* The innermost message on HDF5's current error stack ("" when empty). */
const char *kd_h5_last_message(char *buf, size_t size);

/* Opens an existing HDF5 file read-only, telling apart a missing file, a file that
 * is not HDF5 and a damaged or truncated one. Returns a file id or H5I_INVALID_HID. */
hid_t kd_h5_open_read(const char *path, kd_error *err);

typedef struct kd_h5_atomic {
    char final_path[PATH_MAX];
    char tmp_path[PATH_MAX];
    hid_t file;
} kd_h5_atomic;

/* Creates an HDF5 file in memory, to become PATH on commit (written whole to
 * PATH.tmp-PID, synced and renamed: kd_file_write_atomic). */
int kd_h5_atomic_create(kd_h5_atomic *af, const char *path, kd_error *err);
/* Closes the in-memory file and writes it over the final path. On failure no
 * temporary file is left and the final path is untouched. */
int kd_h5_atomic_commit(kd_h5_atomic *af, kd_error *err);
/* Closes the in-memory file and hands over its bytes (free them), for a caller that
 * stages several files together (kd_file_batch) instead of committing this one. */
int kd_h5_atomic_image(kd_h5_atomic *af, void **image, size_t *size, kd_error *err);
/* Discards the in-memory file; the final path is untouched. */
void kd_h5_atomic_abort(kd_h5_atomic *af);

/* Writes a dataset (intermediate groups created). chunk NULL: contiguous;
 * deflate_level < 0: no compression; shuffle applies the byte-shuffle filter. */
int kd_h5_write_dataset(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank,
                        const hsize_t *dims, const void *data, const hsize_t *chunk,
                        int deflate_level, bool shuffle, const char *file_label, kd_error *err);

int kd_h5_write_attr_int64(hid_t obj, const char *name, int64_t value, kd_error *err);
int kd_h5_write_attr_double(hid_t obj, const char *name, double value, kd_error *err);
int kd_h5_write_attr_string(hid_t obj, const char *name, const char *value, kd_error *err);
int kd_h5_write_attr_int64_array(hid_t obj, const char *name, const int64_t *values, int count,
                                 kd_error *err);
/* A 1-D array of variable-length strings (what h5py writes for a list of str). */
int kd_h5_write_attr_strings(hid_t obj, const char *name, const char *const *values, int count,
                             kd_error *err);

bool kd_h5_attr_exists(hid_t obj, const char *name);
/* Readers convert any numeric attribute type; `what` names the object in errors. */
int kd_h5_read_attr_int64(hid_t obj, const char *name, int64_t *value, const char *what, kd_error *err);
int kd_h5_read_attr_double(hid_t obj, const char *name, double *value, const char *what, kd_error *err);
/* Reads up to `capacity` integers; *count receives the attribute's length. */
int kd_h5_read_attr_int64_array(hid_t obj, const char *name, int64_t *values, int capacity,
                                int *count, const char *what, kd_error *err);
/* Fixed- or variable-length string attribute into buf (truncated to size). */
int kd_h5_read_attr_string(hid_t obj, const char *name, char *buf, size_t size, const char *what,
                           kd_error *err);

bool kd_h5_link_exists(hid_t loc, const char *path);

#ifdef __cplusplus
}
#endif
#endif
