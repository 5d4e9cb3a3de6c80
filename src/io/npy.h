/* npy.h - NumPy's .npy files (numpy.save, np.lib.format.write_array), read whole:
 * the header of versions 1.0, 2.0 and 3.0 (a Python dict literal with 'descr',
 * 'fortran_order' and 'shape' in any order), arrays of rank 1 or 2 of float32 or
 * float64 and of integers of every width and signedness, in either byte order and
 * either memory order. Data come back row-major and native: a Fortran-order array is
 * transposed on the way in, so (dims[0], dims[1]) means the same as numpy's shape.
 *
 * Everything else is refused with a message naming the file and what was expected
 * against what was found: other magic bytes, a header cut short or not a dict of the
 * three keys, object, string, bool, complex, float16, datetime or structured types,
 * rank 0 or above 2, a shape whose size overflows, data shorter or longer than the
 * shape says (checked against the file's size before anything is allocated).
 * This module knows nothing of logits or labels (io/logits.h is the one that does). */
#ifndef KD_NPY_H
#define KD_NPY_H

#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_npy_header {
    int version;          /* the major version, 1 to 3 */
    int rank;             /* 1 or 2 */
    int64_t dims[2];      /* numpy's shape; dims[1] = 1 for rank 1 */
    char kind;            /* 'f' float, 'i' signed integer, 'u' unsigned integer */
    int item_size;        /* bytes: 4 or 8 for 'f'; 1, 2, 4 or 8 for 'i' and 'u' */
    bool big_endian;      /* the stored byte order ('=' and '|' are this machine's) */
    bool fortran_order;   /* stored column-major (read back row-major all the same) */
    int64_t data_offset;  /* where the data start: the whole header's length */
    char descr[16];       /* the type as the header writes it, e.g. "<f4" */
    char type_name[16];   /* the same as numpy names it, e.g. "float32", "uint8" */
} kd_npy_header;

/* True when path ends in ".npy" (any case) or the file begins with .npy's magic. */
bool kd_npy_is_npy(const char *path);

/* Reads and checks the header alone (the data's length included). */
int kd_npy_read_header(const char *path, kd_npy_header *h, kd_error *err);

/* The whole array, row-major (h->dims[0], h->dims[1]), malloc'ed into *data (free it).
 * read_float and read_double take float arrays only; a float64 beyond float32's range
 * becomes +-Inf in read_float. read_int64 takes integer arrays only; a uint64 above
 * INT64_MAX is refused, naming its index. On failure *data is NULL. */
int kd_npy_read_float(const char *path, float **data, kd_npy_header *h, kd_error *err);
int kd_npy_read_double(const char *path, double **data, kd_npy_header *h, kd_error *err);
int kd_npy_read_int64(const char *path, int64_t **data, kd_npy_header *h, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
