/* matmul_bf16.c - see matmul_bf16.h. */
#define _POSIX_C_SOURCE 200809L
#include "core/matmul_bf16.h"

#include "core/arena.h"
#include "core/check.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Products under this many floating-point operations run whole, on one thread. */
#define KD_MM_SPLIT_MIN_FLOP 1e6
/* Primitives kept; a training run needs about 40 (3 layers x 3 products x 2 parts,
 * and the last, smaller batch's). When full, the oldest entry makes room. */
#define KD_MM_MAX_ENTRIES 128
#define KD_MM_PARTS 2

typedef struct mm_key {
    int m, n, k, lda, ldb, ldc;
    int trans_a, trans_b, c_bf16, accumulate, bias, relu;
    int slot; /* which part: parts of one product run at once and need their own buffers */
} mm_key;

typedef struct mm_entry {
    mm_key key;
    dnnl_primitive_t primitive;
    dnnl_memory_t src, weights, dst, bias, scratchpad;
    void *scratch; /* the scratchpad's buffer */
} mm_entry;

struct kd_mm_cache {
    dnnl_engine_t engine;
    dnnl_stream_t stream[KD_MM_PARTS];
    int count, next_victim;
    long executions;
    mm_entry entry[KD_MM_MAX_ENTRIES];
};

#define MM_CHECK(call)                                                                                  \
    do {                                                                                                \
        dnnl_status_t status_ = (call);                                                                 \
        if (status_ != dnnl_success)                                                                    \
            kd_fatal(__FILE__, __LINE__, "oneDNN call failed", "%s returned status %d", #call, (int)status_); \
    } while (0)

int kd_mm_cache_create(kd_mm_cache **out, kd_error *err)
{
    kd_mm_cache *c = calloc(1, sizeof *c);
    if (!c) return kd_error_set(err, KD_ERR_IO, "bf16 products: out of memory for the primitive cache");
    dnnl_status_t s = dnnl_engine_create(&c->engine, dnnl_cpu, 0);
    for (int p = 0; p < KD_MM_PARTS && s == dnnl_success; p++)
        s = dnnl_stream_create(&c->stream[p], c->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        kd_mm_cache_free(c);
        return kd_error_set(err, KD_ERR_LIBRARY, "bf16 products: oneDNN could not create a CPU engine and stream (status %d)",
                            (int)s);
    }
    *out = c;
    return KD_OK;
}

static void entry_free(mm_entry *e)
{
    if (e->primitive) dnnl_primitive_destroy(e->primitive);
    dnnl_memory_t *mem[] = {&e->src, &e->weights, &e->dst, &e->bias, &e->scratchpad};
    for (size_t i = 0; i < sizeof mem / sizeof mem[0]; i++)
        if (*mem[i]) dnnl_memory_destroy(*mem[i]);
    free(e->scratch);
    memset(e, 0, sizeof *e);
}

void kd_mm_cache_free(kd_mm_cache *c)
{
    if (!c) return;
    for (int i = 0; i < c->count; i++) entry_free(&c->entry[i]);
    for (int p = 0; p < KD_MM_PARTS; p++)
        if (c->stream[p]) dnnl_stream_destroy(c->stream[p]);
    if (c->engine) dnnl_engine_destroy(c->engine);
    free(c);
}

long kd_mm_cache_executions(const kd_mm_cache *c) { return c->executions; }

/* A (rows, cols) matrix at leading dimension ld, transposed when `trans`: then its
 * storage is (cols, rows). */
static dnnl_status_t matrix_desc(dnnl_memory_desc_t *md, int rows, int cols, int ld, bool trans, dnnl_data_type_t type)
{
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

/* The primitive descriptor of a key's product, created for one thread (oneDNN
 * blocks a product for the thread count it sees at creation). */
static dnnl_status_t describe(dnnl_engine_t engine, const mm_key *k, dnnl_primitive_desc_t *pd, dnnl_memory_desc_t md[4])
{
    dnnl_status_t s;
    if ((s = matrix_desc(&md[0], k->m, k->k, k->lda, k->trans_a, dnnl_bf16)) ||
        (s = matrix_desc(&md[1], k->k, k->n, k->ldb, k->trans_b, dnnl_bf16)) ||
        (s = matrix_desc(&md[2], k->m, k->n, k->ldc, false, k->c_bf16 ? dnnl_bf16 : dnnl_f32)) ||
        (s = matrix_desc(&md[3], 1, k->n, k->n, false, dnnl_f32)))
        return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &md[0], &md[1], k->bias ? &md[3] : NULL, &md[2]))) return s;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    if (!(s = dnnl_primitive_attr_create(&attr)) && !(s = dnnl_post_ops_create(&ops)) &&
        !(s = k->accumulate ? dnnl_post_ops_append_sum(ops, 1.0f) : dnnl_success) &&
        !(s = k->relu ? dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f) : dnnl_success) &&
        !(s = dnnl_primitive_attr_set_post_ops(attr, ops)) &&
        !(s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user))) {
        int threads = omp_get_max_threads();
        if (threads > 1) omp_set_num_threads(1);
        s = dnnl_primitive_desc_create(pd, &desc, attr, engine, NULL);
        if (threads > 1) omp_set_num_threads(threads);
    }
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return s;
}

