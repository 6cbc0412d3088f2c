//! Small dense linear algebra in `f64` on the host: the exact references of the module (the
//! largest eigenvalue for step sizes, the active-set solve of the implicit gradient).
//!
//! Matrices are row-major `n × n` slices. These routines are `O(n³)` and meant for the sizes of a
//! sparse-coding head (`m ≤` a few hundred), not for large problems.

/// All eigenvalues of the symmetric matrix `a` (`n × n`, row-major), ascending, by the cyclic
/// Jacobi eigenvalue algorithm.
///
/// Each sweep applies a rotation `Jᵀ A J` zeroing every off-diagonal pair `(p, q)` in turn, with
/// the numerically stable angle `t = sign(θ)/(|θ| + √(θ² + 1))`, `θ = (a_qq − a_pp)/(2 a_pq)`.
/// Sweeps stop when the off-diagonal Frobenius norm is below `1e-15·‖A‖_F` (Jacobi converges
/// quadratically, typically in 6–10 sweeps) or after 100 sweeps. Only the lower triangle is read
/// symmetrically: the input is symmetrised as `(A + Aᵀ)/2` first. Eigenvalues are accurate to a
/// few ulp of `‖A‖₂`.
pub fn symmetric_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(
        a.len(),
        n * n,
        "symmetric_eigenvalues: {} values for n = {n}",
        a.len()
    );
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
        }
    }
    let fro: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * fro || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J with J the rotation in the (p, q) plane.
                for k in 0..n {
                    let akp = m[k * n + p];
                    let akq = m[k * n + q];
                    m[k * n + p] = c * akp - s * akq;
                    m[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = m[p * n + k];
                    let aqk = m[q * n + k];
                    m[p * n + k] = c * apk - s * aqk;
                    m[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut ev: Vec<f64> = (0..n).map(|i| m[i * n + i]).collect();
    ev.sort_by(f64::total_cmp);
    ev
}

/// `AᵀA` for a row-major `n × n` matrix (its eigenvalues are the squared singular values of `A`).
pub fn gram_of(a: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| a[k * n + i] * a[k * n + j]).sum();
        }
    }
    out
}

/// Solves `A x = b` (`n × n` row-major) by Gaussian elimination with partial pivoting. Returns
/// `None` when a pivot is below `1e-13·max|A|` (singular to working precision).
pub fn solve(a: &[f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    assert_eq!(a.len(), n * n);
    assert_eq!(b.len(), n);
    let mut m = a.to_vec();
    let mut x = b.to_vec();
    let scale = m.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    if n > 0 && scale == 0.0 {
        return None;
    }
    for col in 0..n {
        let piv =
            (col..n).max_by(|&i, &j| m[i * n + col].abs().total_cmp(&m[j * n + col].abs()))?;
        if m[piv * n + col].abs() <= 1e-13 * scale {
            return None;
        }
        if piv != col {
            for k in 0..n {
                m.swap(piv * n + k, col * n + k);
            }
            x.swap(piv, col);
        }
        let d = m[col * n + col];
        for row in col + 1..n {
            let f = m[row * n + col] / d;
            if f != 0.0 {
                for k in col..n {
                    m[row * n + k] -= f * m[col * n + k];
                }
                x[row] -= f * x[col];
            }
        }
    }
    for col in (0..n).rev() {
        let s: f64 = (col + 1..n).map(|k| m[col * n + k] * x[k]).sum();
        x[col] = (x[col] - s) / m[col * n + col];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_on_a_known_spectrum() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let ev = symmetric_eigenvalues(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((ev[0] - 1.0).abs() < 1e-14 && (ev[1] - 3.0).abs() < 1e-14);
        // The 1-D Laplacian tridiag(−1, 2, −1) of size n: 2 − 2cos(kπ/(n+1)).
        let n = 7;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            a[i * n + i] = 2.0;
            if i + 1 < n {
                a[i * n + i + 1] = -1.0;
                a[(i + 1) * n + i] = -1.0;
            }
        }
        let ev = symmetric_eigenvalues(&a, n);
        for (k, e) in ev.iter().enumerate() {
            let want = 2.0 - 2.0 * ((k + 1) as f64 * std::f64::consts::PI / (n + 1) as f64).cos();
            assert!((e - want).abs() < 1e-13, "{e} vs {want}");
        }
    }

    #[test]
    fn solve_matches_a_known_solution() {
        let a = [0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0];
        let x = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum())
            .collect();
        let got = solve(&a, 3, &b).unwrap();
        for i in 0..3 {
            assert!((got[i] - x[i]).abs() < 1e-14);
        }
        assert!(solve(&[1.0, 2.0, 2.0, 4.0], 2, &[1.0, 1.0]).is_none());
    }
}
