#line 2 "index.cu"
// Selection and gather/scatter (Backend::where_cond, index_select, index_add); see `index.rs`.
//
// - `where_<c>_<t>(n, cond, on_true, on_false, out)`: all three operands contiguous;
//   `where_<c>_<t>_strided(n, c_layout, cond, t_layout, on_true, f_layout, on_false, out)`: any
//   strided views of one shape. `out[i] = cond[i] != 0 ? on_true[i] : on_false[i]` (a NaN
//   condition is true, -0.0 is false), the condition of any dtype `c`, the values of dtype `t`.
// - `index_select_<t>(n, inner, nidx, src_dim, src_layout, src, idx, out)`: the source viewed as
//   (outer, src_dim, inner) rows (logical row-major order of `src_layout`), the output as
//   (outer, nidx, inner): `out[(o, k, i)] = src[(o, idx[k], i)]`.
// - `index_add_<t>(n, inner, dim_size, nidx, src_layout, src, start, sources, out)`: the adjoint,
//   in gather form: output element (o, t, i) sums `src[(o, k, i)]` over the k in
//   `sources[start[t] .. start[t + 1]]` (the k with indices[k] == t, increasing, from the host's
//   counting sort), starting from 0 and in increasing k: no atomics, deterministic, and the same
//   additions in the same order as the CPU backend (bit-identical results; i64 wraps).
// The indices were validated on the host (0 <= idx < size), so the kernels do not check them.

#define VARS_WHERE(C, CS, T, TS)                                                                 \
    extern "C" __global__ void where_##CS##_##TS(vars_u64 n, const C* __restrict__ cond,         \
                                                 const T* __restrict__ on_true,                  \
                                                 const T* __restrict__ on_false,                 \
                                                 T* __restrict__ out) {                          \
        VARS_GRID_STRIDE_LOOP(i, n) { out[i] = cond[i] != C(0) ? on_true[i] : on_false[i]; }     \
    }                                                                                            \
    extern "C" __global__ void where_##CS##_##TS##_strided(                                      \
        vars_u64 n, StridedLayout c_layout, const C* __restrict__ cond, StridedLayout t_layout,  \
        const T* __restrict__ on_true, StridedLayout f_layout, const T* __restrict__ on_false,   \
        T* __restrict__ out) {                                                                   \
        VARS_GRID_STRIDE_LOOP(i, n) {                                                            \
            out[i] = cond[vars_strided_index(c_layout, i)] != C(0)                               \
                         ? on_true[vars_strided_index(t_layout, i)]                              \
                         : on_false[vars_strided_index(f_layout, i)];                            \
        }                                                                                        \
    }

#define VARS_WHERE_ALL_VALUES(C, CS)                                                             \
    VARS_WHERE(C, CS, float, f32)                                                                \
    VARS_WHERE(C, CS, double, f64)                                                               \
    VARS_WHERE(C, CS, vars_i64, i64)

VARS_WHERE_ALL_VALUES(float, f32)
VARS_WHERE_ALL_VALUES(double, f64)
VARS_WHERE_ALL_VALUES(vars_i64, i64)

template <typename T> __device__ __forceinline__ T vars_index_add(T a, T b) { return a + b; }
template <>
__device__ __forceinline__ vars_i64 vars_index_add<vars_i64>(vars_i64 a, vars_i64 b) {
    return (vars_i64)((vars_u64)a + (vars_u64)b);
}

#define VARS_INDEX(T, SFX)                                                                       \
    extern "C" __global__ void index_select_##SFX(                                               \
        vars_u64 n, vars_u64 inner, vars_u64 nidx, vars_u64 src_dim, StridedLayout src_layout,   \
        const T* __restrict__ src, const vars_i64* __restrict__ idx, T* __restrict__ out) {      \
        VARS_GRID_STRIDE_LOOP(e, n) {                                                            \
            const vars_u64 i = e % inner, row = e / inner;                                       \
            const vars_u64 k = row % nidx, o = row / nidx;                                       \
            const vars_u64 logical = (o * src_dim + (vars_u64)idx[k]) * inner + i;               \
            out[e] = src[vars_strided_index(src_layout, logical)];                               \
        }                                                                                        \
    }                                                                                            \
    extern "C" __global__ void index_add_##SFX(                                                  \
        vars_u64 n, vars_u64 inner, vars_u64 dim_size, vars_u64 nidx, StridedLayout src_layout,  \
        const T* __restrict__ src, const vars_i64* __restrict__ start,                           \
        const vars_i64* __restrict__ sources, T* __restrict__ out) {                             \
        VARS_GRID_STRIDE_LOOP(e, n) {                                                            \
            const vars_u64 i = e % inner, row = e / inner;                                       \
            const vars_u64 t = row % dim_size, o = row / dim_size;                               \
            const vars_u64 end = (vars_u64)start[t + 1];                                         \
            T acc = T(0);                                                                        \
            for (vars_u64 s = (vars_u64)start[t]; s < end; ++s) {                                \
                const vars_u64 k = (vars_u64)sources[s];                                         \
                acc = vars_index_add<T>(                                                         \
                    acc, src[vars_strided_index(src_layout, (o * nidx + k) * inner + i)]);       \
            }                                                                                    \
            out[e] = acc;                                                                        \
        }                                                                                        \
    }

VARS_INDEX(float, f32)
VARS_INDEX(double, f64)
VARS_INDEX(vars_i64, i64)
