//! The 2-D real FFT pair of [`crate::nn::fft`] (spec §3.6: `torch.fft.rfftn` /
//! `irfftn(norm="ortho")` over the last two dims, complex values as a trailing `(re, im)` axis).
//!
//! References are direct O(N²) DFTs in complex f64 written here. Grids: S1×S2 in {3×3, 6×6,
//! 7×7, 14×14, 6×7, 7×6} (odd and even, square and not; VARS-S uses S = 3, 6, 7, 14), plus 1×1
//! and 2×2 edge cases where noted.
//!
//! Tolerance of a transform result: `|got − want| ≤ 8·(S1 + S2 + 4)·u·‖input‖₂`, with `u` the
//! unit roundoff of the dtype. Both transforms are two stages of dot products of length S1 and
//! S2 with twiddles of modulus ≤ S^{-1/2} (times the weight c ≤ 2 for the inverse), so each
//! stage errs by at most ≈ S·u·‖line‖₂ ≤ S·u·‖input‖₂, plus the rounding of the twiddles
//! themselves; the factor 8 covers c, the two stages and the round trip. Formula errors are
//! O(‖input‖), ~10⁴× (f32) to 10¹²× (f64) larger.

use super::nn::{gc, input, laid_out, unit_roundoff, wsum, LAYOUTS};
use super::util::*;
use crate::nn::fft::{complex_conj, complex_mul, half_len, irfft2, rfft2};
use crate::{Autodiff, Backend, DType, Result, Tensor};
use std::f64::consts::TAU;

/// The grids every FFT check runs on.
const SIZES: [(usize, usize); 6] = [(3, 3), (6, 6), (7, 7), (14, 14), (6, 7), (7, 6)];

/// The weight `c_{k2}`: 1 at the DC column and (even S2) the Nyquist column, else 2.
fn c_weight(k2: usize, s2: usize) -> f64 {
    if k2 == 0 || (s2 % 2 == 0 && k2 == s2 / 2) {
        1.0
    } else {
        2.0
    }
}

/// `e^{i·2π·(a/s1 + b/s2)}` with the angles reduced exactly in integers.
fn cis(a: usize, s1: usize, b: usize, s2: usize) -> (f64, f64) {
    let th = TAU * ((a % s1) as f64 / s1 as f64 + (b % s2) as f64 / s2 as f64);
    (th.cos(), th.sin())
}

/// Direct `rfftn(x, dim=(-2,-1), norm="ortho")` of every S1×S2 plane of `x`: the half spectrum
/// `(…, S1, Kh, 2)`, row-major, interleaved (re, im).
fn ref_rfft2(x: &[f64], s1: usize, s2: usize) -> Vec<f64> {
    let kh = half_len(s2);
    let norm = 1.0 / ((s1 * s2) as f64).sqrt();
    let planes = x.len() / (s1 * s2);
    let mut out = vec![0.0; planes * s1 * kh * 2];
    for p in 0..planes {
        let xp = &x[p * s1 * s2..(p + 1) * s1 * s2];
        for k1 in 0..s1 {
            for k2 in 0..kh {
                let (mut re, mut im) = (0.0, 0.0);
                for n1 in 0..s1 {
                    for n2 in 0..s2 {
                        // ω^{−(k1 n1 + k2 n2)} = conj(cis(k1 n1, k2 n2)).
                        let (c, s) = cis(k1 * n1, s1, k2 * n2, s2);
                        re += xp[n1 * s2 + n2] * c;
                        im -= xp[n1 * s2 + n2] * s;
                    }
                }
                let at = ((p * s1 + k1) * kh + k2) * 2;
                out[at] = re * norm;
                out[at + 1] = im * norm;
            }
        }
    }
    out
}

