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

/* Several files that appear together or not at all: each is written whole to its
 * PATH.tmp-PID and synced when staged; commit renames them all into place (renames
 * need no space, so a full disk fails while staging, before anything changed);
 * abort removes what was staged. */
#define KD_FILE_BATCH_MAX 32
typedef struct kd_file_batch {
    int n;
    char tmp[KD_FILE_BATCH_MAX][KD_PATH_MAX];
    char path[KD_FILE_BATCH_MAX][KD_PATH_MAX];
} kd_file_batch;
void kd_file_batch_init(kd_file_batch *b);
/* Stages DIR/NAME. */
int kd_file_batch_stage(kd_file_batch *b, const char *dir, const char *name, const void *data, size_t size,
                        kd_error *err);
int kd_file_batch_commit(kd_file_batch *b, kd_error *err);
void kd_file_batch_abort(kd_file_batch *b);
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
/* Refuses an output path that would destroy something: a folder, a file this
 * command reads (one of inputs, however spelled), or an existing file unless
 * replace. label names where the path came from ("--out"); NULL entries of inputs
 * are skipped. */
int kd_file_check_output(const char *label, const char *path, const char *const *inputs, int n_inputs, bool replace,
                         kd_error *err);
/* An exclusive lock on PATH (created if missing; a POSIX record lock, which the
 * kernel releases when the process ends, however it ends). Returns the descriptor
 * to pass to kd_file_unlock, or -1 with err set: KD_ERR_BUSY naming the holder's pid
 * when another process has it. */
int kd_file_lock(const char *path, kd_error *err);
void kd_file_unlock(int fd);
/* Removes DIR/NAME.tmp-PID files left by processes that no longer exist (a kill
 * between write and rename); returns how many went. Other processes' live
 * temporaries and everything else are left alone. */
int kd_file_remove_stale_temporaries(const char *dir);
/* Appends text to a file (creating it). */
int kd_file_append(const char *path, const char *text, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif
