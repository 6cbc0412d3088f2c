#line 2 "sparse_coding.cu"
// The fused sparse-coding loop of `vars_core::sparse::unrolled_ista` (spec §1.3, §3.3 steps 8–9)
// and its exact backward, mirroring the CPU kernel `vars-cpu/src/sparse_coding.rs` operation for
// operation (see `sparse_coding.rs` for the host side and `docs/cuda-sparse-coding.md`).
//
// Per batch entry e: `A0 = shrink(b, λ)` (or 0), then T times
// `Z = A − (G·A − b)/L; A = shrink(Z, λ/L)`. Two implementations with identical arithmetic:
//
// - fused (`ista_forward_fused_<t>`, `ista_backward_fused_<t>`): one thread block of
//   VARS_ISTA_THREADS threads per entry (grid-stride over entries), G and the codes in dynamic
//   shared memory, all T steps in one launch. Forward smem: (m·m + 2·m·d) elements; backward:
//   (m·m + 3·m·d) elements plus a static VARS_ISTA_THREADS-double reduction buffer.
// - tiled (everything else): global-memory buffers, one grid-stride launch per step (and per
//   phase of the backward step), for problems whose G and codes do not fit in shared memory.
//
// Inputs are read through their views: every batched operand is an `IstaMatrix` (a StridedLayout
// over the batch dims giving the storage offset of entry e's element (0, 0), plus the row and
// column strides), λ and L a StridedLayout over the batch dims. Outputs are contiguous.
//
// Saved state (the layout of the CPU backend, per entry, `saved_len` elements): the codes entering
// each step `A_{k}` interleaved as an m × (T·d) matrix (element (r, k, j) at r·T·d + k·d + j),
// then `blocks` blocks of m·d derivatives `dz = sign(z)²·g′(u)`, then `blocks` blocks of
// `dt = sign(z)·g′(u)` (block 0 is the initial guess when it shrinks, then one per step;
// `blocks = 0` for the identity shrink).
//
// The shrinks are those of binary.cu / the CPU backend: sign(z)·relu(|z| − t) and
// sign(z)·gelu(|z| − t) with sign(0) = 0, step(0) = 0, the GELU form evaluated in double.
// Compiled with --fmad=false (compile.rs), so `a − (g − b)/l` rounds like the CPU; only the
// summation order of the matrix products and of the scalar reductions differs.

#define VARS_ISTA_THREADS 256

#define VARS_SHRINK_IDENTITY 0u
#define VARS_SHRINK_SOFT 1u
#define VARS_SHRINK_GELU 2u
#define VARS_INIT_SHRINK 0u
#define VARS_INIT_ZERO 1u

// A batched matrix operand (Rust twin: `IstaMatrix` in sparse_coding.rs, 160 bytes).
struct IstaMatrix {
    StridedLayout batch;
    vars_u64 rs;
    vars_u64 cs;
};

// The problem (Rust twin: `IstaDims`, 48 bytes).
struct IstaDims {
    vars_u64 batch;
    vars_u64 m;
    vars_u64 d;
    vars_u64 steps;
    vars_u32 shrink;
    vars_u32 init;
    vars_u32 save;
    vars_u32 _pad;
};

// ---- saved-state geometry (host twin: `saved_len` & co. in sparse_coding.rs) -------------------

__device__ __forceinline__ vars_u64 ista_first(const IstaDims& p) {
    return (p.shrink != VARS_SHRINK_IDENTITY && p.init == VARS_INIT_SHRINK) ? 1 : 0;
}
__device__ __forceinline__ vars_u64 ista_blocks(const IstaDims& p) {
    return p.shrink == VARS_SHRINK_IDENTITY ? 0 : p.steps + ista_first(p);
}
__device__ __forceinline__ vars_u64 ista_saved_len(const IstaDims& p) {
    return (p.steps + 2 * ista_blocks(p)) * p.m * p.d;
}
// Offset of derivative block `blk` of `dz` (which = 0) or `dt` (which = 1) in an entry's state.
__device__ __forceinline__ vars_u64 ista_deriv_offset(const IstaDims& p, vars_u64 which,
                                                      vars_u64 blk) {
    const vars_u64 n = p.m * p.d;
    return (p.steps + which * ista_blocks(p) + blk) * n;
}
// Offset of `A_k` element (r, j) in an entry's state.
__device__ __forceinline__ vars_u64 ista_aprev_offset(const IstaDims& p, vars_u64 k, vars_u64 r,
                                                      vars_u64 j) {
    return r * (p.steps * p.d) + k * p.d + j;
}

