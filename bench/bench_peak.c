/* bench_peak.c - the machine's peaks in GFLOP/s with N threads, each an unrolled
 * loop of independent instructions on registers (no memory traffic), one loop per
 * OpenMP thread, best of 3 repetitions. The references that GFLOP/s of the
 * training steps are compared with:
 *
 *   peak_gflops_t<N>           float32 fused multiply-adds: AVX-512 vfmadd (or AVX2),
 *                              2 FLOP per lane (16 lanes, 8 with AVX2)
 *   peak_bf16_dp_gflops_t<N>   AVX512_BF16 vdpbf16ps: per float32 lane two bf16
 *                              products added to the accumulator, 16 lanes x 2 products
 *                              x (multiply + add) = 64 FLOP per instruction
 *   peak_amx_bf16_gflops_t<N>  AMX-BF16 tdpbf16ps on tiles of 16 rows x 64 bytes: a
 *                              16x16 float32 tile += 16x32 bf16 times 32x16 bf16,
 *                              16 * 16 * 32 * 2 = 16384 FLOP per instruction
 *
 *   bench_peak [--threads N]  ->  `name value` lines on stdout
 *
 * A bf16 line is left out (and stderr says why) when the CPU lacks the instructions
 * (cpuid leaf 7: subleaf 1 EAX bit 5 avx512_bf16; subleaf 0 EDX bit 22 amx-bf16, bit
 * 24 amx-tile) or, for AMX, when Linux refuses the tile data state: a process must ask
 * for it with arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) before any tile
 * instruction, and each thread loads a tile configuration before using the tiles and
 * releases them after. The instructions are reached through target attributes, so the
 * file builds with the project's flags (no -mamx-*) on any x86-64 compiler that knows them.
 */
#define _GNU_SOURCE /* syscall() */
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ACC 12 /* independent accumulators hide the FMA / vdpbf16ps latency */

/* AMX: 8 tiles; 6 accumulators (tdpbf16ps has a latency of several of its issue
 * intervals) reuse the same two source tiles. */
#define AMX_ACC 6
#define AMX_ROWS 16
#define AMX_COLSB 64
#define AMX_FLOP_PER_TDP (16.0 * 16.0 * 32.0 * 2.0)
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

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

/* acc += a . b per lane: acc[j] += a[2j] b[2j] + a[2j+1] b[2j+1], a and b bf16 pairs
 * of 1 and 1e-4, so each instruction adds 2e-4 to every lane (finite for any run). */
__attribute__((target("avx512f,avx512bf16"))) static float dpbf16(long iterations)
{
    __m512 acc[ACC];
    __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
    __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
    for (int k = 0; k < ACC; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iterations; i++)
        for (int k = 0; k < ACC; k++) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
    __m512 s = acc[0];
    for (int k = 1; k < ACC; k++) s = _mm512_add_ps(s, acc[k]);
    return _mm512_reduce_add_ps(s);
}

/* The 64-byte tile configuration of palette 1 (Intel SDM, LDTILECFG). */
struct tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* Tiles 0-5 accumulate float32 16x16, tile 6 holds A (16 rows of 32 bf16), tile 7
 * B (16 rows of 2 x 16 bf16 pairs). A = 1, B = 2^-14 (bf16 0x3880): each tdpbf16ps adds
 * 32 * 2^-14 to every accumulator element. Returns the sum of the accumulators. */
__attribute__((target("amx-tile,amx-bf16"))) static float amx_bf16(long iterations)
{
    struct tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = AMX_ROWS;
        cfg.colsb[t] = AMX_COLSB;
    }
    static const uint16_t one = 0x3f80, small = 0x3880;
    uint16_t a[AMX_ROWS * AMX_COLSB / 2], b[AMX_ROWS * AMX_COLSB / 2];
    for (int i = 0; i < AMX_ROWS * AMX_COLSB / 2; i++) {
        a[i] = one;
        b[i] = small;
    }
    float c[AMX_ROWS * AMX_COLSB / 4];
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    _tile_loadd(6, a, AMX_COLSB);
    _tile_loadd(7, b, AMX_COLSB);
    for (long i = 0; i < iterations; i++) {
        _tile_dpbf16ps(0, 6, 7);
        _tile_dpbf16ps(1, 6, 7);
        _tile_dpbf16ps(2, 6, 7);
        _tile_dpbf16ps(3, 6, 7);
        _tile_dpbf16ps(4, 6, 7);
        _tile_dpbf16ps(5, 6, 7);
    }
    float sum = 0;
