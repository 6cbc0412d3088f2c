#line 2 "rows.cu"
// Row kernels along the last dim: softmax / log-softmax, layer-norm normalisation, and their
// backwards (the `vars_core::Backend` hooks `softmax_last_dim`, `layer_norm_last_dim`, ...).
//
// One thread block per row (blockDim a power of two, 32..256, chosen on the host). Each thread
// folds its elements (c = tid, tid + blockDim, ...) in order, then a fixed shared-memory tree
// combines the partials: the result depends only on the input and blockDim, never on timing.
// Arithmetic is in double for f32 and f64 alike, rounded once on store (like the CPU backend's
// `rows.rs`). Every input is read through a `StridedLayout` unless its `contig` flag is set, so
// any view works without a copy; outputs are contiguous.

#define VARS_ROW_THREADS 256

template <typename T>
__device__ __forceinline__ double vars_row_load(const T* x, const StridedLayout& l, int contig,
                                                vars_u64 i) {
    return (double)x[contig ? i : vars_strided_index(l, i)];
}

// NaN-propagating max.
__device__ __forceinline__ double vars_max_op(double a, double b) {
    if (a != a) return a;
    if (b != b) return b;
    return b > a ? b : a;
}

// Combines every thread's `v` with `op` in a fixed tree; all threads get the result.
template <typename Op>
__device__ __forceinline__ double vars_block_reduce(double v, double* sh, Op op) {
    const unsigned tid = threadIdx.x;
    __syncthreads();  // `sh` may still be read from the previous reduction
    sh[tid] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) sh[tid] = op(sh[tid], sh[tid + s]);
        __syncthreads();
    }
    return sh[0];
}

struct VarsSumOp {
    __device__ __forceinline__ double operator()(double a, double b) const { return a + b; }
};
struct VarsMaxOp {
    __device__ __forceinline__ double operator()(double a, double b) const {
        return vars_max_op(a, b);
    }
};

template <typename T>
__device__ void vars_softmax_fwd(vars_u64 n, StridedLayout xl, int xc, const T* x, T* out,
                                 int log_out) {
    __shared__ double sh[VARS_ROW_THREADS];
    const vars_u64 base = (vars_u64)blockIdx.x * n;
    double m = -__longlong_as_double(0x7ff0000000000000LL);  // -inf
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x)
        m = vars_max_op(m, vars_row_load(x, xl, xc, base + c));
    m = vars_block_reduce(m, sh, VarsMaxOp());
    double s = 0.0;
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x)
        s += exp(vars_row_load(x, xl, xc, base + c) - m);
    s = vars_block_reduce(s, sh, VarsSumOp());
    const double ls = log(s);
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x) {
        const double v = vars_row_load(x, xl, xc, base + c) - m;
        out[base + c] = (T)(log_out ? v - ls : exp(v) / s);
    }
}

template <typename T>
__device__ void vars_softmax_bwd(vars_u64 n, StridedLayout yl, int yc, const T* y,
                                 StridedLayout gl, int gc, const T* g, T* out, int log_out) {
    __shared__ double sh[VARS_ROW_THREADS];
    const vars_u64 base = (vars_u64)blockIdx.x * n;
    double acc = 0.0;
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x) {
        const double gv = vars_row_load(g, gl, gc, base + c);
        acc += log_out ? gv : gv * vars_row_load(y, yl, yc, base + c);
    }
    acc = vars_block_reduce(acc, sh, VarsSumOp());
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x) {
        const double gv = vars_row_load(g, gl, gc, base + c);
        const double yv = vars_row_load(y, yl, yc, base + c);
        out[base + c] = (T)(log_out ? gv - exp(yv) * acc : yv * (gv - acc));
    }
}

template <typename T>
__device__ void vars_layer_norm_fwd(vars_u64 n, StridedLayout xl, int xc, const T* x, T* out,
                                    T* rstd, double eps) {
    __shared__ double sh[VARS_ROW_THREADS];
    const vars_u64 base = (vars_u64)blockIdx.x * n;
    double s = 0.0;
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x) s += vars_row_load(x, xl, xc, base + c);
    const double mean = vars_block_reduce(s, sh, VarsSumOp()) / (double)n;
    double q = 0.0;
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x) {
        const double d = vars_row_load(x, xl, xc, base + c) - mean;
        q += d * d;
    }
    const double var = vars_block_reduce(q, sh, VarsSumOp()) / (double)n;
    const double std = sqrt(var + eps);
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x)
        out[base + c] = (T)((vars_row_load(x, xl, xc, base + c) - mean) / std);
    if (threadIdx.x == 0) rstd[blockIdx.x] = (T)(1.0 / std);
}

template <typename T>
__device__ void vars_layer_norm_bwd(vars_u64 n, StridedLayout xl, int xc, const T* xhat,
                                    StridedLayout rl, int rc, const T* rstd, StridedLayout gl,
                                    int gc, const T* g, T* out) {
    __shared__ double sh[VARS_ROW_THREADS];
    const vars_u64 base = (vars_u64)blockIdx.x * n;
    double sg = 0.0, sgx = 0.0;
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x) {
        const double gv = vars_row_load(g, gl, gc, base + c);
        sg += gv;
        sgx += gv * vars_row_load(xhat, xl, xc, base + c);
    }
    const double mg = vars_block_reduce(sg, sh, VarsSumOp()) / (double)n;
    const double mgx = vars_block_reduce(sgx, sh, VarsSumOp()) / (double)n;
    const double rs = vars_row_load(rstd, rl, rc, (vars_u64)blockIdx.x);
    for (vars_u64 c = threadIdx.x; c < n; c += blockDim.x) {
        const double gv = vars_row_load(g, gl, gc, base + c);
        const double xv = vars_row_load(xhat, xl, xc, base + c);
        out[base + c] = (T)(rs * (gv - mg - xv * mgx));
    }
}

#define VARS_ROW_KERNELS(T, SFX)                                                                 \
    extern "C" __global__ void softmax_fwd_##SFX(vars_u64 n, StridedLayout xl, int xc,           \
                                                 const T* x, T* out, int log_out) {              \
        vars_softmax_fwd<T>(n, xl, xc, x, out, log_out);                                         \
    }                                                                                            \
    extern "C" __global__ void softmax_bwd_##SFX(vars_u64 n, StridedLayout yl, int yc,           \
                                                 const T* y, StridedLayout gl, int gc,           \
                                                 const T* g, T* out, int log_out) {              \
        vars_softmax_bwd<T>(n, yl, yc, y, gl, gc, g, out, log_out);                              \
    }                                                                                            \
    extern "C" __global__ void layer_norm_fwd_##SFX(vars_u64 n, StridedLayout xl, int xc,        \
                                                    const T* x, T* out, T* rstd, double eps) {   \
        vars_layer_norm_fwd<T>(n, xl, xc, x, out, rstd, eps);                                    \
    }                                                                                            \
    extern "C" __global__ void layer_norm_bwd_##SFX(                                             \
        vars_u64 n, StridedLayout xl, int xc, const T* xhat, StridedLayout rl, int rc,           \
        const T* rstd, StridedLayout gl, int gc, const T* g, T* out) {                           \
        vars_layer_norm_bwd<T>(n, xl, xc, xhat, rl, rc, rstd, gl, gc, g, out);                   \
    }

VARS_ROW_KERNELS(float, f32)
VARS_ROW_KERNELS(double, f64)
