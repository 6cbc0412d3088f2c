//! Shared helpers of the `sparse_*` tests: seeded host data and an independent f64 Lasso solver
//! (cyclic coordinate descent) that shares no code with `vars_core::sparse`.
#![allow(dead_code)]

use vars_core::{rng, Result, Tensor};
use vars_cpu::{Cpu, CpuDevice};

pub const DEV: CpuDevice = CpuDevice;

/// Row-major `rows × cols` standard normal values (the engine's counter-based generator).
pub fn normal(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    (0..(rows * cols) as u64)
        .map(|i| rng::normal(seed, i))
        .collect()
}

/// Scales every column of the row-major `rows × cols` matrix to unit ℓ2 norm.
pub fn normalize_columns(d: &mut [f64], rows: usize, cols: usize) {
    for j in 0..cols {
        let n: f64 = (0..rows)
            .map(|i| d[i * cols + j].powi(2))
            .sum::<f64>()
            .sqrt();
        for i in 0..rows {
            d[i * cols + j] /= n;
        }
    }
}

/// A random dictionary `n × m` with unit columns and a signal `n × k`.
pub fn random_problem(n: usize, m: usize, k: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut d = normal(n, m, seed);
    normalize_columns(&mut d, n, m);
    let x = normal(n, k, seed ^ 0xA5A5);
    (d, x)
}

/// An f64 tensor on the CPU.
pub fn t64(data: &[f64], dims: &[usize]) -> Tensor<Cpu> {
    Tensor::from_slice(data, dims.to_vec(), &DEV).unwrap()
}

/// `AᵀB` for row-major `A: n × p`, `B: n × q`.
pub fn at_b(a: &[f64], b: &[f64], n: usize, p: usize, q: usize) -> Vec<f64> {
    let mut out = vec![0.0; p * q];
    for i in 0..p {
        for j in 0..q {
            out[i * q + j] = (0..n).map(|r| a[r * p + i] * b[r * q + j]).sum();
        }
    }
    out
}

/// The Lasso energy `½‖x − D a‖² + λ‖a‖₁` of one column (`d: n × m`, row-major).
pub fn lasso_energy(d: &[f64], x: &[f64], a: &[f64], lam: f64, n: usize, m: usize) -> f64 {
    let mut e = 0.0;
    for r in 0..n {
        let rec: f64 = (0..m).map(|j| d[r * m + j] * a[j]).sum();
        e += 0.5 * (x[r] - rec).powi(2);
    }
    e + lam * a.iter().map(|v| v.abs()).sum::<f64>()
}

/// Cyclic coordinate descent for `min ½aᵀGa − bᵀa + λ‖a‖₁` (optionally `a ≥ 0`), one column:
/// `a_j ← S(b_j − Σ_{i≠j} G_ji a_i; λ)/G_jj`, sweeping until no coordinate moves by more than
/// 1e-15. Exact minimisation per coordinate, so E decreases monotonically to the minimum.
pub fn coordinate_descent(g: &[f64], b: &[f64], lam: f64, nonneg: bool, m: usize) -> Vec<f64> {
    let mut a = vec![0.0; m];
    for _sweep in 0..100_000 {
        let mut delta: f64 = 0.0;
        for j in 0..m {
            let r: f64 = b[j]
                - (0..m)
                    .filter(|&i| i != j)
                    .map(|i| g[j * m + i] * a[i])
                    .sum::<f64>();
            let s = if nonneg {
                (r - lam).max(0.0)
            } else {
                r.signum() * (r.abs() - lam).max(0.0)
            };
            let new = s / g[j * m + j];
            delta = delta.max((new - a[j]).abs());
            a[j] = new;
        }
        if delta <= 1e-15 {
            break;
        }
    }
    a
}

/// Column `c` of a row-major `rows × cols` matrix.
pub fn column(v: &[f64], rows: usize, cols: usize, c: usize) -> Vec<f64> {
    (0..rows).map(|i| v[i * cols + c]).collect()
}

/// `max |x − y|`.
pub fn max_diff(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

pub fn scalar(v: f64) -> Result<Tensor<Cpu>> {
    Tensor::scalar(v, vars_core::DType::F64, &DEV)
}
