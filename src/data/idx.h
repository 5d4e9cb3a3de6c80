/* idx.h - reads IDX files (the MNIST / Fashion-MNIST format), gzipped or plain,
 * through zlib. Only unsigned-byte payloads are accepted: that is what the
 * image and label files hold. The header is checked against what the caller
 * expects and the payload must have exactly the byte count the header implies. */
#ifndef KD_IDX_H
#define KD_IDX_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_IDX_MAX_DIMS 3
#define KD_IDX_TYPE_UINT8 0x08

typedef struct kd_idx {
    uint8_t *data;                   /* owned: (dims[0], ..., dims[ndims-1]) row-major */
    int ndims;
    uint32_t dims[KD_IDX_MAX_DIMS];
    size_t size;                     /* product of dims: the payload's byte count */
} kd_idx;

/* Reads `path`, expecting magic 0x000008NN with NN = ndims (1..KD_IDX_MAX_DIMS);
 * messages call a 3-D payload images (pixel bytes) and a 1-D one labels. A
 * truncated payload, trailing bytes after it and a damaged gzip stream are
 * errors. On failure *idx is left empty (data NULL). */
int kd_idx_read(const char *path, int ndims, kd_idx *idx, kd_error *err);
void kd_idx_free(kd_idx *idx);

#ifdef __cplusplus
}
#endif
#endif
