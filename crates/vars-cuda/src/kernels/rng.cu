#line 2 "rng.cu"
// The counter-based generator of `vars_core::rng`, formula for formula:
//
//   bits(s, i)    = mix64(s * 0x9E3779B97F4A7C15 + i)            (wrapping u64 arithmetic)
//   uniform(s, i) = (bits(s, i) >> 11) * 2^-53
//   normal(s, i)  = sqrt(-2 ln(1 - uniform(s, 2i))) * cos(2π · uniform(s, 2i + 1))
//   Uniform{low, high}: low + (high - low) * uniform;  Normal{mean, std}: mean + std * normal
//
// All arithmetic is in f64, then rounded once to the output type, like the CPU. `bits` and the
// uniform samples are bit-identical to the CPU; the explicit `__dmul_rn`/`__dadd_rn` stop NVRTC
// from contracting `a + b * c` into an FMA (which would round differently). Normal samples go
// through CUDA's `log`/`cos`/`sqrt` (≤ 1-2 ulp, not always glibc's rounding), so they agree with
// the CPU to a few f64 ulps, and almost always exactly after rounding to f32.
//
// - `rand_bits_i64(n, out, seed)`: the raw 64-bit words (as i64), for testing bit-identity.
// - `rand_uniform_<t>(n, out, seed, low, high)`, `rand_normal_<t>(n, out, seed, mean, std)`.

__device__ __forceinline__ vars_u64 vars_mix64(vars_u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ vars_u64 vars_bits(vars_u64 seed, vars_u64 i) {
    return vars_mix64(seed * 0x9E3779B97F4A7C15ULL + i);
}

__device__ __forceinline__ double vars_uniform(vars_u64 seed, vars_u64 i) {
    // 2^-53, exactly.
    return __dmul_rn((double)(vars_bits(seed, i) >> 11), 0x1.0p-53);
}

__device__ __forceinline__ double vars_normal(vars_u64 seed, vars_u64 i) {
    const double u1 = vars_uniform(seed, 2 * i);
    const double u2 = vars_uniform(seed, 2 * i + 1);
    // 0x1.921fb54442d18p+2 is std::f64::consts::TAU.
    return __dmul_rn(sqrt(__dmul_rn(-2.0, log(__dadd_rn(1.0, -u1)))),
                     cos(__dmul_rn(0x1.921fb54442d18p+2, u2)));
}

extern "C" __global__ void rand_bits_i64(vars_u64 n, vars_i64* __restrict__ out, vars_u64 seed) {
    VARS_GRID_STRIDE_LOOP(i, n) { out[i] = (vars_i64)vars_bits(seed, i); }
}

#define VARS_RAND(T, SFX)                                                                        \
    extern "C" __global__ void rand_uniform_##SFX(vars_u64 n, T* __restrict__ out,               \
                                                  vars_u64 seed, double low, double high) {      \
        const double span = __dadd_rn(high, -low);                                               \
        VARS_GRID_STRIDE_LOOP(i, n) {                                                            \
            out[i] = (T)__dadd_rn(low, __dmul_rn(span, vars_uniform(seed, i)));                  \
        }                                                                                        \
    }                                                                                            \
    extern "C" __global__ void rand_normal_##SFX(vars_u64 n, T* __restrict__ out, vars_u64 seed, \
                                                 double mean, double std_dev) {                  \
        VARS_GRID_STRIDE_LOOP(i, n) {                                                            \
            out[i] = (T)__dadd_rn(mean, __dmul_rn(std_dev, vars_normal(seed, i)));               \
        }                                                                                        \
    }

VARS_RAND(float, f32)
VARS_RAND(double, f64)
