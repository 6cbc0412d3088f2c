#line 2 "unary.cu"
// Elementwise unary ops, one per `vars_core::UnaryOp` (kernel name = `UnaryOp::name()`).
//
// - `unary_<op>_<t>(n, x, out, p0, p1)`: contiguous fast path (`x` already points at the
//   view's first element).
// - `unary_<op>_<t>_strided(n, x_layout, x, out, p0, p1)`: any strided view of `x`.
// Output is contiguous. `p0`/`p1` carry the scalar parameters (Powf: p0 = exponent; Affine:
// p0 = mul, p1 = add; ClampMin/ClampMax: p0 = bound); other ops ignore them. f32 and f64 only.
//
// Semantics follow the CPU backend (`vars-cpu/src/unary.rs`) formula for formula:
// - sign(±0) = ±0, sign(NaN) = NaN; relu(x) = x < 0 ? 0 : x (so NaN and -0 pass through);
//   clamp_min/clamp_max compare with `<`/`>` (NaN passes through); step(NaN) = 0;
// - sigmoid uses the overflow-free split form (1/(1+e^-x) for x >= 0, e^x/(1+e^x) otherwise);
// - erf, gelu = x·Φ(x) with Φ(x) = erfc(-x/√2)/2 (no cancellation for x << 0), and
//   gelu_derivative = Φ(x) + x·φ(x) are evaluated in f64 for f32 inputs too, then rounded, as on
//   the CPU; gelu(-inf) = 0, gelu_derivative(±inf) = 1 / 0;
// - affine/powf/clamp parameters are first rounded to the element type, as on the CPU.

#define VARS_MATH1(NAME, F32, F64)                                                               \
    __device__ __forceinline__ float NAME(float x) { return F32(x); }                            \
    __device__ __forceinline__ double NAME(double x) { return F64(x); }

VARS_MATH1(vars_exp, expf, exp)
VARS_MATH1(vars_log, logf, log)
VARS_MATH1(vars_sqrt, sqrtf, sqrt)
VARS_MATH1(vars_fabs, fabsf, fabs)
VARS_MATH1(vars_tanh, tanhf, tanh)
__device__ __forceinline__ float vars_pow(float x, float p) { return powf(x, p); }
__device__ __forceinline__ double vars_pow(double x, double p) { return pow(x, p); }

// 1/√2 and 1/√(2π) (Rust's FRAC_1_SQRT_2, and FRAC_1_SQRT_2PI of vars-cpu).
#define VARS_FRAC_1_SQRT_2 0.70710678118654752440
#define VARS_FRAC_1_SQRT_2PI 0.39894228040143267794

__device__ __forceinline__ double vars_normal_cdf(double x) {
    return 0.5 * erfc(-x * VARS_FRAC_1_SQRT_2);
}
__device__ __forceinline__ double vars_normal_pdf(double x) {
    return exp(-0.5 * x * x) * VARS_FRAC_1_SQRT_2PI;
}
__device__ __forceinline__ double vars_gelu(double x) {
    if (isinf(x) && x < 0) return 0.0;
    return x * vars_normal_cdf(x);
}
__device__ __forceinline__ double vars_gelu_derivative(double x) {
    if (isinf(x)) return x > 0 ? 1.0 : 0.0;
    return vars_normal_cdf(x) + x * vars_normal_pdf(x);
}

#define VARS_UNARY_OP(NAME, EXPR)                                                                \
    template <typename T>                                                                        \
    struct UnaryOp_##NAME {                                                                      \
        __device__ __forceinline__ T operator()(T x, T p0, T p1) const {                         \
            (void)p0;                                                                            \
            (void)p1;                                                                            \
            return (EXPR);                                                                       \
        }                                                                                        \
    };

VARS_UNARY_OP(neg, -x)
VARS_UNARY_OP(exp, vars_exp(x))
VARS_UNARY_OP(log, vars_log(x))
VARS_UNARY_OP(sqrt, vars_sqrt(x))
VARS_UNARY_OP(sqr, x * x)
VARS_UNARY_OP(abs, vars_fabs(x))
VARS_UNARY_OP(sign, x > T(0) ? T(1) : (x < T(0) ? T(-1) : x))
VARS_UNARY_OP(relu, x < T(0) ? T(0) : x)
VARS_UNARY_OP(gelu, T(vars_gelu((double)x)))
VARS_UNARY_OP(gelu_derivative, T(vars_gelu_derivative((double)x)))
VARS_UNARY_OP(erf, T(erf((double)x)))
VARS_UNARY_OP(sigmoid, x >= T(0) ? T(1) / (T(1) + vars_exp(-x)) : vars_exp(x) / (T(1) + vars_exp(x)))
VARS_UNARY_OP(tanh, vars_tanh(x))
VARS_UNARY_OP(recip, T(1) / x)
VARS_UNARY_OP(step, x > T(0) ? T(1) : T(0))
VARS_UNARY_OP(powf, vars_pow(x, p0))
VARS_UNARY_OP(affine, x * p0 + p1)
VARS_UNARY_OP(clamp_min, x < p0 ? p0 : x)
VARS_UNARY_OP(clamp_max, x > p0 ? p0 : x)

#define VARS_UNARY_KERNELS(NAME, T, SFX)                                                         \
    extern "C" __global__ void unary_##NAME##_##SFX(vars_u64 n, const T* __restrict__ x,         \
                                                    T* __restrict__ out, T p0, T p1) {           \
        const UnaryOp_##NAME<T> op;                                                              \
        VARS_GRID_STRIDE_LOOP(i, n) { out[i] = op(x[i], p0, p1); }                               \
    }                                                                                            \
    extern "C" __global__ void unary_##NAME##_##SFX##_strided(                                   \
        vars_u64 n, StridedLayout x_layout, const T* __restrict__ x, T* __restrict__ out, T p0,  \
        T p1) {                                                                                  \
        const UnaryOp_##NAME<T> op;                                                              \
        VARS_GRID_STRIDE_LOOP(i, n) { out[i] = op(x[vars_strided_index(x_layout, i)], p0, p1); } \
    }

#define VARS_UNARY_FLOATS(NAME)                                                                  \
    VARS_UNARY_KERNELS(NAME, float, f32)                                                         \
    VARS_UNARY_KERNELS(NAME, double, f64)

VARS_UNARY_FLOATS(neg)
VARS_UNARY_FLOATS(exp)
VARS_UNARY_FLOATS(log)
VARS_UNARY_FLOATS(sqrt)
VARS_UNARY_FLOATS(sqr)
VARS_UNARY_FLOATS(abs)
VARS_UNARY_FLOATS(sign)
VARS_UNARY_FLOATS(relu)
VARS_UNARY_FLOATS(gelu)
VARS_UNARY_FLOATS(gelu_derivative)
VARS_UNARY_FLOATS(erf)
VARS_UNARY_FLOATS(sigmoid)
VARS_UNARY_FLOATS(tanh)
VARS_UNARY_FLOATS(recip)
VARS_UNARY_FLOATS(step)
VARS_UNARY_FLOATS(powf)
VARS_UNARY_FLOATS(affine)
VARS_UNARY_FLOATS(clamp_min)
VARS_UNARY_FLOATS(clamp_max)
