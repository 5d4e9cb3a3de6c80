/* prepare.c - see prepare.h. */
#include "data/prepare.h"

#include "data/idx.h"
#include "io/fileutil.h"
#include "io/h5util.h"

#include <stdio.h>
#include <string.h>

#define FM_SIDE 28
#define FM_PIXELS (FM_SIDE * FM_SIDE)
#define FM_CLASSES 10
/* 1024 rows of 784 bytes is a 784 KiB chunk: under HDF5's default 1 MiB chunk
 * cache, and a whole number of typical training batches. */
#define FM_X_CHUNK_ROWS 1024
#define FM_Y_CHUNK_MAX 65536
#define FM_DEFLATE_LEVEL 4

static const char *const fm_class_names[FM_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

/* One IDX pair: images (N, 28, 28) and their labels (N). */
typedef struct fm_part {
    kd_idx images, labels;
    char images_path[PATH_MAX], labels_path[PATH_MAX];
} fm_part;

static int join_path(char *buf, size_t size, const char *dir, const char *name, kd_error *err)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return kd_error_set(err, KD_ERR_IO, "%s/%s: path too long", dir, name);
    return KD_OK;
}

static int check_images(const fm_part *part, kd_error *err)
{
    const kd_idx *x = &part->images;
    if (x->dims[1] != FM_SIDE || x->dims[2] != FM_SIDE)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected %dx%d images, found %ux%u", part->images_path,
                            FM_SIDE, FM_SIDE, (unsigned)x->dims[1], (unsigned)x->dims[2]);
    if (x->dims[0] == 0)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected at least one image, found none",
                            part->images_path);
    return KD_OK;
}

static int check_labels(const fm_part *part, kd_error *err)
{
    const kd_idx *y = &part->labels;
    if (y->dims[0] != part->images.dims[0])
        return kd_error_set(err, KD_ERR_DATA, "%s: expected %u labels (one per image in %s), found %u",
                            part->labels_path, (unsigned)part->images.dims[0], part->images_path,
                            (unsigned)y->dims[0]);
    for (size_t i = 0; i < y->size; i++)
        if (y->data[i] >= FM_CLASSES)
            return kd_error_set(err, KD_ERR_DATA, "%s: expected labels in 0..%d, found %u at index %zu",
                                part->labels_path, FM_CLASSES - 1, (unsigned)y->data[i], i);
    return KD_OK;
}

static int read_part(const char *dir, const char *images_name, const char *labels_name, fm_part *part,
                     kd_error *err)
{
    int rc = join_path(part->images_path, sizeof part->images_path, dir, images_name, err);
    if (rc == KD_OK) rc = join_path(part->labels_path, sizeof part->labels_path, dir, labels_name, err);
    if (rc == KD_OK) rc = kd_idx_read(part->images_path, 3, &part->images, err);
    if (rc == KD_OK) rc = check_images(part, err);
    if (rc == KD_OK) rc = kd_idx_read(part->labels_path, 1, &part->labels, err);
    if (rc == KD_OK) rc = check_labels(part, err);
    return rc;
}

static int check_n_val(const fm_part *train, int n_val, kd_error *err)
{
    if (train->images.dims[0] < 2)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected at least 2 training images (some to train on, some for --val), "
                                              "found %u",
                            train->images_path, (unsigned)train->images.dims[0]);
    if (n_val <= 0 || (uint32_t)n_val >= train->images.dims[0])
        return kd_error_set(err, KD_ERR_CONFIG,
                            "%s: expected a validation split (--val) of 1 to %u rows (fewer than the training images), found %d",
                            train->images_path, (unsigned)train->images.dims[0] - 1, n_val);
    return KD_OK;
}

/* Writes GROUP/x [n, 784] and GROUP/y [n], deflated. The shuffle filter does
 * nothing to 1-byte elements; x carries it because the schema (DESIGN.md) asks
 * for it and it costs nothing, so a float32 x would get it the same way. */
static int write_split(hid_t file, const char *group, const uint8_t *x, const uint8_t *y, size_t n,
                       const char *label, kd_error *err)
{
    char name[64];
    hsize_t x_dims[2] = {n, FM_PIXELS};
    hsize_t x_chunk[2] = {n < FM_X_CHUNK_ROWS ? n : FM_X_CHUNK_ROWS, FM_PIXELS};
    hsize_t y_dims[1] = {n};
    hsize_t y_chunk[1] = {n < FM_Y_CHUNK_MAX ? n : FM_Y_CHUNK_MAX};
    snprintf(name, sizeof name, "/%s/x", group);
    int rc = kd_h5_write_dataset(file, name, H5T_NATIVE_UINT8, H5T_STD_U8LE, 2, x_dims, x, x_chunk,
                                 FM_DEFLATE_LEVEL, true, label, err);
    if (rc != KD_OK) return rc;
    snprintf(name, sizeof name, "/%s/y", group);
    return kd_h5_write_dataset(file, name, H5T_NATIVE_UINT8, H5T_STD_U8LE, 1, y_dims, y, y_chunk,
                               FM_DEFLATE_LEVEL, false, label, err);
}

