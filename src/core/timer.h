/* timer.h - wall-clock seconds from the monotonic clock, for progress lines and
 * benchmarks. Files that include it define _POSIX_C_SOURCE before any include. */
#ifndef KD_TIMER_H
#define KD_TIMER_H

#include <time.h>

static inline double kd_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
