/* rows.c - see rows.h. */
#include "data/rows.h"

#include "io/h5util.h"

#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void kd_row_reader_init(kd_row_reader *reader) { memset(reader, 0, sizeof *reader); }

void kd_row_reader_free(kd_row_reader *reader)
{
    free(reader->raw);
    free(reader->scratch);
    free(reader->chunks);
    kd_row_reader_init(reader);
}

/* The shape of a data set that qualifies for the parallel path. */
typedef struct chunk_plan {
    int rank;
    hsize_t dims[8], chunk[8];
    size_t elem_size, row_bytes, chunk_bytes;
    int64_t chunk_rows;
    int deflate_at, shuffle_at; /* places in the filter pipeline; shuffle -1 when absent */
} chunk_plan;

/* True when dset is chunked by whole rows, stores mem_type itself, and filters with
 * deflate, or shuffle then deflate, on every chunk (partial edge chunks included). */
static bool plan_chunks(hid_t dset, hid_t mem_type, chunk_plan *plan)
{
    bool ok = false;
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset), dcpl = H5Dget_create_plist(dset);
    unsigned options = 0;
    if (space < 0 || type < 0 || dcpl < 0 || H5Tequal(type, mem_type) <= 0 || H5Pget_layout(dcpl) != H5D_CHUNKED)
        goto done;
    H5T_class_t type_class = H5Tget_class(type); /* numbers only: H5Dread_chunk cannot do variable-length data */
    if (type_class != H5T_INTEGER && type_class != H5T_FLOAT) goto done;
    if (H5Pget_chunk_opts(dcpl, &options) < 0 || (options & H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS)) goto done;
    plan->rank = H5Sget_simple_extent_ndims(space);
    if (plan->rank < 1 || plan->rank > 8 || H5Sget_simple_extent_dims(space, plan->dims, NULL) < 0 ||
        H5Pget_chunk(dcpl, plan->rank, plan->chunk) != plan->rank)
        goto done;
    plan->elem_size = H5Tget_size(type);
    plan->row_bytes = plan->elem_size;
    for (int i = 1; i < plan->rank; i++) {
        if (plan->chunk[i] != plan->dims[i]) goto done; /* chunks must hold whole rows */
        plan->row_bytes *= (size_t)plan->dims[i];
    }
    plan->chunk_rows = (int64_t)plan->chunk[0];
    plan->chunk_bytes = plan->row_bytes * (size_t)plan->chunk[0];
    plan->deflate_at = plan->shuffle_at = -1;
    int filters = H5Pget_nfilters(dcpl);
    if (plan->elem_size == 0 || plan->chunk_rows < 1 || filters < 1 || filters > 2) goto done;
    for (int i = 0; i < filters; i++) {
        unsigned flags = 0, config = 0;
        size_t values = 0;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &values, NULL, 0, NULL, &config);
        if (id == H5Z_FILTER_DEFLATE && plan->deflate_at < 0)
            plan->deflate_at = i;
        else if (id == H5Z_FILTER_SHUFFLE && plan->shuffle_at < 0)
            plan->shuffle_at = i;
        else
            goto done; /* another filter, or one twice */
    }
    ok = plan->deflate_at >= 0 && plan->shuffle_at < plan->deflate_at; /* written: shuffle, then deflate */
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return ok;
}

/* The inverse of HDF5's shuffle filter: byte k of element j was stored at k n + j. */
static void unshuffle(const unsigned char *in, unsigned char *out, size_t bytes, size_t elem_size)
{
    size_t n = bytes / elem_size;
    for (size_t k = 0; k < elem_size; k++)
        for (size_t j = 0; j < n; j++) out[j * elem_size + k] = in[k * n + j];
}

static bool grow_bytes(unsigned char **buffer, size_t *capacity, size_t bytes)
{
    if (bytes <= *capacity) return true;
    unsigned char *bigger = realloc(*buffer, bytes);
    if (!bigger) return false;
    *buffer = bigger;
    *capacity = bytes;
    return true;
}