// ---- the shrinks -------------------------------------------------------------------------------

// sign(z) with sign(±0) = ±0 and NaN passed through.
template <typename T> __device__ __forceinline__ T ista_sign(T z) {
    return z > T(0) ? T(1) : (z < T(0) ? T(-1) : z);
}

template <typename T> __device__ __forceinline__ T ista_soft(T z, T t) {
    T u = fabs(z) - t;
    if (u > T(0)) return z > T(0) ? u : T(0) - u;
    if (u != u) return u;
    return T(0);
}

__device__ __forceinline__ double ista_cdf(double u) {
    return 0.5 * erfc(-u * 0.70710678118654752440);
}
__device__ __forceinline__ double ista_pdf(double u) {
    return exp(-0.5 * u * u) * 0.3989422804014327;
}
__device__ __forceinline__ double ista_gelu(double u) {
    if (isinf(u) && u < 0.0) return 0.0;
    return u * ista_cdf(u);
}
__device__ __forceinline__ double ista_gelu_derivative(double u) {
    if (isinf(u)) return u > 0.0 ? 1.0 : 0.0;
    return ista_cdf(u) + u * ista_pdf(u);
}
// g for z > 0, −g for z < 0, NaN for NaN, +0 for ±0.
__device__ __forceinline__ double ista_signed(double zf, double g) {
    if (zf > 0.0) return g;
    if (zf < 0.0) return -g;
    if (zf != zf) return zf;
    return 0.0;
}
template <typename T> __device__ __forceinline__ T ista_gelu_shrink(T z, T t) {
    const double zf = (double)z;
    return (T)ista_signed(zf, ista_gelu(fabs(zf) - (double)t));
}

template <typename T> __device__ __forceinline__ T ista_shrink(vars_u32 kind, T z, T t) {
    if (kind == VARS_SHRINK_SOFT) return ista_soft(z, t);
    if (kind == VARS_SHRINK_GELU) return ista_gelu_shrink(z, t);
    return z;
}

// shrink(z, t) (soft or GELU, not the identity), storing dz = sign(z)²·g′(u) and
// dt = sign(z)·g′(u), u = |z| − t, step(0) = 0.
template <typename T>
__device__ __forceinline__ T ista_shrink_grad(vars_u32 kind, T z, T t, T* dz, T* dt) {
    const T s = ista_sign(z);
    if (kind == VARS_SHRINK_SOFT) {
        const T step = (fabs(z) - t > T(0)) ? T(1) : T(0);
        *dz = step * (s * s);
        *dt = step * s;
        return ista_soft(z, t);
    }
    const double zf = (double)z;
    const double u = fabs(zf) - (double)t;
    double value, der;
    if (isfinite(u)) {
        const double p = ista_cdf(u);
        value = u * p;
        der = p + u * ista_pdf(u);
    } else {
        value = ista_gelu(u);
        der = ista_gelu_derivative(u);
    }
    const T dr = (T)der;
    *dz = dr * (s * s);
    *dt = dr * s;
    return (T)ista_signed(zf, value);
}

// ---- one element of the forward (shared by both implementations) ------------------------------

