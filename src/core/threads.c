/* threads.c - see threads.h. */
#define _POSIX_C_SOURCE 200809L
#include "core/threads.h"

#include "core/check.h"

#include <omp.h>
#include <pmmintrin.h>
#include <stdio.h>
#include <time.h>
#include <xmmintrin.h>

void kd_threads_set(int n)
{
    KD_ASSERT(n >= 1, "thread count %d must be at least 1", n);
    omp_set_num_threads(n);
}

int kd_threads_count(void) { return omp_get_max_threads(); }

void kd_threads_flush_denormals(void)
{
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#pragma omp parallel
    {
        _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
        _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    }
}

/* Busy cores from two samples of /proc/stat, 50 ms apart; -1 when unreadable. */
static double busy_cores(int *cores)
{
    unsigned long long first[2] = {0, 0}, second[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen("/proc/stat", "r");
        if (!f) return -1;
        unsigned long long v[8] = {0};
        int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                       &v[6], &v[7]);
        fclose(f);
        if (n < 5) return -1;
        unsigned long long idle = v[3] + v[4], total = 0;
        for (int i = 0; i < 8; i++) total += v[i];
        unsigned long long *s = k ? second : first;
        s[0] = idle;
        s[1] = total;
        if (k == 0) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
    }
    *cores = omp_get_num_procs();
    double dt = (double)(second[1] - first[1]);
    if (dt <= 0) return -1;
    return (1.0 - (double)(second[0] - first[0]) / dt) * *cores;
}

int kd_threads_idle(double *busy)
{
    int cores = 1;
    double b = busy_cores(&cores);
    if (busy) *busy = b;
    if (b < 0) return omp_get_num_procs();
    int n = (int)(cores - b + 0.5); /* the idle cores, rounded */
    return n < 1 ? 1 : n > cores ? cores : n;
}
