/* hash.h - FNV-1a (64-bit) over bytes: content fingerprints (a teacher's logits file,
 * what the ranks of a parallel job compare at the start). Not for security. */
#ifndef KD_HASH_H
#define KD_HASH_H

#include <stddef.h>
#include <stdint.h>

#define KD_FNV1A64_BASIS 14695981039346656037ULL

/* h extended by the `size` bytes at data; start from KD_FNV1A64_BASIS. */
static inline uint64_t kd_fnv1a64(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < size; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

#endif
