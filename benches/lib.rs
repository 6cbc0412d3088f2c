//! Shared helpers for the criterion benches in `benches/benches/`.

/// `len` deterministic values in `[-1, 1)` from the engine's counter-based generator.
pub fn random_f32(len: usize, seed: u64) -> Vec<f32> {
    (0..len)
        .map(|i| (vars_core::rng::uniform(seed, i as u64) * 2.0 - 1.0) as f32)
        .collect()
}

/// Floating-point operations of a batched `m×k` by `k×n` product.
pub fn gemm_flops(batch: usize, m: usize, k: usize, n: usize) -> u64 {
    2 * (batch * m * k * n) as u64
}