static void entry_create(kd_mm_cache *c, mm_entry *e, const mm_key *key)
{
    memset(e, 0, sizeof *e);
    e->key = *key;
    dnnl_primitive_desc_t pd;
    dnnl_memory_desc_t md[4];
    dnnl_status_t s = describe(c->engine, key, &pd, md);
    if (s != dnnl_success)
        kd_fatal(__FILE__, __LINE__, "oneDNN has no bf16 product for this shape",
                 "status %d for %c%c m=%d n=%d k=%d lda=%d ldb=%d ldc=%d", (int)s, key->trans_a ? 'T' : 'N',
                 key->trans_b ? 'T' : 'N', key->m, key->n, key->k, key->lda, key->ldb, key->ldc);
    const dnnl_memory_desc_t *scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t scratch_bytes = dnnl_memory_desc_get_size(scratch_md);
    if (scratch_bytes) {
        e->scratch = kd_calloc_aligned(scratch_bytes, 1);
        KD_ASSERT(e->scratch != NULL, "out of memory for a %zu-byte oneDNN scratchpad", scratch_bytes);
    }
    MM_CHECK(dnnl_primitive_create(&e->primitive, pd));
    MM_CHECK(dnnl_memory_create(&e->src, &md[0], c->engine, DNNL_MEMORY_NONE));
    MM_CHECK(dnnl_memory_create(&e->weights, &md[1], c->engine, DNNL_MEMORY_NONE));
    MM_CHECK(dnnl_memory_create(&e->dst, &md[2], c->engine, DNNL_MEMORY_NONE));
    MM_CHECK(dnnl_memory_create(&e->bias, &md[3], c->engine, DNNL_MEMORY_NONE));
    MM_CHECK(dnnl_memory_create(&e->scratchpad, scratch_md, c->engine, e->scratch));
    MM_CHECK(dnnl_primitive_desc_destroy(pd)); /* scratch_md lives in pd */
}

/* The entry of key, created when missing; a full cache gives up its oldest entry,
 * never `keep` (the other part of the product being prepared). */
static mm_entry *lookup(kd_mm_cache *c, const mm_key *key, const mm_entry *keep)
{
    for (int i = 0; i < c->count; i++)
        if (memcmp(&c->entry[i].key, key, sizeof *key) == 0) return &c->entry[i];
    mm_entry *e;
    if (c->count < KD_MM_MAX_ENTRIES) {
        e = &c->entry[c->count++];
    } else {
        if (&c->entry[c->next_victim] == keep) c->next_victim = (c->next_victim + 1) % KD_MM_MAX_ENTRIES;
        e = &c->entry[c->next_victim];
        c->next_victim = (c->next_victim + 1) % KD_MM_MAX_ENTRIES;
        entry_free(e);
    }
    entry_create(c, e, key);
    return e;
}

/* One part: its pointers and its primitive. */
typedef struct mm_part {
    mm_entry *entry;
    const kd_bf16 *a, *b;
    void *c;
    const float *bias;
} mm_part;

static int execute(const mm_part *p, dnnl_stream_t stream)
{
    const mm_entry *e = p->entry;
    dnnl_status_t s;
    if ((s = dnnl_memory_set_data_handle(e->src, (void *)(size_t)p->a)) ||
        (s = dnnl_memory_set_data_handle(e->weights, (void *)(size_t)p->b)) ||
        (s = dnnl_memory_set_data_handle(e->dst, p->c)))
        return (int)s;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->weights}, {DNNL_ARG_DST, e->dst},
                               {DNNL_ARG_SCRATCHPAD, e->scratchpad}, {DNNL_ARG_BIAS, e->bias}};
    if (p->bias && (s = dnnl_memory_set_data_handle(e->bias, (void *)(size_t)p->bias))) return (int)s;
    return (int)dnnl_primitive_execute(e->primitive, stream, p->bias ? 5 : 4, args);
}

/* The split rule, from the shape alone (measured on the teacher's and student's
 * products, docs/ARCHITECTURE.md): a wide, short C with a real reduction is cut
 * into column halves (each half reads half of B); anything else with 32 rows or
 * more into row halves; small products stay whole. Cut points are multiples of 16,
 * the kernels' row and column blocks. */
static int plan(const kd_mm_bf16 *q, bool *by_columns, int *cut)
{
    *by_columns = false;
    *cut = 0;
    if (2.0 * q->m * q->n * q->k < KD_MM_SPLIT_MIN_FLOP) return 1;
    if (q->n >= 2 * q->m && q->n >= 128 && q->k >= 64) {
        *by_columns = true;
        *cut = q->n / 2 / 16 * 16;
        return 2;
    }
    if (q->m >= 32) {
        *cut = q->m / 2 / 16 * 16;
        return 2;
    }
    return 1;
}

