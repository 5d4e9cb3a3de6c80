/* check.h - assertions for programmer errors (shape mismatch, arena misuse, a
 * failed oneDNN call with valid arguments). They print file:line and abort;
 * environment errors (files, data, configs) are returned as kd_error instead. */
#ifndef KD_CHECK_H
#define KD_CHECK_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KD_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define KD_NORETURN __attribute__((noreturn))
#else
#define KD_PRINTF_LIKE(f, a)
#define KD_NORETURN
#endif

/* Prints "kdtrain: FILE:LINE: what: message" to stderr and aborts. */
KD_NORETURN void kd_fatal(const char *file, int line, const char *what, const char *fmt, ...)
    KD_PRINTF_LIKE(4, 5);

/* Always on (not tied to NDEBUG): the checks guard shapes and are cheap. */
#define KD_ASSERT(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond)) kd_fatal(__FILE__, __LINE__, "assertion `" #cond "` failed", __VA_ARGS__); \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