// A0 at element idx of an entry; `sv` is the entry's saved state or null.
template <typename T>
__device__ __forceinline__ T ista_init_elem(const IstaDims& p, vars_u64 idx, T bv, T lam, T* sv) {
    if (p.init == VARS_INIT_ZERO) return T(0);
    if (sv != nullptr && p.shrink != VARS_SHRINK_IDENTITY) {
        return ista_shrink_grad(p.shrink, bv, lam, sv + ista_deriv_offset(p, 0, 0) + idx,
                                sv + ista_deriv_offset(p, 1, 0) + idx);
    }
    return ista_shrink(p.shrink, bv, lam);
}

// A_{k+1} at element idx = r·d + j from A_k's element `a` and `ga` = (G·A_k)[idx].
template <typename T>
__device__ __forceinline__ T ista_step_elem(const IstaDims& p, vars_u64 k, vars_u64 idx, T a,
                                            T ga, T bv, T l, T t, T* sv) {
    if (sv != nullptr) sv[ista_aprev_offset(p, k, idx / p.d, idx % p.d)] = a;
    const T z = a - (ga - bv) / l;
    if (sv != nullptr && p.shrink != VARS_SHRINK_IDENTITY) {
        const vars_u64 blk = ista_first(p) + k;
        return ista_shrink_grad(p.shrink, z, t, sv + ista_deriv_offset(p, 0, blk) + idx,
                                sv + ista_deriv_offset(p, 1, blk) + idx);
    }
    return ista_shrink(p.shrink, z, t);
}

// ---- one element of the backward ---------------------------------------------------------------

// gZ_k at element idx from gA (the gradient reaching A_{k+1}); adds gA·dt to *st.
template <typename T>
__device__ __forceinline__ T ista_bwd_gz(const IstaDims& p, vars_u64 k, vars_u64 idx, T ga,
                                         const T* sv, double* st) {
    if (p.shrink == VARS_SHRINK_IDENTITY) return ga;
    const vars_u64 blk = ista_first(p) + k;
    const T dz = sv[ista_deriv_offset(p, 0, blk) + idx];
    const T dt = sv[ista_deriv_offset(p, 1, blk) + idx];
    *st += (double)ga * (double)dt;
    return ga * dz;
}

// Deterministic block sum (all VARS_ISTA_THREADS threads must call it).
__device__ __forceinline__ double ista_block_sum(double v, double* red) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = VARS_ISTA_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    const double r = red[0];
    __syncthreads();
    return r;
}

// The end of one entry's reverse sweep, by the whole block: the initial guess, ∂G's scale, and
// ∂λ, ∂L from the per-thread partial sums `st` (Σ gA⊙dt) and `rdot` (Σ gZ⊙R).
template <typename T>
__device__ void ista_bwd_finish(const IstaDims& p, const T* ga, const T* sv, T* egb, T* egg,
                                T lam, T l, double st, double rdot, double* red, T* glam, T* gl) {
    const vars_u64 n = p.m * p.d, mm = p.m * p.m;
    double s0 = 0.0;
    if (p.init == VARS_INIT_SHRINK) {
        for (vars_u64 idx = threadIdx.x; idx < n; idx += blockDim.x) {
            const T g = ga[idx];
            if (p.shrink == VARS_SHRINK_IDENTITY) {
                egb[idx] = egb[idx] + g;
            } else {
                egb[idx] = egb[idx] + g * sv[ista_deriv_offset(p, 0, 0) + idx];
                s0 += (double)g * (double)sv[ista_deriv_offset(p, 1, 0) + idx];
            }
        }
    }
    for (vars_u64 idx = threadIdx.x; idx < mm; idx += blockDim.x) egg[idx] = -(egg[idx] / l);
    st = ista_block_sum(st, red);
    rdot = ista_block_sum(rdot, red);
    s0 = ista_block_sum(s0, red);
    if (threadIdx.x == 0) {
        const double lamd = (double)lam, ld = (double)l;
        const double gt = -st;
        *glam = (T)(gt / ld - s0);
        *gl = (T)(rdot / (ld * ld) - gt * lamd / (ld * ld));
    }
}

