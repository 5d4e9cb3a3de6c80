/* npy.c - reading .npy files (see npy.h).
 *
 * The format (numpy/lib/format.py): 6 magic bytes "\x93NUMPY", a major and a minor
 * version byte, the header's length (2 bytes little-endian in version 1.0, 4 bytes in
 * 2.0 and 3.0), then the header: a Python dict literal, padded with spaces and ended by
 * '\n' so that the data start aligned. The data are the array's bytes, nothing else.
 * Values are assembled byte by byte in the stored order (load_bits), so the code reads
 * either byte order on any machine without knowing its own. */
#define _POSIX_C_SOURCE 200809L
#include "io/npy.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* numpy writes headers of a few hundred bytes; anything past this is not a .npy header. */
#define MAX_HEADER_BYTES (1 << 20)
#define MAX_SHAPE_DIMS 32

bool kd_npy_is_npy(const char *path)
{
    size_t n = strlen(path);
    if (n >= 4 && strcasecmp(path + n - 4, ".npy") == 0) return true;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char b[6];
    bool magic = fread(b, 1, 6, f) == 6 && memcmp(b, npy_magic, 6) == 0;
    fclose(f);
    return magic;
}

/* ---- the header dict ------------------------------------------------------------------ */

typedef struct cursor {
    const char *at, *begin, *end;
    const char *problem; /* what was wrong, for the message; NULL while all is well */
} cursor;

static void skip_space(cursor *c)
{
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) c->at++;
}

static bool fail(cursor *c, const char *problem)
{
    if (!c->problem) c->problem = problem;
    return false;
}

static bool expect_char(cursor *c, char ch, const char *problem)
{
    skip_space(c);
    if (c->at >= c->end || *c->at != ch) return fail(c, problem);
    c->at++;
    return true;
}

/* A Python string literal in ' or " without escapes (numpy never writes any). */
static bool parse_string(cursor *c, char *out, size_t size)
{
    skip_space(c);
    if (c->at >= c->end || (*c->at != '\'' && *c->at != '"')) return fail(c, "a quoted string");
    char quote = *c->at++;
    size_t n = 0;
    while (c->at < c->end && *c->at != quote) {
        if (*c->at == '\\') return fail(c, "a string without backslash escapes");
        if (n + 1 >= size) return fail(c, "a shorter string");
        out[n++] = *c->at++;
    }
    if (c->at >= c->end) return fail(c, "the string's closing quote");
    c->at++;
    out[n] = '\0';
    return true;
}

static bool parse_bool(cursor *c, bool *value)
{
    skip_space(c);
    size_t left = (size_t)(c->end - c->at);
    if (left >= 4 && memcmp(c->at, "True", 4) == 0) {
        c->at += 4;
        *value = true;
    } else if (left >= 5 && memcmp(c->at, "False", 5) == 0) {
        c->at += 5;
        *value = false;
    } else {
        return fail(c, "True or False");
    }
    return true;
}

/* A tuple of non-negative integers: "()", "(5,)", "(5, 3)", "(5L, 3L)" (Python 2),
 * a trailing comma or not. *rank counts every dimension; dims keeps the first two. */
static bool parse_shape(cursor *c, int64_t dims[2], int *rank, bool *overflow)
{
    if (!expect_char(c, '(', "a shape tuple '(...)'")) return false;
    *rank = 0;
    for (;;) {
        skip_space(c);
        if (c->at < c->end && *c->at == ')') break;
        if (c->at >= c->end || !isdigit((unsigned char)*c->at)) return fail(c, "a non-negative integer in the shape");
        int64_t v = 0;
        while (c->at < c->end && isdigit((unsigned char)*c->at)) {
            int d = *c->at++ - '0';
            if (v > (INT64_MAX - d) / 10) *overflow = true;
            else v = v * 10 + d;
        }
        if (c->at < c->end && (*c->at == 'L' || *c->at == 'l')) c->at++;
        if (*rank < 2) dims[*rank] = v;
        if (++*rank > MAX_SHAPE_DIMS) return fail(c, "a shape of at most 32 dimensions");
        skip_space(c);
        if (c->at < c->end && *c->at == ',') {
            c->at++;
            continue;
        }
        if (c->at < c->end && *c->at == ')') break;
        return fail(c, "',' or ')' in the shape");
    }
    c->at++;
    return true;
}

/* The dict, keys in any order, each exactly once, a trailing comma allowed, then
 * nothing but padding. The descr must be a string: a list is a structured type. */
