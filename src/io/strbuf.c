/* strbuf.c - see strbuf.h. */
#include "io/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void kd_strbuf_printf(kd_strbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->text ? b->capacity - b->length : 0;
        int n = vsnprintf(b->text ? b->text + b->length : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < room) {
            b->length += (size_t)n;
            return;
        }
        size_t cap = b->capacity ? b->capacity * 2 : 8192;
        while (cap < b->length + (size_t)n + 1) cap *= 2;
        char *text = realloc(b->text, cap);
        if (!text) {
            b->failed = true;
            return;
        }
        b->text = text;
        b->capacity = cap;
    }
}

void kd_strbuf_free(kd_strbuf *b)
{
    free(b->text);
    b->text = NULL;
    b->length = b->capacity = 0;
    b->failed = false;
}
