#line 2 "fill.cu"
// `fill_<dtype>(n, out, value)`: out[i] = value for i < n (Backend::full).

#define VARS_FILL(T, SFX)                                                                        \
    extern "C" __global__ void fill_##SFX(vars_u64 n, T* __restrict__ out, T value) {            \
        VARS_GRID_STRIDE_LOOP(i, n) { out[i] = value; }                                          \
    }

VARS_FILL(float, f32)
VARS_FILL(double, f64)
VARS_FILL(vars_i64, i64)
