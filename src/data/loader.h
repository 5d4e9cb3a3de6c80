/* loader.h - seeded minibatches over one split, from memory or streamed from the
 * file. Every sample comes exactly once per epoch (with last_batch = keep), and
 * the order depends only on (seed, epoch): the same on every run, and a resumed
 * run picks up the order an uninterrupted one would have had.
 *
 * In memory: a Fisher-Yates permutation of all rows, drawn from an RNG seeded by
 * (seed, epoch); it does not depend on how the file is chunked.
 * Streaming: rows are read in blocks aligned with the file's chunks (1024 rows for
 * contiguous data), so every compressed chunk is decompressed once per epoch. The
 * blocks are visited in a seeded random order; each time the shuffle buffer
 * (buffer_rows rows) is filled with the next blocks, its rows are permuted and
 * served. The order is random across blocks and within a buffer, but rows of one
 * block always share a buffer: a bounded-memory approximation of a full shuffle. */
#ifndef KD_LOADER_H
#define KD_LOADER_H

#include "core/rng.h"
#include "data/dataset.h"


#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_last_batch {
    KD_LAST_BATCH_KEEP = 0, /* the last batch of an epoch may be smaller */
    KD_LAST_BATCH_DROP = 1  /* a last batch smaller than batch_size is skipped */
} kd_last_batch;

typedef struct kd_loader_options {
    int batch_size;
    uint64_t seed;
    bool shuffle;              /* false: file order, e.g. for evaluation */
    kd_last_batch last_batch;
    bool streaming;            /* false: the split must be loaded (kd_dataset_load) */
    int64_t buffer_rows;       /* streaming: rows in the shuffle buffer (0: 16384) */
    size_t chunk_cache_bytes;  /* streaming: HDF5 chunk cache (0: one block of chunks) */
    int64_t limit_rows;        /* > 0: only the first limit_rows rows of the split */
    /* parts > 1: each batch is cut into `parts` row ranges (part p: rows p B / parts to
     * (p + 1) B / parts of a batch of B rows), and only parts [part_first, part_end) are
     * served: one rank's shards of a data-parallel step. The batches and their order
     * are the whole loader's; rows outside the parts are never gathered or scaled. */
    int parts, part_first, part_end;
} kd_loader_options;

void kd_loader_options_default(kd_loader_options *options);

typedef struct kd_batch {
    int rows;        /* the rows served (all of the batch unless options.parts > 1) */
    int batch_rows;  /* the whole batch's rows: 0 at the end of the epoch */
    int offset;      /* the first served row's place in the whole batch */
    float *x;        /* (rows, dim) features times x_scale */
    int32_t *y;      /* (rows) labels */
    int64_t *index;  /* (rows) row numbers within the split */
} kd_batch;

/* The streaming state, private to loader.c: no HDF5 type reaches a loader's users. */
typedef struct kd_loader_stream kd_loader_stream;

typedef struct kd_loader {
    const kd_dataset *ds;
    kd_split split;
    kd_loader_options options;
    int64_t rows, epoch, position; /* position: samples served this epoch */
    kd_rng rng;
    float *x;                       /* (batch_size, dim) */
    int32_t *y;                     /* (batch_size) */
    int64_t *index;                 /* (batch_size) */
    int64_t *order;                 /* memory: (rows) permutation */
    kd_loader_stream *stream;       /* streaming only (loader.c): file, blocks, shuffle buffer */
} kd_loader;

/* A loader that is not open yet: kd_loader_close on it does nothing. */
void kd_loader_init(kd_loader *loader);
int kd_loader_open(kd_loader *loader, const kd_dataset *ds, kd_split split,
                   const kd_loader_options *options, kd_error *err);
/* Starts epoch `epoch` (0-based); its order depends only on seed and epoch. */
void kd_loader_start_epoch(kd_loader *loader, int64_t epoch);
/* Fills batch with the next minibatch; batch->batch_rows == 0 at the end of the epoch
 * (batch->rows can be 0 before it: the parts served of a last batch with fewer rows
 * than parts).
 * Streaming reads can fail (I/O, non-finite features): then an error is returned. */
int kd_loader_next(kd_loader *loader, kd_batch *batch, kd_error *err);
int64_t kd_loader_batches_per_epoch(const kd_loader *loader);
/* Streaming: the rows of one block (the file's chunk rows, or 1024 for contiguous
 * data); 0 in memory. */
int64_t kd_loader_block_rows(const kd_loader *loader);
void kd_loader_close(kd_loader *loader);

#ifdef __cplusplus
}
#endif
#endif
