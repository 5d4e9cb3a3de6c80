/* cmd_info.c - `kdtrain info`: the library versions and the machine kdtrain
 * sees (the first thing to paste into a bug report), or with a file, what the
 * file holds (workflows/inspect.h). */
#include "cli/args.h"
#include "cli/commands.h"

#include "core/threads.h"
#include "io/provenance.h"
#include "kd_version.h"
#include "workflows/config.h"
#include "workflows/inspect.h"
#include "workflows/precision.h"
#include "workflows/run_data.h"

#include <oneapi/dnnl/dnnl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define MAX_SETS 64

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_sse41: return "sse41";
    default: return "other";
    }
}

static void print_help(void)
{
    printf("usage: kdtrain info\n"
           "       kdtrain info FILE_OR_RUN [-c CONFIG] [--set data.KEY=VALUE ...]\n\n"
           "Without a file: kdtrain's version, the oneDNN, HDF5 and zlib it runs with, the CPU ISA\n"
           "oneDNN dispatches to, its bf16 product kernel (and so train.precision = auto's choice),\n"
           "and the thread count (the first thing to paste into a bug report).\n\n"
           "With a file, what it holds:\n"
           "  a data set     splits, rows, feature shape and stored type, classes, class counts per\n"
           "                 split, and whether it matches kdtrain's schema (docs/DATA.md); for another\n"
           "                 layout, every dataset in the file and the data.* keys that open it\n"
           "  a checkpoint   (or a run folder) architecture, parameters, epochs trained, validation\n"
           "                 metrics, stored temperature, the commit that trained it\n"
           "  a logits file  (eval --logits) rows, classes, accuracy, NLL and ECE at T = 1\n"
           "A data set is opened with the data.* keys of CONFIG and --set (dataset paths, val_from_train),\n"
           "as training opens it. Exit status 1 when the file cannot be used as it is.\n");
}

static int print_versions(void)
{
    const dnnl_version_t *v = dnnl_version();
    unsigned h5_major = 0, h5_minor = 0, h5_release = 0;
    if (H5get_libversion(&h5_major, &h5_minor, &h5_release) < 0) {
        fprintf(stderr, "kdtrain info: H5get_libversion failed\n");
        return 1;
    }
    char commit[64];
    kd_provenance_commit(commit, sizeof commit);
    printf("kdtrain   %s (commit %s)\n", KD_VERSION_STRING, commit);
    printf("oneDNN    %d.%d.%d (%s)\n", v->major, v->minor, v->patch, v->hash);
    printf("cpu isa   %s\n", isa_name(dnnl_get_effective_cpu_isa()));
    kd_config c; /* what train.precision = auto would take for the teacher's first product */
    kd_config_defaults(&c);
    c.train.precision = KD_PRECISION_AUTO;
    kd_precision_choice choice;
    kd_error err;
    if (kd_precision_resolve(&c, 128, 1200, 784, &choice, &err) == KD_OK)
        printf("bf16      %s: train.precision = auto takes %s\n", choice.impl[0] ? choice.impl : "no bf16 product",
               choice.name);
    printf("HDF5      %u.%u.%u\n", h5_major, h5_minor, h5_release);
    printf("zlib      %s\n", zlibVersion());
    printf("threads   %d\n", kd_threads_count());
    return 0;
}

int kd_cmd_info(int argc, char **argv)
{
    kd_args a = {argc, argv, 1, "kdtrain info"};
    const char *file = NULL, *config_path = NULL, *sets[MAX_SETS];
    int n_sets = 0;
    for (; a.i < argc; a.i++) {
        const char *v;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            print_help();
            return 0;
        }
        if ((m = kd_arg_value(&a, "-c", "a config file", &v)) || (m = kd_arg_value(&a, "--config", "a config file", &v))) {
            if (m < 0) return 2;
            config_path = v;
        } else if ((m = kd_arg_value(&a, "--set", "data.key=value", &v))) {
            if (m < 0) return 2;
            if (strncmp(v, "data.", 5) != 0) {
                fprintf(stderr, "kdtrain info: --set %s: info reads only data.* keys (the dataset paths and val_from_train)\n", v);
                return 2;
            }
            if (n_sets == MAX_SETS) {
                fprintf(stderr, "kdtrain info: --set: at most %d overrides\n", MAX_SETS);
                return 2;
            }
            sets[n_sets++] = v;
        } else if (argv[a.i][0] == '-' || file) {
            return kd_arg_unknown(&a);
        } else {
            file = argv[a.i];
        }
    }
    if (!file) {
        if (config_path || n_sets) {
            fprintf(stderr, "kdtrain info: -c and --set need a FILE to open\n");
            return 2;
        }
        return print_versions();
    }
    kd_error err;
    kd_error_clear(&err);
    kd_config cfg;
    kd_config_defaults(&cfg);
    int rc = config_path ? kd_config_load_file(&cfg, config_path, &err) : KD_OK;
    for (int i = 0; !rc && i < n_sets; i++) rc = kd_config_set(&cfg, sets[i], &err);
    if (!rc) {
        kd_dataset_options o;
        kd_run_data_options(&cfg, &o);
        rc = kd_inspect(file, &o, stdout, &err);
    }
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "kdtrain info: %s\n", err.message);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}
