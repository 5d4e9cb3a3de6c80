// Counts heap allocations in the steady-state training step. malloc and friends are
// interposed (glibc's __libc_* underneath), so every allocation in the process is
// seen, oneDNN's included. oneDNN's sgemm allocates its own packing buffers on every
// call (measured: 3 per dnnl_sgemm), so the step's count is compared with a replay
// of exactly the step's matrix products: any allocation by kdtrain's own code (batch
// gather, tape, ops, loss, backward, optimiser) makes the step's count larger.
// A bf16 step's products are oneDNN primitives, whose execution builds a std::unordered_map
// of its arguments (allocations on every call, inside libdnnl): dnnl_primitive_execute is
// interposed too, and allocations made inside it are not counted (per thread: the two
// halves of a product execute on two threads). Everything else in the bf16 step counts.
// Built only without sanitizers (they interpose malloc themselves).
#include "support.h"

extern "C" {
#include "core/gemm.h"
#include "core/matmul_bf16.h"
#include "core/ops.h"
#include "core/tape.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/mlp.h"
#include "nn/optim.h"
}

#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>

extern "C" {
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void __libc_free(void *);
}

static std::atomic<long> g_allocs{0};
static std::atomic<long> g_executions{0};  // dnnl_primitive_execute calls
static thread_local int t_inside_execute = 0; // this thread is inside dnnl_primitive_execute

static void count_alloc()
{
    if (!t_inside_execute) g_allocs++;
}

extern "C" {
void *malloc(size_t n)
{
    count_alloc();
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    count_alloc();
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    count_alloc();
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t a, size_t n)
{
    count_alloc();
    return __libc_memalign(a, n);
}
void *memalign(size_t a, size_t n)
{
    count_alloc();
    return __libc_memalign(a, n);
}
dnnl_status_t dnnl_primitive_execute(const_dnnl_primitive_t primitive, dnnl_stream_t stream, int nargs,
                                     const dnnl_exec_arg_t *args)
{
    using execute_fn = dnnl_status_t (*)(const_dnnl_primitive_t, dnnl_stream_t, int, const dnnl_exec_arg_t *);
    static execute_fn real = (execute_fn)dlsym(RTLD_NEXT, "dnnl_primitive_execute");
    g_executions++;
    t_inside_execute++;
    dnnl_status_t status = real(primitive, stream, nargs, args);
    t_inside_execute--;
    return status;
}
int posix_memalign(void **p, size_t a, size_t n)
{
    count_alloc();
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;
}
}

// AdamW at lr 1e-3 with a cosine schedule over 1000 steps: the training steps' optimiser.
static kd_optim_config adamw_config()
{
    kd_optim_config oc = {};
    oc.kind = KD_OPTIM_ADAMW;
    oc.lr = 1e-3;
    oc.beta1 = 0.9;
    oc.beta2 = 0.999;
    oc.eps = 1e-8;
    oc.schedule = KD_SCHEDULE_COSINE;
    oc.total_steps = 1000;
    return oc;
}