__device__ __forceinline__ vars_u64 ista_at(const IstaMatrix& v, vars_u64 e, vars_u64 r,
                                            vars_u64 c) {
    return vars_strided_index(v.batch, e) + r * v.rs + c * v.cs;
}

// ---- fused: one block per entry, everything in shared memory -----------------------------------

extern __shared__ __align__(16) unsigned char vars_ista_smem[];

template <typename T>
__device__ void ista_forward_fused(IstaDims p, IstaMatrix gv, const T* g, IstaMatrix bv,
                                   const T* b, StridedLayout lamv, const T* lam, StridedLayout lv,
                                   const T* l, T* out, T* saved) {
    const vars_u64 m = p.m, d = p.d, n = m * d, mm = m * m;
    T* sg = (T*)vars_ista_smem;
    T* sa = sg + mm;
    T* sw = sa + n;
    const vars_u64 slen = ista_saved_len(p);
    for (vars_u64 e = blockIdx.x; e < p.batch; e += gridDim.x) {
        const vars_u64 og = vars_strided_index(gv.batch, e);
        const vars_u64 ob = vars_strided_index(bv.batch, e);
        const T lam_e = lam[vars_strided_index(lamv, e)];
        const T l_e = l[vars_strided_index(lv, e)];
        const T t = lam_e / l_e;
        T* sv = p.save ? saved + e * slen : nullptr;
        for (vars_u64 idx = threadIdx.x; idx < mm; idx += blockDim.x) {
            sg[idx] = g[og + (idx / m) * gv.rs + (idx % m) * gv.cs];
        }
        for (vars_u64 idx = threadIdx.x; idx < n; idx += blockDim.x) {
            const T bval = b[ob + (idx / d) * bv.rs + (idx % d) * bv.cs];
            sa[idx] = ista_init_elem(p, idx, bval, lam_e, sv);
        }
        __syncthreads();
        T* cur = sa;
        T* nxt = sw;
        for (vars_u64 k = 0; k < p.steps; ++k) {
            for (vars_u64 idx = threadIdx.x; idx < n; idx += blockDim.x) {
                const vars_u64 r = idx / d, c = idx % d;
                const T* grow = sg + r * m;
                T acc = T(0);
                for (vars_u64 q = 0; q < m; ++q) acc += grow[q] * cur[q * d + c];
                const T bval = b[ob + r * bv.rs + c * bv.cs];
                nxt[idx] = ista_step_elem(p, k, idx, cur[idx], acc, bval, l_e, t, sv);
            }
            __syncthreads();
            T* tmp = cur;
            cur = nxt;
            nxt = tmp;
        }
        for (vars_u64 idx = threadIdx.x; idx < n; idx += blockDim.x) out[e * n + idx] = cur[idx];
        __syncthreads();
    }
}