/// The closed form of spec §3.6 for an arbitrary half spectrum `(…, S1, Kh, 2)`:
/// `y(n1,n2) = (S1·S2)^{-1/2}·Re Σ_{k1,k2} w_{k2}·Y(k1,k2)·ω^{k1 n1 + k2 n2}` with `w = c`
/// (`irfftn`) or `w = 1` (the adjoint of `rfftn`, used for `grad(x) = F⁻¹(grad X ⊘ c)`).
fn ref_closed_form(y: &[f64], s1: usize, s2: usize, weighted: bool) -> Vec<f64> {
    let kh = half_len(s2);
    let norm = 1.0 / ((s1 * s2) as f64).sqrt();
    let planes = y.len() / (s1 * kh * 2);
    let mut out = vec![0.0; planes * s1 * s2];
    for p in 0..planes {
        for n1 in 0..s1 {
            for n2 in 0..s2 {
                let mut acc = 0.0;
                for k1 in 0..s1 {
                    for k2 in 0..kh {
                        let at = ((p * s1 + k1) * kh + k2) * 2;
                        let (c, s) = cis(k1 * n1, s1, k2 * n2, s2);
                        let w = if weighted { c_weight(k2, s2) } else { 1.0 };
                        acc += w * (y[at] * c - y[at + 1] * s);
                    }
                }
                out[(p * s1 + n1) * s2 + n2] = acc * norm;
            }
        }
    }
    out
}

/// `irfftn` the way the spec describes the library: an orthonormal complex inverse DFT along
/// the first axis giving `Z(n1, k2)`, the imaginary parts of `Z` at the DC and (even S2)
/// Nyquist columns set to zero, then the real-output inverse along the second axis. An
/// independent construction of the same map as [`ref_closed_form`].
fn ref_two_step(y: &[f64], s1: usize, s2: usize) -> Vec<f64> {
    let kh = half_len(s2);
    let planes = y.len() / (s1 * kh * 2);
    let mut out = vec![0.0; planes * s1 * s2];
    for p in 0..planes {
        for n1 in 0..s1 {
            // Z(n1, ·).
            let mut z = vec![(0.0, 0.0); kh];
            for (k2, zk) in z.iter_mut().enumerate() {
                for k1 in 0..s1 {
                    let at = ((p * s1 + k1) * kh + k2) * 2;
                    let (c, s) = cis(k1 * n1, s1, 0, 1);
                    zk.0 += y[at] * c - y[at + 1] * s;
                    zk.1 += y[at] * s + y[at + 1] * c;
                }
                zk.0 /= (s1 as f64).sqrt();
                zk.1 /= (s1 as f64).sqrt();
                if c_weight(k2, s2) == 1.0 {
                    zk.1 = 0.0;
                }
            }
            for n2 in 0..s2 {
                let mut acc = 0.0;
                for (k2, zk) in z.iter().enumerate() {
                    let (c, s) = cis(k2 * n2, s2, 0, 1);
                    acc += c_weight(k2, s2) * (zk.0 * c - zk.1 * s);
                }
                out[(p * s1 + n1) * s2 + n2] = acc / (s2 as f64).sqrt();
            }
        }
    }
    out
}

fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The bound of the module docs.
fn fft_tol(dtype: DType, s1: usize, s2: usize, input_norm: f64) -> f64 {
    8.0 * (s1 + s2 + 4) as f64 * unit_roundoff(dtype) * input_norm.max(1.0)
}

#[track_caller]
fn assert_fft<B: Backend>(
    what: &str,
    t: &Tensor<B>,
    dims: &[usize],
    want: &[f64],
    tol: f64,
) -> Result<()> {
    assert_tensor(what, t, dims, want, 0.0, tol)
}

/// `rfft2` against the direct DFT on every grid (and 1×1, 2×2), f32/f64, with a batch of two
/// planes, on contiguous, permuted and narrowed inputs; the output shape is (…, S1, S2/2+1, 2).
pub fn rfft2_matches_dft<B: Backend>(dev: &B::Device) -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        for (si, &(s1, s2)) in SIZES.iter().chain(&[(1, 1), (2, 2)]).enumerate() {
            let dims = [2, s1, s2];
            let xs = round_to(
                dtype,
                &uniform_vec(2 * s1 * s2, 1000 + si as u64, -2.0, 2.0),
            );
            let want = ref_rfft2(&xs, s1, s2);
            let tol = fft_tol(dtype, s1, s2, l2(&xs));
            for layout in LAYOUTS {
                let x = laid_out::<B>(&xs, &dims, dtype, layout, dev)?;
                assert_fft(
                    &format!("rfft2 {s1}×{s2} {dtype} {layout:?}"),
                    &rfft2(&x)?,
                    &[2, s1, half_len(s2), 2],
                    &want,
                    tol,
                )?;
            }
        }
    }
    // Rank 2 (no batch) and rank 4 (two batch dims).
    let xs = uniform_vec(42, 1010, -2.0, 2.0);
    let x = tensor::<B>(&xs, [6, 7], DType::F64, dev)?;
    assert_fft(
        "rfft2 rank 2",
        &rfft2(&x)?,
        &[6, 4, 2],
        &ref_rfft2(&xs, 6, 7),
        1e-12,
    )?;
    let xs = uniform_vec(2 * 3 * 36, 1011, -2.0, 2.0);
    let x = tensor::<B>(&xs, [2, 3, 6, 6], DType::F64, dev)?;
    assert_fft(
        "rfft2 rank 4",
        &rfft2(&x)?,
        &[2, 3, 6, 4, 2],
        &ref_rfft2(&xs, 6, 6),
        1e-12,
    )?;
    Ok(())
}

