// kd_dgemm_nn / kd_dgemm_tn (the scaling family's double products) against a naive
// triple loop in long double, on shapes that exercise every edge of the 8 x 16 tiles:
// rows past m (repeated and not stored), columns past n (masked), k of 1, leading
// dimensions wider than the matrices, and C accumulated into. Tolerance: 1e-12 of
// |C0| + sum_p |a_ip b_pj| per element; double rounding gives at most k * 1.1e-16 of
// it (k <= 65 here: 7e-15), so 1e-12 leaves room for the order of the sums and no
// room for a wrong or missing term (each term is about 1/k of the scale).
#include "support.h"

extern "C" {
#include "core/dgemm.h"
#include "core/simd.h"
}

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

struct Shape {
    int m, n, k;
};

// Runs one product (tn: C += A^T B) with padded leading dimensions and returns the
// worst error over C's m x n region relative to its scale; entries outside the region
// (the padding) must come back untouched.
static double dgemm_error(bool avx, bool tn, Shape s, bool *padding_kept)
{
    const int pad = 3, rows_a = tn ? s.k : s.m, cols_a = tn ? s.m : s.k;
    const int lda = cols_a + pad, ldb = s.n + pad, ldc = s.n + pad;
    std::vector<float> fa = kdtest::random_normal((size_t)rows_a * lda, 1.0f, 11 + s.m);
    std::vector<float> fb = kdtest::random_normal((size_t)s.k * ldb, 1.0f, 12 + s.n);
    std::vector<float> fc = kdtest::random_normal((size_t)(s.m + 1) * ldc, 1.0f, 13 + s.k);
    // doubles with bits below float precision, so that products round in double
    std::vector<double> A(fa.size()), B(fb.size()), C(fc.size());
    for (size_t i = 0; i < A.size(); i++) A[i] = fa[i] * (1.0 + 1e-9 * (double)(i % 7));
    for (size_t i = 0; i < B.size(); i++) B[i] = fb[i] * (1.0 - 1e-9 * (double)(i % 5));
    for (size_t i = 0; i < C.size(); i++) C[i] = fc[i];
    const std::vector<double> C0 = C;
    if (tn) kd_dgemm_tn(avx, s.m, s.n, s.k, A.data(), lda, B.data(), ldb, C.data(), ldc);
    else kd_dgemm_nn(avx, s.m, s.n, s.k, A.data(), lda, B.data(), ldb, C.data(), ldc);
    double worst = 0.0;
    *padding_kept = true;
    for (int i = 0; i <= s.m; i++)
        for (int j = 0; j < ldc; j++) {
            size_t at = (size_t)i * ldc + j;
            if (i == s.m || j >= s.n) { // a row past m or a column past n
                *padding_kept = *padding_kept && C[at] == C0[at];
                continue;
            }
            long double ref = C0[at], scale = std::fabs(C0[at]);
            for (int p = 0; p < s.k; p++) {
                long double a = tn ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                long double t = a * (long double)B[(size_t)p * ldb + j];
                ref += t;
                scale += std::fabs(t);
            }
            worst = std::max(worst, (double)(std::fabs((long double)C[at] - ref) / scale));
        }
    return worst;
}

TEST_CASE("the double products equal a naive product on odd shapes to 1e-12 relative", "[dgemm]")
{
    const Shape shapes[] = {{1, 1, 1},   {7, 13, 5},  {9, 17, 3},  {8, 16, 8}, {17, 33, 65},
                            {23, 5, 40}, {3, 100, 2}, {101, 11, 64}};
    for (int variant = 0; variant < 2; variant++) {
        bool avx = variant == 1;
        if (avx && !kd_cpu_has_avx512()) continue;
        for (bool tn : {false, true})
            for (Shape s : shapes) {
                bool kept = false;
                double err = dgemm_error(avx, tn, s, &kept);
                INFO((avx ? "AVX-512 " : "generic ") << (tn ? "C += A^T B " : "C += A B ") << s.m << " x " << s.n
                                                     << " x " << s.k << ": worst relative error " << err);
                CHECK(err <= 1e-12);
                CHECK(kept);
            }
    }
}

TEST_CASE("an empty double product leaves C alone", "[dgemm]")
{
    std::vector<double> A(4, 1.0), B(4, 1.0), C(4, 2.0);
    kd_dgemm_nn(kd_cpu_has_avx512(), 2, 2, 0, A.data(), 2, B.data(), 2, C.data(), 2);
    kd_dgemm_tn(kd_cpu_has_avx512(), 0, 2, 2, A.data(), 2, B.data(), 2, C.data(), 2);
    CHECK(C == std::vector<double>(4, 2.0));
}
