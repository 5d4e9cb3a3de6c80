/* threads.h - the process's threads: how many OpenMP threads oneDNN's products and
 * kdtrain's parallel loops use, how many cores are idle now, and denormal flushing
 * on every thread. Process-wide OpenMP state, set by the workflows, not libraries. */
#ifndef KD_THREADS_H
#define KD_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Threads used by oneDNN and the OpenMP kernels (process-wide). */
void kd_threads_set(int n);
int kd_threads_count(void);
/* The threads to use on this machine now: its idle cores, measured over 50 ms
 * (busy receives the busy cores, or -1 when /proc/stat is unreadable). OpenMP
 * threads that share a core with another busy process stall at every barrier
 * (measured: 2 threads beside one busy process train 3.6x slower than 1 thread). */
int kd_threads_idle(double *busy);
/* Flush denormal floats to zero on this thread and every OpenMP worker. Optimiser
 * state of dead units decays into the denormal range, where x86 arithmetic is about
 * 100 times slower; flushing changes only values below 1.2e-38. */
void kd_threads_flush_denormals(void);

#ifdef __cplusplus
}
#endif
#endif
