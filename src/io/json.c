/* json.c - see json.h. */
#include "io/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kd_json_init(kd_json *j) { memset(j, 0, sizeof *j); }

void kd_json_free(kd_json *j)
{
    free(j->text);
    kd_json_init(j);
}

static void append(kd_json *j, const char *s, size_t n)
{
    if (j->failed) return;
    if (j->length + n + 1 > j->capacity) {
        size_t cap = j->capacity ? j->capacity : 1024;
        while (cap < j->length + n + 1) cap *= 2;
        char *text = realloc(j->text, cap);
        if (!text) {
            j->failed = true;
            return;
        }
        j->text = text;
        j->capacity = cap;
    }
    memcpy(j->text + j->length, s, n);
    j->length += n;
    j->text[j->length] = '\0';
}

static void appendf(kd_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(kd_json *j, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) append(j, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void quoted(kd_json *j, const char *s)
{
    append(j, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            append(j, esc, 2);
        } else if (c == '\n') {
            append(j, "\\n", 2);
        } else if (c == '\t') {
            append(j, "\\t", 2);
        } else if (c < 0x20) {
            appendf(j, "\\u%04x", c);
        } else {
            append(j, (const char *)&c, 1);
        }
    }
    append(j, "\"", 1);
}

/* Comma, newline and indentation before a value, then its key. */
static void start_value(kd_json *j, const char *key)
{
    if (j->depth > 0) {
        if (j->need_comma[j->depth]) append(j, ",", 1);
        append(j, "\n", 1);
        for (int i = 0; i < j->depth; i++) append(j, "  ", 2);
        j->need_comma[j->depth] = true;
    }
    if (key) {
        quoted(j, key);
        append(j, ": ", 2);
    }
}

static void open_container(kd_json *j, const char *key, const char *bracket)
{
    start_value(j, key);
    append(j, bracket, 1);
    if (j->depth < 63) j->depth++;
    j->need_comma[j->depth] = false;
}

static void close_container(kd_json *j, const char *bracket)
{
    bool had_items = j->need_comma[j->depth];
    if (j->depth > 0) j->depth--;
    if (had_items) {
        append(j, "\n", 1);
        for (int i = 0; i < j->depth; i++) append(j, "  ", 2);
    }
    append(j, bracket, 1);
    if (j->depth == 0) append(j, "\n", 1);
}

void kd_json_begin_object(kd_json *j, const char *key) { open_container(j, key, "{"); }
void kd_json_end_object(kd_json *j) { close_container(j, "}"); }
void kd_json_begin_array(kd_json *j, const char *key) { open_container(j, key, "["); }
void kd_json_end_array(kd_json *j) { close_container(j, "]"); }

void kd_json_string(kd_json *j, const char *key, const char *value)
{
    start_value(j, key);
    quoted(j, value);
}

void kd_json_number(kd_json *j, const char *key, double value)
{
    start_value(j, key);
    if (!isfinite(value)) {
        append(j, "null", 4);
        return;
    }
    char buf[40];
    for (int precision = 1; precision <= 17; precision++) { /* shortest exact text */
        snprintf(buf, sizeof buf, "%.*g", precision, value);
        if (strtod(buf, NULL) == value) break;
    }
    append(j, buf, strlen(buf));
}

void kd_json_int(kd_json *j, const char *key, int64_t value)
{
    start_value(j, key);
    appendf(j, "%lld", (long long)value);
}

void kd_json_bool(kd_json *j, const char *key, bool value)
{
    start_value(j, key);
    append(j, value ? "true" : "false", value ? 4 : 5);
}
