/* keys.h - typed key tables for INI files: each key's section, name, type, field
 * (an offset into the struct it fills), default, bounds or choices, declared once
 * in a table. Finding a key suggests the nearest one when it is unknown ("did you
 * mean train.epochs?"); assigning a value checks it and names the key and what was
 * expected. The run config (workflows/config.c) and the pipeline file
 * (workflows/pipeline.c) are both read through these tables, so both grammars give
 * the same messages for the same mistakes. */
#ifndef KD_KEYS_H
#define KD_KEYS_H

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_key_type {
    KD_KEY_TEXT,   /* char[size] */
    KD_KEY_INT,    /* int64_t within [min, max] (min exclusive when min_open) */
    KD_KEY_U64,    /* uint64_t */
    KD_KEY_FLOAT,  /* finite double within [min, max] */
    KD_KEY_BOOL,   /* bool: true/yes/1 or false/no/0 */
    KD_KEY_CHOICE, /* an int-sized enum, one of choices */
    KD_KEY_CUSTOM  /* parsed by the key's parse function */
} kd_key_type;

/* A choice key's values: each name with the enum value stored in the field. */
typedef struct kd_key_choice {
    const char *name;
    int value;
} kd_key_choice;

struct kd_key;
/* A custom key's parser: field is the key's field (base + offset); display is
 * "section.key" as the user wrote it, for messages. */
typedef int (*kd_key_parse_fn)(const struct kd_key *key, void *field, const char *display, const char *value,
                               const char *where, kd_error *err);

typedef struct kd_key {
    const char *section, *key;
    kd_key_type type;
    size_t offset, size;           /* the field in the target struct; size for text */
    const char *def;               /* the default as text, "" for none */
    double min, max;               /* bounds of numbers */
    bool min_open;                 /* min is exclusive */
    const kd_key_choice *choices;  /* KD_KEY_CHOICE: ending with {NULL, 0} */
    kd_key_parse_fn parse;         /* KD_KEY_CUSTOM */
} kd_key;

/* Bounds that mean "no upper bound". */
#define KD_KEY_BIG 1e18

/* The key `key` of `section` in table[0..n), or NULL with an error: "WHERE unknown
 * section [S]; did you mean [T]?" or "WHERE unknown key S.K; did you mean S.L?".
 * display_section (NULL: section) is the section as the user wrote it, e.g.
 * "regime.small" for keys declared in section "regime". */
const kd_key *kd_keys_find(const kd_key *table, size_t n, const char *section, const char *display_section,
                           const char *key, const char *where, kd_error *err);

/* Parses value into the key's field of target; errors read "WHERE S.K: expected ...,
 * found 'V'" (display NULL: the key's own section.key). */
int kd_keys_assign(const kd_key *k, void *target, const char *display, const char *value, const char *where,
                   kd_error *err);
/* The message of a bad value, for custom parsers. */
int kd_keys_bad_value(const kd_key *k, const char *display, const char *where, const char *value, const char *expected,
                      kd_error *err);

/* Every key of table with a default: its default assigned into target. */
void kd_keys_defaults(const kd_key *table, size_t n, void *target);

/* The value of a non-custom key as the text that reads back to it (the shortest
 * text for a double). */
void kd_keys_format(const kd_key *k, const void *target, char *buf, size_t size);
/* The name of a choice key's value. */
const char *kd_keys_choice_name(const kd_key *k, int value);

/* The one of names[0..n) nearest to name, or NULL when none is near. */
const char *kd_keys_nearest(const char *name, const char *const *names, int n);

#ifdef __cplusplus
}
#endif
#endif
