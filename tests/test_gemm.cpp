// kd_gemm (oneDNN dnnl_sgemm) against a naive triple loop in double, for every
// transpose variant, odd shapes, leading dimensions wider than the matrix, and
// alpha/beta. Tolerance: |C - C_ref| <= 1e-5 (1 + |C_ref|) per element, well above
// float32 rounding for K <= 257 with entries in [-1, 1] (about K * 6e-8).
#include "support.h"

extern "C" {
#include "core/gemm.h"
#include "core/threads.h"
}

#include <catch2/catch.hpp>

#include <cmath>
#include <omp.h>

struct GemmCase {
    int M, N, K;
};

static double max_gemm_error(bool ta, bool tb, GemmCase s, float alpha, float beta, int pad)
{
    int rows_a = ta ? s.K : s.M, cols_a = ta ? s.M : s.K;
    int rows_b = tb ? s.N : s.K, cols_b = tb ? s.K : s.N;
    int lda = cols_a + pad, ldb = cols_b + pad, ldc = s.N + pad;
    auto A = kdtest::random_uniform((size_t)rows_a * lda, -1, 1, 1000 + s.M);
    auto B = kdtest::random_uniform((size_t)rows_b * ldb, -1, 1, 2000 + s.N);
    auto C = kdtest::random_uniform((size_t)s.M * ldc, -1, 1, 3000 + s.K);
    std::vector<double> ref(C.begin(), C.end());
    kdtest::gemm_reference(ta, tb, s.M, s.N, s.K, alpha, A, lda, B, ldb, beta, ref, ldc);
    kd_gemm(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
    double worst = 0;
    for (int i = 0; i < s.M; i++)
        for (int j = 0; j < ldc; j++) {
            size_t at = (size_t)i * ldc + j;
            double err = std::fabs(C[at] - ref[at]) / (1.0 + std::fabs(ref[at]));
            worst = std::max(worst, err);
        }
    return worst;
}

TEST_CASE("gemm matches a double triple loop for every transpose and odd shapes", "[gemm]")
{
    for (GemmCase s : {GemmCase{1, 1, 1}, GemmCase{7, 13, 5}, GemmCase{129, 257, 3},
                       GemmCase{3, 129, 257}, GemmCase{64, 10, 784}})
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                double err = max_gemm_error(ta, tb, s, 1.0f, 0.0f, 0);
                INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " ta=" << ta << " tb=" << tb
                          << " max rel error " << err);
                REQUIRE(err <= 1e-5);
            }
}

TEST_CASE("gemm honours alpha, beta accumulation and padded leading dimensions", "[gemm]")
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (float beta : {0.0f, 1.0f, -0.5f}) {
                double err = max_gemm_error(ta, tb, GemmCase{9, 11, 6}, -1.75f, beta, 3);
                INFO("ta=" << ta << " tb=" << tb << " beta=" << beta << " max rel error " << err);
                REQUIRE(err <= 1e-5);
            }
}

TEST_CASE("gemm with K = 0 scales C by beta", "[gemm]")
{
    std::vector<float> C = {1, 2, 3, 4};
    float dummy = 0;
    kd_gemm(false, false, 2, 2, 0, 1.0f, &dummy, 1, &dummy, 2, 0.5f, C.data(), 2);
    REQUIRE(C == std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f});
}

TEST_CASE("matmul op computes C = op(A) op(B) against the double reference", "[gemm]")
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            const int M = 7, K = 13, N = 5;
            auto A = kdtest::random_uniform(M * K, -1, 1, 5);
            auto B = kdtest::random_uniform(K * N, -1, 1, 6);
            std::vector<double> ref((size_t)M * N, 0.0);
            kdtest::gemm_reference(ta, tb, M, N, K, 1.0, A, ta ? M : K, B, tb ? K : N, 0.0, ref, N);
            kd_tape tape;
            kd_tape_init(&tape, 0);
            kd_tensor *a = kd_tape_view(&tape, ta ? K : M, ta ? M : K, A.data(), nullptr);
            kd_tensor *b = kd_tape_view(&tape, tb ? N : K, tb ? K : N, B.data(), nullptr);
            kd_tensor *c = kd_op_matmul(&tape, a, b, ta, tb);
            REQUIRE(c->rows == M);
            REQUIRE(c->cols == N);
            for (int i = 0; i < M * N; i++) REQUIRE(std::fabs(c->data[i] - ref[i]) <= 1e-5 * (1 + std::fabs(ref[i])));
            kd_tape_free(&tape);
        }
}

TEST_CASE("the automatic thread count is between 1 and the cores, from a readable /proc/stat", "[gemm]")
{
    double busy = -2;
    int n = kd_threads_idle(&busy);
    REQUIRE(n >= 1);
    REQUIRE(n <= omp_get_num_procs());
    REQUIRE(busy >= -1);
    REQUIRE(busy <= omp_get_num_procs() + 0.5);
}
