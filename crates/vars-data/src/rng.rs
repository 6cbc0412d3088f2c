//! Seeding of the random corruptions (protocol §1 "Randomness", §5.2 "Seeding").
//!
//! The reference draws from numpy's global, unseeded RNG, so no port can reproduce its numbers;
//! this crate reproduces the *distributions* and makes every output a pure function of
//! `(base seed, corruption, severity, image index)`:
//!
//! 1. **Image seed.** [`image_seed`]`(base, corruption, severity, index)` chains SplitMix64's
//!    finaliser (`vars_core::rng::mix64`) over the base seed, the FNV-1a hash of the corruption's
//!    name, the severity and the index:
//!    `s = mix64(mix64(mix64(mix64(base ⊕ K) ⊕ fnv1a(name)) ⊕ severity) ⊕ index)` with
//!    `K = 0x5641_5253_2d43_0001` ("VARS-C", version 1).
//! 2. **Streams.** Each random quantity a corruption draws gets its own stream,
//!    `sub_seed(s, tag) = mix64(s ⊕ tag·0x9E37_79B9_7F4A_7C15)`, with a fixed tag per quantity
//!    (documented in each corruption). Draw `i` of a stream is the project's counter-based
//!    generator `vars_core::rng::bits(stream, i)`, so per-element draws (noise fields) can be
//!    computed in any order or thread and stay bit-identical.
//! 3. **Distributions.** Uniform `[0, 1)` from the top 53 bits; normal by Box–Muller on counters
//!    `2i`, `2i+1` (`vars_core::rng::normal`); integers in `[lo, hi)` by `lo + ⌊u·(hi − lo)⌋`;
//!    Poisson by multiplication of uniforms below λ = 10 and by Hörmann's PTRS transformed
//!    rejection (the algorithm numpy uses) above, each element on its own stream.
//!
//! Changing any of these formulas changes every generated data set: bump `K` if you must.

use vars_core::rng::{bits, mix64};

use crate::corruptions::Corruption;

const VERSION_KEY: u64 = 0x5641_5253_2d43_0001;

/// FNV-1a (64-bit) of a string.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The seed of one corrupted image: a pure function of the base seed, the corruption, the
/// severity and the image's index in its data set (see the module docs).
pub fn image_seed(base: u64, corruption: Corruption, severity: u8, index: u64) -> u64 {
    let mut s = mix64(base ^ VERSION_KEY);
    s = mix64(s ^ fnv1a(corruption.name()));
    s = mix64(s ^ severity as u64);
    mix64(s ^ index)
}

/// The stream of one random quantity of a corruption.
pub fn sub_seed(seed: u64, tag: u64) -> u64 {
    mix64(seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Draw `i` of stream `seed`, uniform in `[0, 1)`.
#[inline]
pub fn uniform_at(seed: u64, i: u64) -> f64 {
    vars_core::rng::uniform(seed, i)
}

/// Draw `i` of stream `seed`, standard normal.
#[inline]
pub fn normal_at(seed: u64, i: u64) -> f64 {
    vars_core::rng::normal(seed, i)
}

/// A sequential view of a counter-based stream, for draws whose count is data-dependent
/// (rejection samplers) or naturally sequential (glass-blur shuffles, plasma fractal).
#[derive(Debug, Clone)]
pub struct Stream {
    seed: u64,
    counter: u64,
}

impl Stream {
    /// Stream `seed`, starting at counter 0.
    pub fn new(seed: u64) -> Self {
        Stream { seed, counter: 0 }
    }

    /// How many draws of 64 bits were taken so far.
    pub fn position(&self) -> u64 {
        self.counter
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let b = bits(self.seed, self.counter);
        self.counter += 1;
        b
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box–Muller, two uniforms per draw).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Integer uniform in `[lo, hi)` (numpy's `randint(lo, hi)`); `lo` when `hi <= lo`.
    pub fn randint(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as f64;
        lo + ((self.uniform() * span) as i64).min(hi - lo - 1)
    }

    /// Poisson(λ): multiplication method for λ < 10, Hörmann's PTRS otherwise.
    pub fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0.0;
        }
        if lambda < 10.0 {
            let limit = (-lambda).exp();
            let mut k = 0.0;
            let mut prod = self.uniform();
            while prod > limit {
                k += 1.0;
                prod *= self.uniform();
            }
            return k;
        }
        // W. Hörmann, "The transformed rejection method for generating Poisson random
        // variables", Insurance: Mathematics and Economics 12 (1993); as in numpy's
        // random_poisson_ptrs.
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let invalpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if (v.ln() + invalpha.ln() - (a / (us * us) + b).ln())
                <= -lambda + k * loglam - ln_gamma(k + 1.0)
            {
                return k;
            }
        }
    }
}

/// ln Γ(x) for x ≥ 1 (Lanczos approximation, g = 7, n = 9; relative error < 1e-13 there).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (std::f64::consts::TAU).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Bits of stream `seed` at counter `i` (re-exported for tests and custom corruptions).
#[inline]
pub fn bits_at(seed: u64, i: u64) -> u64 {
    bits(seed, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut f = 1.0f64;
        for n in 1..30 {
            // ln Γ(n+1) = ln n!
            f *= n as f64;
            let want = f.ln();
            assert!(
                (ln_gamma(n as f64 + 1.0) - want).abs() < 1e-11 * want.max(1.0),
                "n = {n}"
            );
        }
        assert!((ln_gamma(1.0)).abs() < 1e-13);
        assert!((ln_gamma(2.5) - (1.329_340_388_179_137f64).ln()).abs() < 1e-13);
    }

    #[test]
    fn seeds_depend_on_every_component() {
        let c = Corruption::GaussianNoise;
        let s = image_seed(0, c, 1, 0);
        assert_eq!(s, image_seed(0, c, 1, 0));
        assert_ne!(s, image_seed(1, c, 1, 0));
        assert_ne!(s, image_seed(0, Corruption::ShotNoise, 1, 0));
        assert_ne!(s, image_seed(0, c, 2, 0));
        assert_ne!(s, image_seed(0, c, 1, 1));
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn randint_covers_range_uniformly() {
        let mut s = Stream::new(7);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            let v = s.randint(-2, 3);
            assert!((-2..3).contains(&v));
            counts[(v + 2) as usize] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 400.0, "{counts:?}");
        }
        assert_eq!(s.randint(4, 4), 4);
    }

    #[test]
    fn poisson_mean_and_variance() {
        for &lam in &[0.3f64, 3.0, 9.9, 10.0, 45.0, 500.0] {
            let mut s = Stream::new(lam.to_bits());
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| s.poisson(lam)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            // 6 standard errors of the mean and (roughly) of the variance
            let se_mean = (lam / n as f64).sqrt();
            let se_var = (lam * (2.0 * lam + 1.0) / n as f64).sqrt();
            assert!((mean - lam).abs() < 6.0 * se_mean, "λ={lam}: mean {mean}");
            assert!((var - lam).abs() < 6.0 * se_var, "λ={lam}: var {var}");
            assert!(xs.iter().all(|&x| x >= 0.0 && x.fract() == 0.0));
        }
    }
}
