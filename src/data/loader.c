/* loader.c - see loader.h. */
#include "data/loader.h"

#include "core/arena.h"
#include "data/rows.h"
#include "io/h5util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void kd_loader_options_default(kd_loader_options *options)
{
    memset(options, 0, sizeof *options);
    options->batch_size = 128;
    options->seed = 1;
    options->shuffle = true;
    options->last_batch = KD_LAST_BATCH_KEEP;
}

static void permute(kd_rng *rng, int64_t *order, int64_t n, bool shuffle)
{
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (!shuffle) return;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)kd_rng_below(rng, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static size_t stored_size(const kd_loader *l)
{
    return l->ds->split[l->split].stored_type == KD_FEATURE_UINT8 ? 1 : sizeof(float);
}

/* ---- streaming --------------------------------------------------------------------- */

/* What a streamed loader holds besides the batch: the open file and data set, the
 * blocks and their order, the shuffle buffer and the row reader. */
struct kd_loader_stream {
    hid_t file, dset;
    int64_t block_rows, first_block, n_blocks, next_block;
    int64_t *block_order;    /* (n_blocks) */
    unsigned char *buffer;   /* (buffer_rows, dim) in the stored type */
    int64_t *buffer_index;   /* (buffer_rows) split row of each buffered row */
    int64_t *buffer_order;   /* (buffer_rows) */
    int64_t buffer_rows, buffer_fill, buffer_pos;
    kd_row_reader reader;    /* block reads, chunks inflated on all threads */
    int fd;                  /* the file's descriptor (HDF5's sec2 driver), -1 unknown */
    haddr_t eoa;             /* where the file's allocated space ends, per its superblock */
    kd_row_range *ranges;    /* (buffer_rows / block_rows + 2) the blocks of one fill */
};

static int open_stream(kd_loader *l, kd_error *err)
{
    const kd_split_info *info = &l->ds->split[l->split];
    if (!(l->stream = calloc(1, sizeof *l->stream))) return kd_error_set(err, KD_ERR_IO, "out of memory");
    l->stream->file = l->stream->dset = H5I_INVALID_HID;
    kd_row_reader_init(&l->stream->reader);
    l->stream->file = kd_h5_open_read(l->ds->path, err);
    if (l->stream->file < 0) return err ? err->code : KD_ERR_IO;
    /* Reading past the end of a file, HDF5 gives zeros: a file cut short while it is
     * streamed is caught before each read instead (see read_blocks). */
    int *fd = NULL;
    l->stream->fd = -1;
    if (H5Fget_vfd_handle(l->stream->file, H5P_DEFAULT, (void **)&fd) >= 0 && fd &&
        H5Fget_eoa(l->stream->file, &l->stream->eoa) >= 0)
        l->stream->fd = *fd;
    l->stream->block_rows = info->chunk_rows > 0 ? info->chunk_rows : 1024;
    int64_t buffer_rows = l->options.buffer_rows > 0 ? l->options.buffer_rows : 16384;
    if (buffer_rows < l->stream->block_rows) buffer_rows = l->stream->block_rows;
    l->stream->buffer_rows = buffer_rows / l->stream->block_rows * l->stream->block_rows;
    /* The cache holds one block's chunks: a block read decompresses each once. */
    size_t cache = l->options.chunk_cache_bytes;
    if (cache == 0) cache = (size_t)l->stream->block_rows * (size_t)l->ds->dim * stored_size(l) * 2 + (1u << 20);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl < 0 || H5Pset_chunk_cache(dapl, 1021, cache, 1.0) < 0) {
        if (dapl >= 0) H5Pclose(dapl);
        return kd_error_set(err, KD_ERR_LIBRARY, "%s:%s: cannot set the chunk cache", l->ds->path, info->x_path);
    }
    l->stream->dset = H5Dopen2(l->stream->file, info->x_path, dapl);
    H5Pclose(dapl);
    if (l->stream->dset < 0) return kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot open", l->ds->path, info->x_path);
    int64_t begin = info->row_begin, end = info->row_begin + l->rows;
    l->stream->first_block = begin / l->stream->block_rows;
    l->stream->n_blocks = (end + l->stream->block_rows - 1) / l->stream->block_rows - l->stream->first_block;
    l->stream->block_order = malloc((size_t)l->stream->n_blocks * sizeof *l->stream->block_order);
    l->stream->buffer = malloc((size_t)l->stream->buffer_rows * (size_t)l->ds->dim * stored_size(l));
    l->stream->buffer_index = malloc((size_t)l->stream->buffer_rows * sizeof *l->stream->buffer_index);
    l->stream->buffer_order = malloc((size_t)l->stream->buffer_rows * sizeof *l->stream->buffer_order);
    /* a fill holds buffer_rows / block_rows blocks, and up to two more when the
     * split's first and last blocks are partial */
    l->stream->ranges = malloc((size_t)(l->stream->buffer_rows / l->stream->block_rows + 2) * sizeof *l->stream->ranges);
    if (!l->stream->block_order || !l->stream->buffer || !l->stream->buffer_index || !l->stream->buffer_order || !l->stream->ranges)
        return kd_error_set(err, KD_ERR_IO, "%s: out of memory for a %lld-row shuffle buffer", l->ds->path,
                            (long long)l->stream->buffer_rows);
    return KD_OK;
}

