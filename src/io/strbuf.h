/* strbuf.h - a growing text buffer with printf, for reports (Markdown, SVG, CSV). */
#ifndef KD_STRBUF_H
#define KD_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_strbuf {
    char *text; /* NUL-terminated, NULL until something is written */
    size_t length, capacity;
    bool failed; /* out of memory: the text is incomplete */
} kd_strbuf;

void kd_strbuf_printf(kd_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends n bytes of s. */
void kd_strbuf_append(kd_strbuf *b, const char *s, size_t n);
void kd_strbuf_free(kd_strbuf *b);

#ifdef __cplusplus
}
#endif
#endif
