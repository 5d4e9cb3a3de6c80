/* json.c - see json.h. */
#include "io/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kd_json_init(kd_json *j) { memset(j, 0, sizeof *j); }

void kd_json_free(kd_json *j)
{
    kd_strbuf_free(&j->out);
    kd_json_init(j);
}

static void append(kd_json *j, const char *s, size_t n) { kd_strbuf_append(&j->out, s, n); }

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
            kd_strbuf_printf(&j->out, "\\u%04x", c);
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
    kd_strbuf_printf(&j->out, "%lld", (long long)value);
}

void kd_json_bool(kd_json *j, const char *key, bool value)
{
    start_value(j, key);
    append(j, value ? "true" : "false", value ? 4 : 5);
}