TEST_CASE("the steady-state training step allocates nothing beyond oneDNN's own product buffers", "[alloc]")
{
    const int B = 32, sizes[4] = {16, 64, 64, 4};
    std::string dir = kdtest::temp_dir(), path = dir + "/clusters.h5";
    kdtest::write_cluster_dataset(path, 512, 64, 16, 4, 2);
    kd_dataset_options o;
    kd_dataset_options_default(&o);
    o.val_from_train = 0;
    kd_dataset ds;
    kd_error err;
    REQUIRE(kd_dataset_open(&ds, path.c_str(), &o, &err) == KD_OK);
    REQUIRE(kd_dataset_load(&ds, KD_SPLIT_TRAIN, &err) == KD_OK);
    kd_loader_options lo;
    kd_loader_options_default(&lo);
    lo.batch_size = B;
    lo.last_batch = KD_LAST_BATCH_DROP;
    kd_loader loader;
    REQUIRE(kd_loader_open(&loader, &ds, KD_SPLIT_TRAIN, &lo, &err) == KD_OK);
    kd_mlp_config c = {3, {16, 64, 64, 4}, 0.2f, 0.0f, KD_INIT_HE};
    kd_mlp mlp;
    REQUIRE(kd_mlp_create(&mlp, &c, &err) == KD_OK);
    kd_mlp_init(&mlp, 1);
    kd_optim_config oc = adamw_config();
    kd_optim opt;
    REQUIRE(kd_optim_create(&opt, &oc, mlp.n_params, &err) == KD_OK);
    kd_rng rng;
    kd_rng_seed(&rng, 4);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    std::vector<float> teacher(B * 4, 0.5f);

    auto step = [&]() {
        kd_batch b;
        if (kd_loader_next(&loader, &b, &err) != KD_OK || b.rows == 0) {
            kd_loader_start_epoch(&loader, loader.epoch + 1);
            kd_loader_next(&loader, &b, &err);
        }
        kd_tape_reset(&tape);
        /* the optimiser step leaves the gradients zeroed */
        kd_tensor *x = kd_tape_view(&tape, b.rows, 16, b.x, nullptr);
        kd_tensor *logits = kd_mlp_forward(&mlp, &tape, x, true, &rng);
        kd_tensor *t = kd_tape_view(&tape, b.rows, 4, teacher.data(), nullptr);
        kd_tape_backward(&tape, kd_op_kd_loss(&tape, logits, t, b.y, 2.0f, 0.5f));
        kd_optim_step(&opt, mlp.params, mlp.grads);
    };
    // The same products, on scratch buffers: forward X W for 3 layers, then per
    // layer dW = X^T dY, and dX = dY W^T for layers 2 and 3.
    std::vector<float> a(B * 64, 0.1f), w(64 * 64, 0.1f), out(64 * 64, 0.0f);
    auto products = [&]() {
        for (int k = 0; k < 3; k++)
            kd_gemm(false, false, B, sizes[k + 1], sizes[k], 1, a.data(), sizes[k], w.data(), sizes[k + 1], 1, out.data(), sizes[k + 1]);
        for (int k = 2; k >= 0; k--) {
            kd_gemm(true, false, sizes[k], sizes[k + 1], B, 1, a.data(), sizes[k], a.data(), sizes[k + 1], 1, w.data(), sizes[k + 1]);
            if (k > 0)
                kd_gemm(false, true, B, sizes[k], sizes[k + 1], 1, a.data(), sizes[k + 1], w.data(), sizes[k + 1], 1, out.data(), sizes[k]);
        }
    };
    for (int i = 0; i < 30; i++) { // warm up: arena blocks, oneDNN's JIT kernels
        step();
        products();
    }
    long step_allocs = 1L << 40, product_allocs = 1L << 40;
    for (int i = 0; i < 20; i++) {
        long before = g_allocs.load();
        step();
        long mid = g_allocs.load();
        products();
        long after = g_allocs.load();
        step_allocs = std::min(step_allocs, mid - before);
        product_allocs = std::min(product_allocs, after - mid);
    }
    INFO("allocations per step " << step_allocs << ", per replay of its 8 products " << product_allocs);
    std::printf("alloc: %ld allocations in a training step, %ld in its 8 matrix products alone\n", step_allocs,
                product_allocs);
    REQUIRE(step_allocs == product_allocs);
    // And a step without its products allocates nothing: the arena does not grow.
    size_t reserved = tape.arena.reserved, blocks = tape.arena.system_allocs;
    for (int i = 0; i < 50; i++) step();
    REQUIRE(tape.arena.reserved == reserved);
    REQUIRE(tape.arena.system_allocs == blocks);
    kd_tape_free(&tape);
    kd_optim_free(&opt);
    kd_mlp_free(&mlp);
    kd_loader_close(&loader);
    kd_dataset_close(&ds);
}

