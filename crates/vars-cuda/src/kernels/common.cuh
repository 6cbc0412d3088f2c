#line 2 "common.cuh"
// Shared prelude: `kernels.rs` prepends this file to every module before handing it to NVRTC (one
// translation unit per module, no include paths needed). Only builtins are used (no CUDA headers),
// so NVRTC alone compiles every module: no toolkit install is required.
//
// ABI shared with the Rust side (`crates/vars-cuda/src/kernels.rs`, `StridedLayout`):
// - element counts and indices are `vars_u64`;
// - a strided operand is passed by value as a `StridedLayout` (row-major logical order, element
//   strides, element offset), rank <= VARS_MAX_RANK after the host merged contiguous dims;
// - every kernel is a grid-stride loop, so any grid size is correct.

typedef unsigned long long vars_u64;
typedef long long vars_i64;
typedef unsigned int vars_u32;

#define VARS_MAX_RANK 8

struct StridedLayout {
    vars_u32 rank;
    vars_u32 _pad;
    vars_u64 offset;
    vars_u64 dims[VARS_MAX_RANK];
    vars_u64 strides[VARS_MAX_RANK];
};

// Storage index of logical (row-major) element `i`. Fully unrolled so the layout stays in the
// parameter space (constant indices only, no local-memory copy of the struct).
__device__ __forceinline__ vars_u64 vars_strided_index(const StridedLayout& l, vars_u64 i) {
    vars_u64 pos = l.offset;
#pragma unroll
    for (int d = VARS_MAX_RANK - 1; d >= 0; --d) {
        if (d < (int)l.rank) {
            const vars_u64 dim = l.dims[d];
            pos += (i % dim) * l.strides[d];
            i /= dim;
        }
    }
    return pos;
}

#define VARS_GRID_STRIDE_LOOP(i, n)                                                              \
    for (vars_u64 i = (vars_u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                  \
         i += (vars_u64)blockDim.x * gridDim.x)

__device__ __forceinline__ bool vars_isnan(float x) { return x != x; }
__device__ __forceinline__ bool vars_isnan(double x) { return x != x; }
__device__ __forceinline__ bool vars_isnan(vars_i64) { return false; }
