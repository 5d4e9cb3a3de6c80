/* fileutil.c - see fileutil.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/fileutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kd_file_write_atomic(const char *path, const void *data, size_t size, kd_error *err)
{
    char tmp[KD_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return kd_error_set(err, KD_ERR_IO, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return kd_error_set(err, KD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return kd_error_set(err, KD_ERR_IO, "%s: cannot write: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot sync: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return KD_OK;
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
    FILE *f = fopen(path, "rb");
    if (!f) {
        kd_error_set(err, KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max_bytes + 1);
    size_t n = buf ? fread(buf, 1, max_bytes + 1, f) : 0;
    bool failed = !buf || ferror(f);
    fclose(f);
    if (failed || n > max_bytes) {
        free(buf);
        kd_error_set(err, KD_ERR_IO, "%s: %s", path, failed ? "cannot read" : "file too large");
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        kd_error_set(err, KD_ERR_CONFIG, "%s: expected a text file, found NUL bytes", path);
        return NULL;
    }
    return buf;
}
