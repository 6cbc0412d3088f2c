#line 2 "gemm.cu"
// Tiled batched GEMM, the fallback of `matmul.rs` when cuBLAS does not load (or is turned off
// with VARS_CUDA_NO_CUBLAS=1): c[z] = a[z] · b[z] for z < batch, c contiguous (batch, m, n).
//
// `gemm_<t>(m, n, k, batch, a_batch, a_rs, a_cs, a, b_batch, b_rs, b_cs, b, c)`:
// - operand element (z, i, j) lives at `vars_strided_index(x_batch, z) + i * x_rs + j * x_cs`,
//   so any strided view works without a copy (transposes are swapped strides, broadcast batch
//   dims are stride 0; `x_batch` holds the merged batch dims and the view's element offset);
// - 256 threads per block; each block computes 64×64 tiles of c, each thread a 4×4 micro-tile
//   (rows ty + 16·i, columns tx + 16·j, so the shared-memory reads are broadcasts and the global
//   writes coalesce), over k in steps of 16 staged through shared memory;
// - grid (x: column tiles, y: row tiles, z: batch), every dimension a block-uniform grid-stride
//   loop, so any grid size is correct (the host caps y and z at 65535);
// - accumulation in T (f32 or f64), in increasing k order per output element.

#define VARS_GEMM_BM 64
#define VARS_GEMM_BN 64
#define VARS_GEMM_BK 16
#define VARS_GEMM_THREADS 256

template <typename T>
__device__ __forceinline__ void vars_gemm(vars_u64 m, vars_u64 n, vars_u64 k, vars_u64 batch,
                                          const StridedLayout& a_batch, vars_u64 a_rs,
                                          vars_u64 a_cs, const T* __restrict__ a,
                                          const StridedLayout& b_batch, vars_u64 b_rs,
                                          vars_u64 b_cs, const T* __restrict__ b,
                                          T* __restrict__ c) {
    // a tile stored k-major (as_[kk][row]); +1 padding keeps the transposing stores off one bank.
    __shared__ T as_[VARS_GEMM_BK][VARS_GEMM_BM + 1];
    __shared__ T bs_[VARS_GEMM_BK][VARS_GEMM_BN + 1];

    const int tid = (int)threadIdx.x;
    const int tx = tid % 16;
    const int ty = tid / 16;
    const vars_u64 tiles_m = (m + VARS_GEMM_BM - 1) / VARS_GEMM_BM;
    const vars_u64 tiles_n = (n + VARS_GEMM_BN - 1) / VARS_GEMM_BN;

    for (vars_u64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const T* __restrict__ az = a + vars_strided_index(a_batch, z);
        const T* __restrict__ bz = b + vars_strided_index(b_batch, z);
        T* __restrict__ cz = c + z * m * n;
        for (vars_u64 tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
            for (vars_u64 tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
                const vars_u64 row0 = tm * VARS_GEMM_BM;
                const vars_u64 col0 = tn * VARS_GEMM_BN;
                T acc[4][4];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
                }
                for (vars_u64 k0 = 0; k0 < k; k0 += VARS_GEMM_BK) {
                    // a tile: 64 rows × 16 k; consecutive threads read consecutive k.
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        const int idx = tid + r * VARS_GEMM_THREADS;
                        const int ar = idx / VARS_GEMM_BK;
                        const int ac = idx % VARS_GEMM_BK;
                        const vars_u64 gr = row0 + ar;
                        const vars_u64 gc = k0 + ac;
                        as_[ac][ar] = (gr < m && gc < k) ? az[gr * a_rs + gc * a_cs] : T(0);
                    }
                    // b tile: 16 k × 64 columns; consecutive threads read consecutive columns.
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        const int idx = tid + r * VARS_GEMM_THREADS;
                        const int br = idx / VARS_GEMM_BN;
                        const int bc = idx % VARS_GEMM_BN;
                        const vars_u64 gr = k0 + br;
                        const vars_u64 gc = col0 + bc;
                        bs_[br][bc] = (gr < k && gc < n) ? bz[gr * b_rs + gc * b_cs] : T(0);
                    }
                    __syncthreads();
#pragma unroll
                    for (int kk = 0; kk < VARS_GEMM_BK; ++kk) {
                        T av[4];
                        T bv[4];
#pragma unroll
                        for (int i = 0; i < 4; ++i) av[i] = as_[kk][ty + 16 * i];
#pragma unroll
                        for (int j = 0; j < 4; ++j) bv[j] = bs_[kk][tx + 16 * j];
#pragma unroll
                        for (int i = 0; i < 4; ++i) {
#pragma unroll
                            for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
                        }
                    }
                    __syncthreads();
                }
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const vars_u64 gr = row0 + ty + 16 * i;
                    if (gr >= m) continue;
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        const vars_u64 gc = col0 + tx + 16 * j;
                        if (gc < n) cz[gr * n + gc] = acc[i][j];
                    }
                }
            }
        }
    }
}

#define VARS_GEMM_KERNEL(T, SFX)                                                                 \
    extern "C" __global__ void __launch_bounds__(VARS_GEMM_THREADS)                              \
        gemm_##SFX(vars_u64 m, vars_u64 n, vars_u64 k, vars_u64 batch, StridedLayout a_batch,    \
                   vars_u64 a_rs, vars_u64 a_cs, const T* __restrict__ a, StridedLayout b_batch, \
                   vars_u64 b_rs, vars_u64 b_cs, const T* __restrict__ b, T* __restrict__ c) {   \
        vars_gemm<T>(m, n, k, batch, a_batch, a_rs, a_cs, a, b_batch, b_rs, b_cs, b, c);         \
    }

VARS_GEMM_KERNEL(float, f32)
VARS_GEMM_KERNEL(double, f64)
