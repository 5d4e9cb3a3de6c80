/* fuzz_npy.c - the .npy reader on arbitrary bytes: the header and all three data
 * readers, then the file as logits (with itself as labels, and as probabilities). */
#include "fuzz_common.h"

#include "io/logits.h"
#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = kd_fuzz_file(data, size, "npy");
    kd_npy_header h;
    kd_error err;
    kd_error_clear(&err);
    float *f = NULL;
    double *d = NULL;
    int64_t *i = NULL;
    if (kd_npy_read_float(path, &f, &h, &err) == KD_OK) free(f);
    if (kd_npy_read_double(path, &d, &h, &err) == KD_OK) free(d);
    if (kd_npy_read_int64(path, &i, &h, &err) == KD_OK) free(i);
    kd_logits l;
    kd_logits_read_options o = {.labels_optional = true, .allow_probability_rows = true};
    if (kd_logits_read_spec(&l, path, NULL, &o, &err) == KD_OK) kd_logits_free(&l);
    o.probabilities = true;
    if (kd_logits_read_spec(&l, path, path, &o, &err) == KD_OK) kd_logits_free(&l);
    return 0;
}
