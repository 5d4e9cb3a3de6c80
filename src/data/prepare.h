/* prepare.h - imports public data sets into kdtrain's HDF5 schema (see
 * docs/ARCHITECTURE.md): /train, /val, /test groups holding x [N, D] and y [N],
 * plus the root attributes the training code reads. */
#ifndef KD_PREPARE_H
#define KD_PREPARE_H

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KD_FASHION_MNIST_DEFAULT_VAL 5000
/* Where Debian's dataset-fashion-mnist package installs the IDX files. */
#define KD_FASHION_MNIST_DEFAULT_SRC "/usr/share/datasets/fashion-mnist"

/* Reads the four gzipped IDX files of Fashion-MNIST from src_dir and writes
 * out_path atomically: the last n_val training images become /val, the rest
 * /train, the t10k files /test. Every input is read and checked before the
 * output is created; on any failure no output (and no temporary) is left and
 * an existing out_path is untouched. Missing folders of out_path are created once
 * the inputs have passed their checks. out_path may replace an existing file (the
 * caller decides whether that is wanted) but never one of the sources. */
int kd_prepare_fashion_mnist(const char *src_dir, const char *out_path, int n_val, kd_error *err);
/* The rows of /train/x, /val/x and /test/x of a prepared file, read back from it. */
int kd_prepare_count_rows(const char *path, long long rows[3], kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