/// `irfft2` of arbitrary (non-Hermitian) half spectra against the closed form of spec §3.6 and
/// against the two-step construction, f32/f64, on contiguous, permuted and narrowed spectra.
pub fn irfft2_matches_closed_form<B: Backend>(dev: &B::Device) -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        for (si, &(s1, s2)) in SIZES.iter().chain(&[(1, 1), (2, 2)]).enumerate() {
            let kh = half_len(s2);
            let dims = [2, s1, kh, 2];
            let ys = round_to(
                dtype,
                &uniform_vec(2 * s1 * kh * 2, 1100 + si as u64, -1.0, 1.0),
            );
            let want = ref_closed_form(&ys, s1, s2, true);
            assert_close(
                &format!("closed form vs two-step reference {s1}×{s2}"),
                &ref_two_step(&ys, s1, s2),
                &want,
                0.0,
                1e-12,
            );
            let tol = fft_tol(dtype, s1, s2, l2(&ys));
            for layout in LAYOUTS {
                let y = laid_out::<B>(&ys, &dims, dtype, layout, dev)?;
                assert_fft(
                    &format!("irfft2 {s1}×{s2} {dtype} {layout:?}"),
                    &irfft2(&y, s2)?,
                    &[2, s1, s2],
                    &want,
                    tol,
                )?;
            }
        }
    }
    Ok(())
}

/// `irfft2(rfft2(x)) = x` on every grid, f32/f64, and (for a Hermitian-consistent spectrum, i.e.
/// one that is the rfft2 of something) `rfft2(irfft2(X)) = X`.
pub fn fft_round_trip<B: Backend>(dev: &B::Device) -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        for (si, &(s1, s2)) in SIZES.iter().enumerate() {
            let (x, xs) =
                random_tensor::<B>(&[3, s1, s2], dtype, 1200 + si as u64, -2.0, 2.0, dev)?;
            let tol = fft_tol(dtype, s1, s2, l2(&xs));
            let spec = rfft2(&x)?;
            let back = irfft2(&spec, s2)?;
            assert_fft(
                &format!("irfft2(rfft2(x)) {s1}×{s2} {dtype}"),
                &back,
                &[3, s1, s2],
                &xs,
                tol,
            )?;
            let spec_vals = spec.to_vec_f64()?;
            assert_fft(
                &format!("rfft2(irfft2(X)) {s1}×{s2} {dtype}"),
                &rfft2(&back)?,
                spec.dims(),
                &spec_vals,
                2.0 * tol,
            )?;
        }
    }
    Ok(())
}

/// Parseval for the orthonormal half spectrum: `Σ x² = Σ_k c_{k2}·|X_k|²`, per plane.
pub fn fft_parseval<B: Backend>(dev: &B::Device) -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        for (si, &(s1, s2)) in SIZES.iter().enumerate() {
            let kh = half_len(s2);
            let (x, xs) =
                random_tensor::<B>(&[2, s1, s2], dtype, 1300 + si as u64, -2.0, 2.0, dev)?;
            let spec = rfft2(&x)?.to_vec_f64()?;
            for p in 0..2 {
                let energy: f64 = xs[p * s1 * s2..(p + 1) * s1 * s2]
                    .iter()
                    .map(|v| v * v)
                    .sum();
                let mut spectral = 0.0;
                for k1 in 0..s1 {
                    for k2 in 0..kh {
                        let at = ((p * s1 + k1) * kh + k2) * 2;
                        spectral += c_weight(k2, s2) * (spec[at].powi(2) + spec[at + 1].powi(2));
                    }
                }
                let tol = 2.0 * fft_tol(dtype, s1, s2, energy.sqrt()) * energy.sqrt();
                assert!(
                    (energy - spectral).abs() <= tol,
                    "Parseval {s1}×{s2} {dtype} plane {p}: Σx² = {energy}, Σ c|X|² = {spectral}"
                );
            }
        }
    }
    Ok(())
}

