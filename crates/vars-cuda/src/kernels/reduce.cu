#line 2 "reduce.cu"
// Reductions over a set of axes (Backend::reduce), f32/f64/i64; see `reduce.rs`.
//
// The host splits the input view into two layouts: `kept` (the input's dims with the reduced ones
// set to 1, the input's strides and offset: output element `o` -> storage position of its first
// input) and `red` (the reduced dims with their strides, offset 0: reduced element `r` -> position
// relative to that). Input element (o, r) is `x[kept(o) + red(r)]`; both walk row-major order, so
// `r` is the row-major index over the reduced dims, as in the CPU backend.
//
// Two kernel shapes, chosen on the host from the shape only (never from the data or the device):
// - `reduce_<op>_<t>_block(n_out, n_red, kept, red, x, out)`: one block of exactly
//   VARS_REDUCE_BLOCK threads per output element (grid-stride over outputs); thread `t` folds
//   r = t, t + B, t + 2B, ... in order, then a fixed shared-memory tree combines the 256 partials;
// - `reduce_<op>_<t>_thread(n_out, n_red, kept, red, x, out)`: one thread per output element,
//   r = 0, 1, ..., n_red - 1 in order (short reductions).
// Both are deterministic: the order of every floating-point operation depends only on the shape.
//
// Semantics (CPU backend, `vars-cpu/src/reduce.rs`):
// - sum: f32 accumulates in f64 and rounds once; f64 in f64; i64 wraps (computed in u64). An empty
//   reduction gives 0.
// - max/min/argmax/argmin: the *first* NaN wins (NaN propagates), else the first element equal
//   to the extremum (ties, including -0.0 == +0.0, keep the lowest index). Each partial carries
//   its index and partials combine with that rule, which is associative and commutative, so the
//   tree gives exactly the CPU's sequential answer (value and, for signed zeros, sign). The host
//   rejects empty extremum reductions before launching. arg* write the index as i64.

#define VARS_REDUCE_BLOCK 256
#define VARS_NO_INDEX (~0ULL)

// Position of reduced element `r` relative to its output's base (fast path: one merged dim).
__device__ __forceinline__ vars_u64 vars_red_pos(const StridedLayout& red, vars_u64 r) {
    return red.rank == 1 ? r * red.strides[0] : vars_strided_index(red, r);
}

template <typename T> struct SumAcc;
template <> struct SumAcc<float> {
    typedef double A;
    static __device__ __forceinline__ A from(float x) { return (double)x; }
    static __device__ __forceinline__ A add(A a, A b) { return a + b; }
    static __device__ __forceinline__ float finish(A a) { return (float)a; }
};
template <> struct SumAcc<double> {
    typedef double A;
    static __device__ __forceinline__ A from(double x) { return x; }
    static __device__ __forceinline__ A add(A a, A b) { return a + b; }
    static __device__ __forceinline__ double finish(A a) { return a; }
};
template <> struct SumAcc<vars_i64> {
    typedef vars_i64 A;
    static __device__ __forceinline__ A from(vars_i64 x) { return x; }
    static __device__ __forceinline__ A add(A a, A b) {
        return (vars_i64)((vars_u64)a + (vars_u64)b);
    }
    static __device__ __forceinline__ vars_i64 finish(A a) { return a; }
};

// Whether (a, ia) is preferred over (b, ib): no index (VARS_NO_INDEX) loses; the lowest-index NaN
// wins; else the strictly larger (MAX) / smaller value; equal values keep the lower index.
template <typename T, bool MAX>
__device__ __forceinline__ bool vars_prefer(T a, vars_u64 ia, T b, vars_u64 ib) {
    if (ia == VARS_NO_INDEX) return false;
    if (ib == VARS_NO_INDEX) return true;
    const bool na = vars_isnan(a), nb = vars_isnan(b);
    if (na || nb) return na && (!nb || ia < ib);
    if (MAX ? (a > b) : (a < b)) return true;
    return a == b && ia < ib;
}