static bool grow_chunks(kd_row_reader *r, size_t chunks)
{
    if (chunks <= r->chunk_capacity) return true;
    kd_chunk_entry *bigger = realloc(r->chunks, chunks * sizeof *bigger);
    if (!bigger) return false;
    r->chunks = bigger;
    r->chunk_capacity = chunks;
    return true;
}

static bool unshuffles(const chunk_plan *p) { return p->shuffle_at >= 0 && p->elem_size > 1; }

/* Chunk e of a read into the rows of its range that it covers, with scratch slot
 * `slot`; 0, -1 when it does not inflate to a chunk, -2 when a chunk stored
 * without deflate has the wrong size. */
static int inflate_chunk(const kd_row_reader *r, const chunk_plan *p, const kd_chunk_entry *e,
                         const kd_row_range *range, int slot)
{
    size_t per_slot = (unshuffles(p) ? 2 : 1) * p->chunk_bytes;
    unsigned char *a = r->scratch + (size_t)slot * per_slot, *b = a + p->chunk_bytes;
    const unsigned char *data = r->raw + e->raw_offset;
    uint32_t mask = e->filter_mask;
    if (!(mask & (1u << p->deflate_at))) {
        uLongf inflated = (uLongf)p->chunk_bytes;
        if (uncompress(a, &inflated, data, (uLong)e->raw_size) != Z_OK || inflated != p->chunk_bytes) return -1;
        data = a;
    } else if (e->raw_size != p->chunk_bytes) {
        return -2;
    }
    if (unshuffles(p) && !(mask & (1u << p->shuffle_at))) {
        unshuffle(data, b, p->chunk_bytes, p->elem_size);
        data = b;
    }
    int64_t chunk_begin = e->index * p->chunk_rows, end = range->begin + range->count;
    int64_t lo = chunk_begin > range->begin ? chunk_begin : range->begin;
    int64_t hi = chunk_begin + p->chunk_rows < end ? chunk_begin + p->chunk_rows : end;
    memcpy((unsigned char *)range->out + (size_t)(lo - range->begin) * p->row_bytes,
           data + (size_t)(lo - chunk_begin) * p->row_bytes, (size_t)(hi - lo) * p->row_bytes);
    return 0;
}