static int write_attrs(hid_t file, const char *src_dir, int n_val, kd_error *err)
{
    char source[PATH_MAX + 64];
    const int64_t image_shape[2] = {FM_SIDE, FM_SIDE};
    snprintf(source, sizeof source, "Fashion-MNIST IDX files from %s", src_dir);
    int rc = kd_h5_write_attr_int64(file, "num_classes", FM_CLASSES, err);
    if (rc == KD_OK) rc = kd_h5_write_attr_double(file, "x_scale", 1.0 / 255.0, err);
    if (rc == KD_OK) rc = kd_h5_write_attr_strings(file, "class_names", fm_class_names, FM_CLASSES, err);
    if (rc == KD_OK) rc = kd_h5_write_attr_int64_array(file, "image_shape", image_shape, 2, err);
    if (rc == KD_OK) rc = kd_h5_write_attr_string(file, "source", source, err);
    if (rc == KD_OK) rc = kd_h5_write_attr_int64(file, "val_from_train", n_val, err);
    return rc;
}

/* h5util's attribute messages name the attribute only; say which file too. */
static int prefix_error(const char *path, int rc, kd_error *err)
{
    if (err && rc != KD_OK) {
        char inner[sizeof err->message];
        memcpy(inner, err->message, sizeof inner);
        kd_error_set(err, rc, "%s: %s", path, inner);
    }
    return rc;
}

static int write_output(const char *out_path, const char *src_dir, const fm_part *train,
                        const fm_part *test, int n_val, kd_error *err)
{
    kd_h5_atomic af;
    const char *inputs[4] = {train->images_path, train->labels_path, test->images_path, test->labels_path};
    int rc = kd_file_check_output("the output", out_path, inputs, 4, true, err); /* never over a source file */
    if (rc == KD_OK) rc = kd_file_mkdir_parent(out_path, err);
    if (rc == KD_OK) rc = kd_h5_atomic_create(&af, out_path, err);
    if (rc != KD_OK) return rc;
    size_t n_train = train->images.dims[0] - (size_t)n_val;
    const uint8_t *x = train->images.data, *y = train->labels.data;
    rc = write_split(af.file, "train", x, y, n_train, out_path, err);
    if (rc == KD_OK)
        rc = write_split(af.file, "val", x + n_train * FM_PIXELS, y + n_train, (size_t)n_val, out_path, err);
    if (rc == KD_OK)
        rc = write_split(af.file, "test", test->images.data, test->labels.data, test->images.dims[0],
                         out_path, err);
    if (rc == KD_OK) rc = prefix_error(out_path, write_attrs(af.file, src_dir, n_val, err), err);
    if (rc != KD_OK) {
        kd_h5_atomic_abort(&af);
        return rc;
    }
    return kd_h5_atomic_commit(&af, err);
}

int kd_prepare_fashion_mnist(const char *src_dir, const char *out_path, int n_val, kd_error *err)
{
    fm_part train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    int rc = read_part(src_dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", &train, err);
    if (rc == KD_OK) rc = check_n_val(&train, n_val, err);
    if (rc == KD_OK)
        rc = read_part(src_dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", &test, err);
    if (rc == KD_OK) rc = write_output(out_path, src_dir, &train, &test, n_val, err);
    kd_idx_free(&train.images);
    kd_idx_free(&train.labels);
    kd_idx_free(&test.images);
    kd_idx_free(&test.labels);
    return rc;
}

static long long split_rows(hid_t file, const char *name)
{
    hsize_t dims[2] = {0, 0};
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t space = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID;
    int rank = space >= 0 ? H5Sget_simple_extent_dims(space, dims, NULL) : -1;
    if (space >= 0) H5Sclose(space);
    if (dset >= 0) H5Dclose(dset);
    return rank == 2 ? (long long)dims[0] : -1;
}

int kd_prepare_count_rows(const char *path, long long rows[3], kd_error *err)
{
    hid_t file = kd_h5_open_read(path, err);
    if (file < 0) return err ? err->code : KD_ERR_IO;
    const char *names[3] = {"/train/x", "/val/x", "/test/x"};
    for (int s = 0; s < 3; s++) rows[s] = split_rows(file, names[s]);
    H5Fclose(file);
    if (rows[0] < 0 || rows[1] < 0 || rows[2] < 0)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected /train/x, /val/x and /test/x of rank 2, found them unreadable", path);
    return KD_OK;
}