static bool parse_dict(cursor *c, char *descr, size_t descr_size, bool *fortran, int64_t dims[2], int *rank,
                       bool *overflow)
{
    bool seen_descr = false, seen_order = false, seen_shape = false;
    if (!expect_char(c, '{', "'{'")) return false;
    for (;;) {
        skip_space(c);
        if (c->at < c->end && *c->at == '}') break;
        char key[32];
        const char *key_at = c->at;
        if (!parse_string(c, key, sizeof key)) return fail(c, "a key 'descr', 'fortran_order' or 'shape'");
        if (!expect_char(c, ':', "':' after the key")) return false;
        bool *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &seen_descr;
            skip_space(c);
            if (c->at < c->end && *c->at == '[')
                return fail(c, "a type string (a list of fields is a structured type, not read)");
            if (!parse_string(c, descr, descr_size)) return false;
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &seen_order;
            if (!parse_bool(c, fortran)) return false;
        } else if (strcmp(key, "shape") == 0) {
            seen = &seen_shape;
            if (!parse_shape(c, dims, rank, overflow)) return false;
        } else {
            c->at = key_at;
            skip_space(c);
            return fail(c, "only the keys 'descr', 'fortran_order' and 'shape'");
        }
        if (*seen) return fail(c, "each key once");
        *seen = true;
        skip_space(c);
        if (c->at < c->end && *c->at == ',') {
            c->at++;
            continue;
        }
        if (c->at < c->end && *c->at == '}') break;
        return fail(c, "',' or '}' after a value");
    }
    if (!seen_descr) return fail(c, "a 'descr' key");
    if (!seen_order) return fail(c, "a 'fortran_order' key");
    if (!seen_shape) return fail(c, "a 'shape' key");
    c->at++;
    skip_space(c);
    if (c->at != c->end) return fail(c, "only padding after the dict");
    return true;
}

/* ---- the type ---------------------------------------------------------------------- */

static bool host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 0;
}

