/* args.h - command-line options shared by the subcommands: "--name VALUE" or
 * "--name=VALUE", flags, and numbers checked with messages that name the option. */
#ifndef KD_CLI_ARGS_H
#define KD_CLI_ARGS_H

#include <stdbool.h>

typedef struct kd_args {
    int argc;
    char **argv;
    int i;               /* the argument being looked at */
    const char *command; /* "kdtrain train", for messages */
} kd_args;

/* 1: argv[i] is option `name` and *value is set (i advanced past a separate value);
 * 0: it is not; -1: its value is missing (said on stderr). */
int kd_arg_value(kd_args *a, const char *name, const char *expected, const char **value);
bool kd_arg_flag(const kd_args *a, const char *name);
/* A whole number in [min, max] or a message naming the option (returns false). */
bool kd_arg_int(const kd_args *a, const char *name, const char *text, long min, long max, long *out);
/* The message for an argument nobody matched; returns 2. */
int kd_arg_unknown(const kd_args *a);

#endif
