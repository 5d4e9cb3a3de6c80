// The tape and its arena: memory reuse across steps, accumulation of gradients
// where a tensor feeds several ops, and recording only what needs a gradient.
#include "support.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>

TEST_CASE("arena allocations are 64-byte aligned and reset reuses the same memory", "[arena]")
{
    kd_arena arena;
    kd_arena_init(&arena, 4096);
    void *first = kd_arena_alloc(&arena, 10);
    void *second = kd_arena_alloc(&arena, 100);
    REQUIRE((uintptr_t)first % KD_ARENA_ALIGN == 0);
    REQUIRE((uintptr_t)second % KD_ARENA_ALIGN == 0);
    REQUIRE((char *)second - (char *)first == 64);
    void *big = kd_arena_alloc(&arena, 100000); // larger than a block: a block of its own
    REQUIRE((uintptr_t)big % KD_ARENA_ALIGN == 0);
    std::memset(big, 1, 100000);
    size_t allocs = arena.system_allocs, high = arena.high_water;
    REQUIRE(allocs == 2);
    kd_arena_reset(&arena);
    REQUIRE(arena.used == 0);
    REQUIRE(kd_arena_alloc(&arena, 10) == first);
    REQUIRE(kd_arena_alloc(&arena, 100) == second);
    REQUIRE(kd_arena_alloc(&arena, 100000) == big);
    REQUIRE(arena.system_allocs == allocs);
    REQUIRE(arena.high_water == high);
    kd_arena_free(&arena);
    REQUIRE(arena.first == nullptr);
}

TEST_CASE("arena calloc returns zeroed memory after a reset", "[arena]")
{
    kd_arena arena;
    kd_arena_init(&arena, 4096);
    std::memset(kd_arena_alloc(&arena, 256), 0xff, 256);
    kd_arena_reset(&arena);
    auto *p = (unsigned char *)kd_arena_calloc(&arena, 256);
    for (int i = 0; i < 256; i++) REQUIRE(p[i] == 0);
    kd_arena_free(&arena);
}

namespace {

// A 20-32-32-5 MLP trained by distillation with plain SGD: the shape of a real
// training step (views of the batch, dropout, fused losses, backward, update).
struct TinyModel {
    std::vector<float> w1, b1, w2, b2, w3, b3;
    std::vector<float> g1, gb1, g2, gb2, g3, gb3;
    TinyModel()
        : w1(kdtest::random_normal(20 * 32, 0.2f, 1)), b1(32, 0.0f), w2(kdtest::random_normal(32 * 32, 0.2f, 2)),
          b2(32, 0.0f), w3(kdtest::random_normal(32 * 5, 0.2f, 3)), b3(5, 0.0f), g1(w1.size()), gb1(32),
          g2(w2.size()), gb2(32), g3(w3.size()), gb3(5)
    {
    }
    void zero_grad()
    {
        for (auto *g : {&g1, &gb1, &g2, &gb2, &g3, &gb3}) std::fill(g->begin(), g->end(), 0.0f);
    }
    void sgd(float lr)
    {
        std::vector<float> *p[] = {&w1, &b1, &w2, &b2, &w3, &b3}, *g[] = {&g1, &gb1, &g2, &gb2, &g3, &gb3};
        for (int k = 0; k < 6; k++)
            for (size_t i = 0; i < p[k]->size(); i++) (*p[k])[i] -= lr * (*g[k])[i];
    }
};

float train_step(kd_tape *tape, TinyModel &m, std::vector<float> &x, std::vector<float> &teacher,
                 const std::vector<int32_t> &y, kd_rng *rng)
{
    const int B = 16;
    kd_tape_reset(tape);
    m.zero_grad();
    kd_tensor *in = kd_tape_view(tape, B, 20, x.data(), nullptr);
    kd_tensor *h = kd_op_linear(tape, in, kd_tape_view(tape, 20, 32, m.w1.data(), m.g1.data()),
                                kd_tape_view(tape, 1, 32, m.b1.data(), m.gb1.data()), KD_ACT_RELU);
    h = kd_op_dropout(tape, h, 0.2f, rng);
    h = kd_op_linear(tape, h, kd_tape_view(tape, 32, 32, m.w2.data(), m.g2.data()),
                     kd_tape_view(tape, 1, 32, m.b2.data(), m.gb2.data()), KD_ACT_RELU);
    kd_tensor *logits = kd_op_linear(tape, h, kd_tape_view(tape, 32, 5, m.w3.data(), m.g3.data()),
                                     kd_tape_view(tape, 1, 5, m.b3.data(), m.gb3.data()), KD_ACT_NONE);
    kd_tensor *t = kd_tape_view(tape, B, 5, teacher.data(), nullptr);
    kd_tensor *loss = kd_op_kd_loss(tape, logits, t, y.data(), 4.0f, 0.7f);
    kd_tape_backward(tape, loss);
    m.sgd(0.05f);
    return loss->data[0];
}

} // namespace