/* The descr ("<f4", "|u1", ">i8", ...) into h; an error naming the type otherwise. */
static int parse_descr(const char *path, const char *descr, kd_npy_header *h, kd_error *err)
{
    const char *p = descr;
    char order = '=';
    if (*p == '<' || *p == '>' || *p == '|' || *p == '=') order = *p++;
    char kind = *p ? *p++ : '\0';
    char *end;
    errno = 0;
    long size = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : 0;
    bool plain = size > 0 && errno == 0 && *end == '\0';
    const char *what = NULL;
    if (plain && kind == 'f' && (size == 4 || size == 8)) {
        snprintf(h->type_name, sizeof h->type_name, "float%ld", size * 8);
    } else if (plain && (kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) {
        snprintf(h->type_name, sizeof h->type_name, "%s%ld", kind == 'i' ? "int" : "uint", size * 8);
    } else {
        switch (kind) {
        case 'f': what = size == 2 ? "float16 (convert with .astype(np.float32))" : "a float of another width"; break;
        case 'b': what = "bool (store labels as integers: .astype(np.int64))"; break;
        case 'O': what = "Python objects (pickled, which is never read)"; break;
        case 'c': what = "complex numbers"; break;
        case 'U': case 'S': case 'a': what = "strings"; break;
        case 'V': what = "raw or structured records"; break;
        case 'M': case 'm': what = "dates or time spans"; break;
        case 'i': case 'u': what = "an integer of another width"; break;
        default: what = "an unknown type"; break;
        }
        return kd_error_set(err, KD_ERR_DATA, "%s: expected float32, float64 or integer values, found %s ('%s')", path,
                            what, descr);
    }
    h->kind = kind;
    h->item_size = (int)size;
    h->big_endian = order == '>' || ((order == '=' || order == '|') && host_big_endian());
    snprintf(h->descr, sizeof h->descr, "%s", descr);
    return KD_OK;
}

/* ---- the header ---------------------------------------------------------------------- */

static int read_header(FILE *f, const char *path, int64_t file_size, kd_npy_header *h, kd_error *err)
{
    memset(h, 0, sizeof *h);
    unsigned char pre[12];
    size_t got = fread(pre, 1, sizeof pre, f);
    if (memcmp(pre, npy_magic, got < 6 ? got : 6) != 0)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected a .npy file (starting with \\x93NUMPY), found %s", path,
                            got >= 4 && memcmp(pre, "\x89HDF", 4) == 0 ? "an HDF5 file" : "other bytes");
    if (got < 10)
        return kd_error_set(err, KD_ERR_IO, "%s: expected a .npy header, found a file of %lld bytes: it is truncated",
                            path, (long long)file_size);
    h->version = pre[6];
    if (h->version < 1 || h->version > 3 || pre[7] != 0)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected .npy version 1.0, 2.0 or 3.0, found %d.%d", path, pre[6],
                            pre[7]);
    int64_t prefix = h->version == 1 ? 10 : 12;
    if ((int64_t)got < prefix)
        return kd_error_set(err, KD_ERR_IO, "%s: expected a .npy header, found a file of %lld bytes: it is truncated",
                            path, (long long)file_size);
    int64_t length = h->version == 1 ? (int64_t)pre[8] | (int64_t)pre[9] << 8
                                     : (int64_t)pre[8] | (int64_t)pre[9] << 8 | (int64_t)pre[10] << 16 |
                                           (int64_t)pre[11] << 24;
    if (length > MAX_HEADER_BYTES)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected a .npy header of at most %d bytes, found a length of %lld",
                            path, MAX_HEADER_BYTES, (long long)length);
    if (prefix + length > file_size)
        return kd_error_set(err, KD_ERR_IO,
                            "%s: expected a .npy header of %lld bytes, found %lld: the file is truncated", path,
                            (long long)length, (long long)(file_size - prefix));
    h->data_offset = prefix + length;
    char *text = malloc((size_t)length + 1);
    if (!text) return kd_error_set(err, KD_ERR_IO, "%s: out of memory for a header of %lld bytes", path, (long long)length);
    if (fseeko(f, (off_t)prefix, SEEK_SET) != 0 || fread(text, 1, (size_t)length, f) != (size_t)length) {
        free(text);
        return kd_error_set(err, KD_ERR_IO, "%s: cannot read the .npy header: %s", path, strerror(errno));
    }
    cursor c = {.at = text, .begin = text, .end = text + length, .problem = NULL};
    char descr[64] = "";
    bool overflow = false;
    int rank = 0;
    bool ok = parse_dict(&c, descr, sizeof descr, &h->fortran_order, h->dims, &rank, &overflow);
    long offset = (long)(c.at - c.begin);
    char found[24] = "its end";
    if (!ok && c.at < c.end) {
        size_t n = 0;
        found[n++] = '\'';
        for (const char *p = c.at; p < c.end && n < 18; p++) found[n++] = isprint((unsigned char)*p) ? *p : '?';
        while (n > 1 && found[n - 1] == ' ') n--; /* the padding */
        found[n++] = '\'';
        found[n] = '\0';
    }
    free(text);
    if (!ok)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected %s at byte %ld of the .npy header, found %s", path,
                            c.problem ? c.problem : "a dict", offset, found);
    int rc = parse_descr(path, descr, h, err);
    if (rc) return rc;
    if (overflow)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected a shape of sizes below 2^63, found a larger one", path);
    if (rank < 1 || rank > 2)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected an array of rank 1 or 2, found rank %d%s", path, rank,
                            rank == 0 ? " (a single number)" : "");
    h->rank = rank;
    if (rank == 1) h->dims[1] = 1;
    /* Checked arithmetic: the shape comes from the file. */
    int64_t elements, bytes;
    if (__builtin_mul_overflow(h->dims[0], h->dims[1], &elements) ||
        __builtin_mul_overflow(elements, (int64_t)h->item_size, &bytes))
        return kd_error_set(err, KD_ERR_DATA, "%s: expected a shape whose size fits 64 bits, found (%lld, %lld) of %s",
                            path, (long long)h->dims[0], (long long)h->dims[1], h->type_name);
    int64_t stored = file_size - h->data_offset;
    if (stored < bytes)
        return kd_error_set(err, KD_ERR_IO,
                            "%s: expected %lld bytes of data for shape (%lld, %lld) of %s, found %lld: the file is truncated",
                            path, (long long)bytes, (long long)h->dims[0], (long long)h->dims[1], h->type_name,
                            (long long)stored);
    if (stored > bytes)
        return kd_error_set(err, KD_ERR_DATA,
                            "%s: expected %lld bytes of data for shape (%lld, %lld) of %s, found %lld: more than one array "
                            "in the file? (np.save called twice on one open file)",
                            path, (long long)bytes, (long long)h->dims[0], (long long)h->dims[1], h->type_name,
                            (long long)stored);
    return KD_OK;
}

static FILE *open_npy(const char *path, int64_t *size, kd_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        kd_error_set(err, KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        kd_error_set(err, KD_ERR_IO, "%s: cannot open: not a regular file", path);
        return NULL;
    }
    *size = (int64_t)st.st_size;
    return f;
}

int kd_npy_read_header(const char *path, kd_npy_header *h, kd_error *err)
{
    int64_t size;
    FILE *f = open_npy(path, &size, err);
    if (!f) return KD_ERR_IO;
    int rc = read_header(f, path, size, h, err);
    fclose(f);
    return rc;
}

/* ---- the data ----------------------------------------------------------------------- */

typedef enum out_type { OUT_FLOAT, OUT_DOUBLE, OUT_INT64 } out_type;