/* 1: read through the parallel path; 0: not applicable here, use H5Dread; -1: failed. */
static int read_chunks(kd_row_reader *r, hid_t dset, const kd_row_range *ranges, size_t n, hid_t mem_type,
                       char *why, size_t why_size)
{
    chunk_plan p;
    if (!plan_chunks(dset, mem_type, &p)) return 0;
    size_t chunks = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].count <= 0) continue;
        if (ranges[i].begin < 0 || ranges[i].begin + ranges[i].count > (int64_t)p.dims[0]) return 0;
        chunks += (size_t)((ranges[i].begin + ranges[i].count - 1) / p.chunk_rows - ranges[i].begin / p.chunk_rows + 1);
    }
    if (!grow_chunks(r, chunks ? chunks : 1)) return 0; /* H5Dread needs less memory */
    hsize_t offset[8] = {0};
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].count <= 0) continue;
        int64_t last = (ranges[i].begin + ranges[i].count - 1) / p.chunk_rows;
        for (int64_t k = ranges[i].begin / p.chunk_rows; k <= last; k++, c++) {
            offset[0] = (hsize_t)k * (hsize_t)p.chunk_rows;
            hsize_t bytes = 0;
            herr_t found = -1;
            H5E_BEGIN_TRY { found = H5Dget_chunk_storage_size(dset, offset, &bytes); } /* fails when never written */
            H5E_END_TRY;
            if (found < 0 || bytes == 0) return 0; /* H5Dread supplies the fill value */
            r->chunks[c] = (kd_chunk_entry){.index = k, .range = i, .raw_offset = total, .raw_size = (size_t)bytes};
            total += (size_t)bytes;
        }
    }
    /* a scratch slot per thread that will work, one or two chunks each; without the
     * memory H5Dread (which needs less) does the read */
    int slots = omp_get_max_threads();
    if ((size_t)slots > chunks) slots = chunks > 0 ? (int)chunks : 1;
    if (!grow_bytes(&r->raw, &r->raw_capacity, total ? total : 1) ||
        !grow_bytes(&r->scratch, &r->scratch_capacity, (size_t)slots * (unshuffles(&p) ? 2 : 1) * p.chunk_bytes))
        return 0;
    for (c = 0; c < chunks; c++) {
        kd_chunk_entry *e = &r->chunks[c];
        offset[0] = (hsize_t)e->index * (hsize_t)p.chunk_rows;
        if (H5Dread_chunk(dset, H5P_DEFAULT, offset, &e->filter_mask, r->raw + e->raw_offset) < 0) {
            char msg[256];
            snprintf(why, why_size, "cannot read the chunk at row %lld (%s)", (long long)offset[0],
                     kd_h5_last_message(msg, sizeof msg));
            return -1;
        }
    }
    if (slots > 1) {
#pragma omp parallel for num_threads(slots) schedule(static)
        for (size_t k = 0; k < chunks; k++)
            r->chunks[k].status = inflate_chunk(r, &p, &r->chunks[k], &ranges[r->chunks[k].range], omp_get_thread_num());
    } else {
        for (size_t k = 0; k < chunks; k++)
            r->chunks[k].status = inflate_chunk(r, &p, &r->chunks[k], &ranges[r->chunks[k].range], 0);
    }
    for (c = 0; c < chunks; c++)
        if (r->chunks[c].status) {
            long long row = (long long)(r->chunks[c].index * p.chunk_rows);
            if (r->chunks[c].status == -2)
                snprintf(why, why_size, "the chunk at row %lld, stored without deflate, has %zu bytes, not %zu", row,
                         r->chunks[c].raw_size, p.chunk_bytes);
            else
                snprintf(why, why_size, "the chunk at row %lld does not inflate to %zu bytes (corrupt data)", row,
                         p.chunk_bytes);
            return -1;
        }
    r->chunks_inflated += chunks;
    return 1;
}

/* One range through H5Dread. */
static int read_range(hid_t dset, const kd_row_range *range, hid_t mem_type)
{
    hid_t space = H5Dget_space(dset), mem = H5I_INVALID_HID;
    int rc = -1, rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[8], start[8] = {0}, n[8];
    if (rank >= 1 && rank <= 8 && H5Sget_simple_extent_dims(space, dims, NULL) >= 0) {
        for (int i = 0; i < rank; i++) n[i] = dims[i];
        start[0] = (hsize_t)range->begin;
        n[0] = (hsize_t)range->count;
        /* Same rank as the file: a rank-changing selection takes HDF5's slow path. */
        if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, n, NULL) >= 0 &&
            (mem = H5Screate_simple(rank, n, NULL)) >= 0 &&
            H5Dread(dset, mem_type, mem, space, H5P_DEFAULT, range->out) >= 0)
            rc = 0;
    }
    if (mem >= 0) H5Sclose(mem);
    if (space >= 0) H5Sclose(space);
    return rc;
}

int kd_read_row_ranges(kd_row_reader *reader, hid_t dset, const kd_row_range *ranges, size_t n, hid_t mem_type,
                       char *why, size_t why_size)
{
    int direct = read_chunks(reader, dset, ranges, n, mem_type, why, why_size);
    if (direct != 0) return direct > 0 ? 0 : -1;
    for (size_t i = 0; i < n; i++)
        if (ranges[i].count > 0 && read_range(dset, &ranges[i], mem_type) < 0) {
            char msg[256];
            snprintf(why, why_size, "H5Dread failed (%s)", kd_h5_last_message(msg, sizeof msg));
            return -1;
        }
    return 0;
}

int kd_read_rows(kd_row_reader *reader, hid_t dset, int64_t begin, int64_t count, hid_t mem_type, void *out,
                 char *why, size_t why_size)
{
    kd_row_range range = {begin, count, out};
    return kd_read_row_ranges(reader, dset, &range, 1, mem_type, why, why_size);
}