template <typename T>
__device__ void ista_backward_fused(IstaDims p, IstaMatrix gv, const T* g, IstaMatrix bv,
                                    const T* b, StridedLayout lamv, const T* lam, StridedLayout lv,
                                    const T* l, IstaMatrix gradv, const T* grad, const T* saved,
                                    T* gg, T* gb, T* glam, T* gl) {
    __shared__ double red[VARS_ISTA_THREADS];
    const vars_u64 m = p.m, d = p.d, n = m * d, mm = m * m;
    T* sg = (T*)vars_ista_smem;
    T* sga = sg + mm;
    T* sgz = sga + n;
    T* sap = sgz + n;
    const vars_u64 slen = ista_saved_len(p);
    for (vars_u64 e = blockIdx.x; e < p.batch; e += gridDim.x) {
        const vars_u64 og = vars_strided_index(gv.batch, e);
        const vars_u64 ob = vars_strided_index(bv.batch, e);
        const vars_u64 ograd = vars_strided_index(gradv.batch, e);
        const T lam_e = lam[vars_strided_index(lamv, e)];
        const T l_e = l[vars_strided_index(lv, e)];
        const T* sv = saved + e * slen;
        T* egg = gg + e * mm;
        T* egb = gb + e * n;
        for (vars_u64 idx = threadIdx.x; idx < mm; idx += blockDim.x) {
            sg[idx] = g[og + (idx / m) * gv.rs + (idx % m) * gv.cs];
            egg[idx] = T(0);
        }
        for (vars_u64 idx = threadIdx.x; idx < n; idx += blockDim.x) {
            sga[idx] = grad[ograd + (idx / d) * gradv.rs + (idx % d) * gradv.cs];
            egb[idx] = T(0);
        }
        double st = 0.0, rdot = 0.0;
        __syncthreads();
        for (vars_u64 k = p.steps; k-- > 0;) {
            // Through the shrink of step k+1: gZ = gA⊙dz; stage A_k.
            for (vars_u64 idx = threadIdx.x; idx < n; idx += blockDim.x) {
                sgz[idx] = ista_bwd_gz(p, k, idx, sga[idx], sv, &st);
                sap[idx] = sv[ista_aprev_offset(p, k, idx / d, idx % d)];
            }
            __syncthreads();
            // Through Z = A − (G·A − b)/L: H = Gᵀ·gZ, gA = gZ − H/L, ∂b += gZ/L, Σ gZ⊙R.
            for (vars_u64 idx = threadIdx.x; idx < n; idx += blockDim.x) {
                const vars_u64 r = idx / d, c = idx % d;
                T h = T(0);
                for (vars_u64 q = 0; q < m; ++q) h += sg[q * m + r] * sgz[q * d + c];
                const T gz = sgz[idx];
                const T bval = b[ob + r * bv.rs + c * bv.cs];
                sga[idx] = gz - h / l_e;
                egb[idx] = egb[idx] + gz / l_e;
                rdot += (double)h * (double)sap[idx] - (double)gz * (double)bval;
            }
            // ∂G (unscaled) += gZ·A_kᵀ.
            for (vars_u64 idx = threadIdx.x; idx < mm; idx += blockDim.x) {
                const vars_u64 r = idx / m, c = idx % m;
                const T* zrow = sgz + r * d;
                const T* arow = sap + c * d;
                T acc = T(0);
                for (vars_u64 j = 0; j < d; ++j) acc += zrow[j] * arow[j];
                egg[idx] = egg[idx] + acc;
            }
            __syncthreads();
        }
        ista_bwd_finish(p, (const T*)sga, sv, egb, egg, lam_e, l_e, st, rdot, red, glam + e,
                        gl + e);
        __syncthreads();
    }
}

// ---- tiled: global buffers, one grid-stride launch per step / phase ----------------------------

template <typename T>
__device__ void ista_forward_init(IstaDims p, IstaMatrix bv, const T* b, StridedLayout lamv,
                                  const T* lam, T* a, T* saved) {
    const vars_u64 d = p.d, n = p.m * d, slen = ista_saved_len(p);
    VARS_GRID_STRIDE_LOOP(i, p.batch * n) {
        const vars_u64 e = i / n, idx = i % n;
        T* sv = p.save ? saved + e * slen : nullptr;
        const T bval = b[ista_at(bv, e, idx / d, idx % d)];
        a[i] = ista_init_elem(p, idx, bval, lam[vars_strided_index(lamv, e)], sv);
    }
}

template <typename T>
__device__ void ista_forward_step(IstaDims p, vars_u64 k, IstaMatrix gv, const T* g, IstaMatrix bv,
                                  const T* b, StridedLayout lamv, const T* lam, StridedLayout lv,
                                  const T* l, const T* a, T* a_next, T* saved) {
    const vars_u64 m = p.m, d = p.d, n = m * d, slen = ista_saved_len(p);
    VARS_GRID_STRIDE_LOOP(i, p.batch * n) {
        const vars_u64 e = i / n, idx = i % n, r = idx / d, c = idx % d;
        const vars_u64 og = vars_strided_index(gv.batch, e) + r * gv.rs;
        const T* ae = a + e * n;
        T acc = T(0);
        for (vars_u64 q = 0; q < m; ++q) acc += g[og + q * gv.cs] * ae[q * d + c];
        const T l_e = l[vars_strided_index(lv, e)];
        const T t = lam[vars_strided_index(lamv, e)] / l_e;
        T* sv = p.save ? saved + e * slen : nullptr;
        a_next[i] = ista_step_elem(p, k, idx, a[i], acc, b[ista_at(bv, e, r, c)], l_e, t, sv);
    }
}

