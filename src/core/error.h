/* error.h - environment errors (a missing file, bad data, a bad config value).
 * Library functions that can meet one return int (0 = success, else a KD_ERR_*
 * code) and fill a kd_error whose message names the file, key or value and what
 * was expected. Only main() turns a code into an exit status. */
#ifndef KD_ERROR_H
#define KD_ERROR_H

#include "core/check.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    KD_OK = 0,
    KD_ERR_IO = 1,      /* a file is missing, unreadable, truncated or unwritable */
    KD_ERR_DATA = 2,    /* a file is readable but its contents are wrong */
    KD_ERR_CONFIG = 3,  /* a bad config key or value, a bad command line */
    KD_ERR_LIBRARY = 4, /* HDF5, oneDNN or zlib reported a failure */
    KD_ERR_BUSY = 5,    /* another process holds what this one would write (a run folder) */
    KD_ERR_PEER = 6     /* another rank of a parallel job failed or stopped answering (core/comm.h) */
};

typedef struct kd_error {
    int code;
    char message[1024];
} kd_error;

/* Sets err (if not NULL) and returns code, so `return kd_error_set(...)` reads well. */
int kd_error_set(kd_error *err, int code, const char *fmt, ...) KD_PRINTF_LIKE(3, 4);
void kd_error_clear(kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
