#line 2 "binary.cu"
// Elementwise binary ops, one per `vars_core::BinaryOp` (kernel name = `BinaryOp::name()`).
//
// - `binary_<op>_<t>(n, a, b, out)`: both operands contiguous (pointers at the first element).
// - `binary_<op>_<t>_strided(n, a_layout, a, b_layout, b, out)`: any strided views of equal
//   shape (broadcasts arrive as stride-0 dims).
// Output is contiguous, of the input dtype; comparisons return 1/0. f32, f64 and i64.
//
// Semantics follow the CPU backend (`vars-cpu/src/binary.rs`):
// - maximum/minimum return the first NaN operand, else `a >= b ? a : b` / `a <= b ? a : b`;
// - i64 add/sub/mul wrap (computed in u64: signed overflow is undefined in C++); division
//   truncates toward zero and wraps for MIN / -1. A zero divisor yields 0 here, where the CPU
//   reports an error: the Backend impl must detect it (planned: an error flag written by the
//   kernel) before claiming parity.

template <typename T> __device__ __forceinline__ T vars_add(T a, T b) { return a + b; }
template <typename T> __device__ __forceinline__ T vars_sub(T a, T b) { return a - b; }
template <typename T> __device__ __forceinline__ T vars_mul(T a, T b) { return a * b; }
template <typename T> __device__ __forceinline__ T vars_div(T a, T b) { return a / b; }
template <> __device__ __forceinline__ vars_i64 vars_add<vars_i64>(vars_i64 a, vars_i64 b) {
    return (vars_i64)((vars_u64)a + (vars_u64)b);
}
template <> __device__ __forceinline__ vars_i64 vars_sub<vars_i64>(vars_i64 a, vars_i64 b) {
    return (vars_i64)((vars_u64)a - (vars_u64)b);
}
template <> __device__ __forceinline__ vars_i64 vars_mul<vars_i64>(vars_i64 a, vars_i64 b) {
    return (vars_i64)((vars_u64)a * (vars_u64)b);
}
template <> __device__ __forceinline__ vars_i64 vars_div<vars_i64>(vars_i64 a, vars_i64 b) {
    if (b == 0) return 0;
    if (b == -1) return (vars_i64)(0ULL - (vars_u64)a);
    return a / b;
}

#define VARS_BINARY_OP(NAME, EXPR)                                                               \
    template <typename T>                                                                        \
    struct BinaryOp_##NAME {                                                                     \
        __device__ __forceinline__ T operator()(T a, T b) const { return (EXPR); }               \
    };

VARS_BINARY_OP(add, vars_add<T>(a, b))
VARS_BINARY_OP(sub, vars_sub<T>(a, b))
VARS_BINARY_OP(mul, vars_mul<T>(a, b))
VARS_BINARY_OP(div, vars_div<T>(a, b))
VARS_BINARY_OP(maximum, vars_isnan(a) ? a : (vars_isnan(b) ? b : (a >= b ? a : b)))
VARS_BINARY_OP(minimum, vars_isnan(a) ? a : (vars_isnan(b) ? b : (a <= b ? a : b)))
VARS_BINARY_OP(eq, a == b ? T(1) : T(0))
VARS_BINARY_OP(ne, a != b ? T(1) : T(0))
VARS_BINARY_OP(lt, a < b ? T(1) : T(0))
VARS_BINARY_OP(le, a <= b ? T(1) : T(0))
VARS_BINARY_OP(gt, a > b ? T(1) : T(0))
VARS_BINARY_OP(ge, a >= b ? T(1) : T(0))

// The shrinks of the sparse-coding step (f32/f64 only): sign(a)·relu(|a| − b) and
// sign(a)·gelu(|a| − b), sign(0) = 0; the GELU form is evaluated in f64 like the CPU backend.
template <typename T> __device__ __forceinline__ T vars_soft_threshold(T z, T t) {
    T u = fabs(z) - t;
    if (vars_isnan(u)) return u;
    if (z == T(0)) return T(0);  // sign(0) = 0, also for a negative threshold
    if (!(u > T(0))) return T(0);
    return z > T(0) ? u : -u;
}
template <typename T> __device__ __forceinline__ T vars_gelu_shrink(T z, T t) {
    double zf = (double)z;
    if (vars_isnan(zf)) return z;
    if (zf == 0.0) return T(0);
    double u = fabs(zf) - (double)t;
    double g = (isinf(u) && u < 0) ? 0.0 : u * 0.5 * erfc(-u * 0.70710678118654752440);
    return T(zf > 0.0 ? g : -g);
}
VARS_BINARY_OP(soft_threshold, vars_soft_threshold<T>(a, b))
VARS_BINARY_OP(gelu_shrink, vars_gelu_shrink<T>(a, b))

#define VARS_BINARY_KERNELS(NAME, T, SFX)                                                        \
    extern "C" __global__ void binary_##NAME##_##SFX(vars_u64 n, const T* __restrict__ a,        \
                                                     const T* __restrict__ b,                    \
                                                     T* __restrict__ out) {                      \
        const BinaryOp_##NAME<T> op;                                                             \
        VARS_GRID_STRIDE_LOOP(i, n) { out[i] = op(a[i], b[i]); }                                 \
    }                                                                                            \
    extern "C" __global__ void binary_##NAME##_##SFX##_strided(                                  \
        vars_u64 n, StridedLayout a_layout, const T* __restrict__ a, StridedLayout b_layout,     \
        const T* __restrict__ b, T* __restrict__ out) {                                          \
        const BinaryOp_##NAME<T> op;                                                             \
        VARS_GRID_STRIDE_LOOP(i, n) {                                                            \
            out[i] = op(a[vars_strided_index(a_layout, i)], b[vars_strided_index(b_layout, i)]); \
        }                                                                                        \
    }

#define VARS_BINARY_ALL_TYPES(NAME)                                                              \
    VARS_BINARY_KERNELS(NAME, float, f32)                                                        \
    VARS_BINARY_KERNELS(NAME, double, f64)                                                       \
    VARS_BINARY_KERNELS(NAME, vars_i64, i64)

VARS_BINARY_ALL_TYPES(add)
VARS_BINARY_ALL_TYPES(sub)
VARS_BINARY_ALL_TYPES(mul)
VARS_BINARY_ALL_TYPES(div)
VARS_BINARY_ALL_TYPES(maximum)
VARS_BINARY_ALL_TYPES(minimum)
VARS_BINARY_ALL_TYPES(eq)
VARS_BINARY_ALL_TYPES(ne)
VARS_BINARY_ALL_TYPES(lt)
VARS_BINARY_ALL_TYPES(le)
VARS_BINARY_ALL_TYPES(gt)
VARS_BINARY_ALL_TYPES(ge)

VARS_BINARY_KERNELS(soft_threshold, float, f32)
VARS_BINARY_KERNELS(soft_threshold, double, f64)
VARS_BINARY_KERNELS(gelu_shrink, float, f32)
VARS_BINARY_KERNELS(gelu_shrink, double, f64)