TEST_CASE("every distillation loss's forward and backward allocate nothing once the arena is warm", "[alloc]")
{
    const int B = 32, C = 10;
    std::vector<float> student(B * C), teacher(B * C);
    std::vector<int32_t> labels(B);
    for (int i = 0; i < B * C; i++) {
        student[i] = (float)((i * 37) % 19) / 4.0f - 2.0f;
        teacher[i] = (float)((i * 53) % 23) / 5.0f - 2.0f;
    }
    for (int i = 0; i < B; i++) labels[i] = i % 4 == 0 ? -1 : i % C; /* some unlabelled rows */
    const kd_distill_loss_kind kinds[] = {KD_DISTILL_KL, KD_DISTILL_REVERSE_KL, KD_DISTILL_JS, KD_DISTILL_DKD,
                                          KD_DISTILL_LSK};
    for (kd_distill_loss_kind kind : kinds) {
        kd_distill_loss loss = {kind, 4.0f, 0.7f, 1.0f, 8.0f};
        std::vector<float> grad(B * C, 0.0f);
        kd_tape tape;
        kd_tape_init(&tape, 0);
        auto step = [&]() {
            kd_tape_reset(&tape);
            kd_tensor *s = kd_tape_view(&tape, B, C, student.data(), grad.data());
            kd_tensor *t = kd_tape_view(&tape, B, C, teacher.data(), nullptr);
            kd_tape_backward(&tape, kd_op_distill_loss(&tape, s, t, labels.data(), &loss));
        };
        for (int i = 0; i < 5; i++) step();
        long before = g_allocs.load();
        for (int i = 0; i < 20; i++) step();
        long allocs = g_allocs.load() - before; /* read before INFO, which allocates */
        INFO("distill.loss kind " << (int)kind);
        REQUIRE(allocs == 0);
        kd_tape_free(&tape);
    }
}

TEST_CASE("the steady-state bf16 training step allocates nothing outside oneDNN's primitive execution", "[alloc][bf16]")
{
    char impl[64];
    bool native;
    kd_error err;
    if (kd_mm_bf16_probe(32, 64, 16, impl, sizeof impl, &native, &err) != KD_OK) {
        WARN("oneDNN has no bf16 product on this CPU: no bf16 step to count");
        return;
    }
    // Batch 64 and 16-256-128-4 with dropout: products cut in halves (on two threads),
    // whole ones, bf16 hidden outputs, the bf16 dropout, the transposes, the AdamW pass
    // that writes the bf16 copy.
    const int B = 64;
    kd_mlp_config c = {3, {16, 256, 128, 4}, 0.2f, 0.1f, KD_INIT_HE};
    kd_mlp mlp;
    REQUIRE(kd_mlp_create(&mlp, &c, &err) == KD_OK);
    kd_mlp_init(&mlp, 1);
    kd_mm_cache *cache;
    REQUIRE(kd_mm_cache_create(&cache, &err) == KD_OK);
    REQUIRE(kd_mlp_use_bf16(&mlp, cache, &err) == KD_OK);
    kd_optim_config oc = adamw_config();
    kd_optim opt;
    REQUIRE(kd_optim_create(&opt, &oc, mlp.n_params, &err) == KD_OK);
    kd_rng rng;
    kd_rng_seed(&rng, 4);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    std::vector<float> x(B * 16), teacher(B * 4, 0.5f);
    std::vector<int32_t> y(B);
    for (int i = 0; i < B * 16; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int i = 0; i < B; i++) y[i] = i % 4;
    auto step = [&]() {
        kd_tape_reset(&tape);
        kd_tensor *in = kd_tape_view(&tape, B, 16, x.data(), nullptr);
        kd_tensor *logits = kd_mlp_forward(&mlp, &tape, in, true, &rng);
        kd_tensor *t = kd_tape_view(&tape, B, 4, teacher.data(), nullptr);
        kd_tape_backward(&tape, kd_op_kd_loss(&tape, logits, t, y.data(), 2.0f, 0.5f));
        kd_optim_step_bf16(&opt, mlp.params, mlp.grads, mlp.params_bf16);
    };
    for (int i = 0; i < 10; i++) step(); // warm up: arena blocks, primitives
    long executions_before = g_executions.load(), products_before = kd_mm_cache_executions(cache);
    long before = g_allocs.load();
    for (int i = 0; i < 20; i++) step();
    long allocs = g_allocs.load() - before;
    long executions = g_executions.load() - executions_before, products = kd_mm_cache_executions(cache) - products_before;
    std::printf("alloc: %ld allocations in 20 bf16 steps outside %ld primitive executions\n", allocs, executions);
    INFO("primitive executions " << executions << ", kdtrain's count " << products);
    REQUIRE(executions == products); // every product went through the interposed call
    REQUIRE(executions >= 20 * 8);
    REQUIRE(allocs == 0);
    kd_tape_free(&tape);
    kd_optim_free(&opt);
    kd_mlp_free(&mlp);
    kd_mm_cache_free(cache);
}
