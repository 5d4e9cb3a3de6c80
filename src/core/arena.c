/* arena.c - chained-block bump allocator (see arena.h). */
#include "core/arena.h"

#include "core/check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct kd_arena_block {
    kd_arena_block *next;
    size_t capacity;
    size_t offset;
    unsigned char *data;
};

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

/* NULL when out of memory. */
static kd_arena_block *block_try_create(size_t capacity)
{
    kd_arena_block *block = malloc(sizeof *block);
    capacity = round_up(capacity, KD_ARENA_ALIGN);
    void *data = block ? aligned_alloc(KD_ARENA_ALIGN, capacity) : NULL;
    if (!block || !data) {
        free(block);
        free(data);
        return NULL;
    }
    block->next = NULL;
    block->capacity = capacity;
    block->offset = 0;
    block->data = data;
    return block;
}

static kd_arena_block *block_create(size_t capacity)
{
    kd_arena_block *block = block_try_create(capacity);
    KD_ASSERT(block, "out of memory allocating an arena block of %zu bytes", capacity);
    return block;
}

bool kd_arena_reserve(kd_arena *arena, size_t bytes)
{
    if (arena->first) return true;
    arena->first = block_try_create(bytes > arena->block_bytes ? bytes : arena->block_bytes);
    if (!arena->first) return false;
    arena->reserved += arena->first->capacity;
    arena->system_allocs++;
    return true;
}

void kd_arena_init(kd_arena *arena, size_t block_bytes)
{
    memset(arena, 0, sizeof *arena);
    arena->block_bytes = block_bytes < 4096 ? 4096 : block_bytes;
}

void *kd_arena_alloc(kd_arena *arena, size_t bytes)
{
    size_t need = round_up(bytes ? bytes : 1, KD_ARENA_ALIGN);
    if (!arena->current) {
        if (!arena->first) {
            arena->first = block_create(need > arena->block_bytes ? need : arena->block_bytes);
            arena->reserved += arena->first->capacity;
            arena->system_allocs++;
        }
        arena->current = arena->first;
    }
    kd_arena_block *block = arena->current;
    /* Move along the kept chain to the first block with room; the same sequence
     * of requests after a reset takes the same path, so it never mallocs. */
    while (block->offset + need > block->capacity) {
        arena->used += block->capacity - block->offset; /* the tail is wasted */
        block->offset = block->capacity;
        if (!block->next) {
            kd_arena_block *fresh =
                block_create(need > arena->block_bytes ? need : arena->block_bytes);
            arena->reserved += fresh->capacity;
            arena->system_allocs++;
            block->next = fresh;
        }
        block = block->next;
        arena->current = block;
    }
    void *p = block->data + block->offset;
    block->offset += need;
    arena->used += need;
    if (arena->used > arena->high_water) arena->high_water = arena->used;
    return p;
}

void *kd_arena_calloc(kd_arena *arena, size_t bytes)
{
    void *p = kd_arena_alloc(arena, bytes);
    memset(p, 0, bytes);
    return p;
}

void kd_arena_reset(kd_arena *arena)
{
    for (kd_arena_block *b = arena->first; b; b = b->next) b->offset = 0;
    arena->current = arena->first;
    arena->used = 0;
}

void kd_arena_free(kd_arena *arena)
{
    kd_arena_block *b = arena->first;
    while (b) {
        kd_arena_block *next = b->next;
        free(b->data);
        free(b);
        b = next;
    }
    size_t block_bytes = arena->block_bytes;
    kd_arena_init(arena, block_bytes);
}

void *kd_calloc_aligned(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    size_t bytes = count * size;
    if (bytes > SIZE_MAX - (KD_ARENA_ALIGN - 1)) return NULL; /* the padding below would wrap */
    bytes = (bytes + KD_ARENA_ALIGN - 1) / KD_ARENA_ALIGN * KD_ARENA_ALIGN; /* aligned_alloc wants a multiple */
    void *block = aligned_alloc(KD_ARENA_ALIGN, bytes ? bytes : KD_ARENA_ALIGN);
    if (block) memset(block, 0, bytes);
    return block;
}
