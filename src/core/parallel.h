/* parallel.h - loops that run on the OpenMP threads only when they are large
 * enough to pay for a parallel region (about a microsecond on this machine).
 * The choice is an explicit branch to a plain loop, not an OpenMP `if` clause:
 * libgomp allocates for every serialised region (15 mallocs a step, caught by the
 * allocation test). Either way each iteration does the same arithmetic, so the
 * results do not depend on which branch ran. */
#ifndef KD_PARALLEL_H
#define KD_PARALLEL_H

/* Elementwise loops over fewer elements than this run on the calling thread. */
#define KD_PARALLEL_MIN 32768

/* for (type i = 0; i < count; i++) { statement; } over the threads when `parallel`.
 * `statement` may hold several statements; a comma in it must sit inside
 * parentheses (or the macro's arguments split). */
#define KD_PARALLEL_FOR(parallel, type, i, count, statement)                                             \
    do {                                                                                                 \
        type count_ = (count);                                                                           \
        if (parallel) {                                                                                  \
            _Pragma("omp parallel for schedule(static)") for (type i = 0; i < count_; i++) { statement; } \
        } else {                                                                                         \
            for (type i = 0; i < count_; i++) { statement; }                                             \
        }                                                                                                \
    } while (0)

/* An elementwise loop over count elements, vectorised, threaded from KD_PARALLEL_MIN. */
#define KD_ELEMENTWISE(count, i, statement)                                                              \
    do {                                                                                                 \
        size_t count_ = (count);                                                                         \
        if (count_ >= KD_PARALLEL_MIN) {                                                                 \
            _Pragma("omp parallel for simd schedule(static)") for (size_t i = 0; i < count_; i++) { statement; } \
        } else {                                                                                         \
            for (size_t i = 0; i < count_; i++) { statement; }                                           \
        }                                                                                                \
    } while (0)

#endif
