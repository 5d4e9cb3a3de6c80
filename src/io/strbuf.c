/* strbuf.c - see strbuf.h. */
#include "io/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for `extra` more characters and the NUL; false (and failed) when out of memory. */
static bool reserve(kd_strbuf *b, size_t extra)
{
    if (b->failed) return false;
    if (b->text && b->length + extra + 1 <= b->capacity) return true;
    size_t cap = b->capacity ? b->capacity * 2 : 8192;
    while (cap < b->length + extra + 1) cap *= 2;
    char *text = realloc(b->text, cap);
    if (!text) {
        b->failed = true;
        return false;
    }
    if (!b->text) text[0] = '\0';
    b->text = text;
    b->capacity = cap;
    return true;
}

void kd_strbuf_printf(kd_strbuf *b, const char *fmt, ...)
{
    for (size_t extra = 0; reserve(b, extra);) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->capacity - b->length;
        int n = vsnprintf(b->text + b->length, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < room) {
            b->length += (size_t)n;
            return;
        }
        extra = (size_t)n;
    }
}

void kd_strbuf_append(kd_strbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n)) return;
    memcpy(b->text + b->length, s, n);
    b->length += n;
    b->text[b->length] = '\0';
}

void kd_strbuf_free(kd_strbuf *b)
{
    free(b->text);
    b->text = NULL;
    b->length = b->capacity = 0;
    b->failed = false;
}
