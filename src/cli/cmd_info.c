/* cmd_info.c - `kdtrain info`: the library versions and the machine kdtrain
 * sees, the first thing to paste into a bug report. */
#include "cli/commands.h"

#include "core/gemm.h"
#include "kd_version.h"

#include <oneapi/dnnl/dnnl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

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

int kd_cmd_info(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: kdtrain info\n\nPrints kdtrain's version, the oneDNN, HDF5 and zlib it "
               "runs with, the CPU ISA oneDNN dispatches to, and the thread count.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "kdtrain info: unexpected argument '%s' (info takes none)\n", argv[1]);
        return 2;
    }
    const dnnl_version_t *v = dnnl_version();
    unsigned h5_major = 0, h5_minor = 0, h5_release = 0;
    if (H5get_libversion(&h5_major, &h5_minor, &h5_release) < 0) {
        fprintf(stderr, "kdtrain info: H5get_libversion failed\n");
        return 1;
    }
    printf("kdtrain   %s\n", KD_VERSION_STRING);
    printf("oneDNN    %d.%d.%d (%s)\n", v->major, v->minor, v->patch, v->hash);
    printf("cpu isa   %s\n", isa_name(dnnl_get_effective_cpu_isa()));
    printf("HDF5      %u.%u.%u\n", h5_major, h5_minor, h5_release);
    printf("zlib      %s\n", zlibVersion());
    printf("threads   %d\n", kd_get_num_threads());
    return 0;
}
