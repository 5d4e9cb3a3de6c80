/* json.h - a small JSON writer into a growing buffer: enough for reports, with
 * correct string escaping and doubles that read back exactly (non-finite numbers
 * become null, as JSON has no NaN). */
#ifndef KD_JSON_H
#define KD_JSON_H

#include "io/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_json {
    kd_strbuf out; /* the text; out.failed when out of memory */
    int depth;
    bool need_comma[64];
} kd_json;

void kd_json_init(kd_json *j);
void kd_json_free(kd_json *j);
void kd_json_begin_object(kd_json *j, const char *key); /* key NULL inside arrays or at the top */
void kd_json_end_object(kd_json *j);
void kd_json_begin_array(kd_json *j, const char *key);
void kd_json_end_array(kd_json *j);
void kd_json_string(kd_json *j, const char *key, const char *value);
void kd_json_number(kd_json *j, const char *key, double value);
void kd_json_int(kd_json *j, const char *key, int64_t value);
void kd_json_bool(kd_json *j, const char *key, bool value);

#ifdef __cplusplus
}
#endif
#endif