/// `F1(i·r)` for a real vector `r` of length `s1`: the half-spectrum column whose first-axis
/// inverse DFT is purely imaginary, `Z = i·r`.
fn imaginary_after_first_axis(r: &[f64]) -> Vec<(f64, f64)> {
    let s1 = r.len();
    (0..s1)
        .map(|k1| {
            let (mut re, mut im) = (0.0, 0.0);
            for (n1, &rv) in r.iter().enumerate() {
                // i·r·e^{−iθ} = r·(sin θ + i cos θ)
                let (c, s) = cis(k1 * n1, s1, 0, 1);
                re += rv * s;
                im += rv * c;
            }
            (re / (s1 as f64).sqrt(), im / (s1 as f64).sqrt())
        })
        .collect()
}

/// How `irfft2` treats the DC and Nyquist columns (spec §3.6), on S = 3, 6, 7, 14 and 6×7, 7×6:
///
/// 1. Adding to the DC column (and, for even S2, the Nyquist column) a spectrum whose first-axis
///    inverse is purely imaginary leaves the output unchanged: the imaginary parts of `Z` there
///    are ignored. In particular the self-conjugate entries `Im Y(0, 0)`, `Im Y(S1/2, 0)` (even
///    S1) and their Nyquist counterparts are ignored.
/// 2. Equivalently, `irfft2(Y) = irfft2(Y′)` where `Y′` has those columns replaced by their
///    Hermitian part along k1, `(Y(k1) + conj Y(−k1))/2`, i.e. with the imaginary parts of `Z`
///    zeroed; and both match the closed form.
/// 3. The other imaginary parts of those columns are *not* ignored: zeroing `Im Y(k1, 0)` for a
///    `k1 ∉ {0, S1/2}` changes the output (the closed form depends on them), and for odd S2 the
///    last column is an ordinary column (adding `F1(i·r)` there changes the output).
pub fn irfft2_dc_nyquist<B: Backend>(dev: &B::Device) -> Result<()> {
    for (si, &(s1, s2)) in SIZES.iter().enumerate() {
        let kh = half_len(s2);
        let seed = 1400 + 10 * si as u64;
        let ys = uniform_vec(s1 * kh * 2, seed, -1.0, 1.0);
        let dims = [s1, kh, 2];
        let y0 = irfft2(&tensor::<B>(&ys, dims, DType::F64, dev)?, s2)?.to_vec_f64()?;
        let want = ref_closed_form(&ys, s1, s2, true);
        assert_close(&format!("irfft2 {s1}×{s2}"), &y0, &want, 0.0, 1e-12);
        let eval = |vals: &[f64]| -> Result<Vec<f64>> {
            irfft2(&tensor::<B>(vals, dims, DType::F64, dev)?, s2)?.to_vec_f64()
        };
        let self_conj: Vec<usize> = (0..kh).filter(|&k2| c_weight(k2, s2) == 1.0).collect();

        // 1. Purely imaginary Z in the self-conjugate columns is invisible.
        let mut perturbed = ys.clone();
        for (j, &k2) in self_conj.iter().enumerate() {
            let r = uniform_vec(s1, seed + 1 + j as u64, -3.0, 3.0);
            for (k1, (re, im)) in imaginary_after_first_axis(&r).into_iter().enumerate() {
                perturbed[(k1 * kh + k2) * 2] += re;
                perturbed[(k1 * kh + k2) * 2 + 1] += im;
            }
        }
        assert_close(
            &format!("irfft2 {s1}×{s2}: imaginary Z added at DC/Nyquist"),
            &eval(&perturbed)?,
            &y0,
            0.0,
            1e-12,
        );
        let mut self_conj_im = ys.clone();
        for &k2 in &self_conj {
            for k1 in [0, s1 / 2] {
                if k1 == 0 || s1 % 2 == 0 {
                    self_conj_im[(k1 * kh + k2) * 2 + 1] += 5.0;
                }
            }
        }
        assert_close(
            &format!("irfft2 {s1}×{s2}: Im of the self-conjugate entries"),
            &eval(&self_conj_im)?,
            &y0,
            0.0,
            1e-12,
        );

        // 2. Zeroing Im Z at those columns: the Hermitian part along k1.
        let mut hermitian = ys.clone();
        for &k2 in &self_conj {
            for k1 in 0..s1 {
                let m = (s1 - k1) % s1;
                let (a, b) = ((k1 * kh + k2) * 2, (m * kh + k2) * 2);
                hermitian[a] = 0.5 * (ys[a] + ys[b]);
                hermitian[a + 1] = 0.5 * (ys[a + 1] - ys[b + 1]);
            }
        }
        assert_close(
            &format!("irfft2 {s1}×{s2}: Im Z zeroed at DC/Nyquist"),
            &eval(&hermitian)?,
            &y0,
            0.0,
            1e-12,
        );

        // 3. What is *not* ignored.
        if s1 > 2 {
            let mut zeroed = ys.clone();
            for k1 in (1..s1).filter(|&k1| 2 * k1 != s1) {
                zeroed[(k1 * kh) * 2 + 1] = 0.0;
            }
            let diff = eval(&zeroed)?
                .iter()
                .zip(&y0)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                diff > 1e-3,
                "irfft2 {s1}×{s2}: Im Y(k1, 0) for k1 ∉ {{0, S1/2}} must matter (closed form), max change {diff:e}"
            );
        }
        if s2 % 2 == 1 {
            let mut last = ys.clone();
            let r = uniform_vec(s1, seed + 9, -3.0, 3.0);
            for (k1, (re, im)) in imaginary_after_first_axis(&r).into_iter().enumerate() {
                last[(k1 * kh + kh - 1) * 2] += re;
                last[(k1 * kh + kh - 1) * 2 + 1] += im;
            }
            let got = eval(&last)?;
            assert_close(
                &format!("irfft2 {s1}×{s2}: last column of an odd S2 is ordinary"),
                &got,
                &ref_closed_form(&last, s1, s2, true),
                0.0,
                1e-12,
            );
            let diff = got
                .iter()
                .zip(&y0)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(diff > 1e-3, "irfft2 {s1}×{s2}: odd-S2 last column ignored");
        }
    }
    Ok(())
}