/* One stored item as the unsigned number of its bits, whatever the machine's order. */
static uint64_t load_bits(const unsigned char *b, int size, bool big_endian)
{
    uint64_t v = 0;
    if (big_endian)
        for (int i = 0; i < size; i++) v = v << 8 | b[i];
    else
        for (int i = size - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static double bits_to_double(uint64_t v, int size)
{
    if (size == 4) {
        uint32_t u = (uint32_t)v;
        float x;
        memcpy(&x, &u, sizeof x);
        return x;
    }
    double x;
    memcpy(&x, &v, sizeof x);
    return x;
}

static int read_data(const char *path, out_type type, void **data, kd_npy_header *h, kd_error *err)
{
    *data = NULL;
    int64_t size;
    FILE *f = open_npy(path, &size, err);
    if (!f) return KD_ERR_IO;
    int rc = read_header(f, path, size, h, err);
    bool want_float = type != OUT_INT64;
    if (!rc && want_float != (h->kind == 'f'))
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected %s, found %s ('%s')", path,
                          want_float ? "float32 or float64 values" : "integer values", h->type_name, h->descr);
    const size_t out_size = type == OUT_FLOAT ? sizeof(float) : sizeof(double);
    const int64_t rows = h->dims[0], cols = h->dims[1];
    const size_t n = rc ? 0 : (size_t)rows * (size_t)cols; /* the header check bounded it by the file's size */
    unsigned char *out = rc ? NULL : malloc(n ? n * out_size : 1);
    if (!rc && !out)
        rc = kd_error_set(err, KD_ERR_IO, "%s: out of memory for %lld x %lld values", path, (long long)rows,
                          (long long)cols);
    if (!rc && fseeko(f, (off_t)h->data_offset, SEEK_SET) != 0)
        rc = kd_error_set(err, KD_ERR_IO, "%s: cannot seek to the data: %s", path, strerror(errno));
    /* Read in blocks and convert, placing file item k at its row-major index: in
     * Fortran order k runs down the columns. */
    unsigned char block[1 << 16];
    const size_t per_block = sizeof block / (size_t)(rc ? 1 : h->item_size);
    const bool fortran = h->fortran_order && h->rank == 2;
    for (size_t k = 0; !rc && k < n;) {
        size_t count = n - k < per_block ? n - k : per_block;
        if (fread(block, (size_t)h->item_size, count, f) != count) {
            rc = kd_error_set(err, KD_ERR_IO, "%s: cannot read the data (the file changed while being read?)", path);
            break;
        }
        for (size_t b = 0; b < count; b++, k++) {
            size_t at = fortran ? (k % (size_t)rows) * (size_t)cols + k / (size_t)rows : k;
            uint64_t bits = load_bits(block + b * (size_t)h->item_size, h->item_size, h->big_endian);
            if (type == OUT_INT64) {
                int64_t v;
                int width = 8 * h->item_size;
                if (h->kind == 'u' && width == 64 && bits > (uint64_t)INT64_MAX) {
                    rc = kd_error_set(err, KD_ERR_DATA, "%s: expected values that fit int64, found %llu at row %zu, column %zu",
                                      path, (unsigned long long)bits, at / (size_t)cols, at % (size_t)cols);
                    break;
                }
                if (h->kind == 'i' && width < 64 && ((bits >> (width - 1)) & 1)) bits |= ~(uint64_t)0 << width; /* sign */
                memcpy(&v, &bits, sizeof v);
                memcpy(out + at * out_size, &v, sizeof v);
            } else if (type == OUT_DOUBLE) {
                double v = bits_to_double(bits, h->item_size);
                memcpy(out + at * out_size, &v, sizeof v);
            } else {
                double d = bits_to_double(bits, h->item_size);
                /* Out of float's range is Inf, said explicitly (C leaves the conversion undefined). */
                float v = d > FLT_MAX ? INFINITY : d < -FLT_MAX ? -INFINITY : (float)d;
                memcpy(out + at * out_size, &v, sizeof v);
            }
        }
    }
    fclose(f);
    if (rc) {
        free(out);
        return rc;
    }
    *data = out;
    return KD_OK;
}

int kd_npy_read_float(const char *path, float **data, kd_npy_header *h, kd_error *err)
{
    void *p;
    int rc = read_data(path, OUT_FLOAT, &p, h, err);
    *data = p;
    return rc;
}

int kd_npy_read_double(const char *path, double **data, kd_npy_header *h, kd_error *err)
{
    void *p;
    int rc = read_data(path, OUT_DOUBLE, &p, h, err);
    *data = p;
    return rc;
}

int kd_npy_read_int64(const char *path, int64_t **data, kd_npy_header *h, kd_error *err)
{
    void *p;
    int rc = read_data(path, OUT_INT64, &p, h, err);
    *data = p;
    return rc;
}
