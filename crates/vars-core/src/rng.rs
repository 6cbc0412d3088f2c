//! The documented random-number generator: counter-based SplitMix64.
//!
//! Element `i` of a draw with seed `s` is a pure function of `(s, i)`, so results do not depend on
//! the thread count. Uniform draws are bit-identical on every backend; normal draws go through
//! `ln`, `sqrt` and `cos`, whose last-bit rounding differs between Rust's libm and a GPU's math
//! library, so the CUDA backend matches the CPU to within a few ulp (the first H200 run showed
//! 1-ulp differences in f64; the shared suite allows 8).
//!
//! - `bits(s, i) = mix64(s·0x9E3779B97F4A7C15 + i)` where `mix64` is SplitMix64's finaliser
//!   (Steele, Lea & Flood 2014).
//! - Uniform `[0, 1)`: the top 53 bits of `bits(s, i)` times 2⁻⁵³.
//! - Normal: Box–Muller on counters `2i` and `2i+1`:
//!   `√(−2·ln(1 − u₁))·cos(2π·u₂)`.

/// SplitMix64's output function.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64 random bits for counter `i` of stream `seed`.
#[inline]
pub fn bits(seed: u64, i: u64) -> u64 {
    mix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i))
}

/// Uniform sample in `[0, 1)`.
#[inline]
pub fn uniform(seed: u64, i: u64) -> f64 {
    (bits(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal sample for element `i`.
#[inline]
pub fn normal(seed: u64, i: u64) -> f64 {
    let u1 = uniform(seed, 2 * i);
    let u2 = uniform(seed, 2 * i + 1);
    (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Sample `i` of `dist`.
#[inline]
pub fn sample(dist: crate::Distribution, seed: u64, i: u64) -> f64 {
    match dist {
        crate::Distribution::Uniform { low, high } => low + (high - low) * uniform(seed, i),
        crate::Distribution::Normal { mean, std } => mean + std * normal(seed, i),
    }
}
