/* cmd_prepare.c - `kdtrain prepare DATASET`: imports a public data set into
 * kdtrain's HDF5 schema. One data set today: fashion-mnist, from the IDX files
 * Debian's dataset-fashion-mnist package installs. */
#define _POSIX_C_SOURCE 200809L
#include "cli/args.h"
#include "cli/commands.h"

#include "data/prepare.h"
#include "io/fileutil.h"

#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PREPARE_DEFAULT_SRC KD_FASHION_MNIST_DEFAULT_SRC
#define PREPARE_DEFAULT_OUT "data/fashion-mnist.h5"
#define PREPARE_HELP_SHOWN (-1)

typedef struct prepare_args {
    const char *dataset, *src, *out;
    int n_val;
    bool force;
} prepare_args;

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: kdtrain prepare fashion-mnist [--src DIR] [--out FILE] [--val N] [--force]\n\n"
            "Imports Fashion-MNIST's gzipped IDX files into kdtrain's HDF5 schema: /train,\n"
            "/val (the last N training images) and /test, each holding x [rows, 784] uint8\n"
            "pixels and y [rows] uint8 labels, chunked and deflated, with root attributes\n"
            "num_classes, x_scale (1/255), class_names, image_shape, and source and\n"
            "val_from_train (a record of how it was made; training does not read them).\n"
            "The file is written under a temporary name and renamed: a failed run leaves no\n"
            "partial file and an existing one untouched.\n\n"
            "options:\n"
            "  --src DIR    folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
            "               t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz\n"
            "               (default %s, where Debian's\n"
            "               dataset-fashion-mnist package puts them: `dpkg -L dataset-fashion-mnist`\n"
            "               lists it)\n"
            "  --out FILE   HDF5 file to write (default %s; missing folders are created)\n"
            "  --val N      training images held out, from the end, as /val (default %d)\n"
            "  --force      replace an existing --out file (without it, an existing file is an error)\n"
            "  -h, --help   show this text\n",
            PREPARE_DEFAULT_SRC, PREPARE_DEFAULT_OUT, KD_FASHION_MNIST_DEFAULT_VAL);
}

static int check_dataset(const char *dataset)
{
    if (!dataset) {
        fprintf(stderr, "kdtrain prepare: expected a data set name (fashion-mnist); "
                        "'kdtrain prepare --help' describes the command\n");
        return 2;
    }
    if (strcmp(dataset, "fashion-mnist") != 0) {
        fprintf(stderr, "kdtrain prepare: unknown data set '%s'; expected fashion-mnist\n", dataset);
        return 2;
    }
    return 0;
}

/* Returns 0 to run, 2 for bad usage, PREPARE_HELP_SHOWN after --help. */
static int parse_args(int argc, char **argv, prepare_args *args)
{
    kd_args a = {argc, argv, 1, "kdtrain prepare"};
    for (; a.i < argc; a.i++) {
        const char *arg = argv[a.i], *value = NULL;
        int m;
        long n_val;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            print_help(stdout);
            return PREPARE_HELP_SHOWN;
        } else if (kd_arg_flag(&a, "--force")) {
            args->force = true;
        } else if ((m = kd_arg_value(&a, "--src", "a folder", &value)) != 0) {
            if (m < 0) return 2;
            args->src = value;
        } else if ((m = kd_arg_value(&a, "--out", "a file path", &value)) != 0) {
            if (m < 0) return 2;
            args->out = value;
        } else if ((m = kd_arg_value(&a, "--val", "a positive integer", &value)) != 0) {
            if (m < 0 || !kd_arg_int(&a, "--val", value, 1, INT_MAX, &n_val)) return 2;
            args->n_val = (int)n_val;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "kdtrain prepare: unknown option '%s'; expected --src, --out, --val, --force or --help\n",
                    arg);
            return 2;
        } else if (!args->dataset) {
            args->dataset = arg;
        } else {
            fprintf(stderr, "kdtrain prepare: unexpected argument '%s' (one data set at a time)\n", arg);
            return 2;
        }
    }
    return check_dataset(args->dataset);
}

/* The split sizes read back from the file just written: the summary line reports
 * what is on disk, not what was meant to be. */
static int print_summary(const char *out)
{
    kd_error err;
    kd_error_clear(&err);
    long long rows[3];
    if (kd_prepare_count_rows(out, rows, &err) != KD_OK) {
        fprintf(stderr, "kdtrain prepare: cannot read back the output: %s\n", err.message);
        return 1;
    }
    printf("wrote %s: train %lld, val %lld, test %lld images\n", out, rows[0], rows[1], rows[2]);
    return 0;
}

int kd_cmd_prepare(int argc, char **argv)
{
    prepare_args args = {.src = PREPARE_DEFAULT_SRC, .out = PREPARE_DEFAULT_OUT, .n_val = KD_FASHION_MNIST_DEFAULT_VAL};
    int rc = parse_args(argc, argv, &args);
    if (rc != 0) return rc == PREPARE_HELP_SHOWN ? 0 : rc;
    kd_error err;
    kd_error_clear(&err);
    if (kd_file_check_output("--out", args.out, NULL, 0, args.force, &err) != KD_OK) {
        fprintf(stderr, "kdtrain prepare: %s\n", err.message);
        return 2;
    }
    fprintf(stderr, "kdtrain prepare: reading %s, writing %s\n", args.src, args.out);
    if ((rc = kd_prepare_fashion_mnist(args.src, args.out, args.n_val, &err)) != KD_OK) {
        fprintf(stderr, "kdtrain prepare: %s\n", err.message);
        struct stat st;
        if (strcmp(args.src, PREPARE_DEFAULT_SRC) == 0 && stat(args.src, &st) != 0)
            fprintf(stderr, "kdtrain prepare: install Debian's dataset-fashion-mnist package, "
                            "or pass --src DIR\n");
        return rc == KD_ERR_CONFIG ? 2 : 1; /* a bad --val is bad usage, as elsewhere */
    }
    return print_summary(args.out);
}
