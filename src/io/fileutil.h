/* fileutil.h - files that are never half-written: write to PATH.tmp-PID, fsync,
 * rename. Plus directory creation and existence checks. */
#ifndef KD_FILEUTIL_H
#define KD_FILEUTIL_H

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>

/* Path buffers come in two sizes: KD_DIR_MAX for a path as given (a run folder, a
 * data set; PATH_MAX), KD_PATH_MAX for one joined with a file name inside it. */
#define KD_DIR_MAX 4096
#define KD_PATH_MAX (KD_DIR_MAX + 512)

#ifdef __cplusplus
extern "C" {
#endif

int kd_file_write_atomic(const char *path, const void *data, size_t size, kd_error *err);
/* The same for DIR/NAME. */
int kd_file_write_atomic_in(const char *dir, const char *name, const void *data, size_t size, kd_error *err);
/* Creates a directory and its parents (like mkdir -p). */
int kd_file_mkdir_p(const char *path, kd_error *err);
/* Creates the folder holding `path` and its parents; nothing when path has no folder part. */
int kd_file_mkdir_parent(const char *path, kd_error *err);
/* Reads a whole text file (at most max_bytes, no NUL bytes) into a new NUL-terminated
 * buffer (free it), or NULL with err set. */
char *kd_file_read_text(const char *path, size_t max_bytes, kd_error *err);
bool kd_file_exists(const char *path);
bool kd_file_is_directory(const char *path);
/* Both paths name one existing file (the same device and inode), however spelled. */
bool kd_file_same(const char *a, const char *b);
/* Appends text to a file (creating it). */
int kd_file_append(const char *path, const char *text, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
