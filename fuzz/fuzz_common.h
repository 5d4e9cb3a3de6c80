/* fuzz_common.h - what the libFuzzer targets share: the input written to a file of
 * this process (the readers under test take paths), and HDF5's error stack silenced. */
#ifndef KD_FUZZ_COMMON_H
#define KD_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <hdf5.h>

/* The HDF5 targets define KD_FUZZ_HDF5 before including this: libFuzzer then calls
 * this once. HDF5 keeps freed blocks on its own free lists, which leak detection would
 * report as leaks of each input; with the lists' limits at 0 it frees them at once. */
#ifdef KD_FUZZ_HDF5
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    H5set_free_list_limits(0, 0, 0, 0, 0, 0);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}
#endif

/* Writes data to /dev/shm (or /tmp) as kdfuzz-PID.SUFFIX; returns its path (static). */
static inline const char *kd_fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[256];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/kdfuzz-%ld.%s", dir, (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

#endif
