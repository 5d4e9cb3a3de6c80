/* rows.h - reading rows [begin, begin + count) of an HDF5 data set whose first
 * dimension is rows, with compressed chunks inflated on all threads.
 *
 * H5Dread inflates the chunks of a read one after another on the calling thread:
 * about 190 MB/s here, 0.22 s for a streamed Fashion-MNIST epoch. When
 * the data set is chunked by whole rows, its filters are deflate (gzip) with or
 * without shuffle before it, and it stores numbers of exactly the type asked for
 * (so native byte order), kd_read_rows reads
 * each chunk's compressed bytes (H5Dread_chunk, on the calling thread: HDF5 is
 * never called from two threads) and inflates them with zlib on the OpenMP
 * threads. Anything else (other filters, conversions, contiguous layouts, chunks
 * never written) goes through H5Dread. The bytes are the same either way (tested). */
#ifndef KD_ROWS_H
#define KD_ROWS_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One chunk of a read. */
typedef struct kd_chunk_entry {
    int64_t index;          /* absolute chunk number */
    size_t range;           /* the range it serves */
    size_t raw_offset, raw_size;
    uint32_t filter_mask;   /* bit i: filter i was skipped for this chunk */
    int status;             /* 0, or -1 when it did not inflate */
} kd_chunk_entry;

/* Buffers kept between reads, so that a loader's steady state does not allocate
 * (zlib's own inflate state aside). */
typedef struct kd_row_reader {
    unsigned char *raw;      /* the compressed chunks of one read */
    size_t raw_capacity;
    unsigned char *scratch;  /* two chunk-sized buffers per thread */
    size_t scratch_capacity;
    kd_chunk_entry *chunks;  /* the chunks of one read */
    size_t chunk_capacity;
    size_t chunks_inflated;  /* chunks read through the parallel path, ever */
} kd_row_reader;

void kd_row_reader_init(kd_row_reader *reader);
void kd_row_reader_free(kd_row_reader *reader);

/* Reads rows [begin, begin + count) of dset, converted to mem_type, into out
 * (count rows of the data set's row size in mem_type). Returns 0, or -1 with the
 * reason in why (HDF5's own message included when HDF5 failed). */
int kd_read_rows(kd_row_reader *reader, hid_t dset, int64_t begin, int64_t count, hid_t mem_type, void *out,
                 char *why, size_t why_size);

/* Several row ranges in one read, so that all their chunks inflate together. */
typedef struct kd_row_range {
    int64_t begin, count;
    void *out;
} kd_row_range;
int kd_read_row_ranges(kd_row_reader *reader, hid_t dset, const kd_row_range *ranges, size_t n, hid_t mem_type,
                       char *why, size_t why_size);

#ifdef __cplusplus
}
#endif
#endif