template <typename T>
__device__ void ista_backward_gz(IstaDims p, vars_u64 k, const T* ga, const T* saved, T* gz,
                                 double* acc_st) {
    const vars_u64 n = p.m * p.d, slen = ista_saved_len(p);
    VARS_GRID_STRIDE_LOOP(i, p.batch * n) {
        const vars_u64 e = i / n, idx = i % n;
        double st = 0.0;
        gz[i] = ista_bwd_gz(p, k, idx, ga[i], saved + e * slen, &st);
        acc_st[i] += st;
    }
}

template <typename T>
__device__ void ista_backward_h(IstaDims p, vars_u64 k, IstaMatrix gv, const T* g, IstaMatrix bv,
                                const T* b, StridedLayout lv, const T* l, const T* gz,
                                const T* saved, T* ga, T* gb, double* acc_r) {
    const vars_u64 m = p.m, d = p.d, n = m * d, slen = ista_saved_len(p);
    VARS_GRID_STRIDE_LOOP(i, p.batch * n) {
        const vars_u64 e = i / n, idx = i % n, r = idx / d, c = idx % d;
        const vars_u64 og = vars_strided_index(gv.batch, e) + r * gv.cs;
        const T* gze = gz + e * n;
        T h = T(0);
        for (vars_u64 q = 0; q < m; ++q) h += g[og + q * gv.rs] * gze[q * d + c];
        const T l_e = l[vars_strided_index(lv, e)];
        const T gzv = gz[i];
        const T ap = saved[e * slen + ista_aprev_offset(p, k, r, c)];
        const T bval = b[ista_at(bv, e, r, c)];
        ga[i] = gzv - h / l_e;
        gb[i] = gb[i] + gzv / l_e;
        acc_r[i] += (double)h * (double)ap - (double)gzv * (double)bval;
    }
}

template <typename T>
__device__ void ista_backward_gg(IstaDims p, vars_u64 k, const T* gz, const T* saved, T* gg) {
    const vars_u64 m = p.m, d = p.d, n = m * d, mm = m * m, slen = ista_saved_len(p);
    VARS_GRID_STRIDE_LOOP(i, p.batch * mm) {
        const vars_u64 e = i / mm, idx = i % mm, r = idx / m, c = idx % m;
        const T* zrow = gz + e * n + r * d;
        const T* sv = saved + e * slen;
        T acc = T(0);
        for (vars_u64 j = 0; j < d; ++j) acc += zrow[j] * sv[ista_aprev_offset(p, k, c, j)];
        gg[i] = gg[i] + acc;
    }
}

template <typename T>
__device__ void ista_backward_finish(IstaDims p, StridedLayout lamv, const T* lam,
                                     StridedLayout lv, const T* l, const T* ga, const T* saved,
                                     const double* acc_st, const double* acc_r, T* gb, T* gg,
                                     T* glam, T* gl) {
    __shared__ double red[VARS_ISTA_THREADS];
    const vars_u64 n = p.m * p.d, mm = p.m * p.m, slen = ista_saved_len(p);
    for (vars_u64 e = blockIdx.x; e < p.batch; e += gridDim.x) {
        double st = 0.0, rdot = 0.0;
        for (vars_u64 idx = threadIdx.x; idx < n; idx += blockDim.x) {
            st += acc_st[e * n + idx];
            rdot += acc_r[e * n + idx];
        }
        ista_bwd_finish(p, ga + e * n, saved + e * slen, gb + e * n, gg + e * mm,
                        lam[vars_strided_index(lamv, e)], l[vars_strided_index(lv, e)], st, rdot,
                        red, glam + e, gl + e);
        __syncthreads();
    }
}