template <typename T>
__device__ __forceinline__ void vars_reduce_sum_block(vars_u64 n_out, vars_u64 n_red,
                                                      const StridedLayout& kept,
                                                      const StridedLayout& red,
                                                      const T* __restrict__ x,
                                                      T* __restrict__ out) {
    typedef typename SumAcc<T>::A A;
    __shared__ A sh[VARS_REDUCE_BLOCK];
    if (blockDim.x != VARS_REDUCE_BLOCK) __trap();
    const unsigned t = threadIdx.x;
    for (vars_u64 o = blockIdx.x; o < n_out; o += gridDim.x) {
        const vars_u64 base = vars_strided_index(kept, o);
        A acc = A(0);
        for (vars_u64 r = t; r < n_red; r += VARS_REDUCE_BLOCK) {
            acc = SumAcc<T>::add(acc, SumAcc<T>::from(x[base + vars_red_pos(red, r)]));
        }
        sh[t] = acc;
        __syncthreads();
#pragma unroll
        for (unsigned s = VARS_REDUCE_BLOCK / 2; s > 0; s >>= 1) {
            if (t < s) sh[t] = SumAcc<T>::add(sh[t], sh[t + s]);
            __syncthreads();
        }
        if (t == 0) out[o] = SumAcc<T>::finish(sh[0]);
        __syncthreads();  // sh[0] is read before the next output overwrites it
    }
}

template <typename T>
__device__ __forceinline__ void vars_reduce_sum_thread(vars_u64 n_out, vars_u64 n_red,
                                                       const StridedLayout& kept,
                                                       const StridedLayout& red,
                                                       const T* __restrict__ x,
                                                       T* __restrict__ out) {
    typedef typename SumAcc<T>::A A;
    VARS_GRID_STRIDE_LOOP(o, n_out) {
        const vars_u64 base = vars_strided_index(kept, o);
        A acc = A(0);
        for (vars_u64 r = 0; r < n_red; ++r) {
            acc = SumAcc<T>::add(acc, SumAcc<T>::from(x[base + vars_red_pos(red, r)]));
        }
        out[o] = SumAcc<T>::finish(acc);
    }
}

// max/min (ARG = false: writes the value to `outv`) and argmax/argmin (ARG = true: writes the
// index to `outi`).
template <typename T, bool MAX, bool ARG>
__device__ __forceinline__ void vars_reduce_ext_block(vars_u64 n_out, vars_u64 n_red,
                                                      const StridedLayout& kept,
                                                      const StridedLayout& red,
                                                      const T* __restrict__ x,
                                                      T* __restrict__ outv,
                                                      vars_i64* __restrict__ outi) {
    __shared__ T shv[VARS_REDUCE_BLOCK];
    __shared__ vars_u64 shi[VARS_REDUCE_BLOCK];
    if (blockDim.x != VARS_REDUCE_BLOCK) __trap();
    const unsigned t = threadIdx.x;
    for (vars_u64 o = blockIdx.x; o < n_out; o += gridDim.x) {
        const vars_u64 base = vars_strided_index(kept, o);
        T best = T(0);
        vars_u64 bi = VARS_NO_INDEX;
        for (vars_u64 r = t; r < n_red; r += VARS_REDUCE_BLOCK) {
            const T v = x[base + vars_red_pos(red, r)];
            if (vars_prefer<T, MAX>(v, r, best, bi)) {
                best = v;
                bi = r;
            }
        }
        shv[t] = best;
        shi[t] = bi;
        __syncthreads();
#pragma unroll
        for (unsigned s = VARS_REDUCE_BLOCK / 2; s > 0; s >>= 1) {
            if (t < s && vars_prefer<T, MAX>(shv[t + s], shi[t + s], shv[t], shi[t])) {
                shv[t] = shv[t + s];
                shi[t] = shi[t + s];
            }
            __syncthreads();
        }
        if (t == 0) {
            if (ARG) {
                outi[o] = (vars_i64)shi[0];
            } else {
                outv[o] = shv[0];
            }
        }
        __syncthreads();  // shv[0]/shi[0] are read before the next output overwrites them
    }
}