/// The gradient rules of spec §3.6, checked as formulas on the backward pass (f64):
/// through `y = F⁻¹(Y)`: `grad(Y) = c ⊙ F(grad y)`; through `X = F(x)`:
/// `grad(x) = F⁻¹(grad X ⊘ c) = (S1·S2)^{-1/2}·Re Σ grad(X)(k)·ω^{k·n}` (no doubling).
pub fn fft_gradient_rules<B: Backend>(dev: &B::Device) -> Result<()> {
    type A<B> = Autodiff<B>;
    for (si, &(s1, s2)) in SIZES.iter().enumerate() {
        let kh = half_len(s2);
        let seed = 1500 + 10 * si as u64;
        // irfft2: upstream gradient g (2, S1, S2).
        let ys = uniform_vec(2 * s1 * kh * 2, seed, -1.0, 1.0);
        let g = uniform_vec(2 * s1 * s2, seed + 1, -1.0, 1.0);
        let yv = tensor::<A<B>>(&ys, [2, s1, kh, 2], DType::F64, dev)?.requires_grad()?;
        let gt = tensor::<A<B>>(&g, [2, s1, s2], DType::F64, dev)?;
        let grads = irfft2(&yv, s2)?.mul(&gt)?.sum_all()?.backward()?;
        let got = grads.get(&yv).expect("irfft2: no gradient").to_vec_f64()?;
        let mut want = ref_rfft2(&g, s1, s2);
        for (i, v) in want.iter_mut().enumerate() {
            *v *= c_weight((i / 2) % kh, s2);
        }
        assert_close(
            &format!("irfft2 gradient = c ⊙ F(grad y), {s1}×{s2}"),
            &got,
            &want,
            0.0,
            1e-12 * l2(&g).max(1.0),
        );

        // rfft2: upstream gradient G (2, S1, Kh, 2), arbitrary (not Hermitian).
        let xs = uniform_vec(2 * s1 * s2, seed + 2, -2.0, 2.0);
        let gx = uniform_vec(2 * s1 * kh * 2, seed + 3, -1.0, 1.0);
        let xv = tensor::<A<B>>(&xs, [2, s1, s2], DType::F64, dev)?.requires_grad()?;
        let gt = tensor::<A<B>>(&gx, [2, s1, kh, 2], DType::F64, dev)?;
        let grads = rfft2(&xv)?.mul(&gt)?.sum_all()?.backward()?;
        let got = grads.get(&xv).expect("rfft2: no gradient").to_vec_f64()?;
        assert_close(
            &format!("rfft2 gradient = F⁻¹(grad X ⊘ c), {s1}×{s2}"),
            &got,
            &ref_closed_form(&gx, s1, s2, false),
            0.0,
            1e-12 * l2(&gx).max(1.0),
        );
    }
    Ok(())
}