/* Reads the ranges (absolute rows) into the buffer, all their chunks at once. */
static int read_blocks(kd_loader *l, const kd_row_range *ranges, size_t n, kd_error *err)
{
    const kd_split_info *info = &l->ds->split[l->split];
    char why[320];
    hid_t mem_type = stored_size(l) == 1 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
    struct stat st;
    if (l->stream->fd >= 0 && fstat(l->stream->fd, &st) == 0 && (haddr_t)st.st_size < l->stream->eoa)
        return kd_error_set(err, KD_ERR_DATA, "%s: the file is %lld bytes, its data end at byte %llu: it was cut short "
                                              "while being read (truncated or being rewritten?)",
                            l->ds->path, (long long)st.st_size, (unsigned long long)l->stream->eoa);
    if (kd_read_row_ranges(&l->stream->reader, l->stream->dset, ranges, n, mem_type, why, sizeof why) < 0)
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: cannot read rows %lld..%lld and %zu other blocks: %s",
                            l->ds->path, info->x_path, (long long)ranges[0].begin,
                            (long long)(ranges[0].begin + ranges[0].count - 1), n - 1, why);
    if (mem_type == H5T_NATIVE_FLOAT)
        for (size_t k = 0; k < n; k++) {
            const float *x = ranges[k].out;
            size_t values = (size_t)ranges[k].count * (size_t)l->ds->dim;
            for (size_t i = 0; i < values; i++)
                if (!isfinite(x[i]))
                    return kd_error_set(err, KD_ERR_DATA,
                                        "%s:%s: expected finite features, found %s at row %lld, column %zu", l->ds->path,
                                        info->x_path, isnan(x[i]) ? "NaN" : "Inf",
                                        (long long)(ranges[k].begin + (int64_t)(i / (size_t)l->ds->dim)),
                                        i % (size_t)l->ds->dim);
        }
    return KD_OK;
}

/* Fills the shuffle buffer with the next blocks of this epoch's block order. */
static int fill_buffer(kd_loader *l, kd_error *err)
{
    const kd_split_info *info = &l->ds->split[l->split];
    int64_t begin = info->row_begin, end = info->row_begin + l->rows;
    size_t n = 0;
    l->stream->buffer_fill = 0;
    l->stream->buffer_pos = 0;
    while (l->stream->next_block < l->stream->n_blocks && l->stream->buffer_fill + l->stream->block_rows <= l->stream->buffer_rows) {
        int64_t b = l->stream->first_block + l->stream->block_order[l->stream->next_block++];
        int64_t first = b * l->stream->block_rows, last = first + l->stream->block_rows;
        if (first < begin) first = begin;
        if (last > end) last = end;
        l->stream->ranges[n++] = (kd_row_range){first, last - first,
                                        l->stream->buffer + (size_t)l->stream->buffer_fill * (size_t)l->ds->dim * stored_size(l)};
        for (int64_t r = first; r < last; r++) l->stream->buffer_index[l->stream->buffer_fill++] = r - begin;
    }
    int rc = n ? read_blocks(l, l->stream->ranges, n, err) : KD_OK;
    if (rc) return rc;
    permute(&l->rng, l->stream->buffer_order, l->stream->buffer_fill, l->options.shuffle);
    return KD_OK;
}

static void gather_buffered(kd_loader *l, int64_t buffer_row, float *out)
{
    size_t d = (size_t)l->ds->dim;
    float scale = (float)l->ds->x_scale;
    if (stored_size(l) == 1) {
        const uint8_t *x = l->stream->buffer + (size_t)buffer_row * d;
        for (size_t j = 0; j < d; j++) out[j] = (float)x[j] * scale;
    } else {
        const float *x = (const float *)l->stream->buffer + (size_t)buffer_row * d;
        for (size_t j = 0; j < d; j++) out[j] = x[j] * scale;
    }
}

/* ---- both modes ----------------------------------------------------------------------- */

void kd_loader_init(kd_loader *l) { memset(l, 0, sizeof *l); }