#define KD_STORE_SUM(t)                                                         \
    do {                                                                        \
        _tile_stored(t, c, AMX_COLSB);                                          \
        for (int i = 0; i < AMX_ROWS * AMX_COLSB / 4; i++) sum += c[i];         \
    } while (0)
    KD_STORE_SUM(0);
    KD_STORE_SUM(1);
    KD_STORE_SUM(2);
    KD_STORE_SUM(3);
    KD_STORE_SUM(4);
    KD_STORE_SUM(5);
#undef KD_STORE_SUM
    _tile_release();
    return sum;
}

static int has_avx512_bf16(void)
{
    unsigned eax, ebx, ecx, edx;
    if (!__builtin_cpu_supports("avx512f")) return 0; /* includes the OS's ZMM state */
    if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return 0;
    return (eax >> 5) & 1u;
}

/* NULL when AMX-BF16 can be used, else the reason. */
static const char *amx_unavailable(void)
{
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !((edx >> 24) & 1u))
        return "the CPU has no AMX-TILE (cpuid 7.0 EDX bit 24)";
    if (!((edx >> 22) & 1u)) return "the CPU has no AMX-BF16 (cpuid 7.0 EDX bit 22)";
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return "Linux refused arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) (kernel before 5.16?)";
    return NULL;
}

enum kernel { FMA512, FMA256, DPBF16, AMXBF16 };

/* Best GFLOP/s of 3 runs of `iterations` loops on every thread; *threads gets the team size. */
static double measure(enum kernel kernel, long iterations, double flop_per_iteration, int *threads,
                      float *sink)
{
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        struct timespec a, b;
        float s = 0;
        int n = 1;
        clock_gettime(CLOCK_MONOTONIC, &a);
#pragma omp parallel reduction(+ : s)
        {
#pragma omp single
            n = omp_get_num_threads();
            switch (kernel) {
            case FMA512: s += fma512(iterations); break;
            case FMA256: s += fma256(iterations); break;
            case DPBF16: s += dpbf16(iterations); break;
            case AMXBF16: s += amx_bf16(iterations); break;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double seconds = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        double gflops = flop_per_iteration * (double)iterations * n / seconds * 1e-9;
        if (gflops > best) best = gflops;
        *threads = n;
        *sink += s;
    }
    return best;
}

int main(int argc, char **argv)
{
    int threads = 0;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    if (threads > 0) omp_set_num_threads(threads);

    int wide = __builtin_cpu_supports("avx512f") ? 16 : 8;
    float sink = 0;
    double peak = measure(wide == 16 ? FMA512 : FMA256, 20000000, 2.0 * wide * ACC, &threads, &sink);
    printf("peak_gflops_t%d %.1f\n", threads, peak);
    fprintf(stderr, "(%s FMA loop, checksum %g)\n", wide == 16 ? "AVX-512" : "AVX2", (double)sink);

    if (has_avx512_bf16()) {
        sink = 0;
        peak = measure(DPBF16, 20000000, 64.0 * ACC, &threads, &sink);
        printf("peak_bf16_dp_gflops_t%d %.1f\n", threads, peak);
        fprintf(stderr, "(AVX512_BF16 vdpbf16ps loop, checksum %g)\n", (double)sink);
    } else {
        fprintf(stderr, "no peak_bf16_dp: the CPU has no AVX512_BF16 (cpuid 7.1 EAX bit 5) or no AVX-512\n");
    }

    const char *why = amx_unavailable();
    if (!why) {
        sink = 0;
        peak = measure(AMXBF16, 4000000, AMX_ACC * AMX_FLOP_PER_TDP, &threads, &sink);
        printf("peak_amx_bf16_gflops_t%d %.1f\n", threads, peak);
        fprintf(stderr, "(AMX-BF16 tdpbf16ps loop, %d accumulator tiles, checksum %g)\n", AMX_ACC,
                (double)sink);
    } else {
        fprintf(stderr, "no peak_amx_bf16: %s\n", why);
    }
    return 0;
}
