/* fuzz_dataset.c - the data-set validator on mutated HDF5 files: open, then load
 * every split (the label and finite-value checks run there). */
#define KD_FUZZ_HDF5
#include "fuzz_common.h"

#include "data/dataset.h"
#include "io/h5util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = kd_fuzz_file(data, size, "h5");
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    o.val_from_train = 4;
    kd_dataset ds;
    kd_error err;
    kd_error_clear(&err);
    if (kd_dataset_open(&ds, path, &o, &err) == KD_OK) {
        for (int s = 0; s < KD_SPLIT_COUNT; s++)
            if (ds.split[s].present) (void)kd_dataset_load(&ds, (kd_split)s, &err);
        kd_dataset_close(&ds);
    }
    return 0;
}
