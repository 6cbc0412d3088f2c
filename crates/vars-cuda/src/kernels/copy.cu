#line 2 "copy.cu"
// Copies and casts (Backend::copy_strided, copy_into, cast).
//
// - `copy_strided_<t>(n, src_layout, src, out)`: contiguous copy of a strided view.
// - `copy_into_<t>(n, src_layout, src, dst_layout, dst)`: view-to-view copy (the destination
//   view must not overlap itself, i.e. no stride-0 dims in dst_layout).
// - `cast_<from>_<to>(n, src_layout, src, out)`: contiguous converted copy. C++ conversions:
//   float->int truncates toward zero, saturates, NaN -> 0 (PTX cvt.rzi semantics), like Rust `as`.

#define VARS_COPY(T, SFX)                                                                        \
    extern "C" __global__ void copy_strided_##SFX(vars_u64 n, StridedLayout src_layout,          \
                                                  const T* __restrict__ src,                     \
                                                  T* __restrict__ out) {                         \
        VARS_GRID_STRIDE_LOOP(i, n) { out[i] = src[vars_strided_index(src_layout, i)]; }         \
    }                                                                                            \
    extern "C" __global__ void copy_into_##SFX(vars_u64 n, StridedLayout src_layout,             \
                                               const T* __restrict__ src,                        \
                                               StridedLayout dst_layout, T* __restrict__ dst) {  \
        VARS_GRID_STRIDE_LOOP(i, n) {                                                            \
            dst[vars_strided_index(dst_layout, i)] = src[vars_strided_index(src_layout, i)];     \
        }                                                                                        \
    }

VARS_COPY(float, f32)
VARS_COPY(double, f64)
VARS_COPY(vars_i64, i64)

template <typename To, typename From>
__device__ __forceinline__ To vars_convert(From x) { return (To)x; }

#define VARS_CAST(FROM, FROM_SFX, TO, TO_SFX)                                                    \
    extern "C" __global__ void cast_##FROM_SFX##_##TO_SFX(vars_u64 n, StridedLayout src_layout,  \
                                                          const FROM* __restrict__ src,          \
                                                          TO* __restrict__ out) {                \
        VARS_GRID_STRIDE_LOOP(i, n) {                                                            \
            out[i] = vars_convert<TO, FROM>(src[vars_strided_index(src_layout, i)]);             \
        }                                                                                        \
    }

VARS_CAST(float, f32, double, f64)
VARS_CAST(float, f32, vars_i64, i64)
VARS_CAST(double, f64, float, f32)
VARS_CAST(double, f64, vars_i64, i64)
VARS_CAST(vars_i64, i64, float, f32)
VARS_CAST(vars_i64, i64, double, f64)