// ---- entry points ------------------------------------------------------------------------------

#define VARS_ISTA_KERNELS(T, SFX)                                                                \
    extern "C" __global__ void __launch_bounds__(VARS_ISTA_THREADS) ista_forward_fused_##SFX(   \
        IstaDims p, IstaMatrix gv, const T* g, IstaMatrix bv, const T* b, StridedLayout lamv,    \
        const T* lam, StridedLayout lv, const T* l, T* out, T* saved) {                          \
        ista_forward_fused<T>(p, gv, g, bv, b, lamv, lam, lv, l, out, saved);                    \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(VARS_ISTA_THREADS) ista_backward_fused_##SFX(  \
        IstaDims p, IstaMatrix gv, const T* g, IstaMatrix bv, const T* b, StridedLayout lamv,    \
        const T* lam, StridedLayout lv, const T* l, IstaMatrix gradv, const T* grad,             \
        const T* saved, T* gg, T* gb, T* glam, T* gl) {                                          \
        ista_backward_fused<T>(p, gv, g, bv, b, lamv, lam, lv, l, gradv, grad, saved, gg, gb,   \
                               glam, gl);                                                        \
    }                                                                                            \
    extern "C" __global__ void ista_forward_init_##SFX(IstaDims p, IstaMatrix bv, const T* b,    \
                                                       StridedLayout lamv, const T* lam, T* a,   \
                                                       T* saved) {                               \
        ista_forward_init<T>(p, bv, b, lamv, lam, a, saved);                                     \
    }                                                                                            \
    extern "C" __global__ void ista_forward_step_##SFX(                                          \
        IstaDims p, vars_u64 k, IstaMatrix gv, const T* g, IstaMatrix bv, const T* b,            \
        StridedLayout lamv, const T* lam, StridedLayout lv, const T* l, const T* a, T* a_next,   \
        T* saved) {                                                                              \
        ista_forward_step<T>(p, k, gv, g, bv, b, lamv, lam, lv, l, a, a_next, saved);            \
    }                                                                                            \
    extern "C" __global__ void ista_backward_gz_##SFX(IstaDims p, vars_u64 k, const T* ga,       \
                                                      const T* saved, T* gz, double* acc_st) {   \
        ista_backward_gz<T>(p, k, ga, saved, gz, acc_st);                                        \
    }                                                                                            \
    extern "C" __global__ void ista_backward_h_##SFX(                                            \
        IstaDims p, vars_u64 k, IstaMatrix gv, const T* g, IstaMatrix bv, const T* b,            \
        StridedLayout lv, const T* l, const T* gz, const T* saved, T* ga, T* gb,                 \
        double* acc_r) {                                                                         \
        ista_backward_h<T>(p, k, gv, g, bv, b, lv, l, gz, saved, ga, gb, acc_r);                 \
    }                                                                                            \
    extern "C" __global__ void ista_backward_gg_##SFX(IstaDims p, vars_u64 k, const T* gz,       \
                                                      const T* saved, T* gg) {                   \
        ista_backward_gg<T>(p, k, gz, saved, gg);                                                \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(VARS_ISTA_THREADS)                              \
        ista_backward_finish_##SFX(IstaDims p, StridedLayout lamv, const T* lam,                 \
                                   StridedLayout lv, const T* l, const T* ga, const T* saved,    \
                                   const double* acc_st, const double* acc_r, T* gb, T* gg,      \
                                   T* glam, T* gl) {                                             \
        ista_backward_finish<T>(p, lamv, lam, lv, l, ga, saved, acc_st, acc_r, gb, gg, glam,    \
                                gl);                                                             \
    }

VARS_ISTA_KERNELS(float, f32)
VARS_ISTA_KERNELS(double, f64)