template <typename T, bool MAX, bool ARG>
__device__ __forceinline__ void vars_reduce_ext_thread(vars_u64 n_out, vars_u64 n_red,
                                                       const StridedLayout& kept,
                                                       const StridedLayout& red,
                                                       const T* __restrict__ x,
                                                       T* __restrict__ outv,
                                                       vars_i64* __restrict__ outi) {
    VARS_GRID_STRIDE_LOOP(o, n_out) {
        const vars_u64 base = vars_strided_index(kept, o);
        T best = T(0);
        vars_u64 bi = VARS_NO_INDEX;
        for (vars_u64 r = 0; r < n_red; ++r) {
            const T v = x[base + vars_red_pos(red, r)];
            if (vars_prefer<T, MAX>(v, r, best, bi)) {
                best = v;
                bi = r;
            }
            if (vars_isnan(best)) break;  // the first NaN wins
        }
        if (ARG) {
            outi[o] = (vars_i64)bi;
        } else {
            outv[o] = best;
        }
    }
}

#define VARS_REDUCE_ARGS                                                                         \
    vars_u64 n_out, vars_u64 n_red, StridedLayout kept, StridedLayout red

#define VARS_REDUCE_KERNELS(T, SFX)                                                              \
    extern "C" __global__ void reduce_sum_##SFX##_block(VARS_REDUCE_ARGS, const T* x, T* out) {  \
        vars_reduce_sum_block<T>(n_out, n_red, kept, red, x, out);                               \
    }                                                                                            \
    extern "C" __global__ void reduce_sum_##SFX##_thread(VARS_REDUCE_ARGS, const T* x, T* out) { \
        vars_reduce_sum_thread<T>(n_out, n_red, kept, red, x, out);                              \
    }                                                                                            \
    extern "C" __global__ void reduce_max_##SFX##_block(VARS_REDUCE_ARGS, const T* x, T* out) {  \
        vars_reduce_ext_block<T, true, false>(n_out, n_red, kept, red, x, out, nullptr);         \
    }                                                                                            \
    extern "C" __global__ void reduce_max_##SFX##_thread(VARS_REDUCE_ARGS, const T* x, T* out) { \
        vars_reduce_ext_thread<T, true, false>(n_out, n_red, kept, red, x, out, nullptr);        \
    }                                                                                            \
    extern "C" __global__ void reduce_min_##SFX##_block(VARS_REDUCE_ARGS, const T* x, T* out) {  \
        vars_reduce_ext_block<T, false, false>(n_out, n_red, kept, red, x, out, nullptr);        \
    }                                                                                            \
    extern "C" __global__ void reduce_min_##SFX##_thread(VARS_REDUCE_ARGS, const T* x, T* out) { \
        vars_reduce_ext_thread<T, false, false>(n_out, n_red, kept, red, x, out, nullptr);       \
    }                                                                                            \
    extern "C" __global__ void reduce_argmax_##SFX##_block(VARS_REDUCE_ARGS, const T* x,         \
                                                           vars_i64* out) {                      \
        vars_reduce_ext_block<T, true, true>(n_out, n_red, kept, red, x, nullptr, out);          \
    }                                                                                            \
    extern "C" __global__ void reduce_argmax_##SFX##_thread(VARS_REDUCE_ARGS, const T* x,        \
                                                            vars_i64* out) {                     \
        vars_reduce_ext_thread<T, true, true>(n_out, n_red, kept, red, x, nullptr, out);         \
    }                                                                                            \
    extern "C" __global__ void reduce_argmin_##SFX##_block(VARS_REDUCE_ARGS, const T* x,         \
                                                           vars_i64* out) {                      \
        vars_reduce_ext_block<T, false, true>(n_out, n_red, kept, red, x, nullptr, out);         \
    }                                                                                            \
    extern "C" __global__ void reduce_argmin_##SFX##_thread(VARS_REDUCE_ARGS, const T* x,        \
                                                            vars_i64* out) {                     \
        vars_reduce_ext_thread<T, false, true>(n_out, n_red, kept, red, x, nullptr, out);        \
    }

VARS_REDUCE_KERNELS(float, f32)
VARS_REDUCE_KERNELS(double, f64)
VARS_REDUCE_KERNELS(vars_i64, i64)
