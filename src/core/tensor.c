/* tensor.c - tensor constructors. */
#include "core/tensor.h"

#include "core/check.h"

kd_tensor kd_tensor_view(int rows, int cols, float *data, float *grad)
{
    KD_ASSERT(rows > 0 && cols > 0, "tensor shape (%d, %d) must be positive", rows, cols);
    KD_ASSERT(data != NULL, "tensor data is NULL");
    kd_tensor t = {rows, cols, data, grad, grad != NULL, NULL};
    return t;
}