int kd_loader_open(kd_loader *l, const kd_dataset *ds, kd_split split, const kd_loader_options *options,
                   kd_error *err)
{
    kd_loader_init(l);
    l->ds = ds;
    l->split = split;
    l->options = *options;
    const kd_split_info *info = &ds->split[split];
    if (!info->present)
        return kd_error_set(err, KD_ERR_DATA, "%s: expected a %s split, found none", ds->path, kd_split_name(split));
    if (options->batch_size < 1)
        return kd_error_set(err, KD_ERR_CONFIG, "batch size: expected >= 1, found %d", options->batch_size);
    if (options->parts > 1 &&
        !(options->part_first >= 0 && options->part_first < options->part_end && options->part_end <= options->parts))
        return kd_error_set(err, KD_ERR_CONFIG, "batch parts: expected 0 <= first < end <= %d, found %d and %d",
                            options->parts, options->part_first, options->part_end);
    if (!options->streaming && !info->features)
        return kd_error_set(err, KD_ERR_DATA, "%s: the %s split is not loaded into memory", ds->path,
                            kd_split_name(split));
    l->rows = info->rows;
    if (options->limit_rows > 0 && options->limit_rows < l->rows) l->rows = options->limit_rows;
    size_t b = (size_t)options->batch_size;
    l->x = kd_calloc_aligned(b * (size_t)ds->dim, sizeof *l->x); /* 64-byte aligned for the products (each row too when dim is a multiple of 16) */
    l->y = malloc(b * sizeof *l->y);
    l->index = malloc(b * sizeof *l->index);
    if (!options->streaming) l->order = malloc((size_t)l->rows * sizeof *l->order);
    int rc = KD_OK;
    if (!l->x || !l->y || !l->index || (!options->streaming && !l->order))
        rc = kd_error_set(err, KD_ERR_IO, "%s: out of memory for batches", ds->path);
    if (rc == KD_OK && options->streaming) rc = open_stream(l, err);
    if (rc != KD_OK) {
        kd_loader_close(l);
        return rc;
    }
    kd_loader_start_epoch(l, 0);
    return KD_OK;
}

void kd_loader_start_epoch(kd_loader *l, int64_t epoch)
{
    l->epoch = epoch;
    l->position = 0;
    /* One stream per (seed, epoch), independent of what earlier epochs drew. */
    kd_rng_seed(&l->rng, l->options.seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch * 0xD1B54A32D192ED03ULL + 1);
    if (l->options.streaming) {
        permute(&l->rng, l->stream->block_order, l->stream->n_blocks, l->options.shuffle);
        l->stream->next_block = 0;
        l->stream->buffer_fill = l->stream->buffer_pos = 0;
    } else {
        permute(&l->rng, l->order, l->rows, l->options.shuffle);
    }
}

int kd_loader_next(kd_loader *l, kd_batch *batch, kd_error *err)
{
    const kd_split_info *info = &l->ds->split[l->split];
    int64_t remaining = l->rows - l->position;
    int64_t want = remaining < l->options.batch_size ? remaining : l->options.batch_size;
    if (want < l->options.batch_size && l->options.last_batch == KD_LAST_BATCH_DROP) want = 0;
    int64_t lo = 0, hi = want; /* the rows served: all, or this loader's parts */
    if (l->options.parts > 1) {
        lo = l->options.part_first * want / l->options.parts;
        hi = l->options.part_end * want / l->options.parts;
    }
    batch->x = l->x;
    batch->y = l->y;
    batch->index = l->index;
    batch->rows = 0;
    batch->batch_rows = 0;
    batch->offset = (int)lo;
    for (int64_t i = 0; i < want; i++) {
        bool served = i >= lo && i < hi;
        int64_t row, k = i - lo;
        float *out = l->x + (size_t)k * (size_t)l->ds->dim;
        if (l->options.streaming) {
            if (l->stream->buffer_pos == l->stream->buffer_fill) {
                int rc = fill_buffer(l, err);
                if (rc) return rc;
                KD_ASSERT(l->stream->buffer_fill > 0, "stream ran dry at %lld of %lld rows", (long long)l->position,
                          (long long)l->rows);
            }
            int64_t slot = l->stream->buffer_order[l->stream->buffer_pos++];
            if (!served) continue;
            row = l->stream->buffer_index[slot];
            gather_buffered(l, slot, out);
        } else {
            if (!served) continue;
            row = l->order[l->position + i];
            kd_dataset_row(l->ds, l->split, row, out);
        }
        l->index[k] = row;
        l->y[k] = info->labels[row];
    }
    l->position += want;
    batch->rows = (int)(hi - lo);
    batch->batch_rows = (int)want;
    return KD_OK;
}

int64_t kd_loader_batches_per_epoch(const kd_loader *l)
{
    int64_t b = l->options.batch_size;
    return l->options.last_batch == KD_LAST_BATCH_DROP ? l->rows / b : (l->rows + b - 1) / b;
}

void kd_loader_close(kd_loader *l)
{
    free(l->x);
    free(l->y);
    free(l->index);
    free(l->order);
    kd_loader_stream *st = l->stream;
    if (st) {
        free(st->block_order);
        free(st->buffer);
        free(st->buffer_index);
        free(st->buffer_order);
        free(st->ranges);
        kd_row_reader_free(&st->reader);
        if (st->dset >= 0) H5Dclose(st->dset);
        if (st->file >= 0) H5Fclose(st->file);
        free(st);
    }
    memset(l, 0, sizeof *l);
}

int64_t kd_loader_block_rows(const kd_loader *l) { return l->stream ? l->stream->block_rows : 0; }
