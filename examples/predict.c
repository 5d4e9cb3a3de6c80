/* predict.c - the kdtrain library in a page (docs/API.md): opens a run folder or a
 * checkpoint, reads the first rows of a features dataset of an HDF5 data file, scales
 * them the way kdtrain does, and prints each row's calibrated probabilities and the
 * class of the largest one.
 *
 *   predict MODEL DATA.h5 [DATASET [ROWS]]     DATASET default /test/x, ROWS default 5
 *
 * Build (examples/Makefile): cc predict.c $(pkg-config --cflags --libs kdtrain hdf5)
 * Exit status: 0, 1 on any error (a message on stderr), 2 on a bad command line. */
#include <kdtrain/kdtrain.h>

#include <hdf5.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The features kdtrain feeds the network: each stored value (uint8, float32 or
 * float64, converted to float32) times the file's x_scale attribute in float32; without
 * the attribute x_scale is 1/255 for uint8 features and 1 for floats (docs/DATA.md).
 * x (rows, inputs) receives rows [0, rows) of `dataset`, [N, D] or [N, H, W] with
 * D = H * W = inputs. Returns 0, or 1 after printing what is wrong. */
static int read_features(const char *path, const char *dataset, long long rows, int inputs, float *x)
{
    int rc = 1;
    hid_t file = H5I_INVALID_HID, set = H5I_INVALID_HID, space = H5I_INVALID_HID, type = H5I_INVALID_HID;
    hid_t mem = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        fprintf(stderr, "predict: %s: cannot open as an HDF5 file\n", path);
        goto done;
    }
    if (H5Lexists(file, dataset, H5P_DEFAULT) <= 0 || (set = H5Dopen2(file, dataset, H5P_DEFAULT)) < 0) {
        fprintf(stderr, "predict: %s:%s: expected a dataset, found none\n", path, dataset);
        goto done;
    }
    space = H5Dget_space(set);
    type = H5Dget_type(set);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[3] = {0, 0, 0};
    if (rank < 2 || rank > 3 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        fprintf(stderr, "predict: %s:%s: expected features [N, D] or [N, H, W], found rank %d\n", path, dataset, rank);
        goto done;
    }
    hsize_t width = rank == 3 ? dims[1] * dims[2] : dims[1];
    if (width != (hsize_t)inputs) {
        fprintf(stderr, "predict: %s:%s: expected %d features a row (the model's inputs), found %llu\n", path, dataset,
                inputs, (unsigned long long)width);
        goto done;
    }
    if ((hsize_t)rows > dims[0]) {
        fprintf(stderr, "predict: %s:%s: expected at least %lld rows, found %llu\n", path, dataset, rows,
                (unsigned long long)dims[0]);
        goto done;
    }
    bool is_uint8 = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    if (!is_uint8 && H5Tget_class(type) != H5T_FLOAT) {
        fprintf(stderr, "predict: %s:%s: expected uint8, float32 or float64 features\n", path, dataset);
        goto done;
    }
    double x_scale = is_uint8 ? 1.0 / 255.0 : 1.0;
    if (H5Aexists(file, "x_scale") > 0) {
        if ((attr = H5Aopen(file, "x_scale", H5P_DEFAULT)) < 0 || H5Aread(attr, H5T_NATIVE_DOUBLE, &x_scale) < 0) {
            fprintf(stderr, "predict: %s: cannot read the attribute x_scale\n", path);
            goto done;
        }
    }
    /* The first `rows` rows, converted to float32 by HDF5 (exact for uint8). */
    hsize_t start[3] = {0, 0, 0}, count[3] = {(hsize_t)rows, dims[1], dims[2]};
    hsize_t mem_dims[1] = {(hsize_t)rows * width};
    mem = H5Screate_simple(1, mem_dims, NULL);
    if (rows > 0 && (H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                     H5Dread(set, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, x) < 0)) {
        fprintf(stderr, "predict: %s:%s: cannot read the first %lld rows\n", path, dataset, rows);
        goto done;
    }
    float scale = (float)x_scale; /* float times float, as kdtrain's loader does */
    for (size_t i = 0; i < (size_t)rows * (size_t)inputs; i++) x[i] *= scale;
    rc = 0;
done:
    if (attr >= 0) H5Aclose(attr);
    if (mem >= 0) H5Sclose(mem);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (set >= 0) H5Dclose(set);
    if (file >= 0) H5Fclose(file);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: predict MODEL DATA.h5 [DATASET [ROWS]]   (DATASET default /test/x, ROWS default 5)\n");
        return 2;
    }
    const char *model_path = argv[1], *data_path = argv[2], *dataset = argc > 3 ? argv[3] : "/test/x";
    long long rows = 5;
    if (argc > 4) {
        char *end;
        errno = 0;
        rows = strtoll(argv[4], &end, 10);
        if (errno || *end || end == argv[4] || rows < 1 || rows > 1000000) {
            fprintf(stderr, "predict: ROWS: expected 1 to 1000000, found '%s'\n", argv[4]);
            return 2;
        }
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* this program prints its own messages */

    char err[1024];
    kdtrain_model *model = NULL;
    if (kdtrain_open(model_path, &model, err, sizeof err) != KDTRAIN_OK) {
        fprintf(stderr, "predict: %s\n", err);
        return 1;
    }
    int inputs = kdtrain_inputs(model), classes = kdtrain_classes(model);
    double T = kdtrain_temperature(model);
    float *x = malloc((size_t)rows * (size_t)inputs * sizeof *x);       /* (rows, inputs) */
    float *p = malloc((size_t)rows * (size_t)classes * sizeof *p);      /* (rows, classes) */
    int status = 1;
    if (!x || !p) {
        fprintf(stderr, "predict: out of memory for %lld rows\n", rows);
    } else if (read_features(data_path, dataset, rows, inputs, x) == 0) {
        if (kdtrain_predict_probabilities(model, x, rows, true, p, err, sizeof err) != KDTRAIN_OK) {
            fprintf(stderr, "predict: %s\n", err);
        } else {
            printf("model %s: %d inputs, %d classes, temperature %.17g (%s)\n", model_path, inputs, classes, T,
                   T == 1.0 ? "not calibrated" : "calibrated");
            printf("row argmax probabilities softmax(z / T)\n");
            for (long long i = 0; i < rows; i++) {
                const float *pi = p + (size_t)i * (size_t)classes;
                int top = 0;
                for (int c = 1; c < classes; c++)
                    if (pi[c] > pi[top]) top = c;
                printf("%lld %d", i, top);
                for (int c = 0; c < classes; c++) printf(" %.9g", pi[c]);
                printf("\n");
            }
            status = 0;
        }
    }
    free(x);
    free(p);
    kdtrain_close(model);
    return status;
}
