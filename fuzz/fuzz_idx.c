/* fuzz_idx.c - the IDX reader (plain or gzipped) on arbitrary bytes. */
#include "fuzz_common.h"

#include "data/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = kd_fuzz_file(data, size, "idx");
    for (int ndims = 1; ndims <= 3; ndims += 2) {
        kd_idx idx;
        kd_error err;
        kd_error_clear(&err);
        if (kd_idx_read(path, ndims, &idx, &err) == KD_OK) kd_idx_free(&idx);
    }
    return 0;
}
