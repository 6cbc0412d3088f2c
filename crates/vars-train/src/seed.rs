//! Seeds: every random draw of a training run is a pure function of the run seed, a stream tag
//! and counters (epoch, global step, micro-batch), built on `vars_core::rng`'s counter-based
//! SplitMix64.
//!
//! This is what makes a run reproducible *and* exactly resumable: a checkpoint stores the run seed
//! and the position (epoch, step), and nothing else is needed to redraw the same stochastic-depth
//! masks, mixup/cutmix parameters and data order after a restart. Draws never depend on the thread
//! count (the generator is counter-based, vars-core architecture notes).
//!
//! - [`stream_seed`]: the seed of one stream at one position;
//! - [`RngStream`]: a sequential generator over one such seed (uniform, normal, gamma, beta,
//!   integers), used where an algorithm consumes a variable number of draws (rejection sampling).

use vars_core::rng;

/// The independent random streams of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Stochastic depth (`Mode::Train { seed }`), per global step and micro-batch.
    DropPath = 1,
    /// Mixup/CutMix parameters, per global step.
    Mixup = 2,
    /// Data order and augmentation, per epoch (for [`crate::BatchSource`] implementations).
    Data = 3,
    /// Free for callers (e.g. evaluation-time randomness).
    User = 4,
}

/// The seed of `stream` at position `(a, b)` of a run seeded with `run_seed`: e.g.
/// `stream_seed(seed, Stream::DropPath, global_step, micro_batch)` or
/// `stream_seed(seed, Stream::Data, epoch, 0)`.
pub fn stream_seed(run_seed: u64, stream: Stream, a: u64, b: u64) -> u64 {
    let s = rng::bits(run_seed, stream as u64);
    rng::bits(rng::bits(s, a), b)
}

/// A sequential generator: draw `k` is `vars_core::rng::bits(seed, k)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RngStream {
    seed: u64,
    counter: u64,
}

impl RngStream {
    /// A stream starting at counter 0.
    pub fn new(seed: u64) -> Self {
        RngStream { seed, counter: 0 }
    }

    /// How many 64-bit words have been drawn.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let x = rng::bits(self.seed, self.counter);
        self.counter += 1;
        x
    }

    /// Uniform in `[0, 1)` (top 53 bits), as `numpy.random.rand`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[low, high)` (`numpy.random.randint(low, high)`); `low` when the range
    /// is empty. Uses the widening-multiply method (bias below 2⁻⁶⁴·range, negligible).
    pub fn below(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let range = high.wrapping_sub(low) as u64;
        let r = ((self.next_u64() as u128 * range as u128) >> 64) as u64;
        low.wrapping_add(r as i64)
    }

    /// Standard normal (Box–Muller on two uniforms).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `Gamma(shape, 1)` by Marsaglia & Tsang (2000), with the `U^{1/a}` boost for `shape < 1`.
    /// Returns 0 for a non-positive or non-finite shape.
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if !(shape > 0.0 && shape.is_finite()) {
            return 0.0;
        }
        if shape < 1.0 {
            // Gamma(a) = Gamma(a + 1) · U^{1/a}, U in (0, 1].
            let u = 1.0 - self.uniform();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        // The acceptance rate is above 95% for every shape ≥ 1; the cap only guards against a
        // pathological generator and is never reached in practice.
        for _ in 0..10_000 {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.uniform();
            if u < 1.0 - 0.0331 * x * x * x * x
                || (u > 0.0 && u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()))
            {
                return d * v;
            }
        }
        d
    }

    /// `Beta(a, b)` as `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)` (`numpy.random.beta`).
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y > 0.0 {
            x / (x + y)
        } else {
            0.5
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(mut f: impl FnMut() -> f64, n: usize) -> (f64, f64) {
        let xs: Vec<f64> = (0..n).map(|_| f()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        (mean, var)
    }

    #[test]
    fn streams_are_distinct_and_reproducible() {
        let a = stream_seed(0, Stream::DropPath, 5, 0);
        assert_eq!(a, stream_seed(0, Stream::DropPath, 5, 0));
        assert_ne!(a, stream_seed(0, Stream::Mixup, 5, 0));
        assert_ne!(a, stream_seed(0, Stream::DropPath, 6, 0));
        assert_ne!(a, stream_seed(0, Stream::DropPath, 5, 1));
        assert_ne!(a, stream_seed(1, Stream::DropPath, 5, 0));
    }

    /// Beta(α, α) has mean 1/2 and variance 1/(4(2α + 1)); Gamma(k) has mean and variance k.
    #[test]
    fn gamma_and_beta_have_the_right_moments() {
        let n = 40_000;
        for alpha in [0.8, 1.0, 2.5] {
            let mut s = RngStream::new(11);
            let (m, v) = moments(|| s.beta(alpha, alpha), n);
            let want_v = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((m - 0.5).abs() < 0.01, "beta({alpha}) mean {m}");
            assert!(
                (v - want_v).abs() < 0.01 * 0.5 + 0.003,
                "beta({alpha}) var {v} vs {want_v}"
            );
            let mut s = RngStream::new(12);
            let (m, v) = moments(|| s.gamma(alpha), n);
            assert!(
                (m - alpha).abs() < 0.04 * alpha.max(1.0),
                "gamma({alpha}) mean {m}"
            );
            assert!(
                (v - alpha).abs() < 0.1 * alpha.max(1.0),
                "gamma({alpha}) var {v}"
            );
        }
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut s = RngStream::new(3);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let k = s.below(0, 7);
            assert!((0..7).contains(&k));
            seen[k as usize] = true;
        }
        assert!(seen.iter().all(|&b| b));
        assert_eq!(s.below(4, 4), 4);
    }
}