void kd_mm_bf16_run(kd_mm_cache *c, const kd_mm_bf16 *q)
{
    KD_ASSERT(q->m > 0 && q->n > 0 && q->k > 0, "bf16 product sizes m=%d n=%d k=%d", q->m, q->n, q->k);
    KD_ASSERT(!(q->accumulate && (q->bias || q->relu || q->c_bf16)),
              "a bf16 product accumulates into float C without bias or ReLU");
    bool by_columns;
    int cut, parts = plan(q, &by_columns, &cut);
    size_t c_size = q->c_bf16 ? sizeof(kd_bf16) : sizeof(float);
    mm_part part[KD_MM_PARTS];
    for (int p = 0; p < parts; p++) {
        int begin = p == 0 ? 0 : cut, end = parts == 1 ? (by_columns ? q->n : q->m) : p == 0 ? cut : by_columns ? q->n : q->m;
        mm_key key = (mm_key){.m = by_columns ? q->m : end - begin, .n = by_columns ? end - begin : q->n, .k = q->k,
                       .lda = q->lda, .ldb = q->ldb, .ldc = q->ldc, .trans_a = q->trans_a, .trans_b = q->trans_b,
                       .c_bf16 = q->c_bf16, .accumulate = q->accumulate, .bias = q->bias != NULL, .relu = q->relu,
                       .slot = p};
        part[p].entry = lookup(c, &key, p > 0 ? part[0].entry : NULL);
        if (by_columns) {
            part[p].a = q->a;
            part[p].b = q->b + (q->trans_b ? (size_t)begin * q->ldb : (size_t)begin);
            part[p].c = (char *)q->c + (size_t)begin * c_size;
            part[p].bias = q->bias ? q->bias + begin : NULL;
        } else {
            part[p].a = q->a + (q->trans_a ? (size_t)begin : (size_t)begin * q->lda);
            part[p].b = q->b;
            part[p].c = (char *)q->c + (size_t)begin * q->ldc * c_size;
            part[p].bias = q->bias;
        }
    }
    int failed = 0;
    if (parts == 2 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
        /* Inside a parallel region oneDNN runs each primitive on its calling thread. */
#pragma omp parallel for num_threads(2) schedule(static) reduction(max : failed)
        for (int p = 0; p < 2; p++) {
            /* This thread's own count (an ICV of the region's implicit task): the
             * primitive sees the one thread it was created for. */
            omp_set_num_threads(1);
            int status = execute(&part[p], c->stream[p]);
            if (status > failed) failed = status;
        }
    } else {
        int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
        if (threads > 1) omp_set_num_threads(1);
        for (int p = 0; p < parts; p++) {
            int status = execute(&part[p], c->stream[p]);
            if (status > failed) failed = status;
        }
        if (threads > 1) omp_set_num_threads(threads);
    }
    c->executions += parts;
    if (failed)
        kd_fatal(__FILE__, __LINE__, "oneDNN bf16 product failed", "status %d for %c%c m=%d n=%d k=%d", failed,
                 q->trans_a ? 'T' : 'N', q->trans_b ? 'T' : 'N', q->m, q->n, q->k);
}

int kd_mm_bf16_probe(int m, int n, int k, char *impl, size_t impl_size, bool *native, kd_error *err)
{
    *native = false;
    if (impl_size) impl[0] = '\0';
    dnnl_engine_t engine;
    dnnl_status_t s = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (s != dnnl_success)
        return kd_error_set(err, KD_ERR_LIBRARY, "bf16 products: oneDNN could not create a CPU engine (status %d)", (int)s);
    mm_key key = {.m = m, .n = n, .k = k, .lda = k, .ldb = n, .ldc = n};
    dnnl_primitive_desc_t pd;
    dnnl_memory_desc_t md[4];
    s = describe(engine, &key, &pd, md);
    if (s != dnnl_success) {
        dnnl_engine_destroy(engine);
        return kd_error_set(err, KD_ERR_LIBRARY,
                            "bf16 products: oneDNN has no bfloat16 matrix product on this CPU (status %d; it needs at "
                            "least AVX-512)", (int)s);
    }
    const char *name = NULL;
    s = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    if (s == dnnl_success && name) snprintf(impl, impl_size, "%s", name);
    /* Native: the kernel's ISA has bf16 dot products (avx512_core_bf16, AMX);
     * gemm:jit on plain AVX-512 converts bf16 to float32 and is slower than float32. */
    *native = name && (strstr(name, "bf16") || strstr(name, "amx"));
    dnnl_primitive_desc_destroy(pd);
    dnnl_engine_destroy(engine);
    return KD_OK;
}