TEST_CASE("a tape reused for 1000 training steps keeps its arena high-water mark fixed", "[tape]")
{
    TinyModel model;
    auto x = kdtest::random_uniform(16 * 20, -1, 1, 10);
    auto teacher = kdtest::random_uniform(16 * 5, -3, 3, 11);
    std::vector<int32_t> y = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0};
    kd_rng rng;
    kd_rng_seed(&rng, 5);
    kd_tape tape;
    kd_tape_init(&tape, 8192); // small blocks: the step spans several of them
    float first_loss = train_step(&tape, model, x, teacher, y, &rng);
    size_t high_water = tape.arena.high_water, allocs = tape.arena.system_allocs;
    size_t reserved = tape.arena.reserved;
    int nodes = tape.node_count;
    REQUIRE(allocs > 1);
    float loss = first_loss;
    for (int step = 1; step < 1000; step++) {
        loss = train_step(&tape, model, x, teacher, y, &rng);
        REQUIRE(tape.arena.high_water == high_water);
        REQUIRE(tape.arena.system_allocs == allocs);
        REQUIRE(tape.arena.reserved == reserved);
        REQUIRE(tape.node_count == nodes);
    }
    INFO("loss went from " << first_loss << " to " << loss);
    REQUIRE(loss < 0.5f * first_loss); // the steps really trained the model
    kd_tape_free(&tape);
}

TEST_CASE("a tensor used by several ops receives the sum of their gradients", "[tape]")
{
    std::vector<float> x = {1, 2, 3, 4}, gx(4, 0.0f);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    kd_tensor *v = kd_tape_view(&tape, 2, 2, x.data(), gx.data());
    // loss = mean(2x) + mean(3x): d/dx = (2 + 3) / 4 for every element.
    kd_tensor *loss = kd_op_bias_add(&tape, kd_op_mean(&tape, kd_op_scale(&tape, v, 2.0f)),
                                     kd_op_mean(&tape, kd_op_scale(&tape, v, 3.0f)));
    REQUIRE(loss->data[0] == Approx(12.5f));
    kd_tape_backward(&tape, loss);
    for (float g : gx) REQUIRE(g == 1.25f);
    kd_tape_free(&tape);
}

TEST_CASE("parameter gradients accumulate across backward passes until zeroed", "[tape]")
{
    std::vector<float> x = {1, -2, 3}, gx(3, 0.0f);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    for (int pass = 0; pass < 2; pass++) {
        kd_tape_reset(&tape);
        kd_tensor *v = kd_tape_view(&tape, 1, 3, x.data(), gx.data());
        kd_tape_backward(&tape, kd_op_mean(&tape, kd_op_scale(&tape, v, 3.0f)));
    }
    for (float g : gx) REQUIRE(g == 2.0f); // 2 passes of 3/3
    kd_tape_free(&tape);
}

TEST_CASE("ops record nothing when no input needs a gradient or gradients are off", "[tape]")
{
    std::vector<float> x = {1, 2, 3, 4}, gx(4, 0.0f);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    kd_tensor *data = kd_tape_view(&tape, 2, 2, x.data(), nullptr);
    kd_tensor *y = kd_op_relu(&tape, kd_op_scale(&tape, data, 2.0f));
    REQUIRE(tape.node_count == 0);
    REQUIRE_FALSE(y->requires_grad);
    REQUIRE(y->data[3] == 8.0f);
    kd_tape_set_grad_enabled(&tape, false);
    kd_tensor *param = kd_tape_view(&tape, 2, 2, x.data(), gx.data());
    kd_op_mean(&tape, kd_op_scale(&tape, param, 2.0f));
    REQUIRE(tape.node_count == 0);
    kd_tape_set_grad_enabled(&tape, true);
    kd_op_mean(&tape, kd_op_scale(&tape, param, 2.0f));
    REQUIRE(tape.node_count == 2);
    kd_tape_free(&tape);
}

TEST_CASE("every op has a name", "[tape]")
{
    REQUIRE(std::string(kd_op_name(KD_OP_MATMUL)) == "matmul");
    REQUIRE(std::string(kd_op_name(KD_OP_KD_LOSS)) == "kd_loss");
    for (int op = 0; op < KD_OP_COUNT; op++) REQUIRE(kd_op_name((kd_op)op) != nullptr);
}

TEST_CASE("parameter-sized blocks are zeroed, 64-byte aligned, and NULL when the size overflows", "[arena]")
{
    for (size_t count : {size_t(1), size_t(17), size_t(50890)}) {
        float *block = static_cast<float *>(kd_calloc_aligned(count, sizeof(float)));
        REQUIRE(block != nullptr);
        REQUIRE(reinterpret_cast<uintptr_t>(block) % 64 == 0);
        for (size_t i = 0; i < count; i++) REQUIRE(block[i] == 0.0f);
        free(block);
    }
    REQUIRE(kd_calloc_aligned(SIZE_MAX / 2, 4) == nullptr);
    REQUIRE(kd_calloc_aligned(SIZE_MAX / 4, 4) == nullptr); // passes the product check; the padding would wrap
}
