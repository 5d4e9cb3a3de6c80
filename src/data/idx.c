/* idx.c - see idx.h. IDX layout: a big-endian header (two zero bytes, the
 * element type, the number of dimensions, then one uint32 per dimension)
 * followed by the payload, here always one byte per element. */
#include "data/idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* The buffer grows as bytes arrive instead of being sized from the header, so a
 * damaged header claiming gigabytes fails as "truncated", not as a huge malloc. */
#define KD_IDX_READ_STEP ((size_t)1 << 22)

static const char *payload_kind(int ndims)
{
    return ndims == 3 ? "images" : ndims == 1 ? "labels" : "arrays";
}

static const char *payload_unit(int ndims)
{
    return ndims == 3 ? "pixel" : ndims == 1 ? "label" : "payload";
}

static uint32_t read_be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Turns zlib's error state into a message; Z_OK means the stream is sound. */
static int stream_error(gzFile gz, const char *path, kd_error *err)
{
    int errnum = Z_OK;
    const char *msg = gzerror(gz, &errnum);
    if (errnum == Z_OK) return KD_OK;
    size_t path_len = strlen(path);
    if (strncmp(msg, path, path_len) == 0 && strncmp(msg + path_len, ": ", 2) == 0)
        msg += path_len + 2; /* zlib prefixes the path, which our message already names */
    if (errnum == Z_ERRNO)
        return kd_error_set(err, KD_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    if (errnum == Z_BUF_ERROR)
        return kd_error_set(err, KD_ERR_IO, "%s: expected a complete gzip stream, found it cut short (%s)",
                            path, msg);
    return kd_error_set(err, KD_ERR_DATA, "%s: expected a valid gzip stream, found a damaged one (%s)",
                        path, msg);
}

/* Reads until `len` bytes or the end of the stream; *got receives the count. */
static int read_upto(gzFile gz, uint8_t *buf, size_t len, size_t *got, const char *path,
                     kd_error *err)
{
    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        if (want > (size_t)1 << 30) want = (size_t)1 << 30; /* gzread counts in int */
        int n = gzread(gz, buf + *got, (unsigned)want);
        if (n < 0) return stream_error(gz, path, err);
        if (n == 0) break;
        *got += (size_t)n;
    }
    return KD_OK;
}

static int read_header(gzFile gz, int ndims, kd_idx *idx, const char *path, kd_error *err)
{
    unsigned char header[4 + 4 * KD_IDX_MAX_DIMS];
    size_t header_len = 4 + 4 * (size_t)ndims, got = 0;
    uint32_t expected_magic = (uint32_t)KD_IDX_TYPE_UINT8 << 8 | (uint32_t)ndims;
    int rc = read_upto(gz, header, header_len, &got, path, err);
    if (rc != KD_OK) return rc;
    if (got >= 4 && read_be32(header) != expected_magic)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected magic 0x%08x (uint8 %s), found 0x%08x", path,
                            (unsigned)expected_magic, payload_kind(ndims), (unsigned)read_be32(header));
    if (got < header_len)
        return kd_error_set(err, KD_ERR_IO, "%s: truncated: expected an IDX header of %zu bytes, found %zu",
                            path, header_len, got);
    idx->ndims = ndims;
    idx->size = 1;
    for (int i = 0; i < ndims; i++) {
        idx->dims[i] = read_be32(header + 4 + 4 * i);
        if (idx->dims[i] != 0 && idx->size > SIZE_MAX / idx->dims[i])
            return kd_error_set(err, KD_ERR_DATA, "%s: expected dimensions that fit in memory, found %u in "
                                "dimension %d", path, (unsigned)idx->dims[i], i);
        idx->size *= idx->dims[i];
    }
    return KD_OK;
}

static int read_payload(gzFile gz, kd_idx *idx, const char *path, kd_error *err)
{
    size_t capacity = 0, got = 0;
    while (got < idx->size) {
        size_t step = capacity < KD_IDX_READ_STEP ? KD_IDX_READ_STEP : capacity;
        capacity = idx->size - got <= step ? idx->size : capacity + step;
        uint8_t *grown = realloc(idx->data, capacity);
        if (!grown)
            return kd_error_set(err, KD_ERR_IO, "%s: out of memory for %zu bytes", path, capacity);
        idx->data = grown;
        size_t n = 0;
        int rc = read_upto(gz, idx->data + got, capacity - got, &n, path, err);
        if (rc != KD_OK) return rc;
        got += n;
        if (got < capacity) break;
    }
    if (got < idx->size) {
        int ndims = idx->ndims;
        kd_error stream;
        kd_error_clear(&stream);
        stream_error(gz, path, &stream);
        return kd_error_set(err, KD_ERR_IO, "%s: truncated: expected %zu %s bytes, found %zu%s", path,
                            idx->size, payload_unit(ndims), got,
                            stream.code != KD_OK ? " (the gzip stream is cut short)" : "");
    }
    return KD_OK;
}

/* Bytes after the payload mean the header and the data disagree. */
static int check_trailing(gzFile gz, const kd_idx *idx, const char *path, kd_error *err)
{
    unsigned char scratch[4096];
    size_t extra = 0;
    int n;
    while ((n = gzread(gz, scratch, sizeof scratch)) > 0) extra += (size_t)n;
    if (n < 0) return stream_error(gz, path, err);
    if (extra > 0)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected %zu %s bytes, found %zu more after them", path,
                            idx->size, payload_unit(idx->ndims), extra);
    return stream_error(gz, path, err);
}

int kd_idx_read(const char *path, int ndims, kd_idx *idx, kd_error *err)
{
    KD_ASSERT(ndims >= 1 && ndims <= KD_IDX_MAX_DIMS, "ndims %d", ndims);
    memset(idx, 0, sizeof *idx);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return kd_error_set(err, KD_ERR_IO, "%s: cannot open: %s", path,
                            strerror(errno ? errno : ENOMEM));
    gzbuffer(gz, 1u << 17);
    int rc = read_header(gz, ndims, idx, path, err);
    if (rc == KD_OK) rc = read_payload(gz, idx, path, err);
    if (rc == KD_OK) rc = check_trailing(gz, idx, path, err);
    gzclose(gz);
    if (rc != KD_OK) kd_idx_free(idx);
    return rc;
}

void kd_idx_free(kd_idx *idx)
{
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