/// Finite-difference checks of rfft2, irfft2 (arbitrary non-Hermitian spectra) and the VARS-S
/// analysis/synthesis chain `F⁻¹(K ⊙ F(z))`, `F⁻¹(conj(K) ⊙ F(a))` w.r.t. both `K` and the
/// signal, on odd/even and non-square grids and on views.
pub fn fft_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    for (si, &(s1, s2)) in SIZES.iter().enumerate() {
        let kh = half_len(s2);
        let seed = 1600 + 10 * si as u64;
        let x = input::<B>(&[s1, s2], seed, -2.0, 2.0, dev)?;
        gc(
            &format!("rfft2 {s1}×{s2}"),
            |v| wsum(&rfft2(&v[0])?, 1),
            &[x],
        );
        let y = input::<B>(&[s1, kh, 2], seed + 1, -1.0, 1.0, dev)?;
        gc(
            &format!("irfft2 {s1}×{s2}"),
            |v| wsum(&irfft2(&v[0], s2)?, 2),
            &[y],
        );
    }
    for &(s1, s2) in &[(6, 6), (7, 7), (6, 7)] {
        let kh = half_len(s2);
        // A batch of two signals stored transposed (S2, S1) and a spectrum stored as (2, S1, Kh)
        // permuted to (S1, Kh, 2).
        let z = input::<B>(&[2, s2, s1], 1700, -2.0, 2.0, dev)?;
        let k = input::<B>(&[2, s1, kh], 1701, -1.0, 1.0, dev)?;
        gc(
            &format!("analysis F⁻¹(K ⊙ F(z)) on views {s1}×{s2}"),
            |v| {
                let spec = rfft2(&v[0].transpose(1, 2)?)?;
                let kk = v[1].permute(&[1, 2, 0])?;
                wsum(&irfft2(&complex_mul(&kk, &spec)?, s2)?, 3)
            },
            &[z.clone(), k.clone()],
        );
        gc(
            &format!("synthesis F⁻¹(conj(K) ⊙ F(a)) {s1}×{s2}"),
            |v| {
                let spec = rfft2(&v[0].transpose(1, 2)?)?;
                let kk = complex_conj(&v[1].permute(&[1, 2, 0])?)?;
                wsum(&irfft2(&complex_mul(&kk, &spec)?, s2)?, 4)
            },
            &[z, k],
        );
    }
    Ok(())
}

/// Shape and dtype errors of the FFT pair name the op.
pub fn fft_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let named = |e: crate::Error, op: &str| {
        assert!(e.to_string().contains(op), "error should name `{op}`: {e}");
    };
    let x1 = Tensor::<B>::zeros([5], DType::F32, dev)?;
    named(expect_err(rfft2(&x1), "rfft2 of rank 1"), "rfft2");
    let xi = Tensor::<B>::zeros([3, 3], DType::I64, dev)?;
    named(expect_err(rfft2(&xi), "rfft2 of i64"), "rfft2");
    let y = Tensor::<B>::zeros([6, 4, 2], DType::F32, dev)?;
    named(
        expect_err(irfft2(&y, 8), "irfft2 with Kh ≠ S2/2+1"),
        "irfft2",
    );
    named(
        expect_err(irfft2(&y, 5), "irfft2 with Kh ≠ S2/2+1"),
        "irfft2",
    );
    let y3 = Tensor::<B>::zeros([6, 4, 3], DType::F32, dev)?;
    named(
        expect_err(irfft2(&y3, 6), "irfft2 without a (re, im) axis"),
        "irfft2",
    );
    let y2 = Tensor::<B>::zeros([4, 2], DType::F32, dev)?;
    named(expect_err(irfft2(&y2, 6), "irfft2 of rank 2"), "irfft2");
    // Both S2 = 6 and S2 = 7 have Kh = 4: the output size is the caller's choice.
    assert_eq!(irfft2(&y, 6)?.dims(), [6, 6]);
    assert_eq!(irfft2(&y, 7)?.dims(), [6, 7]);
    Ok(())
}
