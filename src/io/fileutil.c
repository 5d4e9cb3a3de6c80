/* fileutil.c - see fileutil.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/fileutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes data whole to PATH.tmp-PID (its name into tmp) and syncs it; on failure
 * removes it. */
static int write_temporary(const char *path, const void *data, size_t size, char *tmp, size_t tmp_size, kd_error *err)
{
    if (snprintf(tmp, tmp_size, "%s.tmp-%ld", path, (long)getpid()) >= (int)tmp_size)
        return kd_error_set(err, KD_ERR_IO, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return kd_error_set(err, KD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            close(fd);
            unlink(tmp);
            return kd_error_set(err, KD_ERR_IO, "%s: cannot write: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot sync: %s", tmp, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot close: %s", tmp, strerror(e));
    }
    return KD_OK;
}

int kd_file_write_atomic(const char *path, const void *data, size_t size, kd_error *err)
{
    char tmp[KD_PATH_MAX];
    int rc = write_temporary(path, data, size, tmp, sizeof tmp, err);
    if (rc) return rc;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return KD_OK;
}

void kd_file_batch_init(kd_file_batch *b) { b->n = 0; }

int kd_file_batch_stage(kd_file_batch *b, const char *dir, const char *name, const void *data, size_t size,
                        kd_error *err)
{
    if (b->n == KD_FILE_BATCH_MAX) return kd_error_set(err, KD_ERR_IO, "%s/%s: too many files in one batch", dir, name);
    char path[KD_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return kd_error_set(err, KD_ERR_IO, "%s/%s: path too long", dir, name);
    int rc = write_temporary(path, data, size, b->tmp[b->n], sizeof b->tmp[b->n], err);
    if (!rc) memcpy(b->path[b->n++], path, sizeof path);
    return rc;
}

int kd_file_batch_commit(kd_file_batch *b, kd_error *err)
{
    int rc = KD_OK;
    for (int i = 0; i < b->n; i++) {
        if (!rc && rename(b->tmp[i], b->path[i]) != 0)
            rc = kd_error_set(err, KD_ERR_IO, "%s: cannot rename into place: %s", b->path[i], strerror(errno));
        if (rc) unlink(b->tmp[i]);
    }
    b->n = 0;
    return rc;
}

void kd_file_batch_abort(kd_file_batch *b)
{
    for (int i = 0; i < b->n; i++) unlink(b->tmp[i]);
    b->n = 0;
}

int kd_file_write_atomic_in(const char *dir, const char *name, const void *data, size_t size, kd_error *err)
{
    char path[KD_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return kd_error_set(err, KD_ERR_IO, "%s/%s: path too long", dir, name);
    return kd_file_write_atomic(path, data, size, err);
}

int kd_file_mkdir_p(const char *path, kd_error *err)
{
    char buf[KD_DIR_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return kd_error_set(err, KD_ERR_IO, "%s: path too long", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0) {
                if (errno != EEXIST)
                    return kd_error_set(err, KD_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
                if (!kd_file_is_directory(buf))
                    return kd_error_set(err, KD_ERR_IO, "%s: expected a directory, found a file", buf);
            }
            *p = saved;
            if (saved == '\0') break;
        }
    }
    return KD_OK;
}

int kd_file_mkdir_parent(const char *path, kd_error *err)
{
    char dir[KD_DIR_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return kd_error_set(err, KD_ERR_IO, "%s: path too long", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return KD_OK;
    *slash = '\0';
    return kd_file_mkdir_p(dir, err);
}

bool kd_file_same(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int kd_file_check_output(const char *label, const char *path, const char *const *inputs, int n_inputs, bool replace,
                         kd_error *err)
{
    if (kd_file_is_directory(path))
        return kd_error_set(err, KD_ERR_CONFIG, "%s %s: is a folder; expected a file path", label, path);
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && (kd_file_same(path, inputs[i]) || strcmp(path, inputs[i]) == 0))
            return kd_error_set(err, KD_ERR_CONFIG, "%s %s: is %s, which this command reads; choose another path", label,
                                path, inputs[i]);
    if (!replace && kd_file_exists(path))
        return kd_error_set(err, KD_ERR_CONFIG, "%s %s: exists; pass --force to replace it", label, path);
    return KD_OK;
}

int kd_file_lock(const char *path, kd_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        kd_error_set(err, KD_ERR_IO, "%s: cannot create the lock file: %s", path, strerror(errno));
        return -1;
    }
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLK, &lock) == 0) return fd;
    int e = errno;
    struct flock holder = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    bool known = (e == EACCES || e == EAGAIN) && fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != F_UNLCK;
    close(fd);
    if (known)
        kd_error_set(err, KD_ERR_BUSY, "%s: held by another process (pid %ld)", path, (long)holder.l_pid);
    else
        kd_error_set(err, e == EACCES || e == EAGAIN ? KD_ERR_BUSY : KD_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
    return -1;
}

void kd_file_unlock(int fd)
{
    if (fd >= 0) close(fd); /* closing drops the record lock */
}

int kd_file_remove_stale_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *tag = strstr(e->d_name, ".tmp-");
        if (!tag) continue;
        char *end;
        long pid = strtol(tag + 5, &end, 10);
        if (end == tag + 5 || *end != '\0' || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        char path[KD_PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (unlink(path) == 0) removed++;
    }
    closedir(d);
    return removed;
}

bool kd_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool kd_file_is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int kd_file_append(const char *path, const char *text, kd_error *err)
{
    FILE *f = fopen(path, "a");
    if (!f) return kd_error_set(err, KD_ERR_IO, "%s: cannot open for append: %s", path, strerror(errno));
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    if (fclose(f) != 0) ok = false;
    return ok ? KD_OK : kd_error_set(err, KD_ERR_IO, "%s: cannot write", path);
}

char *kd_file_read_text(const char *path, size_t max_bytes, kd_error *err)
{
    if (kd_file_is_directory(path)) {
        kd_error_set(err, KD_ERR_IO, "%s: is a folder; expected a text file", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        kd_error_set(err, KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max_bytes + 1);
    if (!buf) {
        fclose(f);
        kd_error_set(err, KD_ERR_IO, "%s: out of memory for %zu bytes", path, max_bytes + 1);
        return NULL;
    }
    size_t n = fread(buf, 1, max_bytes + 1, f);
    int read_errno = ferror(f) ? errno : 0;
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || n > max_bytes) {
        free(buf);
        if (failed) kd_error_set(err, KD_ERR_IO, "%s: cannot read: %s", path, strerror(read_errno));
        else kd_error_set(err, KD_ERR_IO, "%s: expected at most %zu bytes, found more", path, max_bytes);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        kd_error_set(err, KD_ERR_CONFIG, "%s: expected a text file, found NUL bytes (a binary file?)", path);
        return NULL;
    }
    return buf;
}
