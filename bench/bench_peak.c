/* bench_peak.c - the machine's FMA peak in GFLOP/s with N threads: independent
 * AVX-512 (or AVX2) fused multiply-adds on registers, no memory traffic. The
 * reference that GFLOP/s of the training step are compared with.
 *   bench_peak [--threads N] [--seconds 0.5]  ->  peak_gflops_t<N> value
 */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ACC 12 /* independent accumulators hide the FMA latency */

__attribute__((target("avx512f"))) static float fma512(long iterations)
{
    __m512 acc[ACC], a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
    for (int k = 0; k < ACC; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iterations; i++)
        for (int k = 0; k < ACC; k++) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
    __m512 s = acc[0];
    for (int k = 1; k < ACC; k++) s = _mm512_add_ps(s, acc[k]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma256(long iterations)
{
    __m256 acc[ACC], a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-4f);
    for (int k = 0; k < ACC; k++) acc[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < iterations; i++)
        for (int k = 0; k < ACC; k++) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
    float out[8], sum = 0;
    __m256 s = acc[0];
    for (int k = 1; k < ACC; k++) s = _mm256_add_ps(s, acc[k]);
    _mm256_storeu_ps(out, s);
    for (int k = 0; k < 8; k++) sum += out[k];
    return sum;
}

int main(int argc, char **argv)
{
    int threads = 0;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    if (threads > 0) omp_set_num_threads(threads);
    int wide = __builtin_cpu_supports("avx512f") ? 16 : 8;
    long iterations = 20000000;
    double best = 0;
    float sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int n = 1;
#pragma omp parallel reduction(+ : sink)
        {
#pragma omp single
            n = omp_get_num_threads();
            sink += wide == 16 ? fma512(iterations) : fma256(iterations);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        double gflops = 2.0 * wide * ACC * (double)iterations * n / s * 1e-9;
        if (gflops > best) best = gflops;
        threads = n;
    }
    printf("peak_gflops_t%d %.1f\n", threads, best);
    fprintf(stderr, "(%s FMA loop, checksum %g)\n", wide == 16 ? "AVX-512" : "AVX2", (double)sink);
    return 0;
}
